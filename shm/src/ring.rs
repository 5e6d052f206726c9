//! A bounded queue of byte records in shared memory: many processes push,
//! one consumer pops (a helper thread writing them to a database). It
//! never blocks: a full queue refuses the record, and the caller counts
//! and logs it.
//!
//! Each cell has a sequence word (Vyukov's bounded queue): `pos` when free
//! for the producer of position `pos`, `pos + 1` when that record is
//! published, `pos + cells` once consumed. A producer that died between
//! claiming a cell and publishing it would stop the consumer forever, so
//! the consumer skips a cell claimed longer than [`STALE_MS`] ago; a
//! producer that was only slow then finds its cell taken and reports the
//! record lost, and a checksum catches a cell two producers wrote.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crossbeam::utils::CachePadded;

use crate::{Carver, Slice};

/// How long a claimed cell may stay unpublished before the consumer
/// takes its producer for dead.
pub const STALE_MS: u64 = 1_000;

/// Why a push failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// Every cell holds a record not consumed yet.
    Full,
    /// Longer than a cell holds.
    TooLong,
    /// The consumer took this producer for dead and skipped its cell.
    Lost,
}

/// What a pop found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pop {
    /// A record, now in the caller's buffer.
    Record,
    Empty,
    /// A cell skipped: its producer died (or two wrote it).
    Lost,
}

#[derive(Clone, Copy)]
pub struct Ring {
    /// The consumer's next position, and the producers'.
    head: Slice<CachePadded<AtomicU64>>,
    tail: Slice<CachePadded<AtomicU64>>,
    /// Per cell: sequence, claim time (ms), length, checksum.
    seq: Slice<AtomicU64>,
    claimed: Slice<AtomicU64>,
    len: Slice<AtomicU32>,
    sum: Slice<AtomicU64>,
    /// The records, `words` 8-byte words per cell.
    data: Slice<AtomicU64>,
    cells: usize,
    words: usize,
}

impl Ring {
    /// `cells` records of at most `record_bytes` each (rounded up to
    /// whole words).
    pub fn carve(carver: &mut Carver<'_>, cells: usize, record_bytes: usize) -> Option<Ring> {
        let cells = cells.max(1);
        let words = record_bytes.div_ceil(8).max(1);
        Some(Ring {
            head: carver.one(CachePadded::new(AtomicU64::new(0)))?,
            tail: carver.one(CachePadded::new(AtomicU64::new(0)))?,
            seq: carver.slice(cells, |i| AtomicU64::new(i as u64))?,
            claimed: carver.slice(cells, |_| AtomicU64::new(0))?,
            len: carver.slice(cells, |_| AtomicU32::new(0))?,
            sum: carver.slice(cells, |_| AtomicU64::new(0))?,
            data: carver.slice(cells * words, |_| AtomicU64::new(0))?,
            cells,
            words,
        })
    }

    pub fn capacity(&self) -> usize {
        self.cells
    }

    /// The longest record a cell holds.
    pub fn record_bytes(&self) -> usize {
        self.words * 8
    }

    /// Records pushed and not yet popped (a level, for statistics).
    pub fn len(&self) -> usize {
        let t = self.tail[0].load(Ordering::Relaxed);
        let h = self.head[0].load(Ordering::Relaxed);
        t.saturating_sub(h) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `record`; `now_ms` on the clock every process shares.
    pub fn push(&self, record: &[u8], now_ms: u64) -> Result<(), PushError> {
        self.push_parts(&[record], now_ms)
    }

    /// Queues the record made of `parts` in order, without joining them
    /// first; every part but the last is a whole number of words (8
    /// bytes), or `TooLong` (a caller's layout error).
    pub fn push_parts(&self, parts: &[&[u8]], now_ms: u64) -> Result<(), PushError> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let aligned = parts
            .split_last()
            .is_none_or(|(_, first)| first.iter().all(|p| p.len() % 8 == 0));
        if total > self.record_bytes() || !aligned {
            return Err(PushError::TooLong);
        }
        let tail = &self.tail[0];
        let backoff = crossbeam::utils::Backoff::new();
        let mut pos = tail.load(Ordering::Relaxed);
        let cell = loop {
            let c = (pos % self.cells as u64) as usize;
            let seq = self.seq[c].load(Ordering::Acquire);
            match seq.cmp(&pos) {
                std::cmp::Ordering::Equal => {
                    match tail.compare_exchange_weak(
                        pos,
                        pos + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => break c,
                        Err(now) => pos = now,
                    }
                }
                // Not consumed since the last round: full.
                std::cmp::Ordering::Less => return Err(PushError::Full),
                // Another producer took it: look again.
                std::cmp::Ordering::Greater => {
                    backoff.spin();
                    pos = tail.load(Ordering::Relaxed);
                }
            }
        };
        self.claimed[cell].store(now_ms, Ordering::Relaxed);
        let base = cell * self.words;
        let mut sum = checksum_start(total);
        let chunks = parts.iter().flat_map(|p| p.chunks(8));
        for (i, chunk) in chunks.enumerate() {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            let w = u64::from_le_bytes(w);
            sum = checksum_step(sum, w);
            self.data[base + i].store(w, Ordering::Relaxed);
        }
        self.len[cell].store(total as u32, Ordering::Relaxed);
        self.sum[cell].store(sum, Ordering::Relaxed);
        // Published only if the consumer did not skip it meanwhile.
        self.seq[cell]
            .compare_exchange(pos, pos + 1, Ordering::Release, Ordering::Relaxed)
            .map(|_| ())
            .map_err(|_| PushError::Lost)
    }

    /// The next record into `out` (one consumer at a time).
    pub fn pop(&self, out: &mut Vec<u8>, now_ms: u64) -> Pop {
        let head = &self.head[0];
        let pos = head.load(Ordering::Relaxed);
        let c = (pos % self.cells as u64) as usize;
        let seq = self.seq[c].load(Ordering::Acquire);
        if seq == pos + 1 {
            let n = (self.len[c].load(Ordering::Relaxed) as usize).min(self.record_bytes());
            out.clear();
            let base = c * self.words;
            let mut sum = checksum_start(n);
            for i in 0..n.div_ceil(8) {
                let w = self.data[base + i].load(Ordering::Relaxed);
                sum = checksum_step(sum, w);
                out.extend_from_slice(&w.to_le_bytes());
            }
            out.truncate(n);
            let whole = sum == self.sum[c].load(Ordering::Relaxed);
            self.free(c, pos);
            return if whole { Pop::Record } else { Pop::Lost };
        }
        if seq == pos && self.tail[0].load(Ordering::Relaxed) > pos {
            // Claimed, not published: a producer at work, or dead. One
            // that died before noting its claim time gets the time the
            // consumer first saw it stuck.
            let at = self.claimed[c].load(Ordering::Relaxed);
            if at == 0 {
                let _ = self.claimed[c].compare_exchange(
                    0,
                    now_ms.max(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                return Pop::Empty;
            }
            let stale = now_ms.saturating_sub(at) > STALE_MS;
            if stale
                && self.seq[c]
                    .compare_exchange(
                        pos,
                        pos + self.cells as u64,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                head.store(pos + 1, Ordering::Relaxed);
                return Pop::Lost;
            }
            return Pop::Empty;
        }
        if seq > pos + 1 {
            // Freed by a consumer that died before moving the head on.
            head.store(pos + 1, Ordering::Relaxed);
            return self.pop(out, now_ms);
        }
        Pop::Empty
    }

    /// Cell `c` consumed at `pos`: free for the producer one round on.
    fn free(&self, c: usize, pos: u64) {
        self.claimed[c].store(0, Ordering::Relaxed);
        self.seq[c].store(pos + self.cells as u64, Ordering::Release);
        self.head[0].store(pos + 1, Ordering::Relaxed);
    }
}

fn checksum_start(len: usize) -> u64 {
    0x9e37_79b9_7f4a_7c15 ^ len as u64
}

fn checksum_step(sum: u64, w: u64) -> u64 {
    (sum.rotate_left(23) ^ w).wrapping_mul(0x0000_0100_0000_01b3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Region;

    fn ring(cells: usize) -> (Region, Ring) {
        let region = Region::create(1 << 20).unwrap();
        let r = Ring::carve(&mut region.carver(), cells, 64).unwrap();
        (region, r)
    }

    #[test]
    fn records_come_out_in_order_and_a_full_ring_refuses() {
        let (_region, r) = ring(4);
        for i in 0..4u8 {
            r.push(&[i; 10], 1).unwrap();
        }
        assert_eq!(r.push(b"x", 1), Err(PushError::Full));
        assert_eq!(r.len(), 4);
        let mut out = Vec::new();
        for i in 0..4u8 {
            assert_eq!(r.pop(&mut out, 1), Pop::Record);
            assert_eq!(out, vec![i; 10]);
        }
        assert_eq!(r.pop(&mut out, 1), Pop::Empty);
        // Round two reuses the cells.
        r.push(b"again", 2).unwrap();
        assert_eq!(r.pop(&mut out, 2), Pop::Record);
        assert_eq!(out, b"again");
        assert_eq!(r.push(&[0; 65], 2), Err(PushError::TooLong));
    }

    #[test]
    fn a_record_in_parts_comes_out_whole() {
        let (_region, r) = ring(4);
        r.push_parts(&[b"01234567", b"tail"], 1).unwrap();
        let mut out = Vec::new();
        assert_eq!(r.pop(&mut out, 1), Pop::Record);
        assert_eq!(out, b"01234567tail");
        // Only the last part may end inside a word.
        assert_eq!(r.push_parts(&[b"abc", b"def"], 1), Err(PushError::TooLong));
        assert_eq!(
            r.push_parts(&[&[0; 40], &[0; 30]], 1),
            Err(PushError::TooLong)
        );
    }

    #[test]
    fn a_producer_dead_after_claiming_is_skipped_and_a_slow_one_told() {
        let (_region, r) = ring(4);
        // Claim position 0 as a producer would, then "die" before noting
        // the time.
        r.tail[0].store(1, Ordering::Relaxed);
        r.push(b"next", 100).unwrap();
        let mut out = Vec::new();
        assert_eq!(r.pop(&mut out, 100), Pop::Empty, "first seen stuck");
        assert_eq!(r.pop(&mut out, 200), Pop::Empty, "not stale yet");
        assert_eq!(r.pop(&mut out, 100 + STALE_MS + 1), Pop::Lost);
        assert_eq!(r.pop(&mut out, 100 + STALE_MS + 1), Pop::Record);
        assert_eq!(out, b"next");
        // Had it only been slow, its publish now fails.
        assert!(
            r.seq[0]
                .compare_exchange(0, 1, Ordering::Release, Ordering::Relaxed)
                .is_err()
        );
    }

    #[test]
    fn many_threads_push_and_every_record_arrives_once() {
        let (_region, r) = ring(64);
        let total = 4 * 500;
        let mut seen = vec![false; total];
        std::thread::scope(|s| {
            for t in 0..4u32 {
                s.spawn(move || {
                    for i in 0..500u32 {
                        let v = (t * 500 + i).to_le_bytes();
                        while r.push(&v, 1) == Err(PushError::Full) {
                            std::thread::yield_now();
                        }
                    }
                });
            }
            let mut out = Vec::new();
            let mut got = 0;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while got < total && std::time::Instant::now() < deadline {
                match r.pop(&mut out, 1) {
                    Pop::Record => {
                        let v = u32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
                        assert!(!seen[v], "{v} twice");
                        seen[v] = true;
                        got += 1;
                    }
                    Pop::Empty => std::thread::yield_now(),
                    Pop::Lost => panic!("nothing is lost among live producers"),
                }
            }
            assert_eq!(got, total);
        });
    }
}
