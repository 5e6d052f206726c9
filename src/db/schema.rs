//! Kamailio 5.x's schema for the tables rser's modules use: names,
//! columns and the versions its `version` table records, so a database
//! Kamailio's scripts made (`kamdbctl create`) serves rser, and one rser
//! makes (`rserctl db init`) serves Kamailio. The statements are written
//! per server from one description.

use super::conn::{Conn, DbError, Value};

/// A column's kind, written in each server's own type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The table's surrogate key.
    Id,
    Int,
    Varchar(u16),
    DateTime,
    Float,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    /// SQL literal, as Kamailio's scripts give it.
    pub default: Option<&'static str>,
    pub not_null: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub version: u32,
    pub columns: &'static [Column],
    /// Unique constraints: name, columns.
    pub unique: &'static [(&'static str, &'static [&'static str])],
    pub indexes: &'static [(&'static str, &'static [&'static str])],
}

/// Which server the statements are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Mysql,
    Postgres,
    Sqlite,
}

const fn col(name: &'static str, kind: Kind, default: Option<&'static str>) -> Column {
    Column {
        name,
        kind,
        default,
        not_null: true,
    }
}

const fn nullable(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        default: Some("NULL"),
        not_null: false,
    }
}

const ID: Column = col("id", Kind::Id, None);
const EMPTY: Option<&str> = Some("''");
const ZERO: Option<&str> = Some("0");

pub const VERSION: Table = Table {
    name: "version",
    version: 1,
    columns: &[
        ID,
        col("table_name", Kind::Varchar(32), None),
        col("table_version", Kind::Int, ZERO),
    ],
    unique: &[("table_name_idx", &["table_name"])],
    indexes: &[],
};

pub const SUBSCRIBER: Table = Table {
    name: "subscriber",
    version: 7,
    columns: &[
        ID,
        col("username", Kind::Varchar(64), EMPTY),
        col("domain", Kind::Varchar(64), EMPTY),
        col("password", Kind::Varchar(64), EMPTY),
        col("ha1", Kind::Varchar(128), EMPTY),
        col("ha1b", Kind::Varchar(128), EMPTY),
    ],
    unique: &[("account_idx", &["username", "domain"])],
    indexes: &[("username_idx", &["username"])],
};

pub const LOCATION: Table = Table {
    name: "location",
    version: 9,
    columns: &[
        ID,
        col("ruid", Kind::Varchar(64), EMPTY),
        col("username", Kind::Varchar(64), EMPTY),
        nullable("domain", Kind::Varchar(64)),
        col("contact", Kind::Varchar(512), EMPTY),
        nullable("received", Kind::Varchar(128)),
        nullable("path", Kind::Varchar(512)),
        col("expires", Kind::DateTime, Some("'2030-05-28 21:32:15'")),
        col("q", Kind::Float, Some("1.0")),
        col("callid", Kind::Varchar(255), Some("'Default-Call-ID'")),
        col("cseq", Kind::Int, Some("1")),
        col(
            "last_modified",
            Kind::DateTime,
            Some("'2000-01-01 00:00:01'"),
        ),
        col("flags", Kind::Int, ZERO),
        col("cflags", Kind::Int, ZERO),
        col("user_agent", Kind::Varchar(255), EMPTY),
        nullable("socket", Kind::Varchar(64)),
        nullable("methods", Kind::Int),
        nullable("instance", Kind::Varchar(255)),
        col("reg_id", Kind::Int, ZERO),
        col("server_id", Kind::Int, ZERO),
        col("connection_id", Kind::Int, ZERO),
        col("keepalive", Kind::Int, ZERO),
        col("partition", Kind::Int, ZERO),
    ],
    unique: &[("ruid_idx", &["ruid"])],
    indexes: &[
        ("account_contact_idx", &["username", "domain", "contact"]),
        ("expires_idx", &["expires"]),
        ("tcpcon_idx", &["connection_id"]),
        ("connection_idx", &["server_id", "connection_id"]),
    ],
};

pub const DISPATCHER: Table = Table {
    name: "dispatcher",
    version: 4,
    columns: &[
        ID,
        col("setid", Kind::Int, ZERO),
        col("destination", Kind::Varchar(192), EMPTY),
        col("flags", Kind::Int, ZERO),
        col("priority", Kind::Int, ZERO),
        col("attrs", Kind::Varchar(128), EMPTY),
        col("description", Kind::Varchar(64), EMPTY),
    ],
    unique: &[],
    indexes: &[],
};

const CALL_RECORD: &[Column] = &[
    ID,
    col("method", Kind::Varchar(16), EMPTY),
    col("from_tag", Kind::Varchar(128), EMPTY),
    col("to_tag", Kind::Varchar(128), EMPTY),
    col("callid", Kind::Varchar(255), EMPTY),
    col("sip_code", Kind::Varchar(3), EMPTY),
    col("sip_reason", Kind::Varchar(128), EMPTY),
    col("time", Kind::DateTime, None),
];

pub const ACC: Table = Table {
    name: "acc",
    version: 5,
    columns: CALL_RECORD,
    unique: &[],
    indexes: &[("callid_idx", &["callid"])],
};

pub const MISSED_CALLS: Table = Table {
    name: "missed_calls",
    version: 4,
    columns: CALL_RECORD,
    unique: &[],
    indexes: &[("callid_idx", &["callid"])],
};

/// Every table rser knows, `version` first.
pub const TABLES: &[Table] = &[VERSION, SUBSCRIBER, LOCATION, DISPATCHER, ACC, MISSED_CALLS];

fn quoted(d: Dialect, name: &str) -> String {
    match d {
        Dialect::Mysql => format!("`{name}`"),
        _ => format!("\"{name}\""),
    }
}

fn type_of(d: Dialect, k: Kind) -> String {
    match (d, k) {
        (Dialect::Mysql, Kind::Id) => "INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY".into(),
        (Dialect::Postgres, Kind::Id) => "SERIAL PRIMARY KEY".into(),
        (Dialect::Sqlite, Kind::Id) => "INTEGER PRIMARY KEY".into(),
        (Dialect::Mysql, Kind::Int) => "INT(11)".into(),
        (_, Kind::Int) => "INTEGER".into(),
        (_, Kind::Varchar(n)) => format!("VARCHAR({n})"),
        (Dialect::Mysql, Kind::DateTime) => "DATETIME".into(),
        (Dialect::Postgres, Kind::DateTime) => "TIMESTAMP WITHOUT TIME ZONE".into(),
        (Dialect::Sqlite, Kind::DateTime) => "TIMESTAMP".into(),
        (Dialect::Mysql, Kind::Float) => "FLOAT(10,2)".into(),
        (_, Kind::Float) => "REAL".into(),
    }
}

/// The statements creating `t` (its indexes and its `version` row).
pub fn create(d: Dialect, t: &Table) -> String {
    let mut cols: Vec<String> = t
        .columns
        .iter()
        .map(|c| {
            let mut s = format!("{} {}", quoted(d, c.name), type_of(d, c.kind));
            if let Some(v) = c.default {
                s.push_str(&format!(" DEFAULT {v}"));
            }
            if c.not_null {
                s.push_str(" NOT NULL");
            }
            s
        })
        .collect();
    // PostgreSQL's index names are per schema: prefixed as Kamailio's.
    let index = |name: &str, on: &[&str]| {
        let name = match d {
            Dialect::Mysql => name.to_string(),
            _ => format!("{}_{name}", t.name),
        };
        let on: Vec<String> = on.iter().map(|c| quoted(d, c)).collect();
        (name, on.join(", "))
    };
    for (name, on) in t.unique {
        let (name, on) = index(name, on);
        cols.push(format!("CONSTRAINT {name} UNIQUE ({on})"));
    }
    let mut sql = format!(
        "CREATE TABLE {} (\n    {}\n);\n",
        t.name,
        cols.join(",\n    ")
    );
    for (name, on) in t.indexes {
        let (name, on) = index(name, on);
        sql.push_str(&format!("CREATE INDEX {name} ON {} ({on});\n", t.name));
    }
    sql.push_str(&format!(
        "INSERT INTO version (table_name, table_version) VALUES ('{}', {});\n",
        t.name, t.version
    ));
    sql
}

/// What is wrong with the tables `wanted` in the database `c` reaches:
/// one line each (missing, or another version than rser reads).
pub fn check(c: &mut Conn, wanted: &[&str]) -> Result<Vec<String>, DbError> {
    let rows = match c.query("SELECT table_name, table_version FROM version", &[]) {
        Ok(r) => r,
        Err(e) => return Ok(vec![format!("table version: cannot be read ({e})")]),
    };
    let version_of = |name: &str| {
        rows.iter()
            .find(|r| r.first().and_then(Value::as_str) == Some(name))
            .and_then(|r| r.get(1).and_then(Value::as_int))
    };
    let mut problems = Vec::new();
    for name in wanted {
        let Some(t) = TABLES.iter().find(|t| t.name == *name) else {
            problems.push(format!("table {name}: not one rser knows"));
            continue;
        };
        match version_of(name) {
            None => problems.push(format!("table {name}: missing (no row in version)")),
            Some(v) if v != i64::from(t.version) => problems.push(format!(
                "table {name}: version {v}, rser reads version {}",
                t.version
            )),
            Some(_) => {
                let probe = format!("SELECT COUNT(*) FROM {name} WHERE 1 = 0");
                if let Err(e) = c.query(&probe, &[]) {
                    problems.push(format!(
                        "table {name}: listed in version but not readable ({e})"
                    ));
                }
            }
        }
    }
    Ok(problems)
}

/// Creates `version` (if missing) and each of `tables` that is missing.
pub fn init(c: &mut Conn, d: Dialect, tables: &[&str]) -> Result<Vec<String>, DbError> {
    let mut created = Vec::new();
    if c.query("SELECT COUNT(*) FROM version", &[]).is_err() {
        c.batch(&create(d, &VERSION))?;
        created.push("version".to_string());
    }
    for name in tables {
        let t = TABLES
            .iter()
            .find(|t| t.name == *name)
            .ok_or_else(|| DbError(format!("table {name}: not one rser knows")))?;
        if t.name == "version"
            || c.query(&format!("SELECT COUNT(*) FROM {name}"), &[])
                .is_ok()
        {
            continue;
        }
        c.batch(&create(d, t))?;
        created.push(t.name.to_string());
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_follow_each_servers_types() {
        let my = create(Dialect::Mysql, &SUBSCRIBER);
        assert!(
            my.contains("`id` INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL"),
            "{my}"
        );
        assert!(
            my.contains("CONSTRAINT account_idx UNIQUE (`username`, `domain`)"),
            "{my}"
        );
        assert!(my.contains("VALUES ('subscriber', 7)"), "{my}");
        let pg = create(Dialect::Postgres, &LOCATION);
        assert!(
            pg.contains(
                "\"expires\" TIMESTAMP WITHOUT TIME ZONE DEFAULT '2030-05-28 21:32:15' NOT NULL"
            ),
            "{pg}"
        );
        assert!(pg.contains("\"domain\" VARCHAR(64) DEFAULT NULL,"), "{pg}");
        assert!(
            pg.contains("CREATE INDEX location_expires_idx ON location (\"expires\");"),
            "{pg}"
        );
    }
}
