//! dispatcher: load balancing over destination sets (Kamailio's module of
//! that name). The list file (`list.rs`), the selection algorithms
//! (`select.rs`) and destination health (`health.rs`) are pure code; the
//! state every process shares is `state.rs`; the script's actions and
//! probing run in the server (`server/dispatcher.rs`).

pub mod actions;
pub mod health;
pub mod list;
pub mod runtime;
pub mod select;
pub mod state;

/// Indices in the module's counters.
pub(crate) const SELECTED: usize = 0;
pub(crate) const NO_DESTINATION: usize = 1;
pub(crate) const PROBES_SENT: usize = 2;
pub(crate) const PROBES_FAILED: usize = 3;
pub(crate) const STATE_CHANGES: usize = 4;

/// Most destinations a selection keeps for failover (Kamailio's `limit`
/// argument of `ds_select_dst` caps it lower).
pub const MAX_FAILOVER: usize = 16;

/// What `ds_select_dst` chose, kept with the transaction so that
/// `ds_next_dst` in failure_route goes on where it stopped (Kamailio keeps
/// this in AVPs). Plain data: it lives in tm's shared table.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Failover {
    /// The set id.
    pub set: u32,
    /// Low bits of the list generation the indices belong to.
    pub generation: u32,
    /// Destinations (indices in the set), the current one at `pos`.
    pub order: [u8; MAX_FAILOVER],
    pub len: u8,
    pub pos: u8,
    /// Index + 1 of the destination holding one call of load (alg 10).
    pub load: u8,
}

impl Failover {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The current destination's index in its set.
    pub fn current(&self) -> Option<u8> {
        (self.pos < self.len).then(|| self.order[self.pos as usize])
    }
}
