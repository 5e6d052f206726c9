//! What the workers share, carved from the region at start-up: per-worker
//! counters and the SL ACK filter. Capacities follow the region's size.

use std::io;

use rser_shm::{Counters, Region};

use crate::modules::sl::{AckFilter, Signature};

/// Counter names; the index of each is its [`Counter`] value.
pub const COUNTER_NAMES: &[&str] = &[
    "received",
    "forwarded_requests",
    "forwarded_replies",
    "sl_replies",
    "acks_absorbed",
    "parse_errors",
    "bad_requests",
    "too_big",
    "replies_not_ours",
    "dropped",
    "script_errors",
    "send_errors",
    "sl_table_evicted",
    "locks_recovered",
];

#[derive(Debug, Clone, Copy)]
#[repr(usize)]
pub enum Counter {
    Received,
    ForwardedRequests,
    ForwardedReplies,
    SlReplies,
    AcksAbsorbed,
    ParseErrors,
    BadRequests,
    TooBig,
    RepliesNotOurs,
    Dropped,
    ScriptErrors,
    SendErrors,
    SlTableEvicted,
    LocksRecovered,
}

/// Share of the region given to the table of unsigned stateless replies.
const SL_TABLE_SHARE: usize = 16;

pub struct Shared {
    /// Kept so the mapping lives as long as the server.
    _region: Region,
    pub counters: Counters,
    pub ack_filter: AckFilter,
}

impl Shared {
    pub fn create(size_bytes: usize, slots: usize, secret: &[u8]) -> io::Result<Shared> {
        let region = Region::create(size_bytes)?;
        let too_small = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("shared memory of {size_bytes} bytes is too small for {slots} workers"),
            )
        };
        let mut carver = region.carver();
        let counters = Counters::carve(&mut carver, slots, COUNTER_NAMES).ok_or_else(too_small)?;
        let sl_entries = (size_bytes / SL_TABLE_SHARE / AckFilter::BYTES_PER_ENTRY).max(64);
        let ack_filter = AckFilter::carve(&mut carver, Signature::new(secret), sl_entries)
            .ok_or_else(too_small)?;
        log::info!(
            "shared memory: {} MiB, {} bytes used; {} stateless-reply records",
            size_bytes >> 20,
            carver.used(),
            sl_entries
        );
        Ok(Shared {
            _region: region,
            counters,
            ack_filter,
        })
    }

    pub fn count(&self, slot: usize, c: Counter) {
        self.counters.add(slot, c as usize, 1);
    }

    /// `name=total` for every counter, for the log.
    pub fn summary(&self) -> String {
        COUNTER_NAMES
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{n}={}", self.counters.total(i)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Datagrams received by each worker slot, for the log: how evenly the
    /// socket mode spreads the load.
    pub fn received_per_worker(&self, slots: usize) -> String {
        (0..slots)
            .map(|s| self.counters.get(s, Counter::Received as usize).to_string())
            .collect::<Vec<_>>()
            .join("/")
    }
}
