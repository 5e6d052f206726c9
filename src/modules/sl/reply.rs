//! Building a stateless reply and choosing where it goes.

use std::net::SocketAddr;

use crate::sip::build::write_reply;
use crate::sip::{Message, Rport};

use super::signature::Signature;

/// Writes the reply to `req`, received from `src`, into `out`. A request without a to-tag gets
/// our signed one (none for 100, RFC 3261 §8.2.6.2); a 3xx lists
/// `contacts` (the destination set: the redirect server of the seed).
/// Returns whether the to-tag is ours (signed).
#[allow(clippy::too_many_arguments)]
pub fn build_reply<'c>(
    req: &Message<'_>,
    src: SocketAddr,
    code: u16,
    reason: &[u8],
    signature: &Signature,
    contacts: impl Iterator<Item = &'c [u8]>,
    extra: &[u8],
    headers: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> bool {
    headers.clear();
    if (300..400).contains(&code) {
        for uri in contacts {
            headers.extend_from_slice(b"Contact: <");
            headers.extend_from_slice(uri);
            headers.extend_from_slice(b">\r\n");
        }
    }
    headers.extend_from_slice(extra);
    let has_tag = req.to().is_ok_and(|t| t.tag.is_some());
    let tag = if has_tag || code == 100 {
        None
    } else {
        signature.to_tag(req)
    };
    write_reply(
        req,
        code,
        reason,
        tag.as_ref().map(|t| t.as_bytes()),
        Some(src),
        headers,
        b"",
        out,
    );
    tag.is_some()
}

/// Where a reply to `req` received from `src` goes over UDP (RFC 3261
/// §18.2.2): the source address (the `received` we would add); its port
/// when the client asked for `rport` (RFC 3581 §4), else the sent-by port.
pub fn reply_destination(req: &Message<'_>, src: SocketAddr) -> SocketAddr {
    reply_destination_forced(req, src, false)
}

/// [`reply_destination`]; with `force_rport` (the script's
/// `force_rport()`), the source port whatever the Via asked.
pub fn reply_destination_forced(
    req: &Message<'_>,
    src: SocketAddr,
    force_rport: bool,
) -> SocketAddr {
    if force_rport {
        return src;
    }
    match req.top_via() {
        Ok(v) if v.rport == Rport::Absent => SocketAddr::new(src.ip(), v.port.unwrap_or(5060)),
        _ => src,
    }
}
