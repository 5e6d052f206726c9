//! SER's URI-rewriting actions on the current Request-URI: `rewriteuri`,
//! `rewritehost`, `rewritehostport`, `rewriteuser`, `rewriteuserpass`,
//! `rewriteport`, `prefix` and `strip`. Each writes the new URI into a
//! caller's buffer; parts not named stay as they were.

use std::fmt;

use crate::sip::build::decimal;
use crate::sip::{Scheme, Uri};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite<'s> {
    Uri(&'s [u8]),
    Host(&'s [u8]),
    /// `host[:port]`; without a port the URI loses its port.
    HostPort(&'s [u8]),
    User(&'s [u8]),
    /// `user[:password]`.
    UserPass(&'s [u8]),
    /// Empty removes the port.
    Port(&'s [u8]),
    /// Inserts before the user part.
    Prefix(&'s [u8]),
    /// Removes this many leading characters of the user part.
    Strip(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteError {
    /// The current URI does not parse.
    BadUri,
    /// `strip(n)` with fewer than `n` characters in the user part.
    UserTooShort,
    /// A host or port change on a URI without one (tel:, other schemes).
    NoHost,
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RewriteError::BadUri => "the current URI does not parse",
            RewriteError::UserTooShort => "the user part is shorter than the strip count",
            RewriteError::NoHost => "the URI has no host part",
        })
    }
}

/// Writes `cur` changed by `op` into `out` (cleared first).
pub fn rewrite(cur: &[u8], op: Rewrite<'_>, out: &mut Vec<u8>) -> Result<(), RewriteError> {
    out.clear();
    if let Rewrite::Uri(new) = op {
        out.extend_from_slice(new);
        return Ok(());
    }
    let uri = Uri::parse(cur).map_err(|_| RewriteError::BadUri)?;
    let colon = memchr::memchr(b':', cur).ok_or(RewriteError::BadUri)?;
    let scheme = &cur[..colon];
    let mut user = uri.user;
    let mut password = uri.password;
    let mut host = uri.host_raw;
    let mut port_text = [0u8; 10];
    let mut port: Option<&[u8]> = uri.port.map(|p| decimal(u32::from(p), &mut port_text));
    match op {
        Rewrite::Uri(_) => unreachable!("handled above"),
        Rewrite::Host(h) => host = h,
        Rewrite::HostPort(hp) => {
            let (h, p) = split_host_port(hp);
            host = h;
            port = p;
        }
        Rewrite::User(u) => user = (!u.is_empty()).then_some(u),
        Rewrite::UserPass(up) => match memchr::memchr(b':', up) {
            Some(c) => {
                user = Some(&up[..c]);
                password = Some(&up[c + 1..]);
            }
            None => {
                user = (!up.is_empty()).then_some(up);
                password = None;
            }
        },
        Rewrite::Port(p) => port = (!p.is_empty()).then_some(p),
        Rewrite::Prefix(_) | Rewrite::Strip(_) => {}
    }
    let prefixed = match op {
        Rewrite::Prefix(p) => Some((p, user.unwrap_or(b""))),
        _ => None,
    };
    if let Rewrite::Strip(n) = op {
        let u = user.unwrap_or(b"");
        if n > u.len() {
            return Err(RewriteError::UserTooShort);
        }
        user = (n < u.len()).then(|| &u[n..]);
    }
    let has_host = matches!(uri.scheme, Scheme::Sip | Scheme::Sips);
    if !has_host {
        // tel: and others keep only their number / opaque part.
        if !matches!(
            op,
            Rewrite::Prefix(_) | Rewrite::Strip(_) | Rewrite::User(_)
        ) {
            return Err(RewriteError::NoHost);
        }
        out.extend_from_slice(scheme);
        out.push(b':');
        if let Some((p, u)) = prefixed {
            out.extend_from_slice(p);
            out.extend_from_slice(u);
        } else {
            out.extend_from_slice(user.unwrap_or(b""));
        }
        out.extend_from_slice(uri.params);
        return Ok(());
    }
    out.extend_from_slice(scheme);
    out.push(b':');
    let user_written = match prefixed {
        Some((p, u)) => {
            out.extend_from_slice(p);
            out.extend_from_slice(u);
            true
        }
        None => match user {
            Some(u) => {
                out.extend_from_slice(u);
                true
            }
            None => false,
        },
    };
    if user_written {
        if let Some(pw) = password {
            out.push(b':');
            out.extend_from_slice(pw);
        }
        out.push(b'@');
    }
    out.extend_from_slice(host);
    if let Some(p) = port {
        out.push(b':');
        out.extend_from_slice(p);
    }
    out.extend_from_slice(uri.params);
    if let Some(h) = uri.headers {
        out.push(b'?');
        out.extend_from_slice(h);
    }
    Ok(())
}

/// `host[:port]` / `[v6][:port]`, without validation (checked at load).
fn split_host_port(s: &[u8]) -> (&[u8], Option<&[u8]>) {
    let search_from = if s.first() == Some(&b'[') {
        memchr::memchr(b']', s).unwrap_or(0)
    } else {
        0
    };
    match memchr::memrchr(b':', &s[search_from..]) {
        Some(c) => (&s[..search_from + c], Some(&s[search_from + c + 1..])),
        None => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(cur: &str, op: Rewrite<'_>) -> String {
        let mut out = Vec::new();
        rewrite(cur.as_bytes(), op, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The seed's table of URI-rewriting actions applied to
    /// sip:12345@foo.bar:6060. (The seed prints the rewritehost result as
    /// "192.168.10"; the action it describes keeps the host it is given.)
    #[test]
    fn the_seed_rewriting_table() {
        let u = "sip:12345@foo.bar:6060";
        let b = |s: &'static str| s.as_bytes();
        assert_eq!(
            apply(u, Rewrite::Host(b("192.168.0.10"))),
            "sip:12345@192.168.0.10:6060"
        );
        assert_eq!(
            apply(u, Rewrite::Uri(b("sip:alice@foo.bar"))),
            "sip:alice@foo.bar"
        );
        assert_eq!(
            apply(u, Rewrite::HostPort(b("192.168.0.10:3040"))),
            "sip:12345@192.168.0.10:3040"
        );
        assert_eq!(
            apply(u, Rewrite::User(b("alice"))),
            "sip:alice@foo.bar:6060"
        );
        assert_eq!(
            apply(u, Rewrite::UserPass(b("alice:pw"))),
            "sip:alice:pw@foo.bar:6060"
        );
        assert_eq!(apply(u, Rewrite::Port(b("1234"))), "sip:12345@foo.bar:1234");
        assert_eq!(apply(u, Rewrite::Prefix(b("9"))), "sip:912345@foo.bar:6060");
        assert_eq!(apply(u, Rewrite::Strip(2)), "sip:345@foo.bar:6060");
    }

    #[test]
    fn parameters_and_headers_are_kept() {
        assert_eq!(
            apply(
                "sip:1234@gw.example;user=phone?Subject=x",
                Rewrite::Strip(1)
            ),
            "sip:234@gw.example;user=phone?Subject=x"
        );
        assert_eq!(
            apply("sips:[::1]:5061;transport=tls", Rewrite::Prefix(b"00")),
            "sips:00@[::1]:5061;transport=tls"
        );
        assert_eq!(apply("sip:a@h:5", Rewrite::Port(b"")), "sip:a@h");
        assert_eq!(
            apply("sip:a@h:5", Rewrite::HostPort(b"[::1]")),
            "sip:a@[::1]"
        );
        assert_eq!(apply("sip:a:pw@h", Rewrite::User(b"b")), "sip:b:pw@h");
        assert_eq!(apply("sip:12@h", Rewrite::Strip(2)), "sip:h");
        assert_eq!(
            apply("tel:+1555;phone-context=x", Rewrite::Strip(2)),
            "tel:555;phone-context=x"
        );
    }

    #[test]
    fn errors() {
        let mut out = Vec::new();
        assert_eq!(
            rewrite(b"sip:1@h", Rewrite::Strip(2), &mut out),
            Err(RewriteError::UserTooShort)
        );
        assert_eq!(
            rewrite(b"garbage", Rewrite::Strip(1), &mut out),
            Err(RewriteError::BadUri)
        );
        assert_eq!(
            rewrite(b"tel:+1", Rewrite::Host(b"h"), &mut out),
            Err(RewriteError::NoHost)
        );
    }
}
