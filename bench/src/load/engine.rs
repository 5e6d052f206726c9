//! The generator's sockets and loop: paces new units with the token
//! bucket, runs the driver's timers, and moves datagrams in batches
//! (rser's own `recvmmsg`/`sendmmsg` wrappers) between the kernel and the
//! driver, on one thread, waiting in `ppoll` when there is nothing to do.

use std::io::{self, IsTerminal, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use rser::server::udp::{BATCH, Outbox, RxBatch};
use socket2::SockRef;

use super::driver::{Driver, Out, Setup, Stats};
use super::pace::TokenBucket;
use super::tcp::{Inbox, TcpNet};

/// Socket buffers deep enough that a burst is queued, not dropped.
const SOCKET_BUFFER: usize = 8 << 20;

pub struct Sockets {
    /// The UAC sockets, then the UAS sockets when the scenario has them.
    pub all: Vec<UdpSocket>,
    pub uac_addrs: Vec<SocketAddr>,
    pub uas_addr: Option<SocketAddr>,
    pub uas_addrs: Vec<SocketAddr>,
}

impl Sockets {
    pub fn bind(
        peers: usize,
        local_ip: std::net::IpAddr,
        uas: Option<SocketAddr>,
        uas_count: usize,
    ) -> io::Result<Sockets> {
        let mut all = Vec::new();
        let mut uac_addrs = Vec::new();
        for _ in 0..peers {
            let s = UdpSocket::bind(SocketAddr::new(local_ip, 0))?;
            uac_addrs.push(s.local_addr()?);
            all.push(s);
        }
        // UAS sockets on consecutive ports from `uas` (or each on an
        // ephemeral port when it gives port 0).
        let mut uas_addrs = Vec::new();
        if let Some(first) = uas {
            for i in 0..uas_count.max(1) {
                let port = match first.port() {
                    0 => 0,
                    p => p.checked_add(i as u16).ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidInput, "UAS ports past 65535")
                    })?,
                };
                let addr = SocketAddr::new(first.ip(), port);
                let s = UdpSocket::bind(addr).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot bind the UAS on {addr}: {e}"))
                })?;
                uas_addrs.push(s.local_addr()?);
                all.push(s);
            }
        }
        let uas_addr = uas_addrs.first().copied();
        for s in &all {
            s.set_nonblocking(true)?;
            let r = SockRef::from(s);
            // Best effort: the kernel caps these at its rmem_max/wmem_max.
            let _ = r.set_recv_buffer_size(SOCKET_BUFFER);
            let _ = r.set_send_buffer_size(SOCKET_BUFFER);
        }
        Ok(Sockets {
            all,
            uac_addrs,
            uas_addr,
            uas_addrs,
        })
    }
}

/// Sends what waits: the outbox's datagrams (their failures counted), or
/// the connections' buffers.
fn flush(net: &mut Net<'_>, sockets: &Sockets) -> usize {
    match net {
        Net::Udp(outbox) => outbox.flush(&sockets.all, &mut rser::server::udp::NoStreams),
        Net::Tcp(t) => {
            t.flush();
            0
        }
    }
}

pub struct RunResult {
    pub driver: Driver,
    pub stats: Stats,
    /// Time spent starting units (the run's length as asked, normally).
    pub send_secs: f64,
    pub send_failures: usize,
}

/// Where the driver's messages go: the UDP sockets' outbox, or the TCP
/// connections (`--transport tcp`).
enum Net<'n> {
    Udp(Outbox),
    Tcp(&'n mut TcpNet),
}

impl Net<'_> {
    fn out(&mut self) -> &mut dyn Out {
        match self {
            Net::Udp(o) => o,
            Net::Tcp(t) => *t,
        }
    }
}

impl Out for Outbox {
    fn send(&mut self, sock: usize, dest: SocketAddr, bytes: &[u8]) {
        self.push(sock, dest).extend_from_slice(bytes);
    }
}

/// Runs one trial: `rate` units per second for `duration`, then waits for
/// the units in flight (at most `drain`); over `tcp`'s connections when
/// given, else over the UDP sockets.
pub fn run(
    sockets: &Sockets,
    tcp: Option<&mut TcpNet>,
    setup: Setup,
    rate: f64,
    duration: Duration,
    drain: Duration,
    progress: bool,
) -> RunResult {
    let mut driver = Driver::new(setup);
    let mut net = match tcp {
        Some(t) => Net::Tcp(t),
        None => Net::Udp(Outbox::new()),
    };
    let mut inbox = Inbox::default();
    let mut rx = RxBatch::new();
    let mut bucket = TokenBucket::new(rate, 10.0);
    let t0 = Instant::now();
    let us = |t: Instant| t.duration_since(t0).as_micros() as u64;
    let send_end = duration.as_micros() as u64;
    let hard_end = send_end + drain.as_micros() as u64;
    let mut send_failures = 0;
    let mut next_progress = 1_000_000u64;
    let tty = io::stderr().is_terminal();
    let mut fds: Vec<libc::pollfd> = sockets
        .all
        .iter()
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        let now = us(Instant::now());
        if now < send_end {
            // Bounded per pass, so receiving is never starved.
            let n = bucket.take(now).min(4 * BATCH as u32);
            for _ in 0..n {
                driver.start(now, net.out());
            }
        }
        driver.on_timers(now, net.out());
        send_failures += flush(&mut net, sockets);
        match &mut net {
            Net::Udp(outbox) => {
                for (i, s) in sockets.all.iter().enumerate() {
                    // Bounded: a flood on one socket must not stall the others.
                    for _ in 0..8 {
                        let Ok(n) = rx.recv(s.as_raw_fd(), true) else {
                            break;
                        };
                        let now = us(Instant::now());
                        for k in 0..n {
                            if let (Some(data), Some(src)) = rx.get(k) {
                                driver.on_datagram(now, i, src, data, outbox);
                            }
                        }
                        if n < BATCH {
                            break;
                        }
                    }
                }
            }
            Net::Tcp(t) => {
                t.receive(&mut inbox);
                let now = us(Instant::now());
                for k in 0..inbox.len() {
                    let (i, src, data) = inbox.get(k);
                    driver.on_datagram(now, i, src, data, *t);
                }
            }
        }
        send_failures += flush(&mut net, sockets);
        if let Net::Tcp(t) = &net {
            fds = t.pollfds();
        }
        let now = us(Instant::now());
        if progress && now >= next_progress {
            next_progress += 1_000_000;
            let s = driver.stats();
            let line = format!(
                "[{:5.1}s] rate {rate:.0}/s sent {} completed {} failed {} retransmitted {} in flight {}",
                now as f64 / 1e6,
                s.started,
                s.completed,
                s.failed,
                s.retransmitted,
                driver.inflight()
            );
            let mut err = io::stderr();
            let _ = if tty {
                write!(err, "\r{line}\x1b[K")
            } else {
                writeln!(err, "{line}")
            };
        }
        if now >= send_end && (driver.inflight() == 0 || now >= hard_end) {
            break;
        }
        let mut wait = driver
            .next_due()
            .map_or(u64::MAX, |d| d.saturating_sub(now));
        if now < send_end {
            wait = wait.min(bucket.wait_us()).min(send_end - now);
        } else {
            wait = wait.min(hard_end - now);
        }
        let wait = wait.min(100_000);
        if wait > 0 {
            let ts = libc::timespec {
                tv_sec: (wait / 1_000_000) as libc::time_t,
                tv_nsec: ((wait % 1_000_000) * 1000) as libc::c_long,
            };
            // SAFETY: fds is a live array of pollfd of the given length.
            unsafe {
                libc::ppoll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    &ts,
                    std::ptr::null(),
                );
            }
        }
    }
    if progress && tty {
        eprintln!();
    }
    if let Net::Tcp(t) = &mut net {
        send_failures += std::mem::take(&mut t.unsent);
    }
    driver.abandon();
    let stats = driver.stats();
    RunResult {
        driver,
        stats,
        send_secs: duration.as_secs_f64(),
        send_failures,
    }
}
