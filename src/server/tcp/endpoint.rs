//! A worker's stream side: its listening sockets, the connections it
//! owns (accepted or opened), their entries in the shared table, and the
//! sends other workers hand it, all in one epoll set with the worker's
//! UDP sockets. Messages come out with the connection they came on, so a
//! reply can go back on it (RFC 3261 §18.2.2); a send finds the
//! connection to its destination whoever owns it, or opens one.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, BorrowedFd};

use arrayvec::ArrayVec;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use super::conn::{Closed, Conn, OutputFull};
use super::conns::{ConnId, Conns, Found, Full, Stream};
use super::handoff::{Handoff, HandoffError};
use crate::server::limits::MAX_SOCKETS;

/// Connections one worker owns at most (each holds a descriptor and its
/// buffers); beyond it new ones are refused, counted by the caller.
pub const MAX_OWNED: usize = 16_384;
/// Events taken per wait.
const EVENTS: usize = 256;
/// How often owned connections are checked for idleness, slow senders
/// and connects that take too long.
const SWEEP_MS: u64 = 1000;

/// epoll tokens: the kind in the high word, an index in the low one.
const UDP: u64 = 1 << 32;
const LISTENER: u64 = 2 << 32;
const WAKE: u64 = 3 << 32;
const CONN: u64 = 4 << 32;
const KIND: u64 = !0 << 32;

/// What happened on the stream side, for the worker to count and log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happened {
    Accepted(SocketAddr),
    /// A connection we opened was accepted by its peer.
    Connected(SocketAddr),
    Closed(SocketAddr, Closed),
    /// A connection was refused: the table or this worker is full.
    Refused(SocketAddr),
    /// A connection we opened failed (refused, timed out): what was
    /// queued on it is lost; each send's label, for tm to end its branch.
    ConnectFailed(SocketAddr, Closed, Vec<u128>),
    /// A message another worker handed us could not be sent.
    HandoffLost,
}

/// The bounds an endpoint works to (Kamailio's `tcp_*` settings).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub lifetime_ms: u64,
    pub connect_ms: u64,
    pub send_ms: u64,
}

/// Messages read in one wait, copied out of their connections' buffers
/// (the worker handles them once the endpoint is free to send).
#[derive(Default)]
pub struct Inbox {
    data: Vec<u8>,
    items: Vec<(ConnId, SocketAddr, usize, usize, usize)>,
}

impl Inbox {
    pub fn clear(&mut self) {
        self.data.clear();
        self.items.clear();
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Message `i`: its connection, peer, the worker's socket index it
    /// arrived on, and its bytes.
    pub fn get(&self, i: usize) -> (ConnId, SocketAddr, usize, &[u8]) {
        let (id, peer, sock, a, b) = self.items[i];
        (id, peer, sock, &self.data[a..b])
    }

    fn push(&mut self, id: ConnId, peer: SocketAddr, sock: usize, m: &[u8]) {
        let a = self.data.len();
        self.data.extend_from_slice(m);
        self.items.push((id, peer, sock, a, self.data.len()));
    }
}

pub struct Endpoint<'t> {
    me: u16,
    /// Listening sockets, each with the worker's socket index it stands
    /// for (its local address, its Via) and its transport.
    listeners: Vec<(TcpListener, usize, Stream)>,
    conns: &'t Conns,
    handoff: &'t Handoff,
    owned: HashMap<u32, (ConnId, Conn)>,
    epoll: Epoll,
    events: Vec<EpollEvent>,
    /// Whether this process may open connections (the timer process only
    /// sends through their owners).
    may_open: bool,
    limits: Limits,
    last_sweep: u64,
    /// TLS's configurations, with the tls module.
    tls: Option<super::tls::TlsSetup>,
    /// Hand-offs are read through this (reused).
    handoff_buf: Vec<u8>,
}

fn to_io(e: nix::errno::Errno) -> io::Error {
    io::Error::from(e)
}

impl<'t> Endpoint<'t> {
    /// Process `me`'s side, over `listeners` (each with its socket index
    /// and transport; made non-blocking here).
    pub fn new(
        me: u16,
        listeners: Vec<(TcpListener, usize, Stream)>,
        conns: &'t Conns,
        handoff: &'t Handoff,
        may_open: bool,
        limits: Limits,
        tls: Option<super::tls::TlsSetup>,
    ) -> io::Result<Endpoint<'t>> {
        if listeners.iter().any(|l| l.2 == Stream::Tls) && tls.is_none() {
            return Err(io::Error::other(
                "a tls: address without the tls module's setup",
            ));
        }
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(to_io)?;
        for (i, (l, _, _)) in listeners.iter().enumerate() {
            l.set_nonblocking(true)?;
            epoll
                .add(l, EpollEvent::new(EpollFlags::EPOLLIN, LISTENER | i as u64))
                .map_err(to_io)?;
        }
        if may_open && let Some(fd) = handoff.fd(me) {
            // SAFETY: the hand-off's eventfd lives as long as the region's
            // tables, longer than this endpoint.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            epoll
                .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, WAKE))
                .map_err(to_io)?;
        }
        Ok(Endpoint {
            me,
            listeners,
            conns,
            handoff,
            owned: HashMap::new(),
            epoll,
            events: vec![EpollEvent::empty(); EVENTS],
            may_open,
            limits,
            last_sweep: 0,
            tls,
            handoff_buf: Vec::new(),
        })
    }

    /// Adds UDP socket `index` to the set [`Endpoint::wait`] waits on.
    pub fn watch_udp(&self, fd: BorrowedFd<'_>, index: usize) -> io::Result<()> {
        // Workers sharing one socket: one of them is woken per datagram.
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE;
        self.epoll
            .add(fd, EpollEvent::new(flags, UDP | index as u64))
            .map_err(to_io)
    }

    /// Waits up to `timeout_ms` for anything, and takes what is pending
    /// on the stream side (accepts, reads, hand-offs, writes, expiries):
    /// messages to `inbox`, the rest to `happened`; the UDP sockets that
    /// are readable to `udp`.
    pub fn wait(
        &mut self,
        timeout_ms: u16,
        now: impl Fn() -> u64,
        udp: &mut ArrayVec<usize, MAX_SOCKETS>,
        inbox: &mut Inbox,
        happened: &mut Vec<Happened>,
    ) {
        let n = match self
            .epoll
            .wait(&mut self.events, EpollTimeout::from(timeout_ms))
        {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => {
                log::error!("epoll_wait: {e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
                0
            }
        };
        let now = now();
        for i in 0..n {
            let (data, flags) = (self.events[i].data(), self.events[i].events());
            let low = data & !KIND;
            match data & KIND {
                UDP => {
                    let _ = udp.try_push(low as usize);
                }
                LISTENER => self.accept(low as usize, now, happened),
                WAKE => self.drain_handoff(now, happened),
                _ => self.on_conn(low as u32, flags, now, inbox, happened),
            }
        }
        if now.saturating_sub(self.last_sweep) >= SWEEP_MS {
            self.last_sweep = now;
            self.sweep(now, happened);
        }
    }

    fn accept(&mut self, which: usize, now: u64, happened: &mut Vec<Happened>) {
        let Some((sock, kind)) = self.listeners.get(which).map(|(_, s, k)| (*s, *k)) else {
            return;
        };
        // Bounded: a burst of new connections does not stall reads.
        for _ in 0..64 {
            let Ok((s, peer)) = self.listeners[which].0.accept() else {
                break;
            };
            if self.owned.len() >= MAX_OWNED {
                happened.push(Happened::Refused(peer));
                continue;
            }
            let Ok(mut conn) = Conn::new(s, peer, sock, now) else {
                continue;
            };
            if kind == Stream::Tls {
                match self.tls.as_ref().map(|t| t.accept()) {
                    Some(Ok(session)) => conn.start_tls(session, now),
                    _ => continue,
                }
            }
            match self.conns.add(peer, kind, self.me, true) {
                Ok(id) => {
                    if self.own(id, conn).is_ok() {
                        happened.push(Happened::Accepted(peer));
                    }
                }
                Err(Full) => happened.push(Happened::Refused(peer)),
            }
        }
    }

    /// Keeps `conn` as `id`, in the epoll set.
    fn own(&mut self, id: ConnId, conn: Conn) -> io::Result<()> {
        let ev = EpollEvent::new(conn.interest(), CONN | u64::from(id.idx));
        if let Err(e) = self.epoll.add(conn.as_fd(), ev) {
            self.conns.remove(id);
            return Err(to_io(e));
        }
        self.owned.insert(id.idx, (id, conn));
        Ok(())
    }

    /// Connection `idx` is ready (`flags`).
    fn on_conn(
        &mut self,
        idx: u32,
        flags: EpollFlags,
        now: u64,
        inbox: &mut Inbox,
        happened: &mut Vec<Happened>,
    ) {
        let Some((id, c)) = self.owned.get_mut(&idx) else {
            return;
        };
        let id = *id;
        let mut r = Ok(());
        if flags.intersects(EpollFlags::EPOLLOUT | EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP) {
            let was_connecting = c.connecting();
            r = c.on_writable(now);
            if was_connecting && r.is_ok() && !c.connecting() {
                happened.push(Happened::Connected(c.peer));
            }
        }
        if r.is_ok() && flags.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP) {
            let (peer, sock) = (c.peer, c.sock_index);
            r = c.on_readable(now, |m| inbox.push(id, peer, sock, m));
        }
        match r {
            Ok(()) => self.rearm(idx),
            Err(why) => self.close(idx, why, happened),
        }
    }

    /// Asks epoll for writability exactly while `idx` has output waiting.
    fn rearm(&mut self, idx: u32) {
        let Some((_, c)) = self.owned.get_mut(&idx) else {
            return;
        };
        if let Some(flags) = c.interest_changed() {
            let mut ev = EpollEvent::new(flags, CONN | u64::from(idx));
            let _ = self.epoll.modify(c.as_fd(), &mut ev);
        }
    }

    fn close(&mut self, idx: u32, why: Closed, happened: &mut Vec<Happened>) {
        let Some((id, c)) = self.owned.remove(&idx) else {
            return;
        };
        let _ = self.epoll.delete(c.as_fd());
        self.conns.remove(id);
        if c.opening() || matches!(why, Closed::ConnectFailed(_)) {
            happened.push(Happened::ConnectFailed(c.peer, why, c.into_tags()));
        } else {
            happened.push(Happened::Closed(c.peer, why));
        }
    }

    fn drain_handoff(&mut self, now: u64, happened: &mut Vec<Happened>) {
        let owned = &mut self.owned;
        let mut touched: ArrayVec<u32, 64> = ArrayVec::new();
        let mut lost = 0;
        self.handoff
            .drain(self.me, now, &mut self.handoff_buf, |id, bytes| {
                let sent = match owned.get_mut(&id.idx) {
                    Some((held, c)) if *held == id => c.send(bytes, None, now).is_ok(),
                    _ => false,
                };
                if !sent {
                    lost += 1;
                } else if !touched.contains(&id.idx) {
                    // Past 64 connections in one drain, the rest are rearmed
                    // when next ready (their output waits meanwhile).
                    let _ = touched.try_push(id.idx);
                }
            });
        for idx in touched {
            self.rearm(idx);
        }
        happened.extend(std::iter::repeat_n(Happened::HandoffLost, lost));
    }

    /// Every owned connection checked for idleness, slow senders, connects
    /// and writes that take too long.
    fn sweep(&mut self, now: u64, happened: &mut Vec<Happened>) {
        let limits = self.limits;
        let idle_since = now.saturating_sub(SWEEP_MS);
        let ended: Vec<(u32, Closed)> = self
            .owned
            .iter_mut()
            .filter_map(|(idx, (_, c))| {
                c.trim(idle_since);
                c.expired(now, &limits).map(|why| (*idx, why))
            })
            .collect();
        for (idx, why) in ended {
            self.close(idx, why, happened);
        }
    }

    /// Sends `bytes` to `dest` over TCP: on the connection to it (or an
    /// alias of one), here if this process owns it, else handed to its
    /// owner; with none, a reply goes on one to its Via's sent-by if there
    /// is (§18.2.2), else a new connection is opened from socket `sock`
    /// (its failure reported later with `tag`).
    pub fn send_to(
        &mut self,
        dest: SocketAddr,
        sock: usize,
        kind: Stream,
        bytes: &[u8],
        tag: Option<u128>,
        now: u64,
    ) -> io::Result<()> {
        if let Some(f) = self.conns.find(dest, kind) {
            return self.send_on(f, bytes, tag, now);
        }
        let dest = match reply_fallback(bytes, dest) {
            Some(alt) => {
                if let Some(f) = self.conns.find(alt, kind) {
                    return self.send_on(f, bytes, tag, now);
                }
                alt
            }
            None => dest,
        };
        if !self.may_open {
            return Err(io::ErrorKind::NotConnected.into());
        }
        if self.owned.len() >= MAX_OWNED {
            return Err(io::Error::other(
                "this worker's connections are at their limit",
            ));
        }
        let mut conn = Conn::connect(dest, sock, now)
            .map_err(|e| io::Error::new(e.kind(), format!("connect: {e}")))?;
        if kind == Stream::Tls {
            let setup = self
                .tls
                .as_ref()
                .ok_or_else(|| io::Error::other("TLS needs the tls module"))?;
            let session = setup
                .connect(dest)
                .map_err(|e| io::Error::other(format!("tls: {e}")))?;
            conn.start_tls(session, now);
        }
        let id = self
            .conns
            .add(dest, kind, self.me, false)
            .map_err(|Full| io::Error::other("tcp_max_connections reached"))?;
        self.own(id, conn)?;
        let found = Found {
            id,
            owner: self.me,
            peer: dest,
        };
        self.send_on(found, bytes, tag, now)
    }

    fn send_on(&mut self, f: Found, bytes: &[u8], tag: Option<u128>, now: u64) -> io::Result<()> {
        if f.owner == self.me
            && let Some((held, c)) = self.owned.get_mut(&f.id.idx)
            && *held == f.id
        {
            c.send(bytes, tag, now)
                .map_err(|OutputFull| io::Error::other("connection output full"))?;
            self.rearm(f.id.idx);
            return Ok(());
        }
        self.handoff
            .send(f.owner, f.id, bytes, now)
            .map_err(|e| match e {
                HandoffError::NoOwner => io::ErrorKind::NotConnected.into(),
                HandoffError::Full => io::Error::other("the connection's owner is not keeping up"),
                HandoffError::TooLong => io::Error::other("too long to hand to another worker"),
            })
    }

    /// New TLS configurations (`tls.reload`): for the connections from
    /// now on.
    pub fn set_tls(&mut self, setup: super::tls::TlsSetup) {
        self.tls = Some(setup);
    }

    /// Connections this process owns.
    pub fn owned(&self) -> usize {
        self.owned.len()
    }
}

/// Where a reply whose connection is gone goes instead (RFC 3261
/// §18.2.2): the top Via's `received` (else its host) and its sent-by
/// port, when that differs from `dest` (the `rport` the connection had).
fn reply_fallback(bytes: &[u8], dest: SocketAddr) -> Option<SocketAddr> {
    if !bytes.starts_with(b"SIP/2.0 ") {
        return None;
    }
    let msg = crate::sip::Message::parse(bytes).ok()?;
    let v = msg.top_via().ok()?;
    let port = v.port.unwrap_or(5060);
    let alt = SocketAddr::new(dest.ip(), port);
    (alt != dest).then_some(alt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    const OPTIONS: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: 1\r\nContent-Length: 0\r\n\r\n";
    const LIMITS: Limits = Limits {
        lifetime_ms: 60_000,
        connect_ms: 5_000,
        send_ms: 5_000,
    };

    fn clock() -> u64 {
        crate::server::worker::now_ms()
    }

    fn turn(e: &mut Endpoint<'_>, inbox: &mut Inbox, happened: &mut Vec<Happened>) {
        let mut udp = ArrayVec::new();
        e.wait(20, clock, &mut udp, inbox, happened);
    }

    #[test]
    fn accept_read_reply_and_hand_off_between_two_workers() {
        let region = rser_shm::Region::create(8 << 20).unwrap();
        let mut carver = region.carver();
        let conns = Conns::carve(&mut carver, 64, 64, 64).unwrap();
        let handoff = Handoff::carve(&mut carver, 2, 8, 4096).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut w0 = Endpoint::new(
            0,
            vec![(listener, 1, Stream::Tcp)],
            &conns,
            &handoff,
            true,
            LIMITS,
            None,
        )
        .unwrap();
        let mut w1 = Endpoint::new(1, Vec::new(), &conns, &handoff, true, LIMITS, None).unwrap();
        let mut phone = TcpStream::connect(addr).unwrap();
        phone
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        phone.write_all(OPTIONS).unwrap();
        let mut inbox = Inbox::default();
        let mut happened = Vec::new();
        for _ in 0..50 {
            turn(&mut w0, &mut inbox, &mut happened);
            if !inbox.is_empty() {
                break;
            }
        }
        assert!(matches!(happened[0], Happened::Accepted(_)), "{happened:?}");
        let (_, peer, sock, m) = inbox.get(0);
        assert_eq!((m, sock), (OPTIONS, 1));
        assert_eq!(peer, phone.local_addr().unwrap());
        // The other worker answers: handed to the owner, which sends it.
        let reply = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        w1.send_to(peer, 1, Stream::Tcp, reply, None, clock())
            .unwrap();
        turn(&mut w0, &mut inbox, &mut happened);
        let mut back = vec![0u8; reply.len()];
        phone.read_exact(&mut back).unwrap();
        assert_eq!(&back, reply);
        // The phone goes: so does the connection, for every worker.
        drop(phone);
        for _ in 0..50 {
            turn(&mut w0, &mut inbox, &mut happened);
            if w0.owned() == 0 {
                break;
            }
        }
        assert_eq!(w0.owned(), 0);
        assert!(matches!(
            happened.last(),
            Some(Happened::Closed(_, Closed::ByPeer))
        ));
        assert_eq!(conns.live(), 0);
    }

    #[test]
    fn a_send_opens_a_connection_and_a_refused_one_reports_its_labels() {
        let region = rser_shm::Region::create(8 << 20).unwrap();
        let mut carver = region.carver();
        let conns = Conns::carve(&mut carver, 64, 64, 64).unwrap();
        let handoff = Handoff::carve(&mut carver, 1, 8, 4096).unwrap();
        let mut w = Endpoint::new(0, Vec::new(), &conns, &handoff, true, LIMITS, None).unwrap();
        let callee = TcpListener::bind("127.0.0.1:0").unwrap();
        let to = callee.local_addr().unwrap();
        w.send_to(to, 0, Stream::Tcp, OPTIONS, Some(7), clock())
            .unwrap();
        let (mut s, _) = callee.accept().unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let (mut inbox, mut happened) = (Inbox::default(), Vec::new());
        let mut got = vec![0u8; OPTIONS.len()];
        for _ in 0..50 {
            turn(&mut w, &mut inbox, &mut happened);
            if s.read_exact(&mut got).is_ok() {
                break;
            }
        }
        assert_eq!(got, OPTIONS);
        // A second send reuses it.
        w.send_to(to, 0, Stream::Tcp, OPTIONS, None, clock())
            .unwrap();
        assert_eq!((w.owned(), conns.live()), (1, 1));
        // Nobody listens there: the label comes back.
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let r = w.send_to(closed, 0, Stream::Tcp, OPTIONS, Some(9), clock());
        for _ in 0..50 {
            if r.is_err()
                || happened
                    .iter()
                    .any(|h| matches!(h, Happened::ConnectFailed(..)))
            {
                break;
            }
            turn(&mut w, &mut inbox, &mut happened);
        }
        let reported = happened.iter().any(
            |h| matches!(h, Happened::ConnectFailed(a, _, tags) if *a == closed && tags == &[9]),
        );
        assert!(r.is_err() || reported, "{r:?} {happened:?}");
        assert_eq!(w.owned(), 1);
    }
}
