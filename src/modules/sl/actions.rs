//! sl's actions: `sl_send_reply(code, reason)`, `send_reply(code,
//! reason)` (stateful once the request has a transaction) and
//! `sl_reply_error()` (the reply the last failed action chose).

use crate::cfg::ConfigError;
use crate::cfg::ast::Arg;
use crate::cfg::fixup::{Fixup, int_in, text};
use crate::cfg::program::Param;
use crate::cfg::pv::Format;
use crate::modules::def::{Module, ParamType, Routes, action, no_args};
use crate::script::MsgCtx;
use crate::server::worker::Worker;

const SL_SEND_REPLY: u8 = 0;
const SEND_REPLY: u8 = 1;
const SL_REPLY_ERROR: u8 = 2;

pub static MODULE: Module = Module {
    name: "sl",
    params: &[
        ("default_code", ParamType::Int),
        ("default_reason", ParamType::Str),
        ("bind_tm", ParamType::Int),
    ],
    actions: &[
        action(
            "sl_send_reply",
            SL_SEND_REPLY,
            (2, 2),
            code_reason,
            Routes::NOT_BRANCH,
        ),
        action(
            "send_reply",
            SEND_REPLY,
            (2, 2),
            code_reason,
            Routes::NOT_BRANCH,
        ),
        action(
            "sl_reply_error",
            SL_REPLY_ERROR,
            (0, 0),
            no_args,
            Routes::NOT_BRANCH,
        ),
    ],
    run: Some(run),
    counters: &[],
    hooks: None,
    shell: None,
    unapplied: &[],
};

/// A reply's code (100-699) and its reason, with pseudo-variables.
pub fn code_reason(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    Ok(vec![
        Param::Int(int_in(&a[0], 100, 699)?),
        Param::Fmt(Format::parse(&text(&a[1]))),
    ])
}

fn run(w: &mut Worker<'_>, ctx: &mut MsgCtx<'_, '_>, id: u8, args: &[Param]) -> i32 {
    match (id, args) {
        (SL_SEND_REPLY | SEND_REPLY, [Param::Int(code), Param::Fmt(reason)]) => {
            w.text.clear();
            crate::script::pv::format_into(reason, ctx, &mut w.text);
            match id {
                SL_SEND_REPLY => w.sl_reply(ctx, *code as u16, true),
                _ => w.reply_any(ctx, *code as u16),
            }
        }
        (SL_REPLY_ERROR, []) => match ctx.st.last_error {
            Some((code, reason)) => {
                w.text.clear();
                w.text.extend_from_slice(reason.as_bytes());
                w.sl_reply(ctx, code, true)
            }
            None => w.sl_reply(ctx, w.sl.default_code, false),
        },
        _ => super::super::def::bad_args("sl", id),
    }
}
