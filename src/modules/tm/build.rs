//! The messages tm writes itself, all from the stored request (the request
//! as relayed, before our Via): a branch's request, its CANCEL (§9.1),
//! the ACK to a non-2xx final reply (§17.1.1.3), and local replies.

use std::net::SocketAddr;

use arrayvec::ArrayString;

use crate::sip::build::{BuildError, Edits, push_u32};
use crate::sip::text;
use crate::sip::via::BRANCH_COOKIE;
use crate::sip::{HeaderKind, Message};

/// Our Via for one branch: the address we send from and the branch value.
pub struct OurVia {
    pub host: ArrayString<48>,
    pub port: u16,
    pub branch: ArrayString<48>,
    /// The sent-protocol's transport (`UDP`, `TCP`).
    pub transport: &'static [u8],
}

impl OurVia {
    pub fn new(local: SocketAddr, branch: ArrayString<48>) -> OurVia {
        let mut host = ArrayString::new();
        let _ = host.try_push_str(text::ascii(text::ip(
            local.ip(),
            true,
            &mut [0; text::IP_TEXT],
        )));
        OurVia {
            host,
            port: local.port(),
            branch,
            transport: b"UDP",
        }
    }

    /// The same Via over another transport.
    pub fn over(self, transport: &'static [u8]) -> OurVia {
        OurVia { transport, ..self }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"Via: SIP/2.0/");
        out.extend_from_slice(self.transport);
        out.push(b' ');
        out.extend_from_slice(self.host.as_bytes());
        out.push(b':');
        push_u32(out, u32::from(self.port));
        out.extend_from_slice(b";branch=");
        out.extend_from_slice(BRANCH_COOKIE);
        out.extend_from_slice(self.branch.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// A branch's request: the stored one with the branch's Request-URI and
/// our Via on top (§16.6 steps 2 and 8).
pub fn branch_request(
    stored: &Message<'_>,
    uri: &[u8],
    via: &OurVia,
    out: &mut Vec<u8>,
) -> Result<(), BuildError> {
    let mut e = Edits::new(stored);
    if uri != stored.request_uri_raw() {
        e.set_request_uri(uri)?;
    }
    e.push_via(
        via.transport,
        via.host.as_bytes(),
        Some(via.port),
        via.branch.as_bytes(),
    )?;
    e.write(out)
}

/// Copies every line of the headers of `kind` in `msg`.
fn copy_lines(msg: &Message<'_>, kind: HeaderKind, out: &mut Vec<u8>) {
    let mut last = None;
    for h in msg.all(kind) {
        if last != Some(h.line) {
            out.extend_from_slice(msg.slice(h.line));
            last = Some(h.line);
        }
    }
}

/// The start of a request tm makes for a branch: request line, our Via,
/// and the headers §9.1 and §17.1.1.3 copy from the request (Route, From,
/// Call-ID), `To` coming from `to` (the request or the reply).
fn hop_request(
    method: &[u8],
    stored: &Message<'_>,
    to: &Message<'_>,
    uri: &[u8],
    via: &OurVia,
    out: &mut Vec<u8>,
) -> Result<(), BuildError> {
    let cseq = stored
        .cseq()
        .map_err(|_| BuildError::Missing("CSeq"))?
        .number;
    out.clear();
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(uri);
    out.extend_from_slice(b" SIP/2.0\r\n");
    via.write(out);
    copy_lines(stored, HeaderKind::Route, out);
    copy_lines(stored, HeaderKind::From, out);
    copy_lines(to, HeaderKind::To, out);
    copy_lines(stored, HeaderKind::CallId, out);
    out.extend_from_slice(b"CSeq: ");
    push_u32(out, cseq);
    out.push(b' ');
    out.extend_from_slice(method);
    out.extend_from_slice(b"\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    Ok(())
}

/// The CANCEL of a branch (§9.1): same Request-URI, Via, From, To,
/// Call-ID, CSeq number and Route as the request it cancels.
pub fn cancel(
    stored: &Message<'_>,
    uri: &[u8],
    via: &OurVia,
    out: &mut Vec<u8>,
) -> Result<(), BuildError> {
    hop_request(b"CANCEL", stored, stored, uri, via, out)
}

/// The ACK to a non-2xx final reply on a branch (§17.1.1.3): as the
/// request, but with the reply's To (its tag).
pub fn ack(
    stored: &Message<'_>,
    reply: &Message<'_>,
    uri: &[u8],
    via: &OurVia,
    out: &mut Vec<u8>,
) -> Result<(), BuildError> {
    hop_request(b"ACK", stored, reply, uri, via, out)
}

/// The reason phrase tm uses for a reply it makes (RFC 3261 §21).
pub fn reason(code: u16) -> &'static [u8] {
    match code {
        100 => b"Trying",
        200 => b"OK",
        408 => b"Request Timeout",
        480 => b"Temporarily Unavailable",
        super::txn::SEND_FAILED => super::txn::SEND_FAILED_REASON.as_bytes(),
        487 => b"Request Terminated",
        500 => b"Server Internal Error",
        503 => b"Service Unavailable",
        _ => match code / 100 {
            1 => b"Session Progress",
            2 => b"OK",
            3 => b"Redirection",
            4 => b"Request Failure",
            5 => b"Server Failure",
            _ => b"Global Failure",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Vec<u8> {
        s.replace('\n', "\r\n").into_bytes()
    }

    const STORED: &str = "INVITE sip:bob@b.example SIP/2.0\n\
        Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc;rport=5060;received=10.0.0.1\n\
        Route: <sip:p2.example;lr>, <sip:p3.example;lr>\n\
        Max-Forwards: 69\n\
        From: Alice <sip:alice@a.example>;tag=1\nTo: <sip:bob@b.example>\n\
        Call-ID: c1@a\nCSeq: 7 INVITE\nContact: <sip:alice@10.0.0.1>\n\
        Content-Type: application/sdp\nContent-Length: 5\n\nv=0\n";

    fn via() -> OurVia {
        let mut b = ArrayString::new();
        b.push_str("t1.2.3.0");
        OurVia::new("127.0.0.1:5060".parse().unwrap(), b)
    }

    #[test]
    fn branch_request_has_our_via_and_the_branch_uri() {
        let s = text(STORED);
        let m = Message::parse(&s).unwrap();
        let mut out = Vec::new();
        branch_request(&m, b"sip:bob@10.0.0.9:5070", &via(), &mut out).unwrap();
        let r = Message::parse(&out).unwrap();
        assert_eq!(r.request_uri_raw(), b"sip:bob@10.0.0.9:5070");
        let top = r.top_via().unwrap();
        assert_eq!(top.branch, Some(&b"z9hG4bKt1.2.3.0"[..]));
        assert_eq!(r.via_count(), 2);
        assert_eq!(r.body(), b"v=0\r\n");
    }

    #[test]
    fn cancel_and_ack_copy_what_9_1_and_17_1_1_3_say() {
        let s = text(STORED);
        let m = Message::parse(&s).unwrap();
        let mut out = Vec::new();
        cancel(&m, b"sip:bob@10.0.0.9", &via(), &mut out).unwrap();
        let c = Message::parse(&out).unwrap();
        assert_eq!(c.method_raw(), b"CANCEL");
        assert_eq!(c.request_uri_raw(), b"sip:bob@10.0.0.9");
        assert_eq!(c.via_count(), 1);
        assert_eq!(c.cseq().unwrap().number, 7);
        assert_eq!(c.cseq().unwrap().method_raw, b"CANCEL");
        assert_eq!(c.routes().count(), 2);
        assert_eq!(c.from().unwrap().tag, Some(&b"1"[..]));
        assert_eq!(c.to().unwrap().tag, None);
        assert_eq!(c.call_id().unwrap(), b"c1@a");

        let reply = text(
            "SIP/2.0 486 Busy Here\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKt1.2.3.0\n\
             From: Alice <sip:alice@a.example>;tag=1\nTo: <sip:bob@b.example>;tag=xyz\n\
             Call-ID: c1@a\nCSeq: 7 INVITE\nContent-Length: 0\n\n",
        );
        let rm = Message::parse(&reply).unwrap();
        ack(&m, &rm, b"sip:bob@10.0.0.9", &via(), &mut out).unwrap();
        let a = Message::parse(&out).unwrap();
        assert_eq!(a.method_raw(), b"ACK");
        assert_eq!(a.to().unwrap().tag, Some(&b"xyz"[..]));
        assert_eq!(a.cseq().unwrap().method_raw, b"ACK");
        assert_eq!(a.top_via().unwrap().branch, Some(&b"z9hG4bKt1.2.3.0"[..]));
    }
}
