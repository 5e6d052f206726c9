//! The region: a memfd mapped shared, a layout header, and a carver that
//! hands out aligned pieces of it at start-up.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::mem::{align_of, size_of};

use memmap2::{MmapMut, MmapOptions};
use nix::sys::memfd::{MFdFlags, memfd_create};

/// "RSERSHM1": marks a region laid out by this code.
pub const MAGIC: u64 = u64::from_be_bytes(*b"RSERSHM1");
/// Bumped whenever the layout of any table changes.
pub const LAYOUT_VERSION: u32 = 1;

/// The first bytes of every region.
#[repr(C)]
pub struct Header {
    pub magic: u64,
    pub version: u32,
    pub _pad: u32,
    pub size_bytes: u64,
}

/// The shared-memory region. Mapped once in the master; children forked
/// afterwards see it at the same address.
pub struct Region {
    map: MmapMut,
    _file: File,
}

impl Region {
    /// Creates a zero-filled region of `size_bytes`, with its header.
    pub fn create(size_bytes: usize) -> io::Result<Region> {
        if size_bytes < size_of::<Header>() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "shared memory region too small for its header",
            ));
        }
        let name: &CStr = c"rser-shm";
        let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC).map_err(io::Error::from)?;
        let file = File::from(fd);
        file.set_len(size_bytes as u64)?;
        // SAFETY: the file is ours alone (a fresh memfd) and is never
        // truncated while mapped.
        let map = unsafe { MmapOptions::new().len(size_bytes).map_mut(&file)? };
        let region = Region { map, _file: file };
        // SAFETY: the map is at least a Header long and page-aligned.
        unsafe {
            region.base().cast::<Header>().write(Header {
                magic: MAGIC,
                version: LAYOUT_VERSION,
                _pad: 0,
                size_bytes: size_bytes as u64,
            });
        }
        Ok(region)
    }

    pub fn base(&self) -> *mut u8 {
        self.map.as_ptr().cast_mut()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn header(&self) -> &Header {
        // SAFETY: written in create(), never moved.
        unsafe { &*self.base().cast::<Header>() }
    }

    /// A carver over the space after the header.
    pub fn carver(&self) -> Carver<'_> {
        Carver {
            region: self,
            next: size_of::<Header>(),
        }
    }
}

/// Hands out aligned, zeroed pieces of a region, front to back.
pub struct Carver<'r> {
    region: &'r Region,
    next: usize,
}

impl Carver<'_> {
    /// Reserves room for `count` values of `T`; `None` when the region is
    /// too small. The memory is zeroed (a fresh memfd), not initialised as
    /// `T`: the caller initialises it before use.
    pub fn carve<T>(&mut self, count: usize) -> Option<*mut T> {
        // Each piece on its own cache lines: no false sharing between them.
        let align = align_of::<T>().max(crate::CACHE_PAD);
        let start = self.next.checked_add(align - 1)? / align * align;
        let end = start.checked_add(size_of::<T>().checked_mul(count)?)?;
        if end > self.region.len() {
            return None;
        }
        self.next = end;
        // SAFETY: start..end is inside the map.
        Some(unsafe { self.region.base().add(start).cast::<T>() })
    }

    /// `len` values of `T` made by `init(i)`, as a slice every process
    /// mapping the region shares; `None` when the region is too small.
    /// For what processes share without a lock: atomics, plain `Sync` data.
    pub fn slice<T: Sync>(
        &mut self,
        len: usize,
        mut init: impl FnMut(usize) -> T,
    ) -> Option<Slice<T>> {
        let ptr = self.carve::<T>(len)?;
        for i in 0..len {
            // SAFETY: `ptr` has room for `len` values of `T`, fresh and not
            // yet shared with anyone.
            unsafe { ptr.add(i).write(init(i)) };
        }
        Some(Slice { ptr, len })
    }

    /// One value of `T`, shared as [`Carver::slice`]'s are.
    pub fn one<T: Sync>(&mut self, value: T) -> Option<Slice<T>> {
        let mut v = Some(value);
        self.slice(1, |_| v.take().expect("one value"))
    }

    /// Bytes used so far, header included.
    pub fn used(&self) -> usize {
        self.next
    }
}

/// Values carved once from a region and shared by every process that
/// maps it: `&[T]` through `Deref`, with no `unsafe` for its users.
///
/// The region is mapped for the whole life of the server (and of any test
/// that carves it) and never unmapped while its slices are used; that is
/// the invariant the `Deref` relies on.
pub struct Slice<T> {
    ptr: *mut T,
    len: usize,
}

impl<T> Clone for Slice<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Slice<T> {}

// SAFETY: the values are `Sync` (atomics or read-only data) and live in a
// mapping that outlives every user.
unsafe impl<T: Sync> Send for Slice<T> {}
unsafe impl<T: Sync> Sync for Slice<T> {}

impl<T> std::ops::Deref for Slice<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialised values at `ptr`, in a live mapping.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_carving() {
        let r = Region::create(1 << 16).unwrap();
        assert_eq!(r.header().magic, MAGIC);
        assert_eq!(r.header().size_bytes, 1 << 16);
        let mut c = r.carver();
        let a = c.carve::<u64>(10).unwrap();
        let b = c.carve::<u8>(1).unwrap();
        assert_eq!(a as usize % 64, 0);
        assert!(b as usize >= a as usize + 80);
        assert!(c.carve::<u8>(1 << 20).is_none());
    }
}
