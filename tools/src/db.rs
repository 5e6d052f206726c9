//! `rserctl db init|check URL [TABLE...]`: Kamailio's schema for rser's
//! tables (`kamdbctl create`'s, for the tables rser uses) made in a
//! database, or checked there (missing tables, other versions).

use std::time::Duration;

use rser::db::DbUrl;
use rser::db::conn::Conn;
use rser::db::schema::{self, Dialect};

const TIMEOUT: Duration = Duration::from_secs(10);

fn open(url: &str) -> Result<(Conn, Dialect), String> {
    let url = DbUrl::parse(url)?;
    let dialect = match &url {
        DbUrl::Mysql(_) => Dialect::Mysql,
        DbUrl::Postgres(_) => Dialect::Postgres,
        DbUrl::Sqlite(_) => Dialect::Sqlite,
    };
    Ok((Conn::open(&url, TIMEOUT).map_err(|e| e.0)?, dialect))
}

/// The tables asked for, or every one rser uses.
fn tables(asked: &[String]) -> Vec<&str> {
    match asked.is_empty() {
        true => schema::TABLES.iter().skip(1).map(|t| t.name).collect(),
        false => asked.iter().map(String::as_str).collect(),
    }
}

/// Creates what is missing; says what it created.
pub fn init(url: &str, asked: &[String]) -> Result<String, String> {
    let (mut c, d) = open(url)?;
    let made = schema::init(&mut c, d, &tables(asked)).map_err(|e| e.0)?;
    Ok(match made.is_empty() {
        true => "every table was there".into(),
        false => format!("created: {}", made.join(", ")),
    })
}

/// Ok when every table is there at the version rser reads; else each
/// problem on a line.
pub fn check(url: &str, asked: &[String]) -> Result<String, String> {
    let (mut c, _) = open(url)?;
    let problems = schema::check(&mut c, &tables(asked)).map_err(|e| e.0)?;
    match problems.is_empty() {
        true => Ok(format!(
            "{}: every table at its version",
            tables(asked).join(", ")
        )),
        false => Err(problems.join("\n")),
    }
}
