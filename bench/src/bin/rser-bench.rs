//! rser-bench: drives a scenario through a SIP proxy at a target rate, or
//! searches for the highest rate at which every transaction completes.
//! See `rser_bench::load` for how it works.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rser_bench::load::driver::{Scenario, Setup};
use rser_bench::load::engine::{self, RunResult, Sockets};
use rser_bench::load::report::{self, Latency, Report, Trial};
use rser_bench::load::search::Search;
use rser_bench::load::tcp::TcpNet;
use rser_bench::load::users::{self, User};

#[derive(Parser)]
#[command(
    version,
    about = "SIP load generator: a UAC and a UAS driving a scenario through a proxy"
)]
struct Args {
    /// options | forward | call | register
    #[arg(long)]
    scenario: String,
    /// The proxy, HOST:PORT.
    #[arg(long)]
    target: SocketAddr,
    /// Where our UAS listens (forward and call), and the Request-URI's host.
    #[arg(long, default_value = "127.0.0.1:5070")]
    uas: SocketAddr,
    /// Play this many UAS destinations, on consecutive ports from --uas
    /// (a load balancer's pool).
    #[arg(long, default_value_t = 1)]
    uas_count: usize,
    /// Generator threads, each with its own sockets (its UAS on the next
    /// port: --uas + thread) and rate/threads of the load, to drive a
    /// proxy that one core cannot (UDP; not with --callee, --uas-count or
    /// --search).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Units (requests, calls, registrations) started per second; with
    /// --search, the first rate tried.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Length of the run (of each trial with --search): 10s, 500ms, 2m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Search for the highest rate at which every unit completes.
    #[arg(long)]
    search: bool,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the latency distribution (HdrHistogram text, ms) here.
    #[arg(long)]
    hgrm: Option<PathBuf>,
    /// Send from this many sockets (many peers), or 1 (one trunk).
    #[arg(long, default_value_t = 1)]
    peers: usize,
    /// The UAC's source address (another loopback address, 127.0.0.2,
    /// plays another site); default the target's for a loopback target,
    /// else any.
    #[arg(long)]
    source: Option<std::net::IpAddr>,
    /// udp, or tcp: each peer one connection to the proxy, the UAS
    /// listening for the proxy's (call and forward; a new set of
    /// connections each trial).
    #[arg(long, default_value = "udp")]
    transport: String,
    /// Drop this share (percent) of our own datagrams.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Users to register: sipp's injection CSV (SEQUENTIAL, then
    /// user;password lines). Without it: bench0..bench999, no passwords.
    #[arg(long)]
    users: Option<PathBuf>,
    /// Domain of the registered addresses (default: the target's host).
    #[arg(long)]
    domain: Option<String>,
    /// The calls' From URI (a proxy relaying only for its own users wants
    /// one of its domain).
    #[arg(long, default_value = "sip:bench@rser-bench")]
    from: String,
    /// Calls go to this address of record at the proxy (`call`), whose
    /// contact is our UAS: registered with the proxy (one REGISTER,
    /// expires 3600) before the run, so a registrar-proxy (Kamailio's
    /// stock config) looks it up. Default: the UAS's own address.
    #[arg(long)]
    callee: Option<String>,
    /// A transaction with no final reply by then has failed.
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    timeout: Duration,
    /// Units in flight at most; beyond it new ones fail at once.
    #[arg(long, default_value_t = 200_000)]
    max_inflight: usize,
    /// --search stops when the clean and unclean rates are this close.
    #[arg(long, default_value_t = 0.05)]
    precision: f64,
    /// --search tries at most this many rates.
    #[arg(long, default_value_t = 14)]
    max_trials: u32,
    /// A trial with more retransmissions than this share of its units
    /// (percent) is not clean: on loopback each one is a datagram the
    /// proxy dropped. Not applied with --loss.
    #[arg(long, default_value_t = 0.1)]
    max_retransmit_pct: f64,
    /// --search waits this long after a trial that was not clean.
    #[arg(long, default_value = "6s", value_parser = parse_duration)]
    settle: Duration,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.parse().map_err(|_| format!("not a duration: {s}"))?;
    if !(v.is_finite() && v > 0.0 && v * scale <= 86_400.0) {
        return Err(format!("duration out of range: {s}"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// Registers `aor` at `target` with our UAS as its contact; an error
/// unless a 200 comes within three tries of a second.
fn register_callee(target: SocketAddr, aor: &str, uas: SocketAddr) -> Result<(), String> {
    let sock = std::net::UdpSocket::bind((target.ip(), 0)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    let me = sock.local_addr().map_err(|e| e.to_string())?;
    let user = aor
        .strip_prefix("sip:")
        .and_then(|r| r.split('@').next())
        .ok_or_else(|| format!("--callee {aor}: not sip:user@host"))?;
    for attempt in 0..3 {
        let msg = format!(
            "REGISTER sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-callee-{attempt};rport\r\n\
             Max-Forwards: 70\r\nTo: <{aor}>\r\nFrom: <{aor}>;tag=callee\r\n\
             Call-ID: rser-bench-callee@{me}\r\nCSeq: {n} REGISTER\r\n\
             Contact: <sip:{user}@{uas}>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n",
            n = attempt + 1
        );
        sock.send_to(msg.as_bytes(), target)
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4096];
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            let reply = String::from_utf8_lossy(&buf[..n]);
            if reply.starts_with("SIP/2.0 200") {
                return Ok(());
            }
            if !reply.starts_with("SIP/2.0 1") {
                let first = reply.lines().next().unwrap_or("");
                return Err(format!("--callee {aor}: the REGISTER got {first}"));
            }
        }
    }
    Err(format!(
        "--callee {aor}: no 200 to the REGISTER from {target}"
    ))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rser-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let scenario = Scenario::parse(&args.scenario).ok_or_else(|| {
        format!(
            "unknown scenario {:?}: options, forward, call or register",
            args.scenario
        )
    })?;
    if !(1..=64).contains(&args.uas_count) {
        return Err("--uas-count must be 1 to 64".into());
    }
    if !(1..=1024).contains(&args.peers) {
        return Err("--peers must be 1 to 1024".into());
    }
    if !(0.0..100.0).contains(&args.loss) {
        return Err("--loss must be at least 0 and below 100".into());
    }
    if !(args.rate.is_finite() && args.rate >= 1.0) {
        return Err("--rate must be at least 1".into());
    }
    let users: Vec<User> = match &args.users {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            users::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => Vec::new(),
    };
    let local_ip = match args.source {
        Some(ip) => ip,
        None if args.target.ip().is_loopback() => args.target.ip(),
        None => std::net::Ipv4Addr::UNSPECIFIED.into(),
    };
    let threads = args.threads.max(1);
    if threads > 1
        && (args.callee.is_some() || args.uas_count > 1 || args.search || args.transport != "udp")
    {
        return Err("--threads: UDP only, without --callee, --uas-count or --search".into());
    }
    let bind = |t: usize| {
        let uas = match (t, args.uas.port()) {
            (0, _) | (_, 0) => args.uas,
            (t, p) => SocketAddr::new(args.uas.ip(), p.saturating_add(t as u16)),
        };
        Sockets::bind(
            args.peers,
            local_ip,
            scenario.needs_uas().then_some(uas),
            args.uas_count,
        )
        .map_err(|e| e.to_string())
    };
    let all: Vec<Sockets> = (0..threads).map(bind).collect::<Result<_, _>>()?;
    let sockets = &all[0];
    let domain = args
        .domain
        .clone()
        .unwrap_or_else(|| args.target.ip().to_string());
    if let Some(aor) = &args.callee {
        register_callee(args.target, aor, sockets.uas_addr.unwrap_or(args.uas))?;
    }
    let run_base = std::process::id().wrapping_mul(2_654_435_761).wrapping_add(
        std::time::SystemTime::now()
            .elapsed()
            .map_or(0, |d| d.subsec_nanos()),
    );
    let tcp = match args.transport.as_str() {
        "udp" => false,
        "tcp" => true,
        other => return Err(format!("--transport {other}: udp or tcp")),
    };
    if tcp && args.callee.is_some() {
        return Err("--callee registers over UDP: not with --transport tcp".into());
    }
    let one = |sockets: &Sockets, rate: f64, n: u32, progress: bool| -> RunResult {
        let mut net = tcp.then(|| {
            TcpNet::open(args.target, args.peers, &sockets.uas_addrs).unwrap_or_else(|e| {
                eprintln!("rser-bench: {e}");
                std::process::exit(1)
            })
        });
        let locals = match &net {
            Some(n) => n.locals(),
            None => sockets.uac_addrs.clone(),
        };
        let setup = Setup {
            scenario,
            target: args.target,
            uas: sockets.uas_addr.unwrap_or(args.uas),
            uas_all: sockets.uas_addrs.clone(),
            locals,
            users: users.clone(),
            domain: domain.clone(),
            caller: args.from.clone(),
            callee: args.callee.clone(),
            loss: args.loss / 100.0,
            timeout_us: args.timeout.as_micros() as u64,
            max_inflight: args.max_inflight,
            run: run_base.wrapping_add(n) & 0x7fff_ffff,
            tcp,
        };
        engine::run(
            sockets,
            net.as_mut(),
            setup,
            rate,
            args.duration,
            args.timeout,
            progress,
        )
    };
    // Each thread its share of the rate on its own sockets; their counts
    // and latencies summed into one result.
    let trial = |rate: f64, n: u32| -> RunResult {
        if threads == 1 {
            return one(sockets, rate, n, !args.quiet);
        }
        let each = rate / threads as f64;
        let results: Vec<RunResult> = std::thread::scope(|scope| {
            let handles: Vec<_> = all
                .iter()
                .enumerate()
                .map(|(t, socks)| {
                    let one = &one;
                    scope.spawn(move || one(socks, each, n, t == 0 && !args.quiet))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a generator thread"))
                .collect()
        });
        let mut it = results.into_iter();
        let mut total = it.next().expect("at least one thread");
        for r in it {
            total.stats.add(&r.stats);
            let _ = total.driver.hist.add(&r.driver.hist);
            total.send_secs = total.send_secs.max(r.send_secs);
            total.send_failures += r.send_failures;
        }
        total
    };
    let (best, trials, clean_rate) = if args.search {
        let mut search = Search::new(args.precision, args.max_trials);
        let mut trials = Vec::new();
        let mut best: Option<(f64, RunResult)> = None;
        let mut last = None;
        let mut rate = args.rate.round();
        for n in 0.. {
            let r = trial(rate, n);
            let rtx_limit = (args.loss == 0.0).then_some(args.max_retransmit_pct);
            let t = trial_of(rate, &r, args.duration.as_secs_f64(), rtx_limit);
            println!(
                "trial {}: {rate:.0}/s sent {} completed {} failed {} (timeouts {}, error replies {}) \
                 retransmitted {}{} -> {}",
                n + 1,
                t.sent,
                t.completed,
                t.failed,
                r.stats.timeouts,
                r.stats.error_replies,
                t.retransmitted,
                if t.generator_limited {
                    " (generator-limited)"
                } else {
                    ""
                },
                if t.clean { "clean" } else { "not clean" }
            );
            let clean = t.clean;
            trials.push(t);
            let next = search.record(rate, clean);
            if clean && best.as_ref().is_none_or(|(b, _)| rate > *b) {
                best = Some((rate, r));
            } else {
                last = Some((rate, r));
            }
            match next {
                Some(next) => rate = next,
                None => break,
            }
            // Let the proxy finish the last trial's transactions: after an
            // overload its tables may be full for a while (tm keeps a
            // finished transaction for its wait timer, 5 s by default).
            std::thread::sleep(if clean {
                Duration::from_secs(1)
            } else {
                args.settle
            });
        }
        let chosen = best.or(last).expect("at least one trial ran");
        (chosen, trials, Some(search.clean_rate().unwrap_or(0.0)))
    } else {
        ((args.rate, trial(args.rate, 0)), Vec::new(), None)
    };
    let (rate, result) = best;
    let secs = result.send_secs;
    let s = result.stats;
    let latency = Latency::of(&result.driver.hist);
    let report = Report {
        scenario: scenario.name().into(),
        target: args.target.to_string(),
        uas: args.uas.to_string(),
        uas_requests: match args.uas_count {
            1 => Vec::new(),
            _ => result.driver.uas_requests().to_vec(),
        },
        peers: args.peers * threads,
        loss_pct: args.loss,
        rate,
        duration_s: secs,
        stats: s,
        achieved_rate: s.completed as f64 / secs,
        generator_limited: report::generator_limited(&s, rate, secs),
        latency_us: latency.clone(),
        clean_rate,
        trials,
    };
    if result.send_failures > 0 {
        eprintln!(
            "rser-bench: {} datagrams could not be sent",
            result.send_failures
        );
    }
    print_summary(&report);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &args.hgrm {
        std::fs::write(path, report::hgrm(&result.driver.hist))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn trial_of(rate: f64, r: &RunResult, secs: f64, rtx_limit_pct: Option<f64>) -> Trial {
    let s = &r.stats;
    let limited = report::generator_limited(s, rate, secs);
    let rtx_ok =
        rtx_limit_pct.is_none_or(|pct| s.retransmitted as f64 <= s.started as f64 * pct / 100.0);
    Trial {
        rate,
        sent: s.started,
        completed: s.completed,
        failed: s.failed,
        retransmitted: s.retransmitted,
        generator_limited: limited,
        clean: s.failed == 0 && s.completed == s.started && !limited && rtx_ok,
    }
}

fn print_summary(r: &Report) {
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "{} via {}: {:.0}/s for {:.1} s from {} peer(s){}",
        r.scenario,
        r.target,
        r.rate,
        r.duration_s,
        r.peers,
        if r.loss_pct > 0.0 {
            format!(", {}% loss", r.loss_pct)
        } else {
            String::new()
        }
    );
    println!(
        "sent {} completed {} failed {} (timeouts {}, error replies {}, no free slot {}) \
         retransmitted {} dropped {} strays {}",
        r.stats.started,
        r.stats.completed,
        r.stats.failed,
        r.stats.timeouts,
        r.stats.error_replies,
        r.stats.rejected_full,
        r.stats.retransmitted,
        r.stats.dropped,
        r.stats.strays
    );
    let l = &r.latency_us;
    println!(
        "achieved {:.1}/s{}; latency ms over {} transactions: p50 {:.3} p90 {:.3} p99 {:.3} \
         p99.9 {:.3} max {:.3}",
        r.achieved_rate,
        if r.generator_limited {
            " (generator-limited)"
        } else {
            ""
        },
        l.count,
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.p99_9),
        ms(l.max)
    );
    if let Some(c) = r.clean_rate {
        println!("clean rate: {c:.0}/s");
    }
}
