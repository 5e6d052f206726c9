//! Credentials cached in shared memory (auth_db's `auth_cache_expires`
//! seconds; 0 disables): what the subscriber table said of a user at a
//! realm (the HA1s, or that there is no such user), so a REGISTER storm
//! is not a query storm and every worker profits from every answer.
//!
//! Direct-mapped slots, each a seqlock: a writer marks its slot odd,
//! writes, marks it even; a reader that sees the slot change or odd
//! takes it as a miss. A writer that died mid-write leaves its slot odd:
//! after [`STUCK_MS`] the next writer takes it over.

use std::sync::atomic::{AtomicU64, Ordering, fence};

use rser_shm::{Carver, Slice};

use super::digest::Hex;

/// A write older than this is one whose writer died.
const STUCK_MS: u64 = 1_000;

const KEY: usize = 0; // two words
const EXPIRES: usize = 2;
const FLAGS: usize = 3;
const MD5: usize = 4; // 32 hex digits: four words
const SHA: usize = 8; // 64 hex digits: eight words
const WORDS: usize = 16;

const FOUND: u64 = 1;
const HAS_MD5: u64 = 2;
const HAS_SHA: u64 = 4;

#[repr(C)]
pub struct Slot {
    seq: AtomicU64,
    /// When the current write began (monotonic ms).
    since: AtomicU64,
    words: [AtomicU64; WORDS],
}

impl Slot {
    fn new() -> Slot {
        Slot {
            seq: AtomicU64::new(0),
            since: AtomicU64::new(0),
            words: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// What the table said: the user's HA1s, or no such user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    pub found: bool,
    pub md5: Option<Hex>,
    pub sha256: Option<Hex>,
}

#[derive(Clone, Copy)]
pub struct CredCache {
    slots: Slice<Slot>,
    n: u64,
}

/// The cache key of a user at a realm in a table.
pub fn key(table: &str, user: &[u8], realm: &[u8]) -> u128 {
    use xxhash_rust::xxh3::Xxh3;
    let mut h = Xxh3::new();
    for part in [table.as_bytes(), user, realm] {
        h.update(&(part.len() as u32).to_le_bytes());
        h.update(part);
    }
    h.digest128()
}

fn put_hex(words: &[AtomicU64], hex: &str) {
    let b = hex.as_bytes();
    for (i, w) in words.iter().enumerate() {
        let mut chunk = [0u8; 8];
        let from = (i * 8).min(b.len());
        let to = (from + 8).min(b.len());
        chunk[..to - from].copy_from_slice(&b[from..to]);
        w.store(u64::from_le_bytes(chunk), Ordering::Relaxed);
    }
}

fn get_hex(words: &[AtomicU64], len: usize) -> Option<Hex> {
    let mut out = Hex::new();
    for w in words {
        for b in w.load(Ordering::Relaxed).to_le_bytes() {
            if out.len() < len {
                out.try_push(b as char).ok()?;
            }
        }
    }
    Some(out)
}

impl CredCache {
    pub const BYTES_PER_SLOT: usize = std::mem::size_of::<Slot>();

    pub fn carve(carver: &mut Carver<'_>, n: usize) -> Option<CredCache> {
        let n = n.max(1);
        let slots = carver.slice(n, |_| Slot::new())?;
        Some(CredCache { slots, n: n as u64 })
    }

    pub fn capacity(&self) -> usize {
        self.n as usize
    }

    fn slot(&self, key: u128) -> &Slot {
        &self.slots[((key as u64) % self.n) as usize]
    }

    /// What is cached for `key` and not expired at `now_ms`.
    pub fn get(&self, key: u128, now_ms: u64) -> Option<Known> {
        let s = self.slot(key);
        let before = s.seq.load(Ordering::Acquire);
        if before & 1 == 1 {
            return None;
        }
        let w = &s.words;
        let k = u128::from(w[KEY].load(Ordering::Relaxed))
            | u128::from(w[KEY + 1].load(Ordering::Relaxed)) << 64;
        let expires = w[EXPIRES].load(Ordering::Relaxed);
        let flags = w[FLAGS].load(Ordering::Relaxed);
        let known = Known {
            found: flags & FOUND != 0,
            md5: (flags & HAS_MD5 != 0)
                .then(|| get_hex(&w[MD5..SHA], 32))
                .flatten(),
            sha256: (flags & HAS_SHA != 0)
                .then(|| get_hex(&w[SHA..WORDS], 64))
                .flatten(),
        };
        fence(Ordering::Acquire);
        let stable = s.seq.load(Ordering::Relaxed) == before;
        (stable && k == key && flags != 0 && now_ms < expires).then_some(known)
    }

    /// Caches `known` for `key` until `expires_ms`; skipped when another
    /// process is writing the slot.
    pub fn put(&self, key: u128, known: &Known, expires_ms: u64, now_ms: u64) {
        let s = self.slot(key);
        let seq = s.seq.load(Ordering::Relaxed);
        let stuck = seq & 1 == 1 && now_ms > s.since.load(Ordering::Relaxed) + STUCK_MS;
        if seq & 1 == 1 && !stuck {
            return;
        }
        let writing = (seq | 1) + if stuck { 2 } else { 0 };
        if s.seq
            .compare_exchange(seq, writing, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        s.since.store(now_ms, Ordering::Relaxed);
        fence(Ordering::Release);
        let w = &s.words;
        w[KEY].store(key as u64, Ordering::Relaxed);
        w[KEY + 1].store((key >> 64) as u64, Ordering::Relaxed);
        w[EXPIRES].store(expires_ms, Ordering::Relaxed);
        let mut flags = 0x8; // an entry, even of no user
        if known.found {
            flags |= FOUND;
        }
        if let Some(h) = &known.md5 {
            flags |= HAS_MD5;
            put_hex(&w[MD5..SHA], h);
        }
        if let Some(h) = &known.sha256 {
            flags |= HAS_SHA;
            put_hex(&w[SHA..WORDS], h);
        }
        w[FLAGS].store(flags, Ordering::Relaxed);
        s.seq.store(writing + 1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Option<Hex> {
        Some(Hex::from(s).unwrap())
    }

    #[test]
    fn entries_are_kept_until_they_expire_and_keys_do_not_mix() {
        let r = rser_shm::Region::create(1 << 16).unwrap();
        let c = CredCache::carve(&mut r.carver(), 8).unwrap();
        let k = key("subscriber", b"alice", b"example.com");
        assert_eq!(c.get(k, 0), None);
        let known = Known {
            found: true,
            md5: hex("0123456789abcdef0123456789abcdef"),
            sha256: hex(&"ab".repeat(32)),
        };
        c.put(k, &known, 1_000, 0);
        assert_eq!(c.get(k, 999), Some(known));
        assert_eq!(c.get(k, 1_000), None, "expired");
        assert_ne!(k, key("subscriber", b"alic", b"eexample.com"));
        // No such user is cached too.
        let nobody = key("subscriber", b"mallory", b"example.com");
        c.put(nobody, &Known::default(), 500, 0);
        assert_eq!(c.get(nobody, 10), Some(Known::default()));
    }

    #[test]
    fn a_write_left_half_done_is_a_miss_then_taken_over() {
        let r = rser_shm::Region::create(1 << 16).unwrap();
        let c = CredCache::carve(&mut r.carver(), 1).unwrap();
        let k = key("s", b"u", b"r");
        let s = c.slot(k);
        s.seq.store(1, Ordering::Relaxed); // a writer died here
        s.since.store(100, Ordering::Relaxed);
        let known = Known {
            found: true,
            ..Known::default()
        };
        c.put(k, &known, 10_000, 200);
        assert_eq!(c.get(k, 300), None, "still being written");
        c.put(k, &known, 10_000, 100 + STUCK_MS + 1);
        assert_eq!(c.get(k, 2_000), Some(known));
    }
}
