//! pike (Kamailio's): `pike_check_req()` counts the requests of each
//! source address in shared memory, so every worker sees the same counts,
//! and is false for a source sending more than `reqs_density_per_unit`
//! requests in a `sampling_time_unit` (seconds): refused until it keeps
//! under that pace for a whole unit. A source unseen for `remove_latency`
//! seconds is forgotten. IPv6 sources count by their /64. The table holds
//! `entries` sources (rser's own parameter; by default 65,536, fewer in
//! a shared memory under 64 MiB); when it is full the least recently
//! seen is forgotten (`pike_evicted`).
//! `pike.top` over the control interface lists the sources.
//!
//! `kernel_drop` (rser's, seconds, 0 by default): a source going hot is
//! also dropped by the kernel for that long (`server/kernel_drop.rs`: a
//! BPF program on every UDP socket), so a flood costs no process a
//! receive, a parse or a script run; the script's own verdict (a ban, a
//! reply) is then not asked for those datagrams. Up to 250 IPv4 sources
//! and 60 IPv6 /64s at once.

pub mod table;

use crate::cfg::Config;
use crate::cfg::program::Param;
use crate::modules::def::{
    Carved, Cx, Hooks, Module, ParamType, Routes, Runtime, Start, action, bad_args, no_args,
};
use crate::script::MsgCtx;
use crate::server::log_limit::{LogLimit, held_text};

use table::{Counts, Limits, Source};

crate::server::shared::counters! { PikeCounter, COUNTER_NAMES, {
    /// Requests refused (`pike_check_req()` false).
    Blocked => "pike_blocked",
    /// Sources that went over the density.
    Hot => "pike_hot_sources",
    /// Sources still counted, forgotten to make room for new ones.
    Evicted => "pike_evicted",
    /// Hot sources put on the kernel's drop list (`kernel_drop`).
    KernelDrops => "pike_kernel_drops",
}}

const PIKE_CHECK_REQ: u8 = 0;

pub static MODULE: Module = Module {
    name: "pike",
    params: &[
        ("sampling_time_unit", ParamType::Int),
        ("reqs_density_per_unit", ParamType::Int),
        ("remove_latency", ParamType::Int),
        ("pike_log_level", ParamType::Int),
        ("entries", ParamType::Int),
        ("kernel_drop", ParamType::Int),
    ],
    actions: &[action(
        "pike_check_req",
        PIKE_CHECK_REQ,
        (0, 0),
        no_args,
        Routes::REQUEST,
    )],
    counters: COUNTER_NAMES,
    hooks: Some(&Hooks::tables_and_runtime(carve, start)),
    unapplied: &[],
    check: Some(check),
};

/// The parameters as pike applies them (Kamailio's defaults: 2 s, 30
/// requests, 120 s).
pub fn limits(c: &Config) -> Result<Limits, String> {
    let int = |p: &str, d: i64, min: i64, max: i64| -> Result<u64, String> {
        let v = c.modparam_int("pike", p, d);
        match (min..=max).contains(&v) {
            true => Ok(v as u64),
            false => Err(format!("pike: {p} {v}: from {min} to {max}")),
        }
    };
    Ok(Limits {
        unit_ms: int("sampling_time_unit", 2, 1, 3_600)? * 1_000,
        density: int("reqs_density_per_unit", 30, 1, 1_000_000)? as u32,
        latency_ms: int("remove_latency", 120, 1, 86_400)? * 1_000,
    })
}

/// `entries` as set, None when left to the default.
fn entries(c: &Config) -> Result<Option<usize>, String> {
    match c.modparam("pike", "entries") {
        None => Ok(None),
        Some(_) => match c.modparam_int("pike", "entries", 0) {
            n @ 64..=16_777_216 => Ok(Some(n as usize)),
            n => Err(format!("pike: entries {n}: from 64 to 16777216")),
        },
    }
}

/// Sources counted when `entries` is not set: 65,536, or what a
/// sixteenth of a small shared memory holds.
fn default_entries(region: usize) -> usize {
    (region / 16 / Counts::bytes_per_entry()).clamp(64, 65_536)
}

fn check(c: &Config) -> Result<Vec<String>, String> {
    limits(c)?;
    entries(c)?;
    kernel_drop(c)?;
    Ok(Vec::new())
}

/// What `pike.top` reads: the counts and the limits; and the sources
/// the kernel drops, with `kernel_drop`.
pub struct PikeShm {
    pub counts: Counts,
    pub limits: Limits,
    pub drops: Option<crate::server::kernel_drop::DropList>,
}

/// `kernel_drop`'s seconds (0: off).
fn kernel_drop(c: &Config) -> Result<u64, String> {
    match c.modparam_int("pike", "kernel_drop", 0) {
        n @ 0..=86_400 => Ok(n as u64),
        n => Err(format!("pike: kernel_drop {n}: seconds, 0 to 86400")),
    }
}

fn carve(
    config: &Config,
    carver: &mut rser_shm::Carver<'_>,
    region: usize,
) -> Result<Carved, String> {
    let limits = limits(config)?;
    let n = entries(config)?.unwrap_or_else(|| default_entries(region));
    let need = n * Counts::bytes_per_entry();
    if need > region / 8 {
        return Err(format!(
            "pike: {n} entries ({} MiB) do not fit an eighth of the shared memory ({} MiB): give more with -m, or fewer entries",
            need >> 20,
            region >> 20
        ));
    }
    let counts = Counts::carve(carver, n)
        .ok_or_else(|| format!("shared memory too small for pike's {n} entries"))?;
    let drops = match kernel_drop(config)? {
        0 => None,
        _ => Some(
            crate::server::kernel_drop::DropList::carve(carver)
                .ok_or("shared memory too small for pike's kernel drop list")?,
        ),
    };
    Ok(Carved {
        capacity: format!("{n} sources of {} bytes", Counts::bytes_per_entry()),
        shm: Box::new(PikeShm {
            counts,
            limits,
            drops,
        }),
    })
}

struct PikeRuntime {
    shm: Option<(Counts, Limits)>,
    /// `kernel_drop`: the list and how long a hot source stays on it.
    drops: Option<(crate::server::kernel_drop::DropList, u64)>,
    level: log::Level,
    /// "Blocking" lines, at most one a second (a flood of new sources
    /// must not become a flood of log lines).
    log: LogLimit,
}

fn start<'a>(s: &Start<'a>) -> Box<dyn Runtime + 'a> {
    // Kamailio's levels: below 0 errors, 0 warnings (its default), 1-2
    // notices and information, 3 and above debugging.
    let level = match s.config.modparam_int("pike", "pike_log_level", 0) {
        ..0 => log::Level::Error,
        0 => log::Level::Warn,
        1 | 2 => log::Level::Info,
        _ => log::Level::Debug,
    };
    Box::new(PikeRuntime {
        shm: s
            .shm
            .and_then(|m| m.downcast_ref::<PikeShm>())
            .map(|p| (p.counts, p.limits)),
        drops: s
            .shm
            .and_then(|m| m.downcast_ref::<PikeShm>())
            .and_then(|p| p.drops)
            .map(|d| (d, kernel_drop(s.config).unwrap_or(0) * 1_000)),
        level,
        log: LogLimit::default(),
    })
}

impl Runtime for PikeRuntime {
    fn call(&mut self, cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, id: u8, args: &[Param]) -> i32 {
        if id != PIKE_CHECK_REQ || !args.is_empty() {
            return bad_args("pike", id);
        }
        let Some((counts, lim)) = &self.shm else {
            return 1;
        };
        let seen = counts.hit(Source::of(ctx.src.ip()), lim, cx.now_ms);
        if seen.evicted {
            cx.counts.add(PikeCounter::Evicted as usize, 1);
        }
        if !seen.hot {
            return 1;
        }
        cx.counts.add(PikeCounter::Blocked as usize, 1);
        if seen.turned_hot {
            cx.counts.add(PikeCounter::Hot as usize, 1);
            if let Some((list, ms)) = &self.drops {
                let d = crate::server::kernel_drop::Dropped::of(ctx.src.ip());
                if list.add(d, cx.now_ms + ms, cx.now_ms) {
                    cx.counts.add(PikeCounter::KernelDrops as usize, 1);
                    log::log!(
                        self.level,
                        "pike: {} dropped by the kernel for {} s",
                        d.text(),
                        ms / 1_000
                    );
                }
            }
            if let Some(held) = self.log.allow(cx.now_ms) {
                log::log!(
                    self.level,
                    "pike: blocking {}: over {} requests in {} s{}",
                    Source::of(ctx.src.ip()).text(),
                    lim.density,
                    lim.unit_ms / 1_000,
                    held_text(held)
                );
            }
        }
        -1
    }
}
