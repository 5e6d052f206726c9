//! Authorization and Proxy-Authorization digest credentials
//! (RFC 2617 §3.2.2, RFC 8760).

use super::error::{ParseError, Result};
use super::scan::{find_top_level, is_token, trim, unquote};

/// The parameters of a `Digest` credential. Quoted values are returned
/// without their quotes; escapes inside are left as written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DigestCredentials<'a> {
    pub username: Option<&'a [u8]>,
    pub realm: Option<&'a [u8]>,
    pub nonce: Option<&'a [u8]>,
    pub uri: Option<&'a [u8]>,
    pub response: Option<&'a [u8]>,
    pub algorithm: Option<&'a [u8]>,
    pub cnonce: Option<&'a [u8]>,
    pub opaque: Option<&'a [u8]>,
    pub qop: Option<&'a [u8]>,
    pub nc: Option<&'a [u8]>,
}

/// Walks the `name=value` list after a `Digest` scheme token, as both
/// credentials and challenges write it (RFC 2617 §1.2 auth-param, §3.2.1,
/// §3.2.2), calling `each` with the name and the unquoted value.
fn digest_params<'a>(s: &'a [u8], mut each: impl FnMut(&'a [u8], &'a [u8])) -> Result<()> {
    let s = trim(s);
    let sp = s
        .iter()
        .position(|&b| b == b' ' || b == b'\t' || b == b'\r')
        .ok_or(ParseError::BadCredentials)?;
    if !s[..sp].eq_ignore_ascii_case(b"Digest") {
        return Err(ParseError::BadCredentials);
    }
    let mut rest = trim(&s[sp..]);
    while !rest.is_empty() {
        let end = find_top_level(rest, b',')
            .map_err(|_| ParseError::BadCredentials)?
            .unwrap_or(rest.len());
        let item = trim(&rest[..end]);
        rest = if end < rest.len() {
            trim(&rest[end + 1..])
        } else {
            &[]
        };
        let eq = memchr::memchr(b'=', item).ok_or(ParseError::BadCredentials)?;
        let name = trim(&item[..eq]);
        if !is_token(name) {
            return Err(ParseError::BadCredentials);
        }
        each(name, unquote(trim(&item[eq + 1..])));
    }
    Ok(())
}

impl<'a> DigestCredentials<'a> {
    pub fn parse(s: &'a [u8]) -> Result<DigestCredentials<'a>> {
        let mut c = DigestCredentials::default();
        digest_params(s, |name, value| {
            if let Some(slot) = c.slot(name) {
                *slot = Some(value);
            }
        })?;
        if c.username.is_none() || c.realm.is_none() || c.nonce.is_none() || c.response.is_none() {
            return Err(ParseError::BadCredentials);
        }
        Ok(c)
    }

    /// The field a parameter name fills; unknown parameters are ignored
    /// (RFC 2617 §3.2.2 auth-param).
    fn slot(&mut self, name: &[u8]) -> Option<&mut Option<&'a [u8]>> {
        let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
        Some(if is(b"username") {
            &mut self.username
        } else if is(b"realm") {
            &mut self.realm
        } else if is(b"nonce") {
            &mut self.nonce
        } else if is(b"uri") {
            &mut self.uri
        } else if is(b"response") {
            &mut self.response
        } else if is(b"algorithm") {
            &mut self.algorithm
        } else if is(b"cnonce") {
            &mut self.cnonce
        } else if is(b"opaque") {
            &mut self.opaque
        } else if is(b"qop") {
            &mut self.qop
        } else if is(b"nc") {
            &mut self.nc
        } else {
            return None;
        })
    }
}

/// A `Digest` challenge from WWW-Authenticate or Proxy-Authenticate
/// (RFC 2617 §3.2.1), as a client reads it to answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DigestChallenge<'a> {
    pub realm: Option<&'a [u8]>,
    pub nonce: Option<&'a [u8]>,
    pub opaque: Option<&'a [u8]>,
    pub algorithm: Option<&'a [u8]>,
    /// The offered qop options as written (`"auth,auth-int"`).
    pub qop: Option<&'a [u8]>,
    pub stale: bool,
}

impl<'a> DigestChallenge<'a> {
    pub fn parse(s: &'a [u8]) -> Result<DigestChallenge<'a>> {
        let mut c = DigestChallenge::default();
        digest_params(s, |name, value| {
            let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
            if is(b"realm") {
                c.realm = Some(value);
            } else if is(b"nonce") {
                c.nonce = Some(value);
            } else if is(b"opaque") {
                c.opaque = Some(value);
            } else if is(b"algorithm") {
                c.algorithm = Some(value);
            } else if is(b"qop") {
                c.qop = Some(value);
            } else if is(b"stale") {
                c.stale = value.eq_ignore_ascii_case(b"true");
            }
        })?;
        if c.realm.is_none() || c.nonce.is_none() {
            return Err(ParseError::BadCredentials);
        }
        Ok(c)
    }

    /// Whether `qop=auth` is among the offered options.
    pub fn offers_qop_auth(&self) -> bool {
        self.qop.is_some_and(|q| {
            q.split(|&b| b == b',')
                .any(|o| trim(o).eq_ignore_ascii_case(b"auth"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc2617_credentials() {
        let c = DigestCredentials::parse(
            b"Digest username=\"bob\", realm=\"biloxi.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:bob@biloxi.com\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\", algorithm=SHA-256",
        )
        .unwrap();
        assert_eq!(c.username, Some(&b"bob"[..]));
        assert_eq!(c.qop, Some(&b"auth"[..]));
        assert_eq!(c.nc, Some(&b"00000001"[..]));
        assert_eq!(c.algorithm, Some(&b"SHA-256"[..]));
        assert_eq!(c.uri, Some(&b"sip:bob@biloxi.com"[..]));
    }

    #[test]
    fn rejects_non_digest_and_incomplete() {
        assert!(DigestCredentials::parse(b"Basic QWxhZGRpbjpvcGVu").is_err());
        assert!(DigestCredentials::parse(b"Digest username=\"bob\"").is_err());
        assert!(DigestCredentials::parse(b"Digest username=\"bob").is_err());
    }

    #[test]
    fn parses_a_challenge() {
        let c = DigestChallenge::parse(
            b"Digest realm=\"example.net\", nonce=\"abc\", qop=\"auth,auth-int\", algorithm=SHA-256, stale=TRUE",
        )
        .unwrap();
        assert_eq!(c.realm, Some(&b"example.net"[..]));
        assert_eq!(c.nonce, Some(&b"abc"[..]));
        assert_eq!(c.algorithm, Some(&b"SHA-256"[..]));
        assert!(c.offers_qop_auth() && c.stale);
        assert!(DigestChallenge::parse(b"Digest nonce=\"abc\"").is_err());
        assert!(DigestChallenge::parse(b"Digest realm=\"x\", nonce=\"abc").is_err());
    }
}
