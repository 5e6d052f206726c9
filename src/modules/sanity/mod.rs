//! sanity (Kamailio's): `sanity_check([msg_checks [, uri_checks]])`. A
//! request or reply that fails is answered `400` with the reason (not a
//! reply, nor with `noreply`), and the action is false, or, with
//! `autodrop` (Kamailio's default 1), ends the script.
//!
//! The checks are rser's strict validation (`sip/validate.rs`: required
//! headers, every known header parsed, Via, CSeq, Content-Length and the
//! rest of RFC 3261's cross-header rules) whenever any message check is
//! asked, whatever the bits (more than a Kamailio mask may ask, never
//! less), and the URIs the URI bits name (1 Request-URI, 2 From, 4 To, 8
//! Contact) parsed.

use crate::cfg::ConfigError;
use crate::cfg::ast::Arg;
use crate::cfg::fixup::{Fixup, int_in};
use crate::cfg::program::Param;
use crate::modules::def::{Cx, Hooks, Module, ParamType, Routes, Runtime, Start, action, bad_args};
use crate::script::MsgCtx;
use crate::sip::{Contact, Message, Uri};

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
    unapplied: &["proxy_require"],
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
}

fn start<'a>(s: &Start<'a>) -> Box<dyn Runtime + 'a> {
    let c = s.config;
    Box::new(Sanity {
        default_checks: c.modparam_int("sanity", "default_checks", DEFAULT_MSG_CHECKS),
        uri_checks: c.modparam_int("sanity", "uri_checks", DEFAULT_URI_CHECKS),
        autodrop: c.modparam_int("sanity", "autodrop", 1) != 0,
        noreply: c.modparam_int("sanity", "noreply", 0) != 0,
    })
}

/// The first problem the checks find.
pub fn problem(msg: &Message<'_>, msg_checks: i64, uri_checks: i64) -> Option<String> {
    if msg_checks != 0
        && let Err(e) = msg.validate()
    {
        return Some(e.reason().to_string());
    }
    let bad = |what: &str| Some(format!("Bad {what} URI"));
    if uri_checks & 1 != 0 && msg.is_request() && Uri::parse(msg.request_uri_raw()).is_err() {
        return bad("Request");
    }
    if uri_checks & 2 != 0 && msg.from().is_err() {
        return bad("From");
    }
    if uri_checks & 4 != 0 && msg.to().is_err() {
        return bad("To");
    }
    if uri_checks & 8 != 0
        && msg
            .contacts()
            .any(|c: crate::sip::Result<Contact<'_>>| c.is_err())
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
        let Some(reason) = problem(ctx.msg, m, u) else {
            return 1;
        };
        cx.counts.add(0, 1);
        log::info!("sanity_check: {reason} from {}", ctx.src);
        let is_ack = ctx.msg.method() == Some(crate::sip::Method::Ack);
        if ctx.msg.is_request() && !self.noreply && !is_ack {
            cx.shell.reply_stateless(ctx, 400, reason.as_bytes());
        }
        if self.autodrop { 0 } else { -1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_message_is_found() {
        let good = crate::script::testing::request("INVITE", "sip:bob@biloxi.example");
        let m = Message::parse(&good).unwrap();
        assert_eq!(problem(&m, 17895, 7), None);
        let bad = String::from_utf8(good)
            .unwrap()
            .replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE");
        let m = Message::parse(bad.as_bytes()).unwrap();
        assert!(problem(&m, 17895, 7).is_some());
        assert_eq!(problem(&m, 0, 0), None);
    }
}
