//! A next hop the kernel cannot send to (no route: ENETUNREACH, in a
//! private network namespace; a closed port: ICMP port unreachable, on
//! loopback) through the real binary: a tm branch ends at once with 477
//! (503 upstream when no branch went out), failure_route runs on it, the
//! blocklist takes the address; a stateless forward() returns false so
//! sl_reply_error() answers 477.

mod common;

use std::time::{Duration, Instant};

use common::{Peer, Server, expect, in_private_netns, rpc, status, temp_dir};
use serde_json::json;

/// Off loopback (TEST-NET-2): unreachable in the namespace.
const NOWHERE: &str = "198.51.100.7:5060";

fn tm_config(globals: &str, route: &str, more: &str) -> String {
    format!(
        "{globals}\nloadmodule \"sl.so\"\nloadmodule \"tm.so\"\n\
         route {{\n{route}\n}}\n{more}\n"
    )
}

/// The final reply to the request with Call-ID `call`, and how long it
/// took to come.
fn final_within(caller: &Peer, call: &str, within: Duration) -> Option<(String, Duration)> {
    let t0 = Instant::now();
    let deadline = t0 + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (m, _) = expect(caller, "SIP/2.0", left)?;
        if m.contains(call) && status(&m).is_some_and(|c| c >= 200) {
            return Some((m, t0.elapsed()));
        }
    }
}

#[test]
fn an_unsendable_branch_ends_at_once_and_the_caller_gets_503() {
    if !in_private_netns("an_unsendable_branch_ends_at_once_and_the_caller_gets_503") {
        return;
    }
    let dir = temp_dir("unreach-tm");
    let sock = dir.join("ctl.sock");
    let route = format!("rewritehostport(\"{NOWHERE}\");\nt_relay();");
    let rser = Server::start(
        &tm_config("", &route, ""),
        2,
        &["-s", sock.to_str().unwrap()],
    );
    let caller = Peer::new();
    caller.send(rser.addr, &caller.invite("unreach-1"));
    // fr_timer is 30 s: anything within 2 s came from the failed send.
    let (r, _) = final_within(&caller, "unreach-1", Duration::from_secs(2)).expect("a final reply");
    assert_eq!(status(&r), Some(503), "{r}");
    let stats = rpc(&sock, "stats.get", json!(["tm"]));
    assert_eq!(stats["result"]["tm"]["tm_send_failed"], 1, "{stats}");
    let line = rser
        .wait_log("send to 198.51.100.7:5060 failed", Duration::from_secs(2))
        .expect("one error line names the destination");
    assert!(line.contains("ERROR"), "{line}");
}

#[test]
fn failure_route_runs_on_a_send_failure_and_the_address_is_blocklisted() {
    if !in_private_netns("failure_route_runs_on_a_send_failure_and_the_address_is_blocklisted") {
        return;
    }
    let dir = temp_dir("unreach-fr");
    let sock = dir.join("ctl.sock");
    let callee = Peer::new();
    let route = format!(
        "rewritehostport(\"{NOWHERE}\");\nt_on_failure(\"1\");\nif (!t_relay()) {{ sl_reply_error(); }}"
    );
    let failure = format!(
        "failure_route[1] {{ if (status == \"477\") {{ rewritehostport(\"{}\"); t_relay(); }} }}",
        callee.addr
    );
    let rser = Server::start(
        &tm_config(
            "use_dst_blocklist=yes\ndst_blocklist_expire=60",
            &route,
            &failure,
        ),
        2,
        &["-s", sock.to_str().unwrap()],
    );
    let caller = Peer::new();
    caller.send(rser.addr, &caller.invite("unreach-2"));
    let (got, _) = expect(&callee, "INVITE", Duration::from_secs(2))
        .expect("failure_route relays to the callee after the 477");
    assert!(got.contains("unreach-2"));
    let v = rpc(&sock, "dst_blocklist.view", json!([]));
    let entries = v["result"]["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 1, "{v}");
    assert_eq!(entries[0]["address"], NOWHERE);

    // The next call skips the blocklisted address without sending; the
    // failure route is not armed for a relay that started nothing.
    caller.send(rser.addr, &caller.invite("unreach-3"));
    let stats = rpc(&sock, "stats.get", json!(["tm"]));
    let (r, _) = final_within(&caller, "unreach-3", Duration::from_secs(2)).expect("answered");
    assert_eq!(status(&r), Some(503), "{r}");
    assert!(r.contains("Blocklisted"), "{r}");
    assert_eq!(stats["result"]["tm"]["tm_send_failed"], 1, "{stats}");
}

#[test]
fn a_stateless_forward_to_an_unreachable_hop_returns_false() {
    if !in_private_netns("a_stateless_forward_to_an_unreachable_hop_returns_false") {
        return;
    }
    let (host, port) = NOWHERE.split_once(':').unwrap();
    let config = format!(
        "loadmodule \"sl.so\"\n\
         route {{ if (!forward({host}, {port})) {{ sl_reply_error(); }} }}\n"
    );
    let rser = Server::start(&config, 2, &[]);
    let caller = Peer::new();
    let req = caller.request("OPTIONS", "sip:bob@example.com", "unreach-sl", "");
    caller.send(rser.addr, &req);
    let (r, _) = final_within(&caller, "unreach-sl", Duration::from_secs(2))
        .expect("sl_reply_error answers");
    assert_eq!(status(&r), Some(477), "{r}");
}

/// A port nobody listens on, on loopback: the kernel answers our send
/// with ICMP port unreachable, which the server reads from the socket's
/// error queue (IP_RECVERR). No namespace needed.
#[test]
fn a_closed_port_ends_the_branch_at_once() {
    let closed = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let dir = temp_dir("closed-port");
    let sock = dir.join("ctl.sock");
    let route = format!("rewritehostport(\"{closed}\");\nt_relay();");
    let rser = Server::start(
        &tm_config("", &route, ""),
        2,
        &["-s", sock.to_str().unwrap()],
    );
    let caller = Peer::new();
    caller.send(rser.addr, &caller.invite("closed-1"));
    // fr_timer is 30 s: a final reply within 3 s came from the ICMP error.
    let (r, _) = final_within(&caller, "closed-1", Duration::from_secs(3)).expect("a final reply");
    assert_eq!(status(&r), Some(503), "{r}");
    let stats = rpc(&sock, "stats.get", json!([]))["result"].clone();
    assert_eq!(stats["tm"]["tm_send_failed"], 1, "{stats}");
    // Ended before Timer A's first retransmission: sent once.
    assert_eq!(stats["core"]["forwarded_requests"], 1, "{stats}");
}
