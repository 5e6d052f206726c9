//! tls (Kamailio's): the parameters of TLS over rser's TCP connections
//! and its `config` file of domains (`server/tcp/tls.rs` builds rustls's
//! configurations from them once, in the master; `tls.reload` again in
//! every worker). With `enable_tls=yes` and a `listen=tls:` address rser
//! accepts TLS; `t_relay_to_tls`, `forward_tls`, `sips:` URIs and
//! `;transport=tls` open TLS connections.

use crate::cfg::Config;
use crate::modules::def::{Module, ParamType};

use ParamType::{Int, Str};

pub static MODULE: Module = Module {
    check: Some(check),
    ..Module::params_only(
        "tls",
        &[
            ("certificate", Str),
            ("private_key", Str),
            ("ca_list", Str),
            ("verify_certificate", Int),
            ("require_certificate", Int),
            ("tls_method", Str),
            ("config", Str),
            ("crl", Str),
            ("cipher_list", Str),
            ("session_cache", Int),
            ("connection_timeout", Int),
            ("tls_log", Int),
            ("tls_debug", Int),
        ],
    )
    .unapplied(&[
        "crl",
        "cipher_list",
        "connection_timeout",
        "tls_log",
        "tls_debug",
    ])
};

/// Every file read and every setting checked as a start would: what would
/// fail there is an error of `rser -c`.
fn check(c: &Config) -> Result<Vec<String>, String> {
    crate::server::tcp::tls::TlsSetup::from_config(c)
        .map_err(|e| e.trim_start_matches("tls: ").to_string())?;
    let mut w = Vec::new();
    if !c.settings.enable_tls {
        w.push("tls: loaded without enable_tls=yes: no TLS address is listened on".into());
    }
    if c.modparam("tls", "session_cache").is_some()
        && c.modparam_int("tls", "session_cache", 0) == 0
    {
        w.push(
            "tls: session_cache=0: rser keeps each worker's TLS sessions for resumption anyway"
                .into(),
        );
    }
    Ok(w)
}
