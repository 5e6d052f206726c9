//! tm: stateful processing (the tm module of SER; RFC 3261 §16 and §17).
//!
//! - `txn.rs`: a transaction as plain data and the pure state machine
//!   (server side, client branches, §16.7 reply selection, timers),
//!   driven by events and an injected clock.
//! - `key.rs`: the §17.2.3 key that finds a request's transaction, and
//!   our branch parameter that leads a reply to its slot.
//! - `table.rs`, `wheel.rs`: the table and the timer wheel in shared
//!   memory, with robust locks.
//! - `peer.rs`: socket addresses as plain bytes.
//! - `uac.rs`: a non-INVITE client transaction started from outside.
//! - `blocklist.rs`: destinations skipped for a while after a timeout.

pub mod actions;
pub mod blocklist;
pub mod build;
pub mod key;
pub mod relay;
pub mod state;
pub mod stateful;
pub mod table;
pub mod txn;
pub mod uac;
pub mod wheel;

#[cfg(test)]
mod table_tests;
#[cfg(test)]
mod txn_tests;

pub use table::{Full, Table};

crate::server::shared::counters! { TmCounter, COUNTER_NAMES, {
    Transactions => "tm_transactions",
    RetransmissionsAbsorbed => "tm_retransmissions_absorbed",
    AcksAbsorbed => "tm_acks_absorbed",
    TableFull => "tm_table_full",
    RepliesLate => "tm_replies_late",
    LocalReplies => "tm_local_replies",
    Blocklisted => "tm_blocklisted",
    BlocklistAdded => "tm_blocklist_added",
    CancelUnmatched => "tm_cancel_unmatched",
    /// A branch whose request could not be sent (it ended with 477).
    SendFailed => "tm_send_failed",
    /// A tick of the timer process left due transactions for the next.
    TimerLag => "tm_timer_lag",
    /// Transactions whose timers a worker took after a batch (the rest
    /// the timer process took).
    TimersByWorkers => "tm_timers_by_workers",
    /// Copies `t_replicate()` sent, and their replies absorbed.
    Replicated => "tm_replicated",
    ReplicaReplies => "tm_replica_replies",
    /// A transaction's `$avp`s over `script::avp::MAX_AVP_BYTES`, or
    /// with shared memory full: not kept for its failure and reply routes.
    AvpsNotKept => "tm_avps_not_kept",
}}
pub use txn::{Effect, Timers};

use crate::cfg::Config;

/// tm's timers from its module parameters (milliseconds, as Kamailio).
pub fn timers(config: &Config) -> Timers {
    let d = Timers::default();
    let ms = |name: &str, default: u64| {
        let v = config.modparam_int("tm", name, default as i64);
        // Bounded: at least one tick, at most a day.
        v.clamp(10, 86_400_000) as u64
    };
    Timers {
        t1: ms("retr_timer1", d.t1),
        t2: ms("retr_timer2", d.t2),
        fr: ms("fr_timer", d.fr),
        fr_inv: ms("fr_inv_timer", d.fr_inv),
        wt: ms("wt_timer", d.wt),
    }
}

/// tm's timer parameters, all in milliseconds.
const TIMER_PARAMS: &[&str] = &[
    "fr_timer",
    "fr_inv_timer",
    "wt_timer",
    "retr_timer1",
    "retr_timer2",
];

/// `rser -c`'s word on tm's parameters: SER 0.8 counted its timers in
/// seconds, Kamailio (and rser) in milliseconds, so `fr_timer=2` from an
/// old script is a 2 ms timer; a value under 100 is said with its unit.
pub fn check(config: &Config) -> Result<Vec<String>, String> {
    let mut warnings = Vec::new();
    for name in TIMER_PARAMS {
        if let Some(crate::cfg::ParamValue::Int(v)) = config.modparam("tm", name)
            && *v < 100
        {
            warnings.push(format!(
                "modparam(\"tm\", \"{name}\", {v}) is {v} milliseconds{} (tm timers are in \
                 milliseconds, as Kamailio's; SER 0.8 counted seconds: {v} s is {})",
                if *v < 10 { ", raised to 10" } else { "" },
                v * 1000
            ));
        }
    }
    Ok(warnings)
}

/// tm's tables in shared memory: the transactions (half the region) and,
/// with `use_dst_blocklist`, the destination blocklist.
pub struct TmShm {
    pub table: Table,
    pub blocklist: Option<blocklist::Blocklist>,
}

/// Share of the region given to tm (transactions, branches, stored
/// messages, the wheel): half.
const TM_SHARE: usize = 2;

/// In the master: tm's tables.
pub fn carve(
    config: &crate::cfg::Config,
    carver: &mut rser_shm::Carver<'_>,
    region: usize,
) -> Result<crate::modules::def::Carved, String> {
    use crate::server::limits::BLOCKLIST_ENTRIES;
    let too_small = || format!("shared memory of {region} bytes is too small for tm");
    let blocklist = match config.settings.use_dst_blocklist {
        true => Some(blocklist::Blocklist::carve(carver, BLOCKLIST_ENTRIES).ok_or_else(too_small)?),
        false => None,
    };
    let table = Table::carve(carver, region / TM_SHARE).ok_or_else(too_small)?;
    let mut capacity = format!(
        "{} transactions of {} bytes",
        table.capacity(),
        Table::bytes_per_txn()
    );
    if blocklist.is_some() {
        capacity.push_str(&format!(
            ", a blocklist of {BLOCKLIST_ENTRIES} destinations"
        ));
    }
    Ok(crate::modules::def::Carved {
        capacity,
        shm: Box::new(TmShm { table, blocklist }),
    })
}
