//! Kamailio modules rser accepts by name with no runtime of their own:
//! what they provide is rser's elsewhere (pseudo-variables, the control
//! interface) or not yet (their functions are then unknown actions, named
//! by `rser -c`). Loading one changes nothing by itself, except where
//! Kamailio's would open something; that is said by `rser -c` (each
//! module's `check`).

use crate::cfg::Config;
use crate::modules::def::{Module, ParamType};

use ParamType::{Int, Str};

/// pv: pseudo-variables are the core's here (`cfg/pv.rs`).
pub static PV: Module =
    Module::params_only("pv", &[("shvset", Str), ("varset", Str)]).unapplied(&["shvset", "varset"]);
/// kex, corex, tmx, textopsx: Kamailio's extensions of the core, tm and
/// textops; their functions are resolved one by one.
pub static KEX: Module = Module::params_only("kex", &[]);
pub static COREX: Module =
    Module::params_only("corex", &[("alias_subdomains", Str)]).unapplied(&["alias_subdomains"]);
pub static TMX: Module = Module::params_only("tmx", &[("prefork", Int)]).unapplied(&["prefork"]);
pub static TEXTOPSX: Module = Module::params_only("textopsx", &[]);

/// jsonrpcs: Kamailio's JSON-RPC transports. Its FIFO (`kamctl`'s) is
/// served by the control process (`server/control/rpcfifo.rs`); its
/// datagram socket is not. rser's JSON-RPC is on `ctl_socket` (`-s`) too.
pub static JSONRPCS: Module = Module {
    check: Some(|c: &Config| {
        let mut w = Vec::new();
        if matches!(c.modparam_int("jsonrpcs", "transport", 0), 0 | 2) {
            w.push("jsonrpcs: its datagram transport is not opened (its FIFO is, for kamctl); rser's JSON-RPC 2.0 is also on ctl_socket (or -s)".into());
        }
        if !matches!(
            c.modparam_str("jsonrpcs", "fifo_reply_dir", "/tmp/"),
            "/tmp" | "/tmp/"
        ) {
            w.push("jsonrpcs: fifo_reply_dir: accepted and ignored: replies go to /tmp, as SER's FIFO's".into());
        }
        Ok(w)
    }),
    ..Module::params_only(
        "jsonrpcs",
        &[
            ("pretty_format", Int),
            ("transport", Int),
            ("fifo_name", Str),
            ("fifo_mode", Int),
            ("fifo_reply_dir", Str),
            ("dgram_socket", Str),
        ],
    )
    .unapplied(&["pretty_format", "dgram_socket"])
};

/// ctl: kamcmd's binrpc; not served.
pub static CTL: Module = Module {
    check: Some(|_: &Config| {
        Ok(vec![
            "ctl: kamcmd's binrpc socket is not opened; rser's control interface is JSON-RPC on ctl_socket (or -s), rserctl its client"
                .into(),
        ])
    }),
    ..Module::params_only(
        "ctl",
        &[
            ("binrpc", Str),
            ("mode", Int),
            ("user", Str),
            ("group", Str),
        ],
    )
    .unapplied(&["binrpc", "mode", "user", "group"])
};

/// cfg_rpc: changing configuration values at run time; not provided.
pub static CFG_RPC: Module = Module {
    check: Some(|_: &Config| {
        Ok(vec![
            "cfg_rpc: cfg.* methods are not provided; values change with a restart".into(),
        ])
    }),
    ..Module::params_only("cfg_rpc", &[])
};

/// counters: script counters; not provided (rser's own counters are
/// `stats.get` and Prometheus').
pub static COUNTERS: Module = Module {
    check: Some(|_: &Config| {
        Ok(vec![
            "counters: cnt_* functions and cnt.* methods are not provided; rser's counters are stats.get and /metrics"
                .into(),
        ])
    }),
    ..Module::params_only(
        "counters",
        &[("script_counter", Str), ("script_counters", Str)],
    )
    .unapplied(&["script_counter", "script_counters"])
};
