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

/// ser.cfg.example on an ephemeral port (its listen line replaced by -l).
fn example_config() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ser.cfg.example")).unwrap()
}

fn register(p: &Peer, user: &str, cseq: u32, extra: &str) -> String {
    format!(
        "REGISTER sip:example.net SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-ex-{user}-{cseq};rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:{user}@example.net>\r\n\
         From: <sip:{user}@example.net>;tag=e{cseq}\r\nCall-ID: ex-{user}\r\n\
         CSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{me}>\r\n\
         {extra}Content-Length: 0\r\n\r\n",
        me = p.addr
    )
}

#[test]
fn the_example_config_registers_looks_up_and_relays() {
    let server = Server::start(&example_config(), 2, &[]);
    let (phone, caller) = (Peer::new(), Peer::new());
    phone.send(server.addr, &register(&phone, "bob", 1, ""));
    let (r, _) = phone.recv().expect("a reply to REGISTER");
    assert_eq!(status(&r), Some(200), "{r}");
    assert!(
        header(&r, "Contact")
            .unwrap()
            .contains(&phone.addr.to_string())
    );
    // A call to bob reaches his phone, record-routed.
    caller.send(
        server.addr,
        &caller.request("INVITE", "sip:bob@example.net", "ex-call", ""),
    );
    let got = loop {
        let (m, _) = phone.recv().expect("the INVITE reaches bob");
        if m.starts_with("INVITE") {
            break m;
        }
    };
    assert!(got.starts_with(&format!("INVITE sip:bob@{} ", phone.addr)));
    assert!(header(&got, "Record-Route").is_some());
    // Nobody registered as carol; OPTIONS to the server itself is answered.
    for (uri, code) in [
        ("sip:carol@example.net".to_string(), 404),
        (format!("sip:{}", server.addr), 200),
        ("sip:example.net".to_string(), 200),
    ] {
        caller.send(
            server.addr,
            &caller.request("OPTIONS", &uri, &format!("ex-{code}"), ""),
        );
        let r = loop {
            let (m, _) = caller.recv().expect("an answer");
            if m.starts_with("SIP/2.0") && !m.starts_with("SIP/2.0 1") {
                break m;
            }
        };
        assert_eq!(status(&r), Some(code), "{uri}");
    }
}

#[test]
fn the_example_config_authenticates_with_its_two_lines_uncommented() {
    let dir = std::env::temp_dir().join(format!("rser-example-auth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("rser.db").display());
    let config: String = example_config()
        .lines()
        .map(|l| match l.trim_start().strip_prefix('#') {
            Some(rest) if l.ends_with("# <- auth") => rest.replace("sqlite://rser.db", &url),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let server = Server::start(&config, 2, &[]);
    let phone = Peer::new();
    phone.send(server.addr, &register(&phone, "bob", 1, ""));
    let (r, _) = phone.recv().expect("a challenge");
    assert_eq!(status(&r), Some(401), "{r}");
    assert!(
        header(&r, "WWW-Authenticate")
            .unwrap()
            .contains("realm=\"example.net\"")
    );
    let _ = std::fs::remove_dir_all(&dir);
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
