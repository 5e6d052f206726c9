//! rserctl's side of the control interface: one JSON-RPC 2.0 request over
//! the server's Unix socket, and the answer written for people.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use rser::server::control::methods::{self, SHM_GROUP};
use rser::server::control::prometheus::{self, Sample};
use serde_json::{Value, json};

/// The socket: `-s`, else the config's `ctl_socket`.
pub fn socket_path(socket: Option<&str>, config: Option<&str>) -> Result<String, String> {
    if let Some(s) = socket {
        return Ok(s.to_string());
    }
    let Some(path) = config else {
        return Err("say where the server listens: -s /path/to/ctl.sock or -f ser.cfg".into());
    };
    crate::load_config(path)?
        .settings
        .ctl_socket
        .ok_or_else(|| format!("{path} sets no ctl_socket"))
}

/// Sends one request; the result, or the server's error as a message.
pub fn call(socket: &str, method: &str, params: Value) -> Result<Value, String> {
    call_within(socket, method, params, Duration::from_secs(10))
}

/// [`call`], waiting up to `within` for the answer (a transaction's end).
pub fn call_within(
    socket: &str,
    method: &str,
    params: Value,
    within: Duration,
) -> Result<Value, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| format!("{socket}: {e}"))?;
    let timeout = Some(within);
    s.set_read_timeout(timeout).map_err(|e| e.to_string())?;
    s.set_write_timeout(timeout).map_err(|e| e.to_string())?;
    let req = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
    s.write_all(format!("{req}\n").as_bytes())
        .map_err(|e| format!("{socket}: {e}"))?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut text = String::new();
    s.read_to_string(&mut text)
        .map_err(|e| format!("{socket}: {e}"))?;
    let reply: Value = serde_json::from_str(text.trim())
        .map_err(|e| format!("bad answer from the server: {e}"))?;
    if let Some(err) = reply.get("error") {
        return Err(format!(
            "{} (error {})",
            err["message"].as_str().unwrap_or("?"),
            err["code"]
        ));
    }
    Ok(reply.get("result").cloned().unwrap_or(Value::Null))
}

/// `stats.get`'s groups as `group.name = value` lines, sorted.
pub fn stats_text(v: &Value) -> String {
    let mut lines = Vec::new();
    for (group, counters) in v.as_object().into_iter().flatten() {
        for (name, value) in counters.as_object().into_iter().flatten() {
            lines.push(format!("{group}.{name} = {value}"));
        }
    }
    lines.sort();
    lines.join("\n")
}

/// `stats.get`'s groups in Prometheus' text format: the `shm` group holds
/// levels (gauges), the others counts.
pub fn stats_prometheus(v: &Value) -> String {
    let mut samples = Vec::new();
    for (group, counters) in v.as_object().into_iter().flatten() {
        let group: &'static str = methods::group(group).unwrap_or("other");
        for (name, value) in counters.as_object().into_iter().flatten() {
            samples.push(Sample {
                group,
                name: name.clone(),
                value: value.as_u64().unwrap_or(0),
                gauge: group == SHM_GROUP,
            });
        }
    }
    prometheus::render(&samples)
}

/// `core.ps` as a table.
pub fn ps_text(v: &Value) -> String {
    let mut out = format!("{:>8}  {:<8}  {}", "PID", "ROLE", "SLOT");
    for p in v.as_array().into_iter().flatten() {
        let slot = p.get("slot").map_or(String::new(), Value::to_string);
        out.push_str(&format!(
            "\n{:>8}  {:<8}  {slot}",
            p["pid"].as_u64().unwrap_or(0),
            p["role"].as_str().unwrap_or("?")
        ));
    }
    out
}

/// One AOR's contacts, indented under it.
fn contacts_text(aor: &str, contacts: &Value, out: &mut String) {
    out.push_str(aor);
    out.push('\n');
    for c in contacts.as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {} expires={} q={} call-id={} cseq={}\n",
            c["contact"].as_str().unwrap_or("?"),
            c["expires"],
            c["q"],
            c["call_id"].as_str().unwrap_or("?"),
            c["cseq"]
        ));
    }
}

/// `ul.dump` (Kamailio's shape): each table, its AORs and their contacts.
pub fn ul_dump_text(v: &Value) -> String {
    let mut out = String::new();
    for d in v["Domains"].as_array().into_iter().flatten() {
        let d = &d["Domain"];
        let aors = d["AoRs"].as_array().map_or(&[][..], |a| a.as_slice());
        out.push_str(&format!(
            "table {}: {} AORs\n",
            d["Domain"].as_str().unwrap_or("?"),
            aors.len()
        ));
        for a in aors {
            let info = &a["Info"];
            // Back to the field names `ul.lookup` answers with.
            let contacts: Vec<Value> = info["Contacts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let c = &c["Contact"];
                    serde_json::json!({
                        "contact": c["Address"],
                        "expires": c["Expires"],
                        "q": if c["Q"] == -1 { Value::Null } else { c["Q"].clone() },
                        "call_id": c["Call-ID"],
                        "cseq": c["CSeq"],
                    })
                })
                .collect();
            contacts_text(
                info["AoR"].as_str().unwrap_or("?"),
                &Value::Array(contacts),
                &mut out,
            );
        }
    }
    out.trim_end().to_string()
}

/// `ul.lookup`: one AOR.
pub fn ul_lookup_text(v: &Value) -> String {
    let mut out = String::new();
    contacts_text(v["aor"].as_str().unwrap_or("?"), &v["contacts"], &mut out);
    out.trim_end().to_string()
}

/// `core.uptime` in days, hours, minutes and seconds.
pub fn uptime_text(v: &Value) -> String {
    let s = v["uptime"].as_u64().unwrap_or(0);
    format!(
        "up {}d {}h {}m {}s (since {} Unix time)",
        s / 86_400,
        s / 3600 % 24,
        s / 60 % 60,
        s % 60,
        v["up_since"]
    )
}

/// A flat object as `key: value` lines (tm.stats).
pub fn object_text(v: &Value) -> String {
    let mut out = Vec::new();
    for (k, val) in v.as_object().into_iter().flatten() {
        match val {
            Value::Object(inner) => {
                for (k2, v2) in inner {
                    out.push(format!("{k}.{k2}: {v2}"));
                }
            }
            _ => out.push(format!("{k}: {val}")),
        }
    }
    out.join("\n")
}

/// `dispatcher.list` as one block per set, a line per destination.
pub fn dispatcher_text(v: &Value) -> String {
    let mut out = Vec::new();
    for set in v["sets"].as_array().into_iter().flatten() {
        out.push(format!("set {}", set["id"]));
        for t in set["targets"].as_array().into_iter().flatten() {
            out.push(format!(
                "  {:<40} {}  priority {}  weight {}  load {}{}",
                t["uri"].as_str().unwrap_or("?"),
                t["flags"].as_str().unwrap_or("?"),
                t["priority"],
                t["weight"],
                t["load"],
                match t["attrs"].as_str() {
                    Some(a) if !a.is_empty() => format!("  attrs {a}"),
                    _ => String::new(),
                }
            ));
        }
    }
    out.join("\n")
}

/// `dst_blocklist.view`: an address and its time left per line.
pub fn blocklist_text(v: &Value) -> String {
    let entries = v["entries"].as_array().map_or(&[][..], Vec::as_slice);
    if entries.is_empty() {
        return "no destination is blocklisted".to_string();
    }
    entries
        .iter()
        .map(|e| {
            format!(
                "{:<40} {} s left",
                e["address"].as_str().unwrap_or("?"),
                e["expires_in_ms"].as_u64().unwrap_or(0) / 1000
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_written_sorted_and_as_prometheus() {
        let v = json!({"tm": {"tm_transactions": 5}, "core": {"received": 9}, "shm": {"tm_transactions_live": 2}});
        assert_eq!(
            stats_text(&v),
            "core.received = 9\nshm.tm_transactions_live = 2\ntm.tm_transactions = 5"
        );
        let p = stats_prometheus(&v);
        assert!(p.contains("rser_received_total 9\n"));
        assert!(p.contains("# TYPE rser_tm_transactions_live gauge\n"));
    }

    #[test]
    fn uptime_and_ps_read_well() {
        assert_eq!(
            uptime_text(&json!({"uptime": 93_784, "up_since": 1})),
            "up 1d 2h 3m 4s (since 1 Unix time)"
        );
        let ps = ps_text(
            &json!([{"pid": 10, "role": "master"}, {"pid": 11, "role": "worker", "slot": 0}]),
        );
        assert!(ps.contains("      10  master"));
        assert!(ps.contains("      11  worker    0"));
    }

    #[test]
    fn dispatcher_and_blocklist_read_well() {
        let v = json!({"sets": [{"id": 1, "targets": [{"uri": "sip:a", "flags": "AP", "priority": 0, "weight": 50, "load": 2, "attrs": "weight=50"}]}]});
        let t = dispatcher_text(&v);
        assert!(t.starts_with("set 1\n  sip:a "), "{t}");
        assert!(
            t.contains("AP  priority 0  weight 50  load 2  attrs weight=50"),
            "{t}"
        );
        assert_eq!(
            blocklist_text(&json!({"entries": []})),
            "no destination is blocklisted"
        );
        let b = blocklist_text(
            &json!({"entries": [{"address": "127.0.0.1:5060", "expires_in_ms": 59_500}]}),
        );
        assert!(b.ends_with(" 59 s left"), "{b}");
    }

    #[test]
    fn a_missing_socket_is_a_clear_error() {
        assert!(socket_path(None, None).unwrap_err().contains("-s"));
        let e = call("/nonexistent/ctl.sock", "core.version", json!([])).unwrap_err();
        assert!(e.starts_with("/nonexistent/ctl.sock"), "{e}");
    }
}
