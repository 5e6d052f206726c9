//! Small typed header values: methods, CSeq, Call-ID, numbers, Content-Type
//! and Date (RFC 3261 §20).

use super::error::{ParseError, Result};
use super::scan::{Params, all_token, is_lws, is_token, is_word_char, parse_u32, trim, trim_start};

/// Request methods. Method names are case-sensitive (RFC 3261 §7.1);
/// unknown tokens are `Other` and keep their text where they appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Prack,
    Update,
    Subscribe,
    Notify,
    Message,
    Refer,
    Publish,
    Other,
}

impl Method {
    pub fn from_bytes(s: &[u8]) -> Method {
        match s {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"REGISTER" => Method::Register,
            b"OPTIONS" => Method::Options,
            b"INFO" => Method::Info,
            b"PRACK" => Method::Prack,
            b"UPDATE" => Method::Update,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"MESSAGE" => Method::Message,
            b"REFER" => Method::Refer,
            b"PUBLISH" => Method::Publish,
            _ => Method::Other,
        }
    }
}

/// `CSeq: number method` (RFC 3261 §20.16): the number is below 2**31.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub number: u32,
    pub method: Method,
    pub method_raw: &'a [u8],
}

impl<'a> CSeq<'a> {
    pub fn parse(s: &'a [u8]) -> Result<CSeq<'a>> {
        let s = trim(s);
        // The number, read as it is scanned: at most ten digits (more
        // could not be below 2**31), then white space.
        let mut number: u64 = 0;
        let mut digits = 0;
        while let Some(&b) = s.get(digits).filter(|b| b.is_ascii_digit()) {
            number = number * 10 + u64::from(b - b'0');
            digits += 1;
            if digits > 10 {
                return Err(ParseError::BadCSeq);
            }
        }
        if digits == 0 || !s.get(digits).is_some_and(|&b| is_lws(b)) || number >= 1 << 31 {
            return Err(ParseError::BadCSeq);
        }
        let number = number as u32;
        let method_raw = trim_start(&s[digits..]);
        if method_raw.is_empty() || !all_token(method_raw) {
            return Err(ParseError::BadCSeq);
        }
        Ok(CSeq {
            number,
            method: Method::from_bytes(method_raw),
            method_raw,
        })
    }
}

/// `Call-ID: word ["@" word]` (RFC 3261 §25.1).
pub fn parse_call_id(s: &[u8]) -> Result<&[u8]> {
    let s = trim(s);
    // One pass: word characters, at most one '@', not first or last.
    let mut ats = 0;
    let mut ok = !s.is_empty();
    for &b in s {
        ats += usize::from(b == b'@');
        ok &= is_word_char(b) || b == b'@';
    }
    if ok && ats <= 1 && s[0] != b'@' && s[s.len() - 1] != b'@' {
        Ok(s)
    } else {
        Err(ParseError::BadCallId)
    }
}

/// Max-Forwards: 0 to 255 (RFC 3261 §20.22; RFC 4475 §3.1.2.4).
pub fn parse_max_forwards(s: &[u8]) -> Result<u8> {
    let n = parse_u32(trim(s))?;
    u8::try_from(n).map_err(|_| ParseError::BadNumber)
}

/// Expires and Content-Length style delta-seconds, at most 2**32-1.
pub fn parse_delta_seconds(s: &[u8]) -> Result<u32> {
    parse_u32(trim(s))
}

/// `Content-Type: type/subtype *(;param)` (RFC 3261 §20.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentType<'a> {
    pub mtype: &'a [u8],
    pub subtype: &'a [u8],
    pub params: &'a [u8],
}

impl<'a> ContentType<'a> {
    pub fn parse(s: &'a [u8]) -> Result<ContentType<'a>> {
        let s = trim(s);
        let slash = memchr::memchr(b'/', s).ok_or(ParseError::BadContentType)?;
        let end = memchr::memchr(b';', s).unwrap_or(s.len());
        if end < slash {
            return Err(ParseError::BadContentType);
        }
        let mtype = trim(&s[..slash]);
        let subtype = trim(&s[slash + 1..end]);
        if !is_token(mtype) || !is_token(subtype) {
            return Err(ParseError::BadContentType);
        }
        let params = &s[end..];
        for p in Params::new(params) {
            p.map_err(|_| ParseError::BadContentType)?;
        }
        Ok(ContentType {
            mtype,
            subtype,
            params,
        })
    }

    pub fn is(&self, mtype: &[u8], subtype: &[u8]) -> bool {
        self.mtype.eq_ignore_ascii_case(mtype) && self.subtype.eq_ignore_ascii_case(subtype)
    }

    pub fn param(&self, name: &[u8]) -> Option<&'a [u8]> {
        Params::new(self.params)
            .filter_map(|p| p.ok())
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .and_then(|p| p.value)
    }
}

/// Checks `Date: rfc1123-date` with the GMT zone (RFC 3261 §20.17), e.g.
/// `Sat, 13 Nov 2010 23:29:00 GMT`.
pub fn check_date(s: &[u8]) -> Result<()> {
    const DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let s = trim(s);
    let digits = |x: &[u8]| x.iter().all(u8::is_ascii_digit);
    let ok = s.len() == 29
        && DAYS.contains(&&s[0..3])
        && &s[3..5] == b", "
        && digits(&s[5..7])
        && s[7] == b' '
        && MONTHS.contains(&&s[8..11])
        && s[11] == b' '
        && digits(&s[12..16])
        && s[16] == b' '
        && digits(&s[17..19])
        && s[19] == b':'
        && digits(&s[20..22])
        && s[22] == b':'
        && digits(&s[23..25])
        && &s[25..] == b" GMT";
    if ok { Ok(()) } else { Err(ParseError::BadDate) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq_bounds() {
        let c = CSeq::parse(b" 4711 INVITE ").unwrap();
        assert_eq!((c.number, c.method), (4711, Method::Invite));
        assert_eq!(CSeq::parse(b"0 ACK").unwrap().number, 0);
        assert!(CSeq::parse(b"2147483648 INVITE").is_err());
        assert!(CSeq::parse(b"36893488147419103232 INVITE").is_err());
        assert!(CSeq::parse(b"1").is_err());
        assert!(CSeq::parse(b"-1 INVITE").is_err());
        // Leading zeros count as digits: ten at most.
        assert_eq!(CSeq::parse(b"0000000012 BYE").unwrap().number, 12);
        assert!(CSeq::parse(b"00000000012 BYE").is_err());
        assert!(CSeq::parse(b"12a INVITE").is_err());
        assert!(CSeq::parse(b"12 INV@TE").is_err());
        assert!(CSeq::parse(b"12 ").is_err());
        assert_eq!(
            CSeq::parse(b"2147483647\tINVITE").unwrap().number,
            (1 << 31) - 1
        );
        assert_eq!(
            CSeq::parse(b"8\r\n  NEWMETHOD").unwrap().method,
            Method::Other
        );
    }

    #[test]
    fn call_id_and_numbers() {
        assert_eq!(
            parse_call_id(b" a84b4c76e66710@pc33 "),
            Ok(&b"a84b4c76e66710@pc33"[..])
        );
        assert!(parse_call_id(b"a@b@c").is_err());
        assert!(parse_call_id(b"").is_err());
        assert_eq!(parse_max_forwards(b"70"), Ok(70));
        assert!(parse_max_forwards(b"300").is_err());
    }

    #[test]
    fn content_type_and_date() {
        let c = ContentType::parse(b"multipart/mixed;boundary=7a9cbec02ceef655").unwrap();
        assert!(c.is(b"Multipart", b"MIXED"));
        assert_eq!(c.param(b"boundary"), Some(&b"7a9cbec02ceef655"[..]));
        assert!(ContentType::parse(b"application").is_err());
        assert!(check_date(b"Sat, 13 Nov 2010 23:29:00 GMT").is_ok());
        assert!(check_date(b"Fri, 01 Jan 2010 16:00:00 EST").is_err());
    }
}
