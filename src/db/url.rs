//! `db_url`: which database server (or file) and how to reach it, as
//! Kamailio writes it: `sqlite:///path`, `mysql://user:password@host[:port]/db`
//! (MySQL and MariaDB), `postgres://...` (or `postgresql://`). Parsing is
//! pure; the password is kept out of every text shown (`Display` masks it),
//! so it never reaches a log line, `core.ps` or `rser -c`.

use std::fmt;
use std::path::PathBuf;

/// A server's address and credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Server {
    pub user: String,
    pub password: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub database: String,
}

/// A parsed `db_url`.
#[derive(Clone, PartialEq, Eq)]
pub enum DbUrl {
    Sqlite(PathBuf),
    Mysql(Server),
    Postgres(Server),
}

/// `%XX` escapes in a user name or password (RFC 3986 §2.1).
fn unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a bad %-escape")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8 once unescaped".to_string())
}

fn server(rest: &str) -> Result<Server, String> {
    // The credentials end at the last '@' (a password may hold one
    // escaped or not).
    let (creds, at) = rest.rsplit_once('@').ok_or("no user@host")?;
    let (user, password) = match creds.split_once(':') {
        Some((u, p)) => (unescape(u)?, Some(unescape(p)?)),
        None => (unescape(creds)?, None),
    };
    if user.is_empty() {
        return Err("no user".into());
    }
    let (hostport, database) = at.split_once('/').ok_or("no /database")?;
    if database.is_empty() || database.contains('/') {
        return Err(format!("'{database}' is not a database name"));
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("'{p}' is not a port"))?;
            (h, Some(port))
        }
        _ => (hostport, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("no host".into());
    }
    Ok(Server {
        user,
        password,
        host: host.to_string(),
        port,
        database: database.to_string(),
    })
}

impl DbUrl {
    pub fn parse(url: &str) -> Result<DbUrl, String> {
        let bad = |e: String| format!("db_url {}: {e}", Masked(url));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("not SCHEME://...".into()))?;
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" if rest.is_empty() => Err(bad("names no file".into())),
            "sqlite" => Ok(DbUrl::Sqlite(PathBuf::from(rest))),
            "mysql" => server(rest).map(DbUrl::Mysql).map_err(bad),
            "postgres" | "postgresql" => server(rest).map(DbUrl::Postgres).map_err(bad),
            "redis" => Err(bad(
                "Redis keeps usrloc's shared location table only, not SQL tables".into(),
            )),
            other => Err(bad(format!(
                "'{other}': sqlite, mysql, postgres or postgresql"
            ))),
        }
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, s) = match self {
            DbUrl::Sqlite(p) => return write!(f, "sqlite://{}", p.display()),
            DbUrl::Mysql(s) => ("mysql", s),
            DbUrl::Postgres(s) => ("postgres", s),
        };
        write!(f, "{scheme}://{}", s.user)?;
        if s.password.is_some() {
            f.write_str(":***")?;
        }
        let host = match s.host.contains(':') {
            true => format!("[{}]", s.host),
            false => s.host.clone(),
        };
        write!(f, "@{host}")?;
        if let Some(p) = s.port {
            write!(f, ":{p}")?;
        }
        write!(f, "/{}", s.database)
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A URL as given, its password masked, for a message about a URL that
/// may not parse.
pub struct Masked<'a>(pub &'a str);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.0;
        let (scheme, rest) = match url.split_once("://") {
            Some((s, r)) => (&url[..s.len() + 3], r),
            None => ("", url),
        };
        match rest.rsplit_once('@') {
            Some((creds, at)) => {
                let user = creds.split_once(':').map_or(creds, |(u, _)| u);
                let masked = if creds.contains(':') { ":***" } else { "" };
                write!(f, "\"{scheme}{user}{masked}@{at}\"")
            }
            None => write!(f, "\"{url}\""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kamailios_urls_parse_and_show_no_password() {
        let u = DbUrl::parse("mysql://ser:heslo@localhost/ser").unwrap();
        let DbUrl::Mysql(s) = &u else { panic!("{u}") };
        assert_eq!(
            (
                s.user.as_str(),
                s.password.as_deref(),
                s.host.as_str(),
                s.port,
                s.database.as_str()
            ),
            ("ser", Some("heslo"), "localhost", None, "ser")
        );
        assert_eq!(u.to_string(), "mysql://ser:***@localhost/ser");
        assert!(!format!("{u:?}").contains("heslo"));
        let u = DbUrl::parse("postgresql://kamailio:p%40ss@[::1]:5433/kamailio").unwrap();
        let DbUrl::Postgres(s) = &u else {
            panic!("{u}")
        };
        assert_eq!(
            (s.password.as_deref(), s.host.as_str(), s.port),
            (Some("p@ss"), "::1", Some(5433))
        );
        assert_eq!(u.to_string(), "postgres://kamailio:***@[::1]:5433/kamailio");
        let u = DbUrl::parse("postgres://root@127.0.0.1:5432/test").unwrap();
        assert_eq!(u.to_string(), "postgres://root@127.0.0.1:5432/test");
        assert_eq!(
            DbUrl::parse("sqlite:///var/lib/rser/loc.db").unwrap(),
            DbUrl::Sqlite("/var/lib/rser/loc.db".into())
        );
    }

    #[test]
    fn bad_urls_are_errors_that_show_no_password() {
        for bad in [
            "mysql://ser:heslo@localhost",
            "mysql://ser:heslo@/ser",
            "mysql://:heslo@h/ser",
            "mysql://ser:heslo@h:99999/ser",
            "oracle://ser:heslo@h/ser",
            "mysql://ser:he%zzslo@h/ser",
            "sqlite://",
            "ser:heslo@h/ser",
        ] {
            let e = DbUrl::parse(bad).unwrap_err();
            assert!(
                !e.contains("heslo") && !e.contains("he%zzslo"),
                "{bad}: {e}"
            );
        }
    }
}
