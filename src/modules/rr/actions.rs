//! rr's actions: `record_route()` and `loose_route()`.

use super::{loose_route, record_route, rewrite_from_route};
use crate::cfg::program::Myself;
use crate::cfg::program::Param;
use crate::modules::def::{
    Cx, Hooks, Module, ParamType, Routes, Runtime, Start, action, bad_args, no_args,
};
use crate::script::MsgCtx;

use ParamType::Int;

const RECORD_ROUTE: u8 = 0;
const LOOSE_ROUTE: u8 = 1;
const REWRITE_FROM_ROUTE: u8 = 2;

pub static MODULE: Module = Module {
    name: "rr",
    params: &[
        ("enable_full_lr", Int),
        ("append_fromtag", Int),
        ("enable_double_rr", Int),
    ],
    actions: &[
        action("record_route", RECORD_ROUTE, (0, 0), no_args, Routes::ANY),
        action("loose_route", LOOSE_ROUTE, (0, 0), no_args, Routes::ANY),
        // SER 0.8's strict routing by a preloaded Route set.
        action(
            "rewriteFromRoute",
            REWRITE_FROM_ROUTE,
            (0, 0),
            no_args,
            Routes::REQUEST,
        ),
    ],
    counters: &[],
    hooks: Some(&Hooks::runtime(start)),
    unapplied: &["enable_full_lr", "append_fromtag", "enable_double_rr"],
    check: None,
};

/// rr in a process: the addresses and names `loose_route()` takes for
/// ours.
struct RrRuntime {
    myself: Myself,
}

fn start<'a>(s: &Start<'a>) -> Box<dyn Runtime + 'a> {
    Box::new(RrRuntime {
        myself: s.config.program.myself.clone(),
    })
}

impl Runtime for RrRuntime {
    fn call(&mut self, _: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, id: u8, _: &[Param]) -> i32 {
        match id {
            RECORD_ROUTE => record_route(ctx),
            LOOSE_ROUTE => loose_route(ctx, &self.myself),
            REWRITE_FROM_ROUTE => rewrite_from_route(ctx),
            _ => bad_args("rr", id),
        }
    }
}
