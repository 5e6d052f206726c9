//! A binding as a Redis hash field's value, and an AOR's bindings as a
//! feed entry: text lines (a Call-ID and a contact hold no line break),
//! parsed as pure code; anything that does not parse is an error, never
//! a guess.

use crate::modules::usrloc::table::{Meta, Q_NONE};

/// One binding of an AOR: its contact, Call-ID and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub contact: Vec<u8>,
    pub call_id: Vec<u8>,
    pub meta: Meta,
}

/// The field value: `cseq q expires updated cflags` then the Call-ID on
/// a line of its own (q `-` when none).
pub fn encode(call_id: &[u8], m: &Meta) -> Vec<u8> {
    let q = match m.q {
        Q_NONE => "-".to_string(),
        q => q.to_string(),
    };
    let mut v = format!("{} {q} {} {} {}\n", m.cseq, m.expires, m.updated, m.cflags).into_bytes();
    v.extend_from_slice(call_id);
    v
}

/// A field value back; None when it does not parse.
pub fn decode(contact: &[u8], value: &[u8]) -> Option<Binding> {
    let nl = value.iter().position(|&b| b == b'\n')?;
    let head = std::str::from_utf8(&value[..nl]).ok()?;
    let fields: arrayvec::ArrayVec<&str, 6> = head.split(' ').take(6).collect();
    let [cseq, q, expires, updated, cflags] = fields.as_slice() else {
        return None;
    };
    Some(Binding {
        contact: contact.to_vec(),
        call_id: value[nl + 1..].to_vec(),
        meta: Meta {
            q: match *q {
                "-" => Q_NONE,
                q => q.parse::<u16>().ok().filter(|q| *q <= 1000)?,
            },
            cseq: cseq.parse().ok()?,
            cflags: cflags.parse().ok()?,
            expires: expires.parse().ok()?,
            updated: updated.parse().ok()?,
            ..Meta::default()
        },
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
        ] {
            assert_eq!(decode(b"c", bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_feed_entry(b"location\nnot-a-number\nalice"), None);
        assert_eq!(parse_feed_entry(b"location\n1\nalice\nsip:c"), None);
    }
}
