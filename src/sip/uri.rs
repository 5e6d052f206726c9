//! SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966), parsed
//! zero-copy, and compared per RFC 3261 §19.1.4.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::{ParseError, Result};
use super::limits::MAX_URI_LEN;
use super::scan::{Params, all_visible, eq_lower, find_byte, parse_u16, unescaped};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    /// Any other absoluteURI (RFC 3261 §25.1); kept opaque.
    Other,
}

/// The reply to a request whose URI has a scheme a proxy cannot route
/// (RFC 3261 §8.2.2.1: tel:, a URN): the caller's error, not ours.
pub const UNSUPPORTED_SCHEME: (u16, &str) = (416, "Unsupported URI Scheme");

/// Whether `raw` is a sip: or sips: URI, or does not parse at all (then it
/// is malformed rather than of another scheme).
pub fn is_sip_scheme(raw: &[u8]) -> bool {
    Uri::parse(raw).map_or(true, |u| matches!(u.scheme, Scheme::Sip | Scheme::Sips))
}

/// The host part of a URI or a Via sent-by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    Name(&'a [u8]),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    /// tel and opaque URIs have none.
    None,
}

impl<'a> Host<'a> {
    /// Parses a hostname, an IPv4 address or a bracketed IPv6 reference.
    pub fn parse(s: &'a [u8]) -> Result<Host<'a>> {
        if s.first() == Some(&b'[') {
            return parse_ipv6_reference(s);
        }
        let (host, used) = scan_host(s)?;
        if used != s.len() {
            return Err(ParseError::BadUri);
        }
        Ok(host)
    }

    /// RFC 3261 §19.1.4: hosts compare case-insensitively; addresses by value.
    pub fn matches(&self, other: &Host<'_>) -> bool {
        match (self, other) {
            (Host::Name(a), Host::Name(b)) => a.eq_ignore_ascii_case(b),
            (Host::V4(a), Host::V4(b)) => a == b,
            (Host::V6(a), Host::V6(b)) => a == b,
            (Host::None, Host::None) => true,
            _ => false,
        }
    }
}

/// A bracketed IPv6 reference, `[` and `]` included (RFC 3261 §25.1).
fn parse_ipv6_reference(s: &[u8]) -> Result<Host<'_>> {
    if s.len() < 3 || s[s.len() - 1] != b']' {
        return Err(ParseError::BadUri);
    }
    let inner = std::str::from_utf8(&s[1..s.len() - 1]).map_err(|_| ParseError::BadUri)?;
    inner.parse().map(Host::V6).map_err(|_| ParseError::BadUri)
}

/// Hostname characters by class, as bits: 1 digit, 2 '.', 4 letter, '-'
/// or '_'; 0 for anything else.
const HOST_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c.is_ascii_digit() {
            1
        } else if c == b'.' {
            2
        } else if c.is_ascii_alphabetic() || c == b'-' || c == b'_' {
            4
        } else {
            0
        };
        b += 1;
    }
    t
};

/// Reads a hostname or an IPv4 address from the start of `s`, up to the
/// first byte that cannot be part of one; returns it and its length. All
/// digits and dots make an IPv4 address, since a toplabel starts with a
/// letter (RFC 3261 §25.1).
fn scan_host(s: &[u8]) -> Result<(Host<'_>, usize)> {
    // An address (a Via's sent-by, mostly) read in the one pass.
    if s.first().is_some_and(u8::is_ascii_digit) {
        if let Some(v4) = scan_ipv4(s) {
            return Ok(v4);
        }
    }
    let mut seen = 0u8;
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        let class = HOST_CLASS[b as usize];
        if class == 0 {
            break;
        }
        seen |= class;
        i += 1;
    }
    let text = &s[..i];
    if text.is_empty() {
        return Err(ParseError::BadUri);
    }
    // Digits and dots only would be an address, which scan_ipv4 read if
    // it was one; a label starts with a letter or digit.
    if seen & 4 == 0 || text[0] == b'.' || text[0] == b'-' {
        return Err(ParseError::BadUri);
    }
    Ok((Host::Name(text), i))
}

/// A dotted quad (RFC 3261 §25.1 IPv4address) at the start of `s`, when
/// what follows it cannot go on as a hostname; otherwise `None`, and the
/// general path reads a name or refuses.
fn scan_ipv4(s: &[u8]) -> Option<(Host<'_>, usize)> {
    let mut octets = [0u8; 4];
    let mut n = 0;
    let mut octet: u16 = 0;
    let mut digits = 0;
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        match b {
            b'0'..=b'9' if digits < 3 => {
                octet = octet * 10 + u16::from(b - b'0');
                digits += 1;
            }
            b'.' if digits > 0 && n < 3 => {
                octets[n] = u8::try_from(octet).ok()?;
                n += 1;
                octet = 0;
                digits = 0;
            }
            _ => break,
        }
        i += 1;
    }
    if digits == 0 || n != 3 || s.get(i).is_some_and(|&b| HOST_CLASS[b as usize] != 0) {
        return None;
    }
    octets[3] = u8::try_from(octet).ok()?;
    Some((Host::V4(Ipv4Addr::from(octets)), i))
}

/// A parsed URI. Slices borrow the message buffer; escapes are not decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    pub scheme: Scheme,
    /// The whole URI as written.
    pub raw: &'a [u8],
    /// User part (sip/sips), the number (tel) or the opaque part (other schemes).
    pub user: Option<&'a [u8]>,
    pub password: Option<&'a [u8]>,
    pub host: Host<'a>,
    /// The host exactly as written (brackets kept for IPv6).
    pub host_raw: &'a [u8],
    pub port: Option<u16>,
    /// Parameters as written, starting with `;` (empty when none).
    pub params: &'a [u8],
    /// Headers after `?`, without the `?`.
    pub headers: Option<&'a [u8]>,
    pub transport: Option<&'a [u8]>,
    pub user_param: Option<&'a [u8]>,
    pub method: Option<&'a [u8]>,
    pub maddr: Option<&'a [u8]>,
    pub ttl: Option<u8>,
    pub lr: bool,
}

impl<'a> Uri<'a> {
    pub fn parse(s: &'a [u8]) -> Result<Uri<'a>> {
        if s.len() > MAX_URI_LEN {
            return Err(ParseError::UriTooLong);
        }
        // Nearly every URI a proxy reads starts `sip:`, in any case: one
        // comparison of four bytes, letters folded, reads the scheme.
        if let Some(head) = s.first_chunk::<4>() {
            if u32::from_le_bytes(*head) | 0x0020_2020 == u32::from_le_bytes(*b"sip:") {
                let mut uri = Uri::empty(s, Scheme::Sip);
                uri.parse_sip_rest(&s[4..])?;
                return Ok(uri);
            }
        }
        // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"
        let colon = s
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
            .ok_or(ParseError::BadUri)?;
        if colon == 0 || s[colon] != b':' || !s[0].is_ascii_alphabetic() {
            return Err(ParseError::BadUri);
        }
        let scheme_text = &s[..colon];
        let rest = &s[colon + 1..];
        let mut uri = Uri::empty(s, Scheme::Other);
        if eq_lower(scheme_text, b"sip") {
            uri.scheme = Scheme::Sip;
        } else if eq_lower(scheme_text, b"sips") {
            uri.scheme = Scheme::Sips;
        } else if eq_lower(scheme_text, b"tel") {
            uri.scheme = Scheme::Tel;
            let end = find_byte(rest, b';').unwrap_or(rest.len());
            if end == 0 || !component_ok(rest) {
                return Err(ParseError::BadUri);
            }
            uri.user = Some(&rest[..end]);
            uri.params = &rest[end..];
            uri.scan_params()?;
            return Ok(uri);
        } else {
            if rest.is_empty() || !component_ok(rest) {
                return Err(ParseError::BadUri);
            }
            uri.user = Some(rest);
            return Ok(uri);
        }
        uri.parse_sip_rest(rest)?;
        Ok(uri)
    }

    /// A URI of `scheme` written as `raw`, nothing else read yet.
    fn empty(raw: &'a [u8], scheme: Scheme) -> Uri<'a> {
        Uri {
            scheme,
            raw,
            user: None,
            password: None,
            host: Host::None,
            host_raw: b"",
            port: None,
            params: b"",
            headers: None,
            transport: None,
            user_param: None,
            method: None,
            maddr: None,
            ttl: None,
            lr: false,
        }
    }

    /// `[userinfo@]hostport[;params][?headers]` (RFC 3261 §25.1 SIP-URI).
    fn parse_sip_rest(&mut self, rest: &'a [u8]) -> Result<()> {
        // Every byte visible ASCII; escapes checked only if a '%' is there;
        // the host's own stricter rules follow. Neither params nor headers
        // may hold a raw '@', so the last one present always ends the
        // userinfo (which may itself contain ';' and '?').
        if !all_visible(rest) {
            return Err(ParseError::BadUri);
        }
        if find_byte(rest, b'%').is_some() && !component_ok(rest) {
            return Err(ParseError::BadUri);
        }
        let mut at = find_byte(rest, b'@');
        while let Some(a) = at {
            match find_byte(&rest[a + 1..], b'@') {
                Some(next) => at = Some(a + 1 + next),
                None => break,
            }
        }
        let mut hostport = rest;
        if let Some(at) = at {
            let userinfo = &rest[..at];
            hostport = &rest[at + 1..];
            let (user, password) = match find_byte(userinfo, b':') {
                Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                None => (userinfo, None),
            };
            if user.is_empty() {
                return Err(ParseError::BadUri);
            }
            self.user = Some(user);
            self.password = password;
        }
        let (host, host_len) = if hostport.first() == Some(&b'[') {
            let close = find_byte(hostport, b']').ok_or(ParseError::BadUri)?;
            (parse_ipv6_reference(&hostport[..=close])?, close + 1)
        } else {
            scan_host(hostport)?
        };
        self.host = host;
        self.host_raw = &hostport[..host_len];
        let mut tail = &hostport[host_len..];
        if tail.first() == Some(&b':') {
            let digits = tail[1..]
                .iter()
                .position(|&b| b == b';' || b == b'?')
                .unwrap_or(tail.len() - 1);
            self.port = Some(parse_u16(&tail[1..1 + digits]).map_err(|_| ParseError::BadUri)?);
            tail = &tail[1 + digits..];
        }
        if !matches!(tail.first(), None | Some(b';' | b'?')) {
            return Err(ParseError::BadUri);
        }
        let (params, headers) = match find_byte(tail, b'?') {
            Some(q) => (&tail[..q], Some(&tail[q + 1..])),
            None => (tail, None),
        };
        self.params = params;
        self.headers = headers;
        self.scan_params()
    }

    fn scan_params(&mut self) -> Result<()> {
        for p in Params::new(self.params) {
            let p = p.map_err(|_| ParseError::BadUri)?;
            let n = p.name;
            match n.len() {
                9 if eq_lower(n, b"transport") => self.transport = p.value,
                4 if eq_lower(n, b"user") => self.user_param = p.value,
                6 if eq_lower(n, b"method") => self.method = p.value,
                5 if eq_lower(n, b"maddr") => self.maddr = p.value,
                3 if eq_lower(n, b"ttl") => {
                    let v = p.value.ok_or(ParseError::BadUri)?;
                    self.ttl = Some(
                        u8::try_from(parse_u16(v).map_err(|_| ParseError::BadUri)?)
                            .map_err(|_| ParseError::BadUri)?,
                    );
                }
                2 if eq_lower(n, b"lr") => self.lr = true,
                _ => {}
            }
        }
        Ok(())
    }

    /// The host as text, without the brackets of an IPv6 reference.
    pub fn host_text(&self) -> &'a [u8] {
        let raw = self.host_raw;
        raw.strip_prefix(b"[")
            .and_then(|h| h.strip_suffix(b"]"))
            .unwrap_or(raw)
    }

    /// The port, or the scheme's default (RFC 3261 §19.1.2: 5060, 5061
    /// for sips).
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(if self.scheme == Scheme::Sips {
            5061
        } else {
            5060
        })
    }

    /// Iterates every parameter, known ones included.
    pub fn param_iter(&self) -> Params<'a> {
        Params::new(self.params)
    }

    /// Value of a parameter by name (case-insensitive); `Some(None)` for a flag.
    pub fn param(&self, name: &[u8]) -> Option<Option<&'a [u8]>> {
        self.param_iter()
            .filter_map(|p| p.ok())
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value)
    }

    /// URI equivalence of RFC 3261 §19.1.4.
    pub fn equivalent(&self, other: &Uri<'_>) -> bool {
        if self.scheme != other.scheme {
            return false;
        }
        match self.scheme {
            Scheme::Sip | Scheme::Sips => {}
            // tel (RFC 3966 §4) and others: compare the rest case-insensitively
            // after unescaping; a reasonable subset of their own rules.
            _ => {
                return escaped_eq(self.user.unwrap_or(b""), other.user.unwrap_or(b""), true)
                    && params_equal_unordered(self.params, other.params);
            }
        }
        // userinfo is case-sensitive, escapes decoded.
        if !opt_escaped_eq(self.user, other.user, false)
            || !opt_escaped_eq(self.password, other.password, false)
        {
            return false;
        }
        if !self.host.matches(&other.host) || self.port != other.port {
            return false;
        }
        // A component with a default value (transport, ttl, user, method)
        // or an maddr present in only one URI never matches; other
        // parameters in only one are ignored.
        for name in [&b"user"[..], b"ttl", b"method", b"maddr", b"transport"] {
            if self.param(name).is_some() != other.param(name).is_some() {
                return false;
            }
        }
        for p in self.param_iter().filter_map(|p| p.ok()) {
            if let Some(v) = other.param(p.name) {
                if !opt_escaped_eq(p.value, v, true) {
                    return false;
                }
            }
        }
        // Headers are never ignored: every one must be in both and match.
        headers_equal(self.headers, other.headers)
    }
}

/// A URI component: visible ASCII only, and every `%` a valid escape.
fn component_ok(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                if !(s.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
                {
                    return false;
                }
                i += 3;
            }
            b if b <= b' ' || b >= 0x7f => return false,
            _ => i += 1,
        }
    }
    true
}

/// Splits `host[:port]`, honouring `[v6]:port`.
pub fn split_host_port(s: &[u8]) -> Result<(&[u8], Option<u16>)> {
    let colon = if s.first() == Some(&b'[') {
        let close = memchr::memchr(b']', s).ok_or(ParseError::BadUri)?;
        match s.get(close + 1) {
            None => None,
            Some(b':') => Some(close + 1),
            Some(_) => return Err(ParseError::BadUri),
        }
    } else {
        memchr::memchr(b':', s)
    };
    match colon {
        Some(c) => {
            let port = parse_u16(&s[c + 1..]).map_err(|_| ParseError::BadUri)?;
            Ok((&s[..c], Some(port)))
        }
        None => Ok((s, None)),
    }
}

fn escaped_eq(a: &[u8], b: &[u8], ignore_case: bool) -> bool {
    let mut x = unescaped(a);
    let mut y = unescaped(b);
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(c), Some(d)) => {
                let same = if ignore_case {
                    c.eq_ignore_ascii_case(&d)
                } else {
                    c == d
                };
                if !same {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

fn opt_escaped_eq(a: Option<&[u8]>, b: Option<&[u8]>, ignore_case: bool) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => escaped_eq(a, b, ignore_case),
        _ => false,
    }
}

fn params_equal_unordered(a: &[u8], b: &[u8]) -> bool {
    let contains_all = |x: &[u8], y: &[u8]| {
        Params::new(x).filter_map(|p| p.ok()).all(|p| {
            Params::new(y).filter_map(|q| q.ok()).any(|q| {
                q.name.eq_ignore_ascii_case(p.name) && opt_escaped_eq(p.value, q.value, true)
            })
        })
    };
    contains_all(a, b) && contains_all(b, a)
}

/// `name=value` pairs of URI headers (RFC 3261 §19.1.1).
fn header_pairs(h: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    h.split(|&c| c == b'&')
        .filter(|x| !x.is_empty())
        .map(|kv| match memchr::memchr(b'=', kv) {
            Some(i) => (&kv[..i], &kv[i + 1..]),
            None => (kv, &b""[..]),
        })
}

fn headers_equal(a: Option<&[u8]>, b: Option<&[u8]>) -> bool {
    let pairs = header_pairs;
    let contains_all = |x: &[u8], y: &[u8]| {
        pairs(x)
            .all(|(n, v)| pairs(y).any(|(m, w)| escaped_eq(n, m, true) && escaped_eq(v, w, false)))
    };
    let a = a.unwrap_or(b"");
    let b = b.unwrap_or(b"");
    contains_all(a, b) && contains_all(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri<'_> {
        Uri::parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_every_part() {
        let u = uri(
            "sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr;ttl=15;maddr=239.255.255.1;method=INVITE;user=phone?subject=hi&priority=urgent",
        );
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.user, Some(&b"alice"[..]));
        assert_eq!(u.password, Some(&b"secret"[..]));
        assert_eq!(u.host, Host::V6("2001:db8::1".parse().unwrap()));
        assert_eq!(u.host_raw, b"[2001:db8::1]");
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport, Some(&b"tcp"[..]));
        assert!(u.lr);
        assert_eq!(u.ttl, Some(15));
        assert_eq!(u.maddr, Some(&b"239.255.255.1"[..]));
        assert_eq!(u.method, Some(&b"INVITE"[..]));
        assert_eq!(u.user_param, Some(&b"phone"[..]));
        assert_eq!(u.headers, Some(&b"subject=hi&priority=urgent"[..]));
    }

    #[test]
    fn user_may_hold_semicolons_and_escapes() {
        let u = uri("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user, Some(&b"user;par=u%40example.net"[..]));
        assert_eq!(u.host, Host::Name(b"example.com"));
        assert_eq!(u.params, b"");
    }

    #[test]
    fn ipv4_and_names() {
        assert_eq!(
            uri("sip:10.0.0.1").host,
            Host::V4(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(uri("sip:a.b.c:5070").port, Some(5070));
        assert!(Uri::parse(b"sip:10.0.0.256").is_err());
        assert!(Uri::parse(b"sip:a b").is_err());
        assert!(Uri::parse(b"sip:host:99999").is_err());
        assert!(Uri::parse(b"sip:").is_err());
        assert!(Uri::parse(b"sip:@host").is_err());
        assert!(Uri::parse(b"sip:user@host;%zz").is_err());
        assert!(Uri::parse(b"<sip:host>").is_err());
    }

    #[test]
    fn addresses_and_names_that_start_with_digits() {
        fn host(s: &str) -> Result<Host<'_>> {
            Host::parse(s.as_bytes())
        }
        assert_eq!(host("192.0.2.1"), Ok(Host::V4(Ipv4Addr::new(192, 0, 2, 1))));
        assert_eq!(host("010.0.0.1"), Ok(Host::V4(Ipv4Addr::new(10, 0, 0, 1))));
        assert_eq!(
            host("1.2.3.4a.example"),
            Ok(Host::Name(b"1.2.3.4a.example"))
        );
        assert_eq!(host("1.2.3.4-x"), Ok(Host::Name(b"1.2.3.4-x")));
        assert_eq!(host("1.2.3.4.com"), Ok(Host::Name(b"1.2.3.4.com")));
        for bad in [
            "1.2.3.256",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            "1234.1.1.1",
            "1.2.3.4.",
        ] {
            assert!(host(bad).is_err(), "{bad}");
        }
        let u = Uri::parse(b"sip:10.0.0.7:5062;transport=udp").unwrap();
        assert_eq!(
            (u.host, u.port),
            (Host::V4(Ipv4Addr::new(10, 0, 0, 7)), Some(5062))
        );
        assert!(eq_lower(b"Phone-Context", b"phone-context"));
        assert!(!eq_lower(b"phone\rcontext", b"phone-context"));
        assert!(!eq_lower(b"TAG", b"tagx"));
    }

    #[test]
    fn scheme_names_in_any_case() {
        for (text, scheme) in [
            ("sip:a@b", Scheme::Sip),
            ("SIP:a@b", Scheme::Sip),
            ("sIp:a@b", Scheme::Sip),
            ("SIPS:a@b", Scheme::Sips),
            ("Tel:+1", Scheme::Tel),
        ] {
            assert_eq!(uri(text).scheme, scheme, "{text}");
        }
        // Only letters fold: these are other schemes or malformed.
        assert!(Uri::parse(b"sip\x1a:a@b").is_err());
        assert_eq!(uri("sipx:a@b").scheme, Scheme::Other);
    }

    #[test]
    fn tel_and_opaque_schemes() {
        let t = uri("tel:+1-201-555-0123;phone-context=example.com");
        assert_eq!(t.scheme, Scheme::Tel);
        assert_eq!(t.user, Some(&b"+1-201-555-0123"[..]));
        assert_eq!(t.host, Host::None);
        let o = uri("nobodyknowsthisscheme:totallyopaquecontent");
        assert_eq!(o.scheme, Scheme::Other);
    }

    // The equivalent and non-equivalent pairs of RFC 3261 §19.1.4.
    #[test]
    fn rfc3261_equivalent_pairs() {
        let pairs = [
            (
                "sip:%61lice@atlanta.com;transport=TCP",
                "sip:alice@AtLanTa.CoM;Transport=tcp",
            ),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
            (
                "sip:carol@chicago.com;newparam=5",
                "sip:carol@chicago.com;security=on",
            ),
            (
                "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
                "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
            ),
            (
                "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
                "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
            ),
        ];
        for (a, b) in pairs {
            assert!(uri(a).equivalent(&uri(b)), "{a} == {b}");
            assert!(uri(b).equivalent(&uri(a)), "{b} == {a}");
        }
    }

    #[test]
    fn rfc3261_non_equivalent_pairs() {
        let pairs = [
            (
                "SIP:ALICE@AtLanTa.CoM;Transport=udp",
                "sip:alice@AtLanTa.CoM;Transport=UDP",
            ),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
            (
                "sip:bob@biloxi.com",
                "sip:bob@biloxi.com:6000;transport=tcp",
            ),
            (
                "sip:carol@chicago.com",
                "sip:carol@chicago.com?Subject=next%20meeting",
            ),
            ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
            ("sip:bob@biloxi.com;user=phone", "sip:bob@biloxi.com"),
        ];
        for (a, b) in pairs {
            assert!(!uri(a).equivalent(&uri(b)), "{a} != {b}");
        }
    }
}
