//! `$avp` and `$xavp` values: a message's, and a transaction's, which
//! keeps them in shared memory as bytes for its branch, reply and failure
//! routes (Kamailio's AVPs live as long as the transaction).
//!
//! The encoding, one entry after another: an AVP is its name index (u16
//! LE), a type (0 `$null`, 1 int, 2 text) and the value (i64 LE, or u32
//! LE length and text); an XAVP is its name index, type 3, its field count
//! (u16 LE), and each field as an AVP.

use super::ctx::VarValue;

/// The most a transaction keeps of its AVPs; more is not kept (logged and
/// counted by the caller).
pub const MAX_AVP_BYTES: usize = 8 * 1024;
/// AVPs one message may carry.
pub const MAX_AVPS: usize = 64;
/// XAVPs one message may carry, and fields one XAVP may have.
pub const MAX_XAVPS: usize = 32;
pub const MAX_XAVP_FIELDS: usize = 32;

/// One `$xavp(name=>...)`: its fields, the newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Xavp {
    pub name: u16,
    pub fields: Vec<(u16, VarValue)>,
}

/// A message's AVPs (in the order set) and XAVPs (the newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Avps {
    avps: Vec<(u16, VarValue)>,
    xavps: Vec<Xavp>,
    /// Set or removed since [`Avps::decode`] (a transaction's are
    /// written back only then).
    pub changed: bool,
}

/// Why an assignment did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvpError {
    Full,
    /// `$xavp(name[i]=>...)` with no XAVP at that index.
    NoSuchXavp,
    /// `$xavp(name) = value`: a value needs a field.
    NoField,
}

impl Avps {
    /// Forgets every value (per message: nothing to do in the usual case
    /// of none, so that is all it costs).
    #[inline]
    pub fn clear(&mut self) {
        if !self.avps.is_empty() {
            self.avps.clear();
        }
        if !self.xavps.is_empty() {
            self.xavps.clear();
        }
        self.changed = false;
    }

    pub fn is_empty(&self) -> bool {
        self.avps.is_empty() && self.xavps.is_empty()
    }

    /// `$avp(name)`: its last value.
    pub fn get(&self, name: u16) -> Option<&VarValue> {
        self.avps
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// `$avp(name) = v` adds a value; `= $null` removes them all.
    pub fn set(&mut self, name: u16, v: VarValue) -> Result<(), AvpError> {
        self.changed = true;
        if v == VarValue::Null {
            self.avps.retain(|(n, _)| *n != name);
        } else if self.avps.len() < MAX_AVPS {
            self.avps.push((name, v));
        } else {
            return Err(AvpError::Full);
        }
        Ok(())
    }

    /// The `index`-th XAVP of that name (0: the newest).
    fn xavp(&self, name: u16, index: u8) -> Option<&Xavp> {
        self.xavps
            .iter()
            .filter(|x| x.name == name)
            .nth(usize::from(index))
    }

    /// `$xavp(name[index]=>field)`: the field's newest value; without a
    /// field, whether the XAVP exists (its text is `<<xavp>>`).
    pub fn xget(&self, name: u16, index: u8, field: Option<u16>) -> Option<&VarValue> {
        static STRUCTURE: std::sync::LazyLock<VarValue> =
            std::sync::LazyLock::new(|| VarValue::Str(b"<<xavp>>".to_vec()));
        let x = self.xavp(name, index)?;
        match field {
            None => Some(&STRUCTURE),
            Some(f) => x.fields.iter().find(|(n, _)| *n == f).map(|(_, v)| v),
        }
    }

    /// Kamailio's assignments: `$xavp(name=>field) = v` starts a new XAVP
    /// (the newest, index 0); `$xavp(name[i]=>field) = v` adds the field
    /// to the i-th; `= $null` removes the field, or with no field the
    /// XAVP (all of that name without an index).
    pub fn xset(
        &mut self,
        name: u16,
        index: Option<u8>,
        field: Option<u16>,
        v: VarValue,
    ) -> Result<(), AvpError> {
        self.changed = true;
        let nth = |xavps: &[Xavp], i: u8| {
            xavps
                .iter()
                .enumerate()
                .filter(|(_, x)| x.name == name)
                .nth(usize::from(i))
                .map(|(at, _)| at)
        };
        match (index, field, v) {
            (None, None, VarValue::Null) => self.xavps.retain(|x| x.name != name),
            (Some(i), None, VarValue::Null) => {
                if let Some(at) = nth(&self.xavps, i) {
                    self.xavps.remove(at);
                }
            }
            (_, None, _) => return Err(AvpError::NoField),
            (i, Some(f), VarValue::Null) => {
                if let Some(at) = nth(&self.xavps, i.unwrap_or(0)) {
                    self.xavps[at].fields.retain(|(n, _)| *n != f);
                }
            }
            (None, Some(f), v) => {
                if self.xavps.len() >= MAX_XAVPS {
                    return Err(AvpError::Full);
                }
                self.xavps.insert(
                    0,
                    Xavp {
                        name,
                        fields: vec![(f, v)],
                    },
                );
            }
            (Some(i), Some(f), v) => {
                let at = nth(&self.xavps, i).ok_or(AvpError::NoSuchXavp)?;
                let fields = &mut self.xavps[at].fields;
                if fields.len() >= MAX_XAVP_FIELDS {
                    return Err(AvpError::Full);
                }
                fields.insert(0, (f, v));
            }
        }
        Ok(())
    }

    /// Appends the encoding to `out`; false (and `out` as it was) when it
    /// would exceed [`MAX_AVP_BYTES`].
    pub fn encode(&self, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        for (name, v) in &self.avps {
            value(*name, v, out);
        }
        for x in &self.xavps {
            out.extend_from_slice(&x.name.to_le_bytes());
            out.push(3);
            out.extend_from_slice(&(x.fields.len() as u16).to_le_bytes());
            for (name, v) in &x.fields {
                value(*name, v, out);
            }
        }
        if out.len() - start > MAX_AVP_BYTES {
            out.truncate(start);
            return false;
        }
        true
    }

    /// Replaces the values with those in `bytes`; a malformed tail (which
    /// only a bug could write) is ignored.
    pub fn decode(&mut self, mut bytes: &[u8]) {
        self.clear();
        while let Some((name, kind, rest)) = head(bytes) {
            if kind == 3 {
                let [a, b, rest @ ..] = rest else { return };
                let mut x = Xavp {
                    name,
                    fields: Vec::new(),
                };
                bytes = rest;
                for _ in 0..u16::from_le_bytes([*a, *b]) {
                    let Some((f, kind, rest)) = head(bytes) else {
                        return;
                    };
                    let Some((v, rest)) = read_value(kind, rest) else {
                        return;
                    };
                    x.fields.push((f, v));
                    bytes = rest;
                }
                self.xavps.push(x);
            } else {
                let Some((v, rest)) = read_value(kind, rest) else {
                    return;
                };
                self.avps.push((name, v));
                bytes = rest;
            }
        }
    }
}

fn value(name: u16, v: &VarValue, out: &mut Vec<u8>) {
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
}

fn head(bytes: &[u8]) -> Option<(u16, u8, &[u8])> {
    let [a, b, kind, rest @ ..] = bytes else {
        return None;
    };
    Some((u16::from_le_bytes([*a, *b]), *kind, rest))
}

fn read_value(kind: u8, rest: &[u8]) -> Option<(VarValue, &[u8])> {
    match kind {
        0 => Some((VarValue::Null, rest)),
        1 => {
            let (n, rest) = rest.split_first_chunk::<8>()?;
            Some((VarValue::Int(i64::from_le_bytes(*n)), rest))
        }
        2 => {
            let (len, rest) = rest.split_first_chunk::<4>()?;
            let len = u32::from_le_bytes(*len) as usize;
            if rest.len() < len {
                return None;
            }
            let (s, rest) = rest.split_at(len);
            Some((VarValue::Str(s.to_vec()), rest))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: &str) -> VarValue {
        VarValue::Str(t.as_bytes().to_vec())
    }

    #[test]
    fn xavps_as_kamailio_assigns_them() {
        let mut a = Avps::default();
        // Two callers, each with two fields.
        a.xset(1, None, Some(10), s("alice")).unwrap();
        a.xset(1, Some(0), Some(11), s("smith")).unwrap();
        a.xset(1, None, Some(10), s("bob")).unwrap();
        a.xset(1, Some(0), Some(11), s("jones")).unwrap();
        assert_eq!(a.xget(1, 0, Some(10)), Some(&s("bob")));
        assert_eq!(a.xget(1, 1, Some(11)), Some(&s("smith")));
        assert_eq!(a.xget(1, 2, Some(10)), None);
        assert_eq!(a.xget(1, 0, None), Some(&s("<<xavp>>")));
        assert_eq!(
            a.xset(1, Some(5), Some(10), s("x")),
            Err(AvpError::NoSuchXavp)
        );
        assert_eq!(a.xset(1, None, None, s("x")), Err(AvpError::NoField));
        a.xset(1, Some(0), Some(11), VarValue::Null).unwrap();
        assert_eq!(a.xget(1, 0, Some(11)), None);
        a.xset(1, Some(0), None, VarValue::Null).unwrap();
        assert_eq!(a.xget(1, 0, Some(10)), Some(&s("alice")));
        a.xset(1, None, None, VarValue::Null).unwrap();
        assert!(a.is_empty());
    }

    #[test]
    fn round_trip_and_limit() {
        let mut a = Avps::default();
        a.set(3, s("sip:alice@example.com")).unwrap();
        a.set(7, VarValue::Int(-42)).unwrap();
        a.xset(2, None, Some(4), VarValue::Int(5)).unwrap();
        a.xset(2, Some(0), Some(6), s("six")).unwrap();
        a.set(3, s("again")).unwrap();
        let mut bytes = Vec::new();
        assert!(a.encode(&mut bytes));
        let mut back = Avps::default();
        back.set(9, VarValue::Int(1)).unwrap();
        back.decode(&bytes);
        a.changed = false;
        assert_eq!(back, a);
        // Cut anywhere: never a panic, never more than was there.
        for cut in 0..bytes.len() {
            back.decode(&bytes[..cut]);
            assert!(back.avps.len() <= 3 && back.xavps.len() <= 1, "{cut}");
        }
        let mut big = Avps::default();
        big.set(1, VarValue::Str(vec![b'x'; MAX_AVP_BYTES]))
            .unwrap();
        let mut out = b"kept".to_vec();
        assert!(!big.encode(&mut out));
        assert_eq!(out, b"kept");
    }

    #[test]
    fn bounded() {
        let mut a = Avps::default();
        for _ in 0..MAX_AVPS {
            a.set(1, VarValue::Int(1)).unwrap();
        }
        assert_eq!(a.set(1, VarValue::Int(1)), Err(AvpError::Full));
        for _ in 0..MAX_XAVPS {
            a.xset(2, None, Some(1), VarValue::Int(1)).unwrap();
        }
        assert_eq!(
            a.xset(2, None, Some(1), VarValue::Int(1)),
            Err(AvpError::Full)
        );
        for _ in 1..MAX_XAVP_FIELDS {
            a.xset(2, Some(0), Some(1), VarValue::Int(1)).unwrap();
        }
        assert_eq!(
            a.xset(2, Some(0), Some(1), VarValue::Int(1)),
            Err(AvpError::Full)
        );
    }
}
