//! sipp, an independent SIP implementation, runs its built-in uac and uas
//! scenarios through rser: every call must complete. sipp comes from
//! Debian's `sip-tester` (tests/setup.sh installs it).

mod common;

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;

/// A loopback port free for UDP and TCP alike (sipp needs a number up
/// front and binds both for `-t t1`), below the kernel's ephemeral range:
/// the other tests' outgoing connections (Redis, MariaDB, PostgreSQL
/// clients) take ports there, and one could take sipp's before it binds.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 500) as u16 * 20;
    for _ in 0..2_000 {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 10_000;
        let udp = UdpSocket::bind(("127.0.0.1", port));
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        if udp.is_ok() && tcp.is_ok() {
            return port;
        }
    }
    panic!("no free port for sipp");
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sipp() -> Command {
    let mut c = Command::new("sipp");
    c.stdin(Stdio::null());
    c
}

/// The cumulative "Successful call" count of sipp's last screen.
fn successful_calls(out: &str) -> Option<u32> {
    out.lines()
        .filter(|l| l.contains("Successful call"))
        .filter_map(|l| l.split('|').nth(2)?.trim().parse::<u32>().ok())
        .next_back()
}

/// sipp's final counts, and rser's counters after the calls.
struct Calls {
    successful: Option<u32>,
    summary: String,
    success: bool,
    stats: serde_json::Value,
}

/// Which scenarios the pair plays: sipp's built-in uac and uas, or one of
/// `bench/sipp/`'s `uac_NAME.xml` with `uas_NAME.xml`.
#[derive(Clone, Copy)]
enum Scenario {
    Builtin,
    Files(&'static str),
}

impl Scenario {
    fn args(self, side: &str) -> Vec<String> {
        match self {
            Scenario::Builtin => vec!["-sn".into(), side.into()],
            Scenario::Files(name) => vec![
                "-sf".into(),
                format!(
                    "{}/bench/sipp/{side}_{name}.xml",
                    env!("CARGO_MANIFEST_DIR")
                ),
            ],
        }
    }
}

/// The transports the sipp pair uses (`-t`: `u1` UDP, `t1` one TCP
/// connection, `tn` one per call); rser listens on TCP too when either is
/// not UDP.
#[derive(Clone, Copy)]
struct Transports {
    uac: &'static str,
    uas: &'static str,
}

const UDP: Transports = Transports {
    uac: "u1",
    uas: "u1",
};

impl Transports {
    fn tcp(self) -> bool {
        self.uac != "u1" || self.uas != "u1"
    }
}

/// Runs `calls` sipp uac calls at `rate` through rser started on `config`
/// (`{uas_port}` in it is replaced), with `workers`; `during` runs every
/// 500 ms while the calls go on.
fn run_calls(
    config: &str,
    workers: u32,
    calls: u32,
    rate: u32,
    during: impl FnMut(&Server),
) -> Calls {
    run_scenario(Scenario::Builtin, config, workers, calls, rate, during)
}

fn run_scenario(
    scenario: Scenario,
    config: &str,
    workers: u32,
    calls: u32,
    rate: u32,
    during: impl FnMut(&Server),
) -> Calls {
    run_prepared(
        scenario,
        UDP,
        config,
        workers,
        (calls, rate),
        |_, _| {},
        during,
    )
}

/// [`run_scenario`], with `prepare` run once the uas listens (on the port
/// it is given), before the uac starts.
fn run_prepared(
    scenario: Scenario,
    t: Transports,
    config: &str,
    workers: u32,
    (calls, rate): (u32, u32),
    prepare: impl FnOnce(&Server, u16),
    mut during: impl FnMut(&Server),
) -> Calls {
    assert!(
        Command::new("sipp").arg("-v").output().is_ok(),
        "sipp is not installed: run `bash tests/setup.sh` (Debian package sip-tester)"
    );
    let uas_port = free_port();
    let config = config.replace("{uas_port}", &uas_port.to_string());
    let dir = std::env::temp_dir().join(format!("rser-sipp-{}-{uas_port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("ctl.sock");
    let ctl = ["-s", sock.to_str().unwrap()];
    let server = match t.tcp() {
        true => Server::start_tcp(&config, workers, &ctl),
        false => Server::start(&config, workers, &ctl),
    };
    let target = match t.uac {
        "u1" => server.addr,
        _ => server.tcp.expect("rser listens on TCP"),
    };
    // sipp's default socket limit exceeds the machine's open-file limit.
    let transport = |side: &'static str| ["-t", side, "-max_socket", "1000"];
    let _uas = Killed(
        sipp()
            .current_dir(&dir)
            .args(scenario.args("uas"))
            .args(transport(t.uas))
            .args(["-i", "127.0.0.1", "-p", &uas_port.to_string()])
            .args(["-nostdin", "-timeout", "90"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp uas starts"),
    );
    std::thread::sleep(Duration::from_millis(300));
    prepare(&server, uas_port);
    let mut uac = Killed(
        sipp()
            .current_dir(&dir)
            .args(scenario.args("uac"))
            .args(transport(t.uac))
            .arg(target.to_string())
            .args(["-i", "127.0.0.1", "-p", &free_port().to_string()])
            .args(["-m", &calls.to_string(), "-r", &rate.to_string()])
            .args(["-nostdin", "-timeout", "60"])
            // Two workers may pass a 200 up before the 180 (anchors/README).
            .args(["-default_behaviors", "all,-abortunexp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sipp uac starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(75);
    let mut next = Instant::now() + Duration::from_millis(500);
    let status = loop {
        if let Some(s) = uac.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "sipp uac did not finish");
        if Instant::now() >= next {
            during(&server);
            next += Duration::from_millis(500);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    if let Some(mut o) = uac.0.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut o, &mut out);
    }
    let stats = common::rpc(&sock, "stats.get", serde_json::json!([]))["result"].clone();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    let summary = out
        .lines()
        .filter(|l| l.contains("Successful call") || l.contains("Failed call"))
        .collect::<Vec<_>>()
        .join("\n");
    Calls {
        successful: successful_calls(&out),
        summary,
        success: status.success(),
        stats,
    }
}

#[test]
fn sipp_calls_complete_through_rser() {
    let config = r#"
loadmodule "sl.so"
loadmodule "maxfwd.so"
route {
    if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); break; };
    forward(127.0.0.1, {uas_port});
}
"#;
    let r = run_calls(config, 2, 50, 25, |_| {});
    assert!(r.success, "sipp uac failed\n{}", r.summary);
    assert_eq!(r.successful, Some(50), "{}", r.summary);
}

/// A stateful proxy: t_relay with record-routing; in-dialog requests
/// routed by loose_route.
const STATEFUL: &str = r#"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
route {
    if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; };
    if (loose_route()) { t_relay(); exit; };
    if (method == "INVITE") { record_route(); };
    rewritehostport("127.0.0.1:{uas_port}");
    if (!t_relay()) { sl_reply_error(); };
}
"#;

#[test]
fn sipp_calls_complete_through_t_relay() {
    let r = run_calls(STATEFUL, 2, 50, 25, |_| {});
    assert!(r.success, "sipp uac failed\n{}", r.summary);
    assert_eq!(r.successful, Some(50), "{}", r.summary);
}

/// The same over TCP (RFC 3261 §18.3): sipp's callers on one connection
/// (`t1`) and on one per call (`tn`), the callee on one; stateless
/// (`forward_tcp`) and stateful (`t_relay_to_tcp` with record-routing);
/// and a caller over UDP reaching a callee over TCP. Every call completes,
/// and over TCP tm retransmits nothing.
#[test]
fn sipp_calls_complete_over_tcp() {
    let stateless = r#"
loadmodule "sl.so"
loadmodule "maxfwd.so"
route {
    if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); break; };
    forward_tcp(127.0.0.1, {uas_port});
}
"#;
    let stateful = STATEFUL.replace(
        "t_relay()) { sl_reply_error",
        "t_relay_to_tcp()) { sl_reply_error",
    );
    let one = |uac, uas, config: &str| {
        let t = Transports { uac, uas };
        let r = run_prepared(Scenario::Builtin, t, config, 2, (50, 25), |_, _| {}, |_| {});
        assert!(r.success, "{uac}/{uas}: sipp uac failed\n{}", r.summary);
        assert_eq!(r.successful, Some(50), "{uac}/{uas}: {}", r.summary);
        r.stats
    };
    for (uac, uas) in [("t1", "t1"), ("tn", "t1")] {
        one(uac, uas, stateless);
        let stats = one(uac, uas, &stateful);
        assert_eq!(stats["tm"]["tm_transactions"], 100, "{stats}");
        assert_eq!(stats["core"]["tcp_connect_failed"], 0, "{stats}");
    }
    let stats = one("u1", "t1", &stateful);
    assert_eq!(
        stats["core"]["tcp_connected"], 1,
        "one connection to the callee: {stats}"
    );
}

/// A sipp pair playing INVITE, 180, CANCEL, 200, 487, ACK through tm:
/// every call completes, and each caller's ACK ends its transaction at
/// the proxy (so the 487 is not resent).
#[test]
fn sipp_cancelled_calls_complete_through_t_relay() {
    let calls = 50;
    let r = run_scenario(Scenario::Files("cancel"), STATEFUL, 2, calls, 25, |_| {});
    assert!(r.success, "sipp uac failed\n{}", r.summary);
    assert_eq!(r.successful, Some(calls), "{}", r.summary);
    let tm = &r.stats["tm"];
    assert_eq!(tm["tm_acks_absorbed"], u64::from(calls), "{tm}");
    assert_eq!(r.stats["sl"]["sl_acks_absorbed"], 0, "none taken by sl");
}

/// Transactions live in shared memory: a worker (or the timer process)
/// SIGKILLed mid-call loses nothing another process cannot carry on, so
/// retransmissions complete the calls.
#[test]
fn sipp_calls_survive_killed_workers() {
    let calls = 400;
    let mut killed = 0;
    let r = run_calls(STATEFUL, 4, calls, 50, |server| {
        let procs = server.workers();
        if killed < 12 && !procs.is_empty() {
            let victim = procs[killed % procs.len()];
            unsafe { libc::kill(victim, libc::SIGKILL) };
            killed += 1;
        }
    });
    assert!(killed >= 6, "only {killed} kills during the run");
    let ok = r.successful.unwrap_or(0);
    assert!(
        ok * 1000 >= calls * 995,
        "{ok} of {calls} calls completed with {killed} processes killed\n{}",
        r.summary
    );
}

/// sipp's REGISTER scenario with digest authentication (its
/// `[authentication]` keyword, users from an injection CSV): every user
/// is challenged and then registered.
#[test]
fn sipp_registers_every_user_with_digest_authentication() {
    let dir = std::env::temp_dir().join(format!("rser-sipp-reg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("rser.db").display());
    let mut conn = rser::modules::auth::subscriber::open(&url, "subscriber").unwrap();
    let mut csv = String::from("SEQUENTIAL\n");
    for i in 0..20 {
        let (user, password) = (format!("user{i}"), format!("pw-{i}-secret"));
        rser::modules::auth::subscriber::add(
            &mut conn,
            "subscriber",
            &user,
            "example.net",
            &password,
            false,
        )
        .unwrap();
        csv.push_str(&format!("{user};{password};\n"));
    }
    drop(conn);
    std::fs::write(dir.join("users.csv"), csv).unwrap();
    // sipp 3.6 answers only the first challenge, and only MD5.
    let config = format!(
        "loadmodule \"sl.so\"\nloadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\n\
         loadmodule \"auth.so\"\nloadmodule \"auth_db.so\"\n\
         modparam(\"auth_db\", \"db_url\", \"{url}\")\n\
         modparam(\"auth\", \"algorithm\", \"MD5,SHA-256\")\n\
         route {{\n\
           if (method == \"REGISTER\") {{\n\
             if (!www_authorize(\"example.net\", \"subscriber\")) {{\n\
               www_challenge(\"example.net\", \"1\"); exit;\n\
             }}\n\
             if (!check_to()) {{ sl_send_reply(\"403\", \"Forbidden\"); exit; }}\n\
             save(\"location\"); exit;\n\
           }}\n\
           sl_send_reply(\"404\", \"Not Found\");\n\
         }}\n"
    );
    let server = Server::start(&config, 2, &[]);
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/sipp/register_auth.xml");
    let mut uac = Killed(
        sipp()
            .current_dir(&dir)
            .args(["-sf", scenario, "-inf", "users.csv"])
            .arg(server.addr.to_string())
            .args(["-i", "127.0.0.1", "-p", &free_port().to_string()])
            .args(["-m", "40", "-r", "20", "-nostdin", "-timeout", "30"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sipp starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(s) = uac.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "sipp did not finish");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    if let Some(mut o) = uac.0.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut o, &mut out);
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "sipp failed\n{out}");
    assert_eq!(successful_calls(&out), Some(40), "every user, twice over");
}

/// acc on sipp's calls: each answered call gives two records (INVITE and
/// BYE, Kamailio's start and stop), counted in `stats.get`'s acc group.
#[test]
fn sipp_calls_are_accounted_start_and_stop() {
    let config = STATEFUL.replace(
        "loadmodule \"tm.so\"",
        "loadmodule \"tm.so\"\nloadmodule \"acc.so\"\nmodparam(\"acc\", \"log_flag\", 1)",
    );
    let config = config.replacen(
        "route {",
        "route {\n  if (method == \"INVITE\" || method == \"BYE\") { setflag(1); }",
        1,
    );
    let calls = 50;
    let r = run_calls(&config, 2, calls, 25, |_| {});
    assert!(r.success, "sipp uac failed\n{}", r.summary);
    assert_eq!(r.successful, Some(calls), "{}", r.summary);
    assert_eq!(
        r.stats["acc"]["acc_records"],
        u64::from(2 * calls),
        "{}",
        r.stats["acc"]
    );
}

/// Debian's stock kamailio.cfg (Kamailio 5.6; `tests/setup.sh` installs
/// it) unchanged: the uas registered as `service`, sipp's uac calls
/// sip:service@proxy, which the script looks up, record-routes and relays;
/// ACK and BYE follow the route set (`bench/sipp/*_reorder.xml`; sipp's
/// built-in uac ignores Record-Route, and the script answers such a BYE
/// 404 "Not here", as Kamailio's does) through route[WITHINDLG]. Every
/// call completes.
#[test]
fn sipp_calls_complete_through_the_stock_kamailio_cfg() {
    let stock = std::fs::read_to_string("/etc/kamailio/kamailio.cfg")
        .expect("/etc/kamailio/kamailio.cfg (tests/setup.sh installs Debian's kamailio)");
    let register = |server: &Server, uas_port: u16| {
        let uas = std::net::SocketAddr::from(([127, 0, 0, 1], uas_port));
        let reply = common::register_contact(server.addr, "service", uas);
        assert_eq!(common::status(&reply), Some(200), "{reply}");
    };
    let r = run_prepared(
        Scenario::Files("reorder"),
        UDP,
        &stock,
        2,
        (50, 25),
        register,
        |_| {},
    );
    assert!(r.success, "sipp uac failed\n{}", r.summary);
    assert_eq!(r.successful, Some(50), "{}", r.summary);
    // The one registration; each call's INVITE and BYE statefully, the
    // ACK statelessly, no reply from the script itself but the REGISTER's.
    assert_eq!(r.stats["registrar"]["registrar_accepted"], 1, "{}", r.stats);
    assert_eq!(r.stats["tm"]["tm_transactions"], 100, "{}", r.stats);
    assert_eq!(r.stats["sl"]["sl_replies"], 1, "{}", r.stats);
}
