//! `$avp` values as bytes, so a transaction can keep them in shared memory
//! and give them back to its failure and reply routes (Kamailio's AVPs
//! live as long as the transaction).
//!
//! Each value: name index (u16 LE), type (0 `$null`, 1 int, 2 text), then
//! an i64 LE or a u32 LE length and the text.

use super::ctx::VarValue;

/// The most a transaction keeps of its AVPs; more is not kept (logged and
/// counted by the caller).
pub const MAX_AVP_BYTES: usize = 8 * 1024;

/// Appends the encoding of `avps` to `out`; false (and `out` as it was)
/// when it would exceed [`MAX_AVP_BYTES`].
pub fn encode(avps: &[(u16, VarValue)], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    for (name, v) in avps {
        out.extend_from_slice(&name.to_le_bytes());
        match v {
            VarValue::Null => out.push(0),
            VarValue::Int(n) => {
                out.push(1);
                out.extend_from_slice(&n.to_le_bytes());
            }
            VarValue::Str(s) => {
                out.push(2);
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s);
            }
        }
        if out.len() - start > MAX_AVP_BYTES {
            out.truncate(start);
            return false;
        }
    }
    true
}

/// Replaces `avps` with the values in `bytes`; a malformed tail (which
/// only a bug could write) is ignored.
pub fn decode(mut bytes: &[u8], avps: &mut Vec<(u16, VarValue)>) {
    avps.clear();
    while let [a, b, kind, rest @ ..] = bytes {
        let name = u16::from_le_bytes([*a, *b]);
        let (v, rest) = match (kind, rest) {
            (0, rest) => (VarValue::Null, rest),
            (1, rest) if rest.len() >= 8 => {
                let (n, rest) = rest.split_at(8);
                let n = i64::from_le_bytes(n.try_into().unwrap_or([0; 8]));
                (VarValue::Int(n), rest)
            }
            (2, rest) if rest.len() >= 4 => {
                let (len, rest) = rest.split_at(4);
                let len = u32::from_le_bytes(len.try_into().unwrap_or([0; 4])) as usize;
                if rest.len() < len {
                    return;
                }
                let (s, rest) = rest.split_at(len);
                (VarValue::Str(s.to_vec()), rest)
            }
            _ => return,
        };
        avps.push((name, v));
        bytes = rest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limit() {
        let avps = vec![
            (3, VarValue::Str(b"sip:alice@example.com".to_vec())),
            (7, VarValue::Int(-42)),
            (3, VarValue::Null),
        ];
        let mut bytes = Vec::new();
        assert!(encode(&avps, &mut bytes));
        let mut back = vec![(9, VarValue::Int(1))];
        decode(&bytes, &mut back);
        assert_eq!(back, avps);
        // Cut anywhere: what decodes is a prefix, never a panic.
        for cut in 0..bytes.len() {
            decode(&bytes[..cut], &mut back);
            assert!(avps.starts_with(&back), "{cut}");
        }
        let big = vec![(1, VarValue::Str(vec![b'x'; MAX_AVP_BYTES]))];
        let mut out = b"kept".to_vec();
        assert!(!encode(&big, &mut out));
        assert_eq!(out, b"kept");
    }
}
