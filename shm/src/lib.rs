//! rser's shared-memory region.
//!
//! The master process creates one memfd-backed `MAP_SHARED` region before it
//! forks the workers; every table (transactions, timers, the SL ACK filter,
//! user location, counters) lives in it at a fixed offset, behind
//! process-shared robust locks. The region and its tables arrive with the
//! server issue; this crate is the place for them.
