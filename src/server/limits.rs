//! Every bound of the server's process shell, in one place (the SIP
//! message's are in `sip/limits.rs`, the tables' capacities follow `-m`).

/// Datagrams per `recvmmsg`/`sendmmsg` call.
pub const BATCH: usize = 32;

/// Listen sockets one server serves.
pub const MAX_SOCKETS: usize = 16;

/// Transactions the timer process takes off the wheel at a time.
pub const TIMER_BATCH: usize = 256;

/// Batches per 10 ms tick before the rest waits for the next tick (and
/// `tm_timer_lag` counts it): 256 * 64 a tick, 1.6 million a second.
pub const TIMER_ROUNDS: usize = 64;

/// Addresses tm's destination blocklist holds at once.
pub const BLOCKLIST_ENTRIES: usize = 4096;

/// Rounds of sending what a failed send produced (a tm branch ending
/// with 477 sends a reply upstream) before the rest waits for the next
/// batch.
pub const SEND_ROUNDS: usize = 3;

/// The longest the timer process sleeps when no runtime needs a tick
/// sooner: how late its own sockets are read and a stop is noticed.
pub const TIMER_MAX_SLEEP_MS: u64 = 200;
