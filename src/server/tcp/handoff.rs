//! Sends on a connection another worker owns: each worker has a queue in
//! shared memory (a `rser_shm::Ring`, many pushers and one popper) and an
//! eventfd it polls; a worker that must send on a connection it does not
//! own pushes the bytes to the owner's queue and wakes it. Both are made
//! by the master before it forks, so every worker has every queue.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use rser_shm::ring::{Pop, PushError};
use rser_shm::{Carver, Ring};

use super::conns::ConnId;

/// A record's head: the connection's id (record, bucket, generation),
/// padded to whole words so the bytes follow it unjoined.
const HEAD: usize = 16;

/// Why a hand-off did not happen (the caller counts and logs it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffError {
    /// No such worker.
    NoOwner,
    /// Larger than a queue's cell holds.
    TooLong,
    /// The owner's queue is full: it is not keeping up.
    Full,
}

struct Queue {
    ring: Ring,
    wake: OwnedFd,
}

pub struct Handoff {
    queues: Vec<Queue>,
}

fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd has no memory preconditions; the result is checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Handoff {
    /// For every one of `workers`: a queue of `cells` records of at least
    /// `message_bytes` each (cells are whole words), and its eventfd.
    pub fn carve(
        carver: &mut Carver<'_>,
        workers: usize,
        cells: usize,
        message_bytes: usize,
    ) -> io::Result<Handoff> {
        let too_small = || io::Error::other("shared memory too small for the hand-off queues");
        let queues = (0..workers)
            .map(|_| {
                Ok(Queue {
                    ring: Ring::carve(carver, cells, HEAD + message_bytes).ok_or_else(too_small)?,
                    wake: eventfd()?,
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Handoff { queues })
    }

    /// What worker `w` polls to hear of hand-offs.
    pub fn fd(&self, w: u16) -> Option<RawFd> {
        self.queues.get(usize::from(w)).map(|q| q.wake.as_raw_fd())
    }

    /// Hands `bytes`, to be sent on `conn`, to its owner `owner`.
    pub fn send(
        &self,
        owner: u16,
        conn: ConnId,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<(), HandoffError> {
        let q = self
            .queues
            .get(usize::from(owner))
            .ok_or(HandoffError::NoOwner)?;
        let mut head = [0u8; HEAD];
        head[..4].copy_from_slice(&conn.idx.to_le_bytes());
        head[4..8].copy_from_slice(&conn.bucket.to_le_bytes());
        head[8..12].copy_from_slice(&conn.generation.to_le_bytes());
        q.ring
            .push_parts(&[&head, bytes], now_ms)
            .map_err(|e| match e {
                PushError::TooLong => HandoffError::TooLong,
                PushError::Full | PushError::Lost => HandoffError::Full,
            })?;
        let one = 1u64.to_ne_bytes();
        // A full counter (2^64 - 2 wakes unread) or EAGAIN still leaves it
        // readable: the owner wakes either way.
        // SAFETY: writes 8 bytes from a live buffer to our descriptor.
        let _ = unsafe { libc::write(q.wake.as_raw_fd(), one.as_ptr().cast(), one.len()) };
        Ok(())
    }

    /// Worker `w`, woken: every message handed to it, with its
    /// connection, to `on` (read through `buf`, kept by the caller); the
    /// number lost (a pusher that died midway).
    pub fn drain(
        &self,
        w: u16,
        now_ms: u64,
        buf: &mut Vec<u8>,
        mut on: impl FnMut(ConnId, &[u8]),
    ) -> usize {
        let Some(q) = self.queues.get(usize::from(w)) else {
            return 0;
        };
        let mut count = [0u8; 8];
        // SAFETY: reads 8 bytes into a live buffer from our descriptor
        // (non-blocking: nothing pending is EAGAIN).
        let _ = unsafe { libc::read(q.wake.as_raw_fd(), count.as_mut_ptr().cast(), count.len()) };
        let mut lost = 0;
        // Bounded: at most what the queue holds now and a little more.
        for _ in 0..q.ring.capacity() * 2 {
            buf.clear();
            match q.ring.pop(buf, now_ms) {
                Pop::Empty => break,
                Pop::Lost => lost += 1,
                Pop::Record if buf.len() >= HEAD => {
                    let word =
                        |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
                    let conn = ConnId {
                        idx: word(0),
                        bucket: word(4),
                        generation: word(8),
                    };
                    on(conn, &buf[HEAD..]);
                }
                Pop::Record => lost += 1,
            }
        }
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    #[test]
    fn another_workers_sends_reach_the_owner_and_wake_it() {
        let region = rser_shm::Region::create(4 << 20).unwrap();
        let h = Handoff::carve(&mut region.carver(), 3, 8, 1024).unwrap();
        let conn = ConnId {
            idx: 7,
            bucket: 3,
            generation: 2,
        };
        let owner_fd = h.fd(2).unwrap();
        assert!(!readable(owner_fd));
        h.send(2, conn, b"SIP/2.0 200 OK\r\n\r\n", 0).unwrap();
        h.send(2, conn, b"second", 0).unwrap();
        assert!(readable(owner_fd));
        assert!(!readable(h.fd(1).unwrap()), "only the owner is woken");
        let mut got = Vec::new();
        assert_eq!(
            h.drain(2, 0, &mut Vec::new(), |c, b| got.push((c, b.to_vec()))),
            0
        );
        assert_eq!(
            got,
            [
                (conn, b"SIP/2.0 200 OK\r\n\r\n".to_vec()),
                (conn, b"second".to_vec())
            ]
        );
        assert!(!readable(owner_fd), "drained");
    }

    #[test]
    fn bounds_are_errors_not_waits() {
        let region = rser_shm::Region::create(4 << 20).unwrap();
        let h = Handoff::carve(&mut region.carver(), 1, 4, 64).unwrap();
        let conn = ConnId {
            idx: 0,
            bucket: 0,
            generation: 1,
        };
        assert_eq!(h.send(0, conn, &[0; 100], 0), Err(HandoffError::TooLong));
        assert_eq!(h.send(5, conn, b"x", 0), Err(HandoffError::NoOwner));
        let mut sent = 0;
        while h.send(0, conn, b"x", 0).is_ok() {
            sent += 1;
            assert!(sent <= 64, "a bounded queue");
        }
        assert_eq!(h.send(0, conn, b"x", 0), Err(HandoffError::Full));
        let mut n = 0;
        h.drain(0, 0, &mut Vec::new(), |_, _| n += 1);
        assert_eq!(n, sent);
    }
}
