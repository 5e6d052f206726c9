//! pike's counts in shared memory: requests per source address in fixed
//! time units, in a fixed table every worker writes without a lock (as
//! tm's destination blocklist): an address is found by its hash within a
//! short probe window; when the window has no free or stale entry, the
//! coldest (least recently seen) is taken over, and counted. Counts are
//! approximate under races (two workers claiming one free entry at once),
//! never unbounded. The clock is the caller's (milliseconds).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use rser_shm::{Carver, Slice};
use xxhash_rust::xxh3::xxh3_64;

/// Entries probed for one address.
const WINDOW: usize = 8;

/// How pike counts: `density` requests a `unit_ms` at most; an address
/// unseen for `latency_ms` is forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub unit_ms: u64,
    pub density: u32,
    pub latency_ms: u64,
}

#[repr(C)]
#[derive(Default)]
struct Entry {
    /// Hash of the source (0: never used).
    key: AtomicU64,
    /// The current unit's number (high 32 bits) and its hits (low 32).
    unit_hits: AtomicU64,
    /// Hits in the unit before it.
    prev: AtomicU32,
    /// When the source was last seen (ms).
    last: AtomicU64,
    /// The source, for `pike.top`: its 16 bytes in two halves (an IPv4
    /// address mapped into IPv6), and 4 or 6.
    ip: [AtomicU64; 2],
    family: AtomicU32,
}

/// A source as pike counts it: an IPv4 address, or an IPv6 address's
/// /64 (whoever holds one address of a /64 holds them all); or a name
/// (auth counts users' failures in a table of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    bytes: [u8; 16],
    v6: bool,
    named: bool,
}

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(a) => Source {
                bytes: a.to_ipv6_mapped().octets(),
                v6: false,
                named: false,
            },
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Source::of(IpAddr::V4(v4)),
                None => {
                    let mut bytes = a.octets();
                    bytes[8..].fill(0);
                    Source {
                        bytes,
                        v6: true,
                        named: false,
                    }
                }
            },
        }
    }

    /// A name's key (its text is not kept: listed as a hash).
    pub fn named(parts: &[&[u8]]) -> Source {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for p in parts {
            h.update(&(p.len() as u32).to_le_bytes());
            h.update(p);
        }
        Source {
            bytes: h.digest128().to_be_bytes(),
            v6: false,
            named: true,
        }
    }

    fn key(&self) -> u64 {
        let mut b = [0u8; 17];
        b[..16].copy_from_slice(&self.bytes);
        b[16] = match (self.named, self.v6) {
            (true, _) => 0,
            (false, true) => 6,
            (false, false) => 4,
        };
        xxh3_64(&b) | 1
    }

    /// As `pike.top` lists it: the address, or the /64.
    pub fn text(&self) -> String {
        let a = Ipv6Addr::from(self.bytes);
        if self.named {
            return format!("#{:x}", u128::from_be_bytes(self.bytes));
        }
        match (self.v6, a.to_ipv4_mapped()) {
            (false, Some(v4)) => v4.to_string(),
            _ => format!("{a}/64"),
        }
    }
}

/// What one request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Over the density in this unit or the one before: refused.
    pub hot: bool,
    /// This request made it hot (it was not a moment ago): logged once.
    pub turned_hot: bool,
    /// A source still counted was forgotten to make room.
    pub evicted: bool,
}

/// A source as listed: its counts and how long it stays known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub source: String,
    pub hits_prev: u32,
    pub hits_curr: u32,
    pub hot: bool,
    /// Milliseconds until it is forgotten, unseen.
    pub expires_ms: u64,
}

#[derive(Clone, Copy)]
pub struct Counts {
    entries: Slice<Entry>,
    cap: usize,
}

fn split(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

fn join(unit: u32, hits: u32) -> u64 {
    (u64::from(unit) << 32) | u64::from(hits)
}

impl Counts {
    pub fn carve(carver: &mut Carver<'_>, cap: usize) -> Option<Counts> {
        let cap = cap.max(WINDOW);
        Some(Counts {
            entries: carver.slice(cap, |_| Entry::default())?,
            cap,
        })
    }

    pub fn bytes_per_entry() -> usize {
        std::mem::size_of::<Entry>()
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    fn window(&self, k: u64) -> impl Iterator<Item = &Entry> {
        let start = (k as usize) % self.cap;
        (0..WINDOW).map(move |i| &self.entries[(start + i) % self.cap])
    }

    /// Counts a request from `src` at `now` (ms).
    pub fn hit(&self, src: Source, lim: &Limits, now: u64) -> Seen {
        let k = src.key();
        let mut evicted = false;
        let e = match self.window(k).find(|e| e.key.load(Ordering::Acquire) == k) {
            Some(e) => e,
            None => {
                let (e, live) = self.room(k, lim, now);
                evicted = live;
                // The new source's counts start afresh.
                e.unit_hits.store(0, Ordering::Release);
                e.prev.store(0, Ordering::Release);
                e.ip[0].store(
                    u64::from_be_bytes(src.bytes[..8].try_into().unwrap_or_default()),
                    Ordering::Relaxed,
                );
                e.ip[1].store(
                    u64::from_be_bytes(src.bytes[8..].try_into().unwrap_or_default()),
                    Ordering::Relaxed,
                );
                let family = match (src.named, src.v6) {
                    (true, _) => 0,
                    (false, true) => 6,
                    (false, false) => 4,
                };
                e.family.store(family, Ordering::Relaxed);
                e
            }
        };
        e.last.store(now, Ordering::Release);
        let unit = (now / lim.unit_ms.max(1)) as u32;
        let was_hot = hot(e, unit, lim.density);
        let mut cur = e.unit_hits.load(Ordering::Acquire);
        loop {
            let (u, h) = split(cur);
            let (next, rolled) = match u == unit {
                true => (join(u, h.saturating_add(1)), None),
                false => (
                    join(unit, 1),
                    Some(if u.wrapping_add(1) == unit { h } else { 0 }),
                ),
            };
            match e
                .unit_hits
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    if let Some(prev) = rolled {
                        e.prev.store(prev, Ordering::Release);
                    }
                    break;
                }
                Err(now_there) => cur = now_there,
            }
        }
        let is_hot = hot(e, unit, lim.density);
        Seen {
            hot: is_hot,
            turned_hot: is_hot && !was_hot,
            evicted,
        }
    }

    /// Whether `src` is over the density now, without counting a request.
    pub fn is_hot(&self, src: Source, lim: &Limits, now: u64) -> bool {
        let k = src.key();
        let unit = (now / lim.unit_ms.max(1)) as u32;
        self.window(k)
            .find(|e| e.key.load(Ordering::Acquire) == k)
            .is_some_and(|e| hot(e, unit, lim.density))
    }

    /// An entry for a new source `k`: a free or forgotten one of its
    /// window, else the coldest (true: it was still counted).
    fn room(&self, k: u64, lim: &Limits, now: u64) -> (&Entry, bool) {
        loop {
            let mut coldest: Option<(&Entry, u64, u64)> = None;
            for e in self.window(k) {
                let key = e.key.load(Ordering::Acquire);
                let last = e.last.load(Ordering::Acquire);
                let stale = key == 0 || last.saturating_add(lim.latency_ms) <= now;
                if stale {
                    if e.key
                        .compare_exchange(key, k, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        return (e, false);
                    }
                    continue;
                }
                if coldest.is_none_or(|(_, _, l)| last < l) {
                    coldest = Some((e, key, last));
                }
            }
            if let Some((e, key, _)) = coldest
                && e.key
                    .compare_exchange(key, k, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                return (e, true);
            }
            // Another worker took it first: look again.
        }
    }

    /// Every source seen within `remove_latency`, hot ones only when
    /// `hot_only`.
    pub fn list(&self, lim: &Limits, now: u64, hot_only: bool) -> Vec<Listed> {
        let unit = (now / lim.unit_ms.max(1)) as u32;
        let mut out = Vec::new();
        for i in 0..self.cap {
            let e = &self.entries[i];
            let last = e.last.load(Ordering::Acquire);
            if e.key.load(Ordering::Acquire) == 0 || last.saturating_add(lim.latency_ms) <= now {
                continue;
            }
            let is_hot = hot(e, unit, lim.density);
            if hot_only && !is_hot {
                continue;
            }
            let (prev, curr) = hits(e, unit);
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&e.ip[0].load(Ordering::Relaxed).to_be_bytes());
            bytes[8..].copy_from_slice(&e.ip[1].load(Ordering::Relaxed).to_be_bytes());
            let family = e.family.load(Ordering::Relaxed);
            let source = Source {
                bytes,
                v6: family == 6,
                named: family == 0,
            };
            out.push(Listed {
                source: source.text(),
                hits_prev: prev,
                hits_curr: curr,
                hot: is_hot,
                expires_ms: (last + lim.latency_ms).saturating_sub(now),
            });
        }
        out.sort_by_key(|l| std::cmp::Reverse((l.hits_curr, l.hits_prev)));
        out
    }
}

/// An entry's hits in the unit before `unit` and in `unit` itself.
fn hits(e: &Entry, unit: u32) -> (u32, u32) {
    let (u, h) = split(e.unit_hits.load(Ordering::Acquire));
    let prev = e.prev.load(Ordering::Acquire);
    if u == unit {
        (prev, h)
    } else if u.wrapping_add(1) == unit {
        (h, 0)
    } else {
        (0, 0)
    }
}

/// Over the density in `unit` or the unit before (Kamailio's pike: a
/// source stays refused while it keeps up the pace, and a unit after).
fn hot(e: &Entry, unit: u32, density: u32) -> bool {
    let (prev, curr) = hits(e, unit);
    prev > density || curr > density
}

/// The address a listed source text names, for tests and `pike.top`'s
/// callers that compare.
pub fn parse_source(s: &str) -> Option<Source> {
    match s.strip_suffix("/64") {
        Some(v6) => v6
            .parse::<Ipv6Addr>()
            .ok()
            .map(|a| Source::of(IpAddr::V6(a))),
        None => s
            .parse::<Ipv4Addr>()
            .ok()
            .map(|a| Source::of(IpAddr::V4(a))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(cap: usize) -> (rser_shm::Region, Counts) {
        let r = rser_shm::Region::create(cap * Counts::bytes_per_entry() + (1 << 16)).unwrap();
        let c = Counts::carve(&mut r.carver(), cap).unwrap();
        (r, c)
    }

    const LIM: Limits = Limits {
        unit_ms: 2_000,
        density: 5,
        latency_ms: 10_000,
    };

    fn src(s: &str) -> Source {
        Source::of(s.parse().unwrap())
    }

    #[test]
    fn a_source_over_the_density_is_hot_until_it_calms_down() {
        let (_r, c) = table(64);
        let a = src("192.0.2.1");
        for i in 0..5 {
            assert!(!c.hit(a, &LIM, 100 + i).hot);
        }
        let s = c.hit(a, &LIM, 200);
        assert!(s.hot && s.turned_hot);
        assert!(c.hit(a, &LIM, 300).hot && !c.hit(a, &LIM, 301).turned_hot);
        // Another source is not touched.
        assert!(!c.hit(src("192.0.2.2"), &LIM, 400).hot);
        // The next unit still remembers the last one's flood.
        assert!(c.hit(a, &LIM, 2_100).hot);
        // Quiet for a unit: it calms down.
        assert!(!c.hit(a, &LIM, 6_100).hot);
        // Flooding on through the units keeps it refused.
        for t in (6_200..12_000).step_by(100) {
            c.hit(a, &LIM, t);
        }
        assert!(c.hit(a, &LIM, 12_000).hot);
    }

    #[test]
    fn ipv6_sources_count_by_their_64() {
        let (_r, c) = table(64);
        for i in 0..6 {
            let s = c.hit(src(&format!("2001:db8:1:2::{i:x}")), &LIM, 10);
            assert_eq!(s.hot, i == 5, "{i}");
        }
        assert!(!c.hit(src("2001:db8:1:3::1"), &LIM, 10).hot);
        // An IPv4-mapped address is its IPv4 address.
        assert_eq!(src("::ffff:192.0.2.1"), src("192.0.2.1"));
        let top = c.list(&LIM, 20, true);
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].source, "2001:db8:1:2::/64");
        assert_eq!((top[0].hits_prev, top[0].hits_curr), (0, 6));
        assert_eq!(parse_source(&top[0].source), Some(src("2001:db8:1:2::9")));
    }

    #[test]
    fn a_full_table_forgets_the_stale_first_then_the_coldest() {
        let (_r, c) = table(8);
        for i in 0..8 {
            assert!(!c.hit(src(&format!("10.0.0.{i}")), &LIM, 1_000 + i).evicted);
        }
        // Every entry live: the coldest goes, counted.
        let s = c.hit(src("10.0.1.1"), &LIM, 2_000);
        assert!(s.evicted && !s.hot);
        let listed: Vec<String> = c
            .list(&LIM, 2_000, false)
            .into_iter()
            .map(|l| l.source)
            .collect();
        assert!(!listed.contains(&"10.0.0.0".to_string()), "{listed:?}");
        assert!(listed.contains(&"10.0.1.1".to_string()));
        // Past remove_latency every one is stale: taken over silently.
        assert!(!c.hit(src("10.0.2.1"), &LIM, 20_000).evicted);
        assert_eq!(c.list(&LIM, 20_000, false).len(), 1);
    }
}
