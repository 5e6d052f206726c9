//! The control interface through the real binary: JSON-RPC 2.0 on the
//! Unix socket given with -s, Prometheus' /metrics over HTTP, bad input
//! answered with JSON-RPC errors, and a killed control process replaced.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Peer, Server, exchange, expect, rpc, temp_dir};
use serde_json::{Value, json};

const SEC: Duration = Duration::from_secs(3);

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(metrics_port: u16) -> String {
    format!(
        "metrics_port={metrics_port}\n\
         loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"usrloc.so\"\n\
         loadmodule \"registrar.so\"\n\
         route {{\n\
           if (method == \"REGISTER\") {{ save(\"location\"); exit; }}\n\
           if (!lookup(\"location\")) {{ sl_send_reply(\"404\", \"Not Found\"); exit; }}\n\
           t_relay();\n\
         }}\n"
    )
}

fn register(p: &Peer, server: &Server, user: &str) {
    let req = format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-r-{user}\r\n\
         Max-Forwards: 70\r\nTo: <sip:{user}@example.com>\r\nFrom: <sip:{user}@example.com>;tag=1\r\n\
         Call-ID: reg-{user}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@{me}>\r\n\
         Expires: 600\r\nContent-Length: 0\r\n\r\n",
        me = p.addr
    );
    p.send(server.addr, &req);
    let (reply, _) = expect(p, "SIP/2.0 200", SEC).expect("200 to REGISTER");
    assert!(reply.contains(&format!("sip:{user}@")));
}

#[test]
fn every_method_answers_over_the_socket() {
    let dir = temp_dir("methods");
    let sock = dir.join("ctl.sock");
    let port = free_tcp_port();
    let server = Server::start(
        &config(port),
        2,
        &["-s", sock.to_str().unwrap(), "-m", "16"],
    );
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the control socket is the owner's only"
    );
    let p = Peer::new();
    register(&p, &server, "alice");

    let v = rpc(&sock, "core.version", json!([]));
    assert_eq!(v["result"]["name"], "rser");
    assert!(rpc(&sock, "core.uptime", json!([]))["result"]["uptime"].is_u64());
    let ps = rpc(&sock, "core.ps", json!([]))["result"].clone();
    let roles: Vec<&str> = ps
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles.iter().filter(|r| **r == "worker").count(),
        2,
        "{roles:?}"
    );
    for role in ["master", "timer", "control"] {
        assert!(roles.contains(&role), "{roles:?}");
    }

    let stats = rpc(&sock, "stats.get", json!([]))["result"].clone();
    assert!(stats["core"]["received"].as_u64().unwrap() >= 1);
    assert_eq!(stats["registrar"]["registrar_accepted"], 1);
    assert!(stats["shm"]["usrloc_bindings_capacity"].as_u64().unwrap() > 0);
    let tm_only = rpc(&sock, "stats.get", json!({"group": "tm"}))["result"].clone();
    assert_eq!(tm_only.as_object().unwrap().len(), 1);
    assert!(tm_only["tm"].is_object());

    let found = rpc(&sock, "ul.lookup", json!(["alice"]))["result"].clone();
    let contacts = found["contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 1);
    assert!(
        contacts[0]["contact"]
            .as_str()
            .unwrap()
            .starts_with("sip:alice@")
    );
    assert!(contacts[0]["expires"].as_u64().unwrap() <= 600);
    let dump = rpc(&sock, "ul.dump", json!([]))["result"].clone();
    // Kamailio's shape.
    let domain = &dump["Domains"][0]["Domain"];
    assert_eq!(domain["Domain"], "location", "{dump}");
    let info = &domain["AoRs"][0]["Info"];
    assert_eq!(info["AoR"], "alice", "{dump}");
    assert!(
        info["Contacts"][0]["Contact"]["Address"]
            .as_str()
            .unwrap()
            .starts_with("sip:alice@"),
        "{dump}"
    );
    assert_eq!(
        rpc(&sock, "ul.rm", json!(["alice"]))["result"]["removed"],
        1
    );
    assert_eq!(
        rpc(&sock, "ul.lookup", json!(["alice"]))["error"]["code"],
        -32000
    );
    // Removed for the workers too: a request for alice now gets 404.
    p.send(
        server.addr,
        &p.request("OPTIONS", "sip:alice@example.com", "after-rm", ""),
    );
    assert!(expect(&p, "SIP/2.0 404", SEC).is_some());

    let tm = rpc(&sock, "tm.stats", json!([]))["result"].clone();
    assert!(tm["capacity"].as_u64().unwrap() > 0);
    assert!(tm["counters"]["tm_transactions"].is_u64());

    let bad_cfg = dir.join("bad.cfg");
    std::fs::write(&bad_cfg, "route { nosuchaction(); }\n").unwrap();
    let checked = rpc(&sock, "cfg.check", json!([bad_cfg.to_str().unwrap()]))["result"].clone();
    assert_eq!(checked["ok"], false);
    assert!(
        checked["errors"][0]
            .as_str()
            .unwrap()
            .contains("bad.cfg:1:")
    );
    assert!(
        rpc(&sock, "system.listMethods", json!([]))["result"]
            .as_array()
            .unwrap()
            .len()
            >= 9
    );

    // Prometheus over HTTP.
    let mut http = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    http.set_read_timeout(Some(SEC)).unwrap();
    http.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut page = String::new();
    http.read_to_string(&mut page).unwrap();
    assert!(page.starts_with("HTTP/1.0 200 OK\r\n"), "{page}");
    assert!(page.contains("# TYPE rser_received_total counter\nrser_received_total "));
    assert!(page.contains("rser_usrloc_bindings_capacity "));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_gets_json_rpc_errors_and_the_server_keeps_serving() {
    let dir = temp_dir("bad");
    let sock = dir.join("ctl.sock");
    let server = Server::start(&config(free_tcp_port()), 1, &["-s", sock.to_str().unwrap()]);
    let answers = exchange(
        &sock,
        "{not json\n\
         {\"jsonrpc\":\"2.0\",\"method\":\"no.such\",\"id\":1}\n\
         {\"jsonrpc\":\"2.0\",\"method\":\"ul.lookup\",\"params\":[42],\"id\":2}\n\
         {\"jsonrpc\":\"1.0\",\"method\":\"core.version\",\"id\":3}\n\
         \n\
         {\"jsonrpc\":\"2.0\",\"method\":\"core.version\"}\n\
         [{\"jsonrpc\":\"2.0\",\"method\":\"core.version\",\"id\":4}]\n",
    );
    let codes: Vec<&Value> = answers
        .iter()
        .take(4)
        .map(|a| &a["error"]["code"])
        .collect();
    assert_eq!(
        codes,
        [
            &json!(-32700),
            &json!(-32601),
            &json!(-32602),
            &json!(-32600)
        ]
    );
    assert_eq!(
        answers.len(),
        5,
        "the notification got no answer: {answers:?}"
    );
    assert_eq!(answers[4][0]["result"]["name"], "rser");
    // A request larger than the limit, with no newline, then silence.
    let huge = "x".repeat(70 * 1024);
    let a = exchange(&sock, &huge);
    assert_eq!(a[0]["error"]["code"], -32600);
    // The SIP side never noticed.
    let p = Peer::new();
    p.send(
        server.addr,
        &p.request("OPTIONS", "sip:nobody@example.com", "still", ""),
    );
    assert!(expect(&p, "SIP/2.0 404", SEC).is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The control process's pid from `core.ps`; None while nothing answers
/// (it is being replaced).
fn control_pid(sock: &Path) -> Option<i64> {
    let mut s = UnixStream::connect(sock).ok()?;
    s.set_read_timeout(Some(SEC)).ok()?;
    s.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"core.ps\",\"id\":1}\n")
        .ok()?;
    s.shutdown(std::net::Shutdown::Write).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let v: Value = serde_json::from_str(out.trim()).ok()?;
    v["result"]
        .as_array()?
        .iter()
        .find(|p| p["role"] == "control")?["pid"]
        .as_i64()
}

#[test]
fn a_killed_control_process_is_replaced() {
    let dir = temp_dir("respawn");
    let sock = dir.join("ctl.sock");
    let _server = Server::start(&config(free_tcp_port()), 1, &["-s", sock.to_str().unwrap()]);
    let control = control_pid(&sock).expect("a control process");
    unsafe { libc::kill(control as i32, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        if let Some(new) = control_pid(&sock) {
            assert_ne!(new, control);
            break;
        }
        assert!(Instant::now() < deadline, "no control process came back");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn t_uac_delivers_a_message_and_returns_its_final_reply() {
    let dir = temp_dir("t-uac");
    let sock = dir.join("ctl.sock");
    let server = Server::start(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nroute { t_relay(); }\n",
        2,
        &["-s", sock.to_str().unwrap()],
    );
    let uas = Peer::new();
    let uri = format!("sip:bob@{}", uas.addr);
    let responder = std::thread::spawn(move || {
        let (m, from) = expect(&uas, "MESSAGE ", SEC).expect("the MESSAGE arrives");
        uas.send(from, &common::answer(&m, 200, "Delivered", "uas"));
        m
    });
    let r = rpc(
        &sock,
        "tm.t_uac",
        json!([
            "MESSAGE",
            uri,
            ".",
            "Content-Type: text/plain\r\nSubject: test",
            "hello"
        ]),
    );
    let m = responder.join().unwrap();
    assert_eq!(r["result"]["code"], 200, "{r}");
    assert_eq!(r["result"]["reason"], "Delivered");
    assert!(
        m.contains("Subject: test\r\n") && m.ends_with("\r\n\r\nhello"),
        "{m}"
    );
    assert!(m.contains(&format!("To: <{uri}>")), "{m}");

    // Through the proxy as next hop; an INVITE, its 2xx acknowledged.
    let uas = Peer::new();
    let uri = format!("sip:carol@{}", uas.addr);
    let responder = std::thread::spawn(move || {
        let (m, from) = expect(&uas, "NOTIFY ", SEC).expect("the NOTIFY arrives");
        uas.send(from, &common::answer(&m, 481, "No Subscription", "uas"));
    });
    let via_proxy = format!("sip:{}", server.addr);
    let r = rpc(
        &sock,
        "tm.t_uac",
        json!(["NOTIFY", uri, via_proxy, "Event: presence"]),
    );
    responder.join().unwrap();
    assert_eq!(r["result"]["code"], 481, "{r}");
    let uas = Peer::new();
    let uri = format!("sip:dan@{}", uas.addr);
    let responder = std::thread::spawn(move || {
        let (m, from) = expect(&uas, "INVITE ", SEC).expect("the INVITE arrives");
        let ok = common::answer(&m, 200, "OK", "uas").replace(
            "Content-Length: 0\r\n",
            &format!("Contact: <sip:dan@{}>\r\nContent-Length: 0\r\n", uas.addr),
        );
        uas.send(from, &ok);
        expect(&uas, "ACK ", SEC)
            .expect("the 2xx is acknowledged")
            .0
    });
    let r = rpc(&sock, "tm.t_uac", json!(["INVITE", uri]));
    let ack = responder.join().unwrap();
    assert_eq!(r["result"]["code"], 200, "{r}");
    assert!(ack.contains("CSeq: 1 ACK\r\n"), "{ack}");
    let r = rpc(&sock, "tm.t_uac", json!(["ACK", "sip:x@127.0.0.1"]));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let r = rpc(
        &sock,
        "tm.t_uac",
        json!(["MESSAGE", "sip:x@127.0.0.1", ".", "Via: SIP/2.0/UDP evil"]),
    );
    assert_eq!(r["error"]["code"], -32602, "{r}");
}

#[test]
fn a_destination_that_times_out_is_blocklisted_until_cleared() {
    let dir = temp_dir("blocklist");
    let sock = dir.join("ctl.sock");
    let server = Server::start(
        "use_dst_blocklist=yes\ndst_blocklist_expire=60\n\
         loadmodule \"sl.so\"\nloadmodule \"tm.so\"\n\
         modparam(\"tm\", \"fr_timer\", 300)\n\
         route { if (!t_relay()) { sl_reply_error(); } }\n",
        2,
        &["-s", sock.to_str().unwrap()],
    );
    let silent = Peer::new();
    let caller = Peer::new();
    let invite = |id: &str| {
        caller.request(
            "INVITE",
            &format!("sip:bob@{}", silent.addr),
            id,
            "Contact: <sip:a@127.0.0.1>\r\n",
        )
    };
    caller.send(server.addr, &invite("bl-1"));
    let (m, _) = expect(&caller, "SIP/2.0 408", SEC).expect("408 after fr_timer");
    assert!(m.contains("bl-1"));
    assert!(silent.recv_within(Duration::from_millis(100)).is_some());
    while silent.recv_within(Duration::from_millis(100)).is_some() {}

    let v = rpc(&sock, "dst_blocklist.view", json!([]));
    let entries = v["result"]["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 1, "{v}");
    assert_eq!(entries[0]["address"], silent.addr.to_string());

    // Skipped now: the caller hears 503 at once and nothing is sent.
    caller.send(server.addr, &invite("bl-2"));
    let (m, _) = expect(&caller, "SIP/2.0 503", SEC).expect("503 while blocklisted");
    assert!(m.contains("Blocklisted"), "{m}");
    assert!(silent.recv_within(Duration::from_millis(200)).is_none());

    let r = rpc(
        &sock,
        "dst_blocklist.delete",
        json!([silent.addr.to_string()]),
    );
    assert_eq!(r["result"]["removed"], 1, "{r}");
    caller.send(server.addr, &invite("bl-3"));
    assert!(
        expect(&silent, "INVITE ", SEC).is_some(),
        "sent again once cleared"
    );
    let stats = rpc(&sock, "stats.get", json!(["tm"]));
    assert_eq!(stats["result"]["tm"]["tm_blocklist_added"], 1, "{stats}");
    assert!(stats["result"]["tm"]["tm_blocklisted"].as_u64().unwrap() >= 1);
}

/// `event_route[tm:local-request]` runs on each request the UAC sends:
/// its header edits go with it, its `drop` keeps it from going.
#[test]
fn local_requests_pass_through_event_route_tm_local_request() {
    let dir = temp_dir("t-uac-local");
    let sock = dir.join("ctl.sock");
    let server = Server::start(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"textops.so\"\nloadmodule \"xlog.so\"\n\
         route { t_relay(); }\n\
         event_route[tm:local-request] {\n\
           xlog(\"L_INFO\", \"local $rm to $ru via $snd(ip):$snd(port)\");\n\
           if (is_method(\"OPTIONS\")) { drop; }\n\
           append_hf(\"X-Local: $rm\");\n\
         }\n",
        2,
        &["-s", sock.to_str().unwrap()],
    );
    let uas = Peer::new();
    let uri = format!("sip:bob@{}", uas.addr);
    let responder = std::thread::spawn(move || {
        let (m, from) = expect(&uas, "MESSAGE ", SEC).expect("the MESSAGE arrives");
        uas.send(from, &common::answer(&m, 200, "Delivered", "uas"));
        m
    });
    let r = rpc(&sock, "tm.t_uac", json!(["MESSAGE", uri, ".", "", "hi"]));
    let m = responder.join().unwrap();
    assert_eq!(r["result"]["code"], 200, "{r}");
    assert!(m.contains("X-Local: MESSAGE\r\n"), "{m}");
    assert!(m.ends_with("\r\n\r\nhi"), "{m}");
    let r = rpc(&sock, "tm.t_uac", json!(["OPTIONS", uri]));
    assert!(
        r["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("dropped by event_route[tm:local-request]")),
        "{r}"
    );
    assert!(
        server
            .wait_log("local MESSAGE to sip:bob@", Duration::from_secs(2))
            .is_some()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// kamctl (Kamailio's own tool, its default RPCFIFO engine) against
/// rser's jsonrpcs FIFO: `kamctl ul show`, `kamctl rpc`, `kamctl stats`.
#[test]
fn kamctl_talks_to_the_jsonrpcs_fifo() {
    let dir = temp_dir("kamctl");
    let fifo = dir.join("kamailio_rpc.fifo");
    let server = Server::start(
        &format!(
            "loadmodule \"sl.so\"\nloadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\n\
             loadmodule \"jsonrpcs.so\"\nmodparam(\"jsonrpcs\", \"fifo_name\", \"{}\")\n\
             route {{ if (method == \"REGISTER\") {{ save(\"location\"); exit; }} }}\n",
            fifo.display()
        ),
        1,
        &[],
    );
    let p = Peer::new();
    let reply = common::register_contact(server.addr, "alice", p.addr);
    assert_eq!(common::status(&reply), Some(200), "{reply}");
    let kamctl = |args: &[&str]| {
        let out = std::process::Command::new("kamctl")
            .args(args)
            .env("RPCFIFOPATH", &fifo)
            .output()
            .expect("kamctl runs (tests/setup.sh installs Debian's kamailio)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = kamctl(&["ul", "show"]);
    assert!(shown.contains("\"AoR\":\"alice\""), "{shown}");
    assert!(shown.contains(&format!("sip:alice@{}", p.addr)), "{shown}");
    let up = kamctl(&["rpc", "core.uptime"]);
    assert!(up.contains("\"uptime\""), "{up}");
    let stats = kamctl(&["stats", "registrar"]);
    assert!(
        stats.contains("registrar:registrar_accepted = 1"),
        "{stats}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
