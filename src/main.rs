//! The `rser` binary: Kamailio's command-line conventions.

use std::process::ExitCode;

use clap::{ArgAction, Parser};

use rser::cfg;
use rser::cfg::settings::Listen;
use rser::server::{self, Options};

/// rser: a SIP router scripted in SER's routing language.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Configuration file (SER's ser.cfg language).
    #[arg(
        short = 'f',
        long = "config",
        value_name = "FILE",
        default_value = "ser.cfg"
    )]
    config: String,
    /// Check the configuration and exit: 0 when it is valid, else one
    /// `FILE:LINE:COL: error: ...` line per problem on stderr.
    #[arg(short = 'c', long = "check")]
    check: bool,
    /// With -c: print the compiled program, one instruction a line.
    #[arg(long = "dump", requires = "check")]
    dump: bool,
    /// Listen address, `udp:127.0.0.1:5060` or `127.0.0.1:5060`
    /// (repeatable; replaces listen= and port=; port 0 lets the kernel choose).
    #[arg(short = 'l', long = "listen", value_name = "ADDR")]
    listen: Vec<String>,
    /// Worker processes (replaces children=).
    #[arg(short = 'n', long = "workers", value_name = "N")]
    workers: Option<u32>,
    /// Shared memory in MiB.
    #[arg(short = 'm', long = "shm", value_name = "MB", default_value_t = 64)]
    shm_mb: usize,
    /// Write the master's pid to this file.
    #[arg(short = 'P', long = "pid-file", value_name = "FILE")]
    pid_file: Option<String>,
    /// The control interface's Unix socket (replaces ctl_socket=).
    #[arg(short = 's', long = "ctl-socket", value_name = "PATH")]
    ctl_socket: Option<String>,
    /// Detach from the terminal and run in the background.
    #[arg(long = "daemon")]
    daemon: bool,
    /// More verbose logging (repeatable); RUST_LOG overrides.
    #[arg(short = 'd', action = ArgAction::Count)]
    debug: u8,
    /// Defines NAME (with VALUE) for the config's `#!ifdef` and its text,
    /// as Kamailio's `-A` (repeatable).
    #[arg(short = 'A', value_name = "NAME[=VALUE]")]
    defines: Vec<String>,
}

/// A problem in the config, said as `FILE:LINE:COL: ...` (an included
/// file names itself).
fn said(config: &str, e: &cfg::ConfigError) -> String {
    match e.file {
        Some(_) => e.to_string(),
        None => format!("{config}:{e}"),
    }
}

/// SER's `debug=` level plus `-d`s onto a log filter.
fn log_filter(debug: i64, more: u8) -> &'static str {
    match debug + i64::from(more) {
        i64::MIN..=0 => "warn",
        1 | 2 => "info",
        3 => "debug",
        _ => "trace",
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let src = match std::fs::read_to_string(&cli.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: error: cannot read the configuration: {e}", cli.config);
            return ExitCode::FAILURE;
        }
    };
    // The checks a start makes are made here too: a config -c passes
    // starts, and what it accepts but does not do is said either way.
    let path = std::fs::canonicalize(&cli.config).ok();
    let defines: Vec<(String, Option<String>)> = cli
        .defines
        .iter()
        .map(|d| match d.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (d.clone(), None),
        })
        .collect();
    let config = match cfg::load_with(&src, path.as_deref(), &defines) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                eprintln!("{}", said(&cli.config, e));
            }
            return ExitCode::FAILURE;
        }
    };
    for w in &config.warnings {
        eprintln!("{}", said(&cli.config, w));
    }
    if let Err(e) = server::check_with_options(&config, cli.ctl_socket.as_deref()) {
        eprintln!("{}: error: {e}", cli.config);
        return ExitCode::FAILURE;
    }
    if cli.check {
        if cli.dump {
            print!("{}", config.program.dump());
        }
        return ExitCode::SUCCESS;
    }
    let filter = log_filter(config.settings.debug, cli.debug);
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(filter)).init();
    let mut listen = Vec::new();
    for l in &cli.listen {
        match Listen::parse(l) {
            Ok(l) => listen.push(l),
            Err(e) => {
                eprintln!("-l {l}: error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let opts = Options {
        listen,
        workers: cli.workers,
        shm_mb: cli.shm_mb,
        ctl_socket: cli.ctl_socket.clone(),
        config_path: path,
    };
    if cli.daemon {
        if let Err(e) = daemonize() {
            eprintln!("--daemon: error: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Some(p) = &cli.pid_file {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            eprintln!("-P {p}: error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = server::run(config, &opts);
    if let Some(p) = &cli.pid_file {
        let _ = std::fs::remove_file(p);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{}: {e}", cli.config);
            eprintln!("{}: error: {e}", cli.config);
            ExitCode::FAILURE
        }
    }
}

/// Forks into the background: the parent exits, the child leads a new
/// session with standard input from /dev/null.
fn daemonize() -> std::io::Result<()> {
    use nix::unistd::{ForkResult, fork, setsid};
    // SAFETY: single-threaded at this point.
    match unsafe { fork() }.map_err(std::io::Error::from)? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {
            setsid().map_err(std::io::Error::from)?;
            let null = std::fs::File::open("/dev/null")?;
            nix::unistd::dup2_stdin(&null).map_err(std::io::Error::from)?;
            Ok(())
        }
    }
}
