//! The timer wheel in shared memory: [`SHARDS`] rings of 10 ms ticks,
//! each tick a doubly linked list of transaction slots due in it (or in a
//! later lap of the ring). A slot belongs to the shard of its index, so
//! workers arming and disarming different transactions rarely meet on a
//! lock, and the due work is taken shard by shard by whoever is awake: a
//! worker after each batch takes the shards whose hint says something is
//! due and whose lock is free; the timer process takes every shard each
//! tick, so nothing waits on an idle worker. Each shard has a robust lock;
//! if its holder dies its ring is rebuilt from its slots' due times.
//!
//! Lock order: a transaction's stripe, then its shard; the takers take a
//! shard alone, then each stripe.

use std::sync::atomic::{AtomicU64, Ordering};

use arrayvec::ArrayVec;
use rser_shm::freelist::NIL;
use rser_shm::{CachePadded, Carver, LockGuard, RobustMutex};

use super::table::Table;

/// The wheel's resolution (the issue asks for 10 ms or better).
pub const TICK_MS: u64 = 10;
/// Ticks in a ring: 40.96 s per lap.
const TICKS: usize = 4096;
/// Rings: a power of two, so a slot's shard is its index's low bits.
pub const SHARDS: usize = 16;
/// How far past the current tick a taker looks for the next due tick
/// when it sets the shard's hint.
const LOOKAHEAD: u64 = 20;
/// Workers that looked at the wheel within this long are taking what
/// falls due: the timer process then lets them, waking only
/// [`WORKER_GRACE_MS`] after the earliest due time it saw.
const WORKERS_ACTIVE_MS: u64 = 200;
pub const WORKER_GRACE_MS: u64 = 100;

#[repr(C)]
struct Ring {
    /// The last tick whose list was emptied of due slots.
    done_tick: u64,
    heads: [u32; TICKS],
}

/// Per slot: its neighbours in a tick list and the tick (NIL: not armed).
#[repr(C)]
#[derive(Clone, Copy)]
struct Links {
    next: u32,
    prev: u32,
    tick: u32,
}

#[derive(Clone, Copy)]
pub struct Wheel {
    locks: *mut RobustMutex,
    rings: *mut Ring,
    /// Per shard: nothing in it is due before this time (ms), read
    /// without the lock; lowered by `arm`, set by a taker. One more after
    /// them: when a worker last looked (ms, updated at most once a tick).
    hints: *mut CachePadded<AtomicU64>,
    links: *mut Links,
    nslots: u32,
}

// SAFETY: rings and links are touched under their shard's lock; hints are
// atomics.
unsafe impl Send for Wheel {}
unsafe impl Sync for Wheel {}

fn tick_of(ms: u64) -> u64 {
    ms / TICK_MS
}

fn shard_of(idx: u32) -> usize {
    idx as usize % SHARDS
}

/// One shard held: its ring and the links (only its own slots' are
/// touched).
struct Held<'w> {
    ring: &'w mut Ring,
    links: &'w mut [Links],
    hint: &'w AtomicU64,
    _guard: LockGuard<'w>,
}

impl Wheel {
    /// Shared memory the wheel takes whatever the number of slots (its
    /// locks, rings and hints; each slot's links are in `bytes_per_txn`).
    pub const FIXED_BYTES: usize = SHARDS
        * (std::mem::size_of::<RobustMutex>()
            + std::mem::size_of::<Ring>()
            + std::mem::size_of::<CachePadded<AtomicU64>>())
        + std::mem::size_of::<CachePadded<AtomicU64>>();

    pub fn carve(carver: &mut Carver<'_>, nslots: usize) -> Option<Wheel> {
        let locks = carver.carve::<RobustMutex>(SHARDS)?;
        let rings = carver.carve::<Ring>(SHARDS)?;
        let hints = carver.carve::<CachePadded<AtomicU64>>(SHARDS + 1)?;
        let links = carver.carve::<Links>(nslots)?;
        // SAFETY: fresh memory, not yet shared.
        unsafe {
            for k in 0..SHARDS {
                RobustMutex::init(locks.add(k)).ok()?;
                let ring = rings.add(k);
                (&raw mut (*ring).done_tick).write(0);
                (&raw mut (*ring).heads).write([NIL; TICKS]);
                hints
                    .add(k)
                    .write(CachePadded::new(AtomicU64::new(u64::MAX)));
            }
            for i in 0..nslots {
                links.add(i).write(Links {
                    next: NIL,
                    prev: NIL,
                    tick: NIL,
                });
            }
        }
        Some(Wheel {
            locks,
            rings,
            hints,
            links,
            nslots: nslots as u32,
        })
    }

    fn hint(&self, k: usize) -> &AtomicU64 {
        // SAFETY: SHARDS + 1 hints carved and initialised in carve().
        unsafe { &*self.hints.add(k) }
    }

    fn workers_seen(&self) -> &AtomicU64 {
        self.hint(SHARDS)
    }

    /// When the timer process must look next: the earliest hint, or,
    /// while workers are looking after their batches, a grace after it
    /// (they take what falls due; the timer process takes what they
    /// leave when they fall idle, at most [`WORKER_GRACE_MS`] late).
    pub fn next_look(&self, now: u64) -> u64 {
        let earliest = (0..SHARDS)
            .map(|k| self.hint(k).load(Ordering::Relaxed))
            .min()
            .unwrap_or(u64::MAX);
        let seen = self.workers_seen().load(Ordering::Relaxed);
        if seen + WORKERS_ACTIVE_MS >= now {
            earliest.max(now).saturating_add(WORKER_GRACE_MS)
        } else {
            earliest
        }
    }

    /// Shard `k` held, waiting for it (`wait`) or not; its ring rebuilt
    /// first if its holder died.
    fn hold(&self, table: &Table, k: usize, wait: bool) -> Option<Held<'_>> {
        // SAFETY: initialised in carve().
        let lock = unsafe { &*self.locks.add(k) };
        let guard = loop {
            let got = if wait {
                lock.lock().map(Some)
            } else {
                lock.try_lock()
            };
            match got {
                Ok(g) => break g?,
                Err(_) => std::thread::yield_now(),
            }
        };
        // SAFETY: carved in carve(); the shard's lock makes its ring ours.
        let ring = unsafe { &mut *self.rings.add(k) };
        // SAFETY: nslots links carved; only this shard's slots' links are
        // touched while its lock is held, and no other shard touches them.
        let links = unsafe { std::slice::from_raw_parts_mut(self.links, self.nslots as usize) };
        if guard.recovered {
            rebuild(ring, links, table, k);
            // Look again at once.
            self.hint(k).store(0, Ordering::Relaxed);
        }
        Some(Held {
            ring,
            links,
            hint: self.hint(k),
            _guard: guard,
        })
    }

    /// Puts slot `idx` in the list of the tick of `due` (moving it).
    pub fn arm(&self, table: &Table, idx: u32, due: u64) {
        if idx >= self.nslots {
            return;
        }
        if let Some(h) = self.hold(table, shard_of(idx), true) {
            unlink(h.ring, h.links, idx);
            link(h.ring, h.links, idx, due);
            h.hint.fetch_min(due, Ordering::Relaxed);
        }
    }

    pub fn disarm(&self, table: &Table, idx: u32) {
        if idx >= self.nslots {
            return;
        }
        if let Some(h) = self.hold(table, shard_of(idx), true) {
            unlink(h.ring, h.links, idx);
        }
    }

    /// Takes out up to `N` slots due by `now` from every shard (the timer
    /// process: it waits for a shard held by a worker), from every tick
    /// since a shard's last pass and the current one; slots due in a later
    /// lap, or later in the current tick, stay. A slot is taken at the
    /// first pass at or after its due time.
    pub fn take_due<const N: usize>(&self, table: &Table, now: u64, out: &mut ArrayVec<u32, N>) {
        self.take(table, now, out, true);
    }

    /// What a worker takes after a batch: the slots due by `now` in the
    /// shards whose hint is due and whose lock is free (up to `N`).
    /// Returns the earliest hint left, when a worker should look again.
    pub fn take_ready<const N: usize>(
        &self,
        table: &Table,
        now: u64,
        out: &mut ArrayVec<u32, N>,
    ) -> u64 {
        // Said at most once a tick: one shared line written by every
        // worker would cost more than the look.
        let seen = self.workers_seen();
        if seen.load(Ordering::Relaxed) + TICK_MS <= now {
            seen.store(now, Ordering::Relaxed);
        }
        self.take(table, now, out, false)
    }

    /// The shards' passes for both takers: those whose hint is due, held
    /// (`wait`ing for a held one, or passing it by); returns the earliest
    /// hint left (now, for a shard passed by or not finished).
    fn take<const N: usize>(
        &self,
        table: &Table,
        now: u64,
        out: &mut ArrayVec<u32, N>,
        wait: bool,
    ) -> u64 {
        let mut next = u64::MAX;
        for k in 0..SHARDS {
            // Nothing in it is due before its hint: not even locked.
            let hint = self.hint(k).load(Ordering::Relaxed);
            if hint > now {
                next = next.min(hint);
                continue;
            }
            // Held (not waited for): another process is at it (or
            // arming); look again soon.
            let Some(mut h) = self.hold(table, k, wait) else {
                next = now;
                continue;
            };
            if !take_shard(&mut h, table, now, out) {
                return now;
            }
            next = next.min(h.hint.load(Ordering::Relaxed));
        }
        next
    }
}

/// One shard's pass: its ticks due by `now` emptied of what is due, then
/// its hint set from what is left. False when `out` filled up first (the
/// hint then says to come back at once).
fn take_shard<const N: usize>(
    h: &mut Held<'_>,
    table: &Table,
    now: u64,
    out: &mut ArrayVec<u32, N>,
) -> bool {
    let now_tick = tick_of(now);
    let ring = &mut *h.ring;
    if ring.done_tick == 0 || now_tick.saturating_sub(ring.done_tick) > TICKS as u64 {
        // First pass, or a stall longer than a lap: look at every tick once.
        ring.done_tick = now_tick.saturating_sub(TICKS as u64);
    }
    // Ticks wholly past are emptied of what is due and marked done; the
    // current tick gives what is due by now and is looked at again (it
    // may hold slots due later in it).
    while ring.done_tick < now_tick {
        let t = ring.done_tick + 1;
        if !take_tick(ring, h.links, table, t, now, out) {
            h.hint.store(now, Ordering::Relaxed);
            return false; // this tick again next time
        }
        if t == now_tick {
            break;
        }
        ring.done_tick = t;
    }
    h.hint
        .store(next_due(ring, h.links, table, now_tick), Ordering::Relaxed);
    true
}

/// A time before which nothing left in the ring is due: the earliest due
/// time in the current tick, else the start of the next tick within
/// [`LOOKAHEAD`] that holds anything (perhaps only slots of a later lap),
/// else the end of the look-ahead.
fn next_due(ring: &Ring, links: &[Links], table: &Table, now_tick: u64) -> u64 {
    let mut earliest = (now_tick + 1 + LOOKAHEAD) * TICK_MS;
    let h = (now_tick % TICKS as u64) as usize;
    let mut i = ring.heads[h];
    let mut hops = 0;
    while i != NIL && (i as usize) < links.len() && hops <= links.len() {
        if let Some(due) = table.due_of(i) {
            earliest = earliest.min(due);
        }
        i = links[i as usize].next;
        hops += 1;
    }
    for t in now_tick + 1..=now_tick + LOOKAHEAD {
        if ring.heads[(t % TICKS as u64) as usize] != NIL {
            return earliest.min(t * TICK_MS);
        }
    }
    earliest
}

/// Moves the slots of tick `t` due by `now` to `out`; false when `out`
/// filled up first.
fn take_tick<const N: usize>(
    ring: &mut Ring,
    links: &mut [Links],
    table: &Table,
    t: u64,
    now: u64,
    out: &mut ArrayVec<u32, N>,
) -> bool {
    let h = (t % TICKS as u64) as usize;
    let mut i = ring.heads[h];
    let mut hops = 0;
    while i != NIL && (i as usize) < links.len() && hops <= links.len() {
        let next = links[i as usize].next;
        let due = table.due_of(i).unwrap_or(0);
        if due <= now {
            if out.is_full() {
                return false;
            }
            unlink(ring, links, i);
            out.push(i);
        }
        i = next;
        hops += 1;
    }
    true
}

fn unlink(ring: &mut Ring, links: &mut [Links], idx: u32) {
    let l = links[idx as usize];
    if l.tick == NIL {
        return;
    }
    match links.get_mut(l.prev as usize) {
        Some(p) => p.next = l.next,
        None => ring.heads[l.tick as usize % TICKS] = l.next,
    }
    if let Some(n) = links.get_mut(l.next as usize) {
        n.prev = l.prev;
    }
    links[idx as usize] = Links {
        next: NIL,
        prev: NIL,
        tick: NIL,
    };
}

fn link(ring: &mut Ring, links: &mut [Links], idx: u32, due: u64) {
    // Never in a tick already emptied: it would wait a whole lap.
    let t = tick_of(due).max(ring.done_tick + 1);
    let h = (t % TICKS as u64) as usize;
    let head = ring.heads[h];
    if let Some(n) = links.get_mut(head as usize) {
        n.prev = idx;
    }
    links[idx as usize] = Links {
        next: head,
        prev: NIL,
        tick: h as u32,
    };
    ring.heads[h] = idx;
}

/// Relinks every live, armed slot of shard `k` from its due time.
fn rebuild(ring: &mut Ring, links: &mut [Links], table: &Table, k: usize) {
    ring.heads = [NIL; TICKS];
    for i in (k..links.len()).step_by(SHARDS) {
        links[i] = Links {
            next: NIL,
            prev: NIL,
            tick: NIL,
        };
    }
    for i in (k..links.len()).step_by(SHARDS) {
        let i = i as u32;
        if let Some(due) = table.due_of(i).filter(|&d| d != 0) {
            link(ring, links, i, due);
        }
    }
    log::warn!("tm: a process died holding a timer wheel shard's lock; the shard was rebuilt");
}
