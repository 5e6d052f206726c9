//! The master process: binds the sockets, creates the shared region,
//! pre-forks the workers, replaces any that dies, and stops them all on
//! SIGTERM or SIGINT.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, kill, sigaction};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use socket2::{Domain, Socket, Type};

use super::control::Listeners;
use super::shared::{Role, Shared};
use super::worker::Worker;
use crate::cfg::Config;
use crate::cfg::settings::Proto;
use crate::script::Vm;

/// How workers share the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketMode {
    /// One socket bound before fork, read by every worker (Kamailio's way).
    Shared,
    /// One `SO_REUSEPORT` socket per worker; the kernel spreads datagrams by
    /// a hash of the sender's address.
    ReusePort,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Receive buffer asked of the kernel for each socket (best effort).
const RCVBUF_BYTES: usize = 4 << 20;

fn bind_udp(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    let _ = s.set_recv_buffer_size(RCVBUF_BYTES);
    let _ = s.set_send_buffer_size(RCVBUF_BYTES);
    // ICMP errors for what we send are queued for us to read, so a next
    // hop's closed port ends its branch at once (see udp::read_errors).
    super::udp::enable_recv_errors(std::os::fd::AsRawFd::as_raw_fd(&s), addr.is_ipv6())?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Connections a listening socket queues before its worker accepts them.
const TCP_BACKLOG: i32 = 1024;

fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // Each worker listens on its own socket of the group; the kernel
    // spreads new connections over them (no process accepts for all).
    s.set_reuse_port(true)?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.listen(TCP_BACKLOG)?;
    Ok(s.into())
}

/// The master's sockets: in shared mode the ones every worker reads; in
/// reuse-port mode one set per worker slot, bound on the same ports.
pub struct Sockets {
    mode: SocketMode,
    /// Bound addresses (ports resolved when 0 was asked for).
    pub addrs: Vec<SocketAddr>,
    shared: Vec<UdpSocket>,
    /// `tcp:` and `tls:` listen addresses, bound.
    pub tcp_addrs: Vec<(Proto, SocketAddr)>,
    /// TLS's configurations, when the tls module is loaded.
    pub tls: Option<super::tcp::tls::TlsSetup>,
    /// Per worker slot, its listening socket on each `tcp:` address. The
    /// master keeps them, so a respawned worker takes over its slot's
    /// socket with the connections queued on it.
    tcp: Vec<Vec<TcpListener>>,
}

impl Sockets {
    pub fn bind(addrs: &[SocketAddr], mode: SocketMode) -> io::Result<Sockets> {
        let mut shared = Vec::new();
        let mut bound = Vec::new();
        for a in addrs {
            let s = bind_udp(*a, mode == SocketMode::ReusePort)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on udp:{a}: {e}")))?;
            bound.push(s.local_addr()?);
            shared.push(s);
        }
        Ok(Sockets {
            mode,
            addrs: bound,
            shared,
            tcp_addrs: Vec::new(),
            tcp: Vec::new(),
            tls: None,
        })
    }

    /// One listening socket per worker on each of `addrs` (`tcp:` and
    /// `tls:`; a port 0 is chosen by the first bind, the rest join it).
    pub fn bind_tcp(&mut self, addrs: &[(Proto, SocketAddr)], workers: usize) -> io::Result<()> {
        let cannot = |p: Proto, a: &SocketAddr, e: io::Error| {
            io::Error::new(e.kind(), format!("cannot listen on {}:{a}: {e}", p.name()))
        };
        let mut bound = Vec::new();
        let mut per_slot: Vec<Vec<TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
        for (p, a) in addrs {
            let mut at = *a;
            for slot in per_slot.iter_mut() {
                let l = bind_tcp(at).map_err(|e| cannot(*p, a, e))?;
                at = l.local_addr()?;
                slot.push(l);
            }
            bound.push((*p, at));
        }
        self.tcp_addrs = bound;
        self.tcp = per_slot;
        Ok(())
    }

    /// Worker `slot`'s own listening sockets, as new descriptors.
    fn tcp_for(&self, slot: usize) -> io::Result<Vec<TcpListener>> {
        self.tcp
            .get(slot)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(TcpListener::try_clone)
            .collect()
    }

    /// Reuse-port mode: how the kernel picks a worker's socket among the
    /// `workers` of each group (`Hash`: its own, nothing to attach).
    pub fn balance(&self, workers: usize, how: crate::cfg::settings::Balance) -> io::Result<()> {
        use crate::cfg::settings::Balance;
        if self.mode != SocketMode::ReusePort || how == Balance::Hash {
            return Ok(());
        }
        for s in &self.shared {
            super::udp::attach_balance(
                std::os::fd::AsRawFd::as_raw_fd(s),
                workers as u32,
                how == Balance::Cpu,
            )
            .map_err(|e| io::Error::new(e.kind(), format!("reuse_port_balance: {e}")))?;
        }
        Ok(())
    }

    /// In reuse-port mode the master's own sockets would take a share of
    /// the traffic that nobody reads: close them once workers have theirs.
    fn release_master_copies(&mut self) {
        if self.mode == SocketMode::ReusePort {
            self.shared.clear();
        }
    }

    /// New descriptors for the master's sockets.
    fn clones(&self) -> io::Result<Vec<UdpSocket>> {
        self.shared.iter().map(UdpSocket::try_clone).collect()
    }

    /// Sockets for the timer process, which sends and never reads: in
    /// shared mode the master's own; in reuse-port mode a socket of the
    /// group would take a share of the traffic, so it sends from an
    /// ephemeral port on the same address (replies follow the Via, not the
    /// source port).
    fn for_timer(&self) -> io::Result<Vec<UdpSocket>> {
        match self.mode {
            SocketMode::Shared => self.clones(),
            SocketMode::ReusePort => self
                .addrs
                .iter()
                .map(|a| bind_udp(SocketAddr::new(a.ip(), 0), false))
                .collect(),
        }
    }

    /// Fresh SO_REUSEPORT sockets on the same addresses.
    fn bind_again(&self) -> io::Result<Vec<UdpSocket>> {
        self.addrs.iter().map(|a| bind_udp(*a, true)).collect()
    }
}

fn install_stop_handlers() -> io::Result<()> {
    let act = SigAction::new(
        SigHandler::Handler(on_stop),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { sigaction(sig, &act) }.map_err(io::Error::from)?;
    }
    Ok(())
}

/// The signals the master waits for rather than handles (they stay
/// pending until it asks): a stop, and a child that ended.
fn master_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD] {
        set.add(sig);
    }
    set
}

fn default_signals_in_child() {
    // The master blocks what it waits for; a child takes them as usual.
    let _ = master_signals().thread_unblock();
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: restoring the default disposition.
        let _ = unsafe { sigaction(sig, &dfl) };
    }
}

/// Forks a child that runs `body` (a loop that never returns); returns its pid in the master. The
/// child dies with the master, and in reuse-port mode closes the master's
/// sockets: a socket of the group that nobody reads would still take its
/// share of the traffic, and would outlive the worker that read it.
fn fork_child(sockets: &Sockets, body: impl FnOnce()) -> io::Result<Pid> {
    let master = std::process::id();
    // SAFETY: the master is single-threaded; the child goes straight into
    // its own loop and never returns here.
    match unsafe { fork() }.map_err(io::Error::from)? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            default_signals_in_child();
            // Die with the master, however it dies.
            // SAFETY: plain prctl call.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            if std::os::unix::process::parent_id() != master {
                std::process::exit(0);
            }
            if sockets.mode == SocketMode::ReusePort {
                for s in &sockets.shared {
                    // SAFETY: closing inherited descriptors this process
                    // never uses again (the UdpSocket values are never
                    // dropped: the child does not return).
                    unsafe { libc::close(std::os::fd::AsRawFd::as_raw_fd(s)) };
                }
            }
            // Every worker's listening sockets: a worker took copies of
            // its own before (`tcp_for`); one it kept of another's would
            // outlive that worker.
            for l in sockets.tcp.iter().flatten() {
                // SAFETY: as above, never used or dropped here again.
                unsafe { libc::close(std::os::fd::AsRawFd::as_raw_fd(l)) };
            }
            body();
            // A child's loop never returns; if it did, it must not go on
            // as a second master.
            std::process::exit(0)
        }
    }
}

/// Forks the timer process (tm's timers, usrloc's upkeep; counter row
/// `slot`); returns its pid.
fn spawn_timer(
    slot: usize,
    config: &Config,
    shared: &Shared,
    sockets: &Sockets,
) -> io::Result<Pid> {
    let socks = sockets.for_timer()?;
    fork_child(sockets, || {
        let vm = Vm::new(config);
        super::drain::install();
        std::thread::scope(|s| {
            // Modules' helpers (usrloc's expiry and database writes, acc's
            // writer) run beside tm's timers, so a slow write never delays
            // a retransmission.
            for (m, def) in crate::modules::MODULES.iter().enumerate() {
                let helper = def.hooks.and_then(|h| h.helper);
                let used = crate::modules::def::Hooks::used_by(def, config);
                if let (Some(helper), true) = (helper, used) {
                    let start = crate::modules::def::Start {
                        config,
                        shm: shared.modules[m].as_ref(),
                        modules: &shared.modules,
                        counts: super::worker::module_counts(shared, slot, m),
                    };
                    s.spawn(move || helper(&start));
                }
            }
            let mut timer = Worker::new(slot, config, shared, &socks, &vm);
            // Probes carry the listening address in their Via.
            timer.listen = sockets.addrs.clone();
            // It sends on the workers' connections (through their
            // owners), never opening or reading one.
            if let Err(e) = timer.serve_streams(Vec::new(), &sockets.tcp_addrs, sockets.tls.clone())
            {
                log::error!("timer process: {e}");
                std::process::exit(3);
            }
            // Its own ports (reuse-port mode) get only replies to what it
            // sent, from peers that answer to the source port: it reads
            // them. The shared socket is the workers' to read.
            timer.reads_own = sockets.mode == SocketMode::ReusePort;
            timer.run_timer_process()
        })
    })
}

/// The control process's listeners and what it reports.
pub struct ControlSetup {
    pub listeners: Listeners,
    pub config_path: Option<std::path::PathBuf>,
    /// Where `dispatcher.reload` reads the list, when dispatcher is loaded.
    pub ds_params: Option<crate::modules::dispatcher::runtime::DsParams>,
    /// Unix seconds at start, for `core.uptime`.
    pub started: u64,
}

/// Forks the control process (counter row `slot`); returns its pid.
fn spawn_control(
    slot: usize,
    config: &Config,
    shared: &Shared,
    sockets: &Sockets,
    c: &ControlSetup,
) -> io::Result<Pid> {
    fork_child(sockets, || {
        super::control::run(
            shared,
            config,
            c.config_path.clone(),
            c.ds_params.clone(),
            shared.tm().map(|_| super::control::uac::UacSetup {
                timers: crate::modules::tm::timers(config),
                local: sockets.addrs[0],
                slot,
            }),
            c.started,
            &c.listeners,
        )
    })
}

/// Forks one worker for `slot`; returns its pid in the master.
fn spawn(slot: usize, config: &Config, shared: &Shared, sockets: &Sockets) -> io::Result<Pid> {
    // Shared mode: every worker reads the master's sockets. Reuse-port
    // mode: the first worker takes over the master's own sockets (so no
    // datagram queued on them is lost), the others, and any replacement,
    // bind their own after fork, so a dead worker's socket dies with it.
    let inherited = match sockets.mode {
        SocketMode::Shared => Some(sockets.clones()?),
        SocketMode::ReusePort if !sockets.shared.is_empty() && slot == 0 => Some(sockets.clones()?),
        SocketMode::ReusePort => None,
    };
    let listeners = sockets.tcp_for(slot)?;
    fork_child(sockets, || {
        let socks = match inherited {
            Some(s) => s,
            None => match sockets.bind_again() {
                Ok(s) => s,
                Err(e) => {
                    log::error!("worker {slot}: {e}");
                    std::process::exit(3);
                }
            },
        };
        let vm = Vm::new(config);
        let mut worker = Worker::new(slot, config, shared, &socks, &vm);
        if let Err(e) = worker.serve_streams(listeners, &sockets.tcp_addrs, sockets.tls.clone()) {
            log::error!("worker {slot}: {e}");
            std::process::exit(3);
        }
        worker.run()
    })
}

/// Runs the master until SIGTERM/SIGINT; then stops the workers.
pub fn supervise(
    config: &Config,
    shared: &Shared,
    mut sockets: Sockets,
    workers: usize,
    control: Option<ControlSetup>,
) -> io::Result<()> {
    install_stop_handlers()?;
    // Blocked before the first fork: a child's end is pending, not lost,
    // until the loop below waits for it.
    master_signals().thread_block().map_err(io::Error::from)?;
    let mut pids: HashMap<Pid, usize> = HashMap::new();
    // tm's timers and usrloc's upkeep run in a process of their own, on
    // counter row `workers`; the control process has the row after it.
    // Dispatcher's probes are sent from it too, htable's expired items
    // swept, pipelimit's load sampled, and the ends of pike's kernel
    // drops applied.
    let timer_slot = (shared.tm().is_some()
        || shared.usrloc().is_some()
        || shared.dispatcher().is_some()
        || ["htable", "pipelimit", "ratelimit"]
            .iter()
            .any(|m| shared.has_shm(m))
        || shared
            .module_shm::<crate::modules::pike::PikeShm>("pike")
            .is_some_and(|p| p.drops.is_some()))
    .then_some(workers);
    let control_slot = control.as_ref().map(|_| workers + 1);
    let role_of = |slot: usize| {
        if Some(slot) == timer_slot {
            Role::Timer
        } else if Some(slot) == control_slot {
            Role::Control
        } else {
            Role::Worker
        }
    };
    let start = |slot: usize, sockets: &Sockets| -> io::Result<Pid> {
        let pid = match role_of(slot) {
            Role::Worker => spawn(slot, config, shared, sockets)?,
            Role::Timer => spawn_timer(slot, config, shared, sockets)?,
            Role::Control => match &control {
                Some(c) => spawn_control(slot, config, shared, sockets, c)?,
                None => unreachable!("a control slot only with a control setup"),
            },
        };
        shared
            .processes
            .set(slot, pid.as_raw() as u32, role_of(slot));
        Ok(pid)
    };
    let slots = (0..workers).chain(timer_slot).chain(control_slot);
    for slot in slots {
        pids.insert(start(slot, &sockets)?, slot);
    }
    sockets.release_master_copies();
    log::info!(
        "serving with {workers} workers on {}",
        sockets
            .addrs
            .iter()
            .map(|a| format!("udp:{a}"))
            .chain(
                sockets
                    .tcp_addrs
                    .iter()
                    .map(|(p, a)| format!("{}:{a}", p.name()))
            )
            .collect::<Vec<_>>()
            .join(", ")
    );
    // The master sleeps until a signal: a stop, or a child that ended
    // (reaped and started again). No polling: a master awake 100 times a
    // second cost a fair part of a call's CPU at low rates.
    let waited = master_signals();
    'serve: while !STOP.load(Ordering::SeqCst) {
        match waited.wait() {
            Ok(Signal::SIGCHLD) => {}
            Ok(_) => {
                STOP.store(true, Ordering::SeqCst);
                break;
            }
            Err(e) => {
                log::error!("master: waiting for signals: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(status) => status,
            };
            let Some(pid) = status.pid() else { continue };
            let Some(slot) = pids.remove(&pid) else {
                continue;
            };
            if STOP.load(Ordering::SeqCst) {
                break 'serve;
            }
            let role = match role_of(slot) {
                Role::Worker => "worker",
                Role::Timer => "timer process",
                Role::Control => "control process",
            };
            log::warn!("{role} {slot} (pid {pid}) ended: {status:?}; starting a new one");
            // Its connections died with it: other workers must not hand
            // it sends for them, and its peers reconnect to any worker.
            if let Some(streams) = &shared.streams {
                let gone = streams.conns.remove_owner(slot as u16);
                if gone > 0 {
                    log::warn!("{role} {slot} took {gone} TCP connections with it");
                }
            }
            match start(slot, &sockets) {
                Ok(new) => {
                    pids.insert(new, slot);
                }
                Err(e) => log::error!("cannot restart worker {slot}: {e}"),
            }
        }
    }
    stop_all(&mut pids);
    if let Some(c) = &control {
        // What the control process listened on goes with the server.
        for path in [&c.listeners.unix_path, &c.listeners.fifo]
            .into_iter()
            .flatten()
        {
            let _ = std::fs::remove_file(path);
        }
    }
    log::info!("stopped; counters: {}", shared.summary());
    log::info!(
        "received per worker: {}",
        shared.received_per_worker(workers)
    );
    Ok(())
}

/// SIGTERM to every worker, then SIGKILL to any still there after 1.5 s.
fn stop_all(pids: &mut HashMap<Pid, usize>) {
    for pid in pids.keys() {
        let _ = kill(*pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_millis(1500);
    while !pids.is_empty() && Instant::now() < deadline {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(5)),
            Ok(s) => {
                if let Some(pid) = s.pid() {
                    pids.remove(&pid);
                }
            }
            Err(_) => break,
        }
    }
    for pid in pids.keys() {
        let _ = kill(*pid, Signal::SIGKILL);
        let _ = waitpid(*pid, None);
    }
    pids.clear();
}
