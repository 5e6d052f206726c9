//! The server: a master that pre-forks workers sharing UDP sockets and one
//! shared-memory region (see ARCHITECTURE.md for how a message flows).

pub mod control;
pub mod dns;
pub mod drain;
#[cfg(test)]
mod harness;
#[cfg(test)]
mod harness_tests;
pub mod kernel_drop;
pub mod limits;
pub mod log_limit;
pub mod master;
pub mod proxy;
mod reachable;
pub mod shared;
pub mod tcp;
mod timer;
pub mod udp;
pub mod worker;

use std::io;
use std::io::Read as _;
use std::net::SocketAddr;

use crate::cfg::Config;
use crate::cfg::compile::myself;
use crate::cfg::settings::{Listen, Proto};
use master::{SocketMode, Sockets};

/// What the command line says, over the config's globals.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `-l`: replaces every `listen=`.
    pub listen: Vec<Listen>,
    /// `-n`: replaces `children=`.
    pub workers: Option<u32>,
    /// `-m`: shared memory in MiB.
    pub shm_mb: usize,
    /// `-s`: the control socket, over `ctl_socket=`.
    pub ctl_socket: Option<String>,
    /// The config file, for the control interface's `cfg.check`.
    pub config_path: Option<std::path::PathBuf>,
}

/// A config the server cannot run, said in one line.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> Self {
        StartError(e.to_string())
    }
}

/// A `tls:` listen address needs `enable_tls=yes` and the tls module
/// (as in Kamailio).
fn tls_ready(config: &Config) -> Result<(), String> {
    match config.settings.enable_tls && config.has_module("tls") {
        true => Ok(()),
        false => Err("a tls: listen address needs enable_tls=yes and loadmodule \"tls.so\"".into()),
    }
}

/// What a start refuses of the config with the command line (`rser -c`
/// says the same): `metrics_port` is served by the control process,
/// which runs with a control socket (`ctl_socket`, `-s`) or `fifo`; a
/// `tls:` address needs the tls module and `enable_tls`.
pub fn check_with_options(config: &Config, ctl_socket: Option<&str>) -> Result<(), String> {
    let s = &config.settings;
    if s.listen.iter().any(|l| l.proto == Proto::Tls) {
        tls_ready(config)?;
    }
    if s.metrics_port.is_some()
        && s.ctl_socket.is_none()
        && ctl_socket.is_none()
        && s.fifo.is_none()
    {
        return Err("metrics_port needs the control process: set ctl_socket, -s or fifo".into());
    }
    Ok(())
}

/// The addresses to bind: `-l`, else `listen=` (port from `port=`), else
/// 127.0.0.1 on `port=`; UDP ones, then TCP ones.
/// UDP addresses, and stream (TCP, TLS) ones with their transport.
type ListenAddrs = (Vec<SocketAddr>, Vec<(Proto, SocketAddr)>);

fn listen_addrs(config: &Config, opts: &Options) -> Result<ListenAddrs, StartError> {
    let s = &config.settings;
    let listens: Vec<Listen> = if !opts.listen.is_empty() {
        opts.listen.clone()
    } else if !s.listen.is_empty() {
        s.listen.clone()
    } else {
        vec![Listen {
            proto: Proto::Udp,
            addr: [127, 0, 0, 1].into(),
            port: None,
        }]
    };
    let (mut udp, mut tcp) = (Vec::new(), Vec::new());
    for l in &listens {
        l.servable().map_err(StartError)?;
        let a = SocketAddr::new(l.addr, s.port_of(l));
        match l.proto {
            Proto::Tcp | Proto::Tls => tcp.push((l.proto, a)),
            _ => udp.push(a),
        }
    }
    if tcp.iter().any(|(p, _)| *p == Proto::Tls) {
        tls_ready(config).map_err(StartError)?;
    }
    if tcp.iter().any(|(p, _)| *p == Proto::Tcp) && s.disable_tcp {
        return Err(StartError(
            "a tcp: listen address with disable_tcp=yes".into(),
        ));
    }
    if udp.is_empty() {
        return Err(StartError(
            "listen on at least one UDP address (rser does not serve TCP alone yet)".into(),
        ));
    }
    if udp.len() + tcp.len() > worker::MAX_SOCKETS {
        return Err(StartError(format!(
            "at most {} listen addresses",
            worker::MAX_SOCKETS
        )));
    }
    Ok((udp, tcp))
}

/// This machine's host name (SER's and Kamailio's `myself` match it).
fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// Kamailio's `auto_aliases`, without DNS: the host name, and the names
/// `/etc/hosts` gives the listen addresses, each on every listen port
/// (a reverse DNS lookup at start could stall it; it is not made).
fn auto_aliases(host: &str, hosts: &str, addrs: &[SocketAddr]) -> Vec<crate::cfg::settings::Alias> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |n: &str| {
        let n = n.to_ascii_lowercase();
        if !n.is_empty() && !names.contains(&n) {
            names.push(n);
        }
    };
    add(host);
    for line in hosts.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(ip) = words
            .next()
            .and_then(|w| w.parse::<std::net::IpAddr>().ok())
        else {
            continue;
        };
        if addrs.iter().any(|a| a.ip() == ip) {
            words.for_each(&mut add);
        }
    }
    let mut ports: Vec<u16> = addrs.iter().map(SocketAddr::port).collect();
    ports.sort_unstable();
    ports.dedup();
    names
        .iter()
        .flat_map(|n| {
            ports.iter().map(|&p| crate::cfg::settings::Alias {
                host: n.clone(),
                port: Some(p),
            })
        })
        .collect()
}

/// A secret for the sl to-tag signature and auth's nonces, fresh at
/// every start.
pub(crate) fn secret() -> [u8; 32] {
    let mut s = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut s);
    }
    let mix = std::process::id() as u64 ^ worker::now_ms();
    s[..8]
        .iter_mut()
        .zip(mix.to_le_bytes())
        .for_each(|(a, b)| *a ^= b);
    s
}

/// Raises the soft limit on open files to the hard one: each TCP
/// connection is a descriptor (Kamailio does the same with
/// `open_files_limit`).
fn raise_open_files() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit to fill, then to set.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Runs the server until it is told to stop.
pub fn run(mut config: Config, opts: &Options) -> Result<(), StartError> {
    let (addrs, tcp_addrs) = listen_addrs(&config, opts)?;
    let workers = opts.workers.unwrap_or(config.settings.children).max(1) as usize;
    let mode = if config.settings.reuse_port {
        SocketMode::ReusePort
    } else {
        SocketMode::Shared
    };
    let mut sockets = Sockets::bind(&addrs, mode)?;
    sockets
        .balance(workers, config.settings.reuse_port_balance)
        .map_err(|e| StartError(e.to_string()))?;
    sockets.bind_tcp(&tcp_addrs, workers)?;
    if config.has_module("tls") {
        sockets.tls = Some(tcp::tls::TlsSetup::from_config(&config).map_err(StartError)?);
    }
    if !tcp_addrs.is_empty() {
        raise_open_files();
    }
    // myself is what we really listen on (ports chosen by the kernel too).
    let mut settings = config.settings.clone();
    let bound = |proto: Proto, addrs: &[SocketAddr]| -> Vec<Listen> {
        addrs
            .iter()
            .map(|a| Listen {
                proto,
                addr: a.ip(),
                port: Some(a.port()),
            })
            .collect()
    };
    settings.listen = bound(Proto::Udp, &sockets.addrs);
    for (p, a) in &sockets.tcp_addrs {
        settings.listen.extend(bound(*p, std::slice::from_ref(a)));
    }
    // The shared tables for connections are carved when TCP is served.
    config.settings.listen = settings.listen.clone();
    if settings.auto_aliases {
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let all: Vec<SocketAddr> = sockets
            .addrs
            .iter()
            .chain(sockets.tcp_addrs.iter().map(|(_, a)| a))
            .copied()
            .collect();
        let names = auto_aliases(&host_name(), &hosts, &all);
        settings.aliases.extend(names);
    }
    config.program.myself = myself(&settings);
    let names: Vec<String> = settings
        .aliases
        .iter()
        .map(|a| a.port.map_or(a.host.clone(), |p| format!("{}:{p}", a.host)))
        .collect();
    if !names.is_empty() {
        log::info!("myself also answers to: {}", names.join(", "));
    }
    for a in &sockets.addrs {
        log::info!("listening on udp:{a}");
    }
    for (p, a) in &sockets.tcp_addrs {
        log::info!("listening on {}:{a}", p.name());
    }
    let shm_bytes = opts.shm_mb.max(1) << 20;
    // Counter and process rows: the workers, the timer process, the
    // control process.
    config.path = opts.config_path.clone();
    let ds_params = match config.has_module("dispatcher") {
        true => Some(
            crate::modules::dispatcher::runtime::DsParams::from_config(
                &config,
                opts.config_path.as_deref(),
            )
            .map_err(StartError)?,
        ),
        false => None,
    };
    let shared = shared::Shared::create(shm_bytes, workers + 2, Some(&config))
        .map_err(|e| StartError(e.to_string()))?;
    let ctl_path = opts
        .ctl_socket
        .as_ref()
        .or(config.settings.ctl_socket.as_ref());
    let fifo = config.settings.fifo.as_ref();
    let rpc_fifo = control::rpcfifo::path_of(&config);
    check_with_options(&config, opts.ctl_socket.as_deref()).map_err(StartError)?;
    let control = match (ctl_path, fifo, &rpc_fifo) {
        (None, None, None) => None,
        _ => {
            let listeners = control::Listeners::bind(
                ctl_path.map(std::path::Path::new),
                config.settings.metrics_port,
                fifo.map(|f| (std::path::Path::new(f.as_str()), config.settings.fifo_mode)),
                rpc_fifo.as_ref().map(|(p, m)| (p.as_path(), *m)),
            )?;
            if let Some((path, mode)) = &rpc_fifo {
                log::info!("jsonrpcs fifo on {} (mode {mode:04o})", path.display());
            }
            if let Some(path) = ctl_path {
                log::info!("control interface on unix:{path}");
            }
            if let Some(path) = fifo {
                log::info!(
                    "fifo server on {path} (mode {:04o})",
                    config.settings.fifo_mode
                );
            }
            if let Some(port) = config.settings.metrics_port {
                log::info!("metrics on http://127.0.0.1:{port}/metrics");
            }
            Some(master::ControlSetup {
                listeners,
                config_path: opts.config_path.clone(),
                ds_params: ds_params.clone(),
                started: crate::modules::usrloc::unix_now(),
            })
        }
    };
    master::supervise(&config, &shared, sockets, workers, control)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_aliases_are_the_host_name_and_the_listen_addresses_names() {
        let hosts = "127.0.0.1 localhost\n# 10.0.0.1 commented\n192.0.2.1 sip.example.net sip\n::1 ip6-localhost\n";
        let addrs: Vec<SocketAddr> = vec!["192.0.2.1:5060".parse().unwrap()];
        let a = auto_aliases("VM", hosts, &addrs);
        let names: Vec<_> = a.iter().map(|a| (a.host.as_str(), a.port)).collect();
        assert_eq!(
            names,
            [
                ("vm", Some(5060)),
                ("sip.example.net", Some(5060)),
                ("sip", Some(5060))
            ]
        );
    }
}
