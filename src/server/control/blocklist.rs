//! `dst_blocklist.view` and `dst_blocklist.delete` (Kamailio's RPC names):
//! the addresses tm skips after a timeout, and unblocking one or all.

use serde_json::{Value, json};

use super::rpc::{NOT_AVAILABLE, NOT_FOUND, RpcError};
use crate::modules::tm::blocklist::Blocklist;
use crate::server::worker::now_ms;

fn list(b: Option<&Blocklist>) -> Result<&Blocklist, RpcError> {
    b.ok_or_else(|| {
        RpcError::new(
            NOT_AVAILABLE,
            "the destination blocklist is off (use_dst_blocklist)",
        )
    })
}

pub fn view(b: Option<&Blocklist>) -> Result<Value, RpcError> {
    let b = list(b)?;
    let mut entries = b.list(now_ms());
    entries.sort();
    let out: Vec<Value> = entries
        .iter()
        .map(|(a, left)| json!({"address": a.to_string(), "expires_in_ms": left}))
        .collect();
    Ok(json!({"capacity": b.capacity(), "entries": out}))
}

/// One address (`IP:port`), or every one when none is given.
pub fn delete(b: Option<&Blocklist>, address: Option<&str>) -> Result<Value, RpcError> {
    let b = list(b)?;
    let now = now_ms();
    match address {
        None => Ok(json!({"removed": b.clear(now)})),
        Some(a) => {
            let addr = a
                .parse()
                .map_err(|_| RpcError::params(format!("'{a}' is not IP:port")))?;
            if b.remove(addr, now) {
                Ok(json!({"removed": 1}))
            } else {
                Err(RpcError::new(NOT_FOUND, format!("{a} is not blocklisted")))
            }
        }
    }
}
