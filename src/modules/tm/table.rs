//! The transaction table in shared memory: fixed slots found through hash
//! buckets, one robust lock per stripe of buckets, branch records and a
//! byte pool beside them. Slots are referred to by index and generation,
//! never by pointer, so the layout does not depend on where a process maps
//! the region. Every capacity is fixed at start-up from the region's size;
//! a full table is a clean `Err(Full)`.

use std::sync::atomic::{AtomicU64, Ordering};

use arrayvec::ArrayVec;
use rser_shm::freelist::NIL;
use rser_shm::{Carver, Chain, FreeList, LockGuard, Pool, RobustMutex};

use super::key::Key;
use super::txn::{Branch, MAX_BRANCHES, Txn};
use super::wheel::Wheel;

/// Most lock stripes: beyond this, more locks buy nothing on a machine
/// with a handful of cores, and cost cache.
const MAX_LOCKS: usize = 1024;

/// Shared memory budgeted per transaction: its slot, one and a half
/// branch records, and pool blocks for a 1 KiB request and a reply.
const POOL_BLOCKS_PER_TXN: usize = 14;
const BRANCHES_PER_TXN_NUM: usize = 3;
const BRANCHES_PER_TXN_DEN: usize = 2;

/// A slot: the table's bookkeeping, then the transaction.
#[repr(C)]
pub struct Slot {
    /// Bumped each time the slot is taken, so stale references miss.
    pub generation: u32,
    /// The bucket whose chain holds the slot; NIL when free.
    pub bucket: u32,
    /// The next slot in the bucket's chain.
    next: u32,
    /// Branch record per branch number (NIL: none).
    branch: [u32; MAX_BRANCHES],
    /// When the timer process must look at it (0: never); the wheel's
    /// links are in the wheel.
    pub due: AtomicU64,
    key: Key,
    pub txn: Txn,
}

/// The table ran out of slots, branch records or pool blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

#[derive(Clone, Copy)]
pub struct Table {
    slots: *mut Slot,
    slot_free: FreeList,
    heads: *mut u32,
    nbuckets: u32,
    locks: *mut RobustMutex,
    nlocks: u32,
    branches: *mut Branch,
    branch_free: FreeList,
    pub pool: Pool,
    pub wheel: Wheel,
}

// SAFETY: a slot, its bucket chain and its branch records are touched only
// under the bucket's stripe lock; free lists and the pool are atomic; the
// wheel has its own lock.
unsafe impl Send for Table {}
unsafe impl Sync for Table {}

/// A held stripe lock.
pub struct Locked<'t> {
    _guard: LockGuard<'t>,
    stripe: u32,
    /// The previous holder died: the stripe's chains were rebuilt.
    pub recovered: bool,
}

impl Table {
    /// Shared memory one transaction is budgeted.
    pub fn bytes_per_txn() -> usize {
        std::mem::size_of::<Slot>()
            + 8 // bucket head and free-list link
            + std::mem::size_of::<Branch>() * BRANCHES_PER_TXN_NUM / BRANCHES_PER_TXN_DEN
            + POOL_BLOCKS_PER_TXN * Pool::BYTES_PER_BLOCK
    }

    /// Carves a table for about `bytes` of shared memory.
    pub fn carve(carver: &mut Carver<'_>, bytes: usize) -> Option<Table> {
        let nslots = (bytes / Self::bytes_per_txn()).clamp(16, (NIL / 2) as usize);
        let nbuckets = nslots.next_power_of_two();
        let nlocks = nbuckets.min(MAX_LOCKS);
        let nbranches = nslots * BRANCHES_PER_TXN_NUM / BRANCHES_PER_TXN_DEN;
        let slots = carver.carve::<Slot>(nslots)?;
        let slot_free = FreeList::carve(carver, nslots)?;
        let heads = carver.carve::<u32>(nbuckets)?;
        let locks = carver.carve::<RobustMutex>(nlocks)?;
        let branches = carver.carve::<Branch>(nbranches)?;
        let branch_free = FreeList::carve(carver, nbranches)?;
        let pool = Pool::carve(carver, nslots * POOL_BLOCKS_PER_TXN)?;
        let wheel = Wheel::carve(carver, nslots)?;
        // SAFETY: freshly carved (zeroed) memory, not yet shared; every
        // field is initialised here before any use.
        unsafe {
            for i in 0..nslots {
                let s = slots.add(i);
                (&raw mut (*s).generation).write(0);
                (&raw mut (*s).bucket).write(NIL);
                (&raw mut (*s).next).write(NIL);
                (&raw mut (*s).branch).write([NIL; MAX_BRANCHES]);
                (&raw mut (*s).due).write(AtomicU64::new(0));
                (&raw mut (*s).key).write(0);
                (&raw mut (*s).txn).write(Txn::default());
            }
            for b in 0..nbuckets {
                heads.add(b).write(NIL);
            }
            for l in 0..nlocks {
                RobustMutex::init(locks.add(l)).ok()?;
            }
            for b in 0..nbranches {
                branches.add(b).write(Branch::default());
            }
        }
        Some(Table {
            slots,
            slot_free,
            heads,
            nbuckets: nbuckets as u32,
            locks,
            nlocks: nlocks as u32,
            branches,
            branch_free,
            pool,
            wheel,
        })
    }

    pub fn capacity(&self) -> usize {
        self.slot_free.capacity()
    }

    /// Transactions live now.
    pub fn live(&self) -> usize {
        self.capacity() - self.slot_free.free()
    }

    pub fn bucket_of(&self, key: Key) -> u32 {
        (key as u32 ^ (key >> 64) as u32) & (self.nbuckets - 1)
    }

    fn stripe_of(&self, bucket: u32) -> u32 {
        bucket % self.nlocks
    }

    /// Locks the stripe of `bucket`.
    pub fn lock(&self, bucket: u32) -> Locked<'_> {
        let stripe = self.stripe_of(bucket.min(self.nbuckets - 1));
        // SAFETY: stripe < nlocks, initialised in carve().
        let mutex = unsafe { &*self.locks.add(stripe as usize) };
        let guard = loop {
            match mutex.lock() {
                Ok(g) => break g,
                // Only EAGAIN/EDEADLK-class errors remain; neither can
                // last, so try again rather than give up on the message.
                Err(_) => std::thread::yield_now(),
            }
        };
        let recovered = guard.recovered;
        if recovered {
            self.rebuild_stripe(stripe);
        }
        Locked {
            _guard: guard,
            stripe,
            recovered,
        }
    }

    /// The slot `idx` (bounds-checked), without checking who holds it.
    fn raw(&self, idx: u32) -> Option<*mut Slot> {
        ((idx as usize) < self.capacity()).then(|| {
            // SAFETY: idx < capacity.
            unsafe { self.slots.add(idx as usize) }
        })
    }

    fn head(&self, bucket: u32) -> *mut u32 {
        // SAFETY: callers pass bucket < nbuckets.
        unsafe { self.heads.add(bucket as usize) }
    }

    /// A slot of the locked stripe, if `idx` is live there with `generation`.
    #[allow(clippy::mut_from_ref)] // the stripe lock makes the access exclusive
    pub fn slot<'l>(&self, l: &'l Locked<'_>, idx: u32, generation: u32) -> Option<&'l mut Slot> {
        let s = self.raw(idx)?;
        // SAFETY: the slot's stripe is locked (checked below before any
        // use of the rest of the slot).
        let s = unsafe { &mut *s };
        (s.bucket != NIL && self.stripe_of(s.bucket) == l.stripe && s.generation == generation)
            .then_some(s)
    }

    /// Finds the live transaction with `key` in `bucket` (locked).
    pub fn find(&self, l: &Locked<'_>, bucket: u32, key: Key) -> Option<(u32, u32)> {
        debug_assert_eq!(self.stripe_of(bucket), l.stripe);
        // SAFETY: the bucket's stripe is locked.
        let mut i = unsafe { *self.head(bucket) };
        let mut hops = 0;
        while let Some(s) = self.raw(i) {
            // SAFETY: i is in the locked chain.
            let s = unsafe { &*s };
            if s.key == key && s.bucket == bucket {
                return Some((i, s.generation));
            }
            i = s.next;
            hops += 1;
            if hops > self.capacity() {
                break; // a broken chain must not loop
            }
        }
        None
    }

    /// Puts a new transaction in `bucket` (locked); returns (slot, generation).
    pub fn insert(
        &self,
        l: &Locked<'_>,
        bucket: u32,
        key: Key,
        txn: Txn,
    ) -> Result<(u32, u32), Full> {
        debug_assert_eq!(self.stripe_of(bucket), l.stripe);
        let idx = self.slot_free.pop().ok_or(Full)?;
        let s = self.raw(idx).ok_or(Full)?;
        // SAFETY: the slot was free (ours alone) and its bucket is locked.
        let s = unsafe { &mut *s };
        s.generation = s.generation.wrapping_add(1);
        s.key = key;
        s.txn = txn;
        s.branch = [NIL; MAX_BRANCHES];
        s.due.store(0, Ordering::Relaxed);
        // SAFETY: the bucket is locked.
        unsafe {
            s.next = *self.head(bucket);
            *self.head(bucket) = idx;
        }
        s.bucket = bucket;
        Ok((idx, s.generation))
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
    pub fn remove(&self, l: &Locked<'_>, idx: u32) {
        let Some(sp) = self.raw(idx) else { return };
        // SAFETY: the caller holds the slot's stripe (checked next).
        let s = unsafe { &mut *sp };
        if s.bucket == NIL || self.stripe_of(s.bucket) != l.stripe {
            return;
        }
        self.wheel.disarm(self, idx);
        // SAFETY: the bucket is locked.
        unsafe {
            let mut link = self.head(s.bucket);
            let mut hops = 0;
            while *link != NIL && hops <= self.capacity() {
                if *link == idx {
                    *link = s.next;
                    break;
                }
                match self.raw(*link) {
                    Some(p) => link = &raw mut (*p).next,
                    None => break,
                }
                hops += 1;
            }
        }
        let (txn, branches) = self.view(s);
        for b in branches {
            self.pool.free(std::mem::take(&mut b.uri));
            self.pool.free(std::mem::take(&mut b.request));
        }
        for c in [&mut txn.request, &mut txn.reply, &mut txn.best] {
            self.pool.free(std::mem::replace(c, Chain::EMPTY));
        }
        for r in s.branch {
            if (r as usize) < self.branch_free.capacity() {
                self.branch_free.push(r);
            }
        }
        s.branch = [NIL; MAX_BRANCHES];
        s.bucket = NIL;
        s.next = NIL;
        s.generation = s.generation.wrapping_add(1);
        s.due.store(0, Ordering::Relaxed);
        self.slot_free.push(idx);
    }

    /// Relinks every chain of a stripe from the slots themselves, after a
    /// process died holding its lock mid-update.
    fn rebuild_stripe(&self, stripe: u32) {
        let mut b = stripe;
        while b < self.nbuckets {
            // SAFETY: the stripe is locked by the caller.
            unsafe { *self.head(b) = NIL };
            b += self.nlocks;
        }
        for i in 0..self.capacity() as u32 {
            let Some(p) = self.raw(i) else { break };
            // SAFETY: slots of this stripe are ours under its lock; others'
            // `bucket` fields are only compared.
            unsafe {
                let bucket = (*p).bucket;
                if bucket != NIL && bucket < self.nbuckets && self.stripe_of(bucket) == stripe {
                    (*p).next = *self.head(bucket);
                    *self.head(bucket) = i;
                }
            }
        }
        log::warn!("tm: a process died holding stripe {stripe}'s lock; its chains were rebuilt");
    }

    /// For the wheel: a slot's due time and whether it is live.
    pub(super) fn due_of(&self, idx: u32) -> Option<u64> {
        let p = self.raw(idx)?;
        // SAFETY: read-only look at atomics and a u32 written under a lock;
        // a stale value only delays or hastens one timer check.
        unsafe { ((*p).bucket != NIL).then(|| (*p).due.load(Ordering::Relaxed)) }
    }

    /// A slot's bucket and generation, read without its lock (the timer
    /// process then locks and checks both).
    pub fn peek(&self, idx: u32) -> Option<(u32, u32)> {
        let p = self.raw(idx)?;
        // SAFETY: plain reads; the caller re-checks under the lock.
        unsafe {
            let b = std::ptr::read_volatile(&raw const (*p).bucket);
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
