//! The generator over TCP (`--transport tcp`): each UAC peer is one
//! connection to the proxy; each UAS listens and takes the connections
//! the proxy opens to it. Messages are framed by Content-Length (rser's
//! `sip::stream`); what the socket does not take at once waits in the
//! connection's buffer. Socket numbers are the driver's: the UAC peers'
//! first, then the UAS addresses'.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;

use rser::sip::stream::{Event, StreamBuf};

use super::driver::Out;

struct Conn {
    s: TcpStream,
    /// The driver's socket number it belongs to.
    sock: usize,
    peer: SocketAddr,
    input: StreamBuf,
    output: VecDeque<u8>,
}

impl Conn {
    fn new(s: TcpStream, sock: usize, peer: SocketAddr) -> io::Result<Conn> {
        s.set_nonblocking(true)?;
        s.set_nodelay(true)?;
        Ok(Conn {
            s,
            sock,
            peer,
            input: StreamBuf::default(),
            output: VecDeque::new(),
        })
    }

    /// Writes what the socket takes; false when the connection failed.
    fn flush(&mut self) -> bool {
        while !self.output.is_empty() {
            let (front, _) = self.output.as_slices();
            match self.s.write(front) {
                Ok(0) => return false,
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }
}

/// Messages read in one pass: (socket, source, range in `data`).
#[derive(Default)]
pub struct Inbox {
    data: Vec<u8>,
    items: Vec<(usize, SocketAddr, usize, usize)>,
}

impl Inbox {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn get(&self, i: usize) -> (usize, SocketAddr, &[u8]) {
        let (sock, src, a, b) = self.items[i];
        (sock, src, &self.data[a..b])
    }
}

pub struct TcpNet {
    /// The UAC peers' connections, by socket number.
    uac: Vec<Conn>,
    /// The UAS listeners (socket `uac.len() + k`) and what they accepted.
    listeners: Vec<TcpListener>,
    accepted: Vec<Conn>,
    /// Sends that found no connection (the peer gone): counted as failed.
    pub unsent: usize,
}

impl TcpNet {
    /// `peers` connections to `target`, and a listener on each of `uas`.
    pub fn open(target: SocketAddr, peers: usize, uas: &[SocketAddr]) -> io::Result<TcpNet> {
        let listeners = uas
            .iter()
            .map(|a| {
                let l = TcpListener::bind(a).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot listen on tcp:{a}: {e}"))
                })?;
                l.set_nonblocking(true)?;
                Ok(l)
            })
            .collect::<io::Result<Vec<_>>>()?;
        let uac = (0..peers)
            .map(|i| {
                let s = TcpStream::connect(target).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot connect to tcp:{target}: {e}"))
                })?;
                Conn::new(s, i, target)
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(TcpNet {
            uac,
            listeners,
            accepted: Vec::new(),
            unsent: 0,
        })
    }

    /// The UAC connections' local addresses (their Via sent-by).
    pub fn locals(&self) -> Vec<SocketAddr> {
        self.uac
            .iter()
            .filter_map(|c| c.s.local_addr().ok())
            .collect()
    }

    /// Every descriptor to wait on.
    pub fn pollfds(&self) -> Vec<libc::pollfd> {
        let out = |c: &Conn| libc::pollfd {
            fd: c.s.as_raw_fd(),
            events: libc::POLLIN
                | if c.output.is_empty() {
                    0
                } else {
                    libc::POLLOUT
                },
            revents: 0,
        };
        self.uac
            .iter()
            .chain(&self.accepted)
            .map(out)
            .chain(self.listeners.iter().map(|l| libc::pollfd {
                fd: l.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }))
            .collect()
    }

    /// Writes what waits on every connection.
    pub fn flush(&mut self) {
        for c in self.uac.iter_mut().chain(self.accepted.iter_mut()) {
            c.flush();
        }
    }

    /// Accepts what waits, then reads every connection: each message to
    /// `inbox` (cleared first).
    pub fn receive(&mut self, inbox: &mut Inbox) {
        inbox.data.clear();
        inbox.items.clear();
        let base = self.uac.len();
        for (k, l) in self.listeners.iter().enumerate() {
            while let Ok((s, peer)) = l.accept() {
                if let Ok(c) = Conn::new(s, base + k, peer) {
                    self.accepted.push(c);
                }
            }
        }
        let mut buf = [0u8; 16 * 1024];
        self.accepted.retain_mut(|c| read(c, &mut buf, inbox));
        for c in &mut self.uac {
            read(c, &mut buf, inbox);
        }
    }
}

/// Reads `c` until it would block; false when it closed.
fn read(c: &mut Conn, buf: &mut [u8], inbox: &mut Inbox) -> bool {
    let mut open = true;
    for _ in 0..64 {
        match c.s.read(buf) {
            Ok(0) => {
                open = false;
                break;
            }
            Ok(n) => c.input.feed(&buf[..n], 0),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let (sock, peer) = (c.sock, c.peer);
    let framed = c.input.drain(0, |e| {
        if let Event::Message(m) = e {
            let a = inbox.data.len();
            inbox.data.extend_from_slice(m);
            inbox.items.push((sock, peer, a, inbox.data.len()));
        }
    });
    open && framed.is_ok()
}

impl Out for TcpNet {
    fn send(&mut self, sock: usize, dest: SocketAddr, bytes: &[u8]) {
        let conn = match self.uac.get_mut(sock) {
            Some(c) => Some(c),
            // A UAS answers on the connection the request came on.
            None => self
                .accepted
                .iter_mut()
                .find(|c| c.sock == sock && c.peer == dest),
        };
        match conn {
            Some(c) => {
                c.output.extend(bytes);
                c.flush();
            }
            None => self.unsent += 1,
        }
    }
}
