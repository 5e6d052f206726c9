//! The timer process's orderly stop: on SIGTERM its helper threads that
//! hold queued database writes (usrloc's db_mode 1 writer, acc's writer)
//! write what is queued, then the process exits, within the master's
//! 1.5 s before SIGKILL. What a gone database keeps queued then is lost,
//! and said.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static STOPPING: AtomicBool = AtomicBool::new(false);
/// Helpers with writes still to make.
static DRAINING: AtomicUsize = AtomicUsize::new(0);

/// How long the timer process waits for its writers.
pub const DRAIN_FOR: Duration = Duration::from_millis(1_200);

extern "C" fn on_term(_: libc::c_int) {
    STOPPING.store(true, Ordering::SeqCst);
}

/// In the timer process: SIGTERM asks for the stop rather than killing.
pub fn install() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let act = SigAction::new(
        SigHandler::Handler(on_term),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only stores to an atomic.
        let _ = unsafe { sigaction(sig, &act) };
    }
}

pub fn stopping() -> bool {
    STOPPING.load(Ordering::Relaxed)
}

/// A writer with a queue: counted until it says it is done.
pub struct Writer(());

impl Writer {
    pub fn register() -> Writer {
        DRAINING.fetch_add(1, Ordering::SeqCst);
        Writer(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        DRAINING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// In the timer process once stopping: waits (bounded) for the writers,
/// then exits.
pub fn finish() -> ! {
    let deadline = Instant::now() + DRAIN_FOR;
    while DRAINING.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::process::exit(0)
}
