//! The databases behind `db_url`: SQLite (embedded, `sqlite:///path`),
//! MySQL/MariaDB and PostgreSQL, one layer every module uses: the URL
//! (`url.rs`), a connection (`conn.rs`), Kamailio's tables (`schema.rs`),
//! DATETIME columns (`time.rs`), a worker's bounded access (`handle.rs`),
//! a shared-memory queue's writer thread (`queue.rs`).

pub mod conn;
pub mod handle;
pub mod queue;
pub mod redis;
pub mod schema;
pub mod time;
pub mod url;

#[cfg(test)]
use std::path::PathBuf;

use rusqlite::Connection;

pub use url::DbUrl;

/// A `db_url` this build serves (SQLite, MySQL/MariaDB, PostgreSQL),
/// parsed; no message shows its password.
pub fn served(url: &str) -> Result<DbUrl, String> {
    DbUrl::parse(url)
}

/// How long a tool (`rserctl`) or a start waits on a server.
pub const TOOL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a process waits for its database server's answer: db_mysql's
/// `timeout_interval` or db_postgres's `timeout` (seconds, Kamailio's
/// parameters; 2 by default, db_mysql's), in every module.
pub fn timeout(config: &crate::cfg::Config, url: &DbUrl) -> std::time::Duration {
    let secs = match url {
        DbUrl::Mysql(_) => config.modparam_int("db_mysql", "timeout_interval", 2),
        DbUrl::Postgres(_) => config.modparam_int("db_postgres", "timeout", 2),
        DbUrl::Sqlite(_) => 5,
    };
    std::time::Duration::from_secs(secs.clamp(1, 60) as u64)
}

/// Opens the database `url` names (tools, tests, start-up).
pub fn open(url: &str) -> Result<conn::Conn, String> {
    conn::Conn::open(&DbUrl::parse(url)?, TOOL_TIMEOUT).map_err(|e| e.0)
}

/// Said where a `db_url` is missing: SER and Kamailio default to a MySQL
/// server on localhost.
pub const SER_DEFAULT_URL_NOTE: &str =
    " (SER's default was a MySQL server, mysql://ser:***@localhost/ser; rser wants the URL said)";

#[cfg(test)]
/// A fresh directory for a unit test's database file.
pub fn tests_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rser-unit-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A table name the script gave `save()`/`lookup()`, checked to be a
/// plain identifier (it becomes an SQL table name).
pub fn check_table_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "location table {name:?}: letters, digits and '_' only, not starting with a digit"
        ))
    }
}

/// A new database file is created mode 0600: it holds credentials and
/// where users are (SQLite gives its -wal and -shm files the same mode).
fn create_private(path: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("database {}: create: {e}", path.display())),
    }
}

/// Opens (creating) the database a URL names: WAL, so readers and the
/// one writer do not block each other, and a busy timeout for processes
/// writing at the same time.
pub fn connect(url: &str) -> Result<Connection, String> {
    let DbUrl::Sqlite(path) = DbUrl::parse(url)? else {
        return Err(format!("db_url {url:?}: not an SQLite file"));
    };
    create_private(&path)?;
    let err = |what: &str, e: rusqlite::Error| format!("database {}: {what}: {e}", path.display());
    let conn = Connection::open(&path).map_err(|e| err("open", e))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| err("busy_timeout", e))?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .map_err(|e| err("journal_mode", e))?;
    conn.execute_batch("PRAGMA synchronous=NORMAL")
        .map_err(|e| err("synchronous", e))?;
    Ok(conn)
}
