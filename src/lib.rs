//! rser: the SIP Express Router re-implemented in Rust.
//!
//! See ARCHITECTURE.md for the map of modules and how a message flows
//! through them.

pub mod cfg;
pub mod db;
pub mod modules;
pub mod script;
pub mod server;
pub mod sip;
