//! SER's FIFO requests framed out of the bytes of a named pipe, as pure
//! code on an injected clock. A request is a line `:command:reply_file`,
//! then its argument lines up to an empty line; SER's UAC commands take
//! three fixed lines, header lines up to an empty line, and body lines up
//! to a line holding only `.` (tm's seed: `:t_uac_from:`). Every writer
//! shares the one pipe, so a request must be written at once; what is
//! malformed, too large, cut short by its writer's end or left unfinished
//! for [`IDLE_MS`] is refused (400 when the reply file is known) and the
//! framer finds the next request (an empty line, or a line that starts
//! one).

/// Largest request, all lines counted (SER's were smaller: 1 KiB body).
pub const MAX_REQUEST: usize = 64 * 1024;
/// Most argument or header lines in a request.
pub const MAX_LINES: usize = 64;
/// An unfinished request with nothing more for this long is refused.
pub const IDLE_MS: u64 = 10_000;

/// SER's commands this server serves and how each is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The command line alone.
    Bare,
    /// Argument lines up to an empty line.
    Args,
    /// Three lines, header lines to an empty line, body lines to `.`.
    Uac,
}

/// The commands, with their shape (`:which:` lists them).
pub const COMMANDS: &[(&str, Shape)] = &[
    ("t_uac_from", Shape::Uac),
    ("t_uac_dlg", Shape::Uac),
    ("ul_show_contact", Shape::Args),
    ("ul_rm", Shape::Args),
    ("ul_rm_contact", Shape::Args),
    ("ul_add", Shape::Args),
    ("ul_dump", Shape::Bare),
    ("ps", Shape::Bare),
    ("uptime", Shape::Bare),
    ("version", Shape::Bare),
    ("which", Shape::Bare),
];

/// A request framed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    pub command: String,
    /// The reply file's name as written (empty: none).
    pub reply: String,
    /// Argument lines (a UAC command's three fixed lines).
    pub args: Vec<String>,
    /// A UAC command's header lines, CRLF-terminated each.
    pub headers: String,
    /// A UAC command's body lines, CRLF-terminated each.
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Request(Request),
    /// A command this server does not have (SER: `500 command '...' not
    /// available`).
    Unknown {
        command: String,
        reply: String,
    },
    /// A request refused (400); `reply` when its first line named one.
    Refused {
        reply: Option<String>,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between requests: empty lines are skipped.
    Idle,
    /// Reading `cur`'s argument lines (or a UAC's fixed lines).
    Args,
    Headers,
    Body,
    /// After a refusal: lines up to an empty one, or to one that starts
    /// a request, are dropped.
    Skip,
    /// After an oversize request: everything until its writer ends or the
    /// pipe is idle.
    Drain,
}

pub struct Framer {
    state: State,
    cur: Request,
    shape: Shape,
    /// Bytes of the line being read.
    line: Vec<u8>,
    /// Bytes of `cur` so far.
    size: usize,
    last_input: u64,
}

impl Default for Framer {
    fn default() -> Self {
        Framer {
            state: State::Idle,
            cur: Request::default(),
            shape: Shape::Bare,
            line: Vec::new(),
            size: 0,
            last_input: 0,
        }
    }
}

/// `:name:file` split, when `line` starts a request.
fn command_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix(':')?;
    let (name, file) = rest.split_once(':')?;
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then_some((name, file))
}

impl Framer {
    /// Whether a request is being read.
    pub fn pending(&self) -> bool {
        !matches!(self.state, State::Idle) || !self.line.is_empty()
    }

    /// Bytes read from the pipe at `now`.
    pub fn feed(&mut self, data: &[u8], now: u64, out: &mut Vec<Event>) {
        self.last_input = now;
        if self.state == State::Drain {
            return;
        }
        for &b in data {
            if b != b'\n' {
                self.line.push(b);
                if self.line.len() + self.size > MAX_REQUEST {
                    self.oversize(out);
                    return;
                }
                continue;
            }
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.size += line.len() + 1;
            self.on_line(&String::from_utf8_lossy(&line), out);
            if self.state == State::Drain {
                return;
            }
        }
    }

    fn oversize(&mut self, out: &mut Vec<Event>) {
        let reply = (self.state != State::Idle).then(|| self.cur.reply.clone());
        out.push(Event::Refused {
            reply,
            reason: format!("request larger than {MAX_REQUEST} bytes"),
        });
        self.reset();
        self.state = State::Drain;
    }

    fn reset(&mut self) {
        self.cur = Request::default();
        self.line.clear();
        self.size = 0;
        self.state = State::Idle;
    }

    fn refuse(&mut self, reason: String, out: &mut Vec<Event>) {
        let reply = Some(std::mem::take(&mut self.cur.reply));
        out.push(Event::Refused { reply, reason });
        self.reset();
        self.state = State::Skip;
    }

    fn done(&mut self, out: &mut Vec<Event>) {
        out.push(Event::Request(std::mem::take(&mut self.cur)));
        self.reset();
    }

    fn on_line(&mut self, line: &str, out: &mut Vec<Event>) {
        match self.state {
            State::Idle | State::Skip => self.start(line, out),
            State::Args => {
                let fixed = self.shape == Shape::Uac;
                if line.trim().is_empty() && !fixed {
                    return self.done(out);
                }
                if self.cur.args.len() >= MAX_LINES {
                    return self.refuse(format!("more than {MAX_LINES} lines"), out);
                }
                self.cur.args.push(line.trim_end().to_string());
                if fixed && self.cur.args.len() == 3 {
                    self.state = State::Headers;
                }
            }
            State::Headers => {
                if line.trim().is_empty() {
                    self.state = State::Body;
                    return;
                }
                if self.cur.headers.matches('\n').count() >= MAX_LINES {
                    return self.refuse(format!("more than {MAX_LINES} header lines"), out);
                }
                self.cur.headers.push_str(line.trim_end());
                self.cur.headers.push_str("\r\n");
            }
            State::Body => {
                if line == "." {
                    return self.done(out);
                }
                self.cur.body.push_str(line);
                self.cur.body.push_str("\r\n");
            }
            State::Drain => {}
        }
    }

    /// A line between requests: an empty one is skipped; one that starts
    /// a request starts it; anything else is refused (once per run).
    fn start(&mut self, line: &str, out: &mut Vec<Event>) {
        let skipping = self.state == State::Skip;
        if line.trim().is_empty() {
            self.reset();
            return;
        }
        let Some((name, file)) = command_line(line.trim_end()) else {
            if !skipping {
                out.push(Event::Refused {
                    reply: None,
                    reason: format!(
                        "a request starts with ':command:reply_file', not '{}'",
                        line.chars().take(40).collect::<String>()
                    ),
                });
                self.state = State::Skip;
            }
            return;
        };
        self.size = line.len() + 1;
        let Some(&(_, shape)) = COMMANDS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) else {
            out.push(Event::Unknown {
                command: name.to_string(),
                reply: file.to_string(),
            });
            self.reset();
            self.state = State::Skip;
            return;
        };
        self.cur = Request {
            command: name.to_ascii_lowercase(),
            reply: file.to_string(),
            ..Request::default()
        };
        self.shape = shape;
        match shape {
            Shape::Bare => self.done(out),
            Shape::Args | Shape::Uac => self.state = State::Args,
        }
    }

    /// Every writer closed the pipe: a request left unfinished ends here
    /// (argument lists as they are; a UAC request without its `.` is
    /// refused).
    pub fn end_of_writers(&mut self, out: &mut Vec<Event>) {
        if !self.line.is_empty() {
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if self.state != State::Drain {
                self.on_line(&String::from_utf8_lossy(&line), out);
            }
        }
        match self.state {
            State::Args if self.shape == Shape::Args => self.done(out),
            State::Args | State::Headers | State::Body => {
                self.refuse("the request ended before its '.' line".into(), out)
            }
            _ => {}
        }
        self.reset();
    }

    /// Called now and then: a request unfinished for [`IDLE_MS`] is
    /// refused, an oversize one's rest given up.
    pub fn idle(&mut self, now: u64, out: &mut Vec<Event>) {
        if !self.pending() || now.saturating_sub(self.last_input) < IDLE_MS {
            return;
        }
        match self.state {
            State::Args | State::Headers | State::Body => self.refuse(
                format!("the request was left unfinished for {} s", IDLE_MS / 1000),
                out,
            ),
            _ => {}
        }
        self.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(chunks: &[&str]) -> (Framer, Vec<Event>) {
        let mut f = Framer::default();
        let mut out = Vec::new();
        for c in chunks {
            f.feed(c.as_bytes(), 0, &mut out);
        }
        (f, out)
    }

    fn request(e: &Event) -> &Request {
        match e {
            Event::Request(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_seeds_t_uac_from_example() {
        // tm's seed, its lines as the shell writes them.
        let (f, out) = frame(&[
            ":t_uac_from:xxx\nMESSAGE\nsip:sender@iptel.org\nsip:mrx@iptel.org\n\
             header:value\nfoo:bar\nbznk:hjhjk\np_header: p_value\n\nbody body body\nyet body\nend of body\n.\n\n",
        ]);
        assert!(!f.pending());
        assert_eq!(out.len(), 1);
        let r = request(&out[0]);
        assert_eq!(
            (r.command.as_str(), r.reply.as_str()),
            ("t_uac_from", "xxx")
        );
        assert_eq!(
            r.args,
            ["MESSAGE", "sip:sender@iptel.org", "sip:mrx@iptel.org"]
        );
        assert_eq!(
            r.headers,
            "header:value\r\nfoo:bar\r\nbznk:hjhjk\r\np_header: p_value\r\n"
        );
        assert_eq!(r.body, "body body body\r\nyet body\r\nend of body\r\n");
    }

    #[test]
    fn requests_split_anywhere_and_several_in_one_write() {
        let text = ":uptime:r1\n\n:ul_rm:r2\nlocation\nalice\n\n:which:r3\n";
        for cut in 0..text.len() {
            let (_, out) = frame(&[&text[..cut], &text[cut..]]);
            let names: Vec<_> = out.iter().map(|e| request(e).command.clone()).collect();
            assert_eq!(names, ["uptime", "ul_rm", "which"], "cut at {cut}");
            assert_eq!(request(&out[1]).args, ["location", "alice"]);
        }
    }

    #[test]
    fn unknown_commands_and_garbage_are_said_and_skipped() {
        let (_, out) = frame(&[":print:r\nhello\n\ngarbage\nmore\n\n:version:r2\n"]);
        assert_eq!(
            out[0],
            Event::Unknown {
                command: "print".into(),
                reply: "r".into()
            }
        );
        assert!(
            matches!(&out[1], Event::Refused { reply: None, reason } if reason.contains("garbage"))
        );
        assert_eq!(request(&out[2]).command, "version");
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn a_writer_that_vanishes_does_not_block_the_next() {
        let (mut f, mut out) = frame(&[":t_uac_from:r1\nMESSAGE\nsip:a@b\nsip:c@d\nX: y\n"]);
        f.end_of_writers(&mut out);
        assert!(matches!(&out[0], Event::Refused { reply: Some(r), .. } if r == "r1"));
        f.feed(b":ps:r2\n", 1, &mut out);
        assert_eq!(request(&out[1]).command, "ps");
        // An argument list cut short is taken as it is.
        let (mut f, mut out) = frame(&[":ul_rm:r3\nlocation\nalice"]);
        f.end_of_writers(&mut out);
        assert_eq!(request(&out[0]).args, ["location", "alice"]);
    }

    #[test]
    fn an_unfinished_request_is_refused_after_idle() {
        let mut f = Framer::default();
        let mut out = Vec::new();
        f.feed(b":ul_add:r\nlocation\n", 1000, &mut out);
        f.idle(1000 + IDLE_MS - 1, &mut out);
        assert!(out.is_empty() && f.pending());
        f.idle(1000 + IDLE_MS, &mut out);
        assert!(matches!(&out[0], Event::Refused { reply: Some(r), .. } if r == "r"));
        assert!(!f.pending());
    }

    #[test]
    fn an_oversize_request_is_refused_and_drained() {
        let mut f = Framer::default();
        let mut out = Vec::new();
        f.feed(b":t_uac_dlg:big\nMESSAGE\nsip:a@b\n.\n\n", 0, &mut out);
        let line = vec![b'x'; 1000];
        for _ in 0..70 {
            f.feed(&line, 0, &mut out);
            f.feed(b"\n", 0, &mut out);
        }
        assert_eq!(out.len(), 1);
        assert!(
            matches!(&out[0], Event::Refused { reply: Some(r), reason } if r == "big" && reason.contains("larger"))
        );
        // The rest of it is dropped until its writer ends.
        f.feed(b".\n\n:ps:r\n", 0, &mut out);
        assert_eq!(out.len(), 1);
        f.end_of_writers(&mut out);
        f.feed(b":ps:r\n", 0, &mut out);
        assert_eq!(request(&out[1]).command, "ps");
    }
}
