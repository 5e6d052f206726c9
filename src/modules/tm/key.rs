//! How messages find their transaction.
//!
//! Requests: the server transaction key of RFC 3261 §17.2.3 (top Via
//! branch with the magic cookie, its sent-by, and the method, ACK counting
//! as INVITE), or the RFC 2543 fallback when the branch lacks the cookie.
//! The key is a 128-bit hash, so a slot keeps 16 bytes, not the strings.
//!
//! Replies: the branch we put in our Via names the bucket, slot,
//! generation and branch number, so a reply goes straight to its
//! transaction without hashing (as Kamailio does).

use arrayvec::{ArrayString, ArrayVec};
use xxhash_rust::xxh3::Xxh3;

use crate::sip::text;

use crate::sip::via::BRANCH_COOKIE;
use crate::sip::{Message, Method};

/// A server transaction key.
pub type Key = u128;

/// Which transaction a request belongs to. `as_invite` looks up the INVITE
/// a CANCEL cancels (same key, method INVITE: §9.2).
pub fn server_key(msg: &Message<'_>, as_invite: bool) -> Option<Key> {
    let via = msg.top_via().ok()?;
    let method = match msg.method()? {
        Method::Ack => Method::Invite,
        _ if as_invite => Method::Invite,
        m => m,
    };
    let mut h = Xxh3::new();
    match via.branch {
        Some(b) if b.starts_with(BRANCH_COOKIE) => {
            h.update(b"3261\0");
            h.update(b);
            h.update(b"\0");
            h.update(via.host_raw);
            h.update(&via.port.unwrap_or(0).to_le_bytes());
        }
        _ => {
            // §17.2.3's RFC 2543 rules without the To tag, which the ACK
            // has and the INVITE lacks.
            h.update(b"2543\0");
            h.update(msg.request_uri_raw());
            h.update(b"\0");
            h.update(msg.call_id().ok()?);
            h.update(b"\0");
            h.update(msg.from().ok()?.tag.unwrap_or_default());
            h.update(&msg.cseq().ok()?.number.to_le_bytes());
            h.update(via.host_raw);
            h.update(&via.port.unwrap_or(0).to_le_bytes());
            h.update(via.branch.unwrap_or_default());
        }
    }
    if method == Method::Other {
        h.update(msg.method_raw());
    } else {
        h.update(&[method as u8]);
    }
    Some(h.digest128())
}

/// Where a reply's transaction lives, from our branch parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BranchId {
    pub bucket: u32,
    pub slot: u32,
    pub generation: u32,
    pub branch: u8,
}

/// Marks our stateful branches (after the cookie), apart from the
/// stateless ones (`sl`).
const TAG: &str = "t";

impl BranchId {
    /// The branch parameter's value after the magic cookie.
    pub fn encode(&self) -> ArrayString<48> {
        // At most 1 + 4 * 8 + 3 bytes: the text, then one conversion.
        let mut bytes = ArrayVec::<u8, 48>::new();
        bytes.extend(TAG.bytes());
        let parts = [
            self.bucket,
            self.slot,
            self.generation,
            u32::from(self.branch),
        ];
        for (i, part) in parts.into_iter().enumerate() {
            if i > 0 {
                bytes.push(b'.');
            }
            let _ = bytes.try_extend_from_slice(text::hex(u64::from(part), 0, &mut [0; 16]));
        }
        let mut s = ArrayString::new();
        let _ = s.try_push_str(text::ascii(&bytes));
        s
    }

    /// Reads a Via branch parameter (cookie included); `None` when it is
    /// not one of ours.
    pub fn decode(branch: &[u8]) -> Option<BranchId> {
        let rest = branch
            .strip_prefix(BRANCH_COOKIE)?
            .strip_prefix(TAG.as_bytes())?;
        let mut parts = rest.split(|&c| c == b'.');
        let mut next = || -> Option<u32> {
            let p = parts.next()?;
            if p.is_empty() || p.len() > 8 {
                return None;
            }
            u32::try_from(text::parse_hex(p)?).ok()
        };
        let id = BranchId {
            bucket: next()?,
            slot: next()?,
            generation: next()?,
            branch: u8::try_from(next()?).ok()?,
        };
        parts.next().is_none().then_some(id)
    }

    /// As one number: the label tm gives a branch's request in the
    /// outbox (`Shell::tag_last`).
    pub fn pack(&self) -> u128 {
        u128::from(self.bucket) << 72
            | u128::from(self.slot) << 40
            | u128::from(self.generation) << 8
            | u128::from(self.branch)
    }

    pub fn unpack(v: u128) -> BranchId {
        BranchId {
            bucket: (v >> 72) as u32,
            slot: (v >> 40) as u32,
            generation: (v >> 8) as u32,
            branch: v as u8,
        }
    }

    /// Ours in the top Via of the start of a request we sent (what an
    /// ICMP error quotes back, possibly cut short): its request line,
    /// then our Via, first of the headers.
    pub fn in_head(head: &[u8]) -> Option<BranchId> {
        let mut lines = head.split(|&b| b == b'\n').skip(1);
        let via = lines.find(|l| {
            let name = l.split(|&b| b == b':').next().unwrap_or_default();
            let name = name.trim_ascii();
            name.eq_ignore_ascii_case(b"via") || name.eq_ignore_ascii_case(b"v")
        })?;
        let at = memchr::memmem::find(via, b"branch=")? + b"branch=".len();
        let value = &via[at..];
        let end = value
            .iter()
            .position(|&b| matches!(b, b';' | b',' | b' ' | b'\t' | b'\r'))
            .unwrap_or(value.len());
        BranchId::decode(&value[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str) -> Vec<u8> {
        text.replace('\n', "\r\n").into_bytes()
    }

    const INVITE: &str = "INVITE sip:bob@b.example SIP/2.0\n\
        Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc\n\
        From: <sip:alice@a.example>;tag=1\nTo: <sip:bob@b.example>\n\
        Call-ID: c1\nCSeq: 1 INVITE\nContent-Length: 0\n\n";

    #[test]
    fn a_quoted_request_names_its_branch() {
        let id = BranchId {
            bucket: 0x1a,
            slot: 7,
            generation: 3,
            branch: 1,
        };
        let head = format!(
            "INVITE sip:bob@b.example SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK{};rport\r\n\
             Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc\r\nFrom: <sip:a@",
            id.encode()
        );
        assert_eq!(BranchId::in_head(head.as_bytes()), Some(id));
        // Cut inside the branch: not ours any more.
        let cut = &head[..head.find(";rport").unwrap() - 2];
        assert_eq!(BranchId::in_head(cut.as_bytes()), None);
        assert_eq!(
            BranchId::in_head(
                b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKds.1\r\n"
            ),
            None
        );
    }

    #[test]
    fn ack_and_cancel_find_the_invite() {
        let inv = msg(INVITE);
        let ack = msg(&INVITE
            .replace("INVITE sip", "ACK sip")
            .replace("1 INVITE", "1 ACK"));
        let cancel = msg(&INVITE
            .replace("INVITE sip", "CANCEL sip")
            .replace("1 INVITE", "1 CANCEL"));
        let bye = msg(&INVITE
            .replace("INVITE sip", "BYE sip")
            .replace("1 INVITE", "2 BYE"));
        let k = |b: &[u8], inv: bool| server_key(&Message::parse(b).unwrap(), inv).unwrap();
        assert_eq!(k(&inv, false), k(&ack, false));
        assert_ne!(k(&inv, false), k(&cancel, false));
        assert_eq!(k(&inv, false), k(&cancel, true));
        assert_ne!(k(&inv, false), k(&bye, false));
        let other_branch = msg(&INVITE.replace("z9hG4bKabc", "z9hG4bKabd"));
        assert_ne!(k(&inv, false), k(&other_branch, false));
        let other_host = msg(&INVITE.replace("10.0.0.1:5060", "10.0.0.2:5060"));
        assert_ne!(k(&inv, false), k(&other_host, false));
    }

    #[test]
    fn rfc2543_fallback() {
        let old = INVITE.replace(";branch=z9hG4bKabc", "");
        let inv = msg(&old);
        let ack = msg(&old
            .replace("INVITE sip", "ACK sip")
            .replace("1 INVITE", "1 ACK")
            .replace("<sip:bob@b.example>\n", "<sip:bob@b.example>;tag=9\n"));
        let k = |b: &[u8]| server_key(&Message::parse(b).unwrap(), false).unwrap();
        assert_eq!(k(&inv), k(&ack));
        let other_call = msg(&old.replace("Call-ID: c1", "Call-ID: c2"));
        assert_ne!(k(&inv), k(&other_call));
    }

    #[test]
    fn branch_round_trip_and_refusals() {
        let id = BranchId {
            bucket: 0x1f,
            slot: 70000,
            generation: u32::MAX,
            branch: 11,
        };
        let mut full = String::from("z9hG4bK");
        full.push_str(&id.encode());
        assert_eq!(BranchId::decode(full.as_bytes()), Some(id));
        assert_eq!(BranchId::unpack(id.pack()), id);
        let max = BranchId {
            bucket: u32::MAX,
            slot: u32::MAX,
            generation: u32::MAX,
            branch: u8::MAX,
        };
        assert_eq!(BranchId::unpack(max.pack()), max);
        for bad in [
            "z9hG4bKsl0123456789abcdef",
            "z9hG4bKt1.2.3",
            "z9hG4bKt1.2.3.4.5",
            "z9hG4bKt1.2.3.100",
            "z9hG4bKt1..3.4",
            "z9hG4bKt123456789.1.1.1",
            "z9hG4bKtx.1.1.1",
            // Digits only: no sign, though str::from_str_radix takes one.
            "z9hG4bKt+1.1.1.1",
            "t1.2.3.4",
        ] {
            assert_eq!(BranchId::decode(bad.as_bytes()), None, "{bad}");
        }
    }
}
