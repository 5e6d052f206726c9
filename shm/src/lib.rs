//! rser's shared-memory region.
//!
//! The master creates one memfd-backed `MAP_SHARED` region before it forks
//! the workers (`memmap2`'s anonymous maps are private after fork, so the
//! region is a file mapping). Tables are carved out of it once, at start-up,
//! at fixed offsets; nothing is allocated in it afterwards. Locks are
//! process-shared robust mutexes, so a worker killed while holding one does
//! not stop the others.

pub mod chains;
pub mod counters;
pub mod freelist;
pub mod lock;
pub mod peer;
pub mod pool;
pub mod region;
pub mod ring;

pub use chains::{Chains, Linked, Links, Stripe};
pub use counters::Counters;
pub use freelist::FreeList;
pub use lock::{LockGuard, RobustMutex};
pub use peer::Peer;
pub use pool::{Chain, Pool};
pub use region::{Carver, Region, Slice};
pub use ring::Ring;

/// The span a hot shared word is padded to so that processes do not
/// false-share its cache line (crossbeam's `CachePadded`: 128 bytes on
/// x86_64, where the adjacent line is prefetched too).
pub const CACHE_PAD: usize = std::mem::align_of::<crossbeam::utils::CachePadded<u8>>();

pub use crossbeam::utils::CachePadded;
