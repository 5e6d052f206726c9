//! ratelimit (Kamailio's older module), on pipelimit's pipes: pipes
//! numbered by `modparam("ratelimit", "pipe", "id:ALGORITHM:limit")`,
//! queues mapping methods to them by `modparam("ratelimit", "queue",
//! "id:METHOD")` (`*` for any method, the first that matches serving);
//! `rl_check()` sends the request through its method's queue's pipe (1
//! when no queue takes its method), `rl_check("$var(pipe)")` and
//! `rl_check_pipe(id)` through a pipe named outright, `rl_drop([low[,
//! high]])` as `pl_drop`. Limits are per second whatever
//! `timer_interval` and `limit_per_interval` say. Over the control
//! interface: `rl.stats`, `rl.get_pipes`, `rl.set_pipe`, `rl.get_queues`,
//! `rl.get_pid`, `rl.set_pid`.

use crate::cfg::ast::Arg;
use crate::cfg::fixup::{Fixup, error, text};
use crate::cfg::program::Param;
use crate::cfg::pv::Format;
use crate::cfg::{Config, ConfigError, ParamValue};
use crate::modules::def::{
    Carved, Cx, Hooks, Module, ParamType, Routes, Runtime, Start, Wants, action, bad_args,
};
use crate::script::MsgCtx;

use super::PlRuntime;

crate::server::shared::counters! { RlCounter, COUNTER_NAMES, {
    /// The same places as pipelimit's counters (`PlCounter`).
    Accepted => "ratelimit_accepted",
    Dropped => "ratelimit_dropped",
    NoRoom => "ratelimit_no_room",
}}

const RL_CHECK: u8 = 0;
const RL_CHECK_PIPE: u8 = 1;
const RL_DROP: u8 = 2;

pub static MODULE: Module = Module {
    name: "ratelimit",
    params: &[
        ("pipe", ParamType::Str),
        ("queue", ParamType::Str),
        ("timer_interval", ParamType::Int),
        ("limit_per_interval", ParamType::Int),
        ("reply_code", ParamType::Int),
        ("reply_reason", ParamType::Str),
        ("hash_size", ParamType::Int),
    ],
    actions: &[
        action("rl_check", RL_CHECK, (0, 1), pipe_arg, Routes::ANY),
        action(
            "rl_check_pipe",
            RL_CHECK_PIPE,
            (0, 1),
            pipe_arg,
            Routes::ANY,
        ),
        action(
            "rl_drop",
            RL_DROP,
            (0, 2),
            super::drop_args,
            Routes::REQUEST,
        ),
    ],
    counters: COUNTER_NAMES,
    hooks: Some(&Hooks {
        carve: Some(carve),
        start: Some(start),
        helper: None,
        used: None,
    }),
    unapplied: &["timer_interval", "limit_per_interval", "hash_size"],
    check: Some(check),
};

/// A queue: the pipe it feeds, and the method it takes (`*`: any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub pipe: String,
    pub method: String,
}

/// The queues, in the config's order; each must name a defined pipe.
pub fn queues(c: &Config, pipes: &[String]) -> Result<Vec<Queue>, String> {
    let mut out = Vec::new();
    for (m, p, v) in &c.modparams {
        let ("ratelimit", "queue", ParamValue::Str(s)) = (*m, *p, v) else {
            continue;
        };
        let (pipe, method) = s
            .split_once(':')
            .map(|(a, b)| (a.trim(), b.trim()))
            .filter(|(a, b)| !a.is_empty() && !b.is_empty())
            .ok_or_else(|| format!("ratelimit: queue '{s}': id:METHOD"))?;
        if !pipes.iter().any(|p| p == pipe) {
            return Err(format!("ratelimit: queue '{s}': no pipe {pipe}"));
        }
        out.push(Queue {
            pipe: pipe.to_string(),
            method: method.to_ascii_uppercase(),
        });
    }
    Ok(out)
}

fn check(c: &Config) -> Result<Vec<String>, String> {
    let pipes = super::configured(c, "ratelimit")?;
    let names: Vec<String> = pipes.into_iter().map(|p| p.name).collect();
    queues(c, &names)?;
    Ok(Vec::new())
}

fn carve(config: &Config, carver: &mut rser_shm::Carver<'_>, _: usize) -> Result<Carved, String> {
    super::carve_with(carver, &super::configured(config, "ratelimit")?)
}

fn pipe_arg(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    a.iter()
        .map(|x| {
            Format::parse(&text(x))
                .map(Param::Fmt)
                .map_err(|e| error(x, e))
        })
        .collect()
}

struct RlRuntime {
    pl: PlRuntime,
    queues: Vec<Queue>,
}

fn start<'a>(s: &Start<'a>) -> Box<dyn Runtime + 'a> {
    let names: Vec<String> = super::configured(s.config, "ratelimit")
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.name)
        .collect();
    Box::new(RlRuntime {
        pl: super::runtime(s, "ratelimit"),
        queues: queues(s.config, &names).unwrap_or_default(),
    })
}

impl Runtime for RlRuntime {
    fn wants(&self) -> Wants {
        Wants {
            ticks: true,
            ..Wants::default()
        }
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        self.pl.sample(cx);
    }

    fn next_tick(&self, _now_ms: u64) -> u64 {
        self.pl.next_sample()
    }

    fn call(&mut self, cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, id: u8, args: &[Param]) -> i32 {
        match (id, args) {
            (RL_CHECK | RL_CHECK_PIPE, [Param::Fmt(pipe)]) => {
                self.pl.check_named(cx, ctx, pipe, None, false)
            }
            (RL_CHECK | RL_CHECK_PIPE, []) => {
                let method = ctx.msg.method_raw();
                let queue = self
                    .queues
                    .iter()
                    .find(|q| q.method == "*" || q.method.as_bytes().eq_ignore_ascii_case(method));
                match queue {
                    Some(q) => self.pl.check(cx, &q.pipe, None, false),
                    None => 1,
                }
            }
            (RL_DROP, bounds) => self
                .pl
                .drop_reply(cx, ctx, bounds)
                .unwrap_or_else(|| bad_args("ratelimit", id)),
            _ => bad_args("ratelimit", id),
        }
    }
}
