//! One connection as its owning worker drives it: the socket, never
//! blocking (a connection we open is connected in the background); the
//! bytes read and not yet framed (`sip::stream`); the bytes to write that
//! the socket did not take yet, bounded; and when it was last used, for
//! `tcp_connection_lifetime`.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

use nix::sys::epoll::EpollFlags;
use socket2::{Domain, Socket, Type};

use super::endpoint::Limits;
use crate::sip::stream::{Event, StreamBuf, StreamError};

/// Labels of sends queued while a connection is being opened, kept to
/// report its failure (tm's branches); more are not kept.
const MAX_TAGS: usize = 16;

/// Bytes a connection may hold unsent; more is refused (the peer is not
/// reading).
pub const MAX_OUTPUT: usize = 256 * 1024;
/// Bytes read from a connection per readable event: one connection does
/// not hold the worker up.
const READ_BUDGET: usize = 64 * 1024;

/// How a connection ended, for its log line and counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The peer closed it.
    ByPeer,
    /// Framing failed (`sip::stream`).
    Framing(StreamError),
    /// A read or write failed.
    Error(ErrorKind),
    /// Unused for longer than its lifetime.
    Idle,
    /// A connection we opened was not accepted (refused, or not within
    /// `tcp_connect_timeout`).
    ConnectFailed(ErrorKind),
    /// The peer took nothing we wrote for `tcp_send_timeout`.
    SendTimeout,
    /// TLS failed (a handshake refused, a protocol error).
    Tls,
}

impl Closed {
    /// The error a send it ended is reported with.
    pub fn error(self) -> std::io::Error {
        match self {
            Closed::ConnectFailed(k) | Closed::Error(k) => k.into(),
            Closed::Tls => std::io::Error::new(ErrorKind::InvalidData, "TLS handshake failed"),
            Closed::ByPeer => ErrorKind::ConnectionReset.into(),
            Closed::Framing(_) => ErrorKind::InvalidData.into(),
            Closed::Idle | Closed::SendTimeout => ErrorKind::TimedOut.into(),
        }
    }
}

impl std::os::fd::AsFd for Conn {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// What one read from the socket gave.
enum Got {
    /// Plaintext bytes, in the caller's buffer.
    Bytes(usize),
    /// TLS records taken, no plaintext yet: read again.
    Progress,
    /// Nothing more now.
    Nothing,
    /// The peer closed.
    End,
}

/// A message that cannot be queued: the connection holds too much unsent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputFull;

pub struct Conn {
    sock: TcpStream,
    pub peer: SocketAddr,
    /// The worker's socket index it stands for (its local address).
    pub sock_index: usize,
    input: StreamBuf,
    output: VecDeque<u8>,
    last_used: u64,
    /// Opened by us and not yet accepted: since when.
    connecting_since: Option<u64>,
    /// Since when output has waited with no byte taken.
    stalled_since: Option<u64>,
    tags: Vec<u128>,
    /// Whether epoll is asked for writability now.
    armed_out: bool,
    /// The TLS session, over a `tls:` connection (its buffers are its
    /// own: `output` stays empty).
    tls: Option<Box<rustls::Connection>>,
    /// A TLS handshake under way: since when.
    handshake_since: Option<u64>,
}

impl Conn {
    /// Drives `sock` (made non-blocking here) from `now`.
    pub fn new(
        sock: TcpStream,
        peer: SocketAddr,
        sock_index: usize,
        now: u64,
    ) -> std::io::Result<Conn> {
        sock.set_nonblocking(true)?;
        sock.set_nodelay(true)?;
        Ok(Conn {
            sock,
            peer,
            sock_index,
            input: StreamBuf::default(),
            output: VecDeque::new(),
            last_used: now,
            connecting_since: None,
            stalled_since: None,
            tags: Vec::new(),
            armed_out: false,
            tls: None,
            handshake_since: None,
        })
    }

    /// Runs `session` over the connection from `now` (a `tls:` one).
    pub fn start_tls(&mut self, mut session: rustls::Connection, now: u64) {
        // The bound on what it holds unsent, as for plain TCP.
        session.set_buffer_limit(Some(MAX_OUTPUT));
        self.tls = Some(Box::new(session));
        self.handshake_since = Some(now);
    }

    /// Whether it is still being opened (TCP's connect, or TLS's
    /// handshake on a connection we opened): its failure then is the
    /// failure of the sends queued on it.
    pub fn opening(&self) -> bool {
        self.connecting() || (self.handshake_since.is_some() && !self.tags.is_empty())
    }

    /// Opens a connection to `peer` without waiting for it: sends queue
    /// until it is accepted ([`Conn::on_writable`]).
    pub fn connect(peer: SocketAddr, sock_index: usize, now: u64) -> std::io::Result<Conn> {
        let s = Socket::new(Domain::for_address(peer), Type::STREAM, None)?;
        s.set_nonblocking(true)?;
        let pending = match s.connect(&peer.into()) {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => true,
            Err(e) => return Err(e),
        };
        let mut c = Conn::new(s.into(), peer, sock_index, now)?;
        c.connecting_since = pending.then_some(now);
        c.armed_out = pending;
        Ok(c)
    }

    pub fn fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.sock)
    }

    /// Whether it is still being opened.
    pub fn connecting(&self) -> bool {
        self.connecting_since.is_some()
    }

    /// Whether it has bytes waiting to be written (poll for writable).
    pub fn wants_write(&self) -> bool {
        !self.output.is_empty()
            || self.connecting()
            || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// What epoll is to watch for now.
    pub fn interest(&self) -> EpollFlags {
        match self.wants_write() {
            true => EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT,
            false => EpollFlags::EPOLLIN,
        }
    }

    /// The new interest, when writability is to be watched or no longer.
    pub fn interest_changed(&mut self) -> Option<EpollFlags> {
        let want = self.wants_write();
        (want != self.armed_out).then(|| {
            self.armed_out = want;
            self.interest()
        })
    }

    /// The labels of sends made while it was being opened.
    pub fn into_tags(self) -> Vec<u128> {
        self.tags
    }

    /// The socket is writable (or failed): an open completes, queued
    /// output is written.
    pub fn on_writable(&mut self, now: u64) -> Result<(), Closed> {
        if self.connecting_since.is_some() {
            match self.sock.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return Err(Closed::ConnectFailed(e.kind())),
            }
            if self.sock.peer_addr().is_err() {
                // Not yet: a spurious wake-up.
                return Ok(());
            }
            self.connecting_since = None;
            // Over TLS the sends wait for the handshake too.
            if self.handshake_since.is_none() {
                self.tags.clear();
            }
            self.last_used = now;
        }
        self.flush(now)
    }

    /// The socket is readable: each complete message to `on`; keep-alive
    /// pings answered. An error means the connection is to be closed
    /// (what came before it was handed on).
    pub fn on_readable(&mut self, now: u64, mut on: impl FnMut(&[u8])) -> Result<(), Closed> {
        let mut buf = [0u8; 16 * 1024];
        let mut read = 0;
        let mut pings = 0;
        while read < READ_BUDGET {
            match self.read_some(&mut buf, now)? {
                Got::End => {
                    // Frame what came before the end.
                    self.frame(now, &mut on, &mut pings)?;
                    return Err(Closed::ByPeer);
                }
                Got::Bytes(n) => {
                    read += n;
                    self.last_used = now;
                    self.input.feed(&buf[..n], now);
                    self.frame(now, &mut on, &mut pings)?;
                }
                Got::Progress => read += 1,
                Got::Nothing => break,
            }
        }
        // RFC 5626 §3.5.1: each ping answered with a pong.
        for _ in 0..pings {
            let _ = self.send(b"\r\n", None, now);
        }
        // TLS's own records (the handshake's) go at once.
        if self.tls.as_ref().is_some_and(|t| t.wants_write()) {
            self.flush(now)?;
        }
        Ok(())
    }

    /// One read: plaintext (through TLS when it runs), or why none.
    fn read_some(&mut self, buf: &mut [u8], now: u64) -> Result<Got, Closed> {
        let Some(tls) = self.tls.as_mut() else {
            return match self.sock.read(buf) {
                Ok(0) => Ok(Got::End),
                Ok(n) => Ok(Got::Bytes(n)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(Got::Nothing),
                Err(e) if e.kind() == ErrorKind::Interrupted => Ok(Got::Progress),
                Err(e) => Err(Closed::Error(e.kind())),
            };
        };
        // Plaintext already decrypted first.
        match tls.reader().read(buf) {
            Ok(0) => return Ok(Got::End), // close_notify
            Ok(n) => return Ok(Got::Bytes(n)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return Ok(Got::End), // closed without close_notify
        }
        match tls.read_tls(&mut self.sock) {
            Ok(0) => return Ok(Got::End),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Got::Nothing),
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(Got::Progress),
            Err(e) => return Err(Closed::Error(e.kind())),
        }
        if let Err(e) = tls.process_new_packets() {
            log::debug!("tls: {}: {e}", self.peer);
            // The alert rustls queued, if the socket takes it.
            let _ = tls.write_tls(&mut self.sock);
            return Err(Closed::Tls);
        }
        if self.handshake_since.is_some() && !tls.is_handshaking() {
            self.handshake_since = None;
            self.tags.clear();
            self.last_used = now;
        }
        Ok(Got::Progress)
    }

    fn frame(
        &mut self,
        now: u64,
        on: &mut impl FnMut(&[u8]),
        pings: &mut usize,
    ) -> Result<(), Closed> {
        let r = self.input.drain(now, |e| match e {
            Event::Message(m) => on(m),
            Event::Ping => *pings += 1,
        });
        if let Err(e) = r {
            // A request that cannot be framed gets a 400 before the
            // connection closes (§18.3), when its Via and the rest of
            // what a reply copies can be found.
            let mut reply = Vec::new();
            let found = e.reason().is_some_and(|reason| {
                crate::sip::salvage::error_reply(
                    self.input.pending_bytes(),
                    400,
                    reason,
                    &mut reply,
                )
            });
            if found {
                let _ = self.send(&reply, None, now);
            }
            return Err(Closed::Framing(e));
        }
        Ok(())
    }

    /// Queues `bytes` (labelled `tag`, reported should the connection
    /// never open) and writes what the socket takes now.
    pub fn send(&mut self, bytes: &[u8], tag: Option<u128>, now: u64) -> Result<(), OutputFull> {
        if self.output.len() + bytes.len() > MAX_OUTPUT {
            return Err(OutputFull);
        }
        self.last_used = now;
        if let Some(tls) = self.tls.as_mut() {
            // rustls holds it (until the handshake ends, too), bounded.
            if tls.writer().write_all(bytes).is_err() {
                return Err(OutputFull);
            }
            if let Some(t) =
                tag.filter(|_| self.handshake_since.is_some() && self.tags.len() < MAX_TAGS)
            {
                self.tags.push(t);
            }
            let _ = self.flush(now);
            return Ok(());
        }
        self.output.extend(bytes);
        if self.connecting() {
            if let Some(t) = tag.filter(|_| self.tags.len() < MAX_TAGS) {
                self.tags.push(t);
            }
            return Ok(());
        }
        // An error here is seen again when epoll reports the socket.
        let _ = self.flush(now);
        Ok(())
    }

    /// Writes what the socket takes of the queued output.
    pub fn flush(&mut self, now: u64) -> Result<(), Closed> {
        if self.connecting() {
            return Ok(());
        }
        if let Some(tls) = self.tls.as_mut() {
            while tls.wants_write() {
                match tls.write_tls(&mut self.sock) {
                    Ok(0) => return Err(Closed::Error(ErrorKind::WriteZero)),
                    Ok(_) => self.stalled_since = None,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        self.stalled_since.get_or_insert(now);
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(Closed::Error(e.kind())),
                }
            }
            return Ok(());
        }
        while !self.output.is_empty() {
            let (front, _) = self.output.as_slices();
            match self.sock.write(front) {
                Ok(0) => return Err(Closed::Error(ErrorKind::WriteZero)),
                Ok(n) => {
                    self.output.drain(..n);
                    self.stalled_since = None;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.stalled_since.get_or_insert(now);
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Closed::Error(e.kind())),
            }
        }
        Ok(())
    }

    /// Gives back the memory of its buffers if it has been unused since
    /// `since` and they are empty: an idle connection holds its socket and
    /// this record only.
    pub fn trim(&mut self, since: u64) {
        if self.last_used <= since && !self.wants_write() {
            self.output = VecDeque::new();
            self.input.trim();
        }
    }

    /// Why it is to close now, if it is: unused for longer than its
    /// lifetime, a message left unfinished too long (a slow sender), an
    /// open or a write that takes too long.
    pub fn expired(&mut self, now: u64, limits: &Limits) -> Option<Closed> {
        let over =
            |since: Option<u64>, limit: u64| since.is_some_and(|t| now.saturating_sub(t) > limit);
        if over(self.connecting_since, limits.connect_ms) {
            return Some(Closed::ConnectFailed(ErrorKind::TimedOut));
        }
        if over(self.handshake_since, limits.connect_ms) {
            return Some(Closed::Tls);
        }
        if over(self.stalled_since, limits.send_ms) {
            return Some(Closed::SendTimeout);
        }
        if now.saturating_sub(self.last_used) > limits.lifetime_ms {
            return Some(Closed::Idle);
        }
        self.input.drain(now, |_| {}).err().map(Closed::Framing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair() -> (Conn, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, peer) = l.accept().unwrap();
        (Conn::new(server, peer, 0, 0).unwrap(), client)
    }

    fn wait_readable(c: &Conn) {
        let mut p = libc::pollfd {
            fd: c.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        unsafe { libc::poll(&mut p, 1, 2000) };
    }

    const OPTIONS: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: 1\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn messages_in_pongs_out_and_replies_written() {
        let (mut c, mut peer) = pair();
        let mut stream = Vec::new();
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(OPTIONS);
        stream.extend_from_slice(OPTIONS);
        peer.write_all(&stream).unwrap();
        let mut got = Vec::new();
        for _ in 0..50 {
            if got.len() == 2 {
                break;
            }
            wait_readable(&c);
            c.on_readable(1, |m| got.push(m.to_vec())).unwrap();
        }
        assert_eq!(got, [OPTIONS, OPTIONS]);
        let ok = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        c.send(ok, None, 1).unwrap();
        peer.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let mut back = vec![0u8; 2 + ok.len()];
        peer.read_exact(&mut back).unwrap();
        assert_eq!(&back[..2], b"\r\n", "the ping's pong first");
        assert!(back[2..].starts_with(b"SIP/2.0 200 OK"));
        assert!(!c.wants_write());
    }

    #[test]
    fn framing_errors_the_peers_end_and_idleness_close_it() {
        let (mut c, mut peer) = pair();
        peer.write_all(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: 1\r\n\r\n")
            .unwrap();
        wait_readable(&c);
        assert_eq!(
            c.on_readable(1, |_| {}),
            Err(Closed::Framing(StreamError::NoContentLength))
        );
        // The INVITE without Content-Length was answered 400 first.
        let mut peer400 = pair();
        peer400
            .1
            .write_all(
                b"INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1\r\n\
                  From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
            )
            .unwrap();
        wait_readable(&peer400.0);
        assert!(peer400.0.on_readable(1, |_| {}).is_err());
        peer400
            .1
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let mut back = [0u8; 40];
        let n = peer400.1.read(&mut back).unwrap();
        assert!(
            back[..n].starts_with(b"SIP/2.0 400 Missing Content-Length"),
            "{:?}",
            String::from_utf8_lossy(&back[..n])
        );
        let (mut c, mut peer) = pair();
        peer.write_all(OPTIONS).unwrap();
        drop(peer);
        let mut got = 0;
        let mut end = None;
        for _ in 0..50 {
            wait_readable(&c);
            if let Err(e) = c.on_readable(1, |_| got += 1) {
                end = Some(e);
                break;
            }
        }
        let end = end.expect("the end is seen");
        assert_eq!(
            (got, end),
            (1, Closed::ByPeer),
            "the message before the end is kept"
        );
        let (mut c, _peer) = pair();
        let limits = Limits {
            lifetime_ms: 1000,
            connect_ms: 1000,
            send_ms: 1000,
        };
        assert_eq!(c.expired(100, &limits), None);
        assert_eq!(c.expired(1001, &limits), Some(Closed::Idle));
    }

    #[test]
    fn a_peer_that_does_not_read_meets_the_output_bound() {
        let (mut c, _peer) = pair();
        let chunk = vec![b'x'; 64 * 1024];
        let mut queued = 0;
        while c.send(&chunk, None, 0).is_ok() {
            queued += 1;
            assert!(queued < 1000, "bounded");
        }
        assert_eq!(c.send(&chunk, None, 0), Err(OutputFull));
        assert!(c.wants_write());
    }
}
