//! A binding as a Redis hash field's value, and an AOR's bindings as a
//! feed entry: text lines (a Call-ID and a contact hold no line break),
//! parsed as pure code; anything that does not parse is an error, never
//! a guess.

use std::net::SocketAddr;

use crate::cfg::settings::Proto;
use crate::modules::usrloc::table::{Meta, Q_NONE};

/// One binding of an AOR: its contact, Call-ID and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub contact: Vec<u8>,
    pub call_id: Vec<u8>,
    pub meta: Meta,
}

/// The field value: `cseq q expires updated cflags` (q `-` when none),
/// then for a phone registered over a connection `PROTO:FAR_END OWNER`
/// (the connection's transport and far end, and the address of the node
/// holding it), then the Call-ID on a line of its own.
pub fn encode(call_id: &[u8], m: &Meta) -> Vec<u8> {
    use std::io::Write as _;
    let mut v = Vec::with_capacity(64 + call_id.len());
    let _ = write!(v, "{} ", m.cseq);
    match m.q {
        Q_NONE => v.push(b'-'),
        q => {
            let _ = write!(v, "{q}");
        }
    }
    let _ = write!(v, " {} {} {}", m.expires, m.updated, m.cflags);
    if let Some(p) = Proto::of_code(m.flow).filter(|_| m.received.port() != 0) {
        let (far, owner) = (SocketAddr::from(m.received), SocketAddr::from(m.owner));
        let _ = write!(v, " {}:{far} {owner}", p.name());
    }
    v.push(b'\n');
    v.extend_from_slice(call_id);
    v
}

/// A field value back; None when it does not parse.
pub fn decode(contact: &[u8], value: &[u8]) -> Option<Binding> {
    let nl = value.iter().position(|&b| b == b'\n')?;
    let head = std::str::from_utf8(&value[..nl]).ok()?;
    let fields: arrayvec::ArrayVec<&str, 8> = head.split(' ').take(8).collect();
    let (base, flow) = match fields.as_slice() {
        [a, b, c, d, e] => ([*a, *b, *c, *d, *e], None),
        [a, b, c, d, e, flow, owner] => ([*a, *b, *c, *d, *e], Some((*flow, *owner))),
        _ => return None,
    };
    let [cseq, q, expires, updated, cflags] = base;
    let mut meta = Meta {
        q: match q {
            "-" => Q_NONE,
            q => q.parse::<u16>().ok().filter(|q| *q <= 1000)?,
        },
        cseq: cseq.parse().ok()?,
        cflags: cflags.parse().ok()?,
        expires: expires.parse().ok()?,
        updated: updated.parse().ok()?,
        ..Meta::default()
    };
    if let Some((flow, owner)) = flow {
        let (proto, far) = flow.split_once(':')?;
        let proto = Proto::parse(proto).filter(|p| p.is_stream())?;
        meta.flow = proto.code();
        meta.received = far.parse::<SocketAddr>().ok()?.into();
        meta.owner = owner.parse::<SocketAddr>().ok()?.into();
    }
    Some(Binding {
        contact: contact.to_vec(),
        call_id: value[nl + 1..].to_vec(),
        meta,
    })
}

/// A feed entry: the table, the AOR, its version and every binding it
/// has after the change (none: the AOR is gone), so applying entries is
/// idempotent and a reader never needs an earlier one.
pub fn feed_entry(table: &str, aor: &[u8], version: u64, bindings: &[Binding]) -> Vec<u8> {
    let mut e = format!("{table}\n{version}\n").into_bytes();
    e.extend_from_slice(aor);
    for b in bindings {
        e.push(b'\n');
        e.extend_from_slice(&b.contact);
        e.push(b'\n');
        e.extend_from_slice(&encode(&b.call_id, &b.meta));
    }
    e
}

/// A feed entry back: table, AOR, version, bindings.
pub fn parse_feed_entry(e: &[u8]) -> Option<(String, Vec<u8>, u64, Vec<Binding>)> {
    let mut lines = e.split(|&b| b == b'\n');
    let table = String::from_utf8(lines.next()?.to_vec()).ok()?;
    let version = std::str::from_utf8(lines.next()?).ok()?.parse().ok()?;
    let aor = lines.next()?.to_vec();
    let mut out = Vec::new();
    while let Some(contact) = lines.next() {
        let head = lines.next()?;
        let call_id = lines.next()?;
        let mut value = head.to_vec();
        value.push(b'\n');
        value.extend_from_slice(call_id);
        out.push(decode(contact, &value)?);
    }
    Some((table, aor, version, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(q: u16) -> Meta {
        Meta {
            q,
            cseq: 7,
            cflags: 64,
            expires: 1_900_000_000,
            updated: 1_800_000_000,
            ..Meta::default()
        }
    }

    #[test]
    fn bindings_and_feed_entries_round_trip() {
        let v = encode(b"abc@host", &meta(500));
        assert_eq!(v, b"7 500 1900000000 1800000000 64\nabc@host");
        let b = decode(b"sip:a@h", &v).unwrap();
        assert_eq!(
            (b.call_id.as_slice(), b.meta),
            (&b"abc@host"[..], meta(500))
        );
        let none = decode(b"sip:a@h", &encode(b"x", &meta(Q_NONE))).unwrap();
        assert_eq!(none.meta.q, Q_NONE);
        let e = feed_entry("location", b"alice", 9, &[b.clone(), none.clone()]);
        assert_eq!(
            parse_feed_entry(&e),
            Some(("location".into(), b"alice".to_vec(), 9, vec![b, none]))
        );
        let over_tls = Meta {
            received: "[2001:db8::7]:40123".parse::<SocketAddr>().unwrap().into(),
            flow: Proto::Tls.code(),
            owner: "10.0.0.2:5060".parse::<SocketAddr>().unwrap().into(),
            ..meta(Q_NONE)
        };
        let v = encode(b"c@h", &over_tls);
        assert_eq!(
            v,
            b"7 - 1900000000 1800000000 64 tls:[2001:db8::7]:40123 10.0.0.2:5060\nc@h"
        );
        assert_eq!(decode(b"sips:a@h", &v).map(|b| b.meta), Some(over_tls));
        assert_eq!(
            parse_feed_entry(&feed_entry("location", b"gone", 10, &[])),
            Some(("location".into(), b"gone".to_vec(), 10, vec![]))
        );
    }

    #[test]
    fn what_does_not_parse_is_refused() {
        for bad in [
            &b"7 500 1 2 3"[..],
            b"7 1001 1 2 3\nx",
            b"x 500 1 2 3\nx",
            b"7 500 1 2\nx",
            b"7 500 1 2 3 4\nx",
            b"99999999999 500 1 2 3\nx",
            b"7 500 1 2 3 udp:1.2.3.4:5 1.2.3.4:5060\nx",
            b"7 500 1 2 3 tcp:1.2.3.4 1.2.3.4:5060\nx",
            b"7 500 1 2 3 tcp:1.2.3.4:5\nx",
        ] {
            assert_eq!(decode(b"c", bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_feed_entry(b"location\nnot-a-number\nalice"), None);
        assert_eq!(parse_feed_entry(b"location\n1\nalice\nsip:c"), None);
    }
}
