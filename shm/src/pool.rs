//! A pool of fixed-size blocks for variable-length data (stored requests
//! and replies): a value is a chain of blocks, so the pool never
//! fragments, and running out is a clean `None`, never a crash.
//!
//! The free list is a [`FreeList`], lock-free, so a process killed in the
//! middle of an allocation holds no lock: the worst it leaves is blocks
//! that no chain and no free list reaches, which [`Pool::free_blocks`]
//! makes visible.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::freelist::{FreeList, NIL};
use crate::region::Carver;

/// Bytes per block: small enough that a 900-byte INVITE wastes at most one
/// part-filled block, large enough that a chain stays short.
pub const BLOCK: usize = 128;

/// A stored byte string: the first block of its chain and its length.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    first: u32,
    len: u32,
}

impl Chain {
    /// The empty value: no blocks.
    pub const EMPTY: Chain = Chain { first: NIL, len: 0 };

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.first == NIL
    }
}

impl Default for Chain {
    fn default() -> Self {
        Chain::EMPTY
    }
}

/// The pool's view of shared memory; copied into every process.
#[derive(Clone, Copy)]
pub struct Pool {
    /// Free blocks; a block's link is also the next block of its chain.
    list: FreeList,
    blocks: *mut [u8; BLOCK],
    count: u32,
}

// SAFETY: the free list is atomic; a block's bytes belong to whoever holds
// its chain (the owner of the transaction slot that refers to it, under
// that slot's lock).
unsafe impl Send for Pool {}
unsafe impl Sync for Pool {}

impl Pool {
    /// Carves `count` blocks, all free.
    pub fn carve(carver: &mut Carver<'_>, count: usize) -> Option<Pool> {
        let list = FreeList::carve(carver, count)?;
        let blocks = carver.carve::<[u8; BLOCK]>(count)?;
        Some(Pool {
            list,
            blocks,
            count: count as u32,
        })
    }

    /// Bytes of shared memory each block costs, its link included.
    pub const BYTES_PER_BLOCK: usize = BLOCK + 4;

    fn link(&self, i: u32) -> &AtomicU32 {
        self.list.link(i)
    }

    fn block(&self, i: u32) -> *mut u8 {
        assert!(i < self.count);
        // SAFETY: i < count.
        unsafe { self.blocks.add(i as usize).cast::<u8>() }
    }

    pub fn capacity(&self) -> usize {
        self.count as usize
    }

    pub fn free_blocks(&self) -> usize {
        self.list.free()
    }

    /// Blocks a value of `len` bytes takes.
    pub fn blocks_for(len: usize) -> usize {
        len.div_ceil(BLOCK)
    }

    /// Stores `data`; `None` when the pool has too few free blocks (what
    /// was taken is given back).
    pub fn store(&self, data: &[u8]) -> Option<Chain> {
        let len = u32::try_from(data.len()).ok()?;
        if data.is_empty() {
            return Some(Chain::EMPTY);
        }
        let mut first = NIL;
        let mut prev = NIL;
        for (taken, piece) in data.chunks(BLOCK).enumerate() {
            let Some(b) = self.list.pop() else {
                if first != NIL {
                    self.list.push_chain(first, prev, taken as u32);
                }
                return None;
            };
            // SAFETY: the block is ours (just popped); piece fits in it.
            unsafe { std::ptr::copy_nonoverlapping(piece.as_ptr(), self.block(b), piece.len()) };
            self.link(b).store(NIL, Ordering::Relaxed);
            if prev == NIL {
                first = b;
            } else {
                self.link(prev).store(b, Ordering::Relaxed);
            }
            prev = b;
        }
        Some(Chain { first, len })
    }

    /// Appends the stored bytes to `out`. A chain damaged by a process that
    /// died while writing it reads short rather than out of bounds.
    pub fn read(&self, chain: Chain, out: &mut Vec<u8>) {
        let mut left = chain.len as usize;
        let mut b = chain.first;
        let mut hops = 0;
        while left > 0 && b < self.count && hops < self.count {
            let n = left.min(BLOCK);
            // SAFETY: b < count; the chain's owner holds it, so no one
            // else writes these bytes.
            out.extend_from_slice(unsafe { std::slice::from_raw_parts(self.block(b), n) });
            left -= n;
            b = self.link(b).load(Ordering::Acquire);
            hops += 1;
        }
    }

    /// Gives a chain's blocks back. The chain must not be used afterwards.
    pub fn free(&self, chain: Chain) {
        if chain.first >= self.count {
            return;
        }
        let need = Self::blocks_for(chain.len as usize) as u32;
        let mut last = chain.first;
        for _ in 1..need {
            let n = self.link(last).load(Ordering::Acquire);
            if n >= self.count {
                break;
            }
            last = n;
        }
        let n = need.max(1);
        self.list.push_chain(chain.first, last, n);
    }

    /// Replaces `*slot` with `data`, freeing the old chain only once the
    /// new one is stored. False (and `*slot` unchanged) when out of blocks.
    pub fn replace(&self, slot: &mut Chain, data: &[u8]) -> bool {
        match self.store(data) {
            Some(c) => {
                let old = std::mem::replace(slot, c);
                self.free(old);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Region;

    fn pool(blocks: usize) -> (Region, Pool) {
        let r = Region::create(1 << 20).unwrap();
        let p = Pool::carve(&mut r.carver(), blocks).unwrap();
        (r, p)
    }

    #[test]
    fn store_read_free() {
        let (_r, p) = pool(16);
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let c = p.store(&data).unwrap();
        assert_eq!(p.free_blocks(), 16 - 8);
        let mut out = Vec::new();
        p.read(c, &mut out);
        assert_eq!(out, data);
        p.free(c);
        assert_eq!(p.free_blocks(), 16);
    }

    #[test]
    fn exhaustion_gives_back_what_it_took() {
        let (_r, p) = pool(4);
        let a = p.store(&[1; 300]).unwrap(); // 3 blocks
        assert!(p.store(&[2; 300]).is_none());
        assert_eq!(p.free_blocks(), 1);
        let b = p.store(&[3; 100]).unwrap();
        assert_eq!(p.free_blocks(), 0);
        p.free(a);
        p.free(b);
        assert_eq!(p.free_blocks(), 4);
        let mut out = Vec::new();
        let c = p.store(&[7; 512]).unwrap();
        p.read(c, &mut out);
        assert_eq!(out, vec![7; 512]);
    }

    #[test]
    fn empty_and_replace() {
        let (_r, p) = pool(4);
        let mut c = p.store(b"").unwrap();
        assert!(c.is_empty());
        p.free(c);
        assert!(p.replace(&mut c, b"hello"));
        assert!(!p.replace(&mut c, &[0; 1000]));
        let mut out = Vec::new();
        p.read(c, &mut out);
        assert_eq!(out, b"hello");
        assert_eq!(p.free_blocks(), 3);
    }

    #[test]
    fn shared_across_fork() {
        let (_r, p) = pool(64);
        // SAFETY: the test process is single-threaded here; the child only
        // touches the pool and exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                for _ in 0..1000 {
                    let c = p.store(&[9; 200]).unwrap();
                    p.free(c);
                }
                let _ = p.store(&[1; 128]);
                std::process::exit(0);
            }
            nix::unistd::ForkResult::Parent { child } => {
                for _ in 0..1000 {
                    if let Some(c) = p.store(&[8; 300]) {
                        p.free(c);
                    }
                }
                nix::sys::wait::waitpid(child, None).unwrap();
                // The child kept one block.
                assert_eq!(p.free_blocks(), 63);
            }
        }
    }
}
