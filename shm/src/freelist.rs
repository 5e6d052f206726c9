//! A lock-free stack of free indices (a Treiber stack whose head carries a
//! tag against ABA), for tables of fixed-size records in shared memory.
//! No lock is held, so a process killed mid-operation blocks no one; the
//! worst it leaves is an index no list reaches (a leak, which
//! [`FreeList::free`] makes visible).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::region::Carver;

/// No index: the end of a list.
pub const NIL: u32 = u32::MAX;

#[repr(C)]
struct Head {
    /// Low 32 bits: the first free index (or NIL); high 32 bits: a tag
    /// bumped on every change, so a stale compare-and-swap fails.
    top: AtomicU64,
    free: AtomicU32,
}

#[derive(Clone, Copy)]
pub struct FreeList {
    head: *mut Head,
    /// Per index: the next one on the free list. Owners of an index may use
    /// its link for lists of their own (the pool's chains do).
    next: *mut AtomicU32,
    count: u32,
}

// SAFETY: every shared field is atomic.
unsafe impl Send for FreeList {}
unsafe impl Sync for FreeList {}

impl FreeList {
    /// Carves a list of `count` indices, all free.
    pub fn carve(carver: &mut Carver<'_>, count: usize) -> Option<FreeList> {
        let count = u32::try_from(count).ok().filter(|&c| c > 0 && c < NIL)?;
        let head = carver.carve::<Head>(1)?;
        let next = carver.carve::<AtomicU32>(count as usize)?;
        let list = FreeList { head, next, count };
        for i in 0..count {
            list.link(i)
                .store(if i + 1 < count { i + 1 } else { NIL }, Ordering::Relaxed);
        }
        list.head().top.store(0, Ordering::Release);
        list.head().free.store(count, Ordering::Relaxed);
        Some(list)
    }

    fn head(&self) -> &Head {
        // SAFETY: carved and initialised in carve().
        unsafe { &*self.head }
    }

    /// The link of index `i` (`i < capacity`).
    pub fn link(&self, i: u32) -> &AtomicU32 {
        assert!(i < self.count);
        // SAFETY: i < count, the number carved.
        unsafe { &*self.next.add(i as usize) }
    }

    pub fn capacity(&self) -> usize {
        self.count as usize
    }

    /// Indices on the list now.
    pub fn free(&self) -> usize {
        self.head().free.load(Ordering::Relaxed) as usize
    }

    /// Takes a free index; `None` when there is none.
    pub fn pop(&self) -> Option<u32> {
        let top = &self.head().top;
        let mut cur = top.load(Ordering::Acquire);
        loop {
            let first = cur as u32;
            if first >= self.count {
                return None;
            }
            // The link may be stale if another process takes the index
            // first; then the tag has moved and the exchange fails.
            let after = self.link(first).load(Ordering::Acquire);
            let new = ((cur >> 32).wrapping_add(1) << 32) | u64::from(after);
            match top.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    self.head().free.fetch_sub(1, Ordering::Relaxed);
                    return Some(first);
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Gives back `n` indices already linked `first -> ... -> last`.
    pub fn push_chain(&self, first: u32, last: u32, n: u32) {
        let top = &self.head().top;
        let mut cur = top.load(Ordering::Acquire);
        loop {
            self.link(last).store(cur as u32, Ordering::Release);
            let new = ((cur >> 32).wrapping_add(1) << 32) | u64::from(first);
            match top.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    self.head().free.fetch_add(n, Ordering::Relaxed);
                    return;
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Gives back one index.
    pub fn push(&self, i: u32) {
        self.push_chain(i, i, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Region;

    #[test]
    fn pop_all_push_back() {
        let r = Region::create(1 << 16).unwrap();
        let l = FreeList::carve(&mut r.carver(), 3).unwrap();
        let got: Vec<u32> = std::iter::from_fn(|| l.pop()).collect();
        assert_eq!(got, vec![0, 1, 2]);
        assert_eq!(l.free(), 0);
        l.push(1);
        l.push(2);
        assert_eq!(l.pop(), Some(2));
        assert_eq!(l.pop(), Some(1));
        assert_eq!(l.pop(), None);
    }
}
