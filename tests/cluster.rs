//! Several rser nodes sharing one location table through Redis (issue
//! 22): a binding saved on one node is served by every other, an
//! unregistration reaches them all, racing REGISTERs through two nodes
//! keep every binding, a killed node restarts with the whole table, and
//! Redis gone makes REGISTERs 503 while lookups go on from each node's
//! table. Real redis-servers (one, and a three-master cluster) on
//! ephemeral ports.

mod common;

use std::time::{Duration, Instant};

use common::redis::{Cluster, Redis};
use common::{Peer, Server, answer, expect, headers, status};

const SEC: Duration = Duration::from_secs(3);

fn config(url: &str) -> String {
    format!(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"usrloc.so\"\n\
         loadmodule \"registrar.so\"\n\
         modparam(\"usrloc\", \"db_url\", \"{url}\")\nmodparam(\"usrloc\", \"db_mode\", 3)\n\
         route {{\n\
           if (method == \"REGISTER\") {{ save(\"location\"); exit; }}\n\
           if (!lookup(\"location\")) {{ sl_send_reply(\"404\", \"Not Found\"); exit; }}\n\
           t_relay();\n\
         }}\n"
    )
}

fn register(p: &Peer, user: &str, contact: &str, cseq: u32, expires: u32) -> String {
    format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-cl-{user}-{cseq}-{contact_tag};rport\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:{user}@example.com>\r\n\
         From: <sip:{user}@example.com>;tag=c{cseq}\r\n\
         Call-ID: cl-{user}-{contact_tag}@{me}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <{contact}>;expires={expires}\r\n\
         Content-Length: 0\r\n\r\n",
        me = p.addr,
        contact_tag = contact.len() + contact.bytes().map(usize::from).sum::<usize>(),
    )
}

fn send(node: &Server, p: &Peer, msg: &str) -> String {
    p.send(node.addr, msg);
    expect(p, "SIP/2.0 ", SEC).expect("a reply").0
}

/// An INVITE for `user` through `node` until it reaches `phone` (or
/// `within` passes); how long it took.
fn reaches(
    node: &Server,
    caller: &Peer,
    phone: &Peer,
    user: &str,
    within: Duration,
) -> Option<Duration> {
    let t0 = Instant::now();
    let mut n = 0;
    while t0.elapsed() < within {
        n += 1;
        let call = format!("cl-call-{user}-{n}-{}", node.addr.port());
        caller.send(
            node.addr,
            &caller.request("INVITE", &format!("sip:{user}@example.com"), &call, ""),
        );
        if let Some((inv, _)) = expect(phone, "INVITE", Duration::from_millis(100)) {
            phone.send(node.addr, &answer(&inv, 486, "Busy Here", "b"));
            return Some(t0.elapsed());
        }
        let _ = expect(caller, "SIP/2.0 404", Duration::from_millis(20));
    }
    None
}

fn three_nodes_share_one_table(url: &str, tag: &str) {
    let dir = common::temp_dir(&format!("cluster-ctl-{tag}"));
    let sock = dir.join("b.sock");
    let sock_s = sock.to_str().unwrap().to_string();
    let nodes: Vec<Server> = (0..3)
        .map(|i| match i {
            1 => Server::start(&config(url), 2, &["-s", &sock_s]),
            _ => Server::start(&config(url), 2, &[]),
        })
        .collect();
    let (phone, caller) = (Peer::new(), Peer::new());
    let contact = format!("sip:alice@{}", phone.addr);
    let ok = send(
        &nodes[0],
        &phone,
        &register(&phone, "alice", &contact, 1, 600),
    );
    assert_eq!(status(&ok), Some(200), "{ok}");
    for n in &nodes[1..] {
        let took = reaches(n, &caller, &phone, "alice", SEC).expect("the binding reached the node");
        assert!(took < Duration::from_secs(1), "{took:?}");
    }
    // B applied A's entry, and says how late it was; its reader's checks
    // (once a second) found it current.
    std::thread::sleep(Duration::from_millis(1200));
    let stats =
        common::rpc(&sock, "stats.get", serde_json::json!(["usrloc"]))["result"]["usrloc"].clone();
    assert!(
        stats["usrloc_feed_remote"].as_u64().unwrap_or(0) >= 1,
        "{stats}"
    );
    assert!(stats["usrloc_feed_lag_ms"].is_u64(), "{stats}");
    assert_eq!(stats["usrloc_feed_reloaded"], 0, "not behind: {stats}");
    // Unregistered on C: A refuses at once.
    let gone = send(
        &nodes[2],
        &phone,
        &register(&phone, "alice", &contact, 2, 0),
    );
    assert_eq!(status(&gone), Some(200), "{gone}");
    let t0 = Instant::now();
    loop {
        let call = format!("cl-gone-{}", t0.elapsed().as_micros());
        caller.send(
            nodes[0].addr,
            &caller.request("INVITE", "sip:alice@example.com", &call, ""),
        );
        if expect(&caller, "SIP/2.0 404", Duration::from_millis(100)).is_some() {
            break;
        }
        if let Some((inv, _)) = expect(&phone, "INVITE", Duration::from_millis(10)) {
            phone.send(nodes[0].addr, &answer(&inv, 486, "Busy Here", "b"));
        }
        assert!(t0.elapsed() < Duration::from_secs(1), "still served on A");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn three_nodes_on_one_redis() {
    let r = Redis::start();
    three_nodes_share_one_table(&r.url(), "one");
}

#[test]
fn three_nodes_on_a_redis_cluster() {
    let c = Cluster::start();
    three_nodes_share_one_table(&c.url(), "cluster");
}

/// REGISTERs for one AOR racing through two nodes, each adding its own
/// contact: every binding ends in the table, as §10.3 says.
#[test]
fn racing_registers_through_two_nodes_keep_every_binding() {
    let r = Redis::start();
    let a = Server::start(&config(&r.url()), 2, &[]);
    let b = Server::start(&config(&r.url()), 2, &[]);
    let addrs = [a.addr, b.addr];
    let threads: Vec<_> = (0..2)
        .map(|n| {
            let to = addrs[n];
            std::thread::spawn(move || {
                let p = Peer::new();
                for i in 0..15 {
                    let contact = format!("sip:bob-{n}-{i}@{}", p.addr);
                    p.send(to, &register(&p, "bob", &contact, 1, 600));
                    let (r, _) = expect(&p, "SIP/2.0 ", SEC).expect("a reply");
                    assert_eq!(status(&r), Some(200), "{r}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // A REGISTER without Contact lists the bindings (§10.2.3).
    let p = Peer::new();
    let query = register(&p, "bob", "x", 1, 600).replace("Contact: <x>;expires=600\r\n", "");
    let listed = send(&a, &p, &query);
    assert_eq!(headers(&listed, "Contact").len(), 30, "{listed}");
}

/// A node killed (SIGKILL) and started again serves every binding before
/// it answers; Redis gone: REGISTER 503, lookups still served.
#[test]
fn a_killed_node_restarts_whole_and_redis_gone_keeps_lookups() {
    let r = Redis::start();
    let cfg = config(&r.url());
    let a = Server::start(&cfg, 2, &[]);
    let (phone, caller) = (Peer::new(), Peer::new());
    for i in 0..50 {
        let contact = format!("sip:u{i}@{}", phone.addr);
        let ok = send(
            &a,
            &phone,
            &register(&phone, &format!("u{i}"), &contact, 1, 600),
        );
        assert_eq!(status(&ok), Some(200));
    }
    unsafe { libc::kill(a.pid(), libc::SIGKILL) };
    drop(a);
    let b = Server::start(&cfg, 2, &[]);
    for i in [0, 17, 49] {
        let user = format!("u{i}");
        assert!(
            reaches(&b, &caller, &phone, &user, Duration::from_millis(300)).is_some(),
            "{user}"
        );
    }
    drop(r); // Redis gone
    let p = Peer::new();
    let refused = send(
        &b,
        &p,
        &register(&p, "late", &format!("sip:late@{}", p.addr), 1, 600),
    );
    assert_eq!(status(&refused), Some(503), "{refused}");
    assert!(refused.contains("Retry-After:"), "{refused}");
    assert!(reaches(&b, &caller, &phone, "u3", Duration::from_millis(300)).is_some());
}

/// A node starting on a Redis holding 50,000 bindings loads them all
/// before it serves (its log says how long it took: bench/RESULTS.md).
#[test]
fn a_starting_node_loads_50000_bindings() {
    use rser::db::redis::{RedisConn, RedisUrl};
    use rser::modules::usrloc::redis::record::Binding;
    use rser::modules::usrloc::redis::store;
    let r = Redis::start();
    let now = rser::modules::usrloc::unix_now();
    let phone = Peer::new();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (url, at) = (r.url(), phone.addr);
            std::thread::spawn(move || {
                let mut c = RedisConn::open(&RedisUrl::parse(&url).unwrap(), SEC).unwrap();
                for i in (w..50_000).step_by(4) {
                    let b = Binding {
                        contact: format!("sip:u{i}@{at}").into_bytes(),
                        call_id: format!("load-{i}").into_bytes(),
                        meta: rser::modules::usrloc::Meta {
                            cseq: 1,
                            expires: now + 3600,
                            updated: now,
                            q: 1000,
                            ..Default::default()
                        },
                    };
                    let aor = format!("u{i}");
                    store::apply(
                        &mut c,
                        7,
                        "location",
                        aor.as_bytes(),
                        0,
                        &[],
                        &[&b],
                        std::slice::from_ref(&b),
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    // Server::start returns once the node serves: after the load.
    let node = Server::start(&config(&r.url()), 2, &["-m", "256"]);
    let caller = Peer::new();
    for i in [0, 12_345, 49_999] {
        let user = format!("u{i}");
        assert!(
            reaches(&node, &caller, &phone, &user, Duration::from_millis(300)).is_some(),
            "{user}"
        );
    }
}

/// Redis restarted without its data: the nodes find the table gone and
/// write theirs back; a node started afterwards loads every binding, and
/// REGISTERs go on.
#[test]
fn a_redis_that_lost_its_data_is_written_back_by_the_nodes() {
    let mut r = Redis::start();
    let cfg = config(&r.url());
    let a = Server::start(&cfg, 2, &[]);
    let (phone, caller) = (Peer::new(), Peer::new());
    for i in 0..20 {
        let contact = format!("sip:w{i}@{}", phone.addr);
        let ok = send(
            &a,
            &phone,
            &register(&phone, &format!("w{i}"), &contact, 1, 600),
        );
        assert_eq!(status(&ok), Some(200));
    }
    r.restart_empty();
    // Within a few of the readers' checks the table is back.
    let deadline = Instant::now() + Duration::from_secs(5);
    let fresh = loop {
        let c = Server::start(&cfg, 2, &[]);
        if reaches(&c, &caller, &phone, "w7", Duration::from_millis(200)).is_some() {
            break c;
        }
        assert!(Instant::now() < deadline, "not written back");
        drop(c);
        std::thread::sleep(Duration::from_millis(300));
    };
    for i in [0, 19] {
        let user = format!("w{i}");
        assert!(
            reaches(&fresh, &caller, &phone, &user, Duration::from_millis(300)).is_some(),
            "{user}"
        );
    }
    // Saves go on: a refresh through A, seen by the fresh node.
    let contact = format!("sip:w3-new@{}", phone.addr);
    let ok = send(&a, &phone, &register(&phone, "w3", &contact, 2, 600));
    assert_eq!(status(&ok), Some(200), "{ok}");
    assert_eq!(headers(&ok, "Contact").len(), 2, "{ok}");
}

/// Nodes sharing auth's `secret` and `nonce_count_redis`: a nonce one
/// issued is good on the other, and a count used on one is refused on
/// the other.
#[test]
fn nonces_and_their_counts_are_shared_between_nodes() {
    use rser::modules::auth::digest::{self, Algorithm, Challenge};
    let r = Redis::start();
    let dir = common::temp_dir("cluster-auth");
    let db = format!("sqlite://{}", dir.join("auth.db").display());
    let mut conn = rser::modules::auth::subscriber::open(&db, "subscriber").unwrap();
    rser::modules::auth::subscriber::add(
        &mut conn,
        "subscriber",
        "bob",
        "example.com",
        "pw",
        false,
    )
    .unwrap();
    drop(conn);
    let cfg = format!(
        "loadmodule \"sl.so\"\nloadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\n\
         loadmodule \"auth.so\"\nloadmodule \"auth_db.so\"\n\
         modparam(\"auth_db\", \"db_url\", \"{db}\")\n\
         modparam(\"auth\", \"secret\", \"shared by the nodes\")\n\
         modparam(\"auth\", \"nonce_count_redis\", \"{}\")\n\
         route {{\n\
           if (!www_authorize(\"example.com\", \"subscriber\")) {{ www_challenge(\"example.com\", \"1\"); exit; }}\n\
           save(\"location\");\n\
         }}\n",
        r.url()
    );
    let (a, b) = (Server::start(&cfg, 2, &[]), Server::start(&cfg, 2, &[]));
    let p = Peer::new();
    let contact = format!("sip:bob@{}", p.addr);
    let challenge = send(&a, &p, &register(&p, "bob", &contact, 1, 600));
    assert_eq!(status(&challenge), Some(401), "{challenge}");
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let auth = |nc: u32| {
        let (uri, nc) = ("sip:example.com", format!("{nc:08x}"));
        let ha1 = digest::ha1(Algorithm::Md5, b"bob", b"example.com", b"pw");
        let resp = digest::response(
            Algorithm::Md5,
            ha1.as_bytes(),
            &Challenge {
                nonce: nonce.as_bytes(),
                qop_auth: Some((nc.as_bytes(), b"c0ffee")),
                method: b"REGISTER",
                uri: uri.as_bytes(),
            },
        );
        format!(
            "Authorization: Digest username=\"bob\", realm=\"example.com\", nonce=\"{nonce}\", \
             uri=\"{uri}\", response=\"{resp}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"c0ffee\"\r\n"
        )
    };
    let with = |node: &Server, cseq: u32, nc: u32| {
        let m = register(&p, "bob", &contact, cseq, 600).replace(
            "Content-Length: 0\r\n",
            &format!("{}Content-Length: 0\r\n", auth(nc)),
        );
        status(&send(node, &p, &m))
    };
    assert_eq!(with(&b, 2, 1), Some(200), "A's nonce accepted on B");
    assert_eq!(with(&a, 3, 1), Some(401), "the count B saw refused on A");
    assert_eq!(with(&a, 4, 2), Some(200), "the next count accepted");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A node that fell behind the feeds' trimming (its processes stopped
/// while the other saved, the feeds trimmed meanwhile) loads a snapshot
/// again: it routes the new bindings and no longer the removed one.
#[test]
fn a_node_behind_the_trimmed_feeds_loads_again() {
    use rser::db::redis::{RedisConn, RedisUrl};
    use rser::modules::usrloc::redis::keys::{BUCKETS, feed_key};
    let r = Redis::start();
    let cfg = config(&r.url());
    let (a, b) = (Server::start(&cfg, 2, &[]), Server::start(&cfg, 2, &[]));
    let (phone, caller) = (Peer::new(), Peer::new());
    let gone = format!("sip:gone@{}", phone.addr);
    assert_eq!(
        status(&send(&a, &phone, &register(&phone, "gone", &gone, 1, 600))),
        Some(200)
    );
    assert!(reaches(&b, &caller, &phone, "gone", SEC).is_some());
    let stopped = b.workers();
    for p in &stopped {
        unsafe { libc::kill(*p, libc::SIGSTOP) };
    }
    assert_eq!(
        status(&send(&a, &phone, &register(&phone, "gone", &gone, 2, 0))),
        Some(200)
    );
    for i in 0..20 {
        let c = format!("sip:n{i}@{}", phone.addr);
        assert_eq!(
            status(&send(
                &a,
                &phone,
                &register(&phone, &format!("n{i}"), &c, 1, 600)
            )),
            Some(200)
        );
    }
    let mut c = RedisConn::open(&RedisUrl::parse(&r.url()).unwrap(), SEC).unwrap();
    for bucket in 0..BUCKETS {
        let _: i64 = c
            .run(
                redis::cmd("XTRIM")
                    .arg(feed_key(bucket))
                    .arg("MAXLEN")
                    .arg(1),
            )
            .unwrap();
    }
    for p in &stopped {
        unsafe { libc::kill(*p, libc::SIGCONT) };
    }
    for i in [0, 7, 19] {
        let user = format!("n{i}");
        assert!(reaches(&b, &caller, &phone, &user, SEC).is_some(), "{user}");
    }
    let t0 = Instant::now();
    loop {
        let call = format!("behind-gone-{}", t0.elapsed().as_micros());
        caller.send(
            b.addr,
            &caller.request("INVITE", "sip:gone@example.com", &call, ""),
        );
        if expect(&caller, "SIP/2.0 404", Duration::from_millis(100)).is_some() {
            break;
        }
        if let Some((inv, _)) = expect(&phone, "INVITE", Duration::from_millis(10)) {
            phone.send(b.addr, &answer(&inv, 486, "Busy Here", "b"));
        }
        assert!(t0.elapsed() < SEC, "the removed binding still served by B");
    }
}

/// A node that routes by Route first, record-routes INVITEs and says
/// why a request failed (a lookup's 480, a flow's 430).
fn routing_config(url: &str) -> String {
    format!(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"rr.so\"\n\
         loadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\n\
         modparam(\"usrloc\", \"db_url\", \"{url}\")\nmodparam(\"usrloc\", \"db_mode\", 3)\n\
         route {{\n\
           if (loose_route()) {{ if (!t_relay()) {{ sl_reply_error(); }}; exit; }}\n\
           if (method == \"REGISTER\") {{ save(\"location\"); exit; }}\n\
           if (!lookup(\"location\")) {{ sl_reply_error(); exit; }}\n\
           if (method == \"INVITE\") {{ record_route(); }}\n\
           if (!t_relay()) {{ sl_reply_error(); }}\n\
         }}\n"
    )
}

/// A phone registered over TCP on node A (its Contact a port it does not
/// listen on, as behind a NAT) is called through node B: B sends the
/// INVITE to A with a Route naming the phone's connection (RFC 3327's
/// Path as Kamailio's path module writes it), A sends it down that
/// connection and stays in the dialog; ACK and BYE follow the route set.
/// Once the connection is gone, A refuses with 430 Flow Failed (RFC 5626
/// §5.3) rather than opening a new one.
#[test]
fn a_phone_connected_to_one_node_is_called_through_it_from_another() {
    let r = Redis::start();
    let a = Server::start_tcp(&routing_config(&r.url()), 2, &[]);
    let b = Server::start(&routing_config(&r.url()), 2, &[]);
    let mut phone = common::stream::Stream::connect(a.tcp.expect("A's TCP address"));
    let reg = phone
        .request(
            "REGISTER",
            "sip:example.com",
            "flow-reg",
            "Contact: <sip:bob@127.0.0.1:9;transport=tcp>\r\nExpires: 600\r\n",
        )
        .replace("To: <sip:example.com>", "To: <sip:bob@example.com>");
    phone.send(reg.as_bytes());
    let ok = phone.expect("SIP/2.0 ").expect("a reply to the REGISTER");
    assert_eq!(status(&ok), Some(200), "{ok}");
    std::thread::sleep(Duration::from_millis(300));
    let caller = Peer::new();
    let contact = format!("Contact: <sip:alice@{}>\r\n", caller.addr);
    caller.send(
        b.addr,
        &caller.request("INVITE", "sip:bob@example.com", "flow-call", &contact),
    );
    let inv = phone
        .expect("INVITE ")
        .expect("B's INVITE on the phone's connection, through A");
    assert!(
        inv.starts_with("INVITE sip:bob@127.0.0.1:9;transport=tcp "),
        "{inv}"
    );
    assert!(headers(&inv, "Route").is_empty(), "A took its Route: {inv}");
    let rr = headers(&inv, "Record-Route");
    let a_tcp = a.tcp.unwrap();
    assert_eq!(
        rr,
        [
            format!("<sip:{a_tcp};transport=tcp;lr;r2=on>").as_str(),
            format!("<sip:{};lr;r2=on>", a.addr).as_str(),
            format!("<sip:{};lr>", b.addr).as_str(),
        ],
        "A and B in the dialog: {inv}"
    );
    // Answered with a Contact at the connection itself, so the dialog's
    // requests reach it as in one node.
    let answered = common::answer(&inv, 200, "OK", "bob").replace(
        "Content-Length: 0\r\n",
        &format!(
            "Contact: <sip:bob@{};transport=tcp>\r\nContent-Length: 0\r\n",
            phone.local()
        ),
    );
    phone.send(answered.as_bytes());
    let (ok, _) = expect(&caller, "SIP/2.0 200", SEC).expect("the 200 through A and B");
    let rr: Vec<String> = headers(&ok, "Record-Route")
        .iter()
        .rev()
        .map(|r| format!("Route: {r}\r\n"))
        .collect();
    let target = phone.local();
    let in_dialog = |method: &str, cseq: u32| {
        format!(
            "{method} sip:bob@{target};transport=tcp SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bK-flow-{method}\r\n{routes}Max-Forwards: 70\r\n\
             To: <sip:bob@example.com>;tag=bob\r\nFrom: <sip:alice@{me}>;tag=f-flow-call\r\n\
             Call-ID: flow-call\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            me = caller.addr,
            routes = rr.concat()
        )
    };
    caller.send(b.addr, &in_dialog("ACK", 1));
    let ack = phone.expect("ACK ").expect("the ACK down the connection");
    assert!(headers(&ack, "Route").is_empty(), "{ack}");
    caller.send(b.addr, &in_dialog("BYE", 2));
    let bye = phone.expect("BYE ").expect("the BYE down the connection");
    phone.send(common::answer(&bye, 200, "OK", "bob").as_bytes());
    assert!(
        expect(&caller, "SIP/2.0 200", SEC).is_some(),
        "the BYE's 200"
    );
    // The connection gone: 430 from A through B, no new connection.
    drop(phone);
    std::thread::sleep(Duration::from_millis(300));
    caller.send(
        b.addr,
        &caller.request("INVITE", "sip:bob@example.com", "flow-gone", &contact),
    );
    let (gone, _) = expect(&caller, "SIP/2.0 4", SEC).expect("a refusal");
    assert_eq!(status(&gone), Some(430), "{gone}");
}

/// CANCEL follows an INVITE that went through the phone's node: B's
/// CANCEL carries the same Route (built from the branch's own text), A
/// cancels its branch down the connection, the caller gets the 487.
#[test]
fn a_call_through_the_phones_node_is_cancelled_down_its_connection() {
    let r = Redis::start();
    let a = Server::start_tcp(&routing_config(&r.url()), 2, &[]);
    let b = Server::start(&routing_config(&r.url()), 2, &[]);
    let mut phone = common::stream::Stream::connect(a.tcp.expect("A's TCP address"));
    let reg = phone
        .request(
            "REGISTER",
            "sip:example.com",
            "cancel-reg",
            "Contact: <sip:bob@127.0.0.1:9;transport=tcp>\r\nExpires: 600\r\n",
        )
        .replace("To: <sip:example.com>", "To: <sip:bob@example.com>");
    phone.send(reg.as_bytes());
    let ok = phone.expect("SIP/2.0 ").expect("a reply to the REGISTER");
    assert_eq!(status(&ok), Some(200), "{ok}");
    std::thread::sleep(Duration::from_millis(300));
    let caller = Peer::new();
    let invite = caller.request("INVITE", "sip:bob@example.com", "cancel-call", "");
    caller.send(b.addr, &invite);
    let inv = phone.expect("INVITE ").expect("the INVITE through A");
    phone.send(common::answer(&inv, 180, "Ringing", "bob").as_bytes());
    expect(&caller, "SIP/2.0 180", SEC).expect("the 180 through A and B");
    let cancel = invite
        .replacen("INVITE sip", "CANCEL sip", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    caller.send(b.addr, &cancel);
    expect(&caller, "SIP/2.0 200", SEC).expect("B answers the CANCEL");
    let c = phone
        .expect("CANCEL ")
        .expect("the CANCEL down the connection");
    assert!(
        c.starts_with("CANCEL sip:bob@127.0.0.1:9;transport=tcp "),
        "{c}"
    );
    phone.send(common::answer(&c, 200, "OK", "bob").as_bytes());
    phone.send(common::answer(&inv, 487, "Request Terminated", "bob").as_bytes());
    expect(&caller, "SIP/2.0 487", SEC).expect("the 487 through A and B");
    assert!(phone.expect("ACK ").is_some(), "A ACKs the 487");
}
