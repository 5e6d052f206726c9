//! `pike.top` (Kamailio's name): the sources pike counts, as Kamailio
//! lists them (`ip_addr`, `leaf_hits_prev`, `leaf_hits_curr`, `expires`
//! in seconds, `status`): the hot ones (refused now) by default, `ALL`
//! for every source seen within `remove_latency`, `WARM` for those not
//! refused.

use serde_json::{Value, json};

use super::rpc::{NOT_AVAILABLE, RpcError};
use crate::modules::pike::PikeShm;
use crate::server::worker::now_ms;

pub fn top(pike: Option<&PikeShm>, which: Option<&str>) -> Result<Value, RpcError> {
    let p = pike.ok_or_else(|| RpcError::new(NOT_AVAILABLE, "pike is not loaded"))?;
    let which = which.unwrap_or("HOT").to_ascii_uppercase();
    let keep = |hot: bool| match which.as_str() {
        "HOT" => Ok(hot),
        "WARM" => Ok(!hot),
        "ALL" => Ok(true),
        other => Err(RpcError::params(format!("'{other}': HOT, WARM or ALL"))),
    };
    let mut out = Vec::new();
    for l in p.counts.list(&p.limits, now_ms(), false) {
        if !keep(l.hot)? {
            continue;
        }
        out.push(json!({
            "ip_addr": l.source,
            "leaf_hits_prev": l.hits_prev,
            "leaf_hits_curr": l.hits_curr,
            "expires": l.expires_ms.div_ceil(1_000),
            "status": if l.hot { "HOT" } else { "WARM" },
        }));
    }
    Ok(Value::Array(out))
}
