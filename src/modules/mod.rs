//! Runtimes of the SER modules whose actions need more than the VM: sl
//! (stateless replies and the ACK filter), maxfwd and rr now; tm,
//! registrar, auth and dispatcher follow.

pub mod auth;
pub mod dispatcher;
pub mod maxfwd;
pub mod registrar;
pub mod rr;
pub mod sl;
pub mod tm;
pub mod usrloc;
