//! Counters in shared memory: one row of `u64`s per worker slot, so workers
//! never contend on a counter; readers sum the rows. Rows are padded to
//! [`CACHE_PAD`](crate::CACHE_PAD), so two processes never write one
//! cache line.

use std::sync::atomic::{AtomicU64, Ordering};

use super::region::{Carver, Slice};

pub struct Counters {
    cells: Slice<AtomicU64>,
    slots: usize,
    /// Cells per row: the counters, padded to a whole cache line.
    stride: usize,
    names: &'static [&'static str],
}

impl Counters {
    /// Carves `slots` rows of `names.len()` counters.
    pub fn carve(
        carver: &mut Carver<'_>,
        slots: usize,
        names: &'static [&'static str],
    ) -> Option<Counters> {
        let per_line = (crate::CACHE_PAD / size_of::<AtomicU64>()).max(1);
        let stride = names.len().div_ceil(per_line).max(1) * per_line;
        let cells = carver.slice(slots * stride, |_| AtomicU64::new(0))?;
        Some(Counters {
            cells,
            slots,
            stride,
            names,
        })
    }

    fn cell(&self, slot: usize, counter: usize) -> &AtomicU64 {
        assert!(slot < self.slots && counter < self.names.len());
        &self.cells[slot * self.stride + counter]
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
