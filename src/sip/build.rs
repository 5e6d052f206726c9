//! Writing messages without reparsing: replies built from a request's
//! index (RFC 3261 §8.2.6), and the edits a proxy makes to a request or a
//! reply (RFC 3261 §16.6, §16.7, §18.2.1; RFC 3581), applied in one copy.
//!
//! Output goes to a caller-owned `Vec<u8>`, cleared and reused per
//! message, so the packet path allocates only until its capacity settles.

use std::fmt;
use std::net::IpAddr;

use arrayvec::ArrayVec;

use super::Span;
use super::header::{Header, HeaderKind};
use super::limits::{EDIT_SCRATCH, MAX_EDITS};
use super::message::Message;
use super::text;
use super::uri::Host;
use super::via::{BRANCH_COOKIE, Rport};

/// Why a set of edits could not be recorded or applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildError {
    /// More than [`MAX_EDITS`] edits.
    TooManyEdits,
    /// Formatted text exceeded [`EDIT_SCRATCH`] bytes.
    ScratchFull,
    /// Two edits replace overlapping ranges.
    Overlap,
    /// The message lacks what the edit needs (e.g. a Via to remove).
    Missing(&'static str),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::TooManyEdits => f.write_str("too many edits"),
            BuildError::ScratchFull => f.write_str("edit scratch space full"),
            BuildError::Overlap => f.write_str("overlapping edits"),
            BuildError::Missing(what) => write!(f, "message has no {what}"),
        }
    }
}

impl std::error::Error for BuildError {}

pub use super::text::decimal;

/// Appends a decimal number.
pub fn push_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(decimal(n, &mut [0; 10]));
}

/// What recording the source in the top Via adds, and where.
#[derive(Debug, Clone, Copy)]
enum ViaAddition {
    /// `=port` after a bare `rport` (RFC 3581 §4).
    RportValue(u16),
    /// `;received=ip` at the end of the value (RFC 3261 §18.2.1).
    Received(IpAddr),
    /// `;rport=port` at the end of the value, for a sender that did not
    /// ask (`force_rport()`).
    RportParam(u16),
}

/// Where `received`/`rport` go in `msg`'s top Via, in offset order:
/// `received` when the sent-by host is not the source address, and with
/// `rport` asked for, the source port and `received` always.
fn received_additions(
    msg: &Message<'_>,
    src_ip: IpAddr,
    src_port: u16,
    force_rport: bool,
) -> Result<ArrayVec<(usize, ViaAddition), 2>, BuildError> {
    let h = msg
        .first(HeaderKind::Via)
        .ok_or(BuildError::Missing("Via"))?;
    let via = msg
        .top_via()
        .map_err(|_| BuildError::Missing("valid Via"))?;
    let same_host = match via.host {
        Host::V4(a) => IpAddr::V4(a) == src_ip,
        Host::V6(a) => IpAddr::V6(a) == src_ip,
        _ => false,
    };
    let rport_at = match via.rport {
        Rport::Requested => via.rport_name.map(|n| Span::of(msg.buf(), n)),
        _ => None,
    };
    let mut out = ArrayVec::new();
    if force_rport && via.rport == Rport::Absent {
        // Both at the value's end, in this order (§4: with rport,
        // received always).
        out.push((h.value.end as usize, ViaAddition::RportParam(src_port)));
        out.push((h.value.end as usize, ViaAddition::Received(src_ip)));
        return Ok(out);
    }
    if same_host && rport_at.is_none() {
        return Ok(out);
    }
    if let Some(span) = rport_at {
        out.push((span.end as usize, ViaAddition::RportValue(src_port)));
    }
    out.push((h.value.end as usize, ViaAddition::Received(src_ip)));
    Ok(out)
}

/// Writes a reply to `req` into `out` (cleared first): the status line, every
/// Via, From, To (with `to_tag` added when the request's To has none),
/// Call-ID, CSeq, then `extra_headers` (complete lines, each ending in CRLF),
/// Content-Length and `body` (RFC 3261 §8.2.6.2). With `src`, the request's
/// source is recorded in the top Via as a server must (`received`, and
/// `rport`'s value: RFC 3261 §18.2.1, RFC 3581 §4).
#[allow(clippy::too_many_arguments)]
pub fn write_reply(
    req: &Message<'_>,
    code: u16,
    reason: &[u8],
    to_tag: Option<&[u8]>,
    src: Option<std::net::SocketAddr>,
    extra_headers: &[u8],
    body: &[u8],
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(b"SIP/2.0 ");
    push_u32(out, u32::from(code));
    out.push(b' ');
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
    let buf = req.buf();
    let additions = src
        .and_then(|a| received_additions(req, a.ip(), a.port(), false).ok())
        .unwrap_or_default();
    let mut last_line = None;
    let mut top_via = true;
    for h in req.headers() {
        let copy = matches!(
            h.kind,
            HeaderKind::Via | HeaderKind::From | HeaderKind::CallId | HeaderKind::CSeq
        );
        // Values sharing a line share its span: copy the line once.
        if copy && last_line != Some(h.line) {
            if h.kind == HeaderKind::Via && std::mem::take(&mut top_via) {
                write_with_additions(buf, h.line, &additions, out);
            } else {
                out.extend_from_slice(&buf[h.line.range()]);
            }
            last_line = Some(h.line);
        } else if h.kind == HeaderKind::To && last_line != Some(h.line) {
            last_line = Some(h.line);
            let has_tag = to_has_tag(req, h);
            match to_tag {
                Some(tag) if !has_tag => {
                    out.extend_from_slice(&buf[h.line.start as usize..h.value.end as usize]);
                    out.extend_from_slice(b";tag=");
                    out.extend_from_slice(tag);
                    out.extend_from_slice(&buf[h.value.end as usize..h.line.end as usize]);
                }
                _ => out.extend_from_slice(&buf[h.line.range()]),
            }
        }
    }
    out.extend_from_slice(extra_headers);
    out.extend_from_slice(b"Content-Length: ");
    push_u32(out, body.len() as u32);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// Copies `line` with the additions inserted at their offsets.
fn write_with_additions(
    buf: &[u8],
    line: Span,
    additions: &[(usize, ViaAddition)],
    out: &mut Vec<u8>,
) {
    let mut at = line.start as usize;
    for &(pos, add) in additions {
        out.extend_from_slice(&buf[at..pos]);
        match add {
            ViaAddition::RportValue(port) => {
                out.push(b'=');
                push_u32(out, u32::from(port));
            }
            ViaAddition::Received(ip) => {
                out.extend_from_slice(b";received=");
                out.extend_from_slice(text::ip(ip, false, &mut [0; text::IP_TEXT]));
            }
            ViaAddition::RportParam(port) => {
                out.extend_from_slice(b";rport=");
                push_u32(out, u32::from(port));
            }
        }
        at = pos;
    }
    out.extend_from_slice(&buf[at..line.end as usize]);
}

/// Whether a To value already carries a tag; the first To is the cached one.
fn to_has_tag(req: &Message<'_>, h: &Header) -> bool {
    match req.first(HeaderKind::To) {
        Some(first) if first == h => req.to().is_ok_and(|t| t.tag.is_some()),
        _ => super::name_addr::NameAddr::parse(req.value(h)).is_ok_and(|t| t.tag.is_some()),
    }
}

#[derive(Debug, Clone, Copy)]
enum Piece<'e> {
    Borrowed(&'e [u8]),
    Scratch(u16, u16),
}

#[derive(Debug, Clone, Copy)]
struct Edit<'e> {
    /// Replaced range; empty for an insertion at `span.start`.
    span: Span,
    piece: Piece<'e>,
}

/// The edits a proxy makes to one received message, applied in one copy by
/// [`Edits::write`]. Insertions at one position keep their order.
pub struct Edits<'m, 'a, 'e> {
    msg: &'m Message<'a>,
    edits: ArrayVec<Edit<'e>, MAX_EDITS>,
    scratch: ArrayVec<u8, EDIT_SCRATCH>,
}

impl<'m, 'a, 'e> Edits<'m, 'a, 'e> {
    pub fn new(msg: &'m Message<'a>) -> Self {
        Edits {
            msg,
            edits: ArrayVec::new(),
            scratch: ArrayVec::new(),
        }
    }

    fn push(&mut self, span: Span, piece: Piece<'e>) -> Result<(), BuildError> {
        self.edits
            .try_push(Edit { span, piece })
            .map_err(|_| BuildError::TooManyEdits)
    }

    /// Replaces a range of the message with `bytes`.
    pub fn replace(&mut self, span: Span, bytes: &'e [u8]) -> Result<(), BuildError> {
        self.push(span, Piece::Borrowed(bytes))
    }

    /// Inserts `bytes` at an offset.
    pub fn insert(&mut self, at: usize, bytes: &'e [u8]) -> Result<(), BuildError> {
        self.push(Span::new(at, at), Piece::Borrowed(bytes))
    }

    /// Inserts text formatted into the scratch area by `f`.
    fn insert_formatted(
        &mut self,
        span: Span,
        f: impl FnOnce(&mut ArrayVec<u8, EDIT_SCRATCH>) -> Option<()>,
    ) -> Result<(), BuildError> {
        let start = self.scratch.len();
        if f(&mut self.scratch).is_none() {
            self.scratch.truncate(start);
            return Err(BuildError::ScratchFull);
        }
        let end = self.scratch.len();
        self.push(span, Piece::Scratch(start as u16, end as u16))
    }

    /// Removes a whole header line.
    pub fn remove_line(&mut self, h: &Header) -> Result<(), BuildError> {
        self.push(h.line, Piece::Borrowed(b""))
    }

    /// Replaces the Request-URI (RFC 3261 §16.6 step 2).
    pub fn set_request_uri(&mut self, uri: &'e [u8]) -> Result<(), BuildError> {
        let span = self
            .msg
            .request_uri_span()
            .ok_or(BuildError::Missing("Request-URI"))?;
        self.replace(span, uri)
    }

    /// Adds a Via on top, `SIP/2.0/{transport} {host}[:{port}];branch=z9hG4bK{branch}`
    /// (RFC 3261 §16.6 step 8), as a line of its own before the first Via.
    pub fn push_via(
        &mut self,
        transport: &[u8],
        host: &[u8],
        port: Option<u16>,
        branch: &[u8],
    ) -> Result<(), BuildError> {
        let at = self
            .msg
            .first(HeaderKind::Via)
            .map_or(self.msg.headers_end(), |h| h.line.start as usize);
        self.insert_formatted(Span::new(at, at), |s| {
            put(s, b"Via: SIP/2.0/")?;
            put(s, transport)?;
            put(s, b" ")?;
            put(s, host)?;
            if let Some(p) = port {
                put(s, b":")?;
                put_u32(s, u32::from(p))?;
            }
            put(s, b";branch=")?;
            put(s, BRANCH_COOKIE)?;
            put(s, branch)?;
            put(s, b"\r\n")
        })
    }

    /// Records where a request came from in its top Via: `received` when
    /// the sent-by host is not the source address (RFC 3261 §18.2.1), and
    /// with `rport` asked for, the source port and `received` always
    /// (RFC 3581 §4).
    pub fn via_received(&mut self, src_ip: IpAddr, src_port: u16) -> Result<(), BuildError> {
        self.via_received_forced(src_ip, src_port, false)
    }

    /// [`Edits::via_received`], with `rport` added when the sender did not
    /// ask for it but the script forced it (`force_rport()`).
    pub fn via_received_forced(
        &mut self,
        src_ip: IpAddr,
        src_port: u16,
        force_rport: bool,
    ) -> Result<(), BuildError> {
        for (at, add) in received_additions(self.msg, src_ip, src_port, force_rport)? {
            self.insert_formatted(Span::new(at, at), |s| match add {
                ViaAddition::RportValue(port) => {
                    put(s, b"=")?;
                    put_u32(s, u32::from(port))
                }
                ViaAddition::Received(ip) => {
                    put(s, b";received=")?;
                    put_ip(s, ip)
                }
                ViaAddition::RportParam(port) => {
                    put(s, b";rport=")?;
                    put_u32(s, u32::from(port))
                }
            })?;
        }
        Ok(())
    }

    /// Decrements Max-Forwards, or inserts it with `initial` when absent
    /// (RFC 3261 §16.6 step 3). The caller has checked it is above zero.
    pub fn max_forwards(&mut self, initial: u8) -> Result<(), BuildError> {
        match self.msg.first(HeaderKind::MaxForwards) {
            Some(h) => {
                let v = self
                    .msg
                    .max_forwards()
                    .ok()
                    .flatten()
                    .ok_or(BuildError::Missing("valid Max-Forwards"))?;
                let value = h.value;
                self.insert_formatted(value, |s| put_u32(s, u32::from(v.saturating_sub(1))))
            }
            None => {
                let at = self.first_header_start();
                self.insert_formatted(Span::new(at, at), |s| {
                    put(s, b"Max-Forwards: ")?;
                    put_u32(s, u32::from(initial))?;
                    put(s, b"\r\n")
                })
            }
        }
    }

    /// Adds `Record-Route: <{uri}>` as a line of its own before any
    /// existing Record-Route value (RFC 3261 §16.6 step 4: ours goes on
    /// top), or, with none, after the Via lines. `uri` should carry `;lr`.
    pub fn add_record_route(&mut self, uri: &[u8]) -> Result<(), BuildError> {
        let at = match self.msg.first(HeaderKind::RecordRoute) {
            Some(h) => h.line.start as usize,
            None => self.after_vias(),
        };
        self.insert_formatted(Span::new(at, at), |s| {
            put(s, b"Record-Route: <")?;
            put(s, uri)?;
            put(s, b">\r\n")
        })
    }

    /// Removes the first Route value (RFC 3261 §16.4, §16.12): its line when
    /// it stands alone, otherwise the value and its comma.
    pub fn remove_first_route(&mut self) -> Result<(), BuildError> {
        self.remove_first_value(HeaderKind::Route, "Route")
    }

    /// Removes the top Via of a reply before forwarding it (RFC 3261 §16.7 step 3).
    pub fn remove_top_via(&mut self) -> Result<(), BuildError> {
        self.remove_first_value(HeaderKind::Via, "Via")
    }

    fn remove_first_value(
        &mut self,
        kind: HeaderKind,
        what: &'static str,
    ) -> Result<(), BuildError> {
        let mut entries = self.msg.all(kind);
        let first = *entries.next().ok_or(BuildError::Missing(what))?;
        match entries.next() {
            Some(next) if next.line == first.line => self.push(
                Span::new(first.value.start as usize, next.value.start as usize),
                Piece::Borrowed(b""),
            ),
            _ => self.remove_line(&first),
        }
    }

    fn first_header_start(&self) -> usize {
        self.msg.start_line_span().end as usize
    }

    /// The end of the last Via line, or the first header's start without one.
    fn after_vias(&self) -> usize {
        self.msg
            .all(HeaderKind::Via)
            .last()
            .map_or(self.first_header_start(), |h| h.line.end as usize)
    }

    /// Writes the edited message into `out` (cleared first).
    pub fn write(&mut self, out: &mut Vec<u8>) -> Result<(), BuildError> {
        // Stable: insertions at one offset keep the order they were made in.
        self.edits.sort_by_key(|e| (e.span.start, e.span.end));
        let buf = self.msg.buf();
        out.clear();
        let mut pos = 0usize;
        for e in &self.edits {
            let (start, end) = (e.span.start as usize, e.span.end as usize);
            if start < pos {
                return Err(BuildError::Overlap);
            }
            out.extend_from_slice(&buf[pos..start]);
            match e.piece {
                Piece::Borrowed(b) => out.extend_from_slice(b),
                Piece::Scratch(s, t) => {
                    out.extend_from_slice(&self.scratch[s as usize..t as usize])
                }
            }
            pos = end;
        }
        // The datagram may hold bytes past the body (discarded, §18.3).
        let end = self.msg.body_span().end as usize;
        out.extend_from_slice(&buf[pos.min(end)..end]);
        Ok(())
    }
}

fn put(s: &mut ArrayVec<u8, EDIT_SCRATCH>, bytes: &[u8]) -> Option<()> {
    s.try_extend_from_slice(bytes).ok()
}

fn put_u32(s: &mut ArrayVec<u8, EDIT_SCRATCH>, n: u32) -> Option<()> {
    put(s, decimal(n, &mut [0; 10]))
}

fn put_ip(s: &mut ArrayVec<u8, EDIT_SCRATCH>, ip: IpAddr) -> Option<()> {
    put(s, text::ip(ip, false, &mut [0; text::IP_TEXT]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Rport;

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnashds8;rport, SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK1\r\n\
Via: SIP/2.0/UDP pc.example.com;branch=z9hG4bK2\r\n\
Max-Forwards: 70\r\n\
Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Route: <sip:p3.example.com;lr>\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\r\nTRAILING";

    #[test]
    fn reply_copies_vias_and_adds_a_to_tag() {
        let req = Message::parse(INVITE).unwrap();
        let mut out = Vec::new();
        write_reply(
            &req,
            486,
            b"Busy Here",
            Some(b"abc"),
            None,
            b"Server: rser\r\n",
            b"",
            &mut out,
        );
        let rep = Message::parse(&out).unwrap();
        assert_eq!(rep.status(), Some(486));
        assert_eq!(rep.reason(), b"Busy Here");
        assert_eq!(rep.via_count(), 3);
        assert_eq!(rep.to().unwrap().tag, Some(&b"abc"[..]));
        assert_eq!(rep.from().unwrap().tag, Some(&b"1928301774"[..]));
        assert_eq!(rep.call_id(), Ok(&b"a84b4c76e66710"[..]));
        assert_eq!(rep.cseq().unwrap().number, 314159);
        assert_eq!(rep.content_length(), Some(0));
        assert_eq!(rep.named(b"server").count(), 1);
        assert!(rep.first(HeaderKind::Route).is_none());
        rep.validate().unwrap();
    }

    #[test]
    fn reply_keeps_an_existing_to_tag() {
        let req = Message::parse(
            b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nTo: <sip:a@b>;tag=keep\r\nFrom: <sip:c@d>;tag=f\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n\r\n",
        )
        .unwrap();
        let mut out = Vec::new();
        write_reply(&req, 200, b"OK", Some(b"new"), None, b"", b"body", &mut out);
        let rep = Message::parse(&out).unwrap();
        assert_eq!(rep.to().unwrap().tag, Some(&b"keep"[..]));
        assert_eq!(rep.body(), b"body");
    }

    #[test]
    fn proxy_edits_a_request_in_one_copy() {
        let req = Message::parse(INVITE).unwrap();
        let mut e = Edits::new(&req);
        e.set_request_uri(b"sip:bob@192.0.2.99:5070").unwrap();
        e.via_received("198.51.100.7".parse().unwrap(), 40000)
            .unwrap();
        e.push_via(b"UDP", b"proxy.example.net", Some(5060), b"deadbeef")
            .unwrap();
        e.max_forwards(70).unwrap();
        e.add_record_route(b"sip:proxy.example.net;lr").unwrap();
        e.remove_first_route().unwrap();
        let mut out = Vec::new();
        e.write(&mut out).unwrap();
        let m = Message::parse(&out).unwrap();
        m.validate().unwrap();
        assert_eq!(m.request_uri_raw(), b"sip:bob@192.0.2.99:5070");
        let vias: Vec<_> = m.vias().map(|v| v.unwrap()).collect();
        assert_eq!(vias.len(), 4);
        assert_eq!(vias[0].branch, Some(&b"z9hG4bKdeadbeef"[..]));
        assert_eq!(vias[0].port, Some(5060));
        assert_eq!(vias[1].received, Some(&b"198.51.100.7"[..]));
        assert_eq!(vias[1].rport, Rport::Value(40000));
        assert_eq!(vias[2].received, None);
        assert_eq!(m.max_forwards(), Ok(Some(69)));
        let rr: Vec<_> = m.record_routes().map(|r| r.unwrap().addr_spec).collect();
        assert_eq!(rr, vec![&b"sip:proxy.example.net;lr"[..]]);
        let routes: Vec<_> = m.routes().map(|r| r.unwrap().addr_spec).collect();
        assert_eq!(
            routes,
            vec![&b"sip:p2.example.com;lr"[..], b"sip:p3.example.com;lr"]
        );
        assert_eq!(m.body(), b"v=0\r");
        assert!(!out.ends_with(b"TRAILING"));
    }

    #[test]
    fn received_is_added_only_when_the_host_differs() {
        let req = Message::parse(
            b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa\r\nl: 0\r\n\r\n",
        )
        .unwrap();
        let mut out = Vec::new();
        let mut e = Edits::new(&req);
        e.via_received("10.0.0.1".parse().unwrap(), 5060).unwrap();
        e.max_forwards(70).unwrap();
        e.write(&mut out).unwrap();
        let m = Message::parse(&out).unwrap();
        assert_eq!(m.top_via().unwrap().received, None);
        assert_eq!(m.max_forwards(), Ok(Some(70)));
        let mut e = Edits::new(&req);
        e.via_received("2001:db8::1".parse().unwrap(), 5060)
            .unwrap();
        e.write(&mut out).unwrap();
        let m = Message::parse(&out).unwrap();
        assert_eq!(m.top_via().unwrap().received, Some(&b"2001:db8::1"[..]));
    }

    #[test]
    fn reply_loses_its_top_via() {
        for text in [
            &b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP me;branch=z9hG4bKa, SIP/2.0/UDP you;branch=z9hG4bKb\r\nl: 0\r\n\r\n"[..],
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP me;branch=z9hG4bKa\r\nv: SIP/2.0/UDP you;branch=z9hG4bKb\r\nl: 0\r\n\r\n",
        ] {
            let rep = Message::parse(text).unwrap();
            let mut e = Edits::new(&rep);
            e.remove_top_via().unwrap();
            let mut out = Vec::new();
            e.write(&mut out).unwrap();
            let m = Message::parse(&out).unwrap();
            assert_eq!(m.via_count(), 1);
            assert_eq!(m.top_via().unwrap().host_raw, b"you");
        }
    }

    #[test]
    fn overlapping_edits_are_refused() {
        let req = Message::parse(INVITE).unwrap();
        let mut e = Edits::new(&req);
        let span = req.request_uri_span().unwrap();
        e.replace(span, b"sip:a").unwrap();
        e.replace(Span::new(span.start as usize + 1, span.end as usize), b"x")
            .unwrap();
        assert_eq!(e.write(&mut Vec::new()), Err(BuildError::Overlap));
    }

    #[test]
    fn replies_record_the_source_in_the_top_via() {
        let req = b"OPTIONS sip:b@h SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK1, SIP/2.0/UDP p2\r\n\
Via: SIP/2.0/UDP p3\r\n\
To: <sip:b@h>\r\nFrom: <sip:a@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let req = Message::parse(req).unwrap();
        let mut out = Vec::new();
        let src = "192.0.2.7:4000".parse().ok();
        write_reply(&req, 200, b"OK", Some(b"t"), src, b"", b"", &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                "Via: SIP/2.0/UDP 10.0.0.1:5060;rport=4000;branch=z9hG4bK1;received=192.0.2.7, SIP/2.0/UDP p2\r\n"
            ),
            "{text}"
        );
        assert!(text.contains("Via: SIP/2.0/UDP p3\r\n"), "{text}");
        Message::parse(text.as_bytes()).unwrap();
    }
}
