//! Requests started from outside the network, as SER's FIFO
//! `:t_uac_from:` and `:t_uac_dlg:` did and Kamailio's `tm.t_uac_wait`
//! does: the control process is the UAC. It builds the request
//! (`build.rs`), sends it from a UDP socket of its own on the listen
//! address and runs the client transaction (`engine.rs`, timers in
//! `modules/tm/uac.rs`), INVITE included: its ACK (to a 2xx as to any
//! final), and a CANCEL when fr_inv_timer ends it after a provisional.

pub mod build;
pub mod engine;

use std::net::SocketAddr;

use super::rpc::{Params, RpcError};
use crate::modules::tm::Timers;
pub use build::Ask;
pub use engine::{Done, Engine, Outcome};

/// What the control process needs to start transactions.
#[derive(Debug, Clone)]
pub struct UacSetup {
    pub timers: Timers,
    /// The first listen address: the Via's sent-by host, and the address
    /// the UAC's socket binds (on an ephemeral port).
    pub local: SocketAddr,
    /// The control process's counter row (its script host's, for
    /// `event_route[tm:local-request]`).
    pub slot: usize,
}

/// `tm.t_uac`'s parameters, as Kamailio's: method, Request-URI, next hop
/// (`.` for the Request-URI's host), extra header lines, body.
pub fn rpc_ask(p: &Params) -> Result<Ask, RpcError> {
    let optional = |i: usize, name: &str| -> Result<Option<String>, RpcError> {
        Ok(p.str(i, name)?
            .filter(|s| !s.is_empty() && *s != ".")
            .map(str::to_string))
    };
    Ok(Ask {
        method: p.required_str(0, "method")?.to_string(),
        ruri: p.required_str(1, "ruri")?.to_string(),
        next_hop: optional(2, "next_hop")?,
        from: None,
        headers: optional(3, "headers")?.unwrap_or_default(),
        body: optional(4, "body")?.unwrap_or_default(),
    })
}
