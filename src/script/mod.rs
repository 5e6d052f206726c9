//! Running the compiled routing script: the per-message context, the VM,
//! and the actions it runs itself (URI rewriting, textops, exec).

pub mod avp;
pub mod ctx;
pub mod exec;
pub mod pv;
pub mod textops;
pub mod transform;
pub mod uri_ops;
pub mod vars;
pub mod vm;

#[cfg(test)]
mod seed_tests;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod vm_tests;

pub use ctx::{MsgCtx, ScriptState};
pub use vm::{Destination, Host, Outcome, RunError, Vm};
