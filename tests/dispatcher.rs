//! The dispatcher through the real binary: requests spread over three UAS
//! destinations by each algorithm, OPTIONS probing taking a silent
//! destination out and back, failover with ds_next_dst on 503 and on a
//! timeout, a reload under traffic, and the control methods.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Peer, Server, answer, expect, header, rpc, status, temp_dir};
use serde_json::json;

const SEC: Duration = Duration::from_secs(3);

/// A destination: answers requests with `code` and probes with
/// `probe_code` (0: silent); records the Call-ID and request line of each
/// request.
struct Uas {
    addr: SocketAddr,
    code: Arc<AtomicU16>,
    probe_code: Arc<AtomicU16>,
    probes: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<String>>>,
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Uas {
    fn start(code: u16) -> Uas {
        let peer = Peer::new();
        let addr = peer.addr;
        let code = Arc::new(AtomicU16::new(code));
        let probe_code = Arc::new(AtomicU16::new(200));
        let probes = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, pc, pr, s, ls, st) = (
            code.clone(),
            probe_code.clone(),
            probes.clone(),
            seen.clone(),
            lines.clone(),
            stop.clone(),
        );
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(90);
            while !st.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Some((m, from)) = peer.recv_within(Duration::from_millis(50)) else {
                    continue;
                };
                if m.starts_with("SIP/2.0") || m.starts_with("ACK ") {
                    continue;
                }
                let via = header(&m, "Via").unwrap_or("");
                if via.contains("branch=z9hG4bKds.") {
                    pr.fetch_add(1, Ordering::Relaxed);
                    let code = pc.load(Ordering::Relaxed);
                    if code != 0 {
                        peer.send(from, &answer(&m, code, "Probe", "probe"));
                    }
                    continue;
                }
                s.lock()
                    .unwrap()
                    .push(header(&m, "Call-ID").unwrap_or("").to_string());
                ls.lock()
                    .unwrap()
                    .push(m.lines().next().unwrap_or("").to_string());
                let code = c.load(Ordering::Relaxed);
                if code != 0 {
                    peer.send(from, &answer(&m, code, "Reason", "uas"));
                }
            }
        });
        Uas {
            addr,
            code,
            probe_code,
            probes,
            seen,
            lines,
            stop,
            thread: Some(thread),
        }
    }

    fn uri(&self) -> String {
        format!("sip:{}", self.addr)
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for Uas {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn list_file(dir: &Path, lines: &[String]) -> PathBuf {
    let path = dir.join("dispatcher.list");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn config(list: &Path, params: &str, route: &str, more: &str) -> String {
    format!(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"dispatcher.so\"\n\
         modparam(\"dispatcher\", \"list_file\", \"{}\")\n{params}\
         modparam(\"tm\", \"fr_timer\", 800)\nmodparam(\"tm\", \"fr_inv_timer\", 800)\n\
         route {{\n{route}\n}}\n{more}",
        list.display()
    )
}

const SELECT: &str = "if (!ds_select_dst(\"1\", \"@ALG@\")) { sl_send_reply(\"503\", \"No Destination\"); exit; }\n\
                      t_relay();";

/// Sends `n` MESSAGEs with Call-IDs from `call_id(i)` one after another,
/// each waiting (3 s at most) for its own final reply, matched by branch;
/// returns the requests not answered 200, each with what came instead (a
/// full transaction table says so in a 503's reason).
fn send_all(
    caller: &Peer,
    rser: &Server,
    n: usize,
    call_id: impl Fn(usize) -> String,
) -> Vec<String> {
    let mut failed = Vec::new();
    for i in 0..n {
        let id = call_id(i);
        let branch = format!("branch=z9hG4bK-{id}-{i}");
        let req = caller
            .request("MESSAGE", "sip:bob@example.com", &id, "")
            .replace(&format!("branch=z9hG4bK-{id}-MESSAGE"), &branch);
        caller.send(rser.addr, &req);
        match final_reply(caller, &branch) {
            Some(m) if status(&m) == Some(200) => {}
            Some(m) => failed.push(format!("{id}: {}", m.lines().next().unwrap_or(""))),
            None => failed.push(format!("{id}: no final reply within {SEC:?}")),
        }
    }
    failed
}

/// The final reply whose top Via carries `branch`, within `SEC`; replies
/// to earlier requests (late retransmissions) are passed over.
fn final_reply(caller: &Peer, branch: &str) -> Option<String> {
    let deadline = Instant::now() + SEC;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (m, _) = expect(caller, "SIP/2.0", left)?;
        let ours = header(&m, "Via").is_some_and(|v| v.contains(branch));
        if ours && status(&m).is_some_and(|c| c >= 200) {
            return Some(m);
        }
    }
}

/// Asserts that every request `send_all` sent was answered 200.
#[track_caller]
fn all_answered(failed: Vec<String>) {
    assert!(failed.is_empty(), "not answered 200: {failed:?}");
}

fn three(code: u16) -> [Uas; 3] {
    [Uas::start(code), Uas::start(code), Uas::start(code)]
}

#[test]
fn algorithms_spread_requests_as_specified() {
    let dir = temp_dir("ds-algs");
    let uas = three(200);
    let lines: Vec<String> = uas
        .iter()
        .zip([50, 30, 20])
        .map(|(u, w)| format!("1 {} 0 0 weight={w}", u.uri()))
        .collect();
    let list = list_file(&dir, &lines);
    let caller = Peer::new();
    let counts = |uas: &[Uas; 3]| uas.iter().map(Uas::count).collect::<Vec<_>>();

    // 0: a hash over the Call-ID keeps each call on one destination.
    let rser = Server::start(
        &config(&list, "", &SELECT.replace("@ALG@", "0"), ""),
        2,
        &[],
    );
    all_answered(send_all(&caller, &rser, 60, |i| format!("call-{}", i % 6)));
    let mut by_call: HashMap<String, Vec<usize>> = HashMap::new();
    for (d, u) in uas.iter().enumerate() {
        for id in u.seen.lock().unwrap().drain(..) {
            by_call.entry(id).or_default().push(d);
        }
    }
    assert_eq!(by_call.len(), 6);
    for (id, ds) in &by_call {
        assert_eq!(ds.len(), 10, "{id}");
        assert!(ds.iter().all(|d| *d == ds[0]), "{id} moved: {ds:?}");
    }
    drop(rser);

    // The other algorithms: a server running `alg`, `n` requests one after
    // another (each answered 200), and what each destination received.
    let spread = |alg: &str, n: usize| {
        uas.iter().for_each(|u| u.seen.lock().unwrap().clear());
        let rser = Server::start(
            &config(&list, "", &SELECT.replace("@ALG@", alg), ""),
            2,
            &[],
        );
        all_answered(send_all(&caller, &rser, n, |i| format!("a{alg}-{i}")));
        counts(&uas)
    };

    // 4: round robin across both workers, through the shared counter.
    assert_eq!(spread("4", 30), [10, 10, 10]);

    // 9: weights 50/30/20 over 1,000 requests, within 2%.
    let c = spread("9", 1000);
    for (got, want) in c.iter().zip([500, 300, 200]) {
        assert!(got.abs_diff(want) <= 20, "{c:?}");
    }

    // 8: priority order (all equal: the list's first).
    assert_eq!(spread("8", 10), [10, 0, 0]);

    // 10: the least loaded; each transaction holds its destination's load
    // until it ends (wt_timer, 5 s), so sequential requests take turns.
    assert_eq!(spread("10", 10), [4, 3, 3]);

    // 6: random reaches every destination.
    let c = spread("6", 90);
    assert!(c.iter().all(|n| *n >= 10), "{c:?}");
}

#[test]
fn probing_takes_a_silent_destination_out_and_brings_it_back() {
    let dir = temp_dir("ds-probe");
    let sock = dir.join("ctl.sock");
    let uas = three(200);
    let lines: Vec<String> = uas.iter().map(|u| format!("1 {}", u.uri())).collect();
    let list = list_file(&dir, &lines);
    let params = "modparam(\"dispatcher\", \"ds_ping_interval\", 1)\n\
                  modparam(\"dispatcher\", \"ds_probing_mode\", 1)\n\
                  modparam(\"dispatcher\", \"ds_probing_threshold\", 2)\n\
                  modparam(\"dispatcher\", \"ds_inactive_threshold\", 1)\n\
                  modparam(\"dispatcher\", \"ds_ping_reply_codes\", \"code=404;class=6\")\n";
    let rser = Server::start(
        &config(&list, params, &SELECT.replace("@ALG@", "4"), ""),
        2,
        &["-s", sock.to_str().unwrap()],
    );
    let caller = Peer::new();
    uas[1].probe_code.store(0, Ordering::Relaxed);
    // A 404 to a probe is an answer here (ds_ping_reply_codes).
    uas[2].probe_code.store(404, Ordering::Relaxed);
    uas[1].code.store(0, Ordering::Relaxed);
    let flags = |i: usize| {
        let l = rpc(&sock, "dispatcher.list", json!([]));
        l["result"]["sets"][0]["targets"][i]["flags"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while flags(1) != "IX" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(flags(1), "IX", "two unanswered probes make it inactive");
    assert!(uas[1].probes.load(Ordering::Relaxed) >= 2);
    assert_eq!(flags(0), "AX");
    assert_eq!(flags(2), "AX", "404 is accepted");
    assert!(
        rser.wait_log("does not answer probes: inactive", SEC)
            .is_some()
    );

    let before = uas[1].count();
    all_answered(send_all(&caller, &rser, 20, |i| format!("out-{i}")));
    assert_eq!(
        uas[1].count(),
        before,
        "no new traffic to an inactive destination"
    );
    assert_eq!(uas[0].count() + uas[2].count(), 20);

    uas[1].probe_code.store(200, Ordering::Relaxed);
    uas[1].code.store(200, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while flags(1) != "AX" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(flags(1), "AX", "an answered probe brings it back");
    all_answered(send_all(&caller, &rser, 30, |i| format!("back-{i}")));
    assert!(uas[1].count() >= before + 10);

    // Every destination out: selection fails and the script replies 503.
    for u in &uas {
        let r = rpc(&sock, "dispatcher.set_state", json!(["d", 1, u.uri()]));
        assert_eq!(r["result"]["flags"], "DX", "{r}");
    }
    caller.send(
        rser.addr,
        &caller.request("MESSAGE", "sip:bob@example.com", "none-left", ""),
    );
    let (m, _) = expect(&caller, "SIP/2.0", SEC).unwrap();
    assert_eq!(status(&m), Some(503), "{m}");
    let stats = rpc(&sock, "stats.get", json!(["dispatcher"]));
    assert!(
        stats["result"]["dispatcher"]["dispatcher_no_destination"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert!(
        stats["result"]["dispatcher"]["dispatcher_probes_sent"]
            .as_u64()
            .unwrap()
            >= 4
    );
    let shm = rpc(&sock, "stats.get", json!(["shm"]));
    assert_eq!(shm["result"]["shm"]["dispatcher_destinations"], 3, "{shm}");
}

#[test]
fn failover_with_ds_next_dst_on_503_and_on_timeout() {
    let dir = temp_dir("ds-failover");
    let busy = Uas::start(503);
    let silent = Uas::start(0);
    let good = Uas::start(200);
    // Priority order: busy, then silent, then good.
    let lines = vec![
        format!("1 {} 0 30", busy.uri()),
        format!("1 {} 0 20", silent.uri()),
        format!("1 {} 0 10", good.uri()),
    ];
    let list = list_file(&dir, &lines);
    let route = "if (!ds_select_dst(\"1\", \"8\")) { sl_send_reply(\"503\", \"No Destination\"); exit; }\n\
                 t_on_failure(\"1\");\nt_relay();";
    let failure = "failure_route[1] {\n\
                     if (status == \"408\") { ds_mark_dst(\"ip\"); }\n\
                     if (ds_next_dst()) { t_on_failure(\"1\"); t_relay(); exit; }\n\
                     t_reply(\"503\", \"All Destinations Failed\");\n\
                   }\n";
    let rser = Server::start(&config(&list, "", route, failure), 2, &[]);
    let caller = Peer::new();
    caller.send(
        rser.addr,
        &caller.request(
            "INVITE",
            "sip:bob@example.com",
            "fo-1",
            "Contact: <sip:a@127.0.0.1>\r\n",
        ),
    );
    let (m, _) =
        expect(&caller, "SIP/2.0 200", Duration::from_secs(5)).expect("200 after failover");
    assert_eq!(header(&m, "Call-ID"), Some("fo-1"));
    assert_eq!((busy.count(), good.count()), (1, 1));
    assert!(silent.count() >= 1, "the silent one was tried");
    assert!(
        rser.wait_log("marked inactive by the script", SEC)
            .is_some()
    );

    // The timed-out destination is now skipped: busy, then good.
    caller.send(
        rser.addr,
        &caller.request(
            "INVITE",
            "sip:bob@example.com",
            "fo-2",
            "Contact: <sip:a@127.0.0.1>\r\n",
        ),
    );
    let silent_before = silent.count();
    expect(&caller, "SIP/2.0 200", SEC).expect("200 again");
    assert_eq!(silent.count(), silent_before);
    assert_eq!((busy.count(), good.count()), (2, 2));
}

#[test]
fn a_reload_under_traffic_adds_a_destination_and_loses_no_request() {
    let dir = temp_dir("ds-reload");
    let sock = dir.join("ctl.sock");
    let uas = three(200);
    let list = list_file(
        &dir,
        &[format!("1 {}", uas[0].uri()), format!("1 {}", uas[1].uri())],
    );
    let rser = Server::start(
        &config(&list, "", &SELECT.replace("@ALG@", "4"), ""),
        2,
        &["-s", sock.to_str().unwrap()],
    );
    // Mark the second so the reload is seen to keep its state.
    rpc(
        &sock,
        "dispatcher.set_state",
        json!(["t", "1", uas[1].uri()]),
    );
    // A fixed number of requests before, during and after the reload, so
    // the outcome does not depend on the machine's speed: 300 non-INVITE
    // transactions, each holding its tm slot until it ends, are well within
    // the 1,885 that -m 8 holds.
    let caller = Peer::new();
    let mut failed = send_all(&caller, &rser, 100, |i| format!("before-{i}"));
    let lines = [
        format!("1 {}", uas[0].uri()),
        format!("1 {}", uas[1].uri()),
        format!("1 {}", uas[2].uri()),
    ];
    let mut reloader = None;
    for chunk in 0..10 {
        if chunk == 2 {
            let (sock, list) = (sock.clone(), list.clone());
            let lines = lines.join("\n") + "\n";
            reloader = Some(std::thread::spawn(move || {
                std::fs::write(&list, lines).unwrap();
                rpc(&sock, "dispatcher.reload", json!([]))
            }));
        }
        failed.extend(send_all(&caller, &rser, 10, |i| {
            format!("during-{chunk}-{i}")
        }));
    }
    let r = reloader.unwrap().join().unwrap();
    assert_eq!(r["result"]["destinations"], 3, "{r}");
    let third_before = uas[2].count();
    failed.extend(send_all(&caller, &rser, 100, |i| format!("after-{i}")));
    all_answered(failed);
    assert!(
        uas[2].count() > third_before,
        "the new destination takes traffic"
    );
    let l = rpc(&sock, "dispatcher.list", json!([]));
    assert_eq!(l["result"]["sets"][0]["targets"][1]["flags"], "TX", "{l}");

    // A bad list is refused and the old one stays.
    std::fs::write(&list, "1 http://nope\n").unwrap();
    let r = rpc(&sock, "dispatcher.reload", json!([]));
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("list kept"),
        "{r}"
    );
    let l = rpc(&sock, "dispatcher.list", json!([]));
    assert_eq!(
        l["result"]["sets"][0]["targets"].as_array().unwrap().len(),
        3
    );
    let bad = rpc(&sock, "dispatcher.set_state", json!(["x", 1, uas[0].uri()]));
    assert_eq!(bad["error"]["code"], -32602);
}

#[test]
fn the_list_from_the_database_and_its_state_outlive_killed_processes() {
    let dir = temp_dir("ds-db");
    let sock = dir.join("ctl.sock");
    let uas = three(200);
    let db = dir.join("ds.db");
    {
        // Kamailio's dispatcher table.
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE dispatcher (id INTEGER PRIMARY KEY AUTOINCREMENT, \
             setid INTEGER NOT NULL DEFAULT 0, destination TEXT NOT NULL DEFAULT '', \
             flags INTEGER NOT NULL DEFAULT 0, priority INTEGER NOT NULL DEFAULT 0, \
             attrs TEXT NOT NULL DEFAULT '', description TEXT NOT NULL DEFAULT '')",
        )
        .unwrap();
        for (i, u) in uas.iter().enumerate() {
            c.execute(
                "INSERT INTO dispatcher (setid, destination, flags, priority, attrs) \
                 VALUES (1, ?1, ?2, 0, 'weight=10')",
                rusqlite::params![u.uri(), if i == 1 { 1 } else { 0 }],
            )
            .unwrap();
        }
    }
    let cfg = format!(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"dispatcher.so\"\n\
         modparam(\"dispatcher\", \"db_url\", \"sqlite://{}\")\n\
         route {{\n{}\n}}\n",
        db.display(),
        SELECT.replace("@ALG@", "4")
    );
    let rser = Server::start(&cfg, 2, &["-s", sock.to_str().unwrap()]);
    let flags = || {
        let l = rpc(&sock, "dispatcher.list", json!([]));
        let t = l["result"]["sets"][0]["targets"].clone();
        (0..3)
            .map(|i| t[i]["flags"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        flags(),
        ["AX", "IX", "AX"],
        "flags 1 in the table: inactive"
    );
    rpc(&sock, "dispatcher.set_state", json!(["d", 1, uas[2].uri()]));

    // Every child killed: workers, the timer and the control process.
    let before = rser.workers();
    for pid in &before {
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = rser.workers();
        if now.len() == before.len() && now.iter().all(|p| !before.contains(p)) {
            break;
        }
        assert!(Instant::now() < deadline, "not replaced: {now:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(
            Instant::now() < deadline,
            "the control socket is not served again"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(flags(), ["AX", "IX", "DX"], "the state is in shared memory");
    let caller = Peer::new();
    all_answered(send_all(&caller, &rser, 12, |i| format!("db-{i}")));
    assert_eq!(
        (uas[0].count(), uas[1].count(), uas[2].count()),
        (12, 0, 0),
        "only the active destination"
    );
}

#[test]
fn a_selection_made_after_t_newtran_fails_over_too() {
    let dir = temp_dir("ds-newtran");
    let busy = Uas::start(503);
    let good = Uas::start(200);
    let list = list_file(
        &dir,
        &[
            format!("1 {} 0 9", busy.uri()),
            format!("1 {} 0 1", good.uri()),
        ],
    );
    let route = "t_newtran();\n\
                 if (!ds_select_dst(\"1\", \"8\")) { t_reply(\"503\", \"No Destination\"); exit; }\n\
                 t_on_failure(\"1\");\nt_relay();";
    let failure = "failure_route[1] { if (ds_next_dst()) { t_relay(); } }\n";
    let rser = Server::start(&config(&list, "", route, failure), 2, &[]);
    let caller = Peer::new();
    caller.send(
        rser.addr,
        &caller.request("MESSAGE", "sip:bob@example.com", "nt-1", ""),
    );
    let (m, _) = expect(&caller, "SIP/2.0 2", SEC).expect("200 from the second destination");
    assert_eq!(status(&m), Some(200), "{m}");
    assert_eq!((busy.count(), good.count()), (1, 1));
}

#[test]
fn select_domain_next_domain_and_is_from_list() {
    let dir = temp_dir("ds-domain");
    let busy = Uas::start(503);
    let good = Uas::start(200);
    // Set 2: a peer the test sends from.
    let insider = Peer::new();
    let list = list_file(
        &dir,
        &[
            format!("1 {} 0 9", busy.uri()),
            format!("1 {} 0 1", good.uri()),
            format!("2 sip:{}", insider.addr),
        ],
    );
    let route = "if (ds_is_from_list(\"2\")) { sl_send_reply(\"403\", \"From A Destination\"); exit; }\n\
                 if (!ds_select_domain(\"1\", \"8\")) { sl_send_reply(\"503\", \"No Destination\"); exit; }\n\
                 t_on_failure(\"1\");\nt_relay();";
    let failure = "failure_route[1] { if (ds_next_domain()) { t_relay(); } }\n";
    let rser = Server::start(&config(&list, "", route, failure), 2, &[]);
    let caller = Peer::new();
    caller.send(
        rser.addr,
        &caller.request("MESSAGE", "sip:bob@example.com", "dom-1", ""),
    );
    let (m, _) = expect(&caller, "SIP/2.0 2", SEC).expect("200 from the second destination");
    assert_eq!(status(&m), Some(200), "{m}");
    // The Request-URI's host is each destination's in turn.
    assert_eq!(
        busy.lines.lock().unwrap()[0],
        format!("MESSAGE sip:bob@{} SIP/2.0", busy.addr)
    );
    assert_eq!(
        good.lines.lock().unwrap()[0],
        format!("MESSAGE sip:bob@{} SIP/2.0", good.addr)
    );
    // From a destination's own address; the caller is not one.
    insider.send(
        rser.addr,
        &insider.request("MESSAGE", "sip:bob@example.com", "dom-2", ""),
    );
    let (m, _) = expect(&insider, "SIP/2.0", SEC).unwrap();
    assert_eq!(status(&m), Some(403), "{m}");
}

#[test]
fn probes_are_answered_to_the_listen_port_with_a_socket_per_worker() {
    // With reuse_port the timer process sends from a port of its own and
    // never reads: the replies must come back to the listening port.
    let dir = temp_dir("ds-reuse");
    let sock = dir.join("ctl.sock");
    let uas = Uas::start(200);
    let list = list_file(&dir, &[format!("1 {}", uas.uri())]);
    let params = "modparam(\"dispatcher\", \"ds_ping_interval\", 1)\n\
                  modparam(\"dispatcher\", \"ds_probing_mode\", 1)\n";
    let cfg = format!(
        "reuse_port=yes\n{}",
        config(&list, params, &SELECT.replace("@ALG@", "4"), "")
    );
    let _rser = Server::start(&cfg, 2, &["-s", sock.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while uas.probes.load(Ordering::Relaxed) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(uas.probes.load(Ordering::Relaxed) >= 3);
    let l = rpc(&sock, "dispatcher.list", json!([]));
    assert_eq!(l["result"]["sets"][0]["targets"][0]["flags"], "AX", "{l}");
    let s = rpc(&sock, "stats.get", json!(["dispatcher"]));
    assert_eq!(
        s["result"]["dispatcher"]["dispatcher_probes_failed"], 0,
        "{s}"
    );
}
