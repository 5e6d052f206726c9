//! SQLite, the embedded database behind `db_url` (`sqlite:///path`):
//! opening a connection the same way for usrloc and auth, and the names
//! the script may give tables.

pub mod conn;
pub mod schema;
pub mod url;

use std::path::PathBuf;

use rusqlite::Connection;

pub use url::DbUrl;

/// A database URL's file: `sqlite:///abs/path` or `sqlite://rel/path`.
/// Other URLs parse (`url.rs`) but are not served yet; no message shows
/// their password.
pub fn sqlite_path(url: &str) -> Result<PathBuf, String> {
    match DbUrl::parse(url)? {
        DbUrl::Sqlite(path) => Ok(path),
        other => Err(format!(
            "db_url \"{other}\": only sqlite:// URLs are served by this build (MySQL and PostgreSQL are not yet)"
        )),
    }
}

/// Said where a `db_url` is missing: SER and Kamailio default to a MySQL
/// server on localhost, which this build does not serve.
pub const SER_DEFAULT_URL_NOTE: &str = " (SER's default, mysql://ser:heslo@localhost/ser, \
     needs a MySQL server, which this build does not serve yet)";

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
    let path = sqlite_path(url)?;
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
