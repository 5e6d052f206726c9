//! pipelimit (Kamailio's): named pipes, each holding the requests the
//! script sends through it to a rate, in shared memory so every worker
//! counts in the same pipe (`pipes.rs`: TAILDROP, RED, NETWORK,
//! FEEDBACK, their limits per second as measured).
//!
//! - `pl_check(name)`: 1 let through, -1 over the limit, -2 no such pipe;
//!   `pl_check(name, algorithm, limit)` defines the pipe first (or changes
//!   it). The name may hold pseudo-variables (`"$si"`: a pipe per source).
//! - `pl_drop([low[, high]])`: `reply_code`/`reply_reason` (503 Server
//!   Unavailable) with `Retry-After: low` (or a random value from low to
//!   high; none without arguments).
//! - `pl_active(name)`: whether the pipe exists.
//! - Pipes defined at start: `modparam("pipelimit", "pipe",
//!   "name:ALGORITHM:limit")` (ratelimit's form), any number of times,
//!   and the rows of Kamailio's `pl_pipes` table when `db_url` is set.
//!   At run time over the control interface: `pl.set_pipe`, `pl.stats`,
//!   `pl.get_pipes`, `pl.set_pid`, `pl.get_pid`.
//! - `timer_interval` is accepted and ignored: limits are per second.

pub mod load;
pub mod pipes;
pub mod ratelimit;

use std::collections::HashMap;

use crate::cfg::ast::Arg;
use crate::cfg::fixup::{Fixup, error, int_in, text};
use crate::cfg::program::Param;
use crate::cfg::pv::Format;
use crate::cfg::{Config, ConfigError, ParamValue};
use crate::modules::def::{
    Carved, Cx, Hooks, Module, ParamType, Routes, Runtime, Start, Wants, action, bad_args,
};
use crate::script::MsgCtx;
use crate::server::log_limit::{LogLimit, held_text};

use pipes::{Algorithm, PipeDef, Pipes, Verdict};

crate::server::shared::counters! { PlCounter, COUNTER_NAMES, {
    /// Requests `pl_check` let through, and refused.
    Accepted => "pipelimit_accepted",
    Dropped => "pipelimit_dropped",
    /// A `pl_check` that had to define a pipe found every place taken.
    NoRoom => "pipelimit_no_room",
}}

const PL_CHECK: u8 = 0;
const PL_DROP: u8 = 1;
const PL_ACTIVE: u8 = 2;

pub static MODULE: Module = Module {
    name: "pipelimit",
    params: &[
        ("pipe", ParamType::Str),
        ("timer_interval", ParamType::Int),
        ("reply_code", ParamType::Int),
        ("reply_reason", ParamType::Str),
        ("hash_size", ParamType::Int),
        ("load_source", ParamType::Int),
        ("clean_unused", ParamType::Int),
        ("db_url", ParamType::Str),
        ("plp_table_name", ParamType::Str),
        ("plp_pipeid_column", ParamType::Str),
        ("plp_limit_column", ParamType::Str),
        ("plp_algorithm_column", ParamType::Str),
    ],
    actions: &[
        action("pl_check", PL_CHECK, (1, 3), check_args, Routes::ANY),
        action("pl_drop", PL_DROP, (0, 2), drop_args, Routes::REQUEST),
        action("pl_active", PL_ACTIVE, (1, 1), name_arg, Routes::ANY),
    ],
    counters: COUNTER_NAMES,
    hooks: Some(&Hooks {
        carve: Some(carve),
        start: Some(start),
        helper: None,
        used: None,
    }),
    unapplied: &["timer_interval", "hash_size", "load_source", "clean_unused"],
    check: Some(check),
};

/// The pipes `modparam(module, "pipe", ...)` defines.
pub fn configured(c: &Config, module: &str) -> Result<Vec<PipeDef>, String> {
    let mut out: Vec<PipeDef> = Vec::new();
    for (m, p, v) in &c.modparams {
        if let (true, "pipe", ParamValue::Str(s)) = (*m == module, *p, v) {
            let d = pipes::parse_def(s).map_err(|e| format!("{module}: {e}"))?;
            if out.iter().any(|o| o.name == d.name) {
                return Err(format!("{module}: pipe '{}' is defined twice", d.name));
            }
            out.push(d);
        }
    }
    if out.len() > pipes::MAX_PIPES {
        return Err(format!("pipelimit: {} pipes at most", pipes::MAX_PIPES));
    }
    Ok(out)
}

fn check(c: &Config) -> Result<Vec<String>, String> {
    configured(c, "pipelimit")?;
    Ok(Vec::new())
}

/// The pipes in the database `db_url` names (Kamailio's `pl_pipes`, or
/// `plp_table_name` with its `plp_*_column`s), read at start.
pub fn from_database(c: &Config) -> Result<Vec<PipeDef>, String> {
    let url = c.modparam_str("pipelimit", "db_url", "");
    if url.is_empty() {
        return Ok(Vec::new());
    }
    let url = crate::db::served(url)?;
    let name = |p: &str, d: &str| c.modparam_str("pipelimit", p, d).to_string();
    let table = name("plp_table_name", "pl_pipes");
    let cols = [
        name("plp_pipeid_column", "pipeid"),
        name("plp_algorithm_column", "algorithm"),
        name("plp_limit_column", "plimit"),
    ];
    let mut need = crate::db::schema::Need::of(&crate::db::schema::PL_PIPES, &table);
    need.columns = cols.to_vec();
    let mut conn = crate::db::schema::open_prepared(&url, &[need], crate::db::TOOL_TIMEOUT)
        .map_err(|e| format!("pipelimit {e}"))?;
    let sql = format!("SELECT {}, {}, {} FROM {table}", cols[0], cols[1], cols[2]);
    let rows = conn
        .query(&sql, &[])
        .map_err(|e| format!("pipelimit {url}: {e}"))?;
    rows.iter()
        .map(|r| {
            let text = |i: usize| {
                r.get(i)
                    .and_then(crate::db::conn::Value::text)
                    .unwrap_or_default()
            };
            let limit = r
                .get(2)
                .and_then(crate::db::conn::Value::as_int)
                .unwrap_or(0);
            pipes::parse_def(&format!("{}:{}:{}", text(0), text(1), limit.max(0)))
                .map_err(|e| format!("pipelimit: table {table}: {e}"))
        })
        .collect()
}

fn carve(
    config: &Config,
    carver: &mut rser_shm::Carver<'_>,
    _region: usize,
) -> Result<Carved, String> {
    let mut defs = configured(config, "pipelimit")?;
    defs.extend(from_database(config)?);
    carve_with(carver, &defs)
}

/// The pipes carved, `defs` defined in them.
pub(crate) fn carve_with(
    carver: &mut rser_shm::Carver<'_>,
    defs: &[PipeDef],
) -> Result<Carved, String> {
    let p = Pipes::carve(carver).ok_or("shared memory too small for the pipes")?;
    for d in defs {
        p.set(d)?;
    }
    Ok(Carved {
        capacity: format!("{} pipes, {} defined", pipes::MAX_PIPES, defs.len()),
        shm: Box::new(p),
    })
}

fn name_arg(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    Ok(vec![Param::Fmt(
        Format::parse(&text(&a[0])).map_err(|e| error(&a[0], e))?,
    )])
}

/// A pipe name; with an algorithm and a limit, the pipe's definition.
fn check_args(f: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    let mut out = name_arg(f, a)?;
    match a.len() {
        1 => {}
        3 => {
            let alg = text(&a[1]);
            if Algorithm::parse(&alg).is_none() {
                return Err(error(
                    &a[1],
                    format!("pl_check: {alg} is not TAILDROP, RED, NETWORK or FEEDBACK"),
                ));
            }
            out.push(Param::Str(alg.into()));
            out.push(Param::Int(int_in(&a[2], 0, i64::from(u32::MAX))?));
        }
        _ => {
            return Err(error(
                &a[1],
                "pl_check takes a pipe, or a pipe, an algorithm and a limit".into(),
            ));
        }
    }
    Ok(out)
}

pub(crate) fn drop_args(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    a.iter()
        .map(|x| int_in(x, 0, 86_400).map(Param::Int))
        .collect()
}

/// pipelimit's (and ratelimit's) runtime in a process.
pub(crate) struct PlRuntime {
    pipes: Option<Pipes>,
    /// Pipe indexes by name, as this process found them (a pipe keeps its
    /// place once defined).
    index: HashMap<String, usize>,
    reply: (u16, Vec<u8>),
    rng: u64,
    name: Vec<u8>,
    /// The timer process: the load's last sample, when it is due next,
    /// and the UDP ports whose queues count.
    cpu_before: Option<(u64, u64)>,
    next_sample_ms: u64,
    ports: Vec<u16>,
    log: LogLimit,
}

/// The runtime of `module` (pipelimit or ratelimit: their parameters
/// have the same names) over its pipes.
pub(crate) fn runtime(s: &Start<'_>, module: &str) -> PlRuntime {
    let c = s.config;
    PlRuntime {
        pipes: s.shm.and_then(|m| m.downcast_ref::<Pipes>()).copied(),
        index: HashMap::new(),
        reply: (
            c.modparam_int(module, "reply_code", 503).clamp(300, 699) as u16,
            c.modparam_str(module, "reply_reason", "Server Unavailable")
                .as_bytes()
                .to_vec(),
        ),
        rng: u64::from(std::process::id()) << 32
            | crate::server::worker::now_ms() & 0xffff_ffff
            | 1,
        name: Vec::new(),
        cpu_before: None,
        next_sample_ms: 0,
        ports: c
            .settings
            .listen
            .iter()
            .filter(|l| l.proto == crate::cfg::settings::Proto::Udp)
            .filter_map(|l| l.port)
            .collect(),
        log: LogLimit::default(),
    }
}

fn start<'a>(s: &Start<'a>) -> Box<dyn Runtime + 'a> {
    Box::new(runtime(s, "pipelimit"))
}

impl PlRuntime {
    /// xorshift64*: drops need spread, not secrecy.
    fn random(&mut self) -> u32 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }

    fn pipe(&mut self, name: &str) -> Option<usize> {
        if let Some(i) = self.index.get(name) {
            return Some(*i);
        }
        let i = self.pipes?.find(name)?;
        self.index.insert(name.to_string(), i);
        Some(i)
    }

    /// A request through the pipe named by `f` (its pseudo-variables
    /// filled in a buffer kept between messages, so no allocation), defined
    /// first with `define` (algorithm, limit) when it is not so already:
    /// 1 let through, -1 over the limit, -2 no such pipe; with
    /// `active_only`, 1 when the pipe exists. The counters are
    /// `PlCounter`'s, in the calling module's list.
    pub(crate) fn check_named(
        &mut self,
        cx: &mut Cx<'_>,
        ctx: &MsgCtx<'_, '_>,
        f: &Format,
        define: Option<(Algorithm, u32)>,
        active_only: bool,
    ) -> i32 {
        let mut buf = std::mem::take(&mut self.name);
        buf.clear();
        crate::script::pv::format_into(f, ctx, &mut buf);
        let r = self.check(cx, &String::from_utf8_lossy(&buf), define, active_only);
        self.name = buf;
        r
    }

    /// [`PlRuntime::check_named`] on a name at hand.
    pub(crate) fn check(
        &mut self,
        cx: &mut Cx<'_>,
        name: &str,
        define: Option<(Algorithm, u32)>,
        active_only: bool,
    ) -> i32 {
        let Some(p) = self.pipes else { return -2 };
        if let Some((algorithm, limit)) = define {
            let same = self.pipe(name).filter(|&i| p.is(i, algorithm, limit));
            if same.is_none() {
                let d = PipeDef {
                    name: name.to_string(),
                    algorithm,
                    limit,
                };
                match p.set(&d) {
                    Ok(i) => {
                        self.index.insert(d.name, i);
                    }
                    Err(e) => {
                        cx.counts.add(PlCounter::NoRoom as usize, 1);
                        if let Some(held) = self.log.allow(cx.now_ms) {
                            log::error!("pipelimit: {e}{}", held_text(held));
                        }
                        return -2;
                    }
                }
            }
        }
        let Some(i) = self.pipe(name) else {
            return -2;
        };
        if active_only {
            return 1;
        }
        let random = self.random();
        match p.check(i, cx.now_ms * 1_000, random) {
            Verdict::Accept => {
                cx.counts.add(PlCounter::Accepted as usize, 1);
                1
            }
            Verdict::Drop => {
                cx.counts.add(PlCounter::Dropped as usize, 1);
                -1
            }
            Verdict::NoPipe => -2,
        }
    }

    /// `pl_drop`/`rl_drop`: the reply, with Retry-After from `bounds`
    /// (none, low, or low and high for a random value between).
    pub(crate) fn drop_reply(
        &mut self,
        cx: &mut Cx<'_>,
        ctx: &mut MsgCtx<'_, '_>,
        bounds: &[Param],
    ) -> Option<i32> {
        let retry = match bounds {
            [] => None,
            [Param::Int(low)] => Some(*low as u64),
            [Param::Int(low), Param::Int(high)] => {
                let (lo, hi) = (*low.min(high) as u64, *low.max(high) as u64);
                Some(lo + u64::from(self.random()) % (hi - lo + 1))
            }
            _ => return None,
        };
        let headers = retry.map_or_else(Vec::new, |r| format!("Retry-After: {r}\r\n").into_bytes());
        let (code, reason) = (self.reply.0, self.reply.1.clone());
        cx.shell.reply(ctx, code, &reason, &headers);
        Some(1)
    }

    /// In the timer process, once a second: the load sampled, FEEDBACK
    /// pipes adjusted.
    /// When the load is sampled next (never without pipes).
    pub(crate) fn next_sample(&self) -> u64 {
        match self.pipes {
            Some(_) => self.next_sample_ms,
            None => u64::MAX,
        }
    }

    pub(crate) fn sample(&mut self, cx: &mut Cx<'_>) {
        let Some(p) = self.pipes else { return };
        if cx.now_ms < self.next_sample_ms {
            return;
        }
        self.next_sample_ms = cx.now_ms + 1_000;
        let (cpu, queued) = load::sample(&self.ports);
        p.load()
            .queued
            .store(queued, std::sync::atomic::Ordering::Release);
        if let (Some(before), Some(now)) = (self.cpu_before, cpu) {
            p.feedback(load::busy(before, now));
        }
        self.cpu_before = cpu;
    }
}

impl Runtime for PlRuntime {
    fn wants(&self) -> Wants {
        Wants {
            ticks: true,
            ..Wants::default()
        }
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        self.sample(cx);
    }

    fn next_tick(&self, _now_ms: u64) -> u64 {
        self.next_sample()
    }

    fn call(&mut self, cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, id: u8, args: &[Param]) -> i32 {
        match (id, args) {
            (PL_CHECK | PL_ACTIVE, [Param::Fmt(name), rest @ ..]) => {
                let define = match rest {
                    [Param::Str(alg), Param::Int(limit)] => Some((
                        Algorithm::parse(alg).unwrap_or(Algorithm::TailDrop),
                        u32::try_from(*limit).unwrap_or(u32::MAX),
                    )),
                    _ => None,
                };
                self.check_named(cx, ctx, name, define, id == PL_ACTIVE)
            }
            (PL_DROP, bounds) => self
                .drop_reply(cx, ctx, bounds)
                .unwrap_or_else(|| bad_args("pipelimit", id)),
            _ => bad_args("pipelimit", id),
        }
    }
}
