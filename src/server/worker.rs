//! A worker process: receive a batch of datagrams, run each through the
//! ACK filter and the script (requests) or stateless reply routing
//! (replies), send what they produced in one batch, and again. The worker
//! is also the script's [`Host`]: forwarding and the sl and maxfwd actions.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use arrayvec::ArrayVec;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::dns::Resolver;
use super::log_limit::LogLimit;
use super::proxy::{self, ForwardError, NextHop, ReplyError};
use super::reachable::Reachable;
use super::shared::{Counter, Shared};
use super::tcp::conns::Stream;
use super::tcp::endpoint::{Endpoint, Happened, Inbox, Limits};
use super::udp::{NoStreams, Outbox, RxBatch, StreamSend};
use crate::cfg::Config;
use crate::cfg::ast::RouteKind;
use crate::cfg::program::{ForwardKind, Param};
use crate::cfg::registry::Func;
use crate::cfg::settings::Proto;
use crate::modules::MODULES;
use crate::modules::def::{Counts, Cx, Hooks, Refusal, Runtime, Shell, Start, TmEvent, Wants};
use crate::modules::dispatcher::Failover;
use crate::modules::sl::{self, AckFilter, AckVerdict, SlCounter, SlShm};
use crate::modules::tm::txn::{SEND_FAILED, SEND_FAILED_REASON};
use crate::script::{Destination, Host, MsgCtx, Outcome, ScriptState, Vm};
use crate::sip::{Message, Method};

pub use super::limits::MAX_SOCKETS;

/// Milliseconds on the system-wide monotonic clock (the same in every
/// process, unlike `Instant`'s opaque value).
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Module `m`'s counters in `slot`'s row.
pub(crate) fn module_counts(shared: &Shared, slot: usize, m: usize) -> Counts<'_> {
    Counts {
        counters: &shared.counters,
        slot,
        base: super::shared::counter_base(m),
    }
}

/// The modules whose runtime wants one place of the loop.
fn wanting(
    runtimes: &[Option<Box<dyn Runtime + '_>>],
    which: impl Fn(Wants) -> bool,
) -> ArrayVec<u8, MAX_HOOKS> {
    runtimes
        .iter()
        .enumerate()
        .filter(|(_, r)| r.as_ref().is_some_and(|r| which(r.wants())))
        .map(|(m, _)| m as u8)
        .collect()
}

/// Each loaded module's runtime in this process, over its tables.
fn start_runtimes<'a>(
    config: &'a Config,
    shared: &'a Shared,
    slot: usize,
) -> Vec<Option<Box<dyn Runtime + 'a>>> {
    MODULES
        .iter()
        .enumerate()
        .map(|(m, def)| {
            let start = def.hooks?.start.filter(|_| Hooks::used_by(def, config))?;
            Some(start(&Start {
                config,
                shm: shared.modules.get(m).and_then(Option::as_ref),
                counts: module_counts(shared, slot, m),
                modules: &shared.modules,
            }))
        })
        .collect()
}

pub struct Worker<'a> {
    slot: usize,
    /// The compiled script, for the routes tm runs (failure_route,
    /// onreply_route, branch_route) as well as the main one.
    pub(crate) vm: &'a Vm<'a>,
    /// pike's `kernel_drop` list, and what this process attached of it
    /// to its UDP sockets.
    /// Lock waits already counted (`rser_shm::lock::waits`).
    lock_waits_seen: u64,
    pub(crate) kernel_drop: Option<(
        crate::server::kernel_drop::DropList,
        crate::server::kernel_drop::Applied,
    )>,
    pub(crate) shared: &'a Shared,
    /// sl's ACK filter and counters: the stateless replies every module
    /// and the core send.
    ack_filter: AckFilter,
    /// The core's reply route (`reply_route`), if the script has one.
    reply_route: Option<u32>,
    /// Kamailio's `onsend_route`, if the script has one, and the script
    /// state it runs with.
    onsend_route: Option<u32>,
    onsend_st: ScriptState,
    sl_counts: Counts<'a>,
    pub(crate) sockets: &'a [UdpSocket],
    /// Every socket's address: the UDP ones (`sockets`), then one per
    /// `tcp:` listen address; `protos` says which is which.
    pub(crate) locals: Vec<SocketAddr>,
    pub(crate) protos: Vec<Proto>,
    /// The stream side, when TCP is served: connections this process
    /// owns, and the epoll set the loop waits on.
    stream: Option<Endpoint<'a>>,
    /// Messages read from streams in one wait, and what else happened.
    inbox: Inbox,
    happened: Vec<Happened>,
    tcp_limits: Limits,
    /// `tcp_accept_aliases`.
    accept_aliases: bool,
    /// The config, when the tls module is loaded (`tls.reload` reads its
    /// files again), and the reload generation loaded.
    tls_config: Option<&'a Config>,
    tls_generation: u32,
    /// `udp_mtu`, `udp_mtu_try_proto` (RFC 3261 §18.1.1).
    pub(crate) udp_mtu: usize,
    pub(crate) udp_mtu_try_proto: Proto,
    /// The connection the current message came on, if a stream's.
    in_conn: Option<super::tcp::conns::ConnId>,
    /// The addresses we listen on, for the Via of requests we originate
    /// (the timer process may send from other ports).
    pub(crate) listen: Vec<SocketAddr>,
    pub(crate) outbox: Outbox,
    pub(crate) dns: Resolver,
    /// Per message: the socket it came in on, and the time.
    pub(crate) in_sock: usize,
    pub(crate) now_ms: u64,
    /// The kind of route running (branch_route may neither reply nor
    /// relay).
    route_kind: RouteKind,
    /// A reused buffer for reply headers.
    headers: Vec<u8>,
    /// The timer process reads its sockets too (they are its own).
    pub(crate) reads_own: bool,
    /// Failed sends: logged at most once a second; the list reused.
    send_log: LogLimit,
    send_failures: Vec<super::udp::SendFailure>,
    /// ICMP errors read from a socket's error queue (reused).
    refused: Vec<super::udp::Refused>,
    /// Next hops the kernel took a datagram for lately: a stateless
    /// forward() to any other is sent at once, so the script learns of a
    /// failure.
    reachable: Reachable,
    /// The runtimes of loaded modules with [`crate::modules::def::Hooks`],
    /// by their place in [`MODULES`].
    pub(crate) runtimes: Vec<Option<Box<dyn Runtime + 'a>>>,
    /// The runtimes that take part in each place of the loop, by module
    /// index ([`crate::modules::def::Wants`]).
    per_message: ArrayVec<u8, MAX_HOOKS>,
    pub(crate) rt_ticks: ArrayVec<u8, MAX_HOOKS>,
    rt_drivers: ArrayVec<u8, MAX_HOOKS>,
    rt_requests: ArrayVec<u8, MAX_HOOKS>,
    rt_replies: ArrayVec<u8, MAX_HOOKS>,
    /// The runtime that keeps transactions (tm), asked first to reply.
    txn_owner: Option<u8>,
    rt_send_failures: ArrayVec<u8, MAX_HOOKS>,
    rt_lifecycle: ArrayVec<u8, MAX_HOOKS>,
    rt_tm_events: ArrayVec<u8, MAX_HOOKS>,
}

/// Modules with a hook of one kind, at most: every module.
const MAX_HOOKS: usize = crate::modules::MAX_MODULES;

impl<'a> Worker<'a> {
    pub fn new(
        slot: usize,
        config: &'a Config,
        shared: &'a Shared,
        sockets: &'a [UdpSocket],
        vm: &'a Vm<'a>,
    ) -> Worker<'a> {
        let runtimes = start_runtimes(config, shared, slot);
        let sl = MODULES.iter().position(|m| m.name == "sl").unwrap_or(0);
        Worker {
            slot,
            vm,
            shared,
            reply_route: vm.program().route(RouteKind::Reply, None),
            onsend_route: vm.program().route(RouteKind::OnSend, None),
            onsend_st: ScriptState::new(),
            // sl's hook carves it whatever the config (`used`).
            ack_filter: shared
                .module_shm::<SlShm>("sl")
                .expect("sl's ACK filter is always carved")
                .filter,
            sl_counts: module_counts(shared, slot, sl),
            sockets,
            locals: sockets.iter().filter_map(|s| s.local_addr().ok()).collect(),
            protos: sockets.iter().map(|_| Proto::Udp).collect(),
            stream: None,
            inbox: Inbox::default(),
            happened: Vec::new(),
            accept_aliases: config.settings.tcp_accept_aliases,
            tls_config: config.has_module("tls").then_some(config),
            tls_generation: 0,
            udp_mtu: config.settings.udp_mtu as usize,
            udp_mtu_try_proto: config.settings.udp_mtu_try_proto,
            in_conn: None,
            tcp_limits: Limits {
                lifetime_ms: u64::from(config.settings.tcp_connection_lifetime) * 1000,
                connect_ms: u64::from(config.settings.tcp_connect_timeout) * 1000,
                send_ms: u64::from(config.settings.tcp_send_timeout) * 1000,
            },
            listen: sockets.iter().filter_map(|s| s.local_addr().ok()).collect(),
            outbox: Outbox::new(),
            dns: Resolver::new(),
            in_sock: 0,
            now_ms: 0,
            route_kind: RouteKind::Request,
            headers: Vec::new(),
            send_log: LogLimit::default(),
            send_failures: Vec::new(),
            refused: Vec::new(),
            reachable: Reachable::default(),
            reads_own: false,
            per_message: wanting(&runtimes, |w| w.per_message),
            rt_ticks: wanting(&runtimes, |w| w.ticks),
            rt_drivers: wanting(&runtimes, |w| w.drives_timers),
            rt_requests: wanting(&runtimes, |w| w.requests),
            rt_replies: wanting(&runtimes, |w| w.replies),
            txn_owner: wanting(&runtimes, |w| w.transactions).first().copied(),
            rt_send_failures: wanting(&runtimes, |w| w.send_failures),
            rt_lifecycle: wanting(&runtimes, |w| w.tm_lifecycle),
            rt_tm_events: wanting(&runtimes, |w| w.tm_events),
            runtimes,
            lock_waits_seen: 0,
            kernel_drop: shared
                .module_shm::<crate::modules::pike::PikeShm>("pike")
                .and_then(|p| p.drops)
                .map(|d| (d, Default::default())),
        }
    }

    /// After a batch: the process's lock waits counted, and the kernel's
    /// drop list brought up to date on its UDP sockets (cheap when nothing
    /// changed: atomic reads).
    pub(crate) fn after_batch(&mut self) {
        // Lock waits since the last batch into the counters first.
        let waits = rser_shm::lock::waits();
        if waits > self.lock_waits_seen {
            self.shared.counters.add(
                self.slot,
                Counter::LockWaits as usize,
                waits - self.lock_waits_seen,
            );
            self.lock_waits_seen = waits;
        }
        let Some((list, applied)) = &mut self.kernel_drop else {
            return;
        };
        // The UDP sockets come first among `locals`.
        let fds = self
            .sockets
            .iter()
            .zip(&self.locals)
            .map(|(s, a)| (s.as_raw_fd(), a.is_ipv6()));
        applied.refresh(list, fds, self.now_ms);
    }

    /// Runs `f` on module `m`'s runtime with the context it works with
    /// (the runtime is taken out meanwhile, so the worker can be its
    /// shell); `None` when the module has none here.
    pub(crate) fn with_runtime<R>(
        &mut self,
        m: usize,
        f: impl FnOnce(&mut (dyn Runtime + 'a), &mut Cx<'_>) -> R,
    ) -> Option<R> {
        let mut rt = self.runtimes.get_mut(m)?.take()?;
        let counts = module_counts(self.shared, self.slot, m);
        let mut cx = Cx {
            now_ms: self.now_ms,
            counts,
            me: m,
            shell: self,
        };
        let r = f(&mut *rt, &mut cx);
        self.runtimes[m] = Some(rt);
        Some(r)
    }

    /// Whether a runtime in `which` took the message (`f` true), asked
    /// in list order until one does.
    fn any_runtime(
        &mut self,
        which: for<'w> fn(&'w Worker<'a>) -> &'w ArrayVec<u8, MAX_HOOKS>,
        mut f: impl FnMut(&mut (dyn Runtime + 'a), &mut Cx<'_>) -> bool,
    ) -> bool {
        (0..which(self).len()).any(|i| {
            let m = usize::from(which(self)[i]);
            self.with_runtime(m, &mut f).unwrap_or(false)
        })
    }

    /// Each runtime in `which` (indices into `runtimes`), in turn.
    fn each_runtime(
        &mut self,
        which: for<'w> fn(&'w Worker<'a>) -> &'w ArrayVec<u8, MAX_HOOKS>,
        mut f: impl FnMut(&mut (dyn Runtime + 'a), &mut Cx<'_>),
    ) {
        self.any_runtime(which, |rt, cx| {
            f(rt, cx);
            false
        });
    }

    pub(crate) fn count(&self, c: Counter) {
        self.shared.count(self.slot, c);
    }

    /// The first worker, once a server start: the event routes rser raises
    /// at start ([`EVENTS`](crate::cfg::ast::EVENTS)), each on a stand-in
    /// OPTIONS from and to our first address (Kamailio's faked message).
    pub fn start_events(&mut self) {
        if self.slot != 0 || !self.shared.first_start() {
            return;
        }
        const FAKED: &[u8] = b"OPTIONS sip:you@rser.invalid SIP/2.0\r\n\
            Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-rser-event\r\n\
            From: <sip:you@rser.invalid>;tag=notag\r\nTo: <sip:you@rser.invalid>;tag=notag\r\n\
            Call-ID: rser-event\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let Ok(msg) = Message::parse(FAKED) else {
            return;
        };
        let local = self
            .locals
            .first()
            .copied()
            .unwrap_or(([127, 0, 0, 1], 0).into());
        let mut st = ScriptState::new();
        for event in crate::cfg::ast::START_EVENTS {
            let Some(route) = self.vm.program().route(RouteKind::Event, Some(event)) else {
                continue;
            };
            let mut ctx = MsgCtx::new(&msg, local, local, Proto::Udp, &mut st);
            self.run_here(RouteKind::Event, route, &mut ctx);
            log::info!("event_route[{event}] ran");
        }
        self.flush();
    }

    /// `event_route[tm:local-request]` on a request tm sends of its own
    /// (`text`, from `from` to `to`): its text edits applied to `text`;
    /// false when the route dropped it. Run in the control process, whose
    /// UAC sends these (this worker is its host there, sending nothing).
    pub fn local_request(&mut self, text: &mut Vec<u8>, from: SocketAddr, to: SocketAddr) -> bool {
        let Some(route) = self
            .vm
            .program()
            .route(RouteKind::Event, Some(crate::cfg::ast::LOCAL_REQUEST))
        else {
            return true;
        };
        let Ok(msg) = Message::parse(text) else {
            return true;
        };
        let mut st = std::mem::take(&mut self.onsend_st);
        let mut ctx = MsgCtx::new(&msg, from, from, Proto::Udp, &mut st);
        ctx.st.snd = Some(to);
        let out = self.run_here(RouteKind::Event, route, &mut ctx);
        let mut edited = Vec::new();
        let changed = !ctx.st.edits.is_empty() || ctx.st.record_route;
        let built = changed && proxy::build_edited(&ctx, from, b"UDP", &mut edited).is_ok();
        self.onsend_st = st;
        if built {
            *text = edited;
        }
        !out.dropped
    }

    /// Runs route `route` as a route of `kind`, this worker the script's
    /// host; its errors counted and logged.
    fn run_here(&mut self, kind: RouteKind, route: u32, ctx: &mut MsgCtx<'_, '_>) -> Outcome {
        let outer = std::mem::replace(&mut self.route_kind, kind);
        let vm = self.vm;
        let out = vm.run(route, ctx, self);
        self.route_kind = outer;
        self.script_error(kind, &out);
        out
    }

    /// Serves TCP and TLS too: `tcp_addrs` become sockets after the UDP
    /// ones, `listeners` (this worker's, on those addresses in order)
    /// accept into the shared table, TLS ones with `tls`. With none (the
    /// timer process) it only sends, through the connections' owners.
    pub fn serve_streams(
        &mut self,
        listeners: Vec<std::net::TcpListener>,
        tcp_addrs: &[(Proto, SocketAddr)],
        tls: Option<super::tcp::tls::TlsSetup>,
    ) -> std::io::Result<()> {
        let Some(streams) = self.shared.streams.as_ref() else {
            return Ok(());
        };
        if tcp_addrs.is_empty() {
            return Ok(());
        }
        let first = self.locals.len();
        for (p, a) in tcp_addrs {
            self.locals.push(*a);
            self.listen.push(*a);
            self.protos.push(*p);
        }
        let may_open = !listeners.is_empty();
        let listeners = listeners
            .into_iter()
            .enumerate()
            .map(|(i, l)| (l, first + i, Stream::of(self.protos[first + i])))
            .collect();
        let e = Endpoint::new(
            self.slot as u16,
            listeners,
            &streams.conns,
            &streams.handoff,
            may_open,
            self.tcp_limits,
            tls,
        )?;
        for (i, sock) in self.sockets.iter().enumerate() {
            e.watch_udp(std::os::fd::AsFd::as_fd(sock), i)?;
        }
        self.stream = Some(e);
        Ok(())
    }

    /// Serves forever (until the process is signalled).
    pub fn run(&mut self) -> ! {
        self.start_events();
        if self.stream.is_some() {
            self.run_with_streams();
        }
        let mut rx = RxBatch::new();
        let mut st = ScriptState::new();
        let main = self.vm.program().main_route();
        loop {
            let ready = self.wait_readable();
            for si in ready {
                let nonblocking = self.sockets.len() > 1;
                let n = match rx.recv(self.sockets[si].as_raw_fd(), nonblocking) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) if super::udp::is_icmp_error(&e) => {
                        self.now_ms = now_ms();
                        self.read_refusals(si);
                        continue;
                    }
                    Err(e) => {
                        log::error!("receive failed: {e}");
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        continue;
                    }
                };
                self.in_sock = si;
                self.now_ms = now_ms();
                for i in 0..n {
                    let (data, src) = rx.get(i);
                    if let Some(src) = src {
                        self.datagram(data, src, &mut st, main);
                    }
                }
                self.drive_timers();
                self.flush();
                self.after_batch();
            }
        }
    }

    /// After a batch: the timer work due now that no other process is
    /// doing (tm's wheel shards).
    pub(crate) fn drive_timers(&mut self) {
        for m in self.rt_drivers.clone() {
            self.with_runtime(usize::from(m), |rt, cx| rt.drive_timers(cx));
        }
    }

    /// The loop with TCP: one epoll wait for every socket, listener and
    /// connection; UDP batches as without, then the messages the streams
    /// gave, each with its connection's socket, then one flush.
    fn run_with_streams(&mut self) -> ! {
        let mut rx = RxBatch::new();
        let mut st = ScriptState::new();
        let main = self.vm.program().main_route();
        let mut inbox = std::mem::take(&mut self.inbox);
        let mut happened = std::mem::take(&mut self.happened);
        loop {
            let mut udp = ArrayVec::new();
            inbox.clear();
            happened.clear();
            if let Some(e) = self.stream.as_mut() {
                e.wait(1000, now_ms, &mut udp, &mut inbox, &mut happened);
            }
            self.now_ms = now_ms();
            self.stream_events(&happened);
            self.after_batch();
            self.reload_tls();
            for si in udp {
                // Bounded per wake: the other sockets get their turn.
                for _ in 0..4 {
                    match rx.recv(self.sockets[si].as_raw_fd(), true) {
                        Ok(n) => {
                            self.in_sock = si;
                            for i in 0..n {
                                let (data, src) = rx.get(i);
                                if let Some(src) = src {
                                    self.datagram(data, src, &mut st, main);
                                }
                            }
                            if n < super::udp::BATCH {
                                break;
                            }
                        }
                        Err(e) if super::udp::is_icmp_error(&e) => self.read_refusals(si),
                        Err(_) => break,
                    }
                }
            }
            for i in 0..inbox.len() {
                let (conn, peer, sock, data) = inbox.get(i);
                self.in_sock = sock;
                self.in_conn = Some(conn);
                self.datagram(Some(data), peer, &mut st, main);
            }
            self.in_conn = None;
            self.drive_timers();
            self.flush();
        }
    }

    /// `tls.reload` was asked: the certificate files read again, for the
    /// connections from now on (a failure keeps the old ones, logged).
    fn reload_tls(&mut self) {
        let (Some(config), Some(streams)) = (self.tls_config, self.shared.streams.as_ref()) else {
            return;
        };
        let wanted = streams.tls_generation();
        if wanted == self.tls_generation {
            return;
        }
        self.tls_generation = wanted;
        match super::tcp::tls::TlsSetup::from_config(config) {
            Ok(setup) => {
                if let Some(e) = self.stream.as_mut() {
                    e.set_tls(setup);
                }
                log::info!("tls: certificates reloaded (generation {wanted})");
            }
            Err(e) => log::error!("tls: reload failed, the previous certificates stay: {e}"),
        }
    }

    /// What happened to connections: counted; a connection we opened that
    /// failed ends the tm branches whose requests it held (477).
    fn stream_events(&mut self, happened: &[Happened]) {
        for h in happened {
            match h {
                Happened::Accepted(peer) => {
                    self.count(Counter::TcpAccepted);
                    log::debug!("tcp: accepted {peer}");
                }
                Happened::Connected(peer) => {
                    self.count(Counter::TcpConnected);
                    log::debug!("tcp: connected to {peer}");
                }
                Happened::Closed(peer, why) => {
                    self.count(Counter::TcpClosed);
                    if matches!(why, super::tcp::conn::Closed::Framing(_)) {
                        self.count(Counter::TcpFramingErrors);
                    }
                    log::debug!("tcp: {peer} closed: {why:?}");
                }
                Happened::Refused(peer) => {
                    self.count(Counter::TcpRefused);
                    if let Some(held) = self.send_log.allow(self.now_ms) {
                        log::warn!(
                            "tcp: connection from {peer} refused: tcp_max_connections or tcp_accept_iplimit reached{}",
                            super::log_limit::held_text(held)
                        );
                    }
                }
                Happened::ConnectFailed(peer, why, tags) => {
                    self.count(Counter::TcpConnectFailed);
                    let error = why.error();
                    if tags.is_empty() {
                        self.send_refused(*peer, &error, None);
                    }
                    for tag in tags {
                        self.send_refused(*peer, &error, Some(Refusal::Tagged(*tag)));
                    }
                }
                Happened::HandoffLost => self.count(Counter::TcpHandoffFailed),
            }
        }
    }

    /// Sends what the batch produced, then deals with what could not be
    /// sent: a tm branch ends (which may produce a reply upstream, sent in
    /// a further round, `SEND_ROUNDS` at most), anything else is counted and
    /// logged at most once a second.
    pub(crate) fn flush(&mut self) {
        let mut failures = std::mem::take(&mut self.send_failures);
        for _ in 0..super::limits::SEND_ROUNDS {
            if self.outbox.is_empty() {
                break;
            }
            let now = self.now_ms;
            let failed = match self.stream.as_mut() {
                Some(e) => self
                    .outbox
                    .flush(self.sockets, &mut Streamer(e, now, &self.protos)),
                None => self.outbox.flush(self.sockets, &mut NoStreams),
            };
            if failed == 0 {
                break;
            }
            self.outbox.take_failures(&mut failures);
            for f in &failures {
                let what = f.tag.map(Refusal::Tagged);
                self.send_refused(f.dest, &std::io::Error::from(f.error), what);
            }
        }
        self.send_failures = failures;
    }

    /// Sends the outbox's last push at once (see `Outbox::send_last_now`).
    fn send_last_now(&mut self) -> std::io::Result<()> {
        let now = self.now_ms;
        match self.stream.as_mut() {
            Some(e) => self
                .outbox
                .send_last_now(self.sockets, &mut Streamer(e, now, &self.protos)),
            None => self.outbox.send_last_now(self.sockets, &mut NoStreams),
        }
    }

    /// The ICMP errors queued on socket `si` (RFC 1122's port or host
    /// unreachable for something we sent): each is a failed send, as if
    /// `sendto` had said so; then what that produced is sent.
    pub(crate) fn read_refusals(&mut self, si: usize) {
        let mut got = std::mem::take(&mut self.refused);
        super::udp::read_errors(self.sockets[si].as_raw_fd(), &mut got);
        for r in &got {
            self.send_refused(r.dest, &r.error, Some(Refusal::Head(&r.head)));
        }
        let any = !got.is_empty();
        self.refused = got;
        if any {
            self.flush();
        }
    }

    /// A datagram to `dest` the kernel refused: counted, logged at most
    /// once a second, the hop no longer taken for reachable; a tm
    /// branch's request ends the branch (477).
    fn send_refused(
        &mut self,
        dest: SocketAddr,
        error: &std::io::Error,
        what: Option<Refusal<'_>>,
    ) {
        self.count(Counter::SendErrors);
        self.reachable.forget(dest);
        if let Some(held) = self.send_log.allow(self.now_ms) {
            log::error!(
                "send to {dest} failed: {error}{}",
                super::log_limit::held_text(held)
            );
        }
        if let Some(what) = what {
            self.each_runtime(
                |w| &w.rt_send_failures,
                |rt, cx| rt.send_failed(cx, dest, what),
            );
        }
    }

    /// Indices of sockets with data (blocks; with one socket, the receive
    /// call itself blocks).
    fn wait_readable(&self) -> ArrayVec<usize, MAX_SOCKETS> {
        let mut ready = ArrayVec::new();
        if self.sockets.len() == 1 {
            ready.push(0);
            return ready;
        }
        let mut fds: ArrayVec<PollFd<'_>, MAX_SOCKETS> = self
            .sockets
            .iter()
            .map(|s| PollFd::new(std::os::fd::AsFd::as_fd(s), PollFlags::POLLIN))
            .collect();
        if poll(&mut fds, PollTimeout::NONE).is_ok() {
            ready.extend(
                fds.iter()
                    .enumerate()
                    .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
                    .map(|(i, _)| i),
            );
        }
        ready
    }

    /// One datagram, from anyone: hostile input is counted, never fatal.
    pub fn datagram(
        &mut self,
        data: Option<&[u8]>,
        src: SocketAddr,
        st: &mut ScriptState,
        main: Option<u32>,
    ) {
        self.count(Counter::Received);
        let Some(data) = data else {
            self.count(Counter::TooBig);
            log::debug!("datagram from {src} larger than a SIP message may be; dropped");
            return;
        };
        // CRLF keep-alives (RFC 5626 §4.4.1) are not messages.
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            return;
        }
        // By reference from the parser's frame: moving the message (about
        // 2 KiB) would copy it.
        Message::with_parsed(data, |parsed| match parsed {
            Ok(msg) => self.message(msg, src, st, main),
            Err(e) => self.refuse_unparsable(data, src, e),
        });
    }

    /// A parsed message: a request to the script, a reply to the reply
    /// route, then to its transaction or statelessly on.
    fn message(
        &mut self,
        msg: &Message<'_>,
        src: SocketAddr,
        st: &mut ScriptState,
        main: Option<u32>,
    ) {
        if msg.is_request() {
            self.request(msg, src, st, main);
            return;
        }
        if let Some(code) = msg.status() {
            self.shared.count_reply(self.slot, code);
        }
        // The core's reply route (`reply_route`) sees every reply first;
        // a `drop` there ends it.
        if let Some(route) = self.reply_route {
            let local = self.locals[self.in_sock];
            let mut ctx = MsgCtx::new(msg, src, local, self.protos[self.in_sock], st);
            ctx.status = msg.status();
            let vm = self.vm;
            let out = vm.run(route, &mut ctx, self);
            self.script_error(RouteKind::Reply, &out);
            if out.dropped {
                self.count(Counter::Dropped);
                return;
            }
        }
        // tm's go to their transaction, our dispatcher probes' replies end
        // here; the rest are routed statelessly.
        if !self.reply_taken(msg, src) {
            self.reply(msg, src);
        }
    }

    /// Whether a module took the reply (tm, for its branches; the
    /// dispatcher, for its probes).
    fn reply_taken(&mut self, msg: &Message<'_>, src: SocketAddr) -> bool {
        self.any_runtime(|w| &w.rt_replies, |rt, cx| rt.reply_in(cx, msg, src))
    }

    /// A datagram the parser refused: a request whose Via, From, To,
    /// Call-ID and CSeq lines can be found is answered (400 with the
    /// parser's reason, 505 for another SIP version, RFC 4475 §3.1.2), to
    /// the address it came from, since its Via is not to be trusted; the
    /// rest is dropped. Either way it is counted.
    fn refuse_unparsable(&mut self, data: &[u8], src: SocketAddr, e: crate::sip::ParseError) {
        self.count(Counter::ParseErrors);
        let (code, reason) = crate::sip::salvage::status_for(e);
        let buf = self.outbox.push(self.in_sock, src);
        if crate::sip::salvage::error_reply(data, code, reason, buf) {
            self.count(Counter::BadRequests);
            log::debug!("unparsable request from {src}: {e}; answered {code}");
        } else {
            self.outbox.pop();
            log::debug!("unparsable datagram from {src}: {e}");
        }
    }

    fn request(
        &mut self,
        msg: &Message<'_>,
        src: SocketAddr,
        st: &mut ScriptState,
        main: Option<u32>,
    ) {
        if msg.top_via().is_err() {
            // Without a Via there is nowhere to reply to.
            self.count(Counter::ParseErrors);
            return;
        }
        // RFC 3261 §8.1.1: the headers every request has, a Request-URI
        // that parses (RFC 4475 §3.1.2.7: not in <>) and a CSeq naming the
        // request's method (§8.1.1.5); 400 otherwise.
        let mandatory = msg
            .cseq()
            .and_then(|c| match c.method_raw == msg.method_raw() {
                true => Ok(()),
                false => Err(crate::sip::ParseError::CSeqMethodMismatch),
            })
            .and_then(|_| msg.call_id().map(|_| ()))
            .and_then(|_| msg.from().map(|_| ()))
            .and_then(|_| msg.to().map(|_| ()))
            .and_then(|_| msg.ruri())
            // §19.1.1: headers in a Request-URI are not for a request to
            // carry onward (RFC 4475 §3.1.2.11).
            .and_then(|u| match u.headers {
                Some(_) => Err(crate::sip::ParseError::HeadersInRequestUri),
                None => Ok(()),
            });
        if let Err(e) = mandatory {
            self.count(Counter::BadRequests);
            if msg.method() != Some(Method::Ack) {
                let stream = self.protos[self.in_sock].is_stream();
                let dest = sl::reply_destination_forced(msg, src, stream);
                let buf = self.outbox.push(self.in_sock, dest);
                let sig = self.ack_filter.signature();
                sl::build_reply(
                    msg,
                    src,
                    400,
                    e.reason().as_bytes(),
                    sig,
                    std::iter::empty(),
                    b"",
                    &mut self.headers,
                    buf,
                );
            }
            return;
        }
        if self.accept_aliases {
            self.accept_alias(msg, src);
        }
        // A transaction's own ACK and retransmissions first (§17.2.3): the
        // ACK to a final reply tm sent must stop its Timer G, whatever the
        // to-tag, so the SL filter only sees what no transaction owns.
        if self.any_runtime(|w| &w.rt_requests, |rt, cx| rt.request_in(cx, msg)) {
            return;
        }
        if Shell::absorbs_ack(self, msg) {
            return;
        }
        for &m in &self.per_message {
            if let Some(rt) = self.runtimes[usize::from(m)].as_mut() {
                rt.message_start();
            }
        }
        let Some(main) = main else { return };
        let local = self.locals[self.in_sock];
        let proto = self.protos[self.in_sock];
        let mut ctx = MsgCtx::new(msg, src, local, proto, st);
        // On a stream, replies go back on the connection (RFC 3261
        // §18.2.2): its far end is the source, whatever the Via says.
        ctx.st.force_rport |= proto.is_stream();
        let vm = self.vm;
        let out = vm.run(main, &mut ctx, self);
        self.script_error(RouteKind::Request, &out);
        // A script cut short by its bounds (route() too deep, too many
        // steps) would leave the caller waiting: 500, as for a crash of
        // the route (an ACK gets nothing, §17.1.1.3).
        if out.error.is_some() && msg.method() != Some(Method::Ack) {
            Shell::reply(self, &mut ctx, 500, b"Server Internal Error", b"");
        }
        if out.dropped {
            self.count(Counter::Dropped);
        }
    }

    /// RFC 5923 §5: a request over a connection whose top Via carries
    /// `alias` makes the Via's sent-by port (at the connection's address)
    /// reach that connection, so requests to the phone's own port reuse it
    /// (Kamailio's `tcp_accept_aliases`).
    fn accept_alias(&mut self, msg: &Message<'_>, src: SocketAddr) {
        let (Some(conn), Some(streams)) = (self.in_conn, self.shared.streams.as_ref()) else {
            return;
        };
        let Ok(via) = msg.top_via() else { return };
        let alias = via
            .param_iter()
            .any(|p| p.is_ok_and(|p| p.name.eq_ignore_ascii_case(b"alias")));
        if !alias {
            return;
        }
        let at = SocketAddr::new(src.ip(), via.port.unwrap_or(5060));
        if streams
            .conns
            .alias(conn, at, Stream::of(self.protos[self.in_sock]))
            .is_err()
        {
            self.count(Counter::TcpRefused);
        }
    }

    fn reply(&mut self, msg: &Message<'_>, src: SocketAddr) {
        let (hop, proto) = match proxy::reply_next_hop(msg, &self.locals) {
            Ok(h) => h,
            Err(ReplyError::NotOurs) => {
                self.count(Counter::RepliesNotOurs);
                log::debug!("reply from {src} whose top Via is not ours; dropped");
                return;
            }
            Err(e) => {
                self.count(Counter::ParseErrors);
                log::debug!("reply from {src} cannot be routed: {e:?}");
                return;
            }
        };
        let prefer_v6 = self.locals[self.in_sock].is_ipv6();
        let dest = match hop {
            NextHop::Addr(a) => Some(a),
            NextHop::Name(n, port) => std::str::from_utf8(n)
                .ok()
                .and_then(|n| self.dns.resolve(n, port, prefer_v6)),
        };
        let Some(dest) = dest else {
            self.count(Counter::SendErrors);
            return;
        };
        let Some(sock) = self.socket_of(proto, dest) else {
            self.count(Counter::SendErrors);
            log::debug!("reply to {}:{dest}: no such socket", proto.name());
            return;
        };
        let buf = self.outbox.push(sock, dest);
        match proxy::build_reply_forward(msg, buf) {
            Ok(()) => self.count(Counter::ForwardedReplies),
            Err(e) => {
                self.outbox.pop();
                self.count(Counter::SendErrors);
                log::warn!("cannot forward a reply: {e}");
            }
        }
    }

    /// The socket to send to `dest` from: the one the message came in on if
    /// the address family fits, else the first that fits.
    /// The socket a request to `dest` goes from: `$fs`'s, if the script
    /// set one (`None`, logged, when it is not a listen address), else
    /// the one that fits.
    pub(crate) fn send_socket(
        &self,
        forced: Option<SocketAddr>,
        dest: SocketAddr,
        proto: Proto,
    ) -> Option<usize> {
        match forced {
            None => self.socket_of(proto, dest),
            Some(a) => {
                let found = (0..self.locals.len())
                    .find(|&i| self.locals[i] == a && self.protos[i] == proto);
                if found.is_none() {
                    log::warn!(
                        "$fs = {}:{a}: not one of our listen addresses; not sent",
                        proto.name()
                    );
                }
                found
            }
        }
    }

    /// The socket of transport `proto` to send to `dest` from: the
    /// current message's if it fits, else the first that does.
    pub(crate) fn socket_of(&self, proto: Proto, dest: SocketAddr) -> Option<usize> {
        let fits = |i: usize| self.protos[i] == proto && self.locals[i].is_ipv6() == dest.is_ipv6();
        if fits(self.in_sock) {
            return Some(self.in_sock);
        }
        (0..self.locals.len()).find(|&i| fits(i))
    }

    pub(crate) fn socket_for(&self, dest: SocketAddr) -> usize {
        self.socket_of(Proto::Udp, dest)
            .or_else(|| self.protos.iter().position(|p| *p == Proto::Udp))
            .unwrap_or(0)
    }

    /// Writes a stateless forward of `ctx`'s request into the outbox, to
    /// `to` from socket `sock`.
    fn build_forward(
        &mut self,
        ctx: &MsgCtx<'_, '_>,
        dest: &Destination,
        sock: usize,
        to: SocketAddr,
    ) -> Result<(), ForwardError> {
        let via = self.locals[sock];
        let transport = self.protos[sock].via_name();
        let buf = self.outbox.push(sock, to);
        match dest.kind {
            // send(): the message as received (SER's "send as is").
            ForwardKind::Send => {
                buf.extend_from_slice(ctx.msg.buf());
                Ok(())
            }
            _ => proxy::build_request(ctx, via, transport, true, buf),
        }
    }

    /// A script run's error, counted and logged with its route's kind.
    fn script_error(&self, kind: RouteKind, out: &Outcome) {
        if let Some(e) = out.error {
            self.count(Counter::ScriptErrors);
            log::warn!("{}: {e}", kind.name());
        }
    }

    /// A stateless reply (sl), with extra header lines.
    pub(crate) fn sl_reply(
        &mut self,
        ctx: &mut MsgCtx<'_, '_>,
        code: u16,
        reason: &[u8],
        extra: &[u8],
    ) -> i32 {
        if ctx.msg.method() == Some(Method::Ack) {
            // ACKs are never answered (RFC 3261 §17.2.1).
            return -1;
        }
        let dest = sl::reply_destination_forced(ctx.msg, ctx.src, ctx.st.force_rport);
        let buf = self.outbox.push(self.in_sock, dest);
        let sig = self.ack_filter.signature();
        let contacts = std::iter::once(ctx.uri()).chain(ctx.branches());
        let extra = ctx.reply_header_lines(extra);
        let signed = sl::build_reply(
            ctx.msg,
            ctx.src,
            code,
            reason,
            sig,
            contacts,
            &extra,
            &mut self.headers,
            buf,
        );
        let rec = self.ack_filter.on_reply(ctx.msg, signed, self.now_ms);
        if rec.evicted {
            self.sl_counts.add(SlCounter::TableEvicted as usize, 1);
        }
        if rec.recovered {
            self.count(Counter::LocksRecovered);
            log::warn!("sl: a worker died holding the reply table's lock; table reset");
        }
        self.sl_counts.add(SlCounter::Replies as usize, 1);
        1
    }

    /// Whether `func` may not run in the route running now: a
    /// branch_route shapes one branch's request (as in Kamailio; a route
    /// called from it is checked here, not at load).
    fn refused_here(&self, func: Func) -> bool {
        let def = func.def();
        let refused = self.route_kind == RouteKind::Branch && !def.routes.allows(RouteKind::Branch);
        if refused {
            log::warn!("{} in branch_route: ignored", def.name);
        }
        refused
    }
}

impl Shell for Worker<'_> {
    fn reply(&mut self, ctx: &mut MsgCtx<'_, '_>, code: u16, reason: &[u8], headers: &[u8]) -> i32 {
        let on_txn = self.txn_owner.and_then(|m| {
            self.with_runtime(usize::from(m), |rt, cx| {
                rt.reply_on_txn(cx, ctx, code, reason, headers)
            })
            .flatten()
        });
        on_txn.unwrap_or_else(|| self.sl_reply(ctx, code, reason, headers))
    }

    fn reply_stateless(&mut self, ctx: &mut MsgCtx<'_, '_>, code: u16, reason: &[u8]) -> i32 {
        self.sl_reply(ctx, code, reason, b"")
    }

    fn to_tag(&self, req: &Message<'_>) -> Option<sl::signature::ToTag> {
        self.ack_filter.signature().to_tag(req)
    }

    fn absorbs_ack(&mut self, msg: &Message<'_>) -> bool {
        let absorb = self.ack_filter.check(msg, self.now_ms) == AckVerdict::Absorb;
        if absorb {
            self.sl_counts.add(SlCounter::AcksAbsorbed as usize, 1);
        }
        absorb
    }

    fn count(&self, c: Counter) {
        Worker::count(self, c);
    }

    fn in_sock(&self) -> usize {
        self.in_sock
    }

    fn local(&self, sock: usize) -> SocketAddr {
        self.locals[sock.min(self.locals.len() - 1)]
    }

    fn socket_for(&self, dest: SocketAddr) -> usize {
        Worker::socket_for(self, dest)
    }

    fn transport(&self, sock: usize) -> Proto {
        self.protos.get(sock).copied().unwrap_or(Proto::Udp)
    }

    fn connected(&self, peer: SocketAddr, proto: Proto) -> bool {
        self.shared
            .streams
            .as_ref()
            .is_some_and(|s| s.conns.find(peer, Stream::of(proto)).is_some())
    }

    fn resolve(&mut self, host: &str, port: u16, prefer_v6: bool) -> Option<SocketAddr> {
        self.dns.resolve(host, port, prefer_v6)
    }

    fn push(&mut self, sock: usize, dest: SocketAddr) -> &mut Vec<u8> {
        self.outbox.push(sock, dest)
    }

    fn pop(&mut self) {
        self.outbox.pop();
    }

    fn tag_last(&mut self, tag: u128) {
        self.outbox.tag_last(tag);
    }

    fn send_new(&mut self, to: SocketAddr) -> (SocketAddr, &mut Vec<u8>) {
        let sock = self.socket_for(to);
        let via = self.listen[sock];
        (via, self.outbox.push(sock, to))
    }

    fn run_route(
        &mut self,
        kind: RouteKind,
        route: u32,
        ctx: &mut MsgCtx<'_, '_>,
        me: usize,
        rt: &mut dyn Runtime,
    ) -> Outcome {
        let outer = std::mem::replace(&mut self.route_kind, kind);
        let vm = self.vm;
        let out = vm.run(route, ctx, &mut Lent { w: self, me, rt });
        self.route_kind = outer;
        self.script_error(kind, &out);
        out
    }

    fn send_socket(
        &self,
        forced: Option<SocketAddr>,
        dest: SocketAddr,
        proto: Proto,
    ) -> Option<usize> {
        Worker::send_socket(self, forced, dest, proto)
    }

    fn on_send(&mut self, msg: &Message<'_>, src: SocketAddr, flags: u32, to: SocketAddr) -> bool {
        let Some(route) = self.onsend_route else {
            return true;
        };
        let mut st = std::mem::take(&mut self.onsend_st);
        let local = self.locals[self.socket_for(to)];
        let mut ctx = MsgCtx::new(msg, src, local, Proto::Udp, &mut st);
        ctx.st.flags = flags;
        ctx.st.snd = Some(to);
        let out = self.run_here(RouteKind::OnSend, route, &mut ctx);
        self.onsend_st = st;
        if out.dropped {
            self.count(Counter::Dropped);
            log::debug!("onsend_route dropped the request to {to}");
        }
        !out.dropped
    }

    fn tm_created(&mut self, sel: &mut Failover) {
        self.each_runtime(|w| &w.rt_lifecycle, |rt, cx| rt.tm_created(cx, sel));
    }

    fn tm_destroyed(&mut self, sel: &Failover) {
        self.each_runtime(|w| &w.rt_lifecycle, |rt, cx| rt.tm_destroyed(cx, sel));
    }

    fn tm_hooked(&self, flags: u32) -> bool {
        self.rt_tm_events.iter().any(|&m| {
            self.runtimes[usize::from(m)]
                .as_ref()
                .is_some_and(|r| r.tm_wants(flags))
        })
    }

    fn tm_emit(&mut self, ev: &TmEvent<'_, '_>) -> u32 {
        let flags = match ev {
            TmEvent::ResponseOut { req, .. } | TmEvent::Failure { req, .. } => req.flags,
        };
        let mut reset = 0;
        self.each_runtime(
            |w| &w.rt_tm_events,
            |rt, cx| {
                if rt.tm_wants(flags) {
                    reset |= rt.tm_event(cx, ev);
                }
            },
        );
        reset
    }
}

impl Host for Worker<'_> {
    fn forward(&mut self, ctx: &mut MsgCtx<'_, '_>, dest: &Destination) -> i32 {
        if self.route_kind == RouteKind::Branch {
            log::warn!("forward in branch_route: ignored (the branch is tm's to send)");
            return -1;
        }
        if matches!(self.route_kind, RouteKind::Event | RouteKind::OnSend) {
            log::warn!("forward in {}: ignored", self.route_kind.name());
            return -1;
        }
        if dest.proto == Proto::Sctp {
            log::warn!(
                "forward to {}:{} over {}: not served by this build",
                dest.host,
                dest.port,
                dest.proto.name()
            );
            ctx.st.last_error = Some((500, "Unsupported Transport"));
            return -1;
        }
        let prefer_v6 = self.locals[self.in_sock].is_ipv6();
        let Some(to) = self.dns.resolve(&dest.host, dest.port, prefer_v6) else {
            ctx.st.last_error = Some((500, "Cannot Resolve Destination"));
            return -1;
        };
        if !self.on_send(ctx.msg, ctx.src, ctx.st.flags, to) {
            return -1;
        }
        let Some(mut sock) = self.send_socket(ctx.st.force_send, to, dest.proto) else {
            log::warn!(
                "forward to {to} over {}: no such listen address",
                dest.proto.name()
            );
            ctx.st.last_error = Some((500, "Unsupported Transport"));
            return -1;
        };
        let mut built = self.build_forward(ctx, dest, sock, to);
        // RFC 3261 §18.1.1: too large for UDP, unless UDP was asked for.
        let (mtu, over) = (self.udp_mtu, self.udp_mtu_try_proto);
        if built.is_ok()
            && self.protos[sock] == Proto::Udp
            && !dest.proto_forced
            && ctx.st.force_send.is_none()
            && mtu > 0
            && self.outbox.last_len() > mtu
            && let Some(other) = self.socket_of(over, to)
        {
            self.outbox.pop();
            sock = other;
            built = self.build_forward(ctx, dest, sock, to);
        }
        match built {
            Ok(()) if self.reachable.knows(to, self.now_ms) => {
                // Batched; a failure there forgets the hop.
                self.reachable.note(to, self.now_ms);
                self.count(Counter::ForwardedRequests);
                1
            }
            Ok(()) => match self.send_last_now() {
                // A next hop not seen lately is tried at once: a refused
                // send returns false so the script can reply (Kamailio
                // sends every forward at once).
                Ok(()) => {
                    self.reachable.note(to, self.now_ms);
                    self.count(Counter::ForwardedRequests);
                    1
                }
                Err(e) => {
                    self.send_refused(to, &e, None);
                    ctx.st.last_error = Some((SEND_FAILED, SEND_FAILED_REASON));
                    -1
                }
            },
            Err(e) => {
                self.outbox.pop();
                log::warn!("forward to {to}: {e}");
                ctx.st.last_error = Some(match e {
                    ForwardError::MaxForwardsExhausted => (483, "Too Many Hops"),
                    ForwardError::Build(_) => (500, "Cannot Build Request"),
                });
                -1
            }
        }
    }

    fn module(&mut self, ctx: &mut MsgCtx<'_, '_>, func: Func, args: &[Param]) -> i32 {
        if self.refused_here(func) {
            return -1;
        }
        let id = func.def().id;
        self.with_runtime(usize::from(func.module), |rt, cx| {
            rt.call(cx, ctx, id, args)
        })
        .unwrap_or_else(|| no_runtime(func))
    }
}

/// The outbox's way onto streams: this process's endpoint, at `.1`, with
/// its sockets' transports.
struct Streamer<'e, 't, 'p>(&'e mut Endpoint<'t>, u64, &'p [Proto]);

impl StreamSend for Streamer<'_, '_, '_> {
    fn send(
        &mut self,
        sock: usize,
        dest: SocketAddr,
        bytes: &[u8],
        tag: Option<u128>,
    ) -> std::io::Result<()> {
        let kind = Stream::of(self.2.get(sock).copied().unwrap_or(Proto::Tcp));
        self.0.send_to(dest, sock, kind, bytes, tag, self.1)
    }
}

fn no_runtime(func: Func) -> i32 {
    log::error!("{} has no runtime in this build", func.def().name);
    -1
}

/// The worker while runtime `rt` (module `me`) is lent to a route it
/// runs (tm's failure_route, onreply_route, branch_route): the route's
/// calls of `me`'s actions reach `rt`, and a reply another module sends
/// goes on `rt`'s transaction.
struct Lent<'l, 'a> {
    w: &'l mut Worker<'a>,
    me: usize,
    rt: &'l mut dyn Runtime,
}

impl Lent<'_, '_> {
    /// The lent runtime's context, over the worker.
    fn with_me<R>(&mut self, f: impl FnOnce(&mut dyn Runtime, &mut Cx<'_>) -> R) -> R {
        let mut cx = Cx {
            now_ms: self.w.now_ms,
            counts: module_counts(self.w.shared, self.w.slot, self.me),
            me: self.me,
            shell: &mut *self.w,
        };
        f(&mut *self.rt, &mut cx)
    }
}

impl Host for Lent<'_, '_> {
    fn forward(&mut self, ctx: &mut MsgCtx<'_, '_>, dest: &Destination) -> i32 {
        self.w.forward(ctx, dest)
    }

    fn module(&mut self, ctx: &mut MsgCtx<'_, '_>, func: Func, args: &[Param]) -> i32 {
        if self.w.refused_here(func) {
            return -1;
        }
        let id = func.def().id;
        let m = usize::from(func.module);
        if m == self.me {
            return self.with_me(|rt, cx| rt.call(cx, ctx, id, args));
        }
        // Another module: its shell is this, so its replies reach `me`.
        let Some(mut rt) = self.w.runtimes.get_mut(m).and_then(Option::take) else {
            return no_runtime(func);
        };
        let mut cx = Cx {
            now_ms: self.w.now_ms,
            counts: module_counts(self.w.shared, self.w.slot, m),
            me: m,
            shell: &mut *self,
        };
        let r = rt.call(&mut cx, ctx, id, args);
        self.w.runtimes[m] = Some(rt);
        r
    }
}

impl Shell for Lent<'_, '_> {
    fn reply(&mut self, ctx: &mut MsgCtx<'_, '_>, code: u16, reason: &[u8], headers: &[u8]) -> i32 {
        match self.with_me(|rt, cx| rt.reply_on_txn(cx, ctx, code, reason, headers)) {
            Some(r) => r,
            None => Shell::reply(&mut *self.w, ctx, code, reason, headers),
        }
    }

    fn reply_stateless(&mut self, ctx: &mut MsgCtx<'_, '_>, code: u16, reason: &[u8]) -> i32 {
        self.w.reply_stateless(ctx, code, reason)
    }

    fn to_tag(&self, req: &Message<'_>) -> Option<sl::signature::ToTag> {
        self.w.to_tag(req)
    }

    fn absorbs_ack(&mut self, msg: &Message<'_>) -> bool {
        Shell::absorbs_ack(&mut *self.w, msg)
    }

    fn count(&self, c: Counter) {
        Shell::count(&*self.w, c);
    }

    fn in_sock(&self) -> usize {
        self.w.in_sock()
    }

    fn local(&self, sock: usize) -> SocketAddr {
        Shell::local(&*self.w, sock)
    }

    fn socket_for(&self, dest: SocketAddr) -> usize {
        Shell::socket_for(&*self.w, dest)
    }

    fn transport(&self, sock: usize) -> Proto {
        Shell::transport(&*self.w, sock)
    }

    fn connected(&self, peer: SocketAddr, proto: Proto) -> bool {
        Shell::connected(&*self.w, peer, proto)
    }

    fn resolve(&mut self, host: &str, port: u16, prefer_v6: bool) -> Option<SocketAddr> {
        self.w.resolve(host, port, prefer_v6)
    }

    fn push(&mut self, sock: usize, dest: SocketAddr) -> &mut Vec<u8> {
        self.w.push(sock, dest)
    }

    fn pop(&mut self) {
        self.w.pop();
    }

    fn tag_last(&mut self, tag: u128) {
        self.w.tag_last(tag);
    }

    fn send_new(&mut self, to: SocketAddr) -> (SocketAddr, &mut Vec<u8>) {
        self.w.send_new(to)
    }

    /// Another module's route (none runs one yet) would not reach `me`.
    fn run_route(
        &mut self,
        kind: RouteKind,
        route: u32,
        ctx: &mut MsgCtx<'_, '_>,
        me: usize,
        rt: &mut dyn Runtime,
    ) -> Outcome {
        self.w.run_route(kind, route, ctx, me, rt)
    }

    fn send_socket(
        &self,
        forced: Option<SocketAddr>,
        dest: SocketAddr,
        proto: Proto,
    ) -> Option<usize> {
        self.w.send_socket(forced, dest, proto)
    }

    fn on_send(&mut self, msg: &Message<'_>, src: SocketAddr, flags: u32, to: SocketAddr) -> bool {
        self.w.on_send(msg, src, flags, to)
    }

    fn tm_created(&mut self, sel: &mut Failover) {
        self.w.tm_created(sel);
    }

    fn tm_destroyed(&mut self, sel: &Failover) {
        self.w.tm_destroyed(sel);
    }

    fn tm_hooked(&self, flags: u32) -> bool {
        self.w.tm_hooked(flags)
    }

    fn tm_emit(&mut self, ev: &TmEvent<'_, '_>) -> u32 {
        self.w.tm_emit(ev)
    }
}
