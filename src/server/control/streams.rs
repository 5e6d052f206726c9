//! The control interface's methods for TCP and TLS: `core.tcp_info`
//! (Kamailio's counts), `tls.list` (the TLS connections open) and
//! `tls.reload` (every worker reads the certificate files again; new
//! connections use them, open ones keep their sessions).

use serde_json::{Value, json};

use super::rpc::{NOT_AVAILABLE, RpcError};
use crate::cfg::Config;
use crate::server::tcp::Streams;
use crate::server::tcp::conns::Stream;

/// Connections listed by `tls.list` at most.
const MAX_LISTED: usize = 10_000;

fn streams(s: Option<&Streams>) -> Result<&Streams, RpcError> {
    s.ok_or_else(|| RpcError::new(NOT_AVAILABLE, "no tcp: or tls: address is listened on"))
}

/// Kamailio's `core.tcp_info` fields rser has.
pub fn tcp_info(s: Option<&Streams>) -> Result<Value, RpcError> {
    let s = streams(s)?;
    let (tcp, tls) = s.conns.count_by_kind();
    Ok(json!({
        "max_connections": s.conns.max(),
        "opened_connections": tcp + tls,
        "opened_tcp_connections": tcp,
        "opened_tls_connections": tls,
        "accept_iplimit": s.conns.per_source(),
    }))
}

/// The TLS connections: id, peer, owning worker.
pub fn tls_list(s: Option<&Streams>) -> Result<Value, RpcError> {
    let s = streams(s)?;
    let list: Vec<Value> = s
        .conns
        .list(Stream::Tls, MAX_LISTED)
        .into_iter()
        .map(|f| {
            json!({
                "id": format!("{}.{}", f.id.idx, f.id.generation),
                "src_ip": f.peer.ip().to_string(),
                "src_port": f.peer.port(),
                "worker": f.owner,
            })
        })
        .collect();
    Ok(json!({ "connections": list }))
}

/// Checks the tls module's files as the running config names them, then
/// tells every worker to read them again.
pub fn tls_reload(s: Option<&Streams>, config: Option<&Config>) -> Result<Value, RpcError> {
    let s = streams(s)?;
    let config = config
        .filter(|c| c.has_module("tls"))
        .ok_or_else(|| RpcError::new(NOT_AVAILABLE, "the tls module is not loaded"))?;
    crate::server::tcp::tls::TlsSetup::from_config(config)
        .map_err(|e| RpcError::new(NOT_AVAILABLE, format!("not reloaded: {e}")))?;
    let generation = s.reload_tls();
    Ok(json!({ "reloaded": true, "generation": generation }))
}
