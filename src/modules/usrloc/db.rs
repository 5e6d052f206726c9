//! usrloc's bindings in Kamailio's `location` table (version 9) on any
//! served database: the AOR as `username` (and `domain` with
//! `use_domain`), the contact, Call-ID, CSeq, q, expiry and branch
//! flags, each binding's `ruid` made from its AOR and contact. A database
//! Kamailio's usrloc wrote loads here, and one rser writes loads there.
//!
//! Not kept: the binding's socket and the far end of its connection
//! (neither outlives a restart: the phone registers again over a new
//! connection), user agent, Path, instance and reg-id.

use crate::db::conn::{Conn, Value};
use crate::db::schema::{self, LOCATION, Need};
use crate::db::url::DbUrl;

pub use crate::db::check_table_name;

use super::table::{Meta, Q_NONE};

/// A binding as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub aor: Vec<u8>,
    pub contact: Vec<u8>,
    pub call_id: Vec<u8>,
    pub meta: Meta,
}

pub struct Db {
    conn: Conn,
    use_domain: bool,
}

fn err(what: &str) -> impl Fn(crate::db::conn::DbError) -> String + '_ {
    move |e| format!("usrloc database: {what}: {e}")
}

/// The columns rser reads and writes.
const COLUMNS: &[&str] = &[
    "ruid",
    "username",
    "domain",
    "contact",
    "expires",
    "q",
    "callid",
    "cseq",
    "last_modified",
    "flags",
    "cflags",
];

/// What a start checks (and an embedded database gets).
pub fn need(table: &str) -> Need {
    let mut n = Need::of(&LOCATION, table);
    n.columns = COLUMNS.iter().map(|c| c.to_string()).collect();
    n
}

/// A binding's `ruid`: stable for its AOR and contact, unique in the
/// table as Kamailio's index wants.
fn ruid(table: &str, aor: &[u8], contact: &[u8]) -> String {
    use xxhash_rust::xxh3::Xxh3;
    let mut h = Xxh3::new();
    for part in [table.as_bytes(), aor, contact] {
        h.update(&(part.len() as u32).to_le_bytes());
        h.update(part);
    }
    format!("rser-{:032x}", h.digest128())
}

fn text(b: &[u8]) -> Value {
    Value::Text(String::from_utf8_lossy(b).into_owned())
}

/// A statement and its parameters.
pub type Stmt = (String, Vec<Value>);

/// The AOR's columns: `username` and `domain` (NULL without
/// `use_domain`).
fn account(aor: &[u8], use_domain: bool) -> (Value, Value) {
    match aor.iter().rposition(|&b| b == b'@') {
        Some(at) if use_domain => (text(&aor[..at]), text(&aor[at + 1..])),
        _ => (text(aor), Value::Null),
    }
}

/// The columns [`binding_of`] reads, in its order.
const READ: &str = "contact, callid, cseq, q, expires, last_modified, cflags";

/// Most rows read for one AOR (a table another writer filled beyond
/// what the registrar keeps is read that far).
pub const AOR_ROWS: usize = 64;

/// One AOR's bindings that have not expired at `now` (db_mode 3's
/// lookup and save).
pub fn select_aor(table: &str, aor: &[u8], use_domain: bool, now: u64) -> Stmt {
    let (user, domain) = account(aor, use_domain);
    let now = Value::Time(now as i64);
    match domain {
        Value::Null => (
            format!(
                "SELECT {READ} FROM {table} WHERE username = ? AND expires > ? LIMIT {AOR_ROWS}"
            ),
            vec![user, now],
        ),
        d => (
            format!(
                "SELECT {READ} FROM {table} WHERE username = ? AND domain = ? AND expires > ? \
                 LIMIT {AOR_ROWS}"
            ),
            vec![user, d, now],
        ),
    }
}

/// A row of [`READ`]'s columns: contact, Call-ID, fields.
pub fn binding_of(r: &[Value]) -> Option<(String, String, Meta)> {
    let t = |i: usize| r.get(i).and_then(Value::text).unwrap_or_default();
    let int = |i: usize| r.get(i).and_then(Value::as_int).unwrap_or(0);
    let q = r.get(3).and_then(Value::as_float).unwrap_or(-1.0);
    Some((
        t(0),
        t(1),
        Meta {
            cseq: int(2) as u32,
            cflags: int(6) as u32,
            q: match q < 0.0 {
                true => Q_NONE,
                false => (q * 1000.0).round().clamp(0.0, 1000.0) as u16,
            },
            sock: 0,
            received: rser_shm::Peer::default(),
            flow: 0,
            owner: rser_shm::Peer::default(),
            expires: r.get(4).and_then(Value::as_time)?.max(0) as u64,
            updated: r.get(5).and_then(Value::as_time).unwrap_or(0).max(0) as u64,
        },
    ))
}

/// The statement removing one binding.
pub fn delete_stmt(table: &str, aor: &[u8], contact: &[u8], use_domain: bool) -> Stmt {
    let (user, domain) = account(aor, use_domain);
    match domain {
        Value::Null => (
            format!("DELETE FROM {table} WHERE username = ? AND contact = ?"),
            vec![user, text(contact)],
        ),
        d => (
            format!("DELETE FROM {table} WHERE username = ? AND domain = ? AND contact = ?"),
            vec![user, d, text(contact)],
        ),
    }
}

/// The statements writing one binding (new or refreshed): its row
/// replaced.
pub fn upsert_stmts(
    table: &str,
    aor: &[u8],
    contact: &[u8],
    call_id: &[u8],
    m: &Meta,
    use_domain: bool,
) -> [Stmt; 2] {
    let (user, domain) = account(aor, use_domain);
    let q = match m.q {
        Q_NONE => -1.0,
        q => f64::from(q) / 1000.0,
    };
    let insert = (
        format!(
            "INSERT INTO {table} ({}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            COLUMNS.join(", ")
        ),
        vec![
            Value::Text(ruid(table, aor, contact)),
            user,
            domain,
            text(contact),
            Value::Time(m.expires as i64),
            Value::Float(q),
            text(call_id),
            Value::Int(i64::from(m.cseq)),
            Value::Time(m.updated as i64),
            Value::Int(0),
            Value::Int(i64::from(m.cflags)),
        ],
    );
    [delete_stmt(table, aor, contact, use_domain), insert]
}

impl Db {
    /// Opens the database, its tables checked (made, for an embedded
    /// one); `timeout` bounds every wait.
    pub fn open(
        url: &str,
        tables: &[String],
        use_domain: bool,
        timeout: std::time::Duration,
    ) -> Result<Db, String> {
        for t in tables {
            check_table_name(t)?;
        }
        let url = DbUrl::parse(url)?;
        let needs: Vec<Need> = tables.iter().map(|t| need(t)).collect();
        let conn =
            schema::open_prepared(&url, &needs, timeout).map_err(|e| format!("usrloc {e}"))?;
        Ok(Db { conn, use_domain })
    }

    /// The table's bindings that have not expired at `now`.
    pub fn load(&mut self, table: &str, now: u64) -> Result<Vec<Row>, String> {
        let rows = self
            .conn
            .query(
                &format!("SELECT username, domain, {READ} FROM {table} WHERE expires > ?"),
                &[Value::Time(now as i64)],
            )
            .map_err(err("load"))?;
        let use_domain = self.use_domain;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let (contact, call_id, meta) = binding_of(&r[2..])?;
                let mut aor = r[0].text().unwrap_or_default().into_bytes();
                let domain = r[1].text().unwrap_or_default();
                if use_domain && !domain.is_empty() {
                    aor.push(b'@');
                    aor.extend_from_slice(domain.as_bytes());
                }
                Some(Row {
                    aor,
                    contact: contact.into_bytes(),
                    call_id: call_id.into_bytes(),
                    meta,
                })
            })
            .collect())
    }

    fn run(&mut self, (sql, params): &Stmt, what: &str) -> Result<(), String> {
        self.conn
            .execute(sql, params)
            .map(|_| ())
            .map_err(err(what))
    }

    /// Writes a binding (new or refreshed): the row replaced.
    pub fn upsert(
        &mut self,
        table: &str,
        aor: &[u8],
        contact: &[u8],
        call_id: &[u8],
        m: &Meta,
    ) -> Result<(), String> {
        for stmt in upsert_stmts(table, aor, contact, call_id, m, self.use_domain) {
            self.run(&stmt, "write")?;
        }
        Ok(())
    }

    pub fn delete(&mut self, table: &str, aor: &[u8], contact: &[u8]) -> Result<(), String> {
        let stmt = delete_stmt(table, aor, contact, self.use_domain);
        self.run(&stmt, "delete")
    }

    /// Drops the rows expired at `now`.
    pub fn delete_expired(&mut self, table: &str, now: u64) -> Result<u64, String> {
        self.conn
            .execute(
                &format!("DELETE FROM {table} WHERE expires <= ?"),
                &[Value::Time(now as i64)],
            )
            .map_err(err("delete expired"))
    }

    /// Runs `f` in one transaction (a batch of writes).
    pub fn batch<T>(&mut self, f: impl FnOnce(&mut Db) -> Result<T, String>) -> Result<T, String> {
        self.conn.batch("BEGIN").map_err(err("begin"))?;
        match f(self) {
            Ok(v) => {
                self.conn.batch("COMMIT").map_err(err("commit"))?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn meta(expires: u64) -> Meta {
        Meta {
            q: 500,
            sock: 3,
            received: rser_shm::Peer::default(),
            flow: 0,
            owner: rser_shm::Peer::default(),
            cseq: 7,
            cflags: 0x40,
            expires,
            updated: 100,
        }
    }

    #[test]
    fn an_older_rser_table_is_named_at_start() {
        let dir = crate::db::tests_dir("legacy");
        let url = format!("sqlite://{}/rser.db", dir.display());
        let mut c = crate::db::open(&url).unwrap();
        c.batch(
            "CREATE TABLE location (aor BLOB NOT NULL, contact BLOB NOT NULL, call_id BLOB NOT NULL, \
             cseq INTEGER NOT NULL, q INTEGER, expires INTEGER NOT NULL, updated INTEGER NOT NULL, \
             PRIMARY KEY (aor, contact))",
        )
        .unwrap();
        drop(c);
        let e = Db::open(&url, &["location".into()], false, Duration::from_secs(5))
            .err()
            .unwrap();
        assert!(e.contains("table location: lacks a column"), "{e}");
    }

    #[test]
    fn table_names() {
        assert!(check_table_name("location").is_ok());
        assert!(check_table_name("mydomain1").is_ok());
        assert!(check_table_name("x; DROP TABLE y").is_err());
        assert!(check_table_name("1abc").is_err());
    }

    #[test]
    fn bindings_survive_reopening_and_expire() {
        let dir = crate::db::tests_dir("survive");
        let url = format!("sqlite://{}/rser.db", dir.display());
        let tables = vec!["location".to_string()];
        let t = Duration::from_secs(5);
        {
            let mut db = Db::open(&url, &tables, true, t).unwrap();
            db.batch(|db| {
                db.upsert("location", b"alice@h", b"sip:a@h", b"c1", &meta(1000))?;
                db.upsert("location", b"alice@h", b"sip:a@h", b"c1", &meta(1000))?;
                db.upsert("location", b"alice@h", b"sip:b@h", b"c1", &meta(50))?;
                db.upsert("location", b"bob@h", b"sip:x@h", b"c2", &meta(1000))
            })
            .unwrap();
            db.delete("location", b"bob@h", b"sip:x@h").unwrap();
        }
        let mut db = Db::open(&url, &tables, true, t).unwrap();
        let rows = db.load("location", 60).unwrap();
        assert_eq!(rows.len(), 1, "b expired, x deleted, a written once");
        assert_eq!(rows[0].aor, b"alice@h");
        assert_eq!(rows[0].contact, b"sip:a@h");
        assert_eq!(rows[0].meta.q, 500);
        assert_eq!((rows[0].meta.expires, rows[0].meta.updated), (1000, 100));
        assert_eq!(rows[0].meta.cflags, 0x40, "branch flags are kept");
        assert_eq!(rows[0].meta.sock, 0, "sockets are not kept across restarts");
        assert_eq!(db.delete_expired("location", 60).unwrap(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
