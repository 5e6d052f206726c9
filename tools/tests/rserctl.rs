//! rserctl against a running rser: every control command, through the
//! real binaries (rser is built beside rserctl by `cargo test --workspace`).

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RSERCTL: &str = env!("CARGO_BIN_EXE_rserctl");

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rser_binary() -> PathBuf {
    let p = Path::new(RSERCTL).with_file_name("rser");
    assert!(
        p.exists(),
        "{} is missing: build it (cargo build --bin rser)",
        p.display()
    );
    p
}

fn rserctl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(RSERCTL).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_control_command_against_a_running_server() {
    let dir = std::env::temp_dir().join(format!("rserctl-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("ctl.sock");
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.join("rser.cfg");
    // A destination for the dispatcher and for tm uac.
    let uas = UdpSocket::bind("127.0.0.1:0").unwrap();
    uas.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let uas_uri = format!("sip:{}", uas.local_addr().unwrap());
    std::fs::write(dir.join("dispatcher.list"), format!("1 {uas_uri}\n")).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "listen=udp:127.0.0.1:{port}\nctl_socket=\"unix:{}\"\nuse_dst_blocklist=yes\n\
             loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"usrloc.so\"\n\
             loadmodule \"registrar.so\"\nloadmodule \"dispatcher.so\"\n\
             modparam(\"dispatcher\", \"list_file\", \"dispatcher.list\")\n\
             route {{ if (method == \"REGISTER\") {{ save(\"location\"); exit; }} t_relay(); }}\n",
            sock.display()
        ),
    )
    .unwrap();
    let _rser = Killed(
        Command::new(rser_binary())
            .arg("-f")
            .arg(&cfg)
            .args(["-n", "1", "-m", "8"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let cfg_arg = cfg.to_str().unwrap();
    // Bounded wait for the control socket.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !rserctl(&["-f", cfg_arg, "version"]).0 {
        assert!(
            Instant::now() < deadline,
            "the control socket never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A binding to look at.
    let ua = UdpSocket::bind("127.0.0.1:0").unwrap();
    ua.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let me = ua.local_addr().unwrap();
    let reg = format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-c1\r\n\
         Max-Forwards: 70\r\nTo: <sip:bob@example.com>\r\nFrom: <sip:bob@example.com>;tag=1\r\n\
         Call-ID: c1\r\nCSeq: 1 REGISTER\r\nContact: <sip:bob@{me}>\r\nContent-Length: 0\r\n\r\n"
    );
    ua.send_to(reg.as_bytes(), ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 4096];
    let n = ua.recv(&mut buf).expect("a reply to REGISTER");
    assert!(buf[..n].starts_with(b"SIP/2.0 200"));

    let s = sock.to_str().unwrap();
    let (ok, out, _) = rserctl(&["-s", s, "version"]);
    assert!(ok && out.starts_with("rser "), "{out}");
    let (ok, out, _) = rserctl(&["-s", s, "uptime"]);
    assert!(ok && out.starts_with("up "), "{out}");
    let (ok, out, _) = rserctl(&["-s", s, "ps"]);
    assert!(
        ok && out.contains("master") && out.contains("worker") && out.contains("control"),
        "{out}"
    );
    let (ok, out, _) = rserctl(&["-s", s, "stats"]);
    assert!(
        ok && out.contains("registrar.registrar_accepted = 1"),
        "{out}"
    );
    let (ok, out, _) = rserctl(&["-s", s, "stats", "tm"]);
    assert!(ok && out.lines().all(|l| l.starts_with("tm.")), "{out}");
    let (ok, out, _) = rserctl(&["-s", s, "stats", "--prometheus"]);
    assert!(
        ok && out.contains("# TYPE rser_received_total counter"),
        "{out}"
    );
    let (ok, out, _) = rserctl(&["-s", s, "ul", "dump"]);
    assert!(
        ok && out.contains("table location: 1 AORs") && out.contains("sip:bob@"),
        "{out}"
    );
    let (ok, out, _) = rserctl(&["-s", s, "ul", "show", "bob"]);
    assert!(ok && out.starts_with("bob\n  sip:bob@"), "{out}");
    let (ok, out, _) = rserctl(&["-s", s, "ul", "rm", "bob"]);
    assert!(ok && out.contains("removed 1"), "{out}");
    let (ok, _, err) = rserctl(&["-s", s, "ul", "show", "bob"]);
    assert!(!ok && err.contains("no binding"), "{err}");
    let (ok, out, _) = rserctl(&["-s", s, "tm", "stats"]);
    assert!(ok && out.contains("capacity: "), "{out}");
    let (ok, out, _) = rserctl(&["-s", s, "dispatcher", "list"]);
    assert!(
        ok && out.starts_with("set 1\n") && out.contains(&uas_uri),
        "{out}"
    );
    assert!(out.contains(" AX "), "{out}");
    let (ok, out, _) = rserctl(&["-s", s, "dispatcher", "set-state", "ip", "1", &uas_uri]);
    assert!(ok && out.ends_with(": IP\n"), "{out}");
    let (ok, out, _) = rserctl(&["-s", s, "dispatcher", "reload"]);
    assert!(ok && out.starts_with("reloaded: 1 destinations"), "{out}");
    let (ok, out, _) = rserctl(&["-s", s, "dispatcher", "list"]);
    assert!(
        ok && out.contains(" IP "),
        "the reload kept the state: {out}"
    );
    let (ok, _, err) = rserctl(&["-s", s, "dispatcher", "set-state", "a", "9", &uas_uri]);
    assert!(!ok && err.contains("no destination"), "{err}");
    let (ok, out, _) = rserctl(&["-s", s, "blocklist", "show"]);
    assert!(ok && out.contains("no destination is blocklisted"), "{out}");
    let (ok, out, _) = rserctl(&["-s", s, "blocklist", "rm"]);
    assert!(ok && out.contains("unblocked 0"), "{out}");
    let responder = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let (n, from) = uas.recv_from(&mut buf).expect("the MESSAGE arrives");
        let req = String::from_utf8_lossy(&buf[..n]).into_owned();
        let mut reply = String::from("SIP/2.0 202 Accepted\r\n");
        for l in req.lines().filter(|l| {
            ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                .iter()
                .any(|h| l.starts_with(h))
        }) {
            reply.push_str(l);
            reply.push_str("\r\n");
        }
        reply.push_str("Content-Length: 0\r\n\r\n");
        uas.send_to(reply.as_bytes(), from).unwrap();
        req
    });
    let (ok, out, err) = rserctl(&[
        "-s",
        s,
        "tm",
        "uac",
        "MESSAGE",
        &uas_uri,
        "-H",
        "Subject: hi",
        "--body",
        "hello",
    ]);
    let req = responder.join().unwrap();
    assert!(ok && out.starts_with("202 Accepted"), "{out}{err}");
    assert!(
        req.contains("Subject: hi") && req.ends_with("hello"),
        "{req}"
    );
    // An INVITE: its 486 is reported, and acknowledged by the server.
    let callee = UdpSocket::bind("127.0.0.1:0").unwrap();
    callee
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let callee_uri = format!("sip:bob@{}", callee.local_addr().unwrap());
    let responder = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let (n, from) = callee.recv_from(&mut buf).expect("the INVITE arrives");
        let req = String::from_utf8_lossy(&buf[..n]).into_owned();
        let mut reply = String::from("SIP/2.0 486 Busy Here\r\n");
        for l in req.lines() {
            if ["Via:", "From:", "Call-ID:", "CSeq:"]
                .iter()
                .any(|h| l.starts_with(h))
            {
                reply.push_str(l);
                reply.push_str("\r\n");
            } else if l.starts_with("To:") {
                reply.push_str(l);
                reply.push_str(";tag=busy\r\n");
            }
        }
        reply.push_str("Content-Length: 0\r\n\r\n");
        callee.send_to(reply.as_bytes(), from).unwrap();
        let (n, _) = callee.recv_from(&mut buf).expect("the ACK arrives");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    let (ok, out, err) = rserctl(&["-s", s, "tm", "uac", "INVITE", &callee_uri]);
    let ack = responder.join().unwrap();
    assert!(!ok && err.contains("486 Busy Here"), "{out}{err}");
    assert!(ack.starts_with("ACK ") && ack.contains("tag=busy"), "{ack}");
    let (ok, out, _) = rserctl(&["-s", s, "cfg", "check"]);
    assert!(ok && out.ends_with(": ok\n"), "{out}");
    let (ok, out, _) = rserctl(&["-s", s, "rpc", "core.version"]);
    assert!(ok && out.contains("\"name\": \"rser\""), "{out}");
    let (ok, _, err) = rserctl(&["-s", s, "rpc", "no.such"]);
    assert!(!ok && err.contains("-32601"), "{err}");
    let (ok, _, err) = rserctl(&["-s", "/nonexistent.sock", "version"]);
    assert!(!ok && err.contains("/nonexistent.sock"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
