//! Operator tools for rser: `rserctl`, subscriber management (`subscriber`)
//! and the control interface's client (`ctl`). The subcommands' logic lives
//! here so tests can run it without a process.

pub mod ctl;
pub mod db;
pub mod subscriber;

/// A config file read and compiled, its errors as `PATH:LINE:COL: ...`.
pub fn load_config(path: &str) -> Result<rser::cfg::Config, String> {
    let src = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    rser::cfg::load(&src).map_err(|errs| {
        errs.iter()
            .map(|e| format!("{path}:{e}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
}
