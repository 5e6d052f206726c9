//! What the workers share, carved from the region at start-up: per-process
//! counters, the process table, then every used module's own tables (sl's
//! ACK filter, tm's transactions, usrloc's bindings, ...). Capacities
//! follow the region's size.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

use rser_shm::{Carver, Counters, Region, Slice};

use crate::cfg::Config;
use crate::modules::MODULES;
use crate::modules::def::ModuleShm;
use crate::modules::tm::Table;
use crate::modules::tm::blocklist::Blocklist;
use crate::modules::usrloc::Location;

/// Declares a counter enum and its names from one list, so a counter
/// cannot lack its name (or the names drift out of order): the shell's
/// [`Counter`] here, a module's own where it lists them.
macro_rules! counters {
    ($enum:ident, $names:ident, { $($(#[$doc:meta])* $variant:ident => $name:literal,)* }) => {
        #[derive(Debug, Clone, Copy)]
        #[repr(usize)]
        pub enum $enum {
            $($(#[$doc])* $variant,)*
        }

        /// Counter names; the index of each is its enum value.
        pub const $names: &[&str] = &[$($name,)*];
    };
}
pub(crate) use counters;

counters! { Counter, COUNTER_NAMES, {
    Received => "received",
    ForwardedRequests => "forwarded_requests",
    ForwardedReplies => "forwarded_replies",
    ParseErrors => "parse_errors",
    BadRequests => "bad_requests",
    TooBig => "too_big",
    RepliesNotOurs => "replies_not_ours",
    /// The first of six, by class (Kamailio's `rcv_replies_Nxx`).
    RcvReplies1xx => "rcv_replies_1xx",
    RcvReplies2xx => "rcv_replies_2xx",
    RcvReplies3xx => "rcv_replies_3xx",
    RcvReplies4xx => "rcv_replies_4xx",
    RcvReplies5xx => "rcv_replies_5xx",
    RcvReplies6xx => "rcv_replies_6xx",
    Dropped => "dropped",
    ScriptErrors => "script_errors",
    SendErrors => "send_errors",
    LocksRecovered => "locks_recovered",
    /// A lock stripe found held by another process and waited for.
    LockWaits => "lock_waits",
    /// Stream connections (Kamailio's `tcp:` counters).
    TcpAccepted => "tcp_accepted",
    TcpConnected => "tcp_connected",
    TcpClosed => "tcp_closed",
    /// Refused: the table, this worker, or a per-source limit is full.
    TcpRefused => "tcp_refused",
    TcpConnectFailed => "tcp_connect_failed",
    /// Closed for bad framing (no Content-Length, too large, too slow).
    TcpFramingErrors => "tcp_framing_errors",
    /// A send handed to another worker could not be queued.
    TcpHandoffFailed => "tcp_handoff_failed",
}}

/// The region's pieces as carved, for the start-up log.
#[derive(Default)]
struct Layout {
    rows: Vec<(&'static str, String, usize)>,
}

impl Layout {
    fn row(&mut self, what: &'static str, capacity: String, bytes: usize) {
        self.rows.push((what, capacity, bytes));
    }

    fn log(&self, size: usize, used: usize) {
        log::info!(
            "shared memory: {} MiB, {used} bytes carved, {} free",
            size >> 20,
            size.saturating_sub(used)
        );
        for (what, capacity, bytes) in &self.rows {
            log::info!("shared memory: {what}: {capacity}, {bytes} bytes");
        }
    }
}

/// What a child process of the master does, for `core.ps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Role {
    Worker = 1,
    Timer = 2,
    Control = 3,
}

/// The master's children, one entry per counter slot: the master writes
/// each pid as it forks, the control process reads them.
pub struct Processes {
    /// Per slot: the pid, then the role.
    cells: Slice<AtomicU32>,
    slots: usize,
}

impl Processes {
    fn carve(carver: &mut Carver<'_>, slots: usize) -> Option<Processes> {
        let cells = carver.slice(slots * 2, |_| AtomicU32::new(0))?;
        Some(Processes { cells, slots })
    }

    fn cell(&self, i: usize) -> &AtomicU32 {
        &self.cells[i]
    }

    pub fn set(&self, slot: usize, pid: u32, role: Role) {
        if slot < self.slots {
            self.cell(slot * 2 + 1)
                .store(role as u32, Ordering::Relaxed);
            self.cell(slot * 2).store(pid, Ordering::Release);
        }
    }

    /// (pid, role, slot) of every child recorded.
    pub fn list(&self) -> Vec<(u32, &'static str, usize)> {
        (0..self.slots)
            .filter_map(|slot| {
                let pid = self.cell(slot * 2).load(Ordering::Acquire);
                let role = match self.cell(slot * 2 + 1).load(Ordering::Relaxed) {
                    1 => "worker",
                    2 => "timer",
                    3 => "control",
                    _ => return None,
                };
                (pid != 0).then_some((pid, role, slot))
            })
            .collect()
    }
}

pub struct Shared {
    /// Kept so the mapping lives as long as the server.
    _region: Region,
    pub counters: Counters,
    pub processes: Processes,
    /// Set by the first worker once it ran the start-up events: a
    /// respawned one does not run them again.
    started: Slice<std::sync::atomic::AtomicBool>,
    /// The tables of loaded modules with [`Hooks`], by their place in
    /// [`MODULES`].
    pub modules: Vec<Option<ModuleShm>>,
    /// TCP's connection table and hand-off queues, when TCP is served.
    pub streams: Option<super::tcp::Streams>,
}

/// Every counter's name: the shell's ([`COUNTER_NAMES`]), then each
/// module's own, in [`MODULES`] order; a counter's index is its place.
pub fn counter_names() -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        COUNTER_NAMES
            .iter()
            .copied()
            .chain(MODULES.iter().flat_map(|m| m.counters.iter().copied()))
            .collect()
    })
}

/// Where module `m`'s counters start in [`counter_names`].
pub fn counter_base(m: usize) -> usize {
    COUNTER_NAMES.len() + MODULES[..m].iter().map(|m| m.counters.len()).sum::<usize>()
}

impl Shared {
    /// `slots`: counter rows, one per process that counts.
    /// `config`: the loaded modules with [`Hooks`] carve their tables.
    pub fn create(size_bytes: usize, slots: usize, config: Option<&Config>) -> io::Result<Shared> {
        let region = Region::create(size_bytes)?;
        let too_small = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("shared memory of {size_bytes} bytes is too small for {slots} workers"),
            )
        };
        let mut carver = region.carver();
        // The layout, piece by piece, logged at start: what, how many, and
        // the bytes each takes.
        let mut layout = Layout::default();
        let at = carver.used();
        let counters =
            Counters::carve(&mut carver, slots, counter_names()).ok_or_else(too_small)?;
        let processes = Processes::carve(&mut carver, slots).ok_or_else(too_small)?;
        let started = carver
            .one(std::sync::atomic::AtomicBool::new(false))
            .ok_or_else(too_small)?;
        layout.row(
            "counters, processes",
            format!("{slots} processes x {} counters", counter_names().len()),
            carver.used() - at,
        );
        let mut modules = Vec::with_capacity(MODULES.len());
        for m in MODULES {
            let at = carver.used();
            let carved = match (m.hooks.and_then(|h| h.carve), config) {
                (Some(carve), Some(c)) if crate::modules::def::Hooks::used_by(m, c) => Some(
                    carve(c, &mut carver, size_bytes)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
                ),
                _ => None,
            };
            modules.push(carved.map(|c| {
                layout.row(m.name, c.capacity, carver.used() - at);
                c.shm
            }));
        }
        let streams = match config {
            Some(c) if c.settings.listen.iter().any(|l| l.proto.is_stream()) => {
                let at = carver.used();
                let max = c.settings.tcp_max_connections as usize;
                let per_source = c.settings.tcp_accept_iplimit;
                let s =
                    super::tcp::Streams::carve(&mut carver, (max, per_source), slots, size_bytes)?;
                layout.row(
                    "tcp connections, hand-off queues",
                    format!("{max} connections, {slots} queues"),
                    carver.used() - at,
                );
                Some(s)
            }
            _ => None,
        };
        layout.log(size_bytes, carver.used());
        Ok(Shared {
            _region: region,
            counters,
            processes,
            started,
            modules,
            streams,
        })
    }

    /// tm's transaction table, when the config loads tm.
    pub fn tm(&self) -> Option<Table> {
        self.module_shm::<crate::modules::tm::TmShm>("tm")
            .map(|t| t.table)
    }

    /// tm's destination blocklist, with `use_dst_blocklist`.
    pub fn blocklist(&self) -> Option<Blocklist> {
        self.module_shm::<crate::modules::tm::TmShm>("tm")
            .and_then(|t| t.blocklist)
    }

    /// usrloc's table, when the script saves or looks up.
    pub fn usrloc(&self) -> Option<Location> {
        self.module_shm::<Location>("usrloc").copied()
    }

    /// The dispatcher's list and destination state, when loaded.
    pub fn dispatcher(&self) -> Option<&crate::modules::dispatcher::state::DsShared> {
        self.module_shm("dispatcher")
    }

    /// The tables module `name` carved, as type `T`.
    /// Whether module `name` carved tables (it is loaded and used).
    pub fn has_shm(&self, name: &str) -> bool {
        MODULES
            .iter()
            .position(|m| m.name == name)
            .and_then(|m| self.modules.get(m))
            .is_some_and(Option::is_some)
    }

    pub fn module_shm<T: 'static>(&self, name: &str) -> Option<&T> {
        let m = MODULES.iter().position(|m| m.name == name)?;
        self.modules.get(m)?.as_ref()?.downcast_ref::<T>()
    }

    /// True the first time it is asked after the server started (the
    /// start-up events run once, whatever restarts follow).
    pub fn first_start(&self) -> bool {
        !self.started[0].swap(true, Ordering::AcqRel)
    }

    pub fn count(&self, slot: usize, c: Counter) {
        self.counters.add(slot, c as usize, 1);
    }

    /// A reply received, by its class.
    pub fn count_reply(&self, slot: usize, code: u16) {
        let class = usize::from(code / 100).clamp(1, 6) - 1;
        self.counters
            .add(slot, Counter::RcvReplies1xx as usize + class, 1);
    }

    /// `name=total` for every counter, for the log.
    pub fn summary(&self) -> String {
        counter_names()
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
