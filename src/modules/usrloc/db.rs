//! usrloc's bindings in SQLite (`db_url` `sqlite:///path/rser.db`): one
//! table per location table the script names, keyed by AOR and contact.
//! Texts are stored as BLOBs, byte for byte as they came off the wire.

use rusqlite::{Connection, OptionalExtension, params};

pub use crate::db::{check_table_name, sqlite_path};

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
    conn: Connection,
}

fn err(what: &str, e: rusqlite::Error) -> String {
    format!("usrloc database: {what}: {e}")
}

impl Db {
    /// Opens (creating if need be) the database and the tables.
    pub fn open(url: &str, tables: &[String]) -> Result<Db, String> {
        let conn = crate::db::connect(url).map_err(|e| format!("usrloc {e}"))?;
        for t in tables {
            check_table_name(t)?;
            conn.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {t} (\
                   aor BLOB NOT NULL, contact BLOB NOT NULL, call_id BLOB NOT NULL, \
                   cseq INTEGER NOT NULL, q INTEGER, expires INTEGER NOT NULL, \
                   updated INTEGER NOT NULL, cflags INTEGER NOT NULL DEFAULT 0, \
                   PRIMARY KEY (aor, contact))"
            ))
            .map_err(|e| err(&format!("create table {t}"), e))?;
            // A table made before branch flags were kept gets their column.
            let has_cflags = conn
                .query_row(
                    &format!("SELECT 1 FROM pragma_table_info('{t}') WHERE name = 'cflags'"),
                    [],
                    |_| Ok(()),
                )
                .optional()
                .map_err(|e| err("table info", e))?
                .is_some();
            if !has_cflags {
                conn.execute_batch(&format!(
                    "ALTER TABLE {t} ADD COLUMN cflags INTEGER NOT NULL DEFAULT 0"
                ))
                .map_err(|e| err(&format!("add cflags to {t}"), e))?;
            }
        }
        Ok(Db { conn })
    }

    /// The table's bindings that have not expired at `now`.
    pub fn load(&self, table: &str, now: u64) -> Result<Vec<Row>, String> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT aor, contact, call_id, cseq, q, expires, updated, cflags FROM {table} \
                 WHERE expires > ?1"
            ))
            .map_err(|e| err("load", e))?;
        let rows = st
            .query_map(params![now as i64], |r| {
                let q: Option<i64> = r.get(4)?;
                Ok(Row {
                    aor: r.get(0)?,
                    contact: r.get(1)?,
                    call_id: r.get(2)?,
                    meta: Meta {
                        cseq: r.get::<_, i64>(3)? as u32,
                        cflags: r.get::<_, i64>(7)? as u32,
                        q: q.map_or(Q_NONE, |q| q.clamp(0, 1000) as u16),
                        sock: 0,
                        received: rser_shm::Peer::default(),
                        expires: r.get::<_, i64>(5)? as u64,
                        updated: r.get::<_, i64>(6)? as u64,
                    },
                })
            })
            .map_err(|e| err("load", e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| err("load", e))
    }

    /// Writes a binding (new or refreshed).
    pub fn upsert(
        &self,
        table: &str,
        aor: &[u8],
        contact: &[u8],
        call_id: &[u8],
        m: &Meta,
    ) -> Result<(), String> {
        let q = (m.q != Q_NONE).then_some(i64::from(m.q));
        self.conn
            .prepare_cached(&format!(
                "INSERT OR REPLACE INTO {table} \
                 (aor, contact, call_id, cseq, q, expires, updated, cflags) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))
            .and_then(|mut st| {
                st.execute(params![
                    aor,
                    contact,
                    call_id,
                    i64::from(m.cseq),
                    q,
                    m.expires as i64,
                    m.updated as i64,
                    i64::from(m.cflags)
                ])
            })
            .map(|_| ())
            .map_err(|e| err("write", e))
    }

    pub fn delete(&self, table: &str, aor: &[u8], contact: &[u8]) -> Result<(), String> {
        self.conn
            .prepare_cached(&format!(
                "DELETE FROM {table} WHERE aor = ?1 AND contact = ?2"
            ))
            .and_then(|mut st| st.execute(params![aor, contact]))
            .map(|_| ())
            .map_err(|e| err("delete", e))
    }

    /// Drops the rows expired at `now`.
    pub fn delete_expired(&self, table: &str, now: u64) -> Result<usize, String> {
        self.conn
            .prepare_cached(&format!("DELETE FROM {table} WHERE expires <= ?1"))
            .and_then(|mut st| st.execute(params![now as i64]))
            .map_err(|e| err("delete expired", e))
    }

    /// Runs `f` in one transaction (a write-back batch).
    pub fn batch<T>(&mut self, f: impl FnOnce(&Db) -> Result<T, String>) -> Result<T, String> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| err("begin", e))?;
        match f(self) {
            Ok(v) => {
                self.conn
                    .execute_batch("COMMIT")
                    .map_err(|e| err("commit", e))?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// The connection, for the auth module's subscriber queries.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Whether a table exists (for tests and rserctl).
    pub fn has_table(&self, table: &str) -> bool {
        self.conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                params![table],
                |_| Ok(()),
            )
            .optional()
            .ok()
            .flatten()
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn temp_url(name: &str) -> (String, PathBuf) {
        let dir = std::env::temp_dir().join(format!("rser-db-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rser.db");
        (format!("sqlite://{}", path.display()), dir)
    }

    fn meta(expires: u64) -> Meta {
        Meta {
            q: 500,
            sock: 3,
            received: rser_shm::Peer::default(),
            cseq: 7,
            cflags: 0x40,
            expires,
            updated: 100,
        }
    }

    #[test]
    fn a_table_without_cflags_gets_the_column() {
        let (url, dir) = temp_url("cflags");
        let conn = crate::db::connect(&url).unwrap();
        conn.execute_batch(
            "CREATE TABLE location (aor BLOB NOT NULL, contact BLOB NOT NULL, call_id BLOB NOT NULL, \
             cseq INTEGER NOT NULL, q INTEGER, expires INTEGER NOT NULL, updated INTEGER NOT NULL, \
             PRIMARY KEY (aor, contact)); \
             INSERT INTO location VALUES (x'61', x'62', x'63', 1, NULL, 9999999999, 1);",
        )
        .unwrap();
        drop(conn);
        let db = Db::open(&url, &["location".to_string()]).unwrap();
        let rows = db.load("location", 0).unwrap();
        assert_eq!((rows.len(), rows[0].meta.cflags), (1, 0));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn urls_and_table_names() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/rser.db").unwrap(),
            PathBuf::from("/var/lib/rser.db")
        );
        assert!(sqlite_path("mysql://ser@db/ser").is_err());
        assert!(sqlite_path("sqlite://").is_err());
        assert!(check_table_name("location").is_ok());
        assert!(check_table_name("mydomain1").is_ok());
        assert!(check_table_name("x; DROP TABLE y").is_err());
        assert!(check_table_name("1abc").is_err());
    }

    #[test]
    fn bindings_survive_reopening_and_expire() {
        let (url, dir) = temp_url("survive");
        let tables = vec!["location".to_string()];
        {
            let mut db = Db::open(&url, &tables).unwrap();
            db.batch(|db| {
                db.upsert("location", b"alice", b"sip:a@h", b"c1", &meta(1000))?;
                db.upsert("location", b"alice", b"sip:b@h", b"c1", &meta(50))?;
                db.upsert("location", b"bob", b"sip:x@h", b"c2", &meta(1000))
            })
            .unwrap();
            db.delete("location", b"bob", b"sip:x@h").unwrap();
        }
        let db = Db::open(&url, &tables).unwrap();
        let rows = db.load("location", 60).unwrap();
        assert_eq!(rows.len(), 1, "b expired, x deleted");
        assert_eq!(rows[0].contact, b"sip:a@h");
        assert_eq!(rows[0].meta.q, 500);
        assert_eq!(rows[0].meta.cflags, 0x40, "branch flags are kept");
        assert_eq!(rows[0].meta.sock, 0, "sockets are not kept across restarts");
        assert_eq!(db.delete_expired("location", 60).unwrap(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
