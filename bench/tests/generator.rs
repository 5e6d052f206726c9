//! rser-bench, rser-floor and rser-hist seen from outside: each scenario
//! through the real rser (or the floor forwarder) on loopback ephemeral
//! ports, short runs, every process killed at the end.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BENCH: &str = env!("CARGO_BIN_EXE_rser-bench");
const FLOOR: &str = env!("CARGO_BIN_EXE_rser-floor");
const HIST: &str = env!("CARGO_BIN_EXE_rser-hist");

/// Kills the process when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rser-bench-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The server binary, built beside ours by `cargo test --workspace`.
fn rser_binary() -> PathBuf {
    let p = Path::new(BENCH).with_file_name("rser");
    assert!(
        p.exists(),
        "{} is missing: build it (cargo build --bin rser)",
        p.display()
    );
    p
}

/// Waits (5 s at most) until something answers an OPTIONS on `addr`.
fn wait_answering(addr: SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let me = s.local_addr().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let req = format!(
            "OPTIONS sip:ping@{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKw\r\n\
             From: <sip:t@{me}>;tag=1\r\nTo: <sip:ping@{addr}>\r\nCall-ID: wait@t\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        s.send_to(req.as_bytes(), addr).unwrap();
        if s.recv_from(&mut buf).is_ok() {
            return;
        }
    }
    panic!("nothing answers on {addr}");
}

fn start_rser(dir: &Path, config: &str) -> (Killed, SocketAddr) {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cfg = dir.join("rser.cfg");
    std::fs::write(&cfg, config).unwrap();
    let child = Command::new(rser_binary())
        .arg("-f")
        .arg(&cfg)
        .args(["-l", &format!("udp:{addr}"), "-n", "2", "-m", "32"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rser starts");
    let child = Killed(child);
    wait_answering(addr);
    (child, addr)
}

/// Runs rser-bench to completion (60 s at most) and returns its output.
fn bench(args: &[&str]) -> String {
    let mut child = Killed(
        Command::new(BENCH)
            .args(args)
            .arg("--quiet")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "rser-bench did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = wait_output(child);
    assert!(
        out.status.success(),
        "rser-bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn wait_output(mut child: Killed) -> Output {
    let mut out = Output {
        status: child.0.wait().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    if let Some(mut s) = child.0.stdout.take() {
        let _ = std::io::Read::read_to_end(&mut s, &mut out.stdout);
    }
    if let Some(mut s) = child.0.stderr.take() {
        let _ = std::io::Read::read_to_end(&mut s, &mut out.stderr);
    }
    out
}

/// Every unit started completed, and pacing started (nearly) all asked for:
/// a loaded machine may wake the generator late enough to lose a few.
fn all_completed(r: &serde_json::Value, asked: u64, out: &str) {
    let (sent, completed) = (
        r["sent"].as_u64().unwrap(),
        r["completed"].as_u64().unwrap(),
    );
    assert!(sent <= asked && sent * 100 >= asked * 97, "{out}");
    assert_eq!(completed, sent, "{out}");
    assert_eq!(r["failed"], 0, "{out}");
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn forward_through_the_floor_with_loss_and_peers_then_hist_reads_it() {
    let dir = temp_dir("floor");
    let (listen, uas) = (free_port(), free_port());
    let floor = Killed(
        Command::new(FLOOR)
            .args(["--listen", &format!("127.0.0.1:{listen}")])
            .args(["--to", &format!("127.0.0.1:{uas}")])
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(200));
    let (j, h) = (dir.join("f.json"), dir.join("f.hgrm"));
    let out = bench(&[
        "--scenario",
        "forward",
        "--target",
        &format!("127.0.0.1:{listen}"),
        "--uas",
        &format!("127.0.0.1:{uas}"),
        "--rate",
        "400",
        "--duration",
        "2s",
        "--peers",
        "3",
        "--loss",
        "5",
        "--json",
        j.to_str().unwrap(),
        "--hgrm",
        h.to_str().unwrap(),
    ]);
    drop(floor);
    let r = json(&j);
    // With 5% dropped each way, a transaction loses all five of its
    // sends (Timer E's retransmissions until Timer F) about once in
    // 100,000: rare, not impossible; nothing else may fail.
    let (sent, completed) = (
        r["sent"].as_u64().unwrap(),
        r["completed"].as_u64().unwrap(),
    );
    let timeouts = r["timeouts"].as_u64().unwrap_or(0);
    assert!(sent * 100 >= 800 * 97, "{out}");
    assert_eq!(completed + timeouts, sent, "{out}");
    assert!(timeouts <= 2, "{out}");
    assert_eq!(r["failed"].as_u64(), Some(timeouts), "{out}");
    assert!(r["dropped"].as_u64().unwrap() > 0);
    assert!(
        r["retransmitted"].as_u64().unwrap() > 0,
        "losses are recovered by retransmission"
    );
    assert_eq!(r["peers"], 3);
    // 5% loss makes some transactions wait T1 (500 ms) or more.
    assert!(r["latency_us"]["max"].as_u64().unwrap() >= 500_000);
    let svg = dir.join("f.svg");
    let out = Command::new(HIST)
        .arg(&h)
        .arg(&j)
        .arg("--plot")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("f.hgrm") && table.contains("f.json"),
        "{table}"
    );
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn calls_through_rsers_t_relay_complete() {
    let dir = temp_dir("call");
    let uas = free_port();
    let config = format!(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"rr.so\"\n\
         route {{\n  if (loose_route()) {{ t_relay(); exit; }}\n\
           if (method == \"INVITE\") {{ record_route(); }}\n\
           if (method == \"OPTIONS\" && uri =~ \"^sip:ping@\") {{ sl_send_reply(\"200\", \"OK\"); exit; }}\n\
           rewritehostport(\"127.0.0.1:{uas}\");\n  t_relay();\n}}\n"
    );
    let (_rser, addr) = start_rser(&dir, &config);
    let j = dir.join("c.json");
    let out = bench(&[
        "--scenario",
        "call",
        "--target",
        &addr.to_string(),
        "--uas",
        &format!("127.0.0.1:{uas}"),
        "--rate",
        "100",
        "--duration",
        "2s",
        "--json",
        j.to_str().unwrap(),
    ]);
    let r = json(&j);
    all_completed(&r, 200, &out);
    assert_eq!(
        r["latency_us"]["count"].as_u64(),
        r["sent"].as_u64().map(|n| 2 * n),
        "INVITE and BYE transactions"
    );
    assert_eq!(r["strays"], 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A port with the next `n - 1` also free (bound at once, then released).
fn free_port_run(n: u16) -> u16 {
    for _ in 0..50 {
        let base = free_port();
        if base > u16::MAX - n {
            continue;
        }
        let held: Vec<_> = (0..n)
            .filter_map(|i| UdpSocket::bind(("127.0.0.1", base + i)).ok())
            .collect();
        if held.len() == n as usize {
            return base;
        }
    }
    panic!("no run of {n} free ports");
}

#[test]
fn calls_through_rsers_dispatcher_spread_over_three_destinations() {
    let dir = temp_dir("dispatcher");
    let base = free_port_run(3);
    let list: String = (0..3)
        .map(|i| format!("1 sip:127.0.0.1:{}\n", base + i))
        .collect();
    std::fs::write(dir.join("dispatcher.list"), list).unwrap();
    let config = "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"rr.so\"\n\
         loadmodule \"dispatcher.so\"\n\
         modparam(\"dispatcher\", \"list_file\", \"dispatcher.list\")\n\
         route {\n  if (loose_route()) { t_relay(); exit; }\n\
           if (method == \"OPTIONS\" && uri =~ \"^sip:ping@\") { sl_send_reply(\"200\", \"OK\"); exit; }\n\
           if (method == \"INVITE\") { record_route(); }\n\
           if (!ds_select_dst(\"1\", \"4\")) { sl_send_reply(\"503\", \"No Destination\"); exit; }\n\
           t_relay();\n}\n";
    let (_rser, addr) = start_rser(&dir, config);
    let j = dir.join("d.json");
    let out = bench(&[
        "--scenario",
        "call",
        "--target",
        &addr.to_string(),
        "--uas",
        &format!("127.0.0.1:{base}"),
        "--uas-count",
        "3",
        "--rate",
        "150",
        "--duration",
        "2s",
        "--json",
        j.to_str().unwrap(),
    ]);
    let r = json(&j);
    all_completed(&r, 300, &out);
    // Round robin: each destination gets a third of the calls (INVITE,
    // ACK and BYE each), within a few calls.
    let per: Vec<u64> = r["uas_requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let total: u64 = per.iter().sum();
    assert_eq!(total, 3 * r["completed"].as_u64().unwrap(), "{per:?}");
    for n in &per {
        assert!(n.abs_diff(total / 3) <= 9, "{per:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn registrations_authenticate_against_rsers_registrar() {
    let dir = temp_dir("register");
    let url = format!("sqlite://{}", dir.join("rser.db").display());
    let mut conn = rser::modules::auth::subscriber::open(&url, "subscriber").unwrap();
    let mut csv = String::from("SEQUENTIAL\n");
    for i in 0..20 {
        let (user, pw) = (format!("user{i}"), format!("pw{i}"));
        rser::modules::auth::subscriber::add(
            &mut conn,
            "subscriber",
            &user,
            "example.net",
            &pw,
            false,
        )
        .unwrap();
        csv.push_str(&format!("{user};{pw}\n"));
    }
    drop(conn);
    let users = dir.join("users.csv");
    std::fs::write(&users, csv).unwrap();
    let config = format!(
        "loadmodule \"sl.so\"\nloadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\n\
         loadmodule \"auth.so\"\nloadmodule \"auth_db.so\"\n\
         modparam(\"auth_db\", \"db_url\", \"{url}\")\n\
         route {{\n  if (method == \"REGISTER\") {{\n\
             if (!www_authorize(\"example.net\", \"subscriber\")) {{\n\
               www_challenge(\"example.net\", \"1\"); exit;\n    }}\n\
             save(\"location\"); exit;\n  }}\n  sl_send_reply(\"200\", \"OK\");\n}}\n"
    );
    let (_rser, addr) = start_rser(&dir, &config);
    let j = dir.join("r.json");
    let out = bench(&[
        "--scenario",
        "register",
        "--target",
        &addr.to_string(),
        "--users",
        users.to_str().unwrap(),
        "--domain",
        "example.net",
        "--rate",
        "50",
        "--duration",
        "2s",
        "--json",
        j.to_str().unwrap(),
    ]);
    let r = json(&j);
    all_completed(&r, 100, &out);
    assert_eq!(
        r["auth_rounds"], r["sent"],
        "every registration was challenged once"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn search_reports_its_trials_and_a_clean_rate() {
    let dir = temp_dir("search");
    let (_rser, addr) = start_rser(
        &dir,
        "loadmodule \"sl.so\"\nroute { sl_send_reply(\"200\", \"OK\"); }\n",
    );
    let j = dir.join("s.json");
    let out = bench(&[
        "--scenario",
        "options",
        "--target",
        &addr.to_string(),
        "--rate",
        "200",
        "--duration",
        "500ms",
        "--search",
        "--max-trials",
        "3",
        "--json",
        j.to_str().unwrap(),
    ]);
    let r = json(&j);
    let trials = r["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 3, "{out}");
    assert_eq!(trials[0]["rate"], 200.0);
    // Whether 200/s was clean depends on the machine's load (a loaded CI
    // host may fall a few sends short in half a second): the search
    // reports some clean rate either way.
    assert!(r["clean_rate"].as_f64().unwrap() >= 100.0, "{out}");
    assert!(out.contains("clean rate:"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_are_refused_clearly() {
    let out = Command::new(BENCH)
        .args(["--scenario", "nope", "--target", "127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scenario"));
    let out = Command::new(BENCH)
        .args([
            "--scenario",
            "register",
            "--target",
            "127.0.0.1:9",
            "--users",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent"));
}

/// `--threads 2`: two generator threads, each its own sockets and half
/// the rate, their counts and latencies summed in one report; the calls
/// go through rser's tm to both threads' UAS ports.
#[test]
fn two_generator_threads_report_as_one() {
    let dir = temp_dir("threads");
    let uas = free_port_run(2);
    let config = "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"rr.so\"\n\
         route {\n  if (loose_route()) { t_relay(); exit; }\n\
           if (method == \"INVITE\") { record_route(); }\n\
           if (method == \"OPTIONS\" && uri =~ \"^sip:ping@\") { sl_send_reply(\"200\", \"OK\"); exit; }\n\
           t_relay();\n}\n";
    let (_rser, addr) = start_rser(&dir, config);
    let j = dir.join("t.json");
    let out = bench(&[
        "--scenario",
        "call",
        "--target",
        &addr.to_string(),
        "--uas",
        &format!("127.0.0.1:{uas}"),
        "--threads",
        "2",
        "--rate",
        "100",
        "--duration",
        "2s",
        "--json",
        j.to_str().unwrap(),
    ]);
    let r = json(&j);
    all_completed(&r, 200, &out);
    assert_eq!(r["peers"], 2, "{out}");
    assert_eq!(r["latency_us"]["count"].as_u64(), Some(400), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
