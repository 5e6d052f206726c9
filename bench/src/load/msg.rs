//! The generator's messages. Requests are written from a few fields into a
//! reused buffer; replies (the UAS side) are written from the received
//! request with rser's own `write_reply`, which copies Via, From, To,
//! Call-ID and CSeq as RFC 3261 §8.2.6.2 asks.
//!
//! Every identifier encodes where its transaction lives, so a reply finds
//! its slot without a lookup table: Call-ID `SLOT.GEN.RUN@rser-bench`, Via
//! branch `z9hG4bK-RUN.SLOT.GEN.SEQ`. A new run id per trial makes late
//! replies from an earlier trial strays rather than matches.

use std::io::Write;
use std::net::SocketAddr;

use rser::sip::build::write_reply;
use rser::sip::{HeaderKind, Message};

/// Which in-flight unit a message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub run: u32,
    pub slot: u32,
    pub generation: u32,
}

const CALL_ID_HOST: &[u8] = b"@rser-bench";

impl Ids {
    pub fn write_call_id(&self, out: &mut Vec<u8>) {
        let _ = write!(out, "{}.{}.{}", self.slot, self.generation, self.run);
        out.extend_from_slice(CALL_ID_HOST);
    }

    /// The ids of a Call-ID this generator wrote; None for any other.
    pub fn from_call_id(call_id: &[u8]) -> Option<Ids> {
        let local = call_id.strip_suffix(CALL_ID_HOST)?;
        let mut parts = local.split(|&b| b == b'.').map(parse_u32);
        let (slot, generation, run) = (parts.next()??, parts.next()??, parts.next()??);
        parts.next().is_none().then_some(Ids {
            run,
            slot,
            generation,
        })
    }
}

fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    u32::try_from(n).ok()
}

/// A request from the UAC side.
pub struct Request<'a> {
    pub method: &'a str,
    pub ruri: &'a [u8],
    /// The socket it leaves from: Via sent-by, and the host of Contact.
    pub local: SocketAddr,
    pub ids: Ids,
    /// Distinguishes the unit's transactions in the Via branch.
    pub seq: u32,
    pub from_uri: &'a [u8],
    pub to_uri: &'a [u8],
    pub to_tag: Option<&'a [u8]>,
    pub cseq: u32,
    /// Complete header lines (each ending in CRLF): Route, Contact,
    /// Expires, Authorization.
    pub extra: &'a [u8],
    /// Over TCP (the Via says so).
    pub tcp: bool,
}

impl Request<'_> {
    pub fn write(&self, out: &mut Vec<u8>) {
        out.clear();
        let ids = self.ids;
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.ruri);
        // rport: the proxy answers to the port it saw (RFC 3581).
        let _ = write!(
            out,
            " SIP/2.0\r\nVia: SIP/2.0/{} {};branch=z9hG4bK-{}.{}.{}.{};rport\r\n\
             Max-Forwards: 70\r\nFrom: <",
            if self.tcp { "TCP" } else { "UDP" },
            self.local,
            ids.run,
            ids.slot,
            ids.generation,
            self.seq
        );
        out.extend_from_slice(self.from_uri);
        let _ = write!(out, ">;tag=f{}.{}\r\nTo: <", ids.slot, ids.generation);
        out.extend_from_slice(self.to_uri);
        out.push(b'>');
        if let Some(tag) = self.to_tag {
            out.extend_from_slice(b";tag=");
            out.extend_from_slice(tag);
        }
        out.extend_from_slice(b"\r\nCall-ID: ");
        ids.write_call_id(out);
        let _ = write!(out, "\r\nCSeq: {} {}\r\n", self.cseq, self.method);
        out.extend_from_slice(self.extra);
        out.extend_from_slice(b"User-Agent: rser-bench\r\nContent-Length: 0\r\n\r\n");
    }
}

/// The UAS's reply to `req`: `to_tag` added, and for a dialog-creating
/// reply (`contact` given) the Record-Route lines copied, as §12.1.1 asks.
pub fn write_uas_reply(
    req: &Message<'_>,
    code: u16,
    to_tag: &[u8],
    contact: Option<(SocketAddr, bool)>,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    scratch.clear();
    if let Some((addr, tcp)) = contact {
        let mut last_line = None;
        for h in req.all(HeaderKind::RecordRoute) {
            if last_line != Some(h.line) {
                scratch.extend_from_slice(req.slice(h.line));
                last_line = Some(h.line);
            }
        }
        let transport = if tcp { ";transport=tcp" } else { "" };
        let _ = write!(scratch, "Contact: <sip:uas@{addr}{transport}>\r\n");
    }
    let reason: &[u8] = match code {
        180 => b"Ringing",
        _ => b"OK",
    };
    write_reply(req, code, reason, Some(to_tag), None, scratch, b"", out);
}

/// The route set of a dialog from its 2xx, as `Route` lines for the
/// caller's requests: the Record-Route values in reverse (§12.1.2).
pub fn route_set(reply: &Message<'_>, out: &mut Vec<u8>) {
    out.clear();
    // A route set longer than this is not one a benchmark meets.
    let mut values: [&[u8]; 16] = [b""; 16];
    let mut n = 0;
    for h in reply.all(HeaderKind::RecordRoute).take(16) {
        values[n] = reply.value(h);
        n += 1;
    }
    for v in values[..n].iter().rev() {
        out.extend_from_slice(b"Route: ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_round_trip() {
        let ids = Ids {
            run: 7,
            slot: 12345,
            generation: 3,
        };
        let mut b = Vec::new();
        ids.write_call_id(&mut b);
        assert_eq!(b, b"12345.3.7@rser-bench");
        assert_eq!(Ids::from_call_id(&b), Some(ids));
        assert_eq!(Ids::from_call_id(b"1.2@rser-bench"), None);
        assert_eq!(Ids::from_call_id(b"1.2.3.4@rser-bench"), None);
        assert_eq!(Ids::from_call_id(b"1.2.99999999999@rser-bench"), None);
        assert_eq!(Ids::from_call_id(b"1.2.3@elsewhere"), None);
    }

    #[test]
    fn a_request_parses_and_a_reply_copies_its_record_route() {
        let local: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let ids = Ids {
            run: 1,
            slot: 2,
            generation: 3,
        };
        let mut b = Vec::new();
        Request {
            method: "INVITE",
            ruri: b"sip:service@127.0.0.1:5070",
            local,
            ids,
            seq: 0,
            from_uri: b"sip:bench@127.0.0.1",
            to_uri: b"sip:service@127.0.0.1:5070",
            to_tag: None,
            cseq: 1,
            extra: b"Record-Route: <sip:10.0.0.1;lr>\r\nContact: <sip:bench@127.0.0.1:4000>\r\n",
            tcp: false,
        }
        .write(&mut b);
        let m = Message::parse(&b).unwrap();
        assert_eq!(m.cseq().unwrap().number, 1);
        assert_eq!(Ids::from_call_id(m.call_id().unwrap()), Some(ids));
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        write_uas_reply(&m, 200, b"u2", Some((local, false)), &mut scratch, &mut out);
        let r = Message::parse(&out).unwrap();
        assert_eq!(r.status(), Some(200));
        assert_eq!(r.to().unwrap().tag, Some(&b"u2"[..]));
        let mut routes = Vec::new();
        route_set(&r, &mut routes);
        assert_eq!(routes, b"Route: <sip:10.0.0.1;lr>\r\n");
    }
}

#[cfg(test)]
mod transport_tests {
    use super::*;

    #[test]
    fn over_tcp_the_via_and_the_uas_contact_say_so() {
        let req = Request {
            method: "INVITE",
            ruri: b"sip:service@127.0.0.1:5070",
            local: "127.0.0.1:4000".parse().unwrap(),
            ids: Ids {
                run: 1,
                slot: 2,
                generation: 3,
            },
            seq: 0,
            from_uri: b"sip:bench@rser-bench",
            to_uri: b"sip:service@rser-bench",
            to_tag: None,
            cseq: 1,
            extra: b"",
            tcp: true,
        };
        let mut out = Vec::new();
        req.write(&mut out);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("Via: SIP/2.0/TCP 127.0.0.1:4000;"), "{text}");
        let msg = Message::parse(&out).unwrap();
        let (mut scratch, mut reply) = (Vec::new(), Vec::new());
        let uas = "127.0.0.1:5070".parse().unwrap();
        write_uas_reply(&msg, 200, b"t", Some((uas, true)), &mut scratch, &mut reply);
        let reply = String::from_utf8(reply).unwrap();
        assert!(
            reply.contains("Contact: <sip:uas@127.0.0.1:5070;transport=tcp>"),
            "{reply}"
        );
    }
}
