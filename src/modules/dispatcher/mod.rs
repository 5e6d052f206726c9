//! dispatcher: load balancing over destination sets (Kamailio's module of
//! that name). The list file (`list.rs`), the selection algorithms
//! (`select.rs`) and destination health (`health.rs`) are pure code; the
//! shared state every worker reads, probing and the script's actions come
//! on top of them.

pub mod health;
pub mod list;
pub mod select;
