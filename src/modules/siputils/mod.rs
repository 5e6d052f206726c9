//! siputils (Kamailio's): `has_totag()`, true for a request within a
//! dialog (its To carries a tag, RFC 3261 §12.2).

use crate::cfg::program::Param;
use crate::modules::def::{Module, Routes, action, no_args};
use crate::script::MsgCtx;
use crate::server::worker::Worker;

pub static MODULE: Module = Module {
    name: "siputils",
    params: &[],
    actions: &[action("has_totag", 0, (0, 0), no_args, Routes::ANY)],
    run: Some(run),
    counters: &[],
    hooks: None,
    shell: None,
    unapplied: &[],
};

fn run(_: &mut Worker<'_>, ctx: &mut MsgCtx<'_, '_>, _: u8, _: &[Param]) -> i32 {
    match ctx.msg.to() {
        Ok(to) if to.tag.is_some() => 1,
        _ => -1,
    }
}
