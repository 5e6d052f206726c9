//! siputils (Kamailio's): `has_totag()`, true for a request within a
//! dialog (its To carries a tag, RFC 3261 §12.2); `is_request()`,
//! `is_reply()`; `uri_param(name[, value])` and `add_uri_param(param)` on
//! the Request-URI.

use crate::cfg::ConfigError;
use crate::cfg::ast::Arg;
use crate::cfg::fixup::{Fixup, nonempty};
use crate::cfg::program::Param;
use crate::modules::def::{Cx, Hooks, Module, Routes, Runtime, Start, action, bad_args, no_args};
use crate::script::MsgCtx;
use crate::script::uri_ops::Rewrite;
use crate::sip::Uri;

const HAS_TOTAG: u8 = 0;
const IS_REQUEST: u8 = 1;
const IS_REPLY: u8 = 2;
const URI_PARAM: u8 = 3;
const ADD_URI_PARAM: u8 = 4;

pub static MODULE: Module = Module {
    name: "siputils",
    params: &[],
    actions: &[
        action("has_totag", HAS_TOTAG, (0, 0), no_args, Routes::ANY),
        action("is_request", IS_REQUEST, (0, 0), no_args, Routes::ANY),
        action("is_reply", IS_REPLY, (0, 0), no_args, Routes::ANY),
        action("uri_param", URI_PARAM, (1, 2), strings, Routes::ANY),
        action(
            "add_uri_param",
            ADD_URI_PARAM,
            (1, 1),
            strings,
            Routes::REQUEST.or(Routes::FAILURE).or(Routes::BRANCH),
        ),
    ],
    counters: &[],
    hooks: Some(&Hooks::runtime(start)),
    unapplied: &[],
    check: None,
};

fn strings(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    a.iter().map(|x| Ok(Param::Str(nonempty(x)?))).collect()
}

/// siputils keeps nothing per process.
struct SipUtils;

fn start<'a>(_: &Start<'a>) -> Box<dyn Runtime + 'a> {
    Box::new(SipUtils)
}

fn truth(b: bool) -> i32 {
    if b { 1 } else { -1 }
}

impl Runtime for SipUtils {
    fn call(&mut self, _: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, id: u8, args: &[Param]) -> i32 {
        match (id, args) {
            (HAS_TOTAG, []) => truth(ctx.msg.to().is_ok_and(|to| to.tag.is_some())),
            (IS_REQUEST, []) => truth(ctx.msg.is_request()),
            (IS_REPLY, []) => truth(!ctx.msg.is_request()),
            (URI_PARAM, [Param::Str(name), rest @ ..]) => {
                let Ok(uri) = Uri::parse(ctx.uri()) else {
                    return -1;
                };
                match (uri.param(name.as_bytes()), rest) {
                    (Some(_), []) => 1,
                    (Some(Some(v)), [Param::Str(want)]) => truth(v == want.as_bytes()),
                    _ => -1,
                }
            }
            (ADD_URI_PARAM, [Param::Str(param)]) => {
                // Before any headers (`?...`): RFC 3261 §19.1.1's order.
                let uri = ctx.uri();
                let at = memchr::memchr(b'?', uri).unwrap_or(uri.len());
                let mut new = Vec::with_capacity(uri.len() + param.len() + 1);
                new.extend_from_slice(&uri[..at]);
                new.push(b';');
                new.extend_from_slice(param.as_bytes());
                new.extend_from_slice(&uri[at..]);
                truth(ctx.rewrite_uri(Rewrite::Uri(&new)).is_ok())
            }
            _ => bad_args("siputils", id),
        }
    }
}
