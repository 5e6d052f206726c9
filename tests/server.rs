//! The real binary, pre-forked, over UDP on loopback: stateless forwarding,
//! reply routing, sl replies, the ACK filter, bad input, a worker killed
//! and replaced, and a clean shutdown.

mod common;

use std::time::{Duration, Instant};

use common::{Peer, Server, header, headers, status, to_tag};

fn proxy_config(uas: &Peer) -> String {
    format!(
        r#"
loadmodule "sl.so"
loadmodule "maxfwd.so"
route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        break;
    }};
    if (method == "INVITE" && uri =~ "^sip:reject@") {{
        sl_send_reply("404", "Not Here");
        break;
    }};
    if (uri =~ "^sip:1[0-9]+@") {{ strip(1); }};
    forward(127.0.0.1, {port});
}}
"#,
        port = uas.addr.port()
    )
}

#[test]
fn requests_and_replies_are_forwarded_statelessly() {
    for workers in [2, 4] {
        let uac = Peer::new();
        let uas = Peer::new();
        let server = Server::start(&proxy_config(&uas), workers, &[]);
        let invite = uac.request("INVITE", "sip:15551234@example.com", "fwd-1", "");
        uac.send(server.addr, &invite);
        let (got, from) = uas.recv().expect("the UAS gets the INVITE");
        assert_eq!(from, server.addr);
        // The Request-URI the script rewrote.
        assert!(
            got.starts_with("INVITE sip:5551234@example.com SIP/2.0\r\n"),
            "{got}"
        );
        let vias = headers(&got, "Via");
        assert_eq!(vias.len(), 2, "{got}");
        // Our Via on top, with a stateless RFC 3261 branch.
        assert!(
            vias[0].starts_with(&format!("SIP/2.0/UDP {};branch=z9hG4bKsl", server.addr)),
            "{got}"
        );
        // The sender's Via gets rport's value (RFC 3581); received only
        // when the address differs from sent-by.
        assert!(
            vias[1].contains(&format!("rport={}", uac.addr.port())),
            "{got}"
        );
        assert_eq!(header(&got, "Max-Forwards"), Some("69"));

        // A retransmission gets the same branch (RFC 3261 §16.11).
        uac.send(server.addr, &invite);
        let (again, _) = uas.recv().expect("the retransmission");
        assert_eq!(headers(&again, "Via")[0], vias[0]);

        // The UAS answers to the top Via: the reply comes back without it.
        let reply = format!(
            "SIP/2.0 200 OK\r\nVia: {}\r\nVia: {}\r\nTo: <sip:5551234@example.com>;tag=uas\r\n\
             From: {}\r\nCall-ID: fwd-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
            vias[0],
            vias[1],
            header(&got, "From").unwrap()
        );
        uas.send(server.addr, &reply);
        let (back, _) = uac.recv().expect("the UAC gets the 200");
        assert_eq!(status(&back), Some(200));
        assert_eq!(headers(&back, "Via"), [vias[1]]);

        // A reply whose top Via is not ours is dropped.
        let stray = reply.replacen(vias[0], "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx", 1);
        uas.send(server.addr, &stray);
        assert!(uac.recv_within(Duration::from_millis(300)).is_none());
    }
}

#[test]
fn max_forwards_exhausted_gets_483() {
    let uac = Peer::new();
    let uas = Peer::new();
    let server = Server::start(&proxy_config(&uas), 2, &[]);
    let msg = uac
        .request("OPTIONS", "sip:bob@example.com", "mf-0", "")
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    uac.send(server.addr, &msg);
    let (r, _) = uac.recv().expect("a reply");
    assert_eq!(status(&r), Some(483));
    assert!(uas.recv_within(Duration::from_millis(200)).is_none());
    // Without Max-Forwards, the module's value is inserted.
    let msg = uac
        .request("OPTIONS", "sip:bob@example.com", "mf-none", "")
        .replace("Max-Forwards: 70\r\n", "");
    uac.send(server.addr, &msg);
    let (got, _) = uas.recv().expect("forwarded");
    assert_eq!(header(&got, "Max-Forwards"), Some("10"));
}

#[test]
fn acks_to_stateless_replies_are_absorbed() {
    let uac = Peer::new();
    let uas = Peer::new();
    let server = Server::start(&proxy_config(&uas), 2, &[]);
    let invite = uac.request("INVITE", "sip:reject@example.com", "ack-1", "");
    uac.send(server.addr, &invite);
    let (r, _) = uac.recv().expect("404");
    assert_eq!(status(&r), Some(404));
    let tag = to_tag(&r).expect("a to-tag");
    let ack = uac
        .request("ACK", "sip:reject@example.com", "ack-1", "")
        .replace(
            "To: <sip:reject@example.com>",
            &format!("To: <sip:reject@example.com>;tag={tag}"),
        )
        .replace("z9hG4bK-ack-1-ACK", "z9hG4bK-ack-1-INVITE");
    uac.send(server.addr, &ack);
    assert!(
        uas.recv_within(Duration::from_millis(300)).is_none(),
        "our ACK is absorbed"
    );
    // An ACK with a foreign to-tag runs the script (and is forwarded).
    let foreign = ack.replace(&tag, "someone-else");
    uac.send(server.addr, &foreign);
    let (got, _) = uas.recv().expect("a foreign ACK is routed");
    assert!(got.starts_with("ACK "));

    // A re-INVITE (to-tag already there) cannot be signed; its ACK is
    // absorbed all the same.
    let reinvite = uac
        .request("INVITE", "sip:reject@example.com", "ack-2", "")
        .replace(
            "To: <sip:reject@example.com>",
            "To: <sip:reject@example.com>;tag=dialog",
        );
    uac.send(server.addr, &reinvite);
    let (r, _) = uac.recv().expect("404");
    assert_eq!(to_tag(&r).as_deref(), Some("dialog"));
    let ack = reinvite
        .replace("INVITE sip:", "ACK sip:")
        .replace("CSeq: 1 INVITE", "CSeq: 1 ACK");
    uac.send(server.addr, &ack);
    assert!(uas.recv_within(Duration::from_millis(300)).is_none());
}

#[test]
fn junk_is_counted_and_a_valid_request_still_answered() {
    let uac = Peer::new();
    let uas = Peer::new();
    let server = Server::start(&proxy_config(&uas), 2, &[]);
    let junk: [&[u8]; 6] = [
        b"",
        b"\r\n\r\n",
        b"hello",
        b"INVITE sip:a@b SIP/2.0\r\nVia: garbage\r\n\r\n",
        &[0xff; 2000],
        b"SIP/2.0 200 OK\r\nContent-Length: 5\r\n\r\n",
    ];
    for j in junk {
        uac.sock.send_to(j, server.addr).unwrap();
    }
    // Enough to reply to, but no CSeq: 400.
    let no_cseq = uac
        .request("OPTIONS", "sip:bob@example.com", "bad-1", "")
        .replace("CSeq: 1 OPTIONS\r\n", "");
    uac.send(server.addr, &no_cseq);
    let (r, _) = uac.recv().expect("400");
    assert_eq!(status(&r), Some(400));
    uac.send(
        server.addr,
        &uac.request("OPTIONS", "sip:bob@example.com", "ok-1", ""),
    );
    assert!(uas.recv().is_some(), "still serving");
}

#[test]
fn a_killed_worker_is_replaced_and_traffic_continues() {
    let uac = Peer::new();
    let uas = Peer::new();
    let server = Server::start(&proxy_config(&uas), 2, &[]);
    let before = server.workers();
    assert_eq!(before.len(), 2, "{before:?}");
    unsafe { libc::kill(before[0], libc::SIGKILL) };
    // Bounded in time, not tight: a loaded machine may be slow to fork.
    let deadline = Instant::now() + Duration::from_secs(10);
    let replaced = loop {
        let now = server.workers();
        if now.len() == 2 && !now.contains(&before[0]) {
            break now;
        }
        assert!(Instant::now() < deadline, "no replacement: {now:?}");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(replaced.contains(&before[1]));
    // Every request is served by the surviving and the new worker.
    for i in 0..20 {
        let call = format!("after-kill-{i}");
        uac.send(
            server.addr,
            &uac.request("OPTIONS", "sip:bob@example.com", &call, ""),
        );
        let (got, _) = uas.recv().expect("forwarded after the kill");
        assert_eq!(header(&got, "Call-ID"), Some(call.as_str()));
    }
}

#[test]
fn sigterm_stops_everything_with_exit_0() {
    let uas = Peer::new();
    let mut server = Server::start(&proxy_config(&uas), 4, &[]);
    let workers = server.workers();
    assert_eq!(workers.len(), 4);
    let status = server
        .terminate(Duration::from_secs(2))
        .expect("exits within 2 s");
    assert!(status.success(), "{status:?}");
    for w in workers {
        assert!(
            !std::path::Path::new(&format!("/proc/{w}")).exists()
                || std::fs::read_to_string(format!("/proc/{w}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "worker {w} still running"
        );
    }
}

#[test]
fn reuse_port_mode_serves_too() {
    let uac = Peer::new();
    let uas = Peer::new();
    let config = format!("reuse_port=yes\n{}", proxy_config(&uas));
    let server = Server::start(&config, 2, &[]);
    for i in 0..10 {
        let call = format!("rp-{i}");
        uac.send(
            server.addr,
            &uac.request("OPTIONS", "sip:bob@example.com", &call, ""),
        );
        let (got, _) = uas.recv().expect("forwarded");
        assert_eq!(header(&got, "Call-ID"), Some(call.as_str()));
    }
}

/// `reuse_port_balance=random`: one peer's requests reach every worker's
/// socket (with the kernel's hash they would all go to one), and are
/// forwarded.
#[test]
fn one_peer_is_spread_over_every_worker() {
    let uac = Peer::new();
    let uas = Peer::new();
    let config = format!(
        "reuse_port=yes\nreuse_port_balance=random\n{}",
        proxy_config(&uas)
    );
    let server = Server::start(&config, 4, &[]);
    for i in 0..200 {
        let call = format!("spread-{i}");
        uac.send(
            server.addr,
            &uac.request("OPTIONS", "sip:bob@example.com", &call, ""),
        );
        let (got, _) = uas.recv().expect("forwarded");
        assert_eq!(header(&got, "Call-ID"), Some(call.as_str()));
    }
    // The master says at its stop what each worker received.
    unsafe { libc::kill(server.pid(), libc::SIGTERM) };
    let line = server
        .wait_log("received per worker:", Duration::from_secs(5))
        .expect("the master's last line");
    let counts: Vec<u64> = line
        .rsplit(' ')
        .next()
        .unwrap()
        .split('/')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 4, "{line}");
    assert_eq!(counts.iter().sum::<u64>(), 200, "{line}");
    assert!(
        counts.iter().all(|&n| n >= 20),
        "every worker had a share: {line}"
    );
}

/// Transactions complete when a transaction's request, its replies and
/// its ACK land on different workers (`reuse_port_balance=random`, 4
/// workers): each INVITE relayed statefully, its 180 and 486 relayed
/// back once, the 486's ACK absorbed by the transaction.
#[test]
fn transactions_complete_across_workers_with_random_balance() {
    let (uac, uas) = (Peer::new(), Peer::new());
    let config = format!(
        "reuse_port=yes\nreuse_port_balance=random\n\
         loadmodule \"sl.so\"\nloadmodule \"tm.so\"\n\
         route {{ t_relay_to_udp(\"{}\", \"{}\"); }}\n",
        uas.addr.ip(),
        uas.addr.port()
    );
    let server = Server::start(&config, 4, &[]);
    // What the UAS gets next, counting the proxy's ACKs on the way.
    let mut acks = 0;
    let next_invite = |acks: &mut usize| loop {
        let (m, from) = uas.recv_within(Duration::from_secs(3)).expect("relayed");
        if m.starts_with("ACK ") {
            *acks += 1;
            continue;
        }
        assert!(m.starts_with("INVITE "), "{m}");
        return (m, from);
    };
    for i in 0..40 {
        let call = format!("xw-{i}");
        uac.send(server.addr, &uac.invite(&call));
        let (inv, from) = next_invite(&mut acks);
        assert_eq!(
            header(&inv, "Call-ID"),
            Some(call.as_str()),
            "no INVITE twice"
        );
        uas.send(from, &common::answer(&inv, 180, "Ringing", "t"));
        uas.send(from, &common::answer(&inv, 486, "Busy Here", "t"));
        let mut got = Vec::new();
        while let Some((r, _)) = common::expect(&uac, "SIP/2.0 ", Duration::from_millis(500)) {
            got.push(status(&r).unwrap_or(0));
            if got.last() == Some(&486) {
                break;
            }
        }
        assert!(got.ends_with(&[486]), "{call}: {got:?}");
        // The ACK for the 486 ends at the proxy's transaction.
        let ack = uac
            .invite(&call)
            .replacen("INVITE sip", "ACK sip", 1)
            .replace("CSeq: 1 INVITE", "CSeq: 1 ACK");
        uac.send(server.addr, &ack);
    }
    // The proxy ACKed each 486 to the UAS (§17.1.1.3), whichever worker
    // the reply reached.
    while let Some((m, _)) = uas.recv_within(Duration::from_millis(300)) {
        assert!(m.starts_with("ACK "), "{m}");
        acks += 1;
    }
    assert_eq!(acks, 40);
}
