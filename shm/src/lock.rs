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
    pub fn lock(&self) -> io::Result<LockGuard<'_>> {
        let m = self.inner.get();
        // SAFETY: initialised by init() before the region was shared.
        let rc = unsafe { libc::pthread_mutex_lock(m) };
        match rc {
            0 => Ok(LockGuard {
                mutex: self,
                recovered: false,
            }),
            libc::EOWNERDEAD => {
                // SAFETY: we own it now; marking it consistent is what
                // makes it usable again.
                check(unsafe { libc::pthread_mutex_consistent(m) })?;
                Ok(LockGuard {
                    mutex: self,
                    recovered: true,
                })
            }
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }
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
