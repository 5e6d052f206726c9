//! The dispatcher's state in shared memory, which every process sees at
//! once: the list in force (its text, which each process parses when the
//! generation moves), each destination's health and call load, its probe
//! in flight, and each set's round-robin counter.
//!
//! Two banks, chosen by the generation's parity: a reload writes the bank
//! not in use (copying health and load by destination, so a reload keeps
//! them, which Kamailio's and OpenSIPS' reloads do not), then moves the
//! generation. A reloader that dies half-way leaves the bank in use whole.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use rser_shm::{Carver, RobustMutex, Slice};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::health::Health;
use super::list::{self, FLAG_DISABLED, FLAG_INACTIVE, FLAG_PROBING, FLAG_TRYING, List};
use super::list::{MAX_DESTINATIONS, MAX_SETS};

/// Longest list text kept (a thousand destinations of ~100 bytes).
pub const MAX_LIST_TEXT: usize = 128 * 1024;

#[repr(C)]
struct Header {
    lock: RobustMutex,
    /// 0 until the first list is published.
    generation: AtomicU64,
    text_len: [AtomicU32; 2],
    dests: [AtomicU32; 2],
}

/// One destination's shared state.
#[repr(C)]
#[derive(Default)]
pub struct Cell {
    /// Which destination this is: [`key`] of its set and URI.
    key: AtomicU64,
    /// [`Health`] packed by [`pack`].
    health: AtomicU64,
    /// Calls in progress (algorithm 10).
    load: AtomicU32,
    /// The sequence number of the probe in flight, and whether it is
    /// still unanswered.
    probe_seq: AtomicU32,
    probe_pending: AtomicU32,
}

/// The handle every process holds (the region outlives them all).
#[derive(Clone, Copy)]
pub struct DsShared {
    header: *const Header,
    text: *mut u8,
    /// Two banks of destinations, then each set's round-robin counter:
    /// atomics only, shared with no `unsafe`.
    cells: Slice<Cell>,
    rr: Slice<AtomicU64>,
}

// SAFETY: the region is shared memory that outlives every user; what is
// written concurrently is atomic, and the texts are written under the lock
// into the bank no reader uses.
unsafe impl Send for DsShared {}
unsafe impl Sync for DsShared {}

/// Identifies a destination across reloads.
pub fn key(set: u32, uri: &str) -> u64 {
    xxh3_64_with_seed(uri.as_bytes(), u64::from(set))
}

const FIELD: u32 = (1 << 28) - 1;

fn pack(h: Health) -> u64 {
    u64::from(h.flags & 0xff)
        | u64::from(h.fails.min(FIELD)) << 8
        | u64::from(h.oks.min(FIELD)) << 36
}

fn unpack(v: u64) -> Health {
    Health {
        flags: (v & 0xff) as u32,
        fails: (v >> 8) as u32 & FIELD,
        oks: (v >> 36) as u32 & FIELD,
    }
}

/// What a destination's state was, for `dispatcher.list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub health: Health,
    pub load: u32,
}

impl DsShared {
    pub fn carve(carver: &mut Carver<'_>) -> Option<DsShared> {
        let header = carver.carve::<Header>(1)?;
        let text = carver.carve::<u8>(2 * MAX_LIST_TEXT)?;
        let cells = carver.slice(2 * MAX_DESTINATIONS, |_| Cell::default())?;
        let rr = carver.slice(MAX_SETS, |_| AtomicU64::new(0))?;
        // SAFETY: freshly carved, zeroed, not yet shared; zero is a valid
        // value of every atomic here.
        unsafe { RobustMutex::init(&raw mut (*header).lock) }.ok()?;
        Some(DsShared {
            header,
            text,
            cells,
            rr,
        })
    }

    fn header(&self) -> &Header {
        // SAFETY: carved and initialised in `carve`.
        unsafe { &*self.header }
    }

    /// The list's generation (0: none yet). A process whose parsed list is
    /// of another generation takes a [`DsShared::text`] again.
    pub fn generation(&self) -> u64 {
        self.header().generation.load(Ordering::Acquire)
    }

    /// Destinations in the list in force.
    pub fn destinations(&self) -> usize {
        let h = self.header();
        let g = h.generation.load(Ordering::Acquire);
        h.dests[(g % 2) as usize].load(Ordering::Relaxed) as usize
    }

    /// The cell of destination `i` (in list order) of `generation`'s bank.
    pub fn cell(&self, generation: u64, i: usize) -> Option<&Cell> {
        (i < MAX_DESTINATIONS).then(|| {
            let bank = (generation % 2) as usize;
            &self.cells[bank * MAX_DESTINATIONS + i]
        })
    }

    /// The list in force and its generation.
    pub fn text(&self, out: &mut String) -> u64 {
        out.clear();
        let h = self.header();
        let Ok(_g) = h.lock.lock() else { return 0 };
        let generation = h.generation.load(Ordering::Acquire);
        let bank = (generation % 2) as usize;
        let len = (h.text_len[bank].load(Ordering::Relaxed) as usize).min(MAX_LIST_TEXT);
        // SAFETY: the bank in use is written only before its generation
        // is published, under the lock we hold.
        let bytes = unsafe { std::slice::from_raw_parts(self.text.add(bank * MAX_LIST_TEXT), len) };
        out.push_str(&String::from_utf8_lossy(bytes));
        generation
    }

    /// Puts `text` (which parses to `list`) in force. Destinations already
    /// known keep their health and load; new ones start in the state the
    /// list's flags give.
    pub fn publish(&self, text: &str, list: &List) -> Result<u64, String> {
        if text.len() > MAX_LIST_TEXT {
            return Err(format!("the list is longer than {MAX_LIST_TEXT} bytes"));
        }
        let h = self.header();
        let _g = h.lock.lock().map_err(|e| e.to_string())?;
        let old = h.generation.load(Ordering::Acquire);
        let next = old + 1;
        let (ob, nb) = ((old % 2) as usize, (next % 2) as usize);
        let old_n = if old == 0 {
            0
        } else {
            h.dests[ob].load(Ordering::Relaxed) as usize
        };
        let mut i = 0;
        for set in &list.sets {
            for d in &set.dests {
                let k = key(set.id, &d.uri);
                let kept = (0..old_n)
                    .filter_map(|j| self.cell(old, j))
                    .find(|c| c.key.load(Ordering::Relaxed) == k);
                let (health, load) = match kept {
                    Some(c) => (
                        c.health.load(Ordering::Relaxed),
                        c.load.load(Ordering::Relaxed),
                    ),
                    None => {
                        let flags =
                            d.flags & (FLAG_INACTIVE | FLAG_TRYING | FLAG_DISABLED | FLAG_PROBING);
                        (
                            pack(Health {
                                flags,
                                ..Health::default()
                            }),
                            0,
                        )
                    }
                };
                let Some(c) = self.cell(next, i) else { break };
                c.key.store(k, Ordering::Relaxed);
                c.health.store(health, Ordering::Relaxed);
                c.load.store(load, Ordering::Relaxed);
                c.probe_pending.store(0, Ordering::Relaxed);
                i += 1;
            }
        }
        // SAFETY: the bank not in use, under the lock.
        unsafe {
            std::ptr::copy_nonoverlapping(
                text.as_ptr(),
                self.text.add(nb * MAX_LIST_TEXT),
                text.len(),
            );
        }
        h.text_len[nb].store(text.len() as u32, Ordering::Relaxed);
        h.dests[nb].store(i as u32, Ordering::Relaxed);
        h.generation.store(next, Ordering::Release);
        Ok(next)
    }

    /// Parses and publishes a list text; the old list stays on any error.
    pub fn load(&self, text: &str) -> Result<(u64, List), Vec<String>> {
        let list = list::parse(text)?;
        let g = self.publish(text, &list).map_err(|e| vec![e])?;
        Ok((g, list))
    }

    /// The next value of set `pos`'s round-robin counter, shared by every
    /// worker.
    pub fn next_rr(&self, pos: usize) -> u64 {
        if pos >= MAX_SETS {
            return 0;
        }
        self.rr[pos].fetch_add(1, Ordering::Relaxed)
    }
}

impl Cell {
    /// The health, if this cell is still destination `key`.
    pub fn health(&self, key: u64) -> Option<Health> {
        let v = self.health.load(Ordering::Acquire);
        (self.key.load(Ordering::Relaxed) == key).then(|| unpack(v))
    }

    /// Changes the health by `f` (lock-free); `None` if the cell is no
    /// longer destination `key`.
    pub fn update(&self, key: u64, f: impl Fn(Health) -> Health) -> Option<(Health, Health)> {
        if self.key.load(Ordering::Relaxed) != key {
            return None;
        }
        let mut cur = self.health.load(Ordering::Acquire);
        loop {
            let new = pack(f(unpack(cur)));
            match self
                .health
                .compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some((unpack(cur), unpack(new))),
                Err(v) => cur = v,
            }
        }
    }

    pub fn load(&self) -> u32 {
        self.load.load(Ordering::Relaxed)
    }

    pub fn add_load(&self) {
        self.load.fetch_add(1, Ordering::Relaxed);
    }

    /// One call fewer (never below zero).
    pub fn sub_load(&self) {
        let _ = self
            .load
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
    }

    pub fn snapshot(&self, key: u64) -> Option<Snapshot> {
        Some(Snapshot {
            health: self.health(key)?,
            load: self.load(),
        })
    }

    /// Starts probe `seq`; returns whether the previous one was still
    /// unanswered (a failed probe).
    pub fn start_probe(&self, seq: u32) -> bool {
        self.probe_seq.store(seq, Ordering::Relaxed);
        self.probe_pending.swap(1, Ordering::AcqRel) == 1
    }

    /// A reply to probe `seq`: true the first time (a retransmitted reply
    /// or one to an older probe is not counted again).
    pub fn answer_probe(&self, seq: u32) -> bool {
        self.probe_seq.load(Ordering::Relaxed) == seq
            && self.probe_pending.swap(0, Ordering::AcqRel) == 1
    }

    /// Forgets a probe in flight (the destination is no longer probed).
    pub fn cancel_probe(&self) {
        self.probe_pending.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rser_shm::Region;

    fn shared() -> (Region, DsShared) {
        let r = Region::create(4 << 20).unwrap();
        let ds = DsShared::carve(&mut r.carver()).unwrap();
        (r, ds)
    }

    #[test]
    fn packing_round_trips() {
        let h = Health {
            flags: FLAG_INACTIVE | FLAG_PROBING,
            fails: 7,
            oks: 3,
        };
        assert_eq!(unpack(pack(h)), h);
    }

    #[test]
    fn a_reload_keeps_known_destinations_state_and_adds_new_ones() {
        let (_r, ds) = shared();
        let mut text = String::new();
        let (g1, _) = ds.load("1 sip:a.net\n1 sip:b.net 1\n").unwrap();
        assert_eq!(ds.text(&mut text), g1);
        assert_eq!(text, "1 sip:a.net\n1 sip:b.net 1\n");
        let ka = key(1, "sip:a.net");
        let c = ds.cell(g1, 0).unwrap();
        c.update(ka, |h| h.marked("i").unwrap()).unwrap();
        c.add_load();
        assert_eq!(
            ds.cell(g1, 1)
                .unwrap()
                .health(key(1, "sip:b.net"))
                .unwrap()
                .flags,
            FLAG_INACTIVE
        );

        let (g2, _) = ds.load("1 sip:c.net\n1 sip:a.net\n").unwrap();
        assert_eq!(g2, g1 + 1);
        let a = ds.cell(g2, 1).unwrap().snapshot(ka).unwrap();
        assert_eq!((a.health.flags, a.load), (FLAG_INACTIVE, 1), "kept");
        let c = ds
            .cell(g2, 0)
            .unwrap()
            .snapshot(key(1, "sip:c.net"))
            .unwrap();
        assert_eq!(c.health, Health::default());
        assert!(
            ds.cell(g2, 0).unwrap().health(ka).is_none(),
            "another destination"
        );
    }

    #[test]
    fn a_bad_list_leaves_the_old_one() {
        let (_r, ds) = shared();
        let (g, _) = ds.load("1 sip:a.net\n").unwrap();
        assert!(ds.load("1 http://x\n").is_err());
        assert_eq!(ds.generation(), g);
        let long = "#".repeat(MAX_LIST_TEXT + 1);
        assert!(ds.load(&long).is_err());
        assert_eq!(ds.generation(), g);
    }

    #[test]
    fn probes_are_counted_once() {
        let (_r, ds) = shared();
        let (g, _) = ds.load("1 sip:a.net\n").unwrap();
        let c = ds.cell(g, 0).unwrap();
        assert!(!c.start_probe(1));
        assert!(c.answer_probe(1));
        assert!(!c.answer_probe(1), "a retransmitted reply");
        assert!(!c.start_probe(2));
        assert!(!c.answer_probe(1), "an old probe's reply");
        assert!(c.start_probe(3), "2 was never answered");
        assert_eq!(ds.next_rr(0), 0);
        assert_eq!(ds.next_rr(0), 1);
    }
}
