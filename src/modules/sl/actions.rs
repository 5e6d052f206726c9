//! sl's actions: `sl_send_reply(code, reason)`, `send_reply(code,
//! reason)` (stateful once the request has a transaction) and
//! `sl_reply_error()` (the reply the last failed action chose).

use crate::cfg::ConfigError;
use crate::cfg::ast::Arg;
use crate::cfg::fixup::{Fixup, error, int_in, text};
use crate::cfg::program::Param;
use crate::cfg::pv::Format;
use crate::modules::def::{
    Cx, Hooks, Module, ParamType, Routes, Runtime, Start, action, bad_args, no_args,
};
use crate::script::MsgCtx;

const SL_SEND_REPLY: u8 = 0;
const SEND_REPLY: u8 = 1;
const SL_REPLY_ERROR: u8 = 2;
const SL_FILTER_ACK: u8 = 3;

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
        // SER 0.8: ends the script on an ACK to a local stateless reply.
        // rser's filter absorbs those before any script runs, so here it
        // only meets ACKs it does not own (true).
        action(
            "sl_filter_ACK",
            SL_FILTER_ACK,
            (0, 0),
            no_args,
            Routes::REQUEST,
        ),
    ],
    counters: super::COUNTER_NAMES,
    hooks: Some(&Hooks {
        carve: Some(super::carve),
        start: Some(start),
        helper: None,
        used: Some(|_| true),
    }),
    unapplied: &[],
    check: Some(check),
};

/// `bind_tm 0` asks sl never to reply on a transaction; rser's
/// `send_reply` always does when tm made one (`sl_send_reply` never).
fn check(config: &crate::cfg::Config) -> Result<Vec<String>, String> {
    Ok(match config.modparam_int("sl", "bind_tm", 1) {
        0 => vec![
            "bind_tm 0: accepted and ignored: send_reply() replies on the transaction when tm made one"
                .into(),
        ],
        _ => Vec::new(),
    })
}

/// A reply's code (100-699) and its reason, with pseudo-variables.
pub fn code_reason(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    Ok(vec![
        Param::Int(int_in(&a[0], 100, 699)?),
        Param::Fmt(Format::parse(&text(&a[1])).map_err(|e| error(&a[1], e))?),
    ])
}

/// sl in a process: its default reply for `sl_reply_error` when no
/// action left one.
struct Sl {
    default_code: u16,
    default_reason: String,
    /// A reply's formatted reason (reused: nothing allocated per reply).
    text: Vec<u8>,
}

fn start<'a>(s: &Start<'a>) -> Box<dyn Runtime + 'a> {
    let c = s.config;
    Box::new(Sl {
        default_code: c.modparam_int("sl", "default_code", 500).clamp(100, 699) as u16,
        default_reason: c
            .modparam_str("sl", "default_reason", "Internal Server Error")
            .to_string(),
        text: Vec::new(),
    })
}

impl Runtime for Sl {
    fn call(&mut self, cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, id: u8, args: &[Param]) -> i32 {
        match (id, args) {
            (SL_SEND_REPLY | SEND_REPLY, [Param::Int(code), Param::Fmt(reason)]) => {
                let mut text = std::mem::take(&mut self.text);
                text.clear();
                crate::script::pv::format_into(reason, ctx, &mut text);
                let r = match id {
                    SL_SEND_REPLY => cx.shell.reply_stateless(ctx, *code as u16, &text),
                    // Stateful once a transaction exists (SER's send_reply).
                    _ => cx.shell.reply(ctx, *code as u16, &text, b""),
                };
                self.text = text;
                r
            }
            (SL_FILTER_ACK, []) => match cx.shell.absorbs_ack(ctx.msg) {
                true => 0,
                false => 1,
            },
            (SL_REPLY_ERROR, []) => match ctx.st.last_error {
                Some((code, reason)) => cx.shell.reply_stateless(ctx, code, reason.as_bytes()),
                None => {
                    cx.shell
                        .reply_stateless(ctx, self.default_code, self.default_reason.as_bytes())
                }
            },
            _ => bad_args("sl", id),
        }
    }
}
