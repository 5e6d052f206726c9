//! rser-bench's load generator: a UAC and a UAS over UDP (or TCP,
//! `tcp.rs`) driving one scenario through a proxy (`driver.rs`, pure
//! protocol logic), paced by a token bucket (`pace.rs`), on batched
//! sockets (`engine.rs`); the rate search (`search.rs`) and the report
//! (`report.rs`).

pub mod driver;
pub mod engine;
pub mod msg;
pub mod pace;
pub mod report;
pub mod search;
pub mod tcp;
pub mod users;

#[cfg(test)]
mod driver_tests;
