//! sanity (Kamailio's): `sanity_check([msg_checks [, uri_checks]])` with
//! Kamailio's check bits (`bits`): Request-URI scheme (416), required
//! headers (400; with rser's strict validation of every header it
//! parses), Via version (505) and transport, CSeq method and number,
//! Content-Length against the bytes sent, Expires, Proxy-Require (420
//! with Unsupported, against `proxy_require`), the URIs `uri_checks`
//! names (1 Request-URI, 2 From, 4 To, 8 Contact), digest credentials
//! and duplicate tags. A request that fails is answered with the code the
//! check implies and its reason (not an ACK, nor with `noreply`), and the
//! action is false, or, with `autodrop` (Kamailio's default 1), ends the
//! script. Bit 1 (the Request-URI's SIP version) always holds here, and
//! bit 32 (the CSeq method) for a request the core routed: the core
//! answers 505 to another SIP version and 400 to a CSeq naming another
//! method before the script runs.

use crate::cfg::ConfigError;
use crate::cfg::ast::Arg;
use crate::cfg::fixup::{Fixup, int_in};
use crate::cfg::program::Param;
use crate::modules::def::{Cx, Hooks, Module, ParamType, Routes, Runtime, Start, action, bad_args};
use crate::script::MsgCtx;
use crate::sip::{Contact, HeaderKind, Message, NameAddr, ParseError, Uri};

use ParamType::Int;

const SANITY_CHECK: u8 = 0;

pub static MODULE: Module = Module {
    name: "sanity",
    params: &[
        ("default_checks", Int),
        ("uri_checks", Int),
        ("autodrop", Int),
        ("noreply", Int),
        ("proxy_require", ParamType::Str),
    ],
    actions: &[action(
        "sanity_check",
        SANITY_CHECK,
        (0, 2),
        masks,
        Routes::ANY,
    )],
    counters: &["sanity_failed"],
    hooks: Some(&Hooks::runtime(start)),
    unapplied: &[],
    check: None,
};

/// Kamailio's default masks (every message check but the costly ones;
/// Request-URI, From and To).
const DEFAULT_MSG_CHECKS: i64 = 999;
const DEFAULT_URI_CHECKS: i64 = 7;

fn masks(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    let m = a.first().map(|m| int_in(m, 0, 0xFFFF)).transpose()?;
    let u = a.get(1).map(|u| int_in(u, 0, 0xFF)).transpose()?;
    Ok(vec![
        Param::Int(m.unwrap_or(-1)),
        Param::Int(u.unwrap_or(-1)),
    ])
}

struct Sanity {
    default_checks: i64,
    uri_checks: i64,
    autodrop: bool,
    noreply: bool,
    /// The extensions a Proxy-Require may name (`proxy_require`, a comma
    /// list; none by default, as Kamailio's).
    proxy_require: Vec<String>,
}

fn start<'a>(s: &Start<'a>) -> Box<dyn Runtime + 'a> {
    let c = s.config;
    Box::new(Sanity {
        default_checks: c.modparam_int("sanity", "default_checks", DEFAULT_MSG_CHECKS),
        uri_checks: c.modparam_int("sanity", "uri_checks", DEFAULT_URI_CHECKS),
        autodrop: c.modparam_int("sanity", "autodrop", 1) != 0,
        noreply: c.modparam_int("sanity", "noreply", 0) != 0,
        proxy_require: c
            .modparam_str("sanity", "proxy_require", "")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

/// Kamailio's message check bits, with the reply each failure gets.
pub mod bits {
    pub const RURI_SIP_VERSION: i64 = 1;
    pub const RURI_SCHEME: i64 = 2;
    pub const REQUIRED_HEADERS: i64 = 4;
    pub const VIA_SIP_VERSION: i64 = 8;
    pub const VIA_PROTOCOL: i64 = 16;
    pub const CSEQ_METHOD: i64 = 32;
    pub const CSEQ_VALUE: i64 = 64;
    pub const CONTENT_LENGTH: i64 = 128;
    pub const EXPIRES_VALUE: i64 = 256;
    pub const PROXY_REQUIRE: i64 = 512;
    pub const PARSE_URIS: i64 = 1024;
    pub const DIGEST: i64 = 2048;
    pub const DUPLICATE_TAGS: i64 = 4096;
}

/// Why a message failed: the reply's code and reason, and (420) the
/// extensions it required that are not supported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: u16,
    pub reason: String,
    pub unsupported: Vec<String>,
}

fn problem_of(code: u16, reason: &str) -> Option<Problem> {
    Some(Problem {
        code,
        reason: reason.to_string(),
        unsupported: Vec::new(),
    })
}

/// The first problem the checks find, in Kamailio's order. `supported`:
/// the extensions a Proxy-Require may name (`proxy_require`). A message
/// the core could not parse never reaches the script: the core answers
/// it as this would (505 for a SIP version other than 2.0, 400 for a
/// broken Content-Length), so bit 1 holds for every message here.
pub fn problem(
    msg: &Message<'_>,
    checks: i64,
    uri_checks: i64,
    supported: &[String],
) -> Option<Problem> {
    use bits::*;
    let request = msg.is_request();
    if checks & RURI_SCHEME != 0 && request {
        let ruri = msg.request_uri_raw();
        let scheme_ok = crate::sip::uri::is_sip_scheme(ruri)
            || ruri
                .get(..4)
                .is_some_and(|s| s.eq_ignore_ascii_case(b"tel:"));
        if !scheme_ok {
            return problem_of(416, "Unsupported URI Scheme in Request URI");
        }
    }
    // RFC 3261 §8.1.1: what every request carries.
    if checks & REQUIRED_HEADERS != 0
        && [
            HeaderKind::Via,
            HeaderKind::From,
            HeaderKind::To,
            HeaderKind::CallId,
            HeaderKind::CSeq,
        ]
        .iter()
        .any(|k| msg.first(*k).is_none())
    {
        return problem_of(400, "Missing Required Header in Request");
    }
    if checks & (VIA_SIP_VERSION | VIA_PROTOCOL) != 0 {
        match msg.vias().next() {
            Some(Ok(v)) => {
                if checks & VIA_SIP_VERSION != 0
                    && !(v.protocol.eq_ignore_ascii_case(b"SIP") && v.version == b"2.0")
                {
                    return problem_of(505, "Version Not Supported (Via)");
                }
                let known = [&b"UDP"[..], b"TCP", b"TLS", b"SCTP", b"WS", b"WSS"];
                if checks & VIA_PROTOCOL != 0
                    && !known.iter().any(|t| t.eq_ignore_ascii_case(v.transport))
                {
                    return problem_of(400, "Unsupported Transport in Topmost Via");
                }
            }
            _ => return problem_of(400, "Bad Via"),
        }
    }
    if checks & (CSEQ_METHOD | CSEQ_VALUE) != 0 {
        match msg.cseq() {
            // RFC 3261 §8.1.1.5: a number below 2^31 (the parser
            // refuses others).
            Ok(cseq) if checks & CSEQ_VALUE != 0 && cseq.number >= 1 << 31 => {
                return problem_of(400, "CSeq number is illegal");
            }
            Ok(cseq)
                if checks & CSEQ_METHOD != 0 && request && cseq.method_raw != msg.method_raw() =>
            {
                return problem_of(400, "CSeq method does not match request method");
            }
            Err(_) if checks & CSEQ_VALUE != 0 => {
                return problem_of(400, "CSeq number is illegal");
            }
            _ => {}
        }
    }
    // The bytes after the header section, not the body Content-Length
    // cut (RFC 3261 §18.3 lets a datagram's extra bytes be ignored; the
    // check reports them).
    if checks & CONTENT_LENGTH != 0
        && msg
            .content_length()
            .is_some_and(|n| n as usize != msg.buf().len() - msg.body_span().range().start)
    {
        return problem_of(400, "Content-Length mis-match");
    }
    if checks & EXPIRES_VALUE != 0 && msg.expires().is_err() {
        return problem_of(400, "Expires value is illegal");
    }
    if checks & PROXY_REQUIRE != 0 && request {
        let unsupported: Vec<String> = msg
            .all(HeaderKind::ProxyRequire)
            .flat_map(|h| msg.value(h).split(|&b| b == b','))
            .map(|t| String::from_utf8_lossy(t).trim().to_string())
            .filter(|t| !t.is_empty() && !supported.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .collect();
        if !unsupported.is_empty() {
            return Some(Problem {
                code: 420,
                reason: "Bad Extension".into(),
                unsupported,
            });
        }
    }
    if checks & PARSE_URIS != 0 || uri_checks != 0 {
        let u = if checks & PARSE_URIS != 0 && uri_checks == 0 {
            15
        } else {
            uri_checks
        };
        if let Some(p) = uri_problem(msg, u) {
            return Some(p);
        }
    }
    if checks & DIGEST != 0
        && msg
            .credentials(false)
            .chain(msg.credentials(true))
            .any(|c| c.is_err())
    {
        return problem_of(400, "Malformed Credentials");
    }
    if checks & DUPLICATE_TAGS != 0 {
        let tags = |kind| {
            msg.all(kind)
                .next()
                .and_then(|h| NameAddr::parse(msg.value(h)).ok())
                .map_or(0, |n| {
                    n.param_iter()
                        .filter_map(|p| p.ok())
                        .filter(|p| p.name.eq_ignore_ascii_case(b"tag"))
                        .count()
                })
        };
        if tags(HeaderKind::From) > 1 || tags(HeaderKind::To) > 1 {
            return problem_of(400, "Duplicate Tag");
        }
    }
    // Then every other rule of rser's strict validation (duplicate
    // headers, values that do not parse), with the required headers.
    if checks & REQUIRED_HEADERS != 0 {
        match msg.validate() {
            Ok(()) | Err(ParseError::CSeqMethodMismatch) => {}
            Err(e) => return problem_of(400, e.reason()),
        }
    }
    None
}

/// The URIs the `uri_checks` bits name (1 Request-URI, 2 From, 4 To, 8
/// Contact) parsed.
fn uri_problem(msg: &Message<'_>, uri_checks: i64) -> Option<Problem> {
    let bad = |what: &str| problem_of(400, &format!("Bad {what} URI"));
    if uri_checks & 1 != 0 && msg.is_request() && Uri::parse(msg.request_uri_raw()).is_err() {
        return bad("Request");
    }
    if uri_checks & 2 != 0 && msg.from().and_then(|f| f.uri()).is_err() {
        return bad("From");
    }
    if uri_checks & 4 != 0 && msg.to().and_then(|t| t.uri()).is_err() {
        return bad("To");
    }
    if uri_checks & 8 != 0
        && msg
            .contacts()
            .any(|c: crate::sip::Result<Contact<'_>>| match c {
                Ok(Contact::Addr(a)) => a.uri().is_err(),
                Ok(Contact::Star) => false,
                Err(_) => true,
            })
    {
        return bad("Contact");
    }
    None
}

impl Runtime for Sanity {
    fn call(&mut self, cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, id: u8, args: &[Param]) -> i32 {
        let [Param::Int(m), Param::Int(u)] = args else {
            return bad_args("sanity", id);
        };
        let m = if *m < 0 { self.default_checks } else { *m };
        let u = if *u < 0 { self.uri_checks } else { *u };
        let Some(p) = problem(ctx.msg, m, u, &self.proxy_require) else {
            return 1;
        };
        cx.counts.add(0, 1);
        log::info!("sanity_check: {} from {}", p.reason, ctx.src);
        let is_ack = ctx.msg.method() == Some(crate::sip::Method::Ack);
        if ctx.msg.is_request() && !self.noreply && !is_ack {
            // RFC 3261 §8.2.2.3: a 420 lists what is not supported.
            let headers = match p.unsupported.is_empty() {
                true => Vec::new(),
                false => format!("Unsupported: {}\r\n", p.unsupported.join(", ")).into_bytes(),
            };
            cx.shell.reply(ctx, p.code, p.reason.as_bytes(), &headers);
        }
        if self.autodrop { 0 } else { -1 }
    }
}

#[cfg(test)]
mod tests {
    use super::bits::*;
    use super::*;

    fn good() -> String {
        String::from_utf8(crate::script::testing::request(
            "INVITE",
            "sip:bob@biloxi.example",
        ))
        .unwrap()
    }

    fn check(text: &str, checks: i64, uri_checks: i64) -> Option<(u16, String)> {
        let m = Message::parse(text.as_bytes()).expect("parses");
        problem(&m, checks, uri_checks, &["path".to_string()]).map(|p| (p.code, p.reason))
    }

    /// Each check, and a message that trips it with the reply it gets.
    #[test]
    fn every_check_trips_on_its_message() {
        let g = good();
        assert_eq!(check(&g, 0xFFFF, 15), None, "{g}");
        let with = |from: &str, to: &str| g.replacen(from, to, 1);
        let body =
            |len: &str| g.replace("Content-Length: 0", &format!("Content-Length: {len}")) + "x";
        let cases: Vec<(i64, String, u16, &str)> = vec![
            (
                RURI_SCHEME,
                with("sip:bob@biloxi.example", "http://biloxi.example/"),
                416,
                "Unsupported URI Scheme in Request URI",
            ),
            (
                REQUIRED_HEADERS,
                g.lines()
                    .filter(|l| !l.starts_with("Call-ID"))
                    .map(|l| format!("{l}\r\n"))
                    .collect::<String>(),
                400,
                "Missing Required Header in Request",
            ),
            (
                VIA_SIP_VERSION,
                with("SIP/2.0/UDP", "SIP/3.0/UDP"),
                505,
                "Version Not Supported (Via)",
            ),
            (
                VIA_PROTOCOL,
                with("SIP/2.0/UDP", "SIP/2.0/QUIC"),
                400,
                "Unsupported Transport in Topmost Via",
            ),
            (
                CSEQ_METHOD,
                with("CSeq: 314159 INVITE", "CSeq: 314159 BYE"),
                400,
                "CSeq method does not match request method",
            ),
            (
                CSEQ_VALUE,
                with("CSeq: 314159 INVITE", "CSeq: 2147483648 INVITE"),
                400,
                "CSeq number is illegal",
            ),
            (CONTENT_LENGTH, body("0"), 400, "Content-Length mis-match"),
            (
                EXPIRES_VALUE,
                with("Max-Forwards", "Expires: soon\r\nMax-Forwards"),
                400,
                "Expires value is illegal",
            ),
            (
                PROXY_REQUIRE,
                with("Max-Forwards", "Proxy-Require: path, foo\r\nMax-Forwards"),
                420,
                "Bad Extension",
            ),
            (
                PARSE_URIS,
                with("Max-Forwards", "Contact: <sip:@@>\r\nMax-Forwards"),
                400,
                "Bad Contact URI",
            ),
            (
                DIGEST,
                with(
                    "Max-Forwards",
                    "Authorization: Digest username=\"a\r\nMax-Forwards",
                ),
                400,
                "Malformed Credentials",
            ),
            (
                DUPLICATE_TAGS,
                with(";tag=", ";tag=x;tag="),
                400,
                "Duplicate Tag",
            ),
        ];
        for (bit, text, code, reason) in cases {
            assert_eq!(
                check(&text, bit, 0),
                Some((code, reason.to_string())),
                "bit {bit}: {text}"
            );
            // Not asked: not checked.
            let others = 0xFFFF & !bit & !REQUIRED_HEADERS;
            if bit != REQUIRED_HEADERS && bit != PARSE_URIS {
                assert_ne!(
                    check(&text, others, 0).map(|p| p.1),
                    Some(reason.to_string()),
                    "bit {bit}"
                );
            }
        }
        let text = with("Max-Forwards", "Proxy-Require: foo\r\nMax-Forwards");
        let m = Message::parse(text.as_bytes()).unwrap();
        assert_eq!(
            problem(&m, PROXY_REQUIRE, 0, &[]).unwrap().unsupported,
            ["foo"]
        );
    }
}
