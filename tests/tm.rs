//! tm through the real binary over UDP: a caller and callees on ephemeral
//! loopback ports, rser relaying statefully between them.

mod common;

use std::time::{Duration, Instant};

use common::{Peer, Server, answer, expect, header, headers, status};

/// A stateful proxy relaying to `callees` (forking when more than one),
/// with record-routing, loose routing and a failure route that tries
/// `fallback` after a 486.
fn config(callees: &[&Peer], fallback: Option<&Peer>, extra: &str) -> String {
    let first = callees[0].addr;
    let more: String = callees[1..]
        .iter()
        .map(|p| format!("append_branch(\"sip:bob@{}\");\n", p.addr))
        .collect();
    let fallback = fallback.map_or(String::new(), |p| {
        format!(
            "if (status == \"486\") {{ rewritehostport(\"{}\"); t_relay(); }}",
            p.addr
        )
    });
    format!(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"rr.so\"\n\
         modparam(\"tm\", \"fr_timer\", 2000)\n{extra}\n\
         route {{\n\
           if (loose_route()) {{ t_relay(); exit; }}\n\
           if (method == \"INVITE\") {{ record_route(); }}\n\
           rewritehostport(\"{first}\");\n{more}\
           t_on_failure(\"1\");\n\
           t_relay();\n\
         }}\n\
         failure_route[1] {{ {fallback} }}\n"
    )
}

const SEC: Duration = Duration::from_secs(3);

#[test]
fn invite_is_relayed_and_answered_and_retransmissions_absorbed() {
    let (caller, callee) = (Peer::new(), Peer::new());
    let rser = Server::start(&config(&[&callee], None, ""), 2, &[]);
    let inv = caller.invite("tm-basic");
    caller.send(rser.addr, &inv);
    let (trying, _) = expect(&caller, "SIP/2.0 100", SEC).expect("100 Trying");
    assert_eq!(header(&trying, "Call-ID"), Some("tm-basic"));
    let (got, from) = expect(&callee, "INVITE", SEC).expect("INVITE relayed");
    assert_eq!(from, rser.addr);
    assert_eq!(headers(&got, "Via").len(), 2);
    assert!(header(&got, "Via").unwrap().contains(";branch=z9hG4bKt"));
    assert!(
        header(&got, "Record-Route")
            .unwrap()
            .contains(&rser.addr.to_string())
    );
    // The caller retransmits: absorbed, the 100 sent again.
    caller.send(rser.addr, &inv);
    expect(&caller, "SIP/2.0 100", SEC).expect("100 again");
    assert!(
        expect(&callee, "INVITE", Duration::from_millis(300)).is_none(),
        "the callee sees the INVITE once"
    );
    callee.send(rser.addr, &answer(&got, 180, "Ringing", "b1"));
    let (ring, _) = expect(&caller, "SIP/2.0 180", SEC).expect("180 relayed");
    assert_eq!(headers(&ring, "Via").len(), 1);
    callee.send(rser.addr, &answer(&got, 200, "OK", "b1"));
    let (ok, _) = expect(&caller, "SIP/2.0 200", SEC).expect("200 relayed");
    assert_eq!(status(&ok), Some(200));
    // The 2xx retransmitted by the callee still goes up (§16.7 step 5).
    callee.send(rser.addr, &answer(&got, 200, "OK", "b1"));
    expect(&caller, "SIP/2.0 200", SEC).expect("2xx retransmission relayed");
}

#[test]
fn negative_reply_is_acked_hop_by_hop_and_the_callers_ack_absorbed() {
    let (caller, callee) = (Peer::new(), Peer::new());
    let rser = Server::start(&config(&[&callee], None, ""), 2, &[]);
    let inv = caller.invite("tm-486");
    caller.send(rser.addr, &inv);
    let (got, _) = expect(&callee, "INVITE", SEC).unwrap();
    callee.send(rser.addr, &answer(&got, 486, "Busy Here", "b2"));
    let (ack, _) = expect(&callee, "ACK", SEC).expect("ACK from the proxy");
    assert_eq!(
        header(&ack, "Via"),
        header(&got, "Via"),
        "same branch as the INVITE"
    );
    assert!(header(&ack, "To").unwrap().contains("tag=b2"));
    let (busy, _) = expect(&caller, "SIP/2.0 486", SEC).expect("486 relayed");
    let ack = caller.request("ACK", "sip:bob@example.com", "tm-486", "");
    let ack = ack.replace("-ACK;", "-INVITE;").replace(
        "To: <sip:bob@example.com>",
        &format!("To: {}", header(&busy, "To").unwrap()),
    );
    caller.send(rser.addr, &ack);
    assert!(
        expect(&callee, "ACK", Duration::from_millis(700)).is_none(),
        "the caller's ACK ends at the proxy"
    );
    // Without that ACK the proxy would have retransmitted the 486 at T1.
    assert!(expect(&caller, "SIP/2.0 486", Duration::from_millis(800)).is_none());
}

/// When (ms from now) the first `n` INVITEs reach `callee`, each awaited
/// at most a second.
fn invite_times(callee: &Peer, n: usize) -> Vec<u64> {
    let t0 = Instant::now();
    let mut seen = Vec::new();
    while seen.len() < n && expect(callee, "INVITE", SEC).is_some() {
        seen.push(t0.elapsed().as_millis() as u64);
    }
    seen
}

#[test]
fn a_silent_callee_sees_retransmissions_and_the_caller_gets_408() {
    let (caller, callee) = (Peer::new(), Peer::new());
    let rser = Server::start(&config(&[&callee], None, ""), 2, &[]);
    caller.send(rser.addr, &caller.invite("tm-408"));
    let seen = invite_times(&callee, 3);
    assert_eq!(seen.len(), 3, "original and two retransmissions: {seen:?}");
    // Not early (less a receive jitter; the exact times, T1 and 3*T1, are
    // asserted on the simulated clock: server/harness_tests.rs).
    assert!(
        seen[1] - seen[0] >= 450 && seen[2] - seen[0] >= 1400,
        "{seen:?}"
    );
    let (timeout, _) = expect(&caller, "SIP/2.0 408", SEC).expect("408 after fr_timer");
    assert_eq!(header(&timeout, "Call-ID"), Some("tm-408"));
}

/// Workers that are busy take the timers that fall due (the wheel's
/// shards after their batches; the timer process leaves them a grace),
/// and the retransmissions still go; the counter says workers took them.
#[test]
fn busy_workers_take_the_timers_that_fall_due() {
    let (caller, callee, busy) = (Peer::new(), Peer::new(), Peer::new());
    let dir = common::temp_dir("tm-workers-timers");
    let sock = dir.join("ctl.sock");
    let rser = Server::start(
        &config(&[&callee], None, ""),
        2,
        &["-s", sock.to_str().unwrap()],
    );
    caller.send(rser.addr, &caller.invite("tm-busy"));
    // Stray replies (not ours: dropped) every 5 ms keep the workers awake
    // while the INVITE's Timer A runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pinger = {
        let stop = stop.clone();
        let to = rser.addr;
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 1000 {
                busy.send(
                    to,
                    &format!(
                        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKstray{n}\r\n\
                         From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: stray\r\n\
                         CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
                    ),
                );
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let seen = invite_times(&callee, 3);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    pinger.join().unwrap();
    assert_eq!(seen.len(), 3, "original and two retransmissions: {seen:?}");
    // Not early (the exact times are asserted on the simulated clock).
    assert!(
        seen[1] - seen[0] >= 450 && seen[2] - seen[0] >= 1400,
        "{seen:?}"
    );
    let stats = common::rpc(&sock, "stats.get", serde_json::json!(["tm"]))["result"]["tm"].clone();
    assert!(
        stats["tm_timers_by_workers"].as_u64().unwrap_or(0) >= 1,
        "{stats}"
    );
}

#[test]
fn forking_one_answers_the_other_is_cancelled() {
    let (caller, a, b) = (Peer::new(), Peer::new(), Peer::new());
    let rser = Server::start(&config(&[&a, &b], None, ""), 2, &[]);
    caller.send(rser.addr, &caller.invite("tm-fork"));
    let (inv_a, _) = expect(&a, "INVITE", SEC).expect("branch a");
    let (inv_b, _) = expect(&b, "INVITE", SEC).expect("branch b");
    assert_ne!(header(&inv_a, "Via"), header(&inv_b, "Via"));
    b.send(rser.addr, &answer(&inv_b, 180, "Ringing", "bb"));
    expect(&caller, "SIP/2.0 180", SEC).expect("180 from b");
    a.send(rser.addr, &answer(&inv_a, 200, "OK", "aa"));
    expect(&caller, "SIP/2.0 200", SEC).expect("200 from a");
    let (cancel, _) = expect(&b, "CANCEL", SEC).expect("b is cancelled");
    assert_eq!(header(&cancel, "Via"), header(&inv_b, "Via"));
    b.send(rser.addr, &answer(&cancel, 200, "OK", "bb"));
    b.send(rser.addr, &answer(&inv_b, 487, "Request Terminated", "bb"));
    expect(&b, "ACK", SEC).expect("the 487 is ACKed");
    assert!(expect(&caller, "SIP/2.0 487", Duration::from_millis(500)).is_none());
}

#[test]
fn failure_route_reroutes_a_486() {
    let (caller, busy, other) = (Peer::new(), Peer::new(), Peer::new());
    let rser = Server::start(&config(&[&busy], Some(&other), ""), 2, &[]);
    caller.send(rser.addr, &caller.invite("tm-failover"));
    let (got, _) = expect(&busy, "INVITE", SEC).unwrap();
    busy.send(rser.addr, &answer(&got, 486, "Busy Here", "x"));
    let (second, _) = expect(&other, "INVITE", SEC).expect("rerouted by failure_route");
    assert!(second.starts_with(&format!("INVITE sip:bob@{} ", other.addr)));
    other.send(rser.addr, &answer(&second, 200, "OK", "y"));
    let (ok, _) = expect(&caller, "SIP/2.0 200", SEC).expect("200 from the fallback");
    assert!(header(&ok, "To").unwrap().contains("tag=y"));
    assert!(expect(&caller, "SIP/2.0 486", Duration::from_millis(300)).is_none());
}

#[test]
fn an_in_dialog_bye_follows_the_record_route() {
    let (caller, callee) = (Peer::new(), Peer::new());
    let rser = Server::start(&config(&[&callee], None, ""), 2, &[]);
    caller.send(rser.addr, &caller.invite("tm-dialog"));
    let (got, _) = expect(&callee, "INVITE", SEC).unwrap();
    let rr = header(&got, "Record-Route").unwrap().to_string();
    callee.send(rser.addr, &answer(&got, 200, "OK", "d1"));
    expect(&caller, "SIP/2.0 200", SEC).unwrap();
    // The caller sends its BYE to the callee's contact, through our route.
    let bye = caller
        .request(
            "BYE",
            &format!("sip:bob@{}", callee.addr),
            "tm-dialog",
            &format!("Route: {rr}\r\n"),
        )
        .replace("To: <", "To: <sip:bob@example.com>;tag=d1\r\nX-Old-To: <");
    caller.send(rser.addr, &bye);
    let (b, from) = expect(&callee, "BYE", SEC).expect("BYE relayed by loose_route");
    assert_eq!(from, rser.addr);
    assert!(header(&b, "Route").is_none(), "our Route entry removed");
    callee.send(rser.addr, &answer(&b, 200, "OK", "d1"));
    expect(&caller, "SIP/2.0 200", SEC).expect("200 to the BYE");
}

#[test]
fn t_newtran_and_t_reply_answer_a_retransmission_with_the_stored_reply() {
    let caller = Peer::new();
    let cfg = "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"exec.so\"\n\
        route {\n\
          if (!t_newtran()) { sl_reply_error(); exit; }\n\
          t_reply(\"404\", \"Not Here $rU\");\n\
        }\n";
    let rser = Server::start(cfg, 2, &[]);
    let req = caller.request("OPTIONS", "sip:carol@example.com", "tm-uas", "");
    caller.send(rser.addr, &req);
    let (first, _) = expect(&caller, "SIP/2.0 404", SEC).expect("t_reply");
    assert!(first.starts_with("SIP/2.0 404 Not Here carol\r\n"));
    caller.send(rser.addr, &req);
    let (again, _) = expect(&caller, "SIP/2.0 404", SEC).expect("the stored reply");
    assert_eq!(first, again, "byte for byte the same reply");
}

#[test]
fn a_full_transaction_table_answers_503() {
    let (caller, callee) = (Peer::new(), Peer::new());
    let rser = Server::start(&config(&[&callee], None, ""), 1, &["-m", "1"]);
    let mut got_503 = false;
    for i in 0..2000 {
        let req = caller.request("MESSAGE", "sip:bob@example.com", &format!("full-{i}"), "");
        caller.send(rser.addr, &req);
        if i % 50 == 49 {
            while let Some((m, _)) = caller.recv_within(Duration::from_millis(50)) {
                if m.starts_with("SIP/2.0 503") {
                    got_503 = true;
                }
            }
            if got_503 {
                break;
            }
        }
    }
    assert!(got_503, "a 503 once the table is full");
    // The callee still gets requests the table has room for later: the
    // server is alive.
    let req = caller.request("OPTIONS", "sip:bob@example.com", "after-full", "");
    caller.send(rser.addr, &req);
    let deadline = Instant::now() + SEC;
    let mut answered = false;
    while Instant::now() < deadline && !answered {
        if let Some((m, _)) = caller.recv_within(Duration::from_millis(200)) {
            answered = m.contains("after-full");
        }
    }
    assert!(answered, "still answering");
}
