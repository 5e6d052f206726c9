//! `rserctl subscriber add|rm|list`: the users auth checks, in the
//! database the config's `auth_db` (or `auth`) `db_url` names, or `--db`.

use rser::modules::auth::{Params, subscriber};

/// The database URL: `--db`, else the config's auth `db_url`.
pub fn db_url(db: Option<&str>, config: Option<&str>) -> Result<String, String> {
    if let Some(url) = db {
        return Ok(url.to_string());
    }
    let Some(path) = config else {
        return Err("say where the subscribers are: --db URL (sqlite:///path, mysql://..., postgres://...) or -f ser.cfg".into());
    };
    let config = crate::load_config(path)?;
    Params::from_config(&config)
        .db_url
        .ok_or_else(|| format!("{path} sets no auth_db db_url"))
}

/// `user@domain` split; both parts required.
pub fn split_user(s: &str) -> Result<(&str, &str), String> {
    match s.split_once('@') {
        Some((u, d)) if !u.is_empty() && !d.is_empty() => Ok((u, d)),
        _ => Err(format!("{s:?}: expected USER@DOMAIN")),
    }
}

pub enum Command<'a> {
    /// `keep_password`: store the password itself as well as its hashes.
    Add {
        user: &'a str,
        password: &'a str,
        keep_password: bool,
    },
    Remove {
        user: &'a str,
    },
    List,
}

/// Runs one subcommand on the `table` of the database at `url`; returns
/// what to print.
pub fn run(url: &str, table: &str, cmd: Command<'_>) -> Result<String, String> {
    let mut conn = subscriber::open(url, table)?;
    match cmd {
        Command::Add {
            user,
            password,
            keep_password,
        } => {
            let (u, d) = split_user(user)?;
            if password.is_empty() {
                return Err("the password is empty".into());
            }
            subscriber::add(&mut conn, table, u, d, password, keep_password)?;
            Ok(format!("{user} added"))
        }
        Command::Remove { user } => {
            let (u, d) = split_user(user)?;
            match subscriber::remove(&mut conn, table, u, d)? {
                true => Ok(format!("{user} removed")),
                false => Err(format!("{user}: no such subscriber")),
            }
        }
        Command::List => Ok(subscriber::list(&mut conn, table)?.join("\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_list_remove_through_a_config() {
        let dir = std::env::temp_dir().join(format!("rserctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("s.db").display());
        let cfg = dir.join("ser.cfg");
        std::fs::write(
            &cfg,
            format!("loadmodule \"auth_db.so\"\nmodparam(\"auth_db\", \"db_url\", \"{url}\")\nroute {{ break; }}\n"),
        )
        .unwrap();
        let url = db_url(None, Some(cfg.to_str().unwrap())).unwrap();
        let add = |u, p| {
            run(
                &url,
                "subscriber",
                Command::Add {
                    user: u,
                    password: p,
                    keep_password: false,
                },
            )
        };
        add("bob@example.com", "pw").unwrap();
        add("alice@example.com", "pw2").unwrap();
        assert!(add("nodomain", "pw").is_err());
        assert_eq!(
            run(&url, "subscriber", Command::List).unwrap(),
            "alice@example.com\nbob@example.com"
        );
        run(
            &url,
            "subscriber",
            Command::Remove {
                user: "bob@example.com",
            },
        )
        .unwrap();
        assert!(
            run(
                &url,
                "subscriber",
                Command::Remove {
                    user: "bob@example.com"
                }
            )
            .is_err()
        );
        assert_eq!(
            run(&url, "subscriber", Command::List).unwrap(),
            "alice@example.com"
        );
        assert!(db_url(None, None).is_err());
        // Created private: it holds credentials.
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("s.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let mut conn = rser::db::open(&url).unwrap();
        let rows = conn.query("SELECT password FROM subscriber", &[]).unwrap();
        assert_eq!(
            rows[0][0],
            rser::db::conn::Value::Text(String::new()),
            "HA1 only unless asked"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The same commands against MariaDB and PostgreSQL (tests/setup.sh
/// starts them with a user `rser`), on tables `rserctl db init` made.
#[cfg(test)]
mod servers {
    use super::*;
    use rser::db::DbUrl;
    use rser::db::conn::Conn;
    use rser::db::schema::{self, Dialect};

    #[test]
    fn add_list_remove_on_each_server() {
        let t = std::time::Duration::from_secs(3);
        for (server, dialect) in [("mysql", Dialect::Mysql), ("postgres", Dialect::Postgres)] {
            let admin_db = if server == "mysql" {
                "mysql"
            } else {
                "postgres"
            };
            let admin =
                DbUrl::parse(&format!("{server}://rser:rser@127.0.0.1/{admin_db}")).unwrap();
            let mut admin =
                Conn::open(&admin, t).unwrap_or_else(|e| panic!("{e} (run `bash tests/setup.sh`)"));
            let name = format!("rserctl_{}", std::process::id());
            let _ = admin.batch(&format!("DROP DATABASE IF EXISTS {name}"));
            admin.batch(&format!("CREATE DATABASE {name}")).unwrap();
            let url = format!("{server}://rser:rser@127.0.0.1/{name}");
            // No table yet: said, not made (the operator's database).
            let e = run(&url, "subscriber", Command::List).unwrap_err();
            assert!(e.contains("rserctl db init"), "{e}");
            let mut c = Conn::open(&DbUrl::parse(&url).unwrap(), t).unwrap();
            schema::init(&mut c, dialect, &["subscriber"]).unwrap();
            let add = |u| {
                run(
                    &url,
                    "subscriber",
                    Command::Add {
                        user: u,
                        password: "pw",
                        keep_password: true,
                    },
                )
            };
            add("bob@example.com").unwrap();
            add("alice@example.com").unwrap();
            add("bob@example.com").unwrap(); // replaced, not doubled
            assert_eq!(
                run(&url, "subscriber", Command::List).unwrap(),
                "alice@example.com\nbob@example.com",
                "{server}"
            );
            let rm = || {
                run(
                    &url,
                    "subscriber",
                    Command::Remove {
                        user: "bob@example.com",
                    },
                )
            };
            rm().unwrap();
            assert!(rm().is_err(), "{server}");
            drop(c);
            let _ = admin.batch(&format!("DROP DATABASE IF EXISTS {name}"));
        }
    }
}
