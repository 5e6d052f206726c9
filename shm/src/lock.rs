//! A process-shared robust mutex in shared memory (`pthread_mutex_t` with
//! `PTHREAD_PROCESS_SHARED` and `PTHREAD_MUTEX_ROBUST`). When its owner dies
//! the next locker gets it with [`LockGuard::recovered`] set, repairs what
//! the lock protects, and goes on.

use std::cell::UnsafeCell;
use std::io;

#[repr(C)]
pub struct RobustMutex {
    inner: UnsafeCell<libc::pthread_mutex_t>,
}

// SAFETY: the pthread mutex is made for concurrent use across threads and
// (process-shared) across processes.
unsafe impl Sync for RobustMutex {}
unsafe impl Send for RobustMutex {}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

impl RobustMutex {
    /// Initialises a mutex in place.
    ///
    /// # Safety
    /// `this` points to writable memory for a `RobustMutex` that no one is
    /// using yet.
    pub unsafe fn init(this: *mut RobustMutex) -> io::Result<()> {
        unsafe {
            let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
            check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))?;
            let attr_ptr = attr.as_mut_ptr();
            let result = check(libc::pthread_mutexattr_setpshared(
                attr_ptr,
                libc::PTHREAD_PROCESS_SHARED,
            ))
            .and_then(|()| {
                check(libc::pthread_mutexattr_setrobust(
                    attr_ptr,
                    libc::PTHREAD_MUTEX_ROBUST,
                ))
            })
            .and_then(|()| {
                check(libc::pthread_mutex_init(
                    UnsafeCell::raw_get(&raw const (*this).inner),
                    attr_ptr,
                ))
            });
            libc::pthread_mutexattr_destroy(attr_ptr);
            result
        }
    }

    /// Locks. If the previous owner died holding it, the guard says so.
    /// A lock found held by another process first is counted ([`waits`]).
    pub fn lock(&self) -> io::Result<LockGuard<'_>> {
        let m = self.inner.get();
        // SAFETY: initialised by init() before the region was shared.
        let mut rc = unsafe { libc::pthread_mutex_trylock(m) };
        if rc == libc::EBUSY {
            WAITS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // SAFETY: as above.
            rc = unsafe { libc::pthread_mutex_lock(m) };
        }
        self.guard(rc)
    }

    /// Locks if no one holds it: `None` when held (not counted as a wait:
    /// the caller has other work).
    pub fn try_lock(&self) -> io::Result<Option<LockGuard<'_>>> {
        // SAFETY: initialised by init() before the region was shared.
        let rc = unsafe { libc::pthread_mutex_trylock(self.inner.get()) };
        if rc == libc::EBUSY {
            return Ok(None);
        }
        self.guard(rc).map(Some)
    }

    fn guard(&self, rc: libc::c_int) -> io::Result<LockGuard<'_>> {
        match rc {
            0 => Ok(LockGuard {
                mutex: self,
                recovered: false,
            }),
            libc::EOWNERDEAD => {
                // SAFETY: we own it now; marking it consistent is what
                // makes it usable again.
                check(unsafe { libc::pthread_mutex_consistent(self.inner.get()) })?;
                Ok(LockGuard {
                    mutex: self,
                    recovered: true,
                })
            }
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// Locks this process found held by another and waited for, since it
/// started: how contended the stripes are.
static WAITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// This process's lock waits so far.
pub fn waits() -> u64 {
    WAITS.load(std::sync::atomic::Ordering::Relaxed)
}

pub struct LockGuard<'a> {
    mutex: &'a RobustMutex,
    /// The previous owner died holding the lock: what it protects may be
    /// half-updated and must be checked or reset.
    pub recovered: bool,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: we hold the lock.
        unsafe {
            libc::pthread_mutex_unlock(self.mutex.inner.get());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lock found held is waited for and counted.
    #[test]
    fn a_held_lock_is_counted_as_a_wait() {
        let m: &'static mut std::mem::MaybeUninit<RobustMutex> =
            Box::leak(Box::new(std::mem::MaybeUninit::uninit()));
        // SAFETY: fresh memory nobody else uses.
        unsafe { RobustMutex::init(m.as_mut_ptr()) }.unwrap();
        // SAFETY: initialised just above.
        let m: &'static RobustMutex = unsafe { m.assume_init_ref() };
        let before = waits();
        let held = m.lock().unwrap();
        let waiter = std::thread::spawn(move || {
            let g = m.lock().unwrap();
            drop(g);
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(held);
        waiter.join().unwrap();
        assert!(waits() > before, "the second locker waited");
    }
}
