//! maxfwd's action: `mf_process_maxfwd_header(limit)`.

use super::{MaxFwd, process};
use crate::cfg::ConfigError;
use crate::cfg::ast::Arg;
use crate::cfg::fixup::{Fixup, int_in};
use crate::cfg::program::Param;
use crate::modules::def::{Cx, Hooks, Module, ParamType, Routes, Runtime, Start, action, bad_args};
use crate::script::MsgCtx;

const MF_PROCESS_MAXFWD_HEADER: u8 = 0;

pub static MODULE: Module = Module {
    name: "maxfwd",
    params: &[("max_limit", ParamType::Int)],
    actions: &[action(
        "mf_process_maxfwd_header",
        MF_PROCESS_MAXFWD_HEADER,
        (1, 1),
        limit,
        Routes::ANY,
    )],
    counters: &[],
    hooks: Some(&Hooks::runtime(start)),
    unapplied: &[],
    check: None,
};

fn limit(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    Ok(vec![Param::Int(int_in(&a[0], 1, 255)?)])
}

/// maxfwd in a process: its `max_limit`.
struct MaxFwdRuntime {
    max_limit: u8,
}

fn start<'a>(s: &Start<'a>) -> Box<dyn Runtime + 'a> {
    Box::new(MaxFwdRuntime {
        max_limit: s
            .config
            .modparam_int("maxfwd", "max_limit", 256)
            .clamp(1, 255) as u8,
    })
}

impl Runtime for MaxFwdRuntime {
    fn call(&mut self, _: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, id: u8, args: &[Param]) -> i32 {
        let [Param::Int(limit)] = args else {
            return bad_args("maxfwd", id);
        };
        let (verdict, cap) = process(ctx.msg, *limit as u8, self.max_limit);
        ctx.st.max_forwards_cap = cap;
        match verdict {
            MaxFwd::Insert(n) => {
                ctx.st.max_forwards_insert = Some(n);
                1
            }
            MaxFwd::Decrement => 1,
            MaxFwd::Exhausted => -1,
            MaxFwd::Invalid => {
                ctx.st.last_error = Some((400, "Bad Max-Forwards"));
                -1
            }
        }
    }
}
