//! SIP over a stream (TCP, TLS): where one message ends and the next
//! begins (RFC 3261 §18.3: the Content-Length header, mandatory on a
//! stream), and RFC 5626 §3.5.1's keep-alives (a CRLFCRLF "ping" from the
//! peer is answered with a CRLF "pong"; a lone CRLF is a pong, skipped).
//! Pure code: bytes in, frames out, deadlines on an injected clock.

use super::limits::MAX_DATAGRAM;

/// Largest message accepted on a stream: as over UDP, so offsets still
/// fit the message index.
pub const MAX_STREAM_MESSAGE: usize = MAX_DATAGRAM;
/// A message started and not finished for this long: a slow (or stuck)
/// sender; the connection is closed.
pub const MESSAGE_TIMEOUT_MS: u64 = 10_000;

/// What the start of a stream's buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A whole message of this many bytes.
    Message(usize),
    /// A CRLFCRLF keep-alive ping (4 bytes): answer with CRLF.
    Ping,
    /// A CRLF pong, or a stray CRLF between messages (2 bytes): skip it.
    Pong,
    /// Not enough bytes yet.
    More,
}

/// Why a stream cannot go on: the connection is to be closed (with a
/// 400 first where the message's start allows one, §18.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamError {
    /// Headers without a Content-Length (§18.3: a MUST on streams).
    NoContentLength,
    BadContentLength,
    /// Larger than [`MAX_STREAM_MESSAGE`], headers or whole.
    TooBig,
    /// Started more than [`MESSAGE_TIMEOUT_MS`] ago and not complete.
    TooSlow,
}

impl StreamError {
    /// The reason phrase of the 400 a request that caused it gets.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            StreamError::NoContentLength => Some("Missing Content-Length"),
            StreamError::BadContentLength => Some("Bad Content-Length"),
            StreamError::TooBig => Some("Message Too Large"),
            StreamError::TooSlow => None,
        }
    }
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StreamError::NoContentLength => "Content-Length missing (RFC 3261 §18.3)",
            StreamError::BadContentLength => "bad Content-Length",
            StreamError::TooBig => "message too large",
            StreamError::TooSlow => "message not completed in time",
        })
    }
}

/// The frame at the start of `buf`.
pub fn frame(buf: &[u8]) -> Result<Frame, StreamError> {
    match buf {
        [b'\r', b'\n', b'\r', b'\n', ..] => return Ok(Frame::Ping),
        // A lone CRLF may be a ping's first half: wait for what follows.
        [b'\r', b'\n'] | [b'\r'] | [b'\r', b'\n', b'\r'] => return Ok(Frame::More),
        [b'\r', b'\n', ..] | [b'\n', ..] => return Ok(Frame::Pong),
        _ => {}
    }
    let Some(head_end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_STREAM_MESSAGE {
            Err(StreamError::TooBig)
        } else {
            Ok(Frame::More)
        };
    };
    let body_start = head_end + 4;
    let len = content_length(&buf[..head_end])?;
    let total = body_start
        .checked_add(len)
        .filter(|t| *t <= MAX_STREAM_MESSAGE)
        .ok_or(StreamError::TooBig)?;
    Ok(if buf.len() >= total {
        Frame::Message(total)
    } else {
        Frame::More
    })
}

/// The Content-Length (or compact `l`) of a header block (the start line
/// first), RFC 3261 §20.14 and §7.3.3.
fn content_length(head: &[u8]) -> Result<usize, StreamError> {
    let mut found = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // A folded continuation line belongs to the header above it.
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            continue;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = line[colon + 1..].trim_ascii();
        if value.is_empty() || value.len() > 9 || !value.iter().all(u8::is_ascii_digit) {
            return Err(StreamError::BadContentLength);
        }
        let n: usize = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or(StreamError::BadContentLength)?;
        // Two that disagree: which one frames the body is unknowable.
        if found.is_some_and(|f| f != n) {
            return Err(StreamError::BadContentLength);
        }
        found = Some(n);
    }
    found.ok_or(StreamError::NoContentLength)
}

/// A connection's bytes not yet framed, and since when a message has
/// been waiting to complete.
#[derive(Debug, Default)]
pub struct StreamBuf {
    buf: Vec<u8>,
    /// When the first byte of the message now pending came (None: none
    /// pending).
    pending_since: Option<u64>,
}

/// One thing to do with a stream's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    Message(&'a [u8]),
    /// Answer the ping with CRLF.
    Ping,
}

impl StreamBuf {
    /// Bytes read from the connection at `now`.
    pub fn feed(&mut self, bytes: &[u8], now: u64) {
        if self.buf.is_empty() && !bytes.is_empty() {
            self.pending_since = Some(now);
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Hands each complete frame to `on` (a message's bytes, or a ping to
    /// answer), then keeps what is left; an error means the connection is
    /// to be closed (what was framed before it was handed on).
    pub fn drain(&mut self, now: u64, mut on: impl FnMut(Event<'_>)) -> Result<(), StreamError> {
        let mut at = 0;
        let r = loop {
            match frame(&self.buf[at..]) {
                Ok(Frame::Message(n)) => {
                    on(Event::Message(&self.buf[at..at + n]));
                    at += n;
                }
                Ok(Frame::Ping) => {
                    on(Event::Ping);
                    at += 4;
                }
                Ok(Frame::Pong) => {
                    at += if self.buf[at] == b'\n' { 1 } else { 2 };
                }
                Ok(Frame::More) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.buf.drain(..at);
        if self.buf.is_empty() {
            self.pending_since = None;
        } else if at > 0 {
            // What is left started arriving now, as far as we know.
            self.pending_since = Some(now);
        }
        r?;
        match self.pending_since {
            Some(t) if now.saturating_sub(t) > MESSAGE_TIMEOUT_MS => Err(StreamError::TooSlow),
            _ => Ok(()),
        }
    }

    /// Bytes waiting to be framed.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Gives back the buffer's memory when nothing is pending (an idle
    /// connection keeps none).
    pub fn trim(&mut self) {
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
    }

    /// Those bytes: after a framing error, the message that caused it.
    pub fn pending_bytes(&self) -> &[u8] {
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@b SIP/2.0\r\nVia: SIP/2.0/TCP a;branch=z9hG4bK1\r\n\
                          l: 4\r\nCall-ID: x\r\n\r\nbody";

    fn events(buf: &mut StreamBuf, now: u64) -> (Vec<String>, Result<(), StreamError>) {
        let mut out = Vec::new();
        let r = buf.drain(now, |e| {
            out.push(match e {
                Event::Message(m) => String::from_utf8_lossy(m).into_owned(),
                Event::Ping => "PING".into(),
            })
        });
        (out, r)
    }

    #[test]
    fn messages_in_any_pieces_with_keepalives_between() {
        let stream = format!("\r\n\r\n{INVITE}\r\n{INVITE}\r\n\r\n");
        for cut in 0..stream.len() {
            let mut b = StreamBuf::default();
            let (a, z) = stream.split_at(cut);
            b.feed(a.as_bytes(), 0);
            let (mut got, r) = events(&mut b, 0);
            assert_eq!(r, Ok(()));
            b.feed(z.as_bytes(), 1);
            let (more, r) = events(&mut b, 1);
            assert_eq!(r, Ok(()));
            got.extend(more);
            assert_eq!(got, ["PING", INVITE, INVITE, "PING"], "cut at {cut}");
            assert_eq!(b.pending(), 0);
        }
    }

    #[test]
    fn framing_errors_close_the_connection() {
        let no_len = "OPTIONS sip:b SIP/2.0\r\nCall-ID: x\r\n\r\n";
        assert_eq!(frame(no_len.as_bytes()), Err(StreamError::NoContentLength));
        for bad in [
            "Content-Length: -1",
            "Content-Length: 1x",
            "Content-Length:",
            "l: 99999999999",
        ] {
            let m = format!("OPTIONS sip:b SIP/2.0\r\n{bad}\r\n\r\n");
            assert_eq!(
                frame(m.as_bytes()),
                Err(StreamError::BadContentLength),
                "{bad}"
            );
        }
        let two = "OPTIONS sip:b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nxy";
        assert_eq!(frame(two.as_bytes()), Err(StreamError::BadContentLength));
        let big = format!("OPTIONS sip:b SIP/2.0\r\nContent-Length: {MAX_STREAM_MESSAGE}\r\n\r\n");
        assert_eq!(frame(big.as_bytes()), Err(StreamError::TooBig));
        let endless = vec![b'a'; MAX_STREAM_MESSAGE + 1];
        assert_eq!(frame(&endless), Err(StreamError::TooBig));
        // A message before the error is still handed on.
        let mut b = StreamBuf::default();
        b.feed(format!("{INVITE}{no_len}").as_bytes(), 0);
        let (got, r) = events(&mut b, 0);
        assert_eq!(got, [INVITE]);
        assert_eq!(r, Err(StreamError::NoContentLength));
    }

    #[test]
    fn a_slow_sender_is_cut_off_and_a_quick_one_is_not() {
        let mut b = StreamBuf::default();
        b.feed(&INVITE.as_bytes()[..20], 0);
        assert_eq!(events(&mut b, MESSAGE_TIMEOUT_MS).1, Ok(()));
        b.feed(&INVITE.as_bytes()[20..30], MESSAGE_TIMEOUT_MS);
        assert_eq!(
            events(&mut b, MESSAGE_TIMEOUT_MS + 1).1,
            Err(StreamError::TooSlow)
        );
        // Completed in time: the clock starts again with the next one.
        let mut b = StreamBuf::default();
        b.feed(INVITE.as_bytes(), 0);
        b.feed(&INVITE.as_bytes()[..5], 0);
        assert_eq!(events(&mut b, 9_000).0, [INVITE]);
        assert_eq!(events(&mut b, 9_000 + MESSAGE_TIMEOUT_MS).1, Ok(()));
    }
}
