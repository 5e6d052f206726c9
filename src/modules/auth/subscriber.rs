//! The subscriber table, in Kamailio's shape: who may authenticate, with
//! `ha1` (MD5 of user:realm:password), `ha1b` (the same with user@domain
//! as the user) and `ha1_sha256`, so no password need be stored; the
//! password in clear (SER's old default) only when asked.

use rusqlite::{Connection, OptionalExtension, params};

use super::digest::{Algorithm, ha1};

/// What the table holds for one user of one domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secret {
    pub password: Option<String>,
    pub ha1: Option<String>,
    pub ha1_sha256: Option<String>,
}

impl Secret {
    /// HA1 for `alg`: from the password when there is one, else stored
    /// (auth_db's `calculate_ha1` unset).
    pub fn ha1(&self, alg: Algorithm, user: &[u8], realm: &[u8]) -> Option<super::digest::Hex> {
        self.ha1_by(None, alg, user, realm)
    }

    /// HA1 for `alg` as `calculate_ha1` says: Some(true) from the
    /// password only, Some(false) stored only, None either.
    pub fn ha1_by(
        &self,
        calculate: Option<bool>,
        alg: Algorithm,
        user: &[u8],
        realm: &[u8],
    ) -> Option<super::digest::Hex> {
        let password = self.password.as_deref().filter(|p| !p.is_empty());
        if calculate != Some(false) {
            if let Some(p) = password {
                return Some(ha1(alg, user, realm, p.as_bytes()));
            }
            if calculate == Some(true) {
                return None;
            }
        }
        let stored = match alg {
            Algorithm::Md5 => self.ha1.as_deref(),
            Algorithm::Sha256 => self.ha1_sha256.as_deref(),
        }?;
        let mut h = super::digest::Hex::new();
        h.try_push_str(stored).ok()?;
        Some(h)
    }
}

fn err(what: &str, e: rusqlite::Error) -> String {
    format!("subscriber table: {what}: {e}")
}

/// Creates the table if it is not there.
pub fn ensure(conn: &Connection, table: &str) -> Result<(), String> {
    crate::db::check_table_name(table)?;
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {table} (\
           username TEXT NOT NULL, domain TEXT NOT NULL, password TEXT, \
           ha1 TEXT, ha1b TEXT, ha1_sha256 TEXT, PRIMARY KEY (username, domain))"
    ))
    .map_err(|e| err("create", e))?;
    // A table from before `ha1b` was kept gets the column.
    let has_ha1b = conn
        .prepare(&format!(
            "SELECT 1 FROM pragma_table_info('{table}') WHERE name = 'ha1b'"
        ))
        .and_then(|mut st| st.exists([]))
        .map_err(|e| err("columns", e))?;
    if !has_ha1b {
        conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN ha1b TEXT"))
            .map_err(|e| err("add ha1b", e))?;
    }
    Ok(())
}

/// The credentials of `user` at `domain`; the password in clear is read
/// from `password_column` (auth's parameter, a checked SQL name).
pub fn find(
    conn: &Connection,
    table: &str,
    password_column: &str,
    user: &[u8],
    domain: Option<&[u8]>,
) -> Result<Option<Secret>, String> {
    let Ok(user) = std::str::from_utf8(user) else {
        return Ok(None);
    };
    let row = |r: &rusqlite::Row<'_>| {
        Ok(Secret {
            password: r.get(0)?,
            ha1: r.get(1)?,
            ha1_sha256: r.get(2)?,
        })
    };
    let select =
        format!("SELECT {password_column}, ha1, ha1_sha256 FROM {table} WHERE username = ?1");
    match domain {
        // auth_db's use_domain=0: the user name alone.
        None => conn
            .prepare_cached(&select)
            .and_then(|mut st| st.query_row(params![user], row).optional()),
        Some(domain) => {
            let Ok(domain) = std::str::from_utf8(domain) else {
                return Ok(None);
            };
            conn.prepare_cached(&format!("{select} AND domain = ?2"))
                .and_then(|mut st| st.query_row(params![user, domain], row).optional())
        }
    }
    .map_err(|e| err("query", e))
}

/// Adds or replaces a user; the realm of its HA1s is its domain (SER's
/// convention: the realm a domain's users are challenged with). The
/// password itself is kept only with `keep_password`.
pub fn add(
    conn: &Connection,
    table: &str,
    user: &str,
    domain: &str,
    password: &str,
    keep_password: bool,
) -> Result<(), String> {
    ensure(conn, table)?;
    let (u, d, p) = (user.as_bytes(), domain.as_bytes(), password.as_bytes());
    let md5 = ha1(Algorithm::Md5, u, d, p);
    let with_domain = format!("{user}@{domain}");
    let md5b = ha1(Algorithm::Md5, with_domain.as_bytes(), d, p);
    let sha = ha1(Algorithm::Sha256, u, d, p);
    let kept = keep_password.then_some(password);
    conn.execute(
        &format!(
            "INSERT OR REPLACE INTO {table} \
             (username, domain, password, ha1, ha1b, ha1_sha256) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
        ),
        params![
            user,
            domain,
            kept,
            md5.as_str(),
            md5b.as_str(),
            sha.as_str()
        ],
    )
    .map(|_| ())
    .map_err(|e| err("insert", e))
}

/// Removes a user; false when there was none.
pub fn remove(conn: &Connection, table: &str, user: &str, domain: &str) -> Result<bool, String> {
    ensure(conn, table)?;
    conn.execute(
        &format!("DELETE FROM {table} WHERE username = ?1 AND domain = ?2"),
        params![user, domain],
    )
    .map(|n| n > 0)
    .map_err(|e| err("delete", e))
}

/// Every user as `user@domain`, sorted.
pub fn list(conn: &Connection, table: &str) -> Result<Vec<String>, String> {
    ensure(conn, table)?;
    let mut st = conn
        .prepare(&format!(
            "SELECT username, domain FROM {table} ORDER BY domain, username"
        ))
        .map_err(|e| err("list", e))?;
    let rows = st
        .query_map([], |r| {
            Ok(format!(
                "{}@{}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?
            ))
        })
        .map_err(|e| err("list", e))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| err("list", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_find_remove_list() {
        let conn = Connection::open_in_memory().unwrap();
        add(&conn, "subscriber", "bob", "example.com", "secret", true).unwrap();
        add(&conn, "subscriber", "alice", "example.com", "pw", false).unwrap();
        let s = find(
            &conn,
            "subscriber",
            "password",
            b"bob",
            Some(b"example.com"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.password.as_deref(), Some("secret"));
        // use_domain=0: the user name alone finds it.
        assert!(
            find(&conn, "subscriber", "password", b"bob", None)
                .unwrap()
                .is_some()
        );
        let from_password = s.ha1(Algorithm::Sha256, b"bob", b"example.com").unwrap();
        let stored = Secret {
            password: None,
            ..s.clone()
        };
        assert_eq!(
            stored
                .ha1(Algorithm::Sha256, b"bob", b"example.com")
                .unwrap(),
            from_password
        );
        assert_eq!(
            stored.ha1(Algorithm::Md5, b"bob", b"example.com").unwrap(),
            ha1(Algorithm::Md5, b"bob", b"example.com", b"secret")
        );
        assert_eq!(
            list(&conn, "subscriber").unwrap(),
            vec!["alice@example.com", "bob@example.com"]
        );
        assert!(remove(&conn, "subscriber", "bob", "example.com").unwrap());
        assert!(!remove(&conn, "subscriber", "bob", "example.com").unwrap());
        assert!(
            find(
                &conn,
                "subscriber",
                "password",
                b"bob",
                Some(b"example.com")
            )
            .unwrap()
            .is_none()
        );
    }

    #[test]
    fn without_the_password_kept_the_hashes_serve() {
        let conn = Connection::open_in_memory().unwrap();
        add(&conn, "subscriber", "alice", "example.com", "pw", false).unwrap();
        let s = find(
            &conn,
            "subscriber",
            "password",
            b"alice",
            Some(b"example.com"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.password, None);
        assert_eq!(
            s.ha1(Algorithm::Md5, b"alice", b"example.com"),
            Some(ha1(Algorithm::Md5, b"alice", b"example.com", b"pw"))
        );
        // Kamailio's ha1b: the user written as user@domain.
        let ha1b: String = conn
            .query_row("SELECT ha1b FROM subscriber", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            ha1b,
            ha1(Algorithm::Md5, b"alice@example.com", b"example.com", b"pw").as_str()
        );
    }

    #[test]
    fn a_table_without_ha1b_gets_it() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE subscriber (username TEXT NOT NULL, domain TEXT NOT NULL, \
             password TEXT, ha1 TEXT, ha1_sha256 TEXT, PRIMARY KEY (username, domain))",
        )
        .unwrap();
        add(&conn, "subscriber", "bob", "example.com", "pw", false).unwrap();
        assert!(
            find(
                &conn,
                "subscriber",
                "password",
                b"bob",
                Some(b"example.com")
            )
            .unwrap()
            .is_some()
        );
    }
}
