//! The transaction table in shared memory: fixed slots found through hash
//! buckets, one robust lock per stripe of buckets, branch records and a
//! byte pool beside them. Slots are referred to by index and generation,
//! never by pointer, so the layout does not depend on where a process maps
//! the region. Every capacity is fixed at start-up from the region's size;
//! a full table is a clean `Err(Full)`.

use std::sync::atomic::{AtomicU64, Ordering};

use arrayvec::ArrayVec;
use rser_shm::freelist::NIL;
use rser_shm::{Carver, Chain, Chains, FreeList, Linked, Links, Pool, Stripe};

use super::key::Key;
use super::txn::{Branch, MAX_BRANCHES, Txn};
use super::wheel::Wheel;

/// Shared memory budgeted per transaction: its slot, one and a half
/// branch records, and pool blocks for a 1 KiB request and a reply.
const POOL_BLOCKS_PER_TXN: usize = 14;
const BRANCHES_PER_TXN_NUM: usize = 3;
const BRANCHES_PER_TXN_DEN: usize = 2;

/// A slot: the table's bookkeeping, then the transaction.
#[repr(C)]
pub struct Slot {
    /// Bucket and chain link (the bucket is NIL while the slot is free).
    links: Links,
    /// Bumped each time the slot is taken, so stale references miss.
    pub generation: u32,
    /// Branch record per branch number (NIL: none).
    branch: [u32; MAX_BRANCHES],
    /// When the timer process must look at it (0: never); the wheel's
    /// links are in the wheel.
    pub due: AtomicU64,
    key: Key,
    pub txn: Txn,
}

impl Linked for Slot {
    fn links(&self) -> &Links {
        &self.links
    }
    fn links_mut(&mut self) -> &mut Links {
        &mut self.links
    }
}

impl Slot {
    pub fn bucket(&self) -> u32 {
        self.links.bucket
    }
}

/// The table ran out of slots, branch records or pool blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

#[derive(Clone, Copy)]
pub struct Table {
    slots: Chains<Slot>,
    branches: *mut Branch,
    branch_free: FreeList,
    pub pool: Pool,
    pub wheel: Wheel,
}

// SAFETY: a slot and its branch records are touched only under the
// slot's stripe lock; free lists and the pool are atomic; the wheel has
// its own lock.
unsafe impl Send for Table {}
unsafe impl Sync for Table {}

/// A held stripe lock.
pub type Locked<'t> = Stripe<'t>;

impl Table {
    /// Shared memory one transaction is budgeted.
    pub fn bytes_per_txn() -> usize {
        std::mem::size_of::<Slot>()
            + Chains::<Slot>::OVERHEAD
            + std::mem::size_of::<Branch>() * BRANCHES_PER_TXN_NUM / BRANCHES_PER_TXN_DEN
            + POOL_BLOCKS_PER_TXN * Pool::BYTES_PER_BLOCK
    }

    /// Carves a table for about `bytes` of shared memory.
    pub fn carve(carver: &mut Carver<'_>, bytes: usize) -> Option<Table> {
        // The wheel's rings are a fixed cost taken from the budget first.
        let bytes = bytes.saturating_sub(Wheel::FIXED_BYTES);
        let nslots = (bytes / Self::bytes_per_txn()).clamp(16, (NIL / 2) as usize);
        let nbranches = nslots * BRANCHES_PER_TXN_NUM / BRANCHES_PER_TXN_DEN;
        let slots = Chains::carve(carver, nslots, "tm", || Slot {
            links: Links::FREE,
            generation: 0,
            branch: [NIL; MAX_BRANCHES],
            due: AtomicU64::new(0),
            key: 0,
            txn: Txn::default(),
        })?;
        let branches = carver.carve::<Branch>(nbranches)?;
        let branch_free = FreeList::carve(carver, nbranches)?;
        let pool = Pool::carve(carver, nslots * POOL_BLOCKS_PER_TXN)?;
        let wheel = Wheel::carve(carver, nslots)?;
        // SAFETY: freshly carved memory, not yet shared.
        unsafe {
            for b in 0..nbranches {
                branches.add(b).write(Branch::default());
            }
        }
        Some(Table {
            slots,
            branches,
            branch_free,
            pool,
            wheel,
        })
    }

    pub fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// Transactions live now.
    pub fn live(&self) -> usize {
        self.slots.live()
    }

    pub fn bucket_of(&self, key: Key) -> u32 {
        self.slots.bucket_of(key as u64 ^ (key >> 64) as u64)
    }

    /// Locks the stripe of `bucket`.
    pub fn lock(&self, bucket: u32) -> Locked<'_> {
        self.slots.lock(bucket)
    }

    /// The slot `idx` (bounds-checked), without checking who holds it.
    fn raw(&self, idx: u32) -> Option<*mut Slot> {
        self.slots.raw(idx)
    }

    /// A slot of the locked stripe, if `idx` is live there with
    /// `generation`; the guard is borrowed exclusively meanwhile.
    pub fn slot<'l>(
        &self,
        l: &'l mut Locked<'_>,
        idx: u32,
        generation: u32,
    ) -> Option<&'l mut Slot> {
        self.slots
            .get_mut(l, idx)
            .filter(|s| s.generation == generation)
    }

    /// Finds the live transaction with `key` in `bucket` (locked).
    pub fn find(&self, l: &Locked<'_>, bucket: u32, key: Key) -> Option<(u32, u32)> {
        self.slots
            .chain(l, bucket)
            .filter_map(|i| self.slots.get(l, i).map(|s| (i, s)))
            .find(|(_, s)| s.key == key)
            .map(|(i, s)| (i, s.generation))
    }

    /// Puts a new transaction in `bucket` (locked); returns (slot, generation).
    pub fn insert(
        &self,
        l: &mut Locked<'_>,
        bucket: u32,
        key: Key,
        txn: Txn,
    ) -> Result<(u32, u32), Full> {
        let mut generation = 0;
        let idx = self
            .slots
            .insert(l, bucket, |s| {
                s.generation = s.generation.wrapping_add(1);
                generation = s.generation;
                s.key = key;
                s.txn = txn;
                s.branch = [NIL; MAX_BRANCHES];
                s.due.store(0, Ordering::Relaxed);
            })
            .ok_or(Full)?;
        Ok((idx, generation))
    }

    /// Takes a branch record for the slot's next branch number.
    pub fn add_branch(&self, s: &mut Slot) -> Result<u8, Full> {
        let b = s.txn.nbranch as usize;
        if b >= MAX_BRANCHES {
            return Err(Full);
        }
        let r = self.branch_free.pop().ok_or(Full)?;
        // SAFETY: r < capacity of the branch list, ours alone now.
        unsafe { self.branches.add(r as usize).write(Branch::default()) };
        s.branch[b] = r;
        s.txn.nbranch += 1;
        Ok(b as u8)
    }

    /// The transaction and its branches, for the pure logic.
    pub fn view<'s>(
        &self,
        s: &'s mut Slot,
    ) -> (&'s mut Txn, ArrayVec<&'s mut Branch, MAX_BRANCHES>) {
        let n = (s.txn.nbranch as usize).min(MAX_BRANCHES);
        let mut br = ArrayVec::new();
        for &r in &s.branch[..n] {
            if (r as usize) < self.branch_free.capacity() {
                // SAFETY: distinct records (each taken from the free list
                // once), owned by this slot, whose stripe is locked.
                br.push(unsafe { &mut *self.branches.add(r as usize) });
            }
        }
        (&mut s.txn, br)
    }

    /// Ends a transaction: its blocks, branch records and slot go back.
    pub fn remove(&self, l: &mut Locked<'_>, idx: u32) {
        let Some(s) = self.slots.get_mut(l, idx) else {
            return;
        };
        self.wheel.disarm(self, idx);
        let (txn, branches) = self.view(s);
        for b in branches {
            self.pool.free(std::mem::take(&mut b.uri));
            self.pool.free(std::mem::take(&mut b.request));
        }
        for c in [
            &mut txn.request,
            &mut txn.reply,
            &mut txn.best,
            &mut txn.avps,
        ] {
            self.pool.free(std::mem::replace(c, Chain::EMPTY));
        }
        for r in s.branch {
            if (r as usize) < self.branch_free.capacity() {
                self.branch_free.push(r);
            }
        }
        s.branch = [NIL; MAX_BRANCHES];
        s.generation = s.generation.wrapping_add(1);
        s.due.store(0, Ordering::Relaxed);
        self.slots.remove(l, idx);
    }

    /// For the wheel: a slot's due time and whether it is live.
    pub(super) fn due_of(&self, idx: u32) -> Option<u64> {
        let p = self.raw(idx)?;
        // SAFETY: read-only look at atomics and a u32 written under a lock;
        // a stale value only delays or hastens one timer check.
        unsafe { (!(*p).links.is_free()).then(|| (*p).due.load(Ordering::Relaxed)) }
    }

    /// A slot's bucket and generation, read without its lock (the timer
    /// process then locks and checks both).
    pub fn peek(&self, idx: u32) -> Option<(u32, u32)> {
        let p = self.raw(idx)?;
        // SAFETY: plain reads; the caller re-checks under the lock.
        unsafe {
            let b = std::ptr::read_volatile(&raw const (*p).links.bucket);
            let g = std::ptr::read_volatile(&raw const (*p).generation);
            (b != NIL).then_some((b, g))
        }
    }

    /// Sets when the timer process must look at slot `idx` next.
    pub fn arm(&self, s: &Slot, idx: u32, due: u64) {
        s.due.store(due, Ordering::Relaxed);
        self.wheel.arm(self, idx, due);
    }

    pub fn pool_free_blocks(&self) -> usize {
        self.pool.free_blocks()
    }
}
