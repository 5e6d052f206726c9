//! Digest authentication through the real binary: REGISTER challenged,
//! MD5 and SHA-256 answers accepted, a wrong password, a stale nonce and
//! a replayed nonce count refused, and check_to keeping bob from
//! registering mallory's address.

mod common;

use std::time::Duration;

use common::{Peer, Server, expect, header, headers, status};
use rser::modules::auth::digest::{self, Algorithm, Challenge};
use rser::modules::auth::subscriber;

const SEC: Duration = Duration::from_secs(3);
const REALM: &str = "example.com";

struct Fixture {
    rser: Server,
    phone: Peer,
    dir: std::path::PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(name: &str, nonce_expire: u32) -> Fixture {
    start_with(name, nonce_expire, Some("SHA-256,MD5"))
}

/// `algorithms`: auth's `algorithm` parameter, or None for the default.
fn start_with(name: &str, nonce_expire: u32, algorithms: Option<&str>) -> Fixture {
    let algorithms = algorithms.map_or(String::new(), |a| {
        format!("modparam(\"auth\", \"algorithm\", \"{a}\")\n")
    });
    let dir = std::env::temp_dir().join(format!("rser-auth-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("rser.db").display());
    let mut conn = rser::modules::auth::subscriber::open(&url, "subscriber").unwrap();
    subscriber::add(&mut conn, "subscriber", "bob", REALM, "bobs secret", false).unwrap();
    drop(conn);
    let cfg = format!(
        "loadmodule \"sl.so\"\nloadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\n\
         loadmodule \"auth.so\"\nloadmodule \"auth_db.so\"\nloadmodule \"xlog.so\"\n\
         modparam(\"auth_db\", \"db_url\", \"{url}\")\n\
         modparam(\"auth\", \"nonce_expire\", {nonce_expire})\n\
         {algorithms}\
         route {{\n\
           if (method == \"REGISTER\") {{\n\
             if (!www_authorize(\"{REALM}\", \"subscriber\")) {{\n\
               xlog(\"L_WARN\", \"www_authorize returned $rc\\n\");\n\
               www_challenge(\"{REALM}\", \"1\"); exit;\n\
             }}\n\
             if (!check_to()) {{ sl_send_reply(\"403\", \"Forbidden\"); exit; }}\n\
             save(\"location\"); exit;\n\
           }}\n\
         }}\n"
    );
    Fixture {
        rser: Server::start(&cfg, 2, &[]),
        phone: Peer::new(),
        dir,
    }
}

fn register(p: &Peer, aor_user: &str, cseq: u32, auth: &str) -> String {
    format!(
        "REGISTER sip:{REALM} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-auth-{aor_user}-{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:{aor_user}@{REALM}>\r\n\
         From: <sip:{aor_user}@{REALM}>;tag=a{cseq}\r\n\
         Call-ID: auth-{aor_user}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{aor_user}@{me}>\r\n\
         {auth}Content-Length: 0\r\n\r\n",
        me = p.addr
    )
}

fn send(f: &Fixture, msg: &str) -> String {
    f.phone.send(f.rser.addr, msg);
    expect(&f.phone, "SIP/2.0 ", SEC).expect("a reply").0
}

/// The nonce of the challenge for `alg` in a 401.
fn nonce_for(reply: &str, alg: &str) -> String {
    let line = headers(reply, "WWW-Authenticate")
        .into_iter()
        .find(|l| l.contains(&format!("algorithm={alg}")))
        .unwrap_or_else(|| panic!("no {alg} challenge in {reply}"));
    line.split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

fn authorization(alg: Algorithm, user: &str, password: &str, nonce: &str, nc: u32) -> String {
    let uri = format!("sip:{REALM}");
    let nc = format!("{nc:08x}");
    let ha1 = digest::ha1(alg, user.as_bytes(), REALM.as_bytes(), password.as_bytes());
    let resp = digest::response(
        alg,
        ha1.as_bytes(),
        &Challenge {
            nonce: nonce.as_bytes(),
            qop_auth: Some((nc.as_bytes(), b"c0ffee")),
            method: b"REGISTER",
            uri: uri.as_bytes(),
        },
    );
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{resp}\", algorithm={}, qop=auth, nc={nc}, cnonce=\"c0ffee\"\r\n",
        alg.name()
    )
}

#[test]
fn the_default_challenge_is_md5_alone() {
    // What every deployed UA answers (Kamailio's default too); the other
    // tests' "SHA-256,MD5" is an explicit choice.
    let f = start_with("default-alg", 30, None);
    let r = send(&f, &register(&f.phone, "bob", 1, ""));
    let challenges = headers(&r, "WWW-Authenticate");
    assert_eq!(challenges.len(), 1, "{r}");
    assert!(challenges[0].contains("algorithm=MD5"), "{r}");
}

#[test]
fn challenged_then_md5_and_sha256_answers_register() {
    let f = start("ok", 30);
    let r = send(&f, &register(&f.phone, "bob", 1, ""));
    assert_eq!(status(&r), Some(401), "{r}");
    let challenges = headers(&r, "WWW-Authenticate");
    assert_eq!(challenges.len(), 2, "{r}");
    assert!(challenges[0].contains("algorithm=SHA-256"), "SHA-256 first");
    assert!(challenges[0].contains("qop=\"auth\""));
    let nonce = nonce_for(&r, "MD5");
    let ok = send(
        &f,
        &register(
            &f.phone,
            "bob",
            2,
            &authorization(Algorithm::Md5, "bob", "bobs secret", &nonce, 1),
        ),
    );
    assert_eq!(status(&ok), Some(200), "{ok}");
    // The same nonce with the next count, now SHA-256.
    let ok = send(
        &f,
        &register(
            &f.phone,
            "bob",
            3,
            &authorization(Algorithm::Sha256, "bob", "bobs secret", &nonce, 2),
        ),
    );
    assert_eq!(status(&ok), Some(200), "{ok}");
    assert!(header(&ok, "Contact").is_some());
}

#[test]
fn a_wrong_password_and_a_replayed_count_are_challenged_again() {
    let f = start("bad", 30);
    let r = send(&f, &register(&f.phone, "bob", 1, ""));
    let nonce = nonce_for(&r, "SHA-256");
    let wrong = authorization(Algorithm::Sha256, "bob", "guess", &nonce, 1);
    assert_eq!(
        status(&send(&f, &register(&f.phone, "bob", 2, &wrong))),
        Some(401)
    );
    let right = authorization(Algorithm::Sha256, "bob", "bobs secret", &nonce, 5);
    assert_eq!(
        status(&send(&f, &register(&f.phone, "bob", 3, &right))),
        Some(200)
    );
    // The same count again: a replay (RFC 2617 §3.2.2).
    let replay = send(&f, &register(&f.phone, "bob", 4, &right));
    assert_eq!(status(&replay), Some(401), "{replay}");
    // One line per source a second (per process) names the user, realm
    // and source.
    let line = f
        .rser
        .wait_log("auth: failed for", SEC)
        .expect("the failure is logged");
    let want = format!(
        "user=\"bob\" realm=\"example.com\" from {}: wrong password",
        f.phone.addr
    );
    assert!(line.contains(&want), "{line}");
    // The action's value, as Kamailio's: -2 a wrong password, -6 a reused
    // nonce count.
    for rc in ["-2", "-6"] {
        let said = format!("www_authorize returned {rc}");
        assert!(f.rser.wait_log(&said, SEC).is_some(), "{said}");
    }
    // An unknown user is challenged too; from another source, logged too.
    let other = Peer::on("127.0.0.2");
    let nobody = authorization(Algorithm::Md5, "eve", "x", &nonce, 9);
    other.send(f.rser.addr, &register(&other, "eve", 5, &nobody));
    let r = expect(&other, "SIP/2.0 ", SEC).expect("a reply").0;
    assert_eq!(status(&r), Some(401));
    let line = f
        .rser
        .wait_log("from 127.0.0.2:", SEC)
        .expect("the second source's failure is logged");
    assert!(line.contains("auth: failed for user=\"eve\""), "{line}");
    assert!(line.contains("unknown user"), "{line}");
    assert!(f.rser.wait_log("www_authorize returned -3", SEC).is_some());
}

#[test]
fn a_stale_nonce_is_challenged_with_stale_true() {
    let f = start("stale", 1);
    let r = send(&f, &register(&f.phone, "bob", 1, ""));
    let nonce = nonce_for(&r, "MD5");
    std::thread::sleep(Duration::from_millis(2100));
    let late = authorization(Algorithm::Md5, "bob", "bobs secret", &nonce, 1);
    let r = send(&f, &register(&f.phone, "bob", 2, &late));
    assert_eq!(status(&r), Some(401));
    assert!(
        header(&r, "WWW-Authenticate")
            .unwrap()
            .contains("stale=true"),
        "{r}"
    );
}

#[test]
fn check_to_stops_bob_registering_mallory() {
    let f = start("check-to", 30);
    let r = send(&f, &register(&f.phone, "mallory", 1, ""));
    let nonce = nonce_for(&r, "MD5");
    // bob's own valid credentials, on a REGISTER for mallory's AOR.
    let creds = authorization(Algorithm::Md5, "bob", "bobs secret", &nonce, 1);
    let r = send(&f, &register(&f.phone, "mallory", 2, &creds));
    assert_eq!(status(&r), Some(403), "{r}");
}

/// A password-guessing run from one address is refused (403, unchecked)
/// after auth's default 10 failures in 60 s, even with the right
/// password; the right password from another address still registers,
/// and an unknown user gets the same answer as a wrong password.
#[test]
fn a_guessing_run_is_stopped_and_the_right_password_elsewhere_works() {
    let f = start_with("guess", 30, None);
    let r = send(&f, &register(&f.phone, "bob", 1, ""));
    let nonce = nonce_for(&r, "MD5");
    // An unknown user and a wrong password: the same reply.
    let unknown = send(
        &f,
        &register(
            &f.phone,
            "bob",
            2,
            &authorization(Algorithm::Md5, "eve", "x", &nonce, 1),
        ),
    );
    assert_eq!(status(&unknown), Some(401));
    for i in 2..=10 {
        let guess = authorization(Algorithm::Md5, "bob", &format!("{i:04}"), &nonce, i);
        let r = send(&f, &register(&f.phone, "bob", 1 + i, &guess));
        assert_eq!(status(&r), Some(401), "guess {i}: {r}");
    }
    // The 11th attempt, right password and all: refused unchecked.
    let right = authorization(Algorithm::Md5, "bob", "bobs secret", &nonce, 11);
    let r = send(&f, &register(&f.phone, "bob", 20, &right));
    assert_eq!(status(&r), Some(403), "{r}");
    let line = f
        .rser
        .wait_log("auth: refusing attempts", SEC)
        .expect("logged");
    assert!(line.contains("its source address failed 10"), "{line}");
    // From another address, the right password registers (bob's 9
    // failures are under the per-user limit, 30).
    let other = Peer::on("127.0.0.3");
    other.send(f.rser.addr, &register(&other, "bob", 30, ""));
    let r = expect(&other, "SIP/2.0 401", SEC).expect("a challenge").0;
    let nonce = nonce_for(&r, "MD5");
    let ok = authorization(Algorithm::Md5, "bob", "bobs secret", &nonce, 1);
    other.send(f.rser.addr, &register(&other, "bob", 31, &ok));
    let r = expect(&other, "SIP/2.0 ", SEC).expect("a reply").0;
    assert_eq!(status(&r), Some(200), "{r}");
}
