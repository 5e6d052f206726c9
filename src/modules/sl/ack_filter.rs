//! Which ACKs are for our stateless replies, and so end here (RFC 3261
//! §17.1.1.3: the ACK to a non-2xx final response belongs to the INVITE's
//! transaction, and the stateless UAS that sent the reply absorbs it).
//!
//! As in SER, the common case keeps no state: a reply to a request without
//! a to-tag gets a signed to-tag ([`Signature`]), and one shared timestamp
//! (the SL timer) says whether any stateless reply was sent recently
//! enough for an ACK to follow. SER cannot sign a reply to a request that
//! already had a to-tag (a re-INVITE) and lets its ACK through; rser
//! records those replies in shared memory instead: a ring in sending order,
//! which with one fixed lifetime is a timer wheel of one level (the oldest
//! entry is always the next to expire, and the first to go when the ring
//! is full), plus a hash index to find an entry in O(1).
//!
//! Pure logic over shared memory and an injected clock (`now_ms`).

use std::sync::atomic::{AtomicU64, Ordering};

use rser_shm::{Carver, RobustMutex};
use xxhash_rust::xxh3::Xxh3;

use super::signature::Signature;
use crate::sip::{Message, Method};

/// How long after a stateless reply its ACK is expected: 64*T1, the
/// longest a client keeps retransmitting (RFC 3261 §17.1.1.2, Timer B).
pub const SL_TIMER_MS: u64 = 64 * 500;

/// Index probes before giving up (lookups) or overwriting (inserts).
const PROBES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckVerdict {
    /// An ACK for one of our stateless replies: absorb it.
    Absorb,
    /// Anything else: run the script.
    Route,
}

#[repr(C)]
struct Entry {
    key: u64,
    expires_ms: u64,
}

#[repr(C)]
struct Shared {
    /// The SL timer: ACKs are checked only before this time.
    expires_ms: AtomicU64,
    /// When the last recorded unsigned reply expires: before it, an ACK
    /// with a foreign to-tag is looked up; after it, no lock is taken.
    unsigned_until_ms: AtomicU64,
    lock: RobustMutex,
    /// Entries written so far; the next goes to `next % capacity`.
    next: u64,
}

/// The filter's view of shared memory; copied into every worker.
#[derive(Clone, Copy)]
pub struct AckFilter {
    signature: Signature,
    shared: *mut Shared,
    ring: *mut Entry,
    index: *mut u32,
    capacity: usize,
}

// SAFETY: every access to the ring and the index holds the robust lock;
// the timer is atomic.
unsafe impl Send for AckFilter {}
unsafe impl Sync for AckFilter {}

/// What recording an unsigned reply cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recorded {
    /// A live entry was overwritten because the ring was full.
    pub evicted: bool,
    /// The lock's previous owner died; the table was reset.
    pub recovered: bool,
}

impl AckFilter {
    /// Carves the filter's state with room for `capacity` unsigned replies.
    pub fn carve(carver: &mut Carver<'_>, signature: Signature, capacity: usize) -> Option<Self> {
        let capacity = capacity.max(1);
        let shared = carver.carve::<Shared>(1)?;
        let ring = carver.carve::<Entry>(capacity)?;
        let index = carver.carve::<u32>(capacity * 2)?;
        // SAFETY: freshly carved, zeroed, not yet shared.
        unsafe { RobustMutex::init(&raw mut (*shared).lock).ok()? };
        Some(AckFilter {
            signature,
            shared,
            ring,
            index,
            capacity,
        })
    }

    /// Bytes of shared memory per recorded reply.
    pub const BYTES_PER_ENTRY: usize = std::mem::size_of::<Entry>() + 2 * 4;

    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    fn shared(&self) -> &Shared {
        // SAFETY: carved and initialised in carve().
        unsafe { &*self.shared }
    }

    /// Called for every stateless reply sent: starts the SL timer, and
    /// records replies to INVITEs whose to-tag we could not sign.
    pub fn on_reply(&self, req: &Message<'_>, signed: bool, now_ms: u64) -> Recorded {
        self.shared()
            .expires_ms
            .fetch_max(now_ms + SL_TIMER_MS, Ordering::Relaxed);
        if signed || req.method() != Some(Method::Invite) {
            return Recorded::default();
        }
        match key(req) {
            Some(k) => {
                self.shared()
                    .unsigned_until_ms
                    .fetch_max(now_ms + SL_TIMER_MS, Ordering::Relaxed);
                self.record(k, now_ms + SL_TIMER_MS, now_ms)
            }
            None => Recorded::default(),
        }
    }

    /// The verdict on a request: only ACKs can be absorbed.
    pub fn check(&self, msg: &Message<'_>, now_ms: u64) -> AckVerdict {
        if msg.method() != Some(Method::Ack)
            || now_ms >= self.shared().expires_ms.load(Ordering::Relaxed)
        {
            return AckVerdict::Route;
        }
        if self.signature.signed(msg) {
            return AckVerdict::Absorb;
        }
        if now_ms >= self.shared().unsigned_until_ms.load(Ordering::Relaxed) {
            return AckVerdict::Route;
        }
        match key(msg) {
            Some(k) if self.lookup(k, now_ms) => AckVerdict::Absorb,
            _ => AckVerdict::Route,
        }
    }

    fn slot(&self, i: usize) -> *mut u32 {
        // SAFETY: callers pass i < 2 * capacity.
        unsafe { self.index.add(i) }
    }

    fn entry(&self, pos: usize) -> *mut Entry {
        // SAFETY: callers pass pos < capacity.
        unsafe { self.ring.add(pos) }
    }

    fn record(&self, key: u64, expires_ms: u64, now_ms: u64) -> Recorded {
        let Ok(guard) = self.shared().lock.lock() else {
            return Recorded::default();
        };
        let mut out = Recorded {
            recovered: guard.recovered,
            ..Recorded::default()
        };
        // SAFETY: the lock is held for every read and write below.
        unsafe {
            let shared = &mut *self.shared;
            if guard.recovered {
                // A writer died mid-update: start over (ACKs of the lost
                // entries run the script, which is safe).
                std::ptr::write_bytes(self.ring, 0, self.capacity);
                std::ptr::write_bytes(self.index, 0, self.capacity * 2);
                shared.next = 0;
            }
            let pos = (shared.next % self.capacity as u64) as usize;
            shared.next += 1;
            let e = &mut *self.entry(pos);
            out.evicted = e.key != 0 && e.expires_ms > now_ms;
            *e = Entry { key, expires_ms };
            let slots = self.capacity * 2;
            let home = (key as usize) % slots;
            let mut target = home;
            for i in 0..PROBES {
                let s = (home + i) % slots;
                let v = *self.slot(s);
                let free = v == 0 || {
                    let old = &*self.entry(v as usize - 1);
                    old.expires_ms <= now_ms || v as usize - 1 == pos
                };
                if free {
                    target = s;
                    break;
                }
            }
            *self.slot(target) = pos as u32 + 1;
        }
        drop(guard);
        out
    }

    fn lookup(&self, key: u64, now_ms: u64) -> bool {
        let Ok(_guard) = self.shared().lock.lock() else {
            return false;
        };
        let slots = self.capacity * 2;
        let home = (key as usize) % slots;
        (0..PROBES).any(|i| {
            // SAFETY: the lock is held; indices are in bounds.
            unsafe {
                let v = *self.slot((home + i) % slots);
                v != 0 && {
                    let e = &*self.entry(v as usize - 1);
                    e.key == key && e.expires_ms > now_ms
                }
            }
        })
    }
}

/// What a re-INVITE's ACK repeats: Call-ID, CSeq number, both tags.
fn key(msg: &Message<'_>) -> Option<u64> {
    let mut h = Xxh3::new();
    h.update(msg.call_id().ok()?);
    h.update(b"\0");
    h.update(&msg.cseq().ok()?.number.to_le_bytes());
    h.update(msg.from().ok()?.tag.unwrap_or(b""));
    h.update(b"\0");
    h.update(msg.to().ok()?.tag?);
    // 0 marks an empty ring entry.
    Some(h.digest().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rser_shm::Region;

    fn msg(method: &str, to_tag: Option<&str>, call_id: &str) -> Vec<u8> {
        let tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        format!(
            "{method} sip:bob@b.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             To: <sip:bob@b.example>{tag}\r\nFrom: <sip:a@a.example>;tag=f1\r\n\
             Call-ID: {call_id}\r\nCSeq: 7 {method}\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn filter(region: &Region, capacity: usize) -> AckFilter {
        AckFilter::carve(&mut region.carver(), Signature::new(b"secret"), capacity).unwrap()
    }

    #[test]
    fn signed_acks_are_absorbed_while_the_timer_runs() {
        let region = Region::create(1 << 20).unwrap();
        let f = filter(&region, 16);
        let invite = msg("INVITE", None, "c1");
        let invite = Message::parse(&invite).unwrap();
        let tag = f.signature().to_tag(&invite).unwrap();
        assert_eq!(f.on_reply(&invite, true, 1_000), Recorded::default());
        let ack = msg("ACK", Some(&tag), "c1");
        let ack = Message::parse(&ack).unwrap();
        assert_eq!(f.check(&ack, 2_000), AckVerdict::Absorb);
        // After the SL timer every ACK runs the script.
        assert_eq!(f.check(&ack, 1_000 + SL_TIMER_MS), AckVerdict::Route);
        // A foreign to-tag, or our tag for another call, is not ours.
        for (tag, call) in [("abc", "c1"), (tag.as_str(), "c2")] {
            let other = msg("ACK", Some(tag), call);
            let other = Message::parse(&other).unwrap();
            assert_eq!(f.check(&other, 2_000), AckVerdict::Route);
        }
        // Only ACKs are absorbed.
        let bye = msg("BYE", Some(&tag), "c1");
        assert_eq!(
            f.check(&Message::parse(&bye).unwrap(), 2_000),
            AckVerdict::Route
        );
    }

    #[test]
    fn re_invite_acks_are_absorbed_through_the_table() {
        let region = Region::create(1 << 20).unwrap();
        let f = filter(&region, 16);
        let reinvite = msg("INVITE", Some("theirs"), "c1");
        let reinvite = Message::parse(&reinvite).unwrap();
        f.on_reply(&reinvite, false, 1_000);
        let ack = msg("ACK", Some("theirs"), "c1");
        let ack = Message::parse(&ack).unwrap();
        assert_eq!(f.check(&ack, 1_500), AckVerdict::Absorb);
        assert_eq!(f.check(&ack, 1_000 + SL_TIMER_MS), AckVerdict::Route);
        let other = msg("ACK", Some("theirs"), "c2");
        assert_eq!(
            f.check(&Message::parse(&other).unwrap(), 1_500),
            AckVerdict::Route
        );
    }

    #[test]
    fn a_full_ring_drops_the_oldest_first() {
        let region = Region::create(1 << 20).unwrap();
        let f = filter(&region, 4);
        let mut evicted = 0;
        for i in 0..6 {
            let m = msg("INVITE", Some("t"), &format!("call{i}"));
            let m = Message::parse(&m).unwrap();
            evicted += usize::from(f.on_reply(&m, false, 1_000 + i).evicted);
        }
        assert_eq!(evicted, 2);
        for i in 0..6 {
            let ack = msg("ACK", Some("t"), &format!("call{i}"));
            let v = f.check(&Message::parse(&ack).unwrap(), 2_000);
            let want = if i < 2 {
                AckVerdict::Route
            } else {
                AckVerdict::Absorb
            };
            assert_eq!(v, want, "call{i}");
        }
    }
}
