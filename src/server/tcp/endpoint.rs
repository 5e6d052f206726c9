//! A worker's stream side: its listening sockets, the connections it
//! owns (accepted or opened), their entries in the shared table, and the
//! sends other workers hand it. The worker polls [`Endpoint::fds`] with
//! its UDP socket and calls back in; messages come out with the
//! connection they came on, so a reply can go back on it (RFC 3261
//! §18.2.2).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

use super::conn::{Closed, Conn, OutputFull};
use super::conns::{ConnId, Conns, Full, Stream};
use super::handoff::{Handoff, HandoffError};

/// Connections one worker owns at most (each holds a descriptor and its
/// buffers); beyond it new ones are refused, counted by the caller.
pub const MAX_OWNED: usize = 16_384;

/// What happened on the stream side, for the worker to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happened {
    /// A connection was accepted or closed (why), for counters and logs.
    Accepted(SocketAddr),
    Closed(SocketAddr, Closed),
    /// A connection was refused: the table or this worker is full.
    Refused(SocketAddr),
}

/// Why a send did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The connection is gone.
    Gone,
    /// Its owner is not keeping up, or it holds too much unsent.
    Full,
    TooLong,
}

pub struct Endpoint<'t> {
    me: u16,
    listeners: Vec<TcpListener>,
    conns: &'t Conns,
    handoff: &'t Handoff,
    owned: HashMap<u32, (ConnId, Conn)>,
}

impl<'t> Endpoint<'t> {
    /// Worker `me`'s side, over `listeners` (made non-blocking here).
    pub fn new(
        me: u16,
        listeners: Vec<TcpListener>,
        conns: &'t Conns,
        handoff: &'t Handoff,
    ) -> std::io::Result<Endpoint<'t>> {
        for l in &listeners {
            l.set_nonblocking(true)?;
        }
        Ok(Endpoint {
            me,
            listeners,
            conns,
            handoff,
            owned: HashMap::new(),
        })
    }

    /// Everything to poll for reading: listeners, the hand-off eventfd,
    /// the connections (with whether each also waits to write).
    pub fn fds(&self) -> Vec<(std::os::fd::RawFd, bool)> {
        let mut out: Vec<_> = self
            .listeners
            .iter()
            .map(|l| (std::os::fd::AsRawFd::as_raw_fd(l), false))
            .collect();
        out.extend(self.handoff.fd(self.me).map(|f| (f, false)));
        out.extend(self.owned.values().map(|(_, c)| (c.fd(), c.wants_write())));
        out
    }

    /// Takes what is pending everywhere (accepts, reads, hand-offs,
    /// writes, expiries): each message to `on` with its connection and
    /// peer; what else happened to `events`. It visits every connection
    /// it owns (a read that would block costs a system call): the worker
    /// loop is to pass only those poll found ready, when it is wired in.
    pub fn poll(
        &mut self,
        now: u64,
        lifetime_ms: u64,
        mut on: impl FnMut(ConnId, SocketAddr, &[u8]),
        events: &mut Vec<Happened>,
    ) {
        self.accept(now, events);
        let mut gone = Vec::new();
        for (key, (id, c)) in self.owned.iter_mut() {
            let peer = c.peer;
            let r = c
                .on_readable(now, |m| on(*id, peer, m))
                .and_then(|()| c.flush());
            let end = r.err().or_else(|| c.expired(now, lifetime_ms));
            if let Some(why) = end {
                gone.push((*key, why));
            }
        }
        let owned = &mut self.owned;
        self.handoff.drain(self.me, now, |id, bytes| {
            if let Some((held, c)) = owned.get_mut(&id.idx)
                && *held == id
            {
                let _ = c.send(bytes);
            }
        });
        for (key, why) in gone {
            if let Some((id, c)) = self.owned.remove(&key) {
                self.conns.remove(id);
                events.push(Happened::Closed(c.peer, why));
            }
        }
    }

    fn accept(&mut self, now: u64, events: &mut Vec<Happened>) {
        for l in &self.listeners {
            // Bounded: a burst of new connections does not stall reads.
            for _ in 0..64 {
                let Ok((sock, peer)) = l.accept() else { break };
                if self.owned.len() >= MAX_OWNED {
                    events.push(Happened::Refused(peer));
                    continue;
                }
                let Ok(conn) = Conn::new(sock, peer, now) else {
                    continue;
                };
                match self.conns.add(peer, Stream::Tcp, self.me) {
                    Ok(id) => {
                        self.owned.insert(id.idx, (id, conn));
                        events.push(Happened::Accepted(peer));
                    }
                    Err(Full) => events.push(Happened::Refused(peer)),
                }
            }
        }
    }

    /// Sends `bytes` on connection `id`: here if this worker owns it,
    /// else handed to its owner.
    pub fn send(&mut self, id: ConnId, bytes: &[u8], now: u64) -> Result<(), SendError> {
        if let Some((held, c)) = self.owned.get_mut(&id.idx)
            && *held == id
        {
            return c.send(bytes).map_err(|OutputFull| SendError::Full);
        }
        let found = self.conns.get(id).ok_or(SendError::Gone)?;
        self.handoff
            .send(found.owner, id, bytes, now)
            .map_err(|e| match e {
                HandoffError::NoOwner => SendError::Gone,
                HandoffError::Full => SendError::Full,
                HandoffError::TooLong => SendError::TooLong,
            })
    }

    /// Connections this worker owns.
    pub fn owned(&self) -> usize {
        self.owned.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    const OPTIONS: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: 1\r\nContent-Length: 0\r\n\r\n";

    fn settle() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    #[test]
    fn accept_read_reply_and_hand_off_between_two_workers() {
        let region = rser_shm::Region::create(8 << 20).unwrap();
        let mut carver = region.carver();
        let conns = Conns::carve(&mut carver, 64).unwrap();
        let handoff = Handoff::carve(&mut carver, 2, 8, 4096).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut w0 = Endpoint::new(0, vec![listener], &conns, &handoff).unwrap();
        let mut w1 = Endpoint::new(1, Vec::new(), &conns, &handoff).unwrap();
        let mut phone = TcpStream::connect(addr).unwrap();
        phone
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        phone.write_all(OPTIONS).unwrap();
        let mut got = Vec::new();
        let mut events = Vec::new();
        for _ in 0..50 {
            settle();
            w0.poll(
                1,
                60_000,
                |id, peer, m| got.push((id, peer, m.to_vec())),
                &mut events,
            );
            if !got.is_empty() {
                break;
            }
        }
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(matches!(events[0], Happened::Accepted(_)));
        let (id, peer, m) = got.pop().expect("the OPTIONS");
        assert_eq!(m, OPTIONS);
        assert_eq!(peer, phone.local_addr().unwrap());
        // The other worker answers: handed to the owner, which sends it.
        let reply = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        w1.send(id, reply, 2).unwrap();
        w0.poll(2, 60_000, |_, _, _| {}, &mut events);
        let mut back = vec![0u8; reply.len()];
        phone.read_exact(&mut back).unwrap();
        assert_eq!(&back, reply);
        // The phone goes: so does the connection, for every worker.
        drop(phone);
        for _ in 0..50 {
            settle();
            w0.poll(3, 60_000, |_, _, _| {}, &mut events);
            if w0.owned() == 0 {
                break;
            }
        }
        assert_eq!(w0.owned(), 0);
        assert!(matches!(
            events.last(),
            Some(Happened::Closed(_, Closed::ByPeer))
        ));
        assert_eq!(w1.send(id, reply, 4), Err(SendError::Gone));
        assert_eq!(conns.live(), 0);
    }
}
