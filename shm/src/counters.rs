//! Counters in shared memory: one row of `u64`s per worker slot, so workers
//! never contend on a counter; readers sum the rows.

use std::sync::atomic::{AtomicU64, Ordering};

use super::region::Carver;

pub struct Counters {
    cells: *const AtomicU64,
    slots: usize,
    names: &'static [&'static str],
}

// SAFETY: the cells are atomics in a region that outlives every user.
unsafe impl Send for Counters {}
unsafe impl Sync for Counters {}

impl Counters {
    /// Carves `slots` rows of `names.len()` counters.
    pub fn carve(
        carver: &mut Carver<'_>,
        slots: usize,
        names: &'static [&'static str],
    ) -> Option<Counters> {
        let cells = carver.carve::<AtomicU64>(slots * names.len())?;
        // Zeroed memory is a valid AtomicU64 of 0.
        Some(Counters {
            cells,
            slots,
            names,
        })
    }

    fn cell(&self, slot: usize, counter: usize) -> &AtomicU64 {
        assert!(slot < self.slots && counter < self.names.len());
        // SAFETY: in bounds (checked above) of the carved array.
        unsafe { &*self.cells.add(slot * self.names.len() + counter) }
    }

    pub fn add(&self, slot: usize, counter: usize, n: u64) {
        self.cell(slot, counter).fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self, slot: usize, counter: usize) -> u64 {
        self.cell(slot, counter).load(Ordering::Relaxed)
    }

    /// A counter summed over every slot.
    pub fn total(&self, counter: usize) -> u64 {
        (0..self.slots).map(|s| self.get(s, counter)).sum()
    }
}
