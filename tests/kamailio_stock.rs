//! Debian's stock kamailio.cfg (Kamailio 5.6, package `kamailio`, copied
//! from the installed package by the test; `tests/setup.sh` installs it)
//! through `rser -c` unchanged, then doing its default job with only the
//! listen address given (`-l`): registrations saved, calls between
//! registered users looked up and record-routed, in-dialog requests
//! through route[WITHINDLG], CANCEL through t_check_trans, and the
//! User-Agent scanner filter.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Peer, Server, answer, digest_answer, expect, header, headers, status, temp_dir};

const SEC: Duration = Duration::from_secs(3);
const STOCK: &str = "/etc/kamailio/kamailio.cfg";

fn stock() -> String {
    std::fs::read_to_string(STOCK)
        .unwrap_or_else(|e| panic!("{STOCK}: {e} (tests/setup.sh installs Debian's kamailio)"))
}

fn register(server: &Server, p: &Peer, user: &str, ua: &str) -> Option<String> {
    let msg = format!(
        "REGISTER sip:{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-reg-{user}-{ua};rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:{user}@{host}>\r\nFrom: <sip:{user}@{host}>;tag=r-{user}\r\n\
         Call-ID: reg-{user}-{ua}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@{me}>\r\nExpires: 600\r\n\
         User-Agent: {ua}\r\nContent-Length: 0\r\n\r\n",
        srv = server.addr,
        host = server.addr.ip(),
        me = p.addr
    );
    p.send(server.addr, &msg);
    expect(p, "SIP/2.0 ", Duration::from_millis(700)).map(|(m, _)| m)
}

fn invite(server: &Server, from: &Peer, to_user: &str, call: &str) -> String {
    format!(
        "INVITE sip:{to_user}@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call};rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:{to_user}@{host}>\r\nFrom: <sip:alice@{host}>;tag=a-{call}\r\n\
         Call-ID: {call}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{me}>\r\nContent-Length: 0\r\n\r\n",
        srv = server.addr,
        host = server.addr.ip(),
        me = from.addr
    )
}

#[test]
fn the_stock_config_checks_clean() {
    let dir = temp_dir("kamailio-stock-check");
    let file = dir.join("kamailio.cfg");
    std::fs::write(&file, stock()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rser"))
        .arg("-c")
        .arg("-f")
        .arg(&file)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains(": error:"), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_stock_config_registers_calls_cancels_and_filters_scanners() {
    let server = Server::start(&stock(), 2, &["-m", "32"]);
    let (alice, bob) = (Peer::new(), Peer::new());
    let ok = register(&server, &alice, "alice", "softphone").expect("a reply to REGISTER");
    assert_eq!(status(&ok), Some(200), "{ok}");
    assert_eq!(
        status(&register(&server, &bob, "bob", "softphone").unwrap()),
        Some(200)
    );
    // The User-Agent filter: a scanner gets nothing.
    let scanner = Peer::new();
    assert!(register(&server, &scanner, "mallory", "friendly-scanner").is_none());

    // A call: looked up, record-routed, answered; ACK and BYE follow the
    // route set through route[WITHINDLG].
    alice.send(server.addr, &invite(&server, &alice, "bob", "call-1"));
    let (inv, from) = expect(&bob, "INVITE ", SEC).expect("the INVITE reaches bob");
    assert!(
        inv.starts_with(&format!("INVITE sip:bob@{} SIP/2.0", bob.addr)),
        "{inv}"
    );
    let rr = headers(&inv, "Record-Route");
    assert_eq!(rr.len(), 1, "{inv}");
    assert!(rr[0].contains(";lr"), "{inv}");
    let ok = answer(&inv, 200, "OK", "b1").replace(
        "Content-Length: 0\r\n",
        &format!("Contact: <sip:bob@{}>\r\nContent-Length: 0\r\n", bob.addr),
    );
    bob.send(from, &ok);
    let (ok, _) = expect(&alice, "SIP/2.0 200", SEC).expect("the 200 reaches alice");
    assert_eq!(header(&ok, "Record-Route"), Some(rr[0]));
    let route = rr[0];
    let in_dialog = |method: &str, cseq: u32| {
        format!(
            "{method} sip:bob@{b} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{method}-1;rport\r\n\
             Max-Forwards: 70\r\nRoute: {route}\r\nTo: <sip:bob@{host}>;tag=b1\r\n\
             From: <sip:alice@{host}>;tag=a-call-1\r\nCall-ID: call-1\r\nCSeq: {cseq} {method}\r\n\
             Content-Length: 0\r\n\r\n",
            b = bob.addr,
            me = alice.addr,
            host = server.addr.ip()
        )
    };
    alice.send(server.addr, &in_dialog("ACK", 1));
    assert!(
        expect(&bob, "ACK ", SEC).is_some(),
        "the ACK follows the route"
    );
    alice.send(server.addr, &in_dialog("BYE", 2));
    let (bye, from) = expect(&bob, "BYE ", SEC).expect("the BYE follows the route");
    bob.send(from, &answer(&bye, 200, "OK", "b1"));
    assert!(
        expect(&alice, "SIP/2.0 200", SEC).is_some(),
        "the BYE's 200"
    );

    // CANCEL: t_check_trans finds the INVITE; bob's 487 reaches alice.
    alice.send(server.addr, &invite(&server, &alice, "bob", "call-2"));
    let (inv, from) = expect(&bob, "INVITE ", SEC).expect("the second INVITE");
    bob.send(from, &answer(&inv, 180, "Ringing", "b2"));
    assert!(expect(&alice, "SIP/2.0 180", SEC).is_some());
    let cancel = invite(&server, &alice, "bob", "call-2")
        .replacen("INVITE", "CANCEL", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
        .replace(&format!("Contact: <sip:alice@{}>\r\n", alice.addr), "");
    alice.send(server.addr, &cancel);
    let (c, from) = expect(&bob, "CANCEL ", SEC).expect("the CANCEL reaches bob");
    bob.send(from, &answer(&c, 200, "OK", "b2"));
    bob.send(from, &answer(&inv, 487, "Request Terminated", "b2"));
    assert!(
        expect(&alice, "SIP/2.0 487", SEC).is_some(),
        "the 487 reaches alice"
    );

    // Not registered: 404.
    alice.send(server.addr, &invite(&server, &alice, "nobody", "call-3"));
    assert!(expect(&alice, "SIP/2.0 404", SEC).is_some());
}

/// `WITH_AUTH` (with its database named on the command line, as
/// `-A DBURL=...`, since the stock file names MySQL's in `WITH_MYSQL`):
/// REGISTER is challenged with 401 for the From domain and accepted with
/// the subscriber's password; a call from a local user is challenged with
/// 407, then relayed.
#[test]
fn with_auth_registrations_and_calls_are_challenged() {
    let dir = temp_dir("kamailio-stock-auth");
    let db = dir.join("auth.db");
    let url = format!("DBURL=\"sqlite://{}\"", db.display());
    let mut conn =
        rser::modules::auth::subscriber::open(&format!("sqlite://{}", db.display()), "subscriber")
            .unwrap();
    for user in ["alice", "bob"] {
        // use_domain is 0 in the stock file: the user name alone counts.
        rser::modules::auth::subscriber::add(&mut conn, "subscriber", user, "anywhere", "pw", true)
            .unwrap();
    }
    drop(conn);
    let server = Server::start(&stock(), 2, &["-A", "WITH_AUTH", "-A", &url]);
    let (alice, bob) = (Peer::new(), Peer::new());
    let uri = format!("sip:{}", server.addr);
    let reg = |p: &Peer, user: &str, cseq: u32, auth: &str| {
        let msg = format!(
            "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-ra-{user}-{cseq};rport\r\n\
             Max-Forwards: 70\r\nTo: <sip:{user}@{host}>\r\nFrom: <sip:{user}@{host}>;tag=r{cseq}\r\n\
             Call-ID: rega-{user}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{me}>\r\n\
             Expires: 600\r\n{auth}Content-Length: 0\r\n\r\n",
            me = p.addr,
            host = server.addr.ip()
        );
        p.send(server.addr, &msg);
        expect(p, "SIP/2.0 ", SEC).expect("a reply to REGISTER").0
    };
    for (p, user) in [(&alice, "alice"), (&bob, "bob")] {
        let challenge = reg(p, user, 1, "");
        assert_eq!(status(&challenge), Some(401), "{challenge}");
        let realm = format!("realm=\"{}\"", server.addr.ip());
        assert!(challenge.contains(&realm), "{challenge}");
        let wrong = digest_answer(&challenge, user, "nope", "REGISTER", &uri);
        assert_eq!(status(&reg(p, user, 2, &wrong)), Some(401));
        let challenge = reg(p, user, 3, "");
        let auth = digest_answer(&challenge, user, "pw", "REGISTER", &uri);
        let ok = reg(p, user, 4, &auth);
        assert_eq!(status(&ok), Some(200), "{ok}");
    }
    // From a local user (the From URI is myself: the proxy's address and
    // port), so route[AUTH] asks for credentials.
    let local = |s: String| {
        s.replace(
            &format!("From: <sip:alice@{}>", server.addr.ip()),
            &format!("From: <sip:alice@{}>", server.addr),
        )
    };
    alice.send(
        server.addr,
        &local(invite(&server, &alice, "bob", "auth-call")),
    );
    let (challenge, _) = expect(&alice, "SIP/2.0 407", SEC).expect("a 407 to the INVITE");
    let req_uri = format!("sip:bob@{}", server.addr);
    let auth = digest_answer(&challenge, "alice", "pw", "INVITE", &req_uri);
    let again = local(invite(&server, &alice, "bob", "auth-call"))
        .replace("CSeq: 1 INVITE", "CSeq: 2 INVITE")
        .replace("branch=z9hG4bK-auth-call", "branch=z9hG4bK-auth-call-2")
        .replace("Content-Length: 0", &format!("{auth}Content-Length: 0"));
    alice.send(server.addr, &again);
    let (inv, _) = expect(&bob, "INVITE ", SEC).expect("the authenticated INVITE reaches bob");
    assert!(
        !inv.contains("Proxy-Authorization"),
        "consume_credentials() removed them: {inv}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `WITH_ANTIFLOOD`: the stock config's pike and htable ban, unchanged.
/// A flood of keep-alives from 127.0.0.2 gets its first 16 answered (the
/// stock density per 2 s), then nothing (banned for 300 s); 127.0.0.3 is
/// answered throughout.
#[test]
fn with_antiflood_a_flooding_address_is_banned() {
    let server = Server::start(&stock(), 2, &["-m", "32", "-A", "WITH_ANTIFLOOD"]);
    let options = |p: &Peer, i: u32| {
        format!(
            "OPTIONS sip:{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-af-{i};rport\r\n\
             Max-Forwards: 70\r\nTo: <sip:{srv}>\r\nFrom: <sip:ping@{me}>;tag=af{i}\r\n\
             Call-ID: af-{i}-{me}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            srv = server.addr,
            me = p.addr
        )
    };
    let (flooder, other) = (Peer::on("127.0.0.2"), Peer::on("127.0.0.3"));
    for i in 0..100 {
        flooder.send(server.addr, &options(&flooder, i));
    }
    let mut answered = 0;
    while expect(&flooder, "SIP/2.0 200", Duration::from_millis(300)).is_some() {
        answered += 1;
    }
    assert!((16..=17).contains(&answered), "{answered} answered");
    for i in 0..5 {
        other.send(server.addr, &options(&other, 1_000 + i));
        assert!(
            expect(&other, "SIP/2.0 200", SEC).is_some(),
            "the other source, {i}"
        );
    }
    flooder.send(server.addr, &options(&flooder, 2_000));
    assert!(
        expect(&flooder, "SIP/2.0", Duration::from_millis(500)).is_none(),
        "banned"
    );
}
