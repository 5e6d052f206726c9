//! siputils (Kamailio's): `has_totag()`, true for a request within a
//! dialog (its To carries a tag, RFC 3261 §12.2).

use crate::cfg::program::Param;
use crate::modules::def::{Cx, Hooks, Module, Routes, Runtime, Start, action, no_args};
use crate::script::MsgCtx;

pub static MODULE: Module = Module {
    name: "siputils",
    params: &[],
    actions: &[action("has_totag", 0, (0, 0), no_args, Routes::ANY)],
    counters: &[],
    hooks: Some(&Hooks::runtime(start)),
    unapplied: &[],
    check: None,
};

/// siputils keeps nothing per process.
struct SipUtils;

fn start<'a>(_: &Start<'a>) -> Box<dyn Runtime + 'a> {
    Box::new(SipUtils)
}

impl Runtime for SipUtils {
    fn call(&mut self, _: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, _: u8, _: &[Param]) -> i32 {
        match ctx.msg.to() {
            Ok(to) if to.tag.is_some() => 1,
            _ => -1,
        }
    }
}
