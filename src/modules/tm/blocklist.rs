//! The destination blocklist (SER's and Kamailio's `dst_blocklist`,
//! formerly "blacklist"): an address that let an INVITE time out without
//! any reply is skipped by tm for `dst_blocklist_expire` seconds, so the
//! next call does not wait for fr_timer again. In shared memory, lock-free:
//! a fixed table of entries, each found by a hash of the address within a
//! short probe window; when the window is full the entry ending first is
//! replaced.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use rser_shm::{Carver, Slice};
use xxhash_rust::xxh3::xxh3_64;

/// Entries probed for one address.
const WINDOW: usize = 8;

#[repr(C)]
#[derive(Default)]
struct Entry {
    /// Hash of the address (0: never used).
    key: AtomicU64,
    /// Monotonic milliseconds until which it is blocked (0: free).
    until: AtomicU64,
    /// The address, for listing: IP in two halves, port and family.
    ip: [AtomicU64; 2],
    port_v6: AtomicU32,
}

#[derive(Clone, Copy)]
pub struct Blocklist {
    entries: Slice<Entry>,
    cap: usize,
}

fn key(a: SocketAddr) -> u64 {
    let mut b = [0u8; 19];
    match a.ip() {
        IpAddr::V4(v4) => b[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => {
            b[..16].copy_from_slice(&v6.octets());
            b[18] = 6;
        }
    }
    b[16..18].copy_from_slice(&a.port().to_be_bytes());
    xxh3_64(&b) | 1
}

impl Blocklist {
    pub fn carve(carver: &mut Carver<'_>, cap: usize) -> Option<Blocklist> {
        let cap = cap.max(WINDOW);
        Some(Blocklist {
            entries: carver.slice(cap, |_| Entry::default())?,
            cap,
        })
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    fn entry(&self, i: usize) -> &Entry {
        &self.entries[i % self.cap]
    }

    fn window(&self, k: u64) -> impl Iterator<Item = &Entry> {
        let start = (k as usize) % self.cap;
        (0..WINDOW).map(move |i| self.entry(start + i))
    }

    /// Blocks `a` until `until` (monotonic ms).
    pub fn add(&self, a: SocketAddr, until: u64, now: u64) {
        let k = key(a);
        let slot = self
            .window(k)
            .find(|e| e.key.load(Ordering::Acquire) == k)
            .or_else(|| {
                self.window(k)
                    .find(|e| e.until.load(Ordering::Acquire) <= now)
            })
            .unwrap_or_else(|| {
                self.window(k)
                    .min_by_key(|e| e.until.load(Ordering::Relaxed))
                    .unwrap_or_else(|| self.entry(0))
            });
        // Writers race only on one address's entry, and write the same
        // address: the last expiry wins.
        slot.until.store(0, Ordering::Release);
        slot.key.store(k, Ordering::Release);
        let (ip, v6) = match a.ip() {
            IpAddr::V4(v4) => (u128::from(v4.to_bits()), 0),
            IpAddr::V6(v6) => (v6.to_bits(), 1 << 16),
        };
        slot.ip[0].store((ip >> 64) as u64, Ordering::Relaxed);
        slot.ip[1].store(ip as u64, Ordering::Relaxed);
        slot.port_v6
            .store(u32::from(a.port()) | v6, Ordering::Relaxed);
        slot.until.store(until, Ordering::Release);
    }

    /// Whether `a` is blocked now.
    pub fn contains(&self, a: SocketAddr, now: u64) -> bool {
        let k = key(a);
        self.window(k)
            .any(|e| e.key.load(Ordering::Acquire) == k && e.until.load(Ordering::Acquire) > now)
    }

    /// Unblocks `a`; false if it was not blocked.
    pub fn remove(&self, a: SocketAddr, now: u64) -> bool {
        let k = key(a);
        let mut found = false;
        for e in self.window(k) {
            if e.key.load(Ordering::Acquire) == k && e.until.swap(0, Ordering::AcqRel) > now {
                found = true;
            }
        }
        found
    }

    /// Unblocks everything; returns how many were blocked.
    pub fn clear(&self, now: u64) -> usize {
        (0..self.cap)
            .filter(|i| self.entry(*i).until.swap(0, Ordering::AcqRel) > now)
            .count()
    }

    /// Every blocked address with the milliseconds left.
    pub fn list(&self, now: u64) -> Vec<(SocketAddr, u64)> {
        (0..self.cap)
            .filter_map(|i| {
                let e = self.entry(i);
                let until = e.until.load(Ordering::Acquire);
                if until <= now {
                    return None;
                }
                let ip = u128::from(e.ip[0].load(Ordering::Relaxed)) << 64
                    | u128::from(e.ip[1].load(Ordering::Relaxed));
                let pv = e.port_v6.load(Ordering::Relaxed);
                let ip = if pv >> 16 != 0 {
                    IpAddr::V6(Ipv6Addr::from_bits(ip))
                } else {
                    IpAddr::V4(Ipv4Addr::from_bits(ip as u32))
                };
                Some((SocketAddr::new(ip, pv as u16), until - now))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rser_shm::Region;

    #[test]
    fn blocks_until_it_expires_and_can_be_cleared() {
        let r = Region::create(1 << 20).unwrap();
        let b = Blocklist::carve(&mut r.carver(), 64).unwrap();
        let a: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let v6: SocketAddr = "[::1]:5071".parse().unwrap();
        b.add(a, 1_000, 0);
        b.add(v6, 2_000, 0);
        assert!(b.contains(a, 999));
        assert!(!b.contains(a, 1_000), "expired");
        assert!(!b.contains("127.0.0.1:5071".parse().unwrap(), 0));
        let mut l = b.list(500);
        l.sort();
        assert_eq!(l, [(a, 500), (v6, 1_500)]);
        assert!(b.remove(a, 500));
        assert!(!b.contains(a, 500));
        assert!(!b.remove(a, 500));
        assert_eq!(b.clear(500), 1);
        assert!(b.list(500).is_empty());
    }

    #[test]
    fn a_full_window_replaces_the_entry_ending_first() {
        let r = Region::create(1 << 20).unwrap();
        let b = Blocklist::carve(&mut r.carver(), WINDOW).unwrap();
        let addrs: Vec<SocketAddr> = (0..=WINDOW as u16)
            .map(|p| SocketAddr::from(([10, 0, 0, 1], 6000 + p)))
            .collect();
        for (i, a) in addrs.iter().enumerate() {
            b.add(*a, 1_000 + i as u64, 0);
        }
        assert!(!b.contains(addrs[0], 0), "the earliest to end was replaced");
        assert!(addrs[1..].iter().all(|a| b.contains(*a, 0)));
        assert_eq!(b.list(0).len(), WINDOW);
    }
}

/// A method's bit in Kamailio's method masks (`blst_methods_add`,
/// `blst_methods_lookup`): INVITE 1, CANCEL 2, ACK 4, BYE 8, INFO 16,
/// REGISTER 32, SUBSCRIBE 64, NOTIFY 128, MESSAGE 256, OPTIONS 512,
/// PRACK 1024, UPDATE 2048, REFER 4096, PUBLISH 8192, others 1 << 19.
pub fn method_bit(m: crate::sip::Method) -> u32 {
    use crate::sip::Method::*;
    match m {
        Invite => 1,
        Cancel => 2,
        Ack => 4,
        Bye => 8,
        Info => 16,
        Register => 32,
        Subscribe => 64,
        Notify => 128,
        Message => 256,
        Options => 512,
        Prack => 1024,
        Update => 2048,
        Refer => 4096,
        Publish => 8192,
        Other => 1 << 19,
    }
}

/// `blst_503` and its timeouts (seconds), from the core's settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rule503 {
    pub on: bool,
    pub default: u32,
    pub min: u32,
    pub max: u32,
}

impl Rule503 {
    pub fn of(s: &crate::cfg::Settings) -> Rule503 {
        Rule503 {
            on: s.blst_503,
            default: s.blst_503_def_timeout,
            min: s.blst_503_min_timeout,
            max: s.blst_503_max_timeout,
        }
    }
}

/// How long a 503 blocklists its sender (`blst_503`): its Retry-After
/// seconds within the bounds, or the default without one; `None`: not.
pub fn for_503(retry_after: Option<u32>, r: Rule503) -> Option<u64> {
    if !r.on {
        return None;
    }
    let secs = match retry_after {
        Some(ra) => ra.clamp(r.min, r.max),
        None => r.default,
    };
    (secs > 0).then_some(u64::from(secs) * 1000)
}

#[cfg(test)]
mod rules_tests {
    use super::*;

    #[test]
    fn a_503_blocklists_for_its_retry_after_within_bounds() {
        let mut s = crate::cfg::Settings::default();
        assert_eq!(for_503(Some(30), Rule503::of(&s)), None);
        s.blst_503 = true;
        assert_eq!(for_503(Some(30), Rule503::of(&s)), Some(30_000));
        assert_eq!(for_503(None, Rule503::of(&s)), None);
        s.blst_503_def_timeout = 5;
        s.blst_503_max_timeout = 20;
        assert_eq!(for_503(None, Rule503::of(&s)), Some(5_000));
        assert_eq!(for_503(Some(30), Rule503::of(&s)), Some(20_000));
        assert_eq!(method_bit(crate::sip::Method::Bye), 8);
    }
}
