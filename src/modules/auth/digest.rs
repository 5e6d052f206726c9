//! Digest computation (RFC 2617 §3.2.2, RFC 8760's SHA-256 for SIP, as
//! RFC 7616 defines it): HA1, HA2 and the expected response, as lowercase
//! hex. Pure functions.

use arrayvec::ArrayString;
use md5::{Digest, Md5};
use sha2::Sha256;

/// A hash as lowercase hex: 32 digits for MD5, 64 for SHA-256.
pub type Hex = ArrayString<64>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// The `algorithm` parameter (absent: MD5, RFC 2617 §3.2.1). The
    /// `-sess` variants are not served.
    pub fn parse(param: Option<&[u8]>) -> Option<Algorithm> {
        match param {
            None => Some(Algorithm::Md5),
            Some(p) if p.eq_ignore_ascii_case(b"MD5") => Some(Algorithm::Md5),
            Some(p) if p.eq_ignore_ascii_case(b"SHA-256") => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// H(p1:p2:...) as hex.
    pub fn hash(self, parts: &[&[u8]]) -> Hex {
        match self {
            Algorithm::Md5 => hex(&joined::<Md5>(parts)),
            Algorithm::Sha256 => hex(&joined::<Sha256>(parts)),
        }
    }
}

fn joined<D: Digest>(parts: &[&[u8]]) -> md5::digest::Output<D> {
    let mut d = D::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            d.update(b":");
        }
        d.update(p);
    }
    d.finalize()
}

fn hex(bytes: &[u8]) -> Hex {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = Hex::new();
    for b in bytes.iter().take(32) {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// HA1 = H(username:realm:password).
pub fn ha1(alg: Algorithm, user: &[u8], realm: &[u8], password: &[u8]) -> Hex {
    alg.hash(&[user, realm, password])
}

/// What the client's response must be.
pub struct Challenge<'a> {
    pub nonce: &'a [u8],
    /// `qop=auth`'s nonce count and client nonce (None: no qop, RFC 2069).
    pub qop_auth: Option<(&'a [u8], &'a [u8])>,
    pub method: &'a [u8],
    pub uri: &'a [u8],
}

/// response = H(HA1:nonce:nc:cnonce:qop:HA2), or H(HA1:nonce:HA2)
/// without qop; HA2 = H(method:uri).
pub fn response(alg: Algorithm, ha1: &[u8], c: &Challenge<'_>) -> Hex {
    let ha2 = alg.hash(&[c.method, c.uri]);
    match c.qop_auth {
        Some((nc, cnonce)) => alg.hash(&[ha1, c.nonce, nc, cnonce, b"auth", ha2.as_bytes()]),
        None => alg.hash(&[ha1, c.nonce, ha2.as_bytes()]),
    }
}

/// Compares without an early exit, so timing tells nothing of how much
/// of a response was right.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).fold(0u8, |acc, (x, y)| {
            acc | (x.to_ascii_lowercase() ^ y.to_ascii_lowercase())
        }) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_md5_example() {
        // RFC 2617 §3.5.
        let h = ha1(
            Algorithm::Md5,
            b"Mufasa",
            b"testrealm@host.com",
            b"Circle Of Life",
        );
        let c = Challenge {
            nonce: b"dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop_auth: Some((b"00000001", b"0a4f113b")),
            method: b"GET",
            uri: b"/dir/index.html",
        };
        assert_eq!(
            response(Algorithm::Md5, h.as_bytes(), &c).as_str(),
            "6629fae49393a05397450978507c4ef1"
        );
    }

    #[test]
    fn rfc7616_sha256_example() {
        // RFC 7616 §3.9.1.
        let h = ha1(
            Algorithm::Sha256,
            b"Mufasa",
            b"http-auth@example.org",
            b"Circle of Life",
        );
        let c = Challenge {
            nonce: b"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            qop_auth: Some((b"00000001", b"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")),
            method: b"GET",
            uri: b"/dir/index.html",
        };
        assert_eq!(
            response(Algorithm::Sha256, h.as_bytes(), &c).as_str(),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn algorithms_and_comparison() {
        assert_eq!(Algorithm::parse(None), Some(Algorithm::Md5));
        assert_eq!(Algorithm::parse(Some(b"sha-256")), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::parse(Some(b"MD5-sess")), None);
        assert!(same(b"abCD", b"ABcd"));
        assert!(!same(b"abcd", b"abce"));
        assert!(!same(b"abc", b"abcd"));
    }
}
