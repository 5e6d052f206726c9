//! The subscriber table, in Kamailio's shape: who may authenticate, with
//! `ha1` (MD5 of user:realm:password), `ha1b` (the same with user@domain
//! as the user) and `ha1_sha256`, so no password need be stored; the
//! password in clear (SER's old default) only when asked.

use crate::db::conn::{Conn, Value};
use crate::db::schema::{self, Need, SUBSCRIBER};

use super::digest::{Algorithm, ha1};

/// What the table holds for one user of one domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secret {
    pub password: Option<String>,
    pub ha1: Option<String>,
    /// HA1 with the user written `user@domain` (for user names that
    /// carry their domain: Kamailio's `password_column_2`).
    pub ha1b: Option<String>,
    pub ha1_sha256: Option<String>,
}

impl Secret {
    /// HA1 for `alg`: from the password when there is one, else stored
    /// (auth_db's `calculate_ha1` unset).
    pub fn ha1(&self, alg: Algorithm, user: &[u8], realm: &[u8]) -> Option<super::digest::Hex> {
        self.ha1_by(None, alg, user, realm)
    }

    /// HA1 for `alg` as `calculate_ha1` says: Some(true) from the
    /// password only; Some(false) stored only, the password column then
    /// holding the MD5 HA1 (Kamailio's reading); None either.
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
        let with_domain = user.contains(&b'@');
        let stored = match alg {
            Algorithm::Md5 if with_domain => self.ha1b.as_deref(),
            Algorithm::Md5 if calculate == Some(false) => password,
            Algorithm::Md5 => self.ha1.as_deref(),
            Algorithm::Sha256 => self.ha1_sha256.as_deref(),
        }
        .filter(|h| !h.is_empty())?;
        let mut h = super::digest::Hex::new();
        h.try_push_str(stored).ok()?;
        Some(h)
    }
}

/// The subscriber columns auth_db reads, as its parameters name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    pub user: String,
    pub domain: String,
    /// The password in clear (or, with `calculate_ha1` 0, the HA1).
    pub password: String,
    /// The stored HA1 (read when `calculate_ha1` is unset).
    pub ha1: String,
    /// The HA1 of `user@domain` (`password_column_2`).
    pub ha1b: String,
    /// The SHA-256 HA1 (`hash_column_sha256`), when the table has it.
    pub sha256: Option<String>,
}

impl Default for Columns {
    fn default() -> Columns {
        Columns {
            user: "username".into(),
            domain: "domain".into(),
            password: "password".into(),
            ha1: "ha1".into(),
            ha1b: "ha1b".into(),
            sha256: Some("ha1_sha256".into()),
        }
    }
}

/// What a start checks and an embedded database gets: Kamailio's table,
/// the columns read.
pub fn need(table: &str, c: &Columns) -> Need {
    let mut n = Need::of(&SUBSCRIBER, table);
    n.columns = [&c.user, &c.domain, &c.password, &c.ha1, &c.ha1b]
        .into_iter()
        .cloned()
        .collect();
    n.optional = c.sha256.iter().cloned().collect();
    n
}

/// Whether the table has the SHA-256 column (Kamailio 6's, rser's older
/// SQLite tables'); without it SHA-256 needs the password.
pub fn has_column(conn: &mut Conn, table: &str, column: &str) -> bool {
    conn.query(&format!("SELECT {column} FROM {table} WHERE 1 = 0"), &[])
        .is_ok()
}

/// The query finding one user's credentials, and its parameters: by user
/// name alone unless `domain` is given (auth_db's `use_domain`).
pub fn select(table: &str, c: &Columns, with_domain: bool) -> String {
    let sha = c.sha256.as_deref().unwrap_or("NULL");
    let mut sql = format!(
        "SELECT {}, {}, {}, {sha} FROM {table} WHERE {} = ?",
        c.password, c.ha1, c.ha1b, c.user
    );
    if with_domain {
        sql.push_str(&format!(" AND {} = ?", c.domain));
    }
    sql
}

/// The first row of [`select`]'s answer as a `Secret`.
pub fn secret_of(rows: &[Vec<Value>]) -> Option<Secret> {
    let r = rows.first()?;
    let text = |i: usize| r.get(i).and_then(Value::text).filter(|t| !t.is_empty());
    Some(Secret {
        password: text(0),
        ha1: text(1),
        ha1b: text(2),
        ha1_sha256: text(3),
    })
}

fn fail(what: &str) -> impl Fn(crate::db::conn::DbError) -> String + '_ {
    move |e| format!("subscriber table: {what}: {e}")
}

/// The credentials of `user` at `domain` (tools and tests; workers ask
/// through their bounded handle).
pub fn find(
    conn: &mut Conn,
    table: &str,
    c: &Columns,
    user: &str,
    domain: Option<&str>,
) -> Result<Option<Secret>, String> {
    let mut params = vec![Value::Text(user.into())];
    params.extend(domain.map(|d| Value::Text(d.into())));
    let rows = conn
        .query(&select(table, c, domain.is_some()), &params)
        .map_err(fail("query"))?;
    Ok(secret_of(&rows))
}

/// Opens the database of `url`, the table made if the database is rser's
/// own and checked otherwise.
pub fn open(url: &str, table: &str) -> Result<Conn, String> {
    let url = crate::db::DbUrl::parse(url)?;
    schema::open_prepared(
        &url,
        &[need(table, &Columns::default())],
        crate::db::TOOL_TIMEOUT,
    )
}

/// Adds or replaces a user, as `kamctl add` does: `ha1` (MD5 of
/// user:realm:password, the realm being the domain), `ha1b` (the same of
/// user@domain), the SHA-256 HA1 where the table has its column. The
/// password itself is kept only with `keep_password`.
pub fn add(
    conn: &mut Conn,
    table: &str,
    user: &str,
    domain: &str,
    password: &str,
    keep_password: bool,
) -> Result<(), String> {
    let (u, d, p) = (user.as_bytes(), domain.as_bytes(), password.as_bytes());
    let md5 = ha1(Algorithm::Md5, u, d, p);
    let with_domain = format!("{user}@{domain}");
    let md5b = ha1(Algorithm::Md5, with_domain.as_bytes(), d, p);
    let sha = ha1(Algorithm::Sha256, u, d, p);
    let kept = if keep_password { password } else { "" };
    let mut cols = "username, domain, password, ha1, ha1b".to_string();
    let mut values = vec![
        Value::Text(user.into()),
        Value::Text(domain.into()),
        Value::Text(kept.into()),
        Value::Text(md5.to_string()),
        Value::Text(md5b.to_string()),
    ];
    if has_column(conn, table, "ha1_sha256") {
        cols.push_str(", ha1_sha256");
        values.push(Value::Text(sha.to_string()));
    }
    let marks = vec!["?"; values.len()].join(", ");
    conn.transaction(fail("transaction"), |conn| {
        remove_in(conn, table, user, domain)?;
        conn.execute(
            &format!("INSERT INTO {table} ({cols}) VALUES ({marks})"),
            &values,
        )
        .map(|_| ())
        .map_err(fail("insert"))
    })
}

fn remove_in(conn: &mut Conn, table: &str, user: &str, domain: &str) -> Result<bool, String> {
    conn.execute(
        &format!("DELETE FROM {table} WHERE username = ? AND domain = ?"),
        &[Value::Text(user.into()), Value::Text(domain.into())],
    )
    .map(|n| n > 0)
    .map_err(fail("delete"))
}

/// Removes a user; false when there was none.
pub fn remove(conn: &mut Conn, table: &str, user: &str, domain: &str) -> Result<bool, String> {
    remove_in(conn, table, user, domain)
}

/// Every user as `user@domain`, sorted.
pub fn list(conn: &mut Conn, table: &str) -> Result<Vec<String>, String> {
    let rows = conn
        .query(
            &format!("SELECT username, domain FROM {table} ORDER BY domain, username"),
            &[],
        )
        .map_err(fail("list"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let t = |i: usize| r.get(i).and_then(Value::text).unwrap_or_default();
            format!("{}@{}", t(0), t(1))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Conn {
        let dir = crate::db::tests_dir("subscriber");
        let url = format!("sqlite://{}/s.db", dir.display());
        open(&url, "subscriber").unwrap()
    }

    #[test]
    fn add_find_remove_list() {
        let mut conn = memory();
        let c = Columns::default();
        add(
            &mut conn,
            "subscriber",
            "bob",
            "example.com",
            "secret",
            true,
        )
        .unwrap();
        add(&mut conn, "subscriber", "alice", "example.com", "pw", false).unwrap();
        // Replacing keeps one row.
        add(
            &mut conn,
            "subscriber",
            "bob",
            "example.com",
            "secret",
            true,
        )
        .unwrap();
        let s = find(&mut conn, "subscriber", &c, "bob", Some("example.com"))
            .unwrap()
            .unwrap();
        assert_eq!(s.password.as_deref(), Some("secret"));
        // use_domain=0: the user name alone finds it.
        assert!(
            find(&mut conn, "subscriber", &c, "bob", None)
                .unwrap()
                .is_some()
        );
        let from_password = s.ha1(Algorithm::Md5, b"bob", b"example.com").unwrap();
        let stored = Secret {
            password: None,
            ..s.clone()
        };
        assert_eq!(
            stored.ha1(Algorithm::Md5, b"bob", b"example.com").unwrap(),
            from_password
        );
        assert_eq!(
            list(&mut conn, "subscriber").unwrap(),
            vec!["alice@example.com", "bob@example.com"]
        );
        assert!(remove(&mut conn, "subscriber", "bob", "example.com").unwrap());
        assert!(!remove(&mut conn, "subscriber", "bob", "example.com").unwrap());
        assert!(
            find(&mut conn, "subscriber", &c, "bob", Some("example.com"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn without_the_password_kept_the_hashes_serve() {
        let mut conn = memory();
        let c = Columns {
            sha256: None, // Kamailio 5's table has no SHA-256 column
            ..Columns::default()
        };
        add(&mut conn, "subscriber", "alice", "example.com", "pw", false).unwrap();
        let s = find(&mut conn, "subscriber", &c, "alice", Some("example.com"))
            .unwrap()
            .unwrap();
        assert_eq!(s.password, None);
        assert_eq!(
            s.ha1(Algorithm::Md5, b"alice", b"example.com"),
            Some(ha1(Algorithm::Md5, b"alice", b"example.com", b"pw"))
        );
        // Kamailio's ha1b: the user written as user@domain.
        assert_eq!(
            s.ha1(Algorithm::Md5, b"alice@example.com", b"example.com"),
            Some(ha1(
                Algorithm::Md5,
                b"alice@example.com",
                b"example.com",
                b"pw"
            ))
        );
        assert_eq!(s.ha1(Algorithm::Sha256, b"alice", b"example.com"), None);
    }
}
