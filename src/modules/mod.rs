//! Runtimes of the SER modules whose actions need more than the VM: sl
//! (stateless replies and the ACK filter) and maxfwd now; tm, registrar,
//! auth and dispatcher follow.

pub mod maxfwd;
pub mod sl;
