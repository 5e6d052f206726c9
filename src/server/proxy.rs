//! Stateless proxying (RFC 3261 §16.6, §16.11, §18): a request goes on with
//! our Via on top, `received`/`rport` on the sender's Via, Max-Forwards
//! decremented, the script's Request-URI and text edits, and our
//! Record-Route when the script asked for it; a reply comes back, loses our
//! Via, and goes to the next one.

use std::net::{IpAddr, SocketAddr};

use arrayvec::ArrayString;
use xxhash_rust::xxh3::Xxh3;

use crate::modules::rr;
use crate::script::MsgCtx;
use crate::sip::build::{BuildError, Edits};
use crate::sip::text;
use crate::sip::{HeaderKind, Host, Message, Rport, Span, Via};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardError {
    /// Max-Forwards is 0 (RFC 3261 §16.3 step 3: 483 is the script's to send).
    MaxForwardsExhausted,
    Build(BuildError),
}

impl std::fmt::Display for ForwardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForwardError::MaxForwardsExhausted => f.write_str("Max-Forwards is 0"),
            ForwardError::Build(e) => write!(f, "cannot build the request: {e}"),
        }
    }
}

impl From<BuildError> for ForwardError {
    fn from(e: BuildError) -> Self {
        ForwardError::Build(e)
    }
}

/// The branch of a statelessly forwarded request: the same for every
/// retransmission, and for the ACK and CANCEL of an INVITE, because it is
/// a hash of what they share (RFC 3261 §16.11): the received top Via's
/// branch when it has the magic cookie, else the transaction's other
/// identifiers; and the Request-URI sent.
pub fn branch(ctx: &MsgCtx<'_, '_>) -> ArrayString<18> {
    branch_with(ctx, "sl")
}

/// The top Via branch of a copy `t_replicate()` sends: its replies are
/// the replica's, absorbed (tm), not routed to the caller.
pub const REPLICA_BRANCH: &[u8] = b"z9hG4bKrp";

fn branch_with(ctx: &MsgCtx<'_, '_>, kind: &str) -> ArrayString<18> {
    let msg = ctx.msg;
    let mut h = Xxh3::new();
    match msg.top_via() {
        Ok(v)
            if v.branch
                .is_some_and(|b| b.starts_with(crate::sip::via::BRANCH_COOKIE)) =>
        {
            h.update(v.branch.unwrap_or_default());
            h.update(v.host_raw);
        }
        _ => {
            h.update(msg.call_id().unwrap_or_default());
            h.update(msg.from().ok().and_then(|f| f.tag).unwrap_or_default());
            h.update(&msg.cseq().map_or(0, |c| c.number).to_le_bytes());
        }
    }
    h.update(b"\0");
    h.update(ctx.uri());
    let mut s = ArrayString::new();
    let _ = s.try_push_str(kind);
    let _ = s.try_push_str(text::ascii(text::hex(h.digest(), 16, &mut [0; 16])));
    s
}

/// Writes the request to forward into `out`. `via` is the address we send
/// from, which our Record-Route and, with `stateless_via`, a new top Via
/// name. tm stores the request without that Via and adds one per branch.
pub fn build_request(
    ctx: &MsgCtx<'_, '_>,
    via: SocketAddr,
    transport: &[u8],
    stateless_via: bool,
    out: &mut Vec<u8>,
) -> Result<(), ForwardError> {
    build(ctx, via, transport, stateless_via.then_some("sl"), out)
}

/// `text` (a request as built) with a Route header field carrying `route`
/// (a name-addr) ahead of its Route set, into `out` after what it holds:
/// the branch of a binding with a path (RFC 3327 §5.3: the path becomes
/// the request's first Route values). Where the message has no Route, it
/// goes right after the request line.
pub fn with_route(text: &[u8], route: &[u8], out: &mut Vec<u8>) -> Result<(), BuildError> {
    let msg =
        Message::parse(text).map_err(|_| BuildError::Missing("a request to add a Route to"))?;
    let at = match msg.first(HeaderKind::Route) {
        Some(h) => h.line.range().start,
        None => {
            let eol = text
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or(BuildError::Missing("a request line"))?;
            eol + 2
        }
    };
    out.reserve(text.len() + route.len() + 9);
    out.extend_from_slice(&text[..at]);
    out.extend_from_slice(b"Route: ");
    out.extend_from_slice(route);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&text[at..]);
    Ok(())
}

/// The copy `t_replicate()` sends: the request as forwarded, its Via's
/// branch marked as a replica's ([`REPLICA_BRANCH`]).
pub fn build_replica(
    ctx: &MsgCtx<'_, '_>,
    via: SocketAddr,
    transport: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ForwardError> {
    build(ctx, via, transport, Some("rp"), out)
}

fn build(
    ctx: &MsgCtx<'_, '_>,
    via: SocketAddr,
    transport: &[u8],
    branch_kind: Option<&str>,
    out: &mut Vec<u8>,
) -> Result<(), ForwardError> {
    let msg = ctx.msg;
    let mut mf_digits = [0u8; 10];
    let mut e = Edits::new(msg);
    if ctx.uri_rewritten() {
        e.set_request_uri(ctx.uri())?;
    }
    e.via_received_forced(ctx.src.ip(), ctx.src.port(), ctx.st.force_rport)?;
    match msg.first(HeaderKind::MaxForwards) {
        Some(h) => {
            let v = msg
                .max_forwards()
                .ok()
                .flatten()
                .ok_or(BuildError::Missing("valid Max-Forwards"))?;
            if v == 0 {
                return Err(ForwardError::MaxForwardsExhausted);
            }
            let next = (v - 1).min(ctx.st.max_forwards_cap.unwrap_or(u8::MAX));
            e.replace(h.value, text::decimal(u32::from(next), &mut mf_digits))?;
        }
        None => e.max_forwards(ctx.st.max_forwards_insert.unwrap_or(70))?,
    }
    script_edits(ctx, via, transport, &mut e)?;
    let mut host = [0; text::IP_TEXT];
    let host = text::ip(via.ip(), true, &mut host);
    if let Some(kind) = branch_kind {
        let b = branch_with(ctx, kind);
        e.push_via(transport, host, Some(via.port()), b.as_bytes())?;
    }
    e.write(out)?;
    Ok(())
}

/// Writes a request tm already holds with the text edits of the route
/// now running on it (branch_route, failure_route) and its Record-Route
/// if that route asked for one: the other §16.6 steps were done when the
/// request was first relayed.
pub fn build_edited(
    ctx: &MsgCtx<'_, '_>,
    via: SocketAddr,
    transport: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), BuildError> {
    let mut e = Edits::new(ctx.msg);
    script_edits(ctx, via, transport, &mut e)?;
    e.write(out)
}

/// The script's text edits, and our Record-Route (§16.6 step 4) if it
/// called `record_route()`.
fn script_edits<'c>(
    ctx: &'c MsgCtx<'_, '_>,
    via: SocketAddr,
    transport: &[u8],
    e: &mut Edits<'_, '_, 'c>,
) -> Result<(), BuildError> {
    for t in &ctx.st.edits {
        e.replace(Span::new(t.start, t.end), &t.text)?;
    }
    if ctx.st.record_route {
        // Leaving by another interface or transport than it came: two
        // entries (Kamailio's `enable_double_rr`), the one facing the next
        // hop on top, so each side's in-dialog requests reach the socket
        // that faces it; `loose_route()` removes both.
        let inbound = ctx.proto.via_name();
        let double = ctx.dst != via || !inbound.eq_ignore_ascii_case(transport);
        let uri = rr::record_route_uri(via, transport, double).ok_or(BuildError::ScratchFull)?;
        e.add_record_route(uri.as_bytes())?;
        if double {
            let uri =
                rr::record_route_uri(ctx.dst, inbound, true).ok_or(BuildError::ScratchFull)?;
            e.add_record_route(uri.as_bytes())?;
        }
    }
    Ok(())
}

/// Where a reply goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop<'a> {
    Addr(SocketAddr),
    /// A sent-by name to resolve.
    Name(&'a [u8], u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyError {
    /// The top Via is not one of our addresses (RFC 3261 §16.7 step 3's
    /// "the response was not for us": drop it).
    NotOurs,
    /// No second Via: nowhere to send it.
    NoNextHop,
    BadVia,
}

/// Whether a Via's sent-by is one of our sockets.
fn via_is_ours(v: &Via<'_>, ours: &[SocketAddr]) -> bool {
    let port = v.port.unwrap_or(5060);
    let ip = match v.host {
        Host::V4(a) => IpAddr::V4(a),
        Host::V6(a) => IpAddr::V6(a),
        _ => return false,
    };
    ours.iter().any(|a| a.ip() == ip && a.port() == port)
}

/// Checks a reply is ours and finds the next hop (RFC 3261 §18.2.2 for the
/// Via it goes to: `received` and RFC 3581's `rport` override sent-by).
pub fn reply_next_hop<'b>(
    reply: &Message<'b>,
    ours: &[SocketAddr],
) -> Result<(NextHop<'b>, crate::cfg::settings::Proto), ReplyError> {
    let top = reply.top_via().map_err(|_| ReplyError::BadVia)?;
    if !via_is_ours(top, ours) {
        return Err(ReplyError::NotOurs);
    }
    let next = reply
        .via_at(1)
        .ok_or(ReplyError::NoNextHop)?
        .map_err(|_| ReplyError::BadVia)?;
    let port = match next.rport {
        Rport::Value(p) => p,
        _ => next.port.unwrap_or(5060),
    };
    let ip = match next.received.map(std::str::from_utf8) {
        Some(Ok(r)) => r.parse::<IpAddr>().ok(),
        _ => None,
    };
    let hop = match (ip, next.host) {
        (Some(ip), _) => NextHop::Addr(SocketAddr::new(ip, port)),
        (None, Host::V4(a)) => NextHop::Addr(SocketAddr::new(IpAddr::V4(a), port)),
        (None, Host::V6(a)) => NextHop::Addr(SocketAddr::new(IpAddr::V6(a), port)),
        (None, Host::Name(n)) => NextHop::Name(n, port),
        (None, Host::None) => return Err(ReplyError::BadVia),
    };
    Ok((hop, reply_transport(&next)))
}

/// The transport a reply goes on: the one the next Via names (UDP if it
/// names another or none).
fn reply_transport(next: &Via<'_>) -> crate::cfg::settings::Proto {
    use crate::cfg::settings::Proto;
    match next.transport {
        t if t.eq_ignore_ascii_case(b"TCP") => Proto::Tcp,
        t if t.eq_ignore_ascii_case(b"TLS") => Proto::Tls,
        _ => Proto::Udp,
    }
}

/// Writes the reply without its top Via.
pub fn build_reply_forward(reply: &Message<'_>, out: &mut Vec<u8>) -> Result<(), BuildError> {
    let mut e = Edits::new(reply);
    e.remove_top_via()?;
    e.write(out)
}

#[cfg(test)]
mod tests {
    use super::with_route;

    const INVITE: &str = "INVITE sip:bob@10.0.0.9 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1\r\n\
        Max-Forwards: 70\r\n\
        To: <sip:bob@example.com>\r\n\
        From: <sip:alice@example.com>;tag=1\r\n\
        Call-ID: c1\r\n\
        CSeq: 1 INVITE\r\n\
        Content-Length: 0\r\n\r\n";

    fn routes(text: &[u8]) -> Vec<String> {
        let m = crate::sip::Message::parse(text).unwrap();
        m.routes()
            .map(|r| String::from_utf8_lossy(r.unwrap().addr_spec).into_owned())
            .collect()
    }

    #[test]
    fn a_path_becomes_the_first_route() {
        let mut out = b"kept".to_vec();
        with_route(INVITE.as_bytes(), b"<sip:10.0.0.2:5060;lr>", &mut out).unwrap();
        assert!(out.starts_with(
            b"keptINVITE sip:bob@10.0.0.9 SIP/2.0\r\nRoute: <sip:10.0.0.2:5060;lr>\r\n"
        ));
        assert_eq!(routes(&out[4..]), ["sip:10.0.0.2:5060;lr"]);
        // Ahead of a Route set already there.
        let routed = INVITE.replace(
            "Max-Forwards",
            "Route: <sip:p1;lr>, <sip:p2;lr>\r\nMax-Forwards",
        );
        let mut out = Vec::new();
        with_route(routed.as_bytes(), b"<sip:10.0.0.2;lr>", &mut out).unwrap();
        assert_eq!(routes(&out), ["sip:10.0.0.2;lr", "sip:p1;lr", "sip:p2;lr"]);
        assert!(with_route(b"not SIP", b"<sip:x;lr>", &mut out).is_err());
    }
}
