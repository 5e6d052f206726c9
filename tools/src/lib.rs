//! Operator tools for rser: `rserctl` (subscriber management now; the
//! control interface later). The subcommands' logic lives here so tests
//! can run it without a process.

pub mod subscriber;
