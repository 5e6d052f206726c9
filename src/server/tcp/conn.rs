//! One connection as its owning worker drives it: the socket, never
//! blocking; the bytes read and not yet framed (`sip::stream`); the bytes
//! to write that the socket did not take yet, bounded; and when it was
//! last used, for `tcp_connection_lifetime`.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

use crate::sip::stream::{Event, StreamBuf, StreamError};

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
}

/// A message that cannot be queued: the connection holds too much unsent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputFull;

pub struct Conn {
    sock: TcpStream,
    pub peer: SocketAddr,
    input: StreamBuf,
    output: VecDeque<u8>,
    last_used: u64,
}

impl Conn {
    /// Drives `sock` (made non-blocking here) from `now`.
    pub fn new(sock: TcpStream, peer: SocketAddr, now: u64) -> std::io::Result<Conn> {
        sock.set_nonblocking(true)?;
        sock.set_nodelay(true)?;
        Ok(Conn {
            sock,
            peer,
            input: StreamBuf::default(),
            output: VecDeque::new(),
            last_used: now,
        })
    }

    pub fn fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.sock)
    }

    /// Whether it has bytes waiting to be written (poll for writable).
    pub fn wants_write(&self) -> bool {
        !self.output.is_empty()
    }

    /// The socket is readable: each complete message to `on`; keep-alive
    /// pings answered. An error means the connection is to be closed
    /// (what came before it was handed on).
    pub fn on_readable(&mut self, now: u64, mut on: impl FnMut(&[u8])) -> Result<(), Closed> {
        let mut buf = [0u8; 16 * 1024];
        let mut read = 0;
        let mut pings = 0;
        while read < READ_BUDGET {
            match self.sock.read(&mut buf) {
                Ok(0) => {
                    // Frame what came before the end.
                    self.frame(now, &mut on, &mut pings)?;
                    return Err(Closed::ByPeer);
                }
                Ok(n) => {
                    read += n;
                    self.last_used = now;
                    self.input.feed(&buf[..n], now);
                    self.frame(now, &mut on, &mut pings)?;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Closed::Error(e.kind())),
            }
        }
        // RFC 5626 §3.5.1: each ping answered with a pong.
        for _ in 0..pings {
            let _ = self.send(b"\r\n");
        }
        Ok(())
    }

    fn frame(
        &mut self,
        now: u64,
        on: &mut impl FnMut(&[u8]),
        pings: &mut usize,
    ) -> Result<(), Closed> {
        self.input
            .drain(now, |e| match e {
                Event::Message(m) => on(m),
                Event::Ping => *pings += 1,
            })
            .map_err(Closed::Framing)
    }

    /// Queues `bytes` and writes what the socket takes now.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), OutputFull> {
        if self.output.len() + bytes.len() > MAX_OUTPUT {
            return Err(OutputFull);
        }
        self.output.extend(bytes);
        let _ = self.flush();
        Ok(())
    }

    /// The socket is writable (or a send was queued): writes what it
    /// takes.
    pub fn flush(&mut self) -> Result<(), Closed> {
        while !self.output.is_empty() {
            let (front, _) = self.output.as_slices();
            match self.sock.write(front) {
                Ok(0) => return Err(Closed::Error(ErrorKind::WriteZero)),
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Closed::Error(e.kind())),
            }
        }
        Ok(())
    }

    /// Whether it has been unused for longer than `lifetime_ms`, or a
    /// message has been left unfinished too long (a slow sender).
    pub fn expired(&mut self, now: u64, lifetime_ms: u64) -> Option<Closed> {
        if now.saturating_sub(self.last_used) > lifetime_ms {
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
        (Conn::new(server, peer, 0).unwrap(), client)
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
        c.send(ok).unwrap();
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
        assert_eq!(c.expired(100, 1000), None);
        assert_eq!(c.expired(1001, 1000), Some(Closed::Idle));
    }

    #[test]
    fn a_peer_that_does_not_read_meets_the_output_bound() {
        let (mut c, _peer) = pair();
        let chunk = vec![b'x'; 64 * 1024];
        let mut queued = 0;
        while c.send(&chunk).is_ok() {
            queued += 1;
            assert!(queued < 1000, "bounded");
        }
        assert_eq!(c.send(&chunk), Err(OutputFull));
        assert!(c.wants_write());
    }
}
