//! A thread that writes what processes queue in shared memory (a `Ring`)
//! to a database, in batches of one transaction each and in order: usrloc's
//! db_mode 1 changes and acc's records. A database that is slow or gone
//! only fills the queue: the batch in hand waits and is written when it
//! is back. On SIGTERM it writes what is queued, then returns.

use std::time::Duration;

use rser_shm::ring::{Pop, Ring};

use crate::modules::def::Counts;
use crate::server::log_limit::{LogLimit, held_text};

/// Records written in one transaction, at most.
const BATCH: usize = 256;
/// After a failure: the database back is written within this.
const RETRY: Duration = Duration::from_millis(500);

/// Who writes (for log lines and counters).
pub struct Writer<'a> {
    /// The module, and what its records are ("changes", "records").
    pub module: &'static str,
    pub what: &'static str,
    pub counts: &'a Counts<'a>,
    /// Counter indices: records lost in the queue, written, failed writes.
    pub lost: usize,
    pub written: usize,
    pub errors: usize,
    /// How long to sleep when the queue is empty.
    pub idle: Duration,
}

/// Drains `queue` forever (until the process stops): records decoded by
/// `decode`, written by `write` on the connection `open` makes.
pub fn run<C, R>(
    queue: &Ring,
    w: &Writer<'_>,
    decode: impl Fn(&[u8]) -> Option<R>,
    mut open: impl FnMut() -> Result<C, String>,
    mut write: impl FnMut(&mut C, &[R]) -> Result<usize, String>,
) {
    let mut db: Option<C> = None;
    let mut batch: Vec<R> = Vec::with_capacity(BATCH);
    let mut buf = Vec::new();
    let mut err_log = LogLimit::default();
    let _draining = crate::server::drain::Writer::register();
    loop {
        let now = crate::server::worker::now_ms();
        let stopping = crate::server::drain::stopping();
        while batch.len() < BATCH {
            match queue.pop(&mut buf, now) {
                Pop::Record => match decode(&buf) {
                    Some(r) => batch.push(r),
                    None => w.counts.add(w.lost, 1),
                },
                Pop::Lost => w.counts.add(w.lost, 1),
                Pop::Empty => break,
            }
        }
        if batch.is_empty() {
            if stopping {
                return; // all written
            }
            std::thread::sleep(w.idle);
            continue;
        }
        let r = match &mut db {
            Some(c) => write(c, &batch),
            None => open().map(|c| {
                db = Some(c);
                0
            }),
        };
        match r {
            Ok(0) => {}
            Ok(n) => {
                w.counts.add(w.written, n as u64);
                batch.clear();
            }
            Err(e) => {
                w.counts.add(w.errors, 1);
                if let Some(held) = err_log.allow(now) {
                    log::error!(
                        "{}: {} {} wait for the database: {e}{}",
                        w.module,
                        batch.len(),
                        w.what,
                        held_text(held)
                    );
                }
                db = None;
                if stopping {
                    log::error!(
                        "{}: stopping: {} writes in hand (and the rest of the queue) not taken by the database: {e}",
                        w.module,
                        batch.len()
                    );
                    return;
                }
                std::thread::sleep(RETRY);
            }
        }
    }
}
