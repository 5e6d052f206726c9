//! Next hops the kernel took a datagram for lately, per process.
//!
//! A stateless `forward()` is batched with the rest of a receive batch,
//! so its result would come too late for the script. To a next hop not
//! seen lately it is sent at once instead, and a refused send (no route,
//! ICMP unreachable) returns false, so `sl_reply_error()` can answer as in
//! Kamailio. A trunk's next hops stay in here and keep the batched path;
//! a failed batched send forgets its hop.

use std::net::SocketAddr;

use xxhash_rust::xxh3::xxh3_64;

/// Entries, direct-mapped by a hash of the address.
const ENTRIES: usize = 64;
/// How long a send that worked vouches for its next hop.
const RECENT_MS: u64 = 10_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    addr: Option<SocketAddr>,
    until_ms: u64,
}

#[derive(Debug)]
pub struct Reachable {
    entries: [Entry; ENTRIES],
}

impl Default for Reachable {
    fn default() -> Self {
        Reachable {
            entries: [Entry {
                addr: None,
                until_ms: 0,
            }; ENTRIES],
        }
    }
}

fn index(addr: SocketAddr) -> usize {
    let mut key = [0u8; 18];
    match addr {
        SocketAddr::V4(a) => key[..4].copy_from_slice(&a.ip().octets()),
        SocketAddr::V6(a) => key[..16].copy_from_slice(&a.ip().octets()),
    }
    key[16..].copy_from_slice(&addr.port().to_le_bytes());
    (xxh3_64(&key) % ENTRIES as u64) as usize
}

impl Reachable {
    /// Whether a send to `addr` worked within the last [`RECENT_MS`].
    pub fn knows(&self, addr: SocketAddr, now_ms: u64) -> bool {
        let e = &self.entries[index(addr)];
        e.addr == Some(addr) && now_ms < e.until_ms
    }

    /// A send to `addr` worked at `now_ms`.
    pub fn note(&mut self, addr: SocketAddr, now_ms: u64) {
        self.entries[index(addr)] = Entry {
            addr: Some(addr),
            until_ms: now_ms + RECENT_MS,
        };
    }

    /// A send to `addr` failed.
    pub fn forget(&mut self, addr: SocketAddr) {
        let e = &mut self.entries[index(addr)];
        if e.addr == Some(addr) {
            e.addr = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_while_recent_forgotten_on_failure() {
        let a: SocketAddr = "192.0.2.1:5060".parse().unwrap();
        let b: SocketAddr = "[2001:db8::1]:5060".parse().unwrap();
        let mut r = Reachable::default();
        assert!(!r.knows(a, 0));
        r.note(a, 1_000);
        r.note(b, 1_000);
        assert!(r.knows(a, 1_000 + RECENT_MS - 1));
        assert!(!r.knows(a, 1_000 + RECENT_MS), "stale");
        r.forget(a);
        assert!(!r.knows(a, 2_000));
        assert!(r.knows(b, 2_000));
    }
}
