//! Fixed records in shared memory, chained in hash buckets, with one
//! robust lock per stripe of buckets: the common part of tm's transaction
//! table and usrloc's location table. Records are referred to by index,
//! never by pointer. A process that dies holding a stripe's lock leaves
//! chains that the next locker relinks from the records themselves.

use crate::freelist::{FreeList, NIL};
use crate::lock::{LockGuard, RobustMutex};
use crate::region::Carver;

/// Most lock stripes: beyond this, more locks buy nothing on a machine
/// with a handful of cores, and cost cache.
const MAX_LOCKS: usize = 1024;

/// A record's place in the chains: its bucket (NIL while free) and the
/// next record of that bucket.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Links {
    pub bucket: u32,
    next: u32,
}

impl Links {
    pub const FREE: Links = Links {
        bucket: NIL,
        next: NIL,
    };

    pub fn is_free(&self) -> bool {
        self.bucket == NIL
    }
}

/// A record that carries its [`Links`].
pub trait Linked {
    fn links(&self) -> &Links;
    fn links_mut(&mut self) -> &mut Links;
}

pub struct Chains<T> {
    records: *mut T,
    free: FreeList,
    heads: *mut u32,
    nbuckets: u32,
    locks: *mut RobustMutex,
    nlocks: u32,
    /// Named in the log line a recovery writes.
    name: &'static str,
}

impl<T> Clone for Chains<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Chains<T> {}

// SAFETY: a record and its bucket's chain are touched only under the
// bucket's stripe lock; the free list is atomic.
unsafe impl<T> Send for Chains<T> {}
unsafe impl<T> Sync for Chains<T> {}

/// A held stripe lock.
pub struct Stripe<'t> {
    _guard: LockGuard<'t>,
    stripe: u32,
    /// The previous holder died: the stripe's chains were rebuilt.
    pub recovered: bool,
}

impl<T: Linked> Chains<T> {
    /// Shared memory per record beyond the record itself: its share of a
    /// bucket head and its free-list link.
    pub const OVERHEAD: usize = 8;

    /// Carves `n` records, each set by `init`, and a power of two of
    /// buckets at least `n`.
    pub fn carve(
        carver: &mut Carver<'_>,
        n: usize,
        name: &'static str,
        init: impl Fn() -> T,
    ) -> Option<Chains<T>> {
        let n = n.clamp(1, (NIL / 2) as usize);
        let nbuckets = n.next_power_of_two();
        let nlocks = nbuckets.min(MAX_LOCKS);
        let records = carver.carve::<T>(n)?;
        let free = FreeList::carve(carver, n)?;
        let heads = carver.carve::<u32>(nbuckets)?;
        let locks = carver.carve::<RobustMutex>(nlocks)?;
        // SAFETY: freshly carved memory, not yet shared; every record,
        // head and lock is initialised before any use.
        unsafe {
            for i in 0..n {
                let r = records.add(i);
                r.write(init());
                *(*r).links_mut() = Links::FREE;
            }
            for b in 0..nbuckets {
                heads.add(b).write(NIL);
            }
            for l in 0..nlocks {
                RobustMutex::init(locks.add(l)).ok()?;
            }
        }
        Some(Chains {
            records,
            free,
            heads,
            nbuckets: nbuckets as u32,
            locks,
            nlocks: nlocks as u32,
            name,
        })
    }

    pub fn capacity(&self) -> usize {
        self.free.capacity()
    }

    /// Records in use now.
    pub fn live(&self) -> usize {
        self.capacity() - self.free.free()
    }

    /// The bucket of a hash.
    pub fn bucket_of(&self, hash: u64) -> u32 {
        (hash as u32 ^ (hash >> 32) as u32) & (self.nbuckets - 1)
    }

    pub fn nbuckets(&self) -> u32 {
        self.nbuckets
    }

    /// Stripes, each with its lock; bucket `b` is in stripe `b % nlocks`.
    pub fn nstripes(&self) -> u32 {
        self.nlocks
    }

    /// Visits every live record, one stripe locked at a time: `f` gets
    /// the lock and the record's index, and may change or remove it. A
    /// bucket's records are listed before any is visited (at most 256 a
    /// bucket per pass), so removing one does not cut the walk.
    pub fn visit(&self, mut f: impl FnMut(&mut Stripe<'_>, u32)) {
        for stripe in 0..self.nlocks {
            let mut l = self.lock(stripe);
            let mut bucket = stripe;
            while bucket < self.nbuckets {
                let mut idxs = [0u32; 256];
                let mut n = 0;
                for (slot, idx) in idxs.iter_mut().zip(self.chain(&l, bucket)) {
                    *slot = idx;
                    n += 1;
                }
                for &idx in &idxs[..n] {
                    f(&mut l, idx);
                }
                bucket += self.nlocks;
            }
        }
    }

    fn stripe_of(&self, bucket: u32) -> u32 {
        bucket % self.nlocks
    }

    /// Locks the stripe of `bucket`.
    pub fn lock(&self, bucket: u32) -> Stripe<'_> {
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
        Stripe {
            _guard: guard,
            stripe,
            recovered,
        }
    }

    /// Record `idx` (bounds-checked), without checking who holds it.
    pub fn raw(&self, idx: u32) -> Option<*mut T> {
        ((idx as usize) < self.capacity()).then(|| {
            // SAFETY: idx < capacity.
            unsafe { self.records.add(idx as usize) }
        })
    }

    fn head(&self, bucket: u32) -> *mut u32 {
        // SAFETY: callers pass bucket < nbuckets.
        unsafe { self.heads.add(bucket as usize) }
    }

    /// Record `idx` if it is live in the locked stripe, to read.
    pub fn get<'l>(&self, l: &'l Stripe<'_>, idx: u32) -> Option<&'l T> {
        let r = self.raw(idx)?;
        // SAFETY: the stripe is locked, and `l` is borrowed for as long as
        // the reference lives, so no `get_mut` of the same guard can hand
        // out a `&mut` meanwhile; a record of another stripe is only looked
        // at through its bucket, then left alone.
        let r = unsafe { &*r };
        let b = r.links().bucket;
        (b != NIL && self.stripe_of(b) == l.stripe).then_some(r)
    }

    /// Record `idx` if it is live in the locked stripe, to change: the
    /// guard is borrowed exclusively, so there is one such reference at a
    /// time.
    pub fn get_mut<'l>(&self, l: &'l mut Stripe<'_>, idx: u32) -> Option<&'l mut T> {
        let r = self.raw(idx)?;
        // SAFETY: the stripe is locked by `l`, borrowed mutably for the
        // reference's life: no other reference from this guard exists.
        let r = unsafe { &mut *r };
        let b = r.links().bucket;
        (b != NIL && self.stripe_of(b) == l.stripe).then_some(r)
    }

    /// The records of `bucket` (locked), newest first. A broken chain
    /// ends the walk rather than loop.
    pub fn chain<'l>(&'l self, l: &'l Stripe<'_>, bucket: u32) -> impl Iterator<Item = u32> + 'l {
        debug_assert_eq!(self.stripe_of(bucket), l.stripe);
        // SAFETY: the bucket's stripe is locked.
        let mut i = if bucket < self.nbuckets {
            unsafe { *self.head(bucket) }
        } else {
            NIL
        };
        let mut hops = 0;
        std::iter::from_fn(move || {
            let r = self.raw(i)?;
            hops += 1;
            if hops > self.capacity() {
                return None;
            }
            let here = i;
            // SAFETY: i is in the locked chain.
            let links = unsafe { *(*r).links() };
            if links.bucket != bucket {
                return None;
            }
            i = links.next;
            Some(here)
        })
    }

    /// Takes a free record, lets `init` fill it, and puts it at the head
    /// of `bucket` (locked). None when every record is taken.
    pub fn insert(
        &self,
        l: &mut Stripe<'_>,
        bucket: u32,
        init: impl FnOnce(&mut T),
    ) -> Option<u32> {
        debug_assert_eq!(self.stripe_of(bucket), l.stripe);
        let idx = self.free.pop()?;
        let r = self.raw(idx)?;
        // SAFETY: the record was free (ours alone) and its bucket is locked.
        let r = unsafe { &mut *r };
        init(r);
        // SAFETY: the bucket is locked.
        unsafe {
            r.links_mut().next = *self.head(bucket);
            *self.head(bucket) = idx;
        }
        // Last: a process dying before this leaves a record no rebuild
        // links (a leak, not a corrupt chain).
        r.links_mut().bucket = bucket;
        Some(idx)
    }

    /// Unlinks record `idx` of the locked stripe and frees it. False when
    /// it is not live there.
    pub fn remove(&self, l: &mut Stripe<'_>, idx: u32) -> bool {
        let Some(r) = self.raw(idx) else {
            return false;
        };
        // SAFETY: checked to belong to the locked stripe before any write.
        let r = unsafe { &mut *r };
        let bucket = r.links().bucket;
        if bucket == NIL || bucket >= self.nbuckets || self.stripe_of(bucket) != l.stripe {
            return false;
        }
        // SAFETY: the bucket is locked.
        unsafe {
            let mut link = self.head(bucket);
            let mut hops = 0;
            while *link != NIL && hops <= self.capacity() {
                if *link == idx {
                    *link = r.links().next;
                    break;
                }
                match self.raw(*link) {
                    Some(p) => link = &raw mut (*p).links_mut().next,
                    None => break,
                }
                hops += 1;
            }
        }
        *r.links_mut() = Links::FREE;
        self.free.push(idx);
        true
    }

    /// Relinks every chain of a stripe from the records, after a process
    /// died holding its lock mid-update.
    fn rebuild_stripe(&self, stripe: u32) {
        let mut b = stripe;
        while b < self.nbuckets {
            // SAFETY: the stripe is locked by the caller.
            unsafe { *self.head(b) = NIL };
            b += self.nlocks;
        }
        for i in 0..self.capacity() as u32 {
            let Some(p) = self.raw(i) else { break };
            // SAFETY: records of this stripe are ours under its lock;
            // others' `bucket` fields are only compared.
            unsafe {
                let bucket = (*p).links().bucket;
                if bucket != NIL && bucket < self.nbuckets && self.stripe_of(bucket) == stripe {
                    (*p).links_mut().next = *self.head(bucket);
                    *self.head(bucket) = i;
                }
            }
        }
        log::warn!(
            "{}: a process died holding stripe {stripe}'s lock; its chains were rebuilt",
            self.name
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Region;

    struct Rec {
        links: Links,
        value: u32,
    }

    impl Linked for Rec {
        fn links(&self) -> &Links {
            &self.links
        }
        fn links_mut(&mut self) -> &mut Links {
            &mut self.links
        }
    }

    fn chains(n: usize) -> (Region, Chains<Rec>) {
        let r = Region::create(1 << 20).unwrap();
        let c = Chains::carve(&mut r.carver(), n, "test", || Rec {
            links: Links::FREE,
            value: 0,
        })
        .unwrap();
        (r, c)
    }

    #[test]
    fn insert_walk_remove() {
        let (_r, c) = chains(8);
        let b = c.bucket_of(42);
        let mut l = c.lock(b);
        let a = c.insert(&mut l, b, |r| r.value = 1).unwrap();
        let z = c.insert(&mut l, b, |r| r.value = 2).unwrap();
        assert_eq!(c.chain(&l, b).collect::<Vec<_>>(), vec![z, a]);
        assert_eq!(c.get(&l, a).unwrap().value, 1);
        assert_eq!(c.live(), 2);
        assert!(c.remove(&mut l, z));
        assert!(!c.remove(&mut l, z), "already free");
        assert_eq!(c.chain(&l, b).collect::<Vec<_>>(), vec![a]);
        assert!(c.get(&l, z).is_none());
    }

    #[test]
    fn full_is_none_and_capacity_comes_back() {
        let (_r, c) = chains(2);
        let mut l = c.lock(0);
        let x = c.insert(&mut l, 0, |_| {}).unwrap();
        c.insert(&mut l, 0, |_| {}).unwrap();
        assert!(c.insert(&mut l, 0, |_| {}).is_none());
        c.remove(&mut l, x);
        assert!(c.insert(&mut l, 0, |_| {}).is_some());
    }

    #[test]
    fn rebuild_relinks_from_the_records() {
        let (_r, c) = chains(8);
        let mut l = c.lock(3);
        let a = c.insert(&mut l, 3, |_| {}).unwrap();
        let b = c.insert(&mut l, 3, |_| {}).unwrap();
        // A dead holder left the head pointing nowhere.
        unsafe { *c.head(3) = NIL };
        c.rebuild_stripe(3);
        let mut got: Vec<u32> = c.chain(&l, 3).collect();
        got.sort();
        assert_eq!(got, vec![a, b]);
    }
}
