//! The Via header value (RFC 3261 §20.42, §18.2.1; RFC 3581 rport).

use super::error::{ParseError, Result};
use super::scan::{
    Params, eq_lower, find_byte, is_lws, is_token_char, parse_u16, trim, trim_start,
};
use super::uri::{Host, split_host_port};

/// The RFC 3261 magic cookie that starts every compliant branch (§8.1.1.7).
pub const BRANCH_COOKIE: &[u8] = b"z9hG4bK";

/// The `rport` parameter of RFC 3581: absent, asked for (no value), or filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rport {
    Absent,
    Requested,
    Value(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// `SIP` in `SIP/2.0/UDP`.
    pub protocol: &'a [u8],
    pub version: &'a [u8],
    pub transport: &'a [u8],
    pub host: Host<'a>,
    /// The sent-by host as written.
    pub host_raw: &'a [u8],
    pub port: Option<u16>,
    /// Parameters as written, from the first `;` (empty when none).
    pub params: &'a [u8],
    pub branch: Option<&'a [u8]>,
    pub received: Option<&'a [u8]>,
    pub rport: Rport,
    /// The first `rport` parameter's name as written: where a proxy
    /// writes the value it fills in (RFC 3581 §4).
    pub rport_name: Option<&'a [u8]>,
    pub maddr: Option<&'a [u8]>,
    pub ttl: Option<u8>,
}

impl<'a> Via<'a> {
    /// Parses one Via value (the index has already split comma-joined ones).
    pub fn parse(s: &'a [u8]) -> Result<Via<'a>> {
        let mut rest = trim(s);
        // Nearly every Via starts `SIP/2.0/` exactly: one comparison reads
        // what the token-by-token path below would.
        let (protocol, version) = match rest.split_at_checked(8) {
            Some((head, tail)) if head == b"SIP/2.0/" => {
                rest = tail;
                (&head[..3], &head[4..7])
            }
            _ => {
                let protocol = take_token(&mut rest)?;
                expect_slash(&mut rest)?;
                let version = take_token(&mut rest)?;
                expect_slash(&mut rest)?;
                (protocol, version)
            }
        };
        let transport = take_token(&mut rest)?;
        if rest.first().is_none_or(|&b| !is_lws(b)) {
            return Err(ParseError::BadVia);
        }
        rest = trim_start(rest);
        // sent-by runs to the first ';' (params) or white space; COLON may
        // be surrounded by white space (RFC 3261 §25.1).
        let end = find_byte(rest, b';').unwrap_or(rest.len());
        let sent_by = &rest[..end];
        let params = &rest[end..];
        let (host_raw, port) = parse_sent_by(sent_by)?;
        let host = Host::parse(host_raw).map_err(|_| ParseError::BadVia)?;
        let mut via = Via {
            protocol,
            version,
            transport,
            host,
            host_raw,
            port,
            params,
            branch: None,
            received: None,
            rport: Rport::Absent,
            rport_name: None,
            maddr: None,
            ttl: None,
        };
        for p in Params::new(params) {
            let p = p.map_err(|_| ParseError::BadVia)?;
            let n = p.name;
            match n.len() {
                6 if eq_lower(n, b"branch") => {
                    via.branch = Some(p.value.ok_or(ParseError::BadVia)?);
                }
                8 if eq_lower(n, b"received") => {
                    via.received = Some(p.value.ok_or(ParseError::BadVia)?);
                }
                5 if eq_lower(n, b"rport") => {
                    via.rport_name = via.rport_name.or(Some(n));
                    via.rport = match p.value {
                        None => Rport::Requested,
                        Some(v) => Rport::Value(parse_u16(v).map_err(|_| ParseError::BadVia)?),
                    };
                }
                5 if eq_lower(n, b"maddr") => via.maddr = p.value,
                3 if eq_lower(n, b"ttl") => {
                    let v = p.value.ok_or(ParseError::BadVia)?;
                    let t = parse_u16(v).map_err(|_| ParseError::BadVia)?;
                    via.ttl = Some(u8::try_from(t).map_err(|_| ParseError::BadVia)?);
                }
                _ => {}
            }
        }
        Ok(via)
    }

    /// Every parameter, known ones included, in order.
    pub fn param_iter(&self) -> Params<'a> {
        Params::new(self.params)
    }

    /// True when the branch starts with the RFC 3261 magic cookie, so it is
    /// unique and transactions can be matched by it (§17.2.3).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch
            .is_some_and(|b| b.len() > BRANCH_COOKIE.len() && b.starts_with(BRANCH_COOKIE))
    }
}

fn take_token<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8]> {
    let s = trim_start(rest);
    let n = s.iter().position(|&b| !is_token_char(b)).unwrap_or(s.len());
    if n == 0 {
        return Err(ParseError::BadVia);
    }
    *rest = &s[n..];
    Ok(&s[..n])
}

fn expect_slash(rest: &mut &[u8]) -> Result<()> {
    let s = trim_start(rest);
    if s.first() != Some(&b'/') {
        return Err(ParseError::BadVia);
    }
    *rest = &s[1..];
    Ok(())
}

/// `host [COLON port]`, where COLON may carry white space around it.
fn parse_sent_by(s: &[u8]) -> Result<(&[u8], Option<u16>)> {
    let s = trim(s);
    if s.first() == Some(&b'[') {
        return split_host_port(s).map_err(|_| ParseError::BadVia);
    }
    match find_byte(s, b':') {
        Some(c) => {
            let host = trim(&s[..c]);
            let port = parse_u16(trim(&s[c + 1..])).map_err(|_| ParseError::BadVia)?;
            Ok((host, Some(port)))
        }
        None if s.iter().any(|&b| is_lws(b)) => Err(ParseError::BadVia),
        None => Ok((s, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_via() {
        let v = Via::parse(
            b"SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;received=192.0.2.1;rport;maddr=224.0.0.1;ttl=3;x=y",
        )
        .unwrap();
        assert_eq!(v.transport, b"UDP");
        assert_eq!(v.host, Host::Name(b"pc33.atlanta.com"));
        assert_eq!(v.port, Some(5066));
        assert_eq!(v.branch, Some(&b"z9hG4bK776asdhds"[..]));
        assert!(v.has_rfc3261_branch());
        assert_eq!(v.received, Some(&b"192.0.2.1"[..]));
        assert_eq!(v.rport, Rport::Requested);
        assert_eq!(v.maddr, Some(&b"224.0.0.1"[..]));
        assert_eq!(v.ttl, Some(3));
        let other: Vec<_> = v.param_iter().map(|p| p.unwrap().name).collect();
        assert_eq!(other.last(), Some(&&b"x"[..]));
    }

    #[test]
    fn white_space_around_slashes_and_colon() {
        let v = Via::parse(b"SIP  /   2.0\r\n  /UDP\r\n    192.0.2.2 : 5070 ;branch=390skdjuw")
            .unwrap();
        assert_eq!(v.version, b"2.0");
        assert_eq!(v.transport, b"UDP");
        assert_eq!(v.port, Some(5070));
        assert!(!v.has_rfc3261_branch());
    }

    #[test]
    fn sent_protocol_as_written() {
        let v = Via::parse(b"SIP/2.0/TCP h").unwrap();
        assert_eq!(
            (v.protocol, v.version, v.transport),
            (&b"SIP"[..], &b"2.0"[..], &b"TCP"[..])
        );
        let v = Via::parse(b"sip/2.0/udp h").unwrap();
        assert_eq!(
            (v.protocol, v.version, v.transport),
            (&b"sip"[..], &b"2.0"[..], &b"udp"[..])
        );
        assert!(Via::parse(b"SIP/2.0/").is_err());
        assert!(Via::parse(b"SIP/2.0/ UDP h").is_ok());
    }

    #[test]
    fn rport_value_and_ipv6() {
        let v = Via::parse(b"SIP/2.0/UDP [2001:db8::9]:5061;rport=6000").unwrap();
        assert_eq!(v.rport, Rport::Value(6000));
        assert_eq!(v.rport_name, Some(&b"rport"[..]));
        // The first one is where a value goes; the last one's value counts.
        let twice = Via::parse(b"SIP/2.0/UDP h;RPort;branch=z9hG4bKx;rport=7").unwrap();
        assert_eq!(
            (twice.rport, twice.rport_name),
            (Rport::Value(7), Some(&b"RPort"[..]))
        );
        assert_eq!(Via::parse(b"SIP/2.0/UDP h").unwrap().rport_name, None);
        assert_eq!(v.port, Some(5061));
        assert!(matches!(v.host, Host::V6(_)));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &b""[..],
            b"SIP/2.0",
            b"SIP/2.0/UDP",
            b"SIP/2.0/UDPhost",
            b"SIP/2.0/UDP host:port",
            b"SIP/2.0/UDP host;branch",
            b"SIP/2.0/UDP a b",
        ] {
            assert!(Via::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
