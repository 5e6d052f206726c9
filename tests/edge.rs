//! Edge protection (issue 23) over the wire: pike refusing a flood from
//! one source address while another keeps being answered, with the stock
//! configs' htable ban idiom expiring on time, and `pike.top`.

mod common;

use std::time::{Duration, Instant};

use common::{Peer, Server, status};

/// Kamailio's stock anti-flood idiom (WITH_ANTIFLOOD), with short times.
const ANTIFLOOD: &str = r#"
loadmodule "sl.so"
loadmodule "pike.so"
loadmodule "htable.so"
loadmodule "xlog.so"
modparam("pike", "sampling_time_unit", 2)
modparam("pike", "reqs_density_per_unit", 16)
modparam("pike", "remove_latency", 4)
modparam("htable", "htable", "ipban=>size=8;autoexpire=3;")
route {
    if ($sht(ipban=>$si) != $null) { exit; }
    if (!pike_check_req()) {
        xlog("L_ALERT", "ALERT: pike blocking $rm from $fu (IP:$si:$sp)\n");
        $sht(ipban=>$si) = 1;
        exit;
    }
    sl_send_reply("200", "OK");
}
"#;

/// Replies `p` gets within `within`.
fn replies(p: &Peer, within: Duration) -> usize {
    let t0 = Instant::now();
    let mut n = 0;
    while t0.elapsed() < within {
        if p.recv_within(Duration::from_millis(50)).is_some() {
            n += 1;
        }
    }
    n
}

fn options(p: &Peer, i: usize) -> String {
    p.request(
        "OPTIONS",
        "sip:127.0.0.1",
        &format!("edge-{}-{i}", p.addr),
        "",
    )
}

#[test]
fn a_flood_from_one_address_is_refused_and_the_ban_expires() {
    let dir = common::temp_dir("edge-pike");
    let sock = dir.join("ctl.sock");
    let server = Server::start(ANTIFLOOD, 2, &["-s", sock.to_str().unwrap()]);
    let (flooder, other) = (Peer::on("127.0.0.2"), Peer::on("127.0.0.3"));
    for i in 0..200 {
        flooder.send(server.addr, &options(&flooder, i));
    }
    let got = replies(&flooder, Duration::from_millis(500));
    assert!((16..=17).contains(&got), "answered {got} of 200");
    // Another source is answered meanwhile, every time.
    for i in 0..5 {
        other.send(server.addr, &options(&other, i));
        let (r, _) = other
            .recv_within(Duration::from_secs(2))
            .expect("an answer");
        assert_eq!(status(&r), Some(200));
    }
    let top = common::rpc(&sock, "pike.top", serde_json::json!([]));
    assert_eq!(top["result"][0]["ip_addr"], "127.0.0.2", "{top}");
    assert_eq!(top["result"][0]["status"], "HOT", "{top}");
    let stats = common::rpc(&sock, "stats.get", serde_json::json!(["pike"]));
    let blocked = stats["result"]["pike"]["pike_blocked"]
        .as_u64()
        .unwrap_or(0);
    assert!(blocked >= 1, "{stats}");
    // Banned: still nothing while the ban lasts (pike calm or not).
    std::thread::sleep(Duration::from_millis(1_000));
    flooder.send(server.addr, &options(&flooder, 1_000));
    assert_eq!(replies(&flooder, Duration::from_millis(300)), 0);
    // The ban expires (autoexpire 3 s) and pike has calmed down: answered.
    let t0 = Instant::now();
    loop {
        flooder.send(server.addr, &options(&flooder, 2_000));
        if let Some((r, _)) = flooder.recv_within(Duration::from_millis(200)) {
            assert_eq!(status(&r), Some(200));
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(8), "still banned");
        std::thread::sleep(Duration::from_millis(300));
    }
    let waited = t0.elapsed();
    assert!(waited > Duration::from_millis(1_000), "{waited:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

const PIPE: &str = r#"
loadmodule "sl.so"
loadmodule "pipelimit.so"
modparam("pipelimit", "pipe", "opts:TAILDROP:100")
route {
    if (!pl_check("opts")) { pl_drop("5"); exit; }
    sl_send_reply("200", "OK");
}
"#;

/// pipelimit holds a pipe at its limit per second (100), measured over
/// 10 s of three times that, and answers the rest 503 with Retry-After;
/// `pl.set_pipe` changes it at run time.
#[test]
fn pipelimit_holds_a_pipe_at_its_rate() {
    let dir = common::temp_dir("edge-pl");
    let sock = dir.join("ctl.sock");
    let server = Server::start(PIPE, 2, &["-s", sock.to_str().unwrap()]);
    let p = Peer::on("127.0.0.2");
    let reader = p.sock.try_clone().unwrap();
    let counts = std::thread::spawn(move || {
        let (mut ok, mut busy, mut retry) = (0u32, 0u32, true);
        let mut buf = vec![0u8; 4096];
        reader
            .set_read_timeout(Some(Duration::from_millis(1_500)))
            .unwrap();
        while let Ok(n) = reader.recv(&mut buf) {
            let r = String::from_utf8_lossy(&buf[..n]);
            match status(&r) {
                Some(200) => ok += 1,
                Some(503) => {
                    busy += 1;
                    retry &= r.contains("Retry-After: 5\r\n");
                }
                _ => {}
            }
        }
        (ok, busy, retry)
    });
    // 300 a second for 10 s, paced.
    let t0 = Instant::now();
    for i in 0..3_000u32 {
        let due = Duration::from_micros(u64::from(i) * 3_333);
        if let Some(wait) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
        p.send(server.addr, &options(&p, i as usize));
    }
    let (ok, busy, retry) = counts.join().unwrap();
    assert_eq!(ok + busy, 3_000, "every request answered");
    assert!(
        (950..=1_060).contains(&ok),
        "{ok} let through in 10 s at 100/s"
    );
    assert!(retry, "every 503 says Retry-After: 5");
    let pipes = common::rpc(&sock, "pl.get_pipes", serde_json::json!([]));
    assert_eq!(pipes["result"][0]["name"], "opts", "{pipes}");
    assert_eq!(pipes["result"][0]["dropped"], u64::from(busy), "{pipes}");
    // Closed at run time: 503 at once.
    let set = common::rpc(
        &sock,
        "pl.set_pipe",
        serde_json::json!(["opts", "TAILDROP", 0]),
    );
    assert_eq!(set["result"]["limit"], 0, "{set}");
    p.send(server.addr, &options(&p, 9_999));
    let (r, _) = p.recv_within(Duration::from_secs(2)).expect("a reply");
    assert_eq!(status(&r), Some(503), "{r}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// sanity_check over the wire: each failure answered with its code and
/// reason (420 with Unsupported), a good request routed on; a SIP
/// version other than 2.0 gets 505 from the core before the script.
#[test]
fn sanity_answers_each_failure_with_its_code() {
    let server = Server::start(
        "loadmodule \"sl.so\"\nloadmodule \"sanity.so\"\n\
         modparam(\"sanity\", \"proxy_require\", \"path\")\n\
         route { if (!sanity_check(\"8191\", \"15\")) { exit; } sl_send_reply(\"200\", \"OK\"); }\n",
        1,
        &[],
    );
    let p = Peer::new();
    let good = p.request("OPTIONS", "sip:127.0.0.1", "sanity-ok", "");
    let cases = [
        (good.clone(), 200, "OK"),
        (
            good.replacen("sip:127.0.0.1", "http://127.0.0.1/", 1),
            416,
            "Unsupported URI Scheme in Request URI",
        ),
        // The core refuses it before the script (as sanity would).
        (
            good.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"),
            400,
            "CSeq Method Mismatch",
        ),
        (
            good.replace(
                "Max-Forwards",
                "Proxy-Require: path, 100rel\r\nMax-Forwards",
            ),
            420,
            "Bad Extension",
        ),
        (
            good.replace("Max-Forwards", "Expires: later\r\nMax-Forwards"),
            400,
            "Expires value is illegal",
        ),
        (
            good.replace("SIP/2.0/UDP", "SIP/2.0/QUIC"),
            400,
            "Unsupported Transport in Topmost Via",
        ),
        (
            good.replacen("SIP/2.0\r\n", "SIP/3.0\r\n", 1),
            505,
            "Version Not Supported",
        ),
    ];
    for (msg, code, reason) in cases {
        p.send(server.addr, &msg);
        let (r, _) = p.recv_within(Duration::from_secs(3)).expect("an answer");
        assert!(r.starts_with(&format!("SIP/2.0 {code} {reason}")), "{r}");
        if code == 420 {
            assert_eq!(common::header(&r, "Unsupported"), Some("100rel"), "{r}");
        }
    }
}

/// Pipes from Kamailio's `pl_pipes` table (here in SQLite, made by
/// `rser::db::schema`): defined at start beside the config's.
#[test]
fn pipelimit_reads_its_pipes_from_the_database() {
    use rser::db::conn::Value;
    let dir = common::temp_dir("edge-pl-db");
    let url = format!("sqlite://{}", dir.join("pl.db").display());
    let mut c = rser::db::open(&url).unwrap();
    rser::db::schema::init(&mut c, rser::db::schema::Dialect::Sqlite, &["pl_pipes"]).unwrap();
    c.execute(
        "INSERT INTO pl_pipes (pipeid, algorithm, plimit) VALUES (?, ?, ?)",
        &[
            Value::Text("closed".into()),
            Value::Text("TAILDROP".into()),
            Value::Int(0),
        ],
    )
    .unwrap();
    drop(c);
    let sock = dir.join("ctl.sock");
    let server = Server::start(
        &format!(
            "loadmodule \"sl.so\"\nloadmodule \"pipelimit.so\"\n\
             modparam(\"pipelimit\", \"db_url\", \"{url}\")\n\
             modparam(\"pipelimit\", \"pipe\", \"open:TAILDROP:1000\")\n\
             route {{ if (!pl_check(\"$rU\")) {{ pl_drop(); exit; }} sl_send_reply(\"200\", \"OK\"); }}\n"
        ),
        1,
        &["-s", sock.to_str().unwrap()],
    );
    let p = Peer::new();
    for (user, code) in [("closed", 503), ("open", 200)] {
        p.send(
            server.addr,
            &p.request("OPTIONS", &format!("sip:{user}@127.0.0.1"), user, ""),
        );
        let (r, _) = p.recv_within(Duration::from_secs(3)).expect("an answer");
        assert_eq!(status(&r), Some(code), "{r}");
        assert!(!r.contains("Retry-After"), "pl_drop() without bounds: {r}");
    }
    let pipes = common::rpc(&sock, "pl.get_pipes", serde_json::json!([]));
    let names: Vec<&str> = pipes["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["open", "closed"], "{pipes}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// ratelimit's older names: numbered pipes, queues by method, rl_check()
/// through the request's queue, rl_drop, rl.get_queues.
#[test]
fn ratelimit_queues_send_each_method_through_its_pipe() {
    let dir = common::temp_dir("edge-rl");
    let sock = dir.join("ctl.sock");
    let server = Server::start(
        "loadmodule \"sl.so\"\nloadmodule \"ratelimit.so\"\n\
         modparam(\"ratelimit\", \"pipe\", \"0:TAILDROP:0\")\n\
         modparam(\"ratelimit\", \"pipe\", \"1:RED:1000\")\n\
         modparam(\"ratelimit\", \"queue\", \"0:INVITE\")\n\
         modparam(\"ratelimit\", \"queue\", \"1:*\")\n\
         route { if (!rl_check()) { rl_drop(\"7\"); exit; } sl_send_reply(\"200\", \"OK\"); }\n",
        1,
        &["-s", sock.to_str().unwrap()],
    );
    let p = Peer::new();
    for (method, code) in [("INVITE", 503), ("OPTIONS", 200), ("MESSAGE", 200)] {
        p.send(server.addr, &p.request(method, "sip:127.0.0.1", method, ""));
        let (r, _) = p.recv_within(Duration::from_secs(3)).expect("an answer");
        assert_eq!(status(&r), Some(code), "{method}: {r}");
        if code == 503 {
            assert!(r.contains("Retry-After: 7\r\n"), "{r}");
        }
    }
    let q = common::rpc(&sock, "rl.get_queues", serde_json::json!([]));
    assert_eq!(
        q["result"],
        serde_json::json!([{"pipe": "0", "method": "INVITE"}, {"pipe": "1", "method": "*"}]),
        "{q}"
    );
    let pipes = common::rpc(&sock, "rl.get_pipes", serde_json::json!([]));
    assert_eq!(pipes["result"][1]["accepted"], 2, "{pipes}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// pike's `kernel_drop`: once hot, a source's datagrams are dropped by the
/// kernel (the server receives none of them), another source is answered,
/// and the drop ends on time.
#[test]
fn a_hot_source_is_dropped_by_the_kernel_for_its_time() {
    let dir = common::temp_dir("edge-kdrop");
    let sock = dir.join("ctl.sock");
    let server = Server::start(
        "loadmodule \"sl.so\"\nloadmodule \"pike.so\"\n\
         modparam(\"pike\", \"sampling_time_unit\", 2)\n\
         modparam(\"pike\", \"reqs_density_per_unit\", 16)\n\
         modparam(\"pike\", \"kernel_drop\", 2)\n\
         route { if (!pike_check_req()) { exit; } sl_send_reply(\"200\", \"OK\"); }\n",
        2,
        &["-s", sock.to_str().unwrap()],
    );
    let received = || {
        common::rpc(&sock, "stats.get", serde_json::json!(["core"]))["result"]["core"]["received"]
            .as_u64()
            .unwrap()
    };
    let (flooder, other) = (Peer::on("127.0.0.2"), Peer::on("127.0.0.3"));
    for i in 0..20 {
        flooder.send(server.addr, &options(&flooder, i));
    }
    assert_eq!(replies(&flooder, Duration::from_millis(300)), 16);
    assert!(
        server
            .wait_log("dropped by the kernel for 2 s", Duration::from_secs(2))
            .is_some()
    );
    let before = received();
    for i in 0..500 {
        flooder.send(server.addr, &options(&flooder, 100 + i));
    }
    other.send(server.addr, &options(&other, 1));
    let (r, _) = other
        .recv_within(Duration::from_secs(2))
        .expect("the other source");
    assert_eq!(status(&r), Some(200));
    assert_eq!(replies(&flooder, Duration::from_millis(300)), 0);
    // The flood never reached a process: only the other source's one.
    assert_eq!(received() - before, 1);
    // After 2 s (and pike calm), the source is heard again.
    std::thread::sleep(Duration::from_millis(4_200));
    flooder.send(server.addr, &options(&flooder, 9_999));
    let (r, _) = flooder
        .recv_within(Duration::from_secs(2))
        .expect("heard again");
    assert_eq!(status(&r), Some(200));
    let _ = std::fs::remove_dir_all(&dir);
}
