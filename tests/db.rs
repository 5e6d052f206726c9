//! rser's database layer against real servers: MariaDB and PostgreSQL on
//! 127.0.0.1 (tests/setup.sh starts them, with a user `rser`), and SQLite;
//! each test in a database of its own, dropped after.

use std::time::{Duration, Instant};

use rser::db::DbUrl;
use rser::db::conn::{Conn, Value};

mod common;

use common::db::{Scratch, TIMEOUT};

/// The same statements on every backend: a table, rows with text,
/// numbers and NULL, parameters, an update, what was changed.
fn round_trip(url: &DbUrl) {
    let mut c = Conn::open(url, TIMEOUT).unwrap();
    c.batch(
        "CREATE TABLE subscriber (id INTEGER PRIMARY KEY, username VARCHAR(64) NOT NULL, \
         domain VARCHAR(64) NOT NULL, ha1 VARCHAR(128), expires INTEGER)",
    )
    .unwrap();
    for (i, user) in ["alice", "bob"].iter().enumerate() {
        let n = c
            .execute(
                "INSERT INTO subscriber (id, username, domain, ha1, expires) VALUES (?, ?, ?, ?, ?)",
                &[
                    Value::Int(i as i64 + 1),
                    Value::Text(user.to_string()),
                    Value::Text("example.net".into()),
                    if i == 0 { Value::Text("0123abcd".into()) } else { Value::Null },
                    Value::Int(3600),
                ],
            )
            .unwrap();
        assert_eq!(n, 1, "{url}");
    }
    let rows = c
        .query(
            "SELECT username, ha1, expires FROM subscriber WHERE domain = ? ORDER BY id",
            &[Value::Text("example.net".into())],
        )
        .unwrap();
    assert_eq!(rows.len(), 2, "{url}");
    assert_eq!(rows[0][0].as_str(), Some("alice"));
    assert_eq!(rows[0][1].as_str(), Some("0123abcd"));
    assert_eq!(rows[1][1], Value::Null, "{url}");
    assert_eq!(rows[1][2].as_int(), Some(3600), "{url}");
    let n = c
        .execute(
            "UPDATE subscriber SET expires = ? WHERE username = ?",
            &[Value::Int(60), Value::Text("bob".into())],
        )
        .unwrap();
    assert_eq!(n, 1, "{url}");
    let rows = c
        .query(
            "SELECT expires FROM subscriber WHERE username = ?",
            &[Value::Text("bob".into())],
        )
        .unwrap();
    assert_eq!(rows[0][0].as_int(), Some(60), "{url}");
}

#[test]
fn the_same_statements_work_on_mariadb_postgresql_and_sqlite() {
    let my = Scratch::new("mysql", "roundtrip");
    round_trip(&my.url);
    let pg = Scratch::new("postgres", "roundtrip");
    round_trip(&pg.url);
    let dir = std::env::temp_dir().join(format!("rser-db-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lite = DbUrl::parse(&format!("sqlite://{}/t.db", dir.display())).unwrap();
    round_trip(&lite);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A wrong password is an error that does not show it; a server that is
/// not there is an error within the timeout.
#[test]
fn failures_are_bounded_and_show_no_password() {
    for server in ["mysql", "postgres"] {
        let url =
            DbUrl::parse(&format!("{server}://rser:not-the-password@127.0.0.1/rser")).unwrap();
        let e = Conn::open(&url, TIMEOUT).err().expect("refused");
        assert!(!e.0.contains("not-the-password"), "{e}");
        assert!(e.0.contains(":***@"), "{e}");
        // A closed port on loopback: refused at once.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let url = DbUrl::parse(&format!("{server}://rser:rser@{closed}/x")).unwrap();
        let t0 = Instant::now();
        assert!(Conn::open(&url, TIMEOUT).is_err());
        assert!(t0.elapsed() < TIMEOUT + Duration::from_secs(1), "{server}");
    }
}

/// Kamailio's own scripts (Debian's kamailio-mysql-modules and
/// kamailio-postgres-modules ship them) make tables rser's check accepts;
/// the tables rser makes pass it too; a missing table and another version
/// are each named.
#[test]
fn kamailios_schema_and_rsers_are_the_same() {
    use rser::db::schema::{self, Dialect};
    let wanted = [
        "subscriber",
        "location",
        "dispatcher",
        "acc",
        "missed_calls",
        "pl_pipes",
    ];
    for (server, dialect) in [("mysql", Dialect::Mysql), ("postgres", Dialect::Postgres)] {
        let theirs = Scratch::new(server, "kamschema");
        theirs.kamailio_tables(&["auth_db", "usrloc", "dispatcher", "acc", "pipelimit"]);
        let mut c = theirs.conn();
        let problems = schema::check(&mut c, &wanted).unwrap();
        assert!(problems.is_empty(), "{server}: {problems:?}");

        let ours = Scratch::new(server, "rserschema");
        let mut c = Conn::open(&ours.url, TIMEOUT).unwrap();
        let made = schema::init(&mut c, dialect, &wanted).unwrap();
        assert_eq!(made.len(), wanted.len() + 1, "{server}: {made:?}");
        assert!(
            schema::check(&mut c, &wanted).unwrap().is_empty(),
            "{server}"
        );
        assert!(
            schema::init(&mut c, dialect, &wanted).unwrap().is_empty(),
            "twice: nothing new"
        );
        c.execute(
            "UPDATE version SET table_version = ? WHERE table_name = ?",
            &[Value::Int(6), Value::Text("location".into())],
        )
        .unwrap();
        c.execute(
            "DELETE FROM version WHERE table_name = ?",
            &[Value::Text("acc".into())],
        )
        .unwrap();
        let problems = schema::check(&mut c, &wanted).unwrap();
        assert_eq!(
            problems,
            [
                "table location: version 6, rser reads version 9",
                "table acc: missing (no row in version)"
            ],
            "{server}"
        );
    }
}
