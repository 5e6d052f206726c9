//! pipelimit's RPC methods, with Kamailio's names: `pl.stats` (each
//! pipe's requests offered in the last second, as `load` and `counter`),
//! `pl.get_pipes` (name, algorithm, limit, counter; rser adds what was
//! let through and dropped), `pl.set_pipe name algorithm limit` (defines
//! or changes one), `pl.get_pid` and `pl.set_pid ki kp kd` (FEEDBACK's
//! gains; kd is accepted, the controller has no derivative term).
//! ratelimit's `rl.*` are the same over its pipes, and `rl.get_queues`
//! lists its queues.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::rpc::{NOT_AVAILABLE, Params, RpcError};
use crate::modules::pipelimit::pipes::{self, Pipes};

fn number(p: &Params, i: usize, name: &str) -> Result<f64, RpcError> {
    match p.get(i, name) {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| RpcError::params(format!("'{name}' must be a number")))
}

pub fn call(pipes: Option<&Pipes>, method: &str, p: &Params) -> Result<Value, RpcError> {
    let pipes = pipes.ok_or_else(|| RpcError::new(NOT_AVAILABLE, "pipelimit is not loaded"))?;
    match method {
        "pl.stats" => Ok(Value::Array(
            pipes
                .stats()
                .iter()
                .map(|s| json!({"name": s.def.name, "load": s.last_second, "counter": s.last_second}))
                .collect(),
        )),
        "pl.get_pipes" => Ok(Value::Array(
            pipes
                .stats()
                .iter()
                .map(|s| {
                    json!({
                        "name": s.def.name,
                        "algorithm": s.def.algorithm.name(),
                        "limit": s.def.limit,
                        "counter": s.last_second,
                        "accepted": s.accepted,
                        "dropped": s.dropped,
                    })
                })
                .collect(),
        )),
        "pl.set_pipe" => {
            let name = p.required_str(0, "name")?;
            let alg = p.required_str(1, "algorithm")?;
            let limit = number(p, 2, "limit")?;
            let d = pipes::parse_def(&format!("{name}:{alg}:{}", limit as u64))
                .map_err(RpcError::params)?;
            pipes.set(&d).map_err(RpcError::params)?;
            Ok(json!({"name": d.name, "algorithm": d.algorithm.name(), "limit": d.limit}))
        }
        "pl.get_pid" => {
            let l = pipes.load();
            Ok(json!({
                "ki": f64::from(l.ki.load(Ordering::Acquire)) / 1000.0,
                "kp": f64::from(l.kp.load(Ordering::Acquire)) / 1000.0,
                "kd": 0.0,
            }))
        }
        "pl.set_pid" => {
            let (ki, kp) = (number(p, 0, "ki")?, number(p, 1, "kp")?);
            let gain = |g: f64| (g * 1000.0).clamp(0.0, 1_000_000.0) as u32;
            let l = pipes.load();
            l.ki.store(gain(ki), Ordering::Release);
            l.kp.store(gain(kp), Ordering::Release);
            Ok(json!({"ki": ki, "kp": kp}))
        }
        other => Err(RpcError::new(
            super::rpc::METHOD_NOT_FOUND,
            format!("no method {other}"),
        )),
    }
}

/// `rl.get_queues`: ratelimit's queues (pipe and method), as configured.
pub fn queues(config: Option<&crate::cfg::Config>) -> Result<Value, RpcError> {
    let c = config.ok_or_else(|| RpcError::new(NOT_AVAILABLE, "no config"))?;
    let names: Vec<String> = crate::modules::pipelimit::configured(c, "ratelimit")
        .map_err(RpcError::params)?
        .into_iter()
        .map(|p| p.name)
        .collect();
    let q = crate::modules::pipelimit::ratelimit::queues(c, &names).map_err(RpcError::params)?;
    Ok(Value::Array(
        q.iter()
            .map(|q| json!({"pipe": q.pipe, "method": q.method}))
            .collect(),
    ))
}
