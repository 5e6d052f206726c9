//! ser.cfg.example through the real binary, with authentication off and
//! with its two "<- auth" lines uncommented: registration, calls to
//! registered users, in-dialog requests by their Route set only, and no
//! open relay (a request for another domain goes out only from our users,
//! authenticated when auth is on; otherwise 403).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Peer, Server, expect, header, headers, status};
use rser::modules::auth::digest::{self, Algorithm, Challenge};
use rser::modules::auth::subscriber;

const SEC: Duration = Duration::from_secs(3);

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
    let server = Server::start(&example_config(), 2, &["-m", "32"]);
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
    let dir = fresh_dir("auth");
    let server = Server::start(&example_with_auth(&dir), 2, &["-m", "32"]);
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

/// The example with its "<- auth" lines uncommented, its users in a
/// fresh database in `dir` (alice, password "alices secret").
fn example_with_auth(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let url = format!("sqlite://{}", dir.join("rser.db").display());
    let mut conn = rser::modules::auth::subscriber::open(&url, "subscriber").unwrap();
    subscriber::add(
        &mut conn,
        "subscriber",
        "alice",
        "example.net",
        "alices secret",
        false,
    )
    .unwrap();
    drop(conn);
    example_config()
        .lines()
        .map(|l| match l.trim_start().strip_prefix('#') {
            Some(rest) if l.ends_with("# <- auth") => rest.replace("sqlite://rser.db", &url),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rser-example-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// An INVITE from `caller` to `uri`, From `from` (a URI).
fn invite(caller: &Peer, uri: &str, from: &str, call: &str, extra: &str) -> String {
    let me = caller.addr;
    caller
        .request(
            "INVITE",
            uri,
            call,
            &format!("Contact: <sip:x@{me}>\r\n{extra}"),
        )
        .replace(
            &format!("From: <sip:alice@{me}>"),
            &format!("From: <{from}>"),
        )
}

/// The first final reply `p` gets.
fn final_reply(p: &Peer) -> String {
    loop {
        let (m, _) = expect(p, "SIP/2.0", SEC).expect("a final reply");
        if !m.starts_with("SIP/2.0 1") {
            return m;
        }
    }
}

#[test]
fn a_request_for_another_domain_from_a_stranger_is_refused() {
    let server = Server::start(&example_config(), 2, &["-m", "32"]);
    let (caller, elsewhere) = (Peer::new(), Peer::new());
    let uri = format!("sip:dave@{}", elsewhere.addr);
    caller.send(
        server.addr,
        &invite(&caller, &uri, "sip:eve@evil.example", "relay-1", ""),
    );
    let r = final_reply(&caller);
    assert_eq!(status(&r), Some(403), "{r}");
    assert!(r.starts_with("SIP/2.0 403 Not relaying"), "{r}");
    assert!(expect(&elsewhere, "INVITE", Duration::from_millis(300)).is_none());
    // A preloaded Route to us does not open the way: without a To tag
    // the Route set is not followed.
    let routed = invite(
        &caller,
        &uri,
        "sip:eve@evil.example",
        "relay-2",
        &format!("Route: <sip:{};lr>\r\n", server.addr),
    );
    caller.send(server.addr, &routed);
    assert_eq!(status(&final_reply(&caller)), Some(403));
    assert!(expect(&elsewhere, "INVITE", Duration::from_millis(300)).is_none());
}

#[test]
fn our_users_calls_to_another_domain_are_relayed() {
    let server = Server::start(&example_config(), 2, &["-m", "32"]);
    let (caller, elsewhere) = (Peer::new(), Peer::new());
    let uri = format!("sip:dave@{}", elsewhere.addr);
    caller.send(
        server.addr,
        &invite(&caller, &uri, "sip:alice@example.net", "out-1", ""),
    );
    let (got, _) = expect(&elsewhere, "INVITE", SEC).expect("relayed out");
    assert!(header(&got, "Record-Route").is_some());
}

#[test]
fn an_in_dialog_request_without_our_route_gets_404() {
    let server = Server::start(&example_config(), 2, &["-m", "32"]);
    let (caller, elsewhere) = (Peer::new(), Peer::new());
    let bye = caller
        .request("BYE", &format!("sip:dave@{}", elsewhere.addr), "dlg-1", "")
        .replace(">\r\nFrom:", ">;tag=theirs\r\nFrom:");
    caller.send(server.addr, &bye);
    let r = final_reply(&caller);
    assert_eq!(status(&r), Some(404), "{r}");
    assert!(expect(&elsewhere, "BYE", Duration::from_millis(300)).is_none());
}

/// Alice's Proxy-Authorization answering the 407 `challenge`.
fn credentials(challenge: &str, method: &str, uri: &str) -> String {
    let line = headers(challenge, "Proxy-Authenticate")
        .first()
        .map(|l| l.to_string())
        .unwrap_or_else(|| panic!("a challenge in {challenge}"));
    assert!(line.contains("algorithm=MD5"), "MD5 by default: {line}");
    let nonce = line
        .split("nonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap();
    let ha1 = digest::ha1(Algorithm::Md5, b"alice", b"example.net", b"alices secret");
    let resp = digest::response(
        Algorithm::Md5,
        ha1.as_bytes(),
        &Challenge {
            nonce: nonce.as_bytes(),
            qop_auth: Some((b"00000001", b"c0ffee")),
            method: method.as_bytes(),
            uri: uri.as_bytes(),
        },
    );
    format!(
        "Proxy-Authorization: Digest username=\"alice\", realm=\"example.net\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{resp}\", algorithm=MD5, qop=auth, nc=00000001, \
         cnonce=\"c0ffee\"\r\n"
    )
}

#[test]
fn with_auth_our_users_are_challenged_before_going_out() {
    let dir = fresh_dir("auth-out");
    let server = Server::start(&example_with_auth(&dir), 2, &["-m", "32"]);
    let (caller, elsewhere) = (Peer::new(), Peer::new());
    let uri = format!("sip:dave@{}", elsewhere.addr);
    let from = "sip:alice@example.net";
    caller.send(server.addr, &invite(&caller, &uri, from, "auth-out-1", ""));
    let r = final_reply(&caller);
    assert_eq!(status(&r), Some(407), "{r}");
    assert!(expect(&elsewhere, "INVITE", Duration::from_millis(300)).is_none());
    let creds = credentials(&r, "INVITE", &uri);
    let inv = invite(&caller, &uri, from, "auth-out-2", &creds);
    caller.send(server.addr, &inv);
    let (got, _) = expect(&elsewhere, "INVITE", SEC).expect("relayed once authenticated");
    assert!(
        header(&got, "Proxy-Authorization").is_none(),
        "consume_credentials: the next hop never sees alice's digest"
    );
    // It rings; the caller gives up: the CANCEL is not challenged.
    elsewhere.send(server.addr, &common::answer(&got, 180, "Ringing", "dave"));
    expect(&caller, "SIP/2.0 180", SEC).expect("180 upstream");
    let cancel = inv
        .replacen("INVITE ", "CANCEL ", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    caller.send(server.addr, &cancel);
    let (ok, _) = expect(&caller, "SIP/2.0", SEC).expect("the CANCEL answered");
    assert_eq!(status(&ok), Some(200), "{ok}");
    expect(&elsewhere, "CANCEL", SEC).expect("the CANCEL relayed");
    // Strangers still may not relay, and are not challenged for it.
    caller.send(
        server.addr,
        &invite(&caller, &uri, "sip:eve@evil.example", "auth-out-3", ""),
    );
    assert_eq!(status(&final_reply(&caller)), Some(403));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn with_auth_strangers_may_still_call_our_users() {
    let dir = fresh_dir("auth-in");
    let server = Server::start(&example_with_auth(&dir), 2, &["-m", "32"]);
    let caller = Peer::new();
    // Nobody registered as carol: looked up (404), not challenged.
    caller.send(
        server.addr,
        &invite(
            &caller,
            "sip:carol@example.net",
            "sip:eve@evil.example",
            "in-1",
            "",
        ),
    );
    assert_eq!(status(&final_reply(&caller)), Some(404));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tel_uri_gets_416_not_a_server_error() {
    let server = Server::start(&example_config(), 2, &["-m", "32"]);
    let caller = Peer::new();
    for (from, code) in [
        ("sip:alice@example.net", 416),
        ("sip:eve@evil.example", 403),
    ] {
        caller.send(
            server.addr,
            &invite(
                &caller,
                "tel:+15551234567",
                from,
                &format!("tel-{code}"),
                "",
            ),
        );
        let r = final_reply(&caller);
        assert_eq!(status(&r), Some(code), "{from}: {r}");
    }
}

/// The example's defences: a flood of REGISTERs from 127.0.0.2 gets its
/// first 16 answered, then nothing (banned), while 127.0.0.3 registers;
/// a request that is not SIP enough gets sanity's answer.
#[test]
fn the_example_bans_a_flooding_address_and_refuses_malformed_requests() {
    let server = Server::start(&example_config(), 2, &["-m", "32"]);
    let (flooder, other) = (Peer::on("127.0.0.2"), Peer::on("127.0.0.3"));
    for i in 0..100 {
        flooder.send(server.addr, &register(&flooder, "mallory", i + 1, ""));
    }
    let mut answered = 0;
    // Answered (200, or 500 for a CSeq overtaken by another worker's).
    while expect(&flooder, "SIP/2.0 ", Duration::from_millis(300)).is_some() {
        answered += 1;
    }
    assert!((16..=17).contains(&answered), "{answered} answered");
    other.send(server.addr, &register(&other, "bob", 1, ""));
    assert!(expect(&other, "SIP/2.0 200", SEC).is_some());
    let bad = register(&other, "bob", 2, "Expires: whenever\r\n");
    other.send(server.addr, &bad);
    let (r, _) = expect(&other, "SIP/2.0 ", SEC).expect("an answer");
    assert!(r.starts_with("SIP/2.0 400 Expires value is illegal"), "{r}");
}
