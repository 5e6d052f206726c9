//! exec: `exec_dset`, `exec_msg`, run by the VM itself
//! (`script/exec.rs`); this module enables them and holds their
//! parameters.

use crate::modules::def::{Module, ParamType};

pub static MODULE: Module = Module::params_only(
    "exec",
    &[
        ("time_to_kill", ParamType::Int),
        ("setvars", ParamType::Int),
    ],
);
