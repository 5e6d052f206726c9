//! Every module that reads or writes a database, through the real binary,
//! against MariaDB and PostgreSQL with tables made by Kamailio's own
//! scripts: auth_db (MD5, SHA-256), usrloc db_mode 1, 2 and 3 across a
//! restart, acc records, the dispatcher list; start-up errors; the
//! server gone under REGISTER traffic and back.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::db::{Gate, SERVERS, Scratch};
use common::{Peer, Server, answer, expect, headers, status};
use rser::db::conn::{Conn, Value};
use rser::modules::auth::digest::{self, Algorithm, Challenge};
use rser::modules::auth::subscriber;

const SEC: Duration = Duration::from_secs(3);
const REALM: &str = "example.com";

/// Polls `sql` (bounded: 5 s) until it returns `n` rows.
fn rows_within(c: &mut Conn, sql: &str, params: &[Value], n: usize) -> Vec<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rows = c.query(sql, params).unwrap();
        if rows.len() == n || Instant::now() > deadline {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn register(p: &Peer, user: &str, cseq: u32, expires: u32, auth: &str) -> String {
    format!(
        "REGISTER sip:{REALM} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-dbm-{user}-{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:{user}@{REALM}>\r\n\
         From: <sip:{user}@{REALM}>;tag=d{cseq}\r\n\
         Call-ID: dbm-{user}@{me}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{user}@{me}>;expires={expires}\r\n\
         {auth}Content-Length: 0\r\n\r\n",
        me = p.addr
    )
}

fn send(rser: &Server, p: &Peer, msg: &str) -> String {
    p.send(rser.addr, msg);
    expect(p, "SIP/2.0 ", SEC).expect("a reply").0
}

/// The `Authorization` answering `reply`'s challenge for `alg` (no qop).
fn authorization(reply: &str, alg: Algorithm, user: &str, password: &str) -> String {
    let line = headers(reply, "WWW-Authenticate")
        .into_iter()
        .find(|l| l.contains(&format!("algorithm={}", alg.name())))
        .unwrap_or_else(|| panic!("no {} challenge in {reply}", alg.name()));
    let nonce = line
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let uri = format!("sip:{REALM}");
    let ha1 = digest::ha1(alg, user.as_bytes(), REALM.as_bytes(), password.as_bytes());
    let resp = digest::response(
        alg,
        ha1.as_bytes(),
        &Challenge {
            nonce: nonce.as_bytes(),
            qop_auth: None,
            method: b"REGISTER",
            uri: uri.as_bytes(),
        },
    );
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{resp}\", algorithm={}\r\n",
        alg.name()
    )
}

/// Challenged, then answered: the final reply's status.
fn register_with(rser: &Server, p: &Peer, user: &str, pw: &str, alg: Algorithm, cseq: u32) -> u16 {
    let r = send(rser, p, &register(p, user, cseq, 600, ""));
    if status(&r) != Some(401) {
        return status(&r).unwrap_or(0);
    }
    let auth = authorization(&r, alg, user, pw);
    let r = send(rser, p, &register(p, user, cseq + 1, 600, &auth));
    status(&r).unwrap_or(0)
}

fn auth_config(url: &str, extra: &str) -> String {
    format!(
        "loadmodule \"sl.so\"\nloadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\n\
         loadmodule \"auth.so\"\nloadmodule \"auth_db.so\"\n\
         modparam(\"auth_db\", \"db_url\", \"{url}\")\n\
         modparam(\"auth\", \"algorithm\", \"SHA-256,MD5\")\n{extra}\n\
         route {{\n\
           if (!www_authorize(\"{REALM}\", \"subscriber\")) {{ www_challenge(\"{REALM}\", \"0\"); exit; }}\n\
           save(\"location\");\n\
         }}\n"
    )
}

#[test]
fn auth_reads_kamailios_subscriber_table_on_each_server() {
    for (server, _) in SERVERS {
        let db = Scratch::new(server, "auth");
        db.kamailio_tables(&["auth_db", "usrloc"]);
        let mut c = db.conn();
        // kamctl's way: password kept, or HA1s only.
        subscriber::add(&mut c, "subscriber", "bob", REALM, "bobs secret", true).unwrap();
        subscriber::add(&mut c, "subscriber", "alice", REALM, "alices", false).unwrap();
        let rser = Server::start(&auth_config(&db.url_text(), ""), 2, &[]);
        let p = Peer::new();
        assert_eq!(
            register_with(&rser, &p, "bob", "bobs secret", Algorithm::Sha256, 1),
            200,
            "{server}: SHA-256 from the password"
        );
        assert_eq!(
            register_with(&rser, &p, "bob", "bobs secret", Algorithm::Md5, 3),
            200,
            "{server}: MD5"
        );
        assert_eq!(
            register_with(&rser, &p, "alice", "alices", Algorithm::Md5, 5),
            200,
            "{server}: MD5 from the stored ha1"
        );
        // Kamailio 5's table has no SHA-256 column: without the password
        // alice cannot answer SHA-256.
        assert_eq!(
            register_with(&rser, &p, "alice", "alices", Algorithm::Sha256, 7),
            401,
            "{server}"
        );
        assert_eq!(
            register_with(&rser, &p, "bob", "guess", Algorithm::Md5, 9),
            401,
            "{server}: a wrong password"
        );
        assert_eq!(
            register_with(&rser, &p, "carol", "x", Algorithm::Md5, 11),
            401,
            "{server}: no such user"
        );
    }
}

fn usrloc_config(url: &str, mode: u32) -> String {
    format!(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"usrloc.so\"\n\
         loadmodule \"registrar.so\"\n\
         modparam(\"usrloc\", \"db_url\", \"{url}\")\n\
         modparam(\"usrloc\", \"db_mode\", {mode})\n\
         modparam(\"usrloc\", \"timer_interval\", 1)\n\
         route {{\n\
           if (method == \"REGISTER\") {{ save(\"location\"); exit; }}\n\
           if (!lookup(\"location\")) {{ sl_send_reply(\"404\", \"Not Found\"); exit; }}\n\
           t_relay();\n\
         }}\n"
    )
}

#[test]
fn usrloc_writes_kamailios_location_table_and_a_restart_reads_it() {
    for (server, _) in SERVERS {
        for mode in [1, 2, 3] {
            let db = Scratch::new(server, &format!("ul{mode}"));
            db.kamailio_tables(&["usrloc"]);
            let cfg = usrloc_config(&db.url_text(), mode);
            let (phone, caller) = (Peer::new(), Peer::new());
            let mut c = db.conn();
            let by_user = "SELECT contact, expires, callid, cseq FROM location WHERE username = ?";
            let bob = [Value::Text("bob".into())];
            {
                let mut rser = Server::start(&cfg, 2, &[]);
                let ok = send(&rser, &phone, &register(&phone, "bob", 1, 600, ""));
                assert_eq!(status(&ok), Some(200), "{ok}");
                let rows = rows_within(&mut c, by_user, &bob, 1);
                assert_eq!(rows.len(), 1, "{server} db_mode {mode}: written");
                let contact = format!("sip:bob@{}", phone.addr);
                assert_eq!(rows[0][0].as_str(), Some(contact.as_str()));
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64;
                let expires = rows[0][1].as_time().expect("a DATETIME");
                assert!((now + 590..now + 610).contains(&expires), "{expires} {now}");
                assert_eq!(rows[0][3].as_int(), Some(1));
                rser.terminate(SEC);
            }
            let rser = Server::start(&cfg, 2, &[]);
            let call = format!("dbm-restart-{server}-{mode}");
            caller.send(
                rser.addr,
                &caller.request("INVITE", &format!("sip:bob@{REALM}"), &call, ""),
            );
            let (inv, _) = expect(&phone, "INVITE", SEC).expect("the binding survived the restart");
            phone.send(rser.addr, &answer(&inv, 486, "Busy Here", "b"));
            // Unregistered: the row goes.
            let gone = send(&rser, &phone, &register(&phone, "bob", 2, 0, ""));
            assert_eq!(status(&gone), Some(200), "{gone}");
            assert!(
                rows_within(&mut c, by_user, &bob, 0).is_empty(),
                "{server} db_mode {mode}: deleted"
            );
        }
    }
}

/// db_mode 3: two nodes on one table, each seeing what the other saved;
/// the table gone, a lookup gets 500 at once.
#[test]
fn two_nodes_share_one_location_table_in_db_mode_3() {
    for (server, port) in SERVERS {
        let db = Scratch::new(server, "ul3");
        db.kamailio_tables(&["usrloc"]);
        let gate = Gate::new(SocketAddr::from(([127, 0, 0, 1], port)));
        let a = Server::start(&usrloc_config(&db.url_text(), 3), 2, &[]);
        let b = Server::start(&usrloc_config(&db.url_via(Some(gate.addr)), 3), 2, &[]);
        let (phone, caller) = (Peer::new(), Peer::new());
        let ok = send(&a, &phone, &register(&phone, "bob", 1, 600, ""));
        assert_eq!(status(&ok), Some(200), "{server}: {ok}");
        caller.send(
            b.addr,
            &caller.request(
                "INVITE",
                &format!("sip:bob@{REALM}"),
                &format!("ul3-{server}"),
                "",
            ),
        );
        let (inv, _) = expect(&phone, "INVITE", SEC).expect("node b found node a's binding");
        phone.send(b.addr, &answer(&inv, 486, "Busy Here", "b"));
        // A refresh through b lists the one binding.
        let again = send(&b, &phone, &register(&phone, "bob", 2, 600, ""));
        assert_eq!(headers(&again, "Contact").len(), 1, "{server}: {again}");
        gate.close();
        let t0 = Instant::now();
        caller.send(
            b.addr,
            &caller.request(
                "INVITE",
                &format!("sip:bob@{REALM}"),
                &format!("ul3b-{server}"),
                "",
            ),
        );
        let (r, _) = expect(&caller, "SIP/2.0 500", SEC).expect("500 while the table is gone");
        assert!(r.contains("Retry-After: 5"), "{r}");
        assert!(t0.elapsed() < SEC, "{server}: {:?}", t0.elapsed());
    }
}

#[test]
fn acc_records_reach_each_server() {
    for (server, _) in SERVERS {
        let db = Scratch::new(server, "acc");
        db.kamailio_tables(&["acc"]);
        let (caller, callee) = (Peer::new(), Peer::new());
        let cfg = format!(
            "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"acc.so\"\n\
             modparam(\"acc\", \"db_flag\", 1)\n\
             modparam(\"acc\", \"db_url\", \"{}\")\n\
             route {{ setflag(1); rewritehostport(\"{}\"); t_relay(); }}\n",
            db.url_text(),
            callee.addr
        );
        let rser = Server::start(&cfg, 2, &[]);
        let m = caller.request(
            "MESSAGE",
            "sip:bob@example.com",
            &format!("acc-{server}"),
            "",
        );
        caller.send(rser.addr, &m);
        let (got, _) = expect(&callee, "MESSAGE", SEC).expect("relayed");
        callee.send(rser.addr, &answer(&got, 200, "OK", "bob"));
        expect(&caller, "SIP/2.0 200", SEC).expect("answered");
        let mut c = db.conn();
        let rows = rows_within(
            &mut c,
            "SELECT method, sip_code, sip_reason, callid, time FROM acc",
            &[],
            1,
        );
        assert_eq!(rows.len(), 1, "{server}");
        assert_eq!(rows[0][0].as_str(), Some("MESSAGE"));
        assert_eq!(rows[0][1].as_str(), Some("200"));
        assert_eq!(rows[0][3].as_str(), Some(format!("acc-{server}").as_str()));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let t = rows[0][4].as_time().expect("a DATETIME");
        assert!((now - 10..=now + 1).contains(&t), "{server}: {t} {now}");
    }
}

#[test]
fn the_dispatcher_list_comes_from_each_server() {
    for (server, _) in SERVERS {
        let db = Scratch::new(server, "ds");
        db.kamailio_tables(&["dispatcher"]);
        let (caller, uas) = (Peer::new(), Peer::new());
        db.conn()
            .execute(
                "INSERT INTO dispatcher (setid, destination, flags, priority, attrs, description) \
                 VALUES (?, ?, ?, ?, ?, ?)",
                &[
                    Value::Int(1),
                    Value::Text(format!("sip:{}", uas.addr)),
                    Value::Int(0),
                    Value::Int(0),
                    Value::Text(String::new()),
                    Value::Text("the one".into()),
                ],
            )
            .unwrap();
        let cfg = format!(
            "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"dispatcher.so\"\n\
             modparam(\"dispatcher\", \"db_url\", \"{}\")\n\
             route {{ if (!ds_select_dst(\"1\", \"0\")) {{ sl_send_reply(\"503\", \"None\"); exit; }} t_relay(); }}\n",
            db.url_text()
        );
        let rser = Server::start(&cfg, 2, &[]);
        caller.send(
            rser.addr,
            &caller.request("MESSAGE", "sip:x@example.com", &format!("ds-{server}"), ""),
        );
        expect(&uas, "MESSAGE", SEC).expect("sent to the table's destination");
    }
}

/// Starts rser on `cfg` expecting it to refuse; its error output.
fn refused(cfg: &str, tag: &str) -> String {
    let dir = common::temp_dir(tag);
    let path = dir.join("bad.cfg");
    std::fs::write(&path, cfg).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rser"))
        .args([
            "-f",
            path.to_str().unwrap(),
            "-l",
            "udp:127.0.0.1:0",
            "-m",
            "8",
        ])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "{tag}: started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_wrong_password_a_missing_table_and_another_version_stop_the_start() {
    for (server, _) in SERVERS {
        let db = Scratch::new(server, "refuse");
        let wrong = db
            .url_text()
            .replace("rser:rser@", "rser:not-the-password@");
        let e = refused(&auth_config(&wrong, ""), &format!("{server}-pw"));
        assert!(!e.contains("not-the-password"), "{e}");
        assert!(e.contains(":***@"), "{server}: {e}");
        // No tables at all.
        let e = refused(
            &auth_config(&db.url_text(), ""),
            &format!("{server}-missing"),
        );
        assert!(e.contains("table version: cannot be read"), "{server}: {e}");
        db.kamailio_tables(&["auth_db"]);
        let e = refused(
            &auth_config(&db.url_text(), "").replace("\"subscriber\")", "\"users\")"),
            &format!("{server}-missing2"),
        );
        assert!(
            e.contains(
                "table users: missing (no row in version; `rserctl db init URL` creates it)"
            ),
            "{server}: {e}"
        );
        db.conn()
            .execute(
                "UPDATE version SET table_version = ? WHERE table_name = ?",
                &[Value::Int(6), Value::Text("subscriber".into())],
            )
            .unwrap();
        let e = refused(
            &auth_config(&db.url_text(), ""),
            &format!("{server}-version"),
        );
        assert!(
            e.contains("table subscriber: version 6, rser reads Kamailio's version 7"),
            "{server}: {e}"
        );
    }
}

/// The database gone under REGISTER traffic: users whose credentials are
/// cached still register (their bindings queued, db_mode 1), others get
/// 500 at once (never a stalled worker); once it is back, within a
/// second every user registers and every queued binding is in the table.
#[test]
fn the_database_gone_and_back_under_register_traffic() {
    for (server, port) in SERVERS {
        let db = Scratch::new(server, "gone");
        db.kamailio_tables(&["auth_db", "usrloc"]);
        let mut c = db.conn();
        let users: Vec<String> = (0..8).map(|i| format!("u{i}")).collect();
        for u in &users {
            subscriber::add(&mut c, "subscriber", u, REALM, "pw", true).unwrap();
        }
        let gate = Gate::new(SocketAddr::from(([127, 0, 0, 1], port)));
        let url = db.url_via(Some(gate.addr));
        let cfg = auth_config(
            &url,
            &format!(
                "modparam(\"auth_db\", \"auth_cache_expires\", 60)\n\
                 modparam(\"usrloc\", \"db_url\", \"{url}\")\nmodparam(\"usrloc\", \"db_mode\", 1)"
            ),
        );
        let rser = Server::start(&cfg, 2, &[]);
        let phones: Vec<Peer> = users.iter().map(|_| Peer::new()).collect();
        // The first half authenticated once: cached.
        for (u, p) in users.iter().zip(&phones).take(4) {
            assert_eq!(register_with(&rser, p, u, "pw", Algorithm::Md5, 1), 200);
        }
        gate.close();
        let t0 = Instant::now();
        for (i, (u, p)) in users.iter().zip(&phones).enumerate() {
            let code = register_with(&rser, p, u, "pw", Algorithm::Md5, 3);
            let want = if i < 4 { 200 } else { 500 };
            assert_eq!(code, want, "{server}: {u} while the database is gone");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(4),
            "{server}: answered at once: {:?}",
            t0.elapsed()
        );
        let first = rser
            .wait_log("auth: subscriber table subscriber", SEC)
            .expect("logged");
        assert!(!first.contains(":rser@"), "no password: {first}");
        gate.reopen();
        let back = Instant::now();
        std::thread::sleep(Duration::from_millis(600));
        for (u, p) in users.iter().zip(&phones).skip(4) {
            let code = register_with(&rser, p, u, "pw", Algorithm::Md5, 5);
            let log: Vec<String> = rser.log.try_iter().collect();
            assert_eq!(
                code,
                200,
                "{server}: {u} once the database is back ({:?}): {log:#?}",
                back.elapsed()
            );
        }
        let rows = rows_within(&mut c, "SELECT username FROM location", &[], 8);
        assert_eq!(rows.len(), 8, "{server}: every binding written, none lost");
    }
}
