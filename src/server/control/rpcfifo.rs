//! Kamailio's jsonrpcs FIFO transport, which `kamctl` (its default
//! `RPCFIFO` engine) writes to: each request is a JSON-RPC object with a
//! `reply_name` member, the name of a reply file (a named pipe the client
//! made) in /tmp, where the answer goes. The requests are framed here as
//! pure code; the control process answers them with its JSON-RPC methods.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::fifo::Pipe;

/// Largest request, as the control socket's.
pub const MAX_REQUEST: usize = 64 * 1024;

/// One request framed: its text (without `reply_name`) and the reply
/// file's name (empty: none named), or why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framed {
    Request { text: String, reply: String },
    Refused(String),
}

/// JSON values out of the bytes writers leave in the pipe.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    /// Takes more bytes; each complete request to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Framed>) {
        self.buf.extend_from_slice(bytes);
        // Each turn takes a request or skips garbage, or stops: bounded.
        loop {
            let mut stream = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
            match stream.next() {
                Some(Ok(v)) => {
                    let used = stream.byte_offset();
                    out.push(request(v));
                    self.buf.drain(..used);
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => {
                    // Skip to the next line, where a writer's request
                    // would start.
                    let end = self
                        .buf
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(self.buf.len(), |i| i + 1);
                    out.push(Framed::Refused(format!("not JSON: {e}")));
                    self.buf.drain(..end);
                }
                None => {
                    self.buf.clear();
                    break;
                }
            }
        }
        if self.buf.len() > MAX_REQUEST {
            self.buf.clear();
            out.push(Framed::Refused(format!(
                "a request over {MAX_REQUEST} bytes"
            )));
        }
    }

    /// Every writer closed the pipe: what is left is cut short.
    pub fn end_of_writers(&mut self, out: &mut Vec<Framed>) {
        if self.buf.iter().any(|b| !b.is_ascii_whitespace()) {
            out.push(Framed::Refused("a request cut short".into()));
        }
        self.buf.clear();
    }
}

fn request(mut v: Value) -> Framed {
    let reply = match v.as_object_mut().and_then(|o| o.remove("reply_name")) {
        Some(Value::String(s)) => s,
        Some(_) => return Framed::Refused("reply_name is not a string".into()),
        None => String::new(),
    };
    Framed::Request {
        text: v.to_string(),
        reply,
    }
}

/// The pipe as the control process reads it.
pub struct RpcFifo {
    pipe: Pipe,
    framer: Framer,
}

impl RpcFifo {
    pub fn open(path: &Path) -> std::io::Result<RpcFifo> {
        Ok(RpcFifo {
            pipe: Pipe::open(path)?,
            framer: Framer::default(),
        })
    }

    pub fn fd(&self) -> std::os::fd::RawFd {
        self.pipe.fd()
    }

    pub fn on_readable(&mut self, out: &mut Vec<Framed>) {
        let framer = &mut self.framer;
        self.pipe.read(|piece| match piece {
            Some(bytes) => framer.feed(bytes, out),
            None => framer.end_of_writers(out),
        });
    }
}

/// jsonrpcs' FIFO for `config`: where, and its mode, when the config
/// loads jsonrpcs with its FIFO transport on (`transport` 0, all, or 1;
/// `fifo_name` relative to Kamailio's run directory, /run/kamailio).
pub fn path_of(config: &crate::cfg::Config) -> Option<(PathBuf, u32)> {
    if !config.has_module("jsonrpcs") {
        return None;
    }
    if !matches!(config.modparam_int("jsonrpcs", "transport", 0), 0 | 1) {
        return None;
    }
    let name = config.modparam_str("jsonrpcs", "fifo_name", "kamailio_rpc.fifo");
    let path = Path::new("/run/kamailio").join(name);
    let mode = config.modparam_int("jsonrpcs", "fifo_mode", 0o660);
    Some((path, u32::try_from(mode).unwrap_or(0o660) & 0o777))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(pieces: &[&str]) -> Vec<Framed> {
        let mut f = Framer::default();
        let mut out = Vec::new();
        for p in pieces {
            f.feed(p.as_bytes(), &mut out);
        }
        f.end_of_writers(&mut out);
        out
    }

    #[test]
    fn kamctls_requests_in_any_pieces() {
        let kamctl = "{\"jsonrpc\": \"2.0\", \"method\": \"ul.dump\", \"reply_name\": \"kamailio_receiver_42\", \"id\": 42}\n";
        for cut in 0..kamctl.len() {
            let (a, b) = kamctl.split_at(cut);
            let got = frames(&[a, b]);
            assert_eq!(got.len(), 1, "{cut}: {got:?}");
            let Framed::Request { text, reply } = &got[0] else {
                panic!("{got:?}")
            };
            assert_eq!(reply, "kamailio_receiver_42");
            let v: Value = serde_json::from_str(text).unwrap();
            assert_eq!(v["method"], "ul.dump");
            assert!(v.get("reply_name").is_none());
        }
        // Two in one write.
        assert_eq!(frames(&[&format!("{kamctl}{kamctl}")]).len(), 2);
    }

    #[test]
    fn garbage_cut_short_and_oversize_are_refused_and_the_next_served() {
        let ok = "{\"jsonrpc\": \"2.0\", \"method\": \"core.uptime\", \"id\": 1}\n";
        let got = frames(&["nonsense here\n", ok]);
        assert!(matches!(got[0], Framed::Refused(_)), "{got:?}");
        assert!(matches!(got[1], Framed::Request { .. }), "{got:?}");
        assert_eq!(got.len(), 2, "{got:?}");
        let got = frames(&["{\"jsonrpc\": \"2.0\", \"meth"]);
        assert_eq!(got, [Framed::Refused("a request cut short".into())]);
        let big = format!("{{\"x\": \"{}", "a".repeat(MAX_REQUEST + 1));
        let got = frames(&[&big]);
        assert!(
            matches!(&got[0], Framed::Refused(r) if r.contains("over")),
            "{got:?}"
        );
        let got = frames(&["{\"reply_name\": 3}"]);
        assert!(
            matches!(&got[0], Framed::Refused(r) if r.contains("reply_name")),
            "{got:?}"
        );
    }
}
