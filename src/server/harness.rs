//! The server on a simulated clock, in memory, as quinn-proto tests its
//! connections: real workers and a real timer process's `Worker` over one
//! in-process shared-memory region, fed `(datagram, source)` at a time
//! the test chooses, their outboxes capturing what they would send. No
//! wall clock, no packets, no processes: a test of tm's timers runs in
//! microseconds and its timings are exact.

use std::net::{SocketAddr, UdpSocket};

use super::shared::Shared;
use super::udp::Outbox;
use super::worker::Worker;
use crate::cfg::Config;
use crate::cfg::compile::myself;
use crate::cfg::settings::{Listen, Proto};
use crate::script::{ScriptState, Vm};
use crate::sip::Message;

/// What a process sent: from which of our addresses, to whom, the text.
#[derive(Debug, Clone)]
pub struct Sent {
    pub to: SocketAddr,
    pub text: String,
}

impl Sent {
    pub fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }

    pub fn status(&self) -> Option<u16> {
        self.first_line()
            .strip_prefix("SIP/2.0 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.text.split("\r\n").find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A server of `workers` workers and a timer process on a simulated clock.
pub struct Harness {
    workers: Vec<Worker<'static>>,
    timer: Worker<'static>,
    st: ScriptState,
    main: Option<u32>,
    /// Milliseconds on the simulated monotonic clock.
    pub now_ms: u64,
    /// The address the server listens on (bound, never read or written).
    pub addr: SocketAddr,
    sent: Vec<Sent>,
}

impl Harness {
    /// Compiles `cfg` (it must be valid) and lays out 8 MiB of shared
    /// memory for it.
    pub fn new(cfg: &str, workers: usize) -> Harness {
        let mut config = crate::cfg::load(cfg).unwrap_or_else(|e| panic!("config: {e:?}"));
        // A real socket only for its address: nothing is sent on it.
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let mut settings = config.settings.clone();
        settings.listen = vec![Listen {
            proto: Proto::Udp,
            addr: addr.ip(),
            port: Some(addr.port()),
        }];
        config.program.myself = myself(&settings);
        // Leaked: a Worker borrows all of these for the harness's life
        // (one test's).
        let config: &'static Config = Box::leak(Box::new(config));
        let shared: &'static Shared = Box::leak(Box::new(
            Shared::create(8 << 20, workers + 1, Some(config)).unwrap(),
        ));
        let sockets: &'static [UdpSocket] = Box::leak(vec![sock].into_boxed_slice());
        let vm: &'static Vm<'static> = Box::leak(Box::new(Vm::new(config)));
        let make = |slot| {
            let mut w = Worker::new(slot, config, shared, sockets, vm);
            w.outbox = Outbox::capturing();
            w
        };
        let mut all: Vec<Worker<'static>> = (0..workers).map(make).collect();
        if let Some(first) = all.first_mut() {
            first.start_events();
        }
        Harness {
            workers: all,
            timer: make(workers),
            st: ScriptState::new(),
            main: config.program.main_route(),
            now_ms: 1_000_000,
            addr,
            sent: Vec::new(),
        }
    }

    /// Next hops whose sends the kernel would refuse (no route).
    pub fn unreachable(&mut self, addr: SocketAddr) {
        for w in self
            .workers
            .iter_mut()
            .chain(std::iter::once(&mut self.timer))
        {
            if let Some(c) = w.outbox.capture() {
                c.unreachable.push(addr);
            }
        }
    }

    /// `text` arrives from `src` at worker `w`, now.
    pub fn recv_on(&mut self, w: usize, src: SocketAddr, text: &str) {
        Message::parse(text.as_bytes()).expect("a test's message parses");
        let worker = &mut self.workers[w];
        worker.now_ms = self.now_ms;
        worker.in_sock = 0;
        worker.datagram(Some(text.as_bytes()), src, &mut self.st, self.main);
        worker.flush();
        collect(worker, &mut self.sent);
    }

    /// `text` arrives from `src` at the first worker.
    pub fn recv(&mut self, src: SocketAddr, text: &str) {
        self.recv_on(0, src, text);
    }

    /// Lets `ms` pass, the timer process running every 10 ms tick as it
    /// does for real.
    pub fn advance(&mut self, ms: u64) {
        let end = self.now_ms + ms;
        while self.now_ms < end {
            self.now_ms = (self.now_ms + crate::modules::tm::wheel::TICK_MS).min(end);
            self.timer.now_ms = self.now_ms;
            self.timer.tick();
            collect(&mut self.timer, &mut self.sent);
        }
    }

    /// Everything sent since the last call, in order.
    pub fn sent(&mut self) -> Vec<Sent> {
        std::mem::take(&mut self.sent)
    }

    /// What was sent to `to` since the last call (the rest is kept).
    pub fn sent_to(&mut self, to: SocketAddr) -> Vec<Sent> {
        let (mine, rest) = std::mem::take(&mut self.sent)
            .into_iter()
            .partition(|s| s.to == to);
        self.sent = rest;
        mine
    }

    /// A counter's total over every process.
    pub fn counter(&self, name: &str) -> u64 {
        let i = super::shared::counter_names()
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("no counter {name}"));
        self.timer.shared.counters.total(i)
    }
}

fn collect(w: &mut Worker<'_>, into: &mut Vec<Sent>) {
    if let Some(c) = w.outbox.capture() {
        into.extend(c.sent.drain(..).map(|(_, to, bytes)| Sent {
            to,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }));
    }
}
