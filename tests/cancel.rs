//! CANCEL through tm over UDP with the real binary (RFC 3261 §9, §16.10,
//! §16.7): the callee's 487 goes upstream once and its ACK ends the
//! transaction; a 2xx crossing the CANCEL goes upstream alone; every
//! forked branch is cancelled; a CANCEL matching nothing gets 481.

mod common;

use std::time::Duration;

use common::{Peer, Server, answer, expect, header, status, to_tag};

const SEC: Duration = Duration::from_secs(3);

fn config(callees: &[&Peer]) -> String {
    let more: String = callees[1..]
        .iter()
        .map(|p| format!("append_branch(\"sip:bob@{}\");\n", p.addr))
        .collect();
    format!(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\n\
         modparam(\"tm\", \"fr_timer\", 2000)\n\
         route {{\n\
           rewritehostport(\"{}\");\n{more}\
           t_relay();\n\
         }}\n",
        callees[0].addr
    )
}

/// The CANCEL for `inv` (§9.1: same Request-URI, Via, Call-ID, From, To
/// and CSeq number).
fn cancel_of(inv: &str) -> String {
    inv.replacen("INVITE ", "CANCEL ", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
}

/// The caller's ACK for the non-2xx final `reply` to `inv` (§17.1.1.3:
/// the INVITE's Via, the reply's To).
fn ack_of(inv: &str, reply: &str) -> String {
    let to = header(reply, "To").unwrap();
    let to_line = inv
        .split("\r\n")
        .find(|l| l.starts_with("To:"))
        .unwrap()
        .to_string();
    inv.replacen("INVITE ", "ACK ", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
        .replace(&to_line, &format!("To: {to}"))
}

/// Everything `p` receives within `within`, by first line.
fn drain(p: &Peer, within: Duration) -> Vec<String> {
    let mut got = Vec::new();
    while let Some((m, _)) = p.recv_within(within) {
        got.push(m.lines().next().unwrap_or("").to_string());
    }
    got
}

#[test]
fn ringing_then_cancel_relays_the_callees_487_once() {
    let (caller, callee) = (Peer::new(), Peer::new());
    let rser = Server::start(&config(&[&callee]), 2, &[]);
    let inv = caller.invite("cancel-ring");
    caller.send(rser.addr, &inv);
    let (got, _) = expect(&callee, "INVITE", SEC).expect("INVITE relayed");
    callee.send(rser.addr, &answer(&got, 180, "Ringing", "callee"));
    expect(&caller, "SIP/2.0 180", SEC).expect("180 upstream");

    caller.send(rser.addr, &cancel_of(&inv));
    let (ok, _) = expect(&caller, "SIP/2.0", SEC).expect("the CANCEL answered");
    assert_eq!(status(&ok), Some(200), "first the 200 for the CANCEL: {ok}");
    assert!(header(&ok, "CSeq").unwrap().ends_with("CANCEL"));
    let (cancel, _) = expect(&callee, "CANCEL", SEC).expect("CANCEL downstream");
    assert_eq!(header(&cancel, "Via"), header(&got, "Via"), "§9.1");
    callee.send(rser.addr, &answer(&cancel, 200, "OK", "callee"));
    callee.send(
        rser.addr,
        &answer(&got, 487, "Request Terminated", "callee"),
    );
    expect(&callee, "ACK", SEC).expect("the 487 ACKed hop by hop");
    let (r487, _) = expect(&caller, "SIP/2.0", SEC).expect("a final reply");
    assert_eq!(status(&r487), Some(487), "{r487}");
    assert_eq!(to_tag(&r487).as_deref(), Some("callee"), "the callee's 487");
    caller.send(rser.addr, &ack_of(&inv, &r487));
    // Timer G would resend the 487 at T1 (500 ms) without that ACK.
    let after = drain(&caller, Duration::from_millis(1200));
    assert!(after.is_empty(), "nothing after the ACK: {after:?}");
    assert!(
        drain(&callee, Duration::from_millis(100)).is_empty(),
        "the caller's ACK ends at the proxy"
    );
}

#[test]
fn a_200_crossing_the_cancel_goes_up_and_no_487() {
    let (caller, callee) = (Peer::new(), Peer::new());
    let rser = Server::start(&config(&[&callee]), 2, &[]);
    let inv = caller.invite("cancel-race");
    caller.send(rser.addr, &inv);
    let (got, _) = expect(&callee, "INVITE", SEC).expect("INVITE relayed");
    callee.send(rser.addr, &answer(&got, 180, "Ringing", "callee"));
    expect(&caller, "SIP/2.0 180", SEC).expect("180 upstream");
    caller.send(rser.addr, &cancel_of(&inv));
    let (cancel, _) = expect(&callee, "CANCEL", SEC).expect("CANCEL downstream");
    // The callee answered before the CANCEL reached it: 200 to the INVITE,
    // and (§9.2) the CANCEL no longer matches anything pending.
    callee.send(rser.addr, &answer(&got, 200, "OK", "callee"));
    callee.send(rser.addr, &answer(&cancel, 200, "OK", "callee"));
    let got_up = drain(&caller, Duration::from_millis(1500));
    assert!(
        got_up.iter().any(|l| l.starts_with("SIP/2.0 200 OK")),
        "{got_up:?}"
    );
    assert!(
        !got_up.iter().any(|l| l.starts_with("SIP/2.0 487")),
        "no 487 before or after the 200: {got_up:?}"
    );
}

#[test]
fn cancel_reaches_every_forked_branch() {
    let (caller, a, b) = (Peer::new(), Peer::new(), Peer::new());
    let rser = Server::start(&config(&[&a, &b]), 2, &[]);
    let inv = caller.invite("cancel-fork");
    caller.send(rser.addr, &inv);
    let (inv_a, _) = expect(&a, "INVITE", SEC).expect("branch a");
    let (inv_b, _) = expect(&b, "INVITE", SEC).expect("branch b");
    a.send(rser.addr, &answer(&inv_a, 180, "Ringing", "aa"));
    b.send(rser.addr, &answer(&inv_b, 183, "Session Progress", "bb"));
    expect(&caller, "SIP/2.0 18", SEC).expect("a provisional upstream");
    caller.send(rser.addr, &cancel_of(&inv));
    let (ca, _) = expect(&a, "CANCEL", SEC).expect("a cancelled");
    let (cb, _) = expect(&b, "CANCEL", SEC).expect("b cancelled");
    for (p, c, i, tag) in [(&a, &ca, &inv_a, "aa"), (&b, &cb, &inv_b, "bb")] {
        p.send(rser.addr, &answer(c, 200, "OK", tag));
        p.send(rser.addr, &answer(i, 487, "Request Terminated", tag));
        expect(p, "ACK", SEC).expect("each 487 ACKed");
    }
    let (r487, _) = expect(&caller, "SIP/2.0 487", SEC).expect("487 upstream");
    assert!(
        matches!(to_tag(&r487).as_deref(), Some("aa" | "bb")),
        "{r487}"
    );
    caller.send(rser.addr, &ack_of(&inv, &r487));
    let up = drain(&caller, Duration::from_millis(800));
    assert!(up.is_empty(), "one 487, ACKed: then nothing: {up:?}");
}

#[test]
fn a_cancel_matching_nothing_gets_481() {
    let (caller, callee) = (Peer::new(), Peer::new());
    let rser = Server::start(&config(&[&callee]), 2, &[]);
    let inv = caller.invite("cancel-none");
    caller.send(rser.addr, &cancel_of(&inv));
    let (r, _) = expect(&caller, "SIP/2.0", SEC).expect("an answer");
    assert_eq!(status(&r), Some(481), "{r}");
    assert!(
        expect(&callee, "CANCEL", Duration::from_millis(300)).is_none(),
        "nothing relayed"
    );
}

#[test]
fn a_cancel_before_any_provisional_ends_with_a_local_487() {
    let (caller, callee) = (Peer::new(), Peer::new());
    let rser = Server::start(&config(&[&callee]), 2, &[]);
    let inv = caller.invite("cancel-early");
    caller.send(rser.addr, &inv);
    let (got, _) = expect(&callee, "INVITE", SEC).expect("INVITE relayed");
    caller.send(rser.addr, &cancel_of(&inv));
    // The branch never rang: no CANCEL may go to it yet (§9.1), and the
    // caller's transaction ends with 487 at once.
    let up = drain(&caller, Duration::from_millis(500));
    assert!(up.iter().any(|l| l.starts_with("SIP/2.0 200")), "{up:?}");
    assert!(up.iter().any(|l| l.starts_with("SIP/2.0 487")), "{up:?}");
    // If the callee rings after all, then it is cancelled.
    callee.send(rser.addr, &answer(&got, 180, "Ringing", "late"));
    expect(&callee, "CANCEL", SEC).expect("cancelled once it rang");
}
