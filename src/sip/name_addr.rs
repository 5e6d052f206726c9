//! name-addr / addr-spec values with header parameters: From, To, Contact,
//! Route, Record-Route (RFC 3261 §20.10, §20.20, §20.30, §20.34, §20.39).
//!
//! Parsing a value delimits its parts (display name, address, parameters)
//! and reads the tag; the address itself is parsed as a URI only when read
//! ([`NameAddr::uri`]), as Kamailio's parse_to does: a proxy relaying a
//! request reads the To and From tags on every message and their URIs
//! seldom. [`super::Message::validate`] parses them all.

use super::error::{ParseError, Result};
use super::scan::{
    Params, eq_lower, find_byte, find_top_level, is_lws, is_token_char, parse_u32, skip_quoted,
    trim,
};
use super::uri::Uri;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name as written (quotes kept), if any.
    pub display: Option<&'a [u8]>,
    /// The address as written, without its angle brackets; its syntax is
    /// checked by [`NameAddr::uri`].
    pub addr_spec: &'a [u8],
    /// True when the URI was enclosed in `<...>`.
    pub bracketed: bool,
    /// Header parameters after the address, from the first `;`.
    pub params: &'a [u8],
    pub tag: Option<&'a [u8]>,
}

impl<'a> NameAddr<'a> {
    pub fn parse(s: &'a [u8]) -> Result<NameAddr<'a>> {
        let s = trim(s);
        if s.is_empty() {
            return Err(ParseError::BadNameAddr);
        }
        let (display, uri_text, params, bracketed) = match find_top_level(s, b'<')? {
            _ if s[0] == b'"' => {
                let end = skip_quoted(s, 0)?;
                let rest = trim(&s[end..]);
                let (uri, params) = bracketed_uri(rest)?;
                (Some(&s[..end]), uri, params, true)
            }
            Some(lt) => {
                let display = trim(&s[..lt]);
                // Unquoted display names are tokens separated by LWS (§25.1).
                if !display.iter().all(|&b| is_token_char(b) || is_lws(b)) {
                    return Err(ParseError::BadNameAddr);
                }
                let (uri, params) = bracketed_uri(&s[lt..])?;
                ((!display.is_empty()).then_some(display), uri, params, true)
            }
            None => {
                // addr-spec: header parameters start at the first ';', so a URI
                // with ';', '?' or ',' must have been bracketed (§20).
                let end = find_byte(s, b';').unwrap_or(s.len());
                let uri = trim(&s[..end]);
                if uri.iter().any(|&b| matches!(b, b'?' | b',') || is_lws(b)) {
                    return Err(ParseError::BadNameAddr);
                }
                (None, uri, &s[end..], false)
            }
        };
        let mut tag = None;
        for p in Params::new(params) {
            let p = p.map_err(|_| ParseError::BadNameAddr)?;
            if eq_lower(p.name, b"tag") {
                tag = Some(p.value.ok_or(ParseError::BadNameAddr)?);
            }
        }
        Ok(NameAddr {
            display,
            addr_spec: uri_text,
            bracketed,
            params,
            tag,
        })
    }

    /// The address parsed as a URI; a malformed one is a bad name-addr.
    pub fn uri(&self) -> Result<Uri<'a>> {
        Uri::parse(self.addr_spec).map_err(|e| match e {
            ParseError::UriTooLong => e,
            _ => ParseError::BadNameAddr,
        })
    }

    pub fn param_iter(&self) -> Params<'a> {
        Params::new(self.params)
    }

    pub fn param(&self, name: &[u8]) -> Option<Option<&'a [u8]>> {
        self.param_iter()
            .filter_map(|p| p.ok())
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value)
    }

    /// The Contact `expires` parameter in seconds (RFC 3261 §20.10).
    pub fn expires(&self) -> Result<Option<u32>> {
        match self.param(b"expires") {
            None => Ok(None),
            Some(None) => Err(ParseError::BadNumber),
            Some(Some(v)) => parse_u32(v).map(Some),
        }
    }

    /// The Contact `q` parameter in thousandths (RFC 3261 §20.10: 0 to 1,
    /// at most three decimals).
    pub fn q(&self) -> Result<Option<u16>> {
        match self.param(b"q") {
            None => Ok(None),
            Some(None) => Err(ParseError::BadNumber),
            Some(Some(v)) => parse_qvalue(v).map(Some),
        }
    }
}

/// A Contact value: `*` or an address (RFC 3261 §20.10).
// Boxing the address would put an allocation on the packet path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact<'a> {
    Star,
    Addr(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    pub fn parse(s: &'a [u8]) -> Result<Contact<'a>> {
        if trim(s) == b"*" {
            Ok(Contact::Star)
        } else {
            NameAddr::parse(s).map(Contact::Addr)
        }
    }
}

/// `"<" addr-spec ">" params`: returns the URI text and the params.
fn bracketed_uri(s: &[u8]) -> Result<(&[u8], &[u8])> {
    if s.first() != Some(&b'<') {
        return Err(ParseError::BadNameAddr);
    }
    let close = find_byte(s, b'>').ok_or(ParseError::BadNameAddr)?;
    let uri = &s[1..close];
    // LAQUOT / RAQUOT allow white space outside, not inside, the brackets.
    // Without early exit, so the compiler tests many bytes at once.
    if uri.iter().fold(false, |lws, &b| lws | is_lws(b)) {
        return Err(ParseError::BadNameAddr);
    }
    let params = trim(&s[close + 1..]);
    if !params.is_empty() && params[0] != b';' {
        return Err(ParseError::BadNameAddr);
    }
    Ok((uri, params))
}

/// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths.
pub fn parse_qvalue(v: &[u8]) -> Result<u16> {
    let (int, frac) = match memchr::memchr(b'.', v) {
        Some(d) => (&v[..d], &v[d + 1..]),
        None => (v, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::BadNumber);
    }
    let mut thousandths: u16 = 0;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match int {
        b"0" => Ok(thousandths),
        b"1" if thousandths == 0 => Ok(1000),
        _ => Err(ParseError::BadNumber),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::uri::Host;

    #[test]
    fn quoted_display_name_and_tag() {
        let n =
            NameAddr::parse(b"\"Bob \\\"B\\\" Biloxi\" <sip:bob@biloxi.com>;tag=a6c85cf").unwrap();
        assert_eq!(n.display, Some(&b"\"Bob \\\"B\\\" Biloxi\""[..]));
        assert_eq!(n.uri().unwrap().host, Host::Name(b"biloxi.com"));
        assert_eq!(n.tag, Some(&b"a6c85cf"[..]));
    }

    #[test]
    fn token_display_name_and_addr_spec() {
        let n = NameAddr::parse(b"Bob Biloxi <sip:bob@biloxi.com;transport=udp>").unwrap();
        assert_eq!(n.display, Some(&b"Bob Biloxi"[..]));
        assert_eq!(n.uri().unwrap().transport, Some(&b"udp"[..]));
        let a = NameAddr::parse(b"sip:alice@atlanta.com;tag=1928301774").unwrap();
        assert!(!a.bracketed);
        assert_eq!(a.uri().unwrap().params, b"");
        assert_eq!(a.tag, Some(&b"1928301774"[..]));
    }

    #[test]
    fn rejects_what_must_be_bracketed() {
        assert!(NameAddr::parse(b"sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
        assert!(NameAddr::parse(b"Bell, Alexander <sip:a.g.bell@bell-tel.com>").is_err());
        assert!(NameAddr::parse(b"\"unterminated <sip:x@y>").is_err());
        assert!(NameAddr::parse(b"<sip:x@y").is_err());
        assert!(NameAddr::parse(b"< sip:x@y >").is_err());
    }

    #[test]
    fn the_address_is_parsed_when_read() {
        // The tag is there to read; the malformed address fails on reading.
        let n = NameAddr::parse(b"<sip:alice@>;tag=t1").unwrap();
        assert_eq!(n.tag, Some(&b"t1"[..]));
        assert_eq!(n.addr_spec, b"sip:alice@");
        assert_eq!(n.uri(), Err(ParseError::BadNameAddr));
        let long = format!("<sip:{}@x>", "a".repeat(3_000));
        let n = NameAddr::parse(long.as_bytes()).unwrap();
        assert_eq!(n.uri(), Err(ParseError::UriTooLong));
        let n = NameAddr::parse(b"sip:bob@biloxi.com;tag=9").unwrap();
        assert_eq!(n.uri().unwrap().host, Host::Name(b"biloxi.com"));
    }

    #[test]
    fn contact_star_expires_and_q() {
        assert_eq!(Contact::parse(b" * ").unwrap(), Contact::Star);
        let Contact::Addr(c) = Contact::parse(b"<sip:a@b>;expires=3600;q=0.7").unwrap() else {
            panic!("not an address")
        };
        assert_eq!(c.expires(), Ok(Some(3600)));
        assert_eq!(c.q(), Ok(Some(700)));
        assert_eq!(parse_qvalue(b"1.000"), Ok(1000));
        assert!(parse_qvalue(b"1.5").is_err());
        assert!(parse_qvalue(b"0.1234").is_err());
    }
}
