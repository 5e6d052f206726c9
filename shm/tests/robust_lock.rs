//! A process killed while holding a lock must not block the others: the
//! next locker recovers the lock. One test per file: it forks.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, fork};
use rser_shm::{Counters, Region, RobustMutex};

#[test]
fn a_lock_held_by_a_killed_process_is_recovered() {
    let region = Region::create(1 << 16).unwrap();
    let mut carver = region.carver();
    let m = carver.carve::<RobustMutex>(1).unwrap();
    let counters = Counters::carve(&mut carver, 2, &["locked"]).unwrap();
    unsafe { RobustMutex::init(m).unwrap() };
    let mutex: &RobustMutex = unsafe { &*m };

    // SAFETY: the child only locks, bumps an atomic and sleeps.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let guard = mutex.lock().unwrap();
            counters.add(1, 0, 1);
            std::mem::forget(guard);
            std::thread::sleep(Duration::from_secs(30));
            unsafe { libc::_exit(0) };
        }
        ForkResult::Parent { child } => {
            let start = Instant::now();
            while counters.get(1, 0) == 0 {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "child never locked"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            kill(child, Signal::SIGKILL).unwrap();
            waitpid(child, None).unwrap();
            let guard = mutex.lock().unwrap();
            assert!(guard.recovered, "the dead owner is reported");
            drop(guard);
            let guard = mutex.lock().unwrap();
            assert!(!guard.recovered, "consistent again");
            assert_eq!(counters.total(0), 1);
        }
    }
}
