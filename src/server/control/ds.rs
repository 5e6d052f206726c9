//! The dispatcher's control methods: `dispatcher.list` (every set with
//! each destination's state as Kamailio prints it), `dispatcher.reload`
//! (the list file or table again; health and load kept) and
//! `dispatcher.set_state` (the operator's mark).

use serde_json::{Value, json};

use super::rpc::{INTERNAL_ERROR, NOT_AVAILABLE, NOT_FOUND, RpcError};
use crate::modules::dispatcher::health::Health;
use crate::modules::dispatcher::list::{
    self, FLAG_DISABLED, FLAG_INACTIVE, FLAG_PROBING, FLAG_TRYING,
};
use crate::modules::dispatcher::runtime::DsParams;
use crate::modules::dispatcher::state::{self, DsShared};

/// Kamailio's letters: A(ctive), I(nactive), T(rying), D(isabled), then P
/// when probed.
pub fn flags_text(h: &Health) -> String {
    let mut s = String::from(if h.flags & FLAG_DISABLED != 0 {
        "D"
    } else if h.flags & FLAG_INACTIVE != 0 {
        "I"
    } else if h.flags & FLAG_TRYING != 0 {
        "T"
    } else {
        "A"
    });
    s.push(if h.flags & FLAG_PROBING != 0 {
        'P'
    } else {
        'X'
    });
    s
}

fn shm(ds: Option<&DsShared>) -> Result<&DsShared, RpcError> {
    ds.ok_or_else(|| RpcError::new(NOT_AVAILABLE, "dispatcher is not loaded"))
}

/// The list in force with its generation.
fn current(ds: &DsShared) -> Result<(u64, list::List), RpcError> {
    let mut text = String::new();
    let g = ds.text(&mut text);
    let l = list::parse(&text).map_err(|e| RpcError::new(INTERNAL_ERROR, e.join("; ")))?;
    Ok((g, l))
}

pub fn list(ds: Option<&DsShared>) -> Result<Value, RpcError> {
    let ds = shm(ds)?;
    let (g, l) = current(ds)?;
    let mut i = 0;
    let mut sets = Vec::new();
    for set in &l.sets {
        let mut targets = Vec::new();
        for d in &set.dests {
            let snap = ds
                .cell(g, i)
                .and_then(|c| c.snapshot(state::key(set.id, &d.uri)));
            i += 1;
            let Some(snap) = snap else { continue };
            targets.push(json!({
                "uri": d.uri,
                "flags": flags_text(&snap.health),
                "priority": d.priority,
                "weight": d.weight,
                "attrs": d.attrs,
                "load": snap.load,
                "failed_probes": snap.health.fails,
            }));
        }
        sets.push(json!({"id": set.id, "targets": targets}));
    }
    Ok(json!({"generation": g, "sets": sets}))
}

pub fn reload(ds: Option<&DsShared>, params: Option<&DsParams>) -> Result<Value, RpcError> {
    let ds = shm(ds)?;
    let params = params.ok_or_else(|| RpcError::new(NOT_AVAILABLE, "dispatcher is not loaded"))?;
    let (g, n) = crate::modules::dispatcher::runtime::reload(ds, params)
        .map_err(|e| RpcError::new(INTERNAL_ERROR, format!("list kept: {e}")))?;
    log::info!("dispatcher: reloaded, {n} destinations (generation {g})");
    Ok(json!({"generation": g, "destinations": n}))
}

/// `dispatcher.set_state STATE SET URI` (Kamailio's order); the state in
/// `ds_mark_dst`'s letters (`a`, `i`, `t`, `d`, with `p`), either case.
pub fn set_state(ds: Option<&DsShared>, how: &str, set: u32, uri: &str) -> Result<Value, RpcError> {
    let ds = shm(ds)?;
    let how = how.to_ascii_lowercase();
    if Health::default().marked(&how).is_none() {
        return Err(RpcError::params(format!(
            "state '{how}': expected a, i, t or d, with p"
        )));
    }
    let (g, l) = current(ds)?;
    let mut i = 0;
    for s in &l.sets {
        for d in &s.dests {
            if s.id == set && d.uri == uri {
                let k = state::key(set, uri);
                let (_, new) = ds
                    .cell(g, i)
                    .and_then(|c| c.update(k, |h| h.marked(&how).unwrap_or(h)))
                    .ok_or_else(|| RpcError::new(INTERNAL_ERROR, "the list changed; try again"))?;
                log::info!(
                    "dispatcher: {uri} in set {set} set to {} by the operator",
                    flags_text(&new)
                );
                return Ok(json!({"uri": uri, "set": set, "flags": flags_text(&new)}));
            }
            i += 1;
        }
    }
    Err(RpcError::new(
        NOT_FOUND,
        format!("no destination '{uri}' in set {set}"),
    ))
}
