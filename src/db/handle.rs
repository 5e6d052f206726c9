//! A worker's way to its database: the queries run on a thread of the
//! worker's own (one connection per process, opened on first use, opened
//! again after a failure), and the worker waits for an answer at most
//! `db_timeout`, so a slow or gone server never stalls the packet path.
//! A circuit breaker (`Breaker`) then fails queries at once while the
//! server is known down, letting one through after a backoff that
//! doubles up to [`BACKOFF_MAX_MS`].

use std::time::Duration;

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender, TrySendError};

use std::any::Any;

use super::conn::{Conn, DbError, Value};
use super::url::DbUrl;

/// The first wait after a failure, and the longest.
pub const BACKOFF_MIN_MS: u64 = 100;
/// Short: a server back is used again within half a second.
pub const BACKOFF_MAX_MS: u64 = 500;

/// Whether the server may be asked now: pure code on an injected clock.
#[derive(Debug, Default, Clone)]
pub struct Breaker {
    failures: u32,
    open_until_ms: u64,
}

impl Breaker {
    /// False while the server is known down (fail fast).
    pub fn allow(&self, now_ms: u64) -> bool {
        now_ms >= self.open_until_ms
    }

    /// A query failed or timed out: no query until the backoff passed
    /// (then one is tried; its failure doubles the backoff).
    pub fn failed(&mut self, now_ms: u64) -> u64 {
        let wait = (BACKOFF_MIN_MS << self.failures.min(16)).min(BACKOFF_MAX_MS);
        self.failures = self.failures.saturating_add(1);
        self.open_until_ms = now_ms + wait;
        wait
    }

    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.open_until_ms = 0;
    }

    /// Whether the last query failed.
    pub fn is_down(&self) -> bool {
        self.failures > 0
    }
}

/// A connection a handle's thread holds: opened from its URL within the
/// timeout (SQL's `Conn`, Redis's `RedisConn`).
pub trait Connect: Sized + 'static {
    type Url: Clone + std::fmt::Display + Send + 'static;
    fn connect(url: &Self::Url, timeout: Duration) -> Result<Self, DbError>;
}

impl Connect for Conn {
    type Url = DbUrl;
    fn connect(url: &DbUrl, timeout: Duration) -> Result<Conn, DbError> {
        Conn::open(url, timeout)
    }
}

impl Connect for super::redis::RedisConn {
    type Url = super::redis::RedisUrl;
    fn connect(url: &Self::Url, timeout: Duration) -> Result<Self, DbError> {
        super::redis::RedisConn::open(url, timeout)
    }
}

type Reply = Result<Box<dyn Any + Send>, DbError>;
/// What the worker asks of its thread: work on the connection, run again
/// once on a fresh connection if the kept one failed.
type Task<C> = Box<dyn FnMut(&mut C) -> Reply + Send>;

struct Job<C> {
    seq: u64,
    task: Task<C>,
}

struct Answer {
    seq: u64,
    result: Reply,
}

struct Link<C> {
    jobs: Sender<Job<C>>,
    answers: Receiver<Answer>,
}

/// One process's bounded access to one database (`C`: its connection).
pub struct Handle<C: Connect = Conn> {
    url: C::Url,
    timeout: Duration,
    link: Option<Link<C>>,
    breaker: Breaker,
    seq: u64,
    /// The query given up on, while its thread is still on it: a slow
    /// database then costs the worker one timeout, not one per query.
    abandoned: Option<u64>,
    /// Inline: the work runs in the caller's thread on a connection kept
    /// here, every wait bounded by the client's own socket timeouts (for
    /// a server that answers in well under a millisecond, Redis, where a
    /// thread's two hand-offs would cost more than the query).
    inline: Option<Option<C>>,
}

/// Why a query did not run: the server known down, the thread still on a
/// query that timed out, or the query's own failure or timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Failing fast: the breaker is open.
    Down,
    Failed(DbError),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Down => f.write_str("database known down, not asked"),
            Refused::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl Handle<Conn> {
    /// The rows `sql` returns, waiting at most the timeout.
    pub fn query(
        &mut self,
        sql: &str,
        params: &[Value],
        now_ms: u64,
    ) -> Result<Vec<Vec<Value>>, Refused> {
        let (sql, params) = (sql.to_string(), params.to_vec());
        self.call(move |c: &mut Conn| c.query(&sql, &params), now_ms)
    }

    /// Statements run in one transaction (all or none), waiting at most
    /// the timeout for the whole.
    pub fn transaction(
        &mut self,
        stmts: Vec<(String, Vec<Value>)>,
        now_ms: u64,
    ) -> Result<(), Refused> {
        self.call(move |c: &mut Conn| transaction(c, &stmts), now_ms)
    }
}

/// Statements in one transaction on `c`.
fn transaction(c: &mut Conn, stmts: &[(String, Vec<Value>)]) -> Result<(), DbError> {
    if let [(sql, params)] = stmts {
        return c.execute(sql, params).map(|_| ());
    }
    c.transaction(
        |e| e,
        |c| {
            stmts
                .iter()
                .try_for_each(|(sql, params)| c.execute(sql, params).map(|_| ()))
        },
    )
}

impl<C: Connect> Handle<C> {
    pub fn new(url: C::Url, timeout: Duration) -> Handle<C> {
        Handle {
            url,
            timeout,
            link: None,
            breaker: Breaker::default(),
            seq: 0,
            abandoned: None,
            inline: None,
        }
    }

    /// A handle whose work runs in the caller's thread (see `inline`).
    pub fn inline(url: C::Url, timeout: Duration) -> Handle<C> {
        Handle {
            inline: Some(None),
            ..Handle::new(url, timeout)
        }
    }

    /// `work` run on the connection by the handle's thread, waiting at
    /// most the timeout; failing fast while the server is known down.
    /// `work` may run twice: again on a new connection when the kept one
    /// failed (it died unseen).
    pub fn call<R: Send + 'static>(
        &mut self,
        mut work: impl FnMut(&mut C) -> Result<R, DbError> + Send + 'static,
        now_ms: u64,
    ) -> Result<R, Refused> {
        if !self.breaker.allow(now_ms) {
            return Err(Refused::Down);
        }
        let task: Task<C> = Box::new(move |c: &mut C| work(c).map(|r| Box::new(r) as _));
        let result = self.run(task);
        match &result {
            Ok(_) => self.breaker.succeeded(),
            Err(_) => {
                self.breaker.failed(now_ms);
            }
        }
        result
            .map(|b| *b.downcast::<R>().expect("a task answers its own type"))
            .map_err(Refused::Failed)
    }

    fn run(&mut self, mut task: Task<C>) -> Reply {
        if let Some(conn) = &mut self.inline {
            return run_job(&self.url, self.timeout, conn, &mut task);
        }
        let url = self.url.clone();
        let link = match &self.link {
            Some(l) => l,
            None => self.link.insert(spawn::<C>(url.clone(), self.timeout)?),
        };
        // Answers to queries given up on, left in the channel.
        while let Ok(a) = link.answers.try_recv() {
            if self.abandoned == Some(a.seq) {
                self.abandoned = None;
            }
        }
        if let Some(seq) = self.abandoned {
            return Err(DbError(format!(
                "database {url}: still on query {seq}, which timed out"
            )));
        }
        self.seq += 1;
        let job = Job {
            seq: self.seq,
            task,
        };
        match link.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(DbError(format!("database {url}: its thread is busy")));
            }
            Err(TrySendError::Disconnected(_)) => {
                self.link = None;
                return Err(DbError(format!("database {url}: its thread ended")));
            }
        }
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            match link.answers.recv_deadline(deadline) {
                Ok(a) if a.seq == self.seq => return a.result,
                Ok(_) => continue, // a late answer to a query given up on
                Err(RecvTimeoutError::Timeout) => {
                    self.abandoned = Some(self.seq);
                    return Err(DbError(format!(
                        "database {url}: no answer within {} ms",
                        self.timeout.as_millis()
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.link = None;
                    return Err(DbError(format!("database {url}: its thread ended")));
                }
            }
        }
    }
}

/// The thread that holds the connection; it ends when its `Handle` goes.
fn spawn<C: Connect>(url: C::Url, timeout: Duration) -> Result<Link<C>, DbError> {
    // One job in hand and none waiting: a worker that gave up on a query
    // fails the next one at once rather than queueing behind it.
    let (jobs, job_rx) = channel::bounded::<Job<C>>(1);
    let (answer_tx, answers) = channel::bounded::<Answer>(2);
    std::thread::Builder::new()
        .name("rser-db".into())
        .spawn(move || {
            let mut conn: Option<C> = None;
            for mut job in job_rx {
                let result = run_job(&url, timeout, &mut conn, &mut job.task);
                if result.is_err() {
                    conn = None; // opened again for the next job
                }
                // Never full: the worker takes stale answers before it
                // asks again, and at most two jobs are outstanding.
                let _ = answer_tx.try_send(Answer {
                    seq: job.seq,
                    result,
                });
            }
        })
        .map(|_| Link { jobs, answers })
        .map_err(|e| DbError(format!("database thread: {e}")))
}

fn run_job<C: Connect>(
    url: &C::Url,
    timeout: Duration,
    conn: &mut Option<C>,
    task: &mut Task<C>,
) -> Reply {
    // A connection kept from before may have died unseen (the server
    // restarted, idle connections cut): that failure earns one new
    // connection and one more try, not a 500.
    if let Some(c) = conn {
        match task(c) {
            Ok(r) => return Ok(r),
            Err(_) => *conn = None,
        }
    }
    let c = conn.insert(C::connect(url, timeout)?);
    task(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_backs_off_doubling_and_closes_on_success() {
        let mut b = Breaker::default();
        assert!(b.allow(0));
        assert_eq!(b.failed(1_000), 100);
        assert!(!b.allow(1_050));
        assert!(b.allow(1_100), "one query tried after the backoff");
        assert_eq!(b.failed(1_100), 200);
        assert_eq!(b.failed(1_300), 400);
        assert_eq!(b.failed(1_700), 500);
        for _ in 0..10 {
            b.failed(2_000);
        }
        assert_eq!(b.failed(10_000), BACKOFF_MAX_MS);
        b.succeeded();
        assert!(b.allow(10_001) && !b.is_down());
    }

    /// A server that accepts and never answers: the first query costs the
    /// timeout, the next ones fail at once while the thread is still on
    /// it (the breaker's backoff passed or not).
    #[test]
    fn a_silent_server_costs_one_timeout_not_one_per_query() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        // PostgreSQL's client waits for the server's first word unbounded:
        // the thread stays on it, as on a hung server.
        let url = DbUrl::parse(&format!("postgres://u:p@{addr}/db")).unwrap();
        let mut h = Handle::new(url, Duration::from_millis(200));
        let t = std::time::Instant::now();
        assert!(h.query("SELECT 1", &[], 0).is_err());
        assert!(t.elapsed() >= Duration::from_millis(200));
        let t = std::time::Instant::now();
        for now in [1_000, 2_000, 3_000] {
            let e = h.query("SELECT 1", &[], now).unwrap_err();
            assert!(e.to_string().contains("timed out"), "{e}");
        }
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        drop(silent);
    }

    #[test]
    fn an_unreachable_server_fails_within_the_timeout_then_fast() {
        // A port nothing listens on: refused at once.
        let url = DbUrl::parse("mysql://u:p@127.0.0.1:9/db").unwrap();
        let mut h = Handle::new(url, Duration::from_millis(300));
        let t = std::time::Instant::now();
        let e = h.query("SELECT 1", &[], 0).unwrap_err();
        assert!(matches!(e, Refused::Failed(_)), "{e}");
        assert!(!e.to_string().contains(":p@"), "no password: {e}");
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(h.query("SELECT 1", &[], 50), Err(Refused::Down));
    }
}
