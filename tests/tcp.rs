//! SIP over TCP against the real binary (RFC 3261 §18): replies on the
//! request's connection, keep-alives, framing errors and slow senders
//! closing only their own connection, a phone registered over TCP reached
//! through its connection (and 480 once it is gone), and a worker killed
//! while it owns connections.

mod common;

use std::time::{Duration, Instant};

use common::stream::{Stream, hold_idle, raise_open_files};
use common::{Peer, Server, expect, header, status};

/// The next connection to `l`, waiting at most `within`.
fn accept_within(l: &std::net::TcpListener, within: Duration) -> Option<Stream> {
    l.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok((s, _)) = l.accept() {
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            return Some(Stream::over(s));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

const OPTIONS_OK: &str = r#"
loadmodule "sl.so"
route {
    if (method == "OPTIONS") {
        if (proto == tcp) { sl_send_reply("200", "OK over $pr"); exit; };
        sl_send_reply("200", "OK"); exit;
    };
    sl_send_reply("404", "Not Here");
}
"#;

#[test]
fn replies_go_back_on_the_connection_and_pings_are_answered() {
    let server = Server::start_tcp(OPTIONS_OK, 2, &[]);
    let tcp = server.tcp.expect("a TCP address");
    let mut ua = Stream::connect(tcp);
    // A keep-alive first (RFC 5626 §3.5.1), then two requests in one
    // write: each answered, on this connection.
    let mut burst = b"\r\n\r\n".to_vec();
    burst.extend(
        ua.request("OPTIONS", "sip:rser@127.0.0.1", "o1", "")
            .bytes(),
    );
    burst.extend(
        ua.request("OPTIONS", "sip:rser@127.0.0.1", "o2", "")
            .bytes(),
    );
    ua.send(&burst);
    let first = ua.expect("SIP/2.0 200").expect("a 200 on the connection");
    assert!(first.starts_with("SIP/2.0 200 OK over tcp"), "{first}");
    assert!(
        header(&first, "Via").unwrap().starts_with("SIP/2.0/TCP"),
        "{first}"
    );
    assert_eq!(header(&first, "Call-ID"), Some("o1"));
    let second = ua.expect("SIP/2.0 200").expect("the second 200");
    assert_eq!(header(&second, "Call-ID"), Some("o2"));
    // Over UDP the same server answers as before.
    let udp = Peer::new();
    udp.send(
        server.addr,
        &udp.request("OPTIONS", "sip:rser@127.0.0.1", "u1", ""),
    );
    let (r, _) = expect(&udp, "SIP/2.0 200", Duration::from_secs(3)).expect("a 200 over UDP");
    assert!(r.starts_with("SIP/2.0 200 OK\r\n"), "{r}");
}

#[test]
fn bad_framing_and_slow_senders_close_only_their_connection() {
    let server = Server::start_tcp(OPTIONS_OK, 1, &[]);
    let tcp = server.tcp.expect("a TCP address");
    let mut good = Stream::connect(tcp);
    // No Content-Length (mandatory on a stream, §18.3): 400, then closed.
    let mut bad = Stream::connect(tcp);
    let no_cl = bad.request("OPTIONS", "sip:rser@127.0.0.1", "bad", "");
    let no_cl = no_cl.replace("Content-Length: 0\r\n", "");
    bad.send(no_cl.as_bytes());
    let r = bad.expect("SIP/2.0 400").expect("a 400 before the close");
    assert!(r.contains("Missing Content-Length"), "{r}");
    assert!(bad.closed(), "the connection is closed");
    // Half a message and silence: closed after 10 s (a slow sender).
    let mut slow = Stream::connect(tcp);
    slow.send(b"OPTIONS sip:rser@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut closed = false;
    while Instant::now() < deadline && !closed {
        closed = slow.closed();
    }
    assert!(closed, "a slow sender is cut off");
    // The other connection still works.
    let m = good.request("OPTIONS", "sip:rser@127.0.0.1", "good", "");
    good.send(m.as_bytes());
    assert!(good.expect("SIP/2.0 200").is_some());
}

const REGISTRAR: &str = r#"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
route {
    if (method == "REGISTER") { save("location"); exit; };
    if (!lookup("location")) { sl_reply_error(); exit; };
    if (!t_relay()) { sl_reply_error(); };
}
"#;

/// A phone registered over TCP is reached through its connection, even
/// though its Contact names another port it does not listen on (as behind
/// a NAT); once the connection is gone, a call gets 480 at once.
#[test]
fn a_phone_registered_over_tcp_is_reached_through_its_connection() {
    let server = Server::start_tcp(REGISTRAR, 2, &[]);
    let tcp = server.tcp.expect("a TCP address");
    let mut phone = Stream::connect(tcp);
    let reg = phone.request(
        "REGISTER",
        "sip:127.0.0.1",
        "reg1",
        "Contact: <sip:bob@127.0.0.1:9;transport=tcp>\r\nExpires: 600\r\n",
    );
    let reg = reg.replace("To: <sip:127.0.0.1>", "To: <sip:bob@127.0.0.1>");
    phone.send(reg.as_bytes());
    let ok = phone.expect("SIP/2.0 ").expect("a reply to the REGISTER");
    assert_eq!(status(&ok), Some(200), "{ok}");
    let caller = Peer::new();
    let invite = caller.request("INVITE", "sip:bob@127.0.0.1", "call1", "");
    caller.send(server.addr, &invite);
    let got = phone
        .expect("INVITE ")
        .expect("the INVITE on the phone's connection");
    assert!(
        got.starts_with("INVITE sip:bob@127.0.0.1:9;transport=tcp "),
        "{got}"
    );
    assert!(
        header(&got, "Via").unwrap().starts_with("SIP/2.0/TCP"),
        "{got}"
    );
    // The phone answers on its connection; the caller gets it over UDP.
    phone.send(common::answer(&got, 486, "Busy Here", "ph").as_bytes());
    let (busy, _) = expect(&caller, "SIP/2.0 486", Duration::from_secs(3)).expect("486");
    assert_eq!(header(&busy, "Call-ID"), Some("call1"));
    // The phone goes away: no connection is opened to its contact.
    drop(phone);
    std::thread::sleep(Duration::from_millis(300));
    let again = caller.request("INVITE", "sip:bob@127.0.0.1", "call2", "");
    caller.send(server.addr, &again);
    let (r, _) = expect(&caller, "SIP/2.0 4", Duration::from_secs(3)).expect("a refusal");
    assert_eq!(status(&r), Some(480), "{r}");
}

/// A worker SIGKILLed with connections open: its peers see the close and
/// reconnect at once; every other connection keeps working.
#[test]
fn a_killed_worker_takes_only_its_own_connections() {
    let server = Server::start_tcp(OPTIONS_OK, 2, &[]);
    let tcp = server.tcp.expect("a TCP address");
    // Enough connections that both workers own some.
    let mut uas: Vec<Stream> = (0..16).map(|_| Stream::connect(tcp)).collect();
    for (i, ua) in uas.iter_mut().enumerate() {
        let m = ua.request("OPTIONS", "sip:rser@127.0.0.1", &format!("k{i}"), "");
        ua.send(m.as_bytes());
        assert!(ua.expect("SIP/2.0 200").is_some(), "connection {i} works");
    }
    let victim = server.workers()[0];
    unsafe { libc::kill(victim, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(500));
    let mut lost = 0;
    for (i, ua) in uas.iter_mut().enumerate() {
        let m = ua.request("OPTIONS", "sip:rser@127.0.0.1", &format!("a{i}"), "");
        let _ = ua.try_send(m.as_bytes());
        if ua.expect("SIP/2.0 200").is_none() {
            lost += 1;
            // Its peer reconnects, to whichever worker.
            let mut fresh = Stream::connect(tcp);
            let m = fresh.request("OPTIONS", "sip:rser@127.0.0.1", &format!("r{i}"), "");
            fresh.send(m.as_bytes());
            assert!(
                fresh.expect("SIP/2.0 200").is_some(),
                "a new connection works"
            );
        }
    }
    assert!(lost > 0 && lost < uas.len(), "{lost} of {} lost", uas.len());
    let _ = uas[0].read_for(Duration::from_millis(10));
}

const BRIDGE: &str = r#"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
route {
    if (loose_route()) { t_relay(); exit; };
    if (method == "INVITE") { record_route(); };
    rewritehostport("127.0.0.1:{callee}");
    if (!t_relay_to_tcp()) { sl_reply_error(); };
}
"#;

/// The Route set a caller uses: its dialog's Record-Route entries,
/// reversed (RFC 3261 §12.1.2); the callee uses them in order.
fn route_lines(rr: &[&str], reversed: bool) -> String {
    let mut v: Vec<&str> = rr.to_vec();
    if reversed {
        v.reverse();
    }
    v.iter().map(|r| format!("Route: {r}\r\n")).collect()
}

/// A caller over UDP, a callee over TCP: rser records two routes (one per
/// transport), and in-dialog requests both ways pass it, each side
/// reaching the socket that faces it.
#[test]
fn udp_to_tcp_and_back_with_a_double_record_route() {
    let callee = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let callee_addr = callee.local_addr().unwrap();
    let config = BRIDGE.replace("{callee}", &callee_addr.port().to_string());
    let server = Server::start_tcp(&config, 2, &[]);
    let tcp = server.tcp.expect("a TCP address");
    let caller = Peer::new();
    let contact = format!("Contact: <sip:alice@{}>\r\n", caller.addr);
    let mut kept: Option<Stream> = None;
    for (i, callee_hangs_up) in [(0, true), (1, false)] {
        let call = format!("bridge{i}");
        let invite = caller.request("INVITE", "sip:bob@127.0.0.1", &call, &contact);
        caller.send(server.addr, &invite);
        // The second call reuses the first's connection.
        let mut leg = kept.take().unwrap_or_else(|| {
            accept_within(&callee, Duration::from_secs(3)).expect("rser connects to the callee")
        });
        let got = leg.expect("INVITE ").expect("the INVITE over TCP");
        let rr = common::headers(&got, "Record-Route");
        assert_eq!(
            rr,
            [
                format!("<sip:{tcp};transport=tcp;lr;r2=on>").as_str(),
                format!("<sip:{};lr;r2=on>", server.addr).as_str()
            ],
            "{got}"
        );
        let ok = common::answer(&got, 200, "OK", "callee").replace(
            "Content-Length: 0\r\n",
            &format!("Contact: <sip:bob@{callee_addr};transport=tcp>\r\nContent-Length: 0\r\n"),
        );
        leg.send(ok.as_bytes());
        let (ok, _) = expect(&caller, "SIP/2.0 200", Duration::from_secs(3)).expect("200");
        let rr = common::headers(&ok, "Record-Route");
        assert_eq!(rr.len(), 2, "{ok}");
        let target = format!("sip:bob@{callee_addr};transport=tcp");
        let in_dialog = |method: &str, cseq: u32| {
            format!(
                "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call}-{method}\r\n\
                 {routes}Max-Forwards: 70\r\nTo: <sip:bob@127.0.0.1>;tag=callee\r\n\
                 From: <sip:alice@{me}>;tag=from-{call}\r\nCall-ID: {call}\r\n\
                 CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
                me = caller.addr,
                routes = route_lines(&rr, true)
            )
        };
        caller.send(server.addr, &in_dialog("ACK", 1));
        let ack = leg
            .expect("ACK ")
            .expect("the ACK reaches the callee's connection");
        assert!(
            common::headers(&ack, "Route").is_empty(),
            "both routes removed: {ack}"
        );
        if callee_hangs_up {
            // The callee's BYE over its connection: routed in order.
            let bye = format!(
                "BYE sip:alice@{caller} SIP/2.0\r\nVia: SIP/2.0/TCP {callee_addr};branch=z9hG4bK-bye{i}\r\n\
                 {routes}Max-Forwards: 70\r\nFrom: <sip:bob@127.0.0.1>;tag=callee\r\n\
                 To: <sip:alice@{caller}>;tag=from-{call}\r\nCall-ID: {call}\r\nCSeq: 1 BYE\r\n\
                 Content-Length: 0\r\n\r\n",
                caller = caller.addr,
                routes = route_lines(&rr, false)
            );
            leg.send(bye.as_bytes());
            let (b, _) = expect(&caller, "BYE ", Duration::from_secs(3)).expect("BYE over UDP");
            assert!(common::headers(&b, "Route").is_empty(), "{b}");
            caller.send(server.addr, &common::answer(&b, 200, "OK", "x"));
            assert!(
                leg.expect("SIP/2.0 200").is_some(),
                "the BYE's 200 over TCP"
            );
        } else {
            caller.send(server.addr, &in_dialog("BYE", 2));
            let b = leg.expect("BYE ").expect("the caller's BYE over TCP");
            leg.send(common::answer(&b, 200, "OK", "callee").as_bytes());
            assert!(expect(&caller, "SIP/2.0 200", Duration::from_secs(3)).is_some());
        }
        kept = Some(leg);
    }
}

/// RFC 3261 §18.1.1: a request larger than `udp_mtu` (1300 bytes by
/// default) that would go over UDP goes over TCP, unless its URI asks for
/// UDP; stateless and stateful alike.
#[test]
fn a_large_request_switches_to_tcp() {
    for relay in ["forward();", "t_relay();"] {
        let callee_tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = callee_tcp.local_addr().unwrap().port();
        let callee_udp = Peer::on_port("127.0.0.1", port);
        let config = format!("loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nroute {{ {relay} }}\n");
        let server = Server::start_tcp(&config, 1, &[]);
        let caller = Peer::new();
        let to = format!("sip:bob@127.0.0.1:{port}");
        let small = caller.request("INVITE", &to, "small", "");
        caller.send(server.addr, &small);
        assert!(
            expect(&callee_udp, "INVITE ", Duration::from_secs(3)).is_some(),
            "{relay}: small over UDP"
        );
        let body = "v=0\r\n".repeat(300);
        let large = caller
            .request("INVITE", &to, "large", "Content-Type: application/sdp\r\n")
            .replace(
                "Content-Length: 0\r\n\r\n",
                &format!("Content-Length: {}\r\n\r\n{body}", body.len()),
            );
        caller.send(server.addr, &large);
        let mut leg =
            accept_within(&callee_tcp, Duration::from_secs(3)).expect("rser connects over TCP");
        let got = leg.expect("INVITE ").expect("the large INVITE over TCP");
        assert!(
            header(&got, "Via").unwrap().starts_with("SIP/2.0/TCP"),
            "{relay}: {got}"
        );
        assert_eq!(header(&got, "Call-ID"), Some("large"));
        // Its URI says UDP: UDP it is.
        let to_udp = format!("{to};transport=udp");
        let forced = caller
            .request(
                "INVITE",
                &to_udp,
                "forced",
                "Content-Type: application/sdp\r\n",
            )
            .replace(
                "Content-Length: 0\r\n\r\n",
                &format!("Content-Length: {}\r\n\r\n{body}", body.len()),
            );
        caller.send(server.addr, &forced);
        let (m, _) = expect(&callee_udp, "INVITE ", Duration::from_secs(3)).expect("over UDP");
        assert_eq!(header(&m, "Call-ID"), Some("forced"), "{relay}");
    }
}

/// 10,000 idle connections, each after one exchange, held while requests
/// keep being answered over UDP and over new connections; every idle one
/// still answers at the end.
#[test]
fn ten_thousand_idle_connections_while_requests_flow() {
    const IDLE: usize = 10_000;
    if raise_open_files() < (IDLE as u64) + 1_000 {
        eprintln!("skipped: the open-file limit is below {IDLE} connections");
        return;
    }
    let config = format!(
        "tcp_max_connections={n}\ntcp_accept_iplimit={n}\n{OPTIONS_OK}",
        n = IDLE + 1_000
    );
    let server = Server::start_tcp(&config, 2, &["-m", "64"]);
    let tcp = server.tcp.expect("a TCP address");
    let udp = Peer::new();
    hold_idle(
        IDLE,
        || Stream::connect(tcp),
        &udp,
        server.addr,
        "sip:rser@127.0.0.1",
    );
}

/// tcp_accept_iplimit: one address may hold so many connections; the next
/// is closed at once, counted, and the others keep working.
#[test]
fn connections_from_one_address_are_bounded() {
    let config = format!("tcp_accept_iplimit=4\n{OPTIONS_OK}");
    let server = Server::start_tcp(&config, 1, &[]);
    let tcp = server.tcp.expect("a TCP address");
    let mut four: Vec<Stream> = (0..4).map(|_| Stream::connect(tcp)).collect();
    for (i, ua) in four.iter_mut().enumerate() {
        let m = ua.request("OPTIONS", "sip:rser@127.0.0.1", &format!("lim{i}"), "");
        ua.send(m.as_bytes());
        assert!(ua.expect("SIP/2.0 200").is_some(), "connection {i}");
    }
    let mut fifth = Stream::connect(tcp);
    assert!(fifth.closed(), "the fifth is closed");
    assert!(server.wait_log("refused", Duration::from_secs(3)).is_some());
    let m = four[0].request("OPTIONS", "sip:rser@127.0.0.1", "still", "");
    four[0].send(m.as_bytes());
    assert!(four[0].expect("SIP/2.0 200").is_some());
}

/// TCP over IPv6: a request over a `tcp:[::1]` address is answered on its
/// connection, with the Via the transport and address need.
#[test]
fn tcp_over_ipv6() {
    let server = Server::spawn_with(
        OPTIONS_OK,
        1,
        &[],
        &["-l", "udp:127.0.0.1:0", "-l", "tcp:[::1]:0"],
    );
    let tcp = server.tcp.expect("a TCP address");
    assert!(tcp.is_ipv6(), "{tcp}");
    let mut ua = Stream::connect(tcp);
    let m = ua.request("OPTIONS", "sip:rser@[::1]", "v6", "");
    ua.send(m.as_bytes());
    let r = ua.expect("SIP/2.0 200").expect("a 200 over IPv6");
    assert!(r.starts_with("SIP/2.0 200 OK over tcp"), "{r}");
}
