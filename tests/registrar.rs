//! The registrar through the real binary: REGISTER saves bindings, other
//! requests are looked up and relayed to them; expiry, `*`, 423, and
//! restarts keeping the bindings in SQLite.

mod common;

use std::time::{Duration, Instant};

use common::{Peer, Server, answer, expect, header, headers, status};

const SEC: Duration = Duration::from_secs(3);

fn config(extra: &str) -> String {
    format!(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"usrloc.so\"\n\
         loadmodule \"registrar.so\"\n{extra}\n\
         route {{\n\
           if (method == \"REGISTER\") {{ save(\"location\"); exit; }}\n\
           if (!lookup(\"location\")) {{ sl_send_reply(\"404\", \"Not Found\"); exit; }}\n\
           t_relay();\n\
         }}\n"
    )
}

/// A REGISTER for `user` from `p`; `contacts` and `extra` are header lines.
fn register(p: &Peer, user: &str, call_id: &str, cseq: u32, contacts: &str, extra: &str) -> String {
    format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}-{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:{user}@example.com>\r\n\
         From: <sip:{user}@example.com>;tag=r{cseq}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         {contacts}{extra}Content-Length: 0\r\n\r\n",
        me = p.addr
    )
}

/// Sends and waits for the final reply.
fn send_register(rser: &Server, p: &Peer, msg: &str) -> String {
    p.send(rser.addr, msg);
    expect(p, "SIP/2.0 ", SEC).expect("a reply to REGISTER").0
}

fn invite_for(caller: &Peer, user: &str, call: &str) -> String {
    caller.request("INVITE", &format!("sip:{user}@example.com"), call, "")
}

#[test]
fn register_then_a_call_reaches_the_contact() {
    let (phone, caller) = (Peer::new(), Peer::new());
    let rser = Server::start(&config(""), 2, &[]);
    let contact = format!("Contact: <sip:bob@{}>;expires=600\r\n", phone.addr);
    let ok = send_register(
        &rser,
        &phone,
        &register(&phone, "bob", "r1", 1, &contact, ""),
    );
    assert_eq!(status(&ok), Some(200), "{ok}");
    let listed = header(&ok, "Contact").unwrap();
    assert!(
        listed.starts_with(&format!("<sip:bob@{}>;expires=", phone.addr)),
        "{listed}"
    );
    let secs: u32 = listed.rsplit('=').next().unwrap().parse().unwrap();
    assert!((595..=600).contains(&secs), "{secs}");
    caller.send(rser.addr, &invite_for(&caller, "bob", "reg-call"));
    let (inv, _) = expect(&phone, "INVITE", SEC).expect("the INVITE reaches bob's phone");
    assert!(inv.starts_with(&format!("INVITE sip:bob@{} SIP/2.0", phone.addr)));
    phone.send(rser.addr, &answer(&inv, 200, "OK", "p"));
    expect(&caller, "SIP/2.0 200", SEC).expect("200 back to the caller");
    // Nobody registered as carol.
    caller.send(rser.addr, &invite_for(&caller, "carol", "reg-404"));
    expect(&caller, "SIP/2.0 404", SEC).expect("404 for an unknown user");
}

#[test]
fn two_contacts_fork_highest_q_first() {
    let (desk, mobile, caller) = (Peer::new(), Peer::new(), Peer::new());
    let rser = Server::start(&config(""), 2, &[]);
    let contacts = format!(
        "Contact: <sip:bob@{}>;q=0.5\r\nContact: <sip:bob@{}>;q=0.9\r\n",
        desk.addr, mobile.addr
    );
    let ok = send_register(
        &rser,
        &desk,
        &register(&desk, "bob", "r2", 1, &contacts, ""),
    );
    assert_eq!(headers(&ok, "Contact").len(), 2, "{ok}");
    caller.send(rser.addr, &invite_for(&caller, "bob", "reg-fork"));
    let (a, _) = expect(&mobile, "INVITE", SEC).expect("the mobile rings");
    let (b, _) = expect(&desk, "INVITE", SEC).expect("the desk rings");
    // q=0.9 became the Request-URI: branch 0 (our branch ids end in it).
    let via = header(&a, "Via").unwrap();
    let branch = via
        .split(";branch=")
        .nth(1)
        .unwrap()
        .split([';', ','])
        .next()
        .unwrap();
    assert!(branch.ends_with(".0"), "{branch}");
    desk.send(rser.addr, &answer(&b, 180, "Ringing", "d"));
    expect(&caller, "SIP/2.0 180", SEC).expect("ringing");
    mobile.send(rser.addr, &answer(&a, 200, "OK", "m"));
    expect(&desk, "CANCEL", SEC).expect("the ringing desk is cancelled");
}

#[test]
fn expiry_star_and_too_brief() {
    let (phone, caller) = (Peer::new(), Peer::new());
    let rser = Server::start(
        &config("modparam(\"registrar\", \"min_expires\", 1)"),
        2,
        &[],
    );
    let c = |exp: u32| format!("Contact: <sip:bob@{}>;expires={exp}\r\n", phone.addr);
    let ok = send_register(&rser, &phone, &register(&phone, "bob", "r3", 1, &c(1), ""));
    assert_eq!(status(&ok), Some(200));
    // Expired within about a second (the upkeep sweeps every second;
    // lookup ignores an expired binding at once).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut gone = false;
    let mut attempt = 0;
    while Instant::now() < deadline && !gone {
        std::thread::sleep(Duration::from_millis(500));
        attempt += 1;
        // A new transaction each time (the same one would be absorbed).
        let call = format!("reg-exp-{attempt}");
        caller.send(rser.addr, &invite_for(&caller, "bob", &call));
        gone = expect(&caller, "SIP/2.0 404", Duration::from_millis(500)).is_some();
    }
    assert!(gone, "the binding expired");
    // Register for long, then `*` removes every binding.
    send_register(
        &rser,
        &phone,
        &register(&phone, "bob", "r3", 2, &c(600), ""),
    );
    let star = register(&phone, "bob", "r3", 3, "Contact: *\r\n", "Expires: 0\r\n");
    let ok = send_register(&rser, &phone, &star);
    assert_eq!(status(&ok), Some(200), "{ok}");
    assert!(header(&ok, "Contact").is_none(), "no binding left");
    // `*` with a non-zero Expires is invalid (§10.3 step 6).
    let bad = register(&phone, "bob", "r3", 4, "Contact: *\r\n", "Expires: 5\r\n");
    assert_eq!(status(&send_register(&rser, &phone, &bad)), Some(400));
    // An old CSeq on the Call-ID of a live binding is refused.
    send_register(
        &rser,
        &phone,
        &register(&phone, "bob", "r3", 9, &c(600), ""),
    );
    let old = register(&phone, "bob", "r3", 8, &c(600), "");
    assert_eq!(status(&send_register(&rser, &phone, &old)), Some(400));
}

#[test]
fn too_brief_gets_423_with_min_expires() {
    let phone = Peer::new();
    let rser = Server::start(&config(""), 2, &[]);
    let c = format!("Contact: <sip:bob@{}>;expires=10\r\n", phone.addr);
    let r = send_register(&rser, &phone, &register(&phone, "bob", "r4", 1, &c, ""));
    assert_eq!(status(&r), Some(423), "{r}");
    assert_eq!(header(&r, "Min-Expires"), Some("60"));
}

fn db_config(url: &str, mode: u32, interval: u32) -> String {
    config(&format!(
        "modparam(\"usrloc\", \"db_url\", \"{url}\")\n\
         modparam(\"usrloc\", \"db_mode\", {mode})\n\
         modparam(\"usrloc\", \"timer_interval\", {interval})"
    ))
}

fn restart_keeps_bindings(mode: u32) {
    let dir = std::env::temp_dir().join(format!("rser-reg-{}-{mode}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("rser.db").display());
    let (phone, caller) = (Peer::new(), Peer::new());
    let cfg = db_config(&url, mode, 1);
    {
        let mut rser = Server::start(&cfg, 2, &[]);
        let c = format!("Contact: <sip:bob@{}>;expires=600\r\n", phone.addr);
        let ok = send_register(&rser, &phone, &register(&phone, "bob", "r5", 1, &c, ""));
        assert_eq!(status(&ok), Some(200));
        if mode == 2 {
            // The write-back runs every timer_interval (1 s here).
            std::thread::sleep(Duration::from_millis(2500));
        }
        rser.terminate(Duration::from_secs(3));
    }
    let rser = Server::start(&cfg, 2, &[]);
    caller.send(
        rser.addr,
        &invite_for(&caller, "bob", &format!("reg-restart-{mode}")),
    );
    expect(&phone, "INVITE", SEC).expect("the binding survived the restart");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_restart_keeps_bindings_written_through() {
    restart_keeps_bindings(1);
}

#[test]
fn a_restart_keeps_bindings_written_back() {
    restart_keeps_bindings(2);
}

#[test]
fn a_restart_keeps_bindings_in_the_database_only() {
    restart_keeps_bindings(3);
}

#[test]
fn a_database_that_cannot_be_opened_stops_the_start() {
    let cfg = db_config("sqlite:///nonexistent-dir/x/rser.db", 1, 60);
    let dir = std::env::temp_dir().join(format!("rser-reg-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.cfg");
    std::fs::write(&path, cfg).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rser"))
        .args(["-f", path.to_str().unwrap(), "-l", "udp:127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("usrloc database"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
