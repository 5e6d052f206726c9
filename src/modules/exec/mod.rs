//! exec: `exec_dset`, `exec_msg`, run by the VM itself
//! (`script/exec.rs`); this module enables them and holds their
//! parameters.

use crate::cfg::Config;
use crate::modules::def::{Module, ParamType};

pub static MODULE: Module = Module {
    check: Some(check),
    ..Module::params_only(
        "exec",
        &[
            ("time_to_kill", ParamType::Int),
            ("setvars", ParamType::Int),
        ],
    )
};

/// `setvars 0` asks for commands without the message's variables; rser
/// always sets them.
fn check(config: &Config) -> Result<Vec<String>, String> {
    Ok(match config.modparam_int("exec", "setvars", 1) {
        0 => vec!["setvars 0: accepted and ignored: commands always get the message's variables (SRCIP, ...)".into()],
        _ => Vec::new(),
    })
}
