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

/// pipelimit's pipes (Kamailio's `pl_pipes`).
pub const PL_PIPES: Table = Table {
    name: "pl_pipes",
    version: 1,
    columns: &[
        ID,
        col("pipeid", Kind::Varchar(64), EMPTY),
        col("algorithm", Kind::Varchar(32), EMPTY),
        col("plimit", Kind::Int, ZERO),
    ],
    unique: &[],
    indexes: &[],
};

/// Every table rser knows, `version` first.
pub const TABLES: &[Table] = &[
    VERSION,
    SUBSCRIBER,
    LOCATION,
    DISPATCHER,
    ACC,
    MISSED_CALLS,
    PL_PIPES,
];

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
    create_as(d, t, t.name, &[])
}

/// The statements creating a table of `t`'s shape named `name`, with
/// `extra` text columns after its own (acc's `db_extra`).
pub fn create_as(d: Dialect, t: &Table, name: &str, extra: &[String]) -> String {
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
    for e in extra {
        cols.push(format!("{} VARCHAR(255) DEFAULT NULL", quoted(d, e)));
    }
    // PostgreSQL's index names are per schema: prefixed as Kamailio's.
    let table = name;
    let index = |name: &str, on: &[&str]| {
        let name = match d {
            Dialect::Mysql => name.to_string(),
            _ => format!("{table}_{name}"),
        };
        let on: Vec<String> = on.iter().map(|c| quoted(d, c)).collect();
        (name, on.join(", "))
    };
    for (name, on) in t.unique {
        let (name, on) = index(name, on);
        cols.push(format!("CONSTRAINT {name} UNIQUE ({on})"));
    }
    let mut sql = format!("CREATE TABLE {table} (\n    {}\n);\n", cols.join(",\n    "));
    for (name, on) in t.indexes {
        let (name, on) = index(name, on);
        sql.push_str(&format!("CREATE INDEX {name} ON {table} ({on});\n"));
    }
    sql.push_str(&format!(
        "INSERT INTO version (table_name, table_version) VALUES ('{table}', {});\n",
        t.version
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

/// A table a module uses: its name, Kamailio's shape, and the columns
/// the module reads or writes (their names may be parameters).
pub struct Need {
    pub name: String,
    pub shape: &'static Table,
    pub columns: Vec<String>,
    /// Columns beyond the shape's the module uses (acc's `db_extra`),
    /// created with an embedded database.
    pub extra: Vec<String>,
    /// Columns beyond the shape's used when there (the SHA-256 HA1),
    /// created with an embedded database.
    pub optional: Vec<String>,
}

impl Need {
    /// `shape` under `name`, every column but the surrogate key used.
    pub fn of(shape: &'static Table, name: &str) -> Need {
        Need {
            name: name.to_string(),
            shape,
            columns: shape
                .columns
                .iter()
                .filter(|c| c.kind != Kind::Id)
                .map(|c| c.name.to_string())
                .collect(),
            extra: Vec::new(),
            optional: Vec::new(),
        }
    }
}

/// At start: each needed table there, at the version rser reads, with
/// the columns used, or one error naming every problem. An embedded
/// (SQLite) database is rser's own: what is missing there is created;
/// a server's tables are the operator's (`rserctl db init` makes them).
pub fn prepare(c: &mut Conn, d: Dialect, needs: &[Need]) -> Result<(), String> {
    let fail = |e: DbError| e.0;
    if d == Dialect::Sqlite {
        if c.query("SELECT COUNT(*) FROM version", &[]).is_err() {
            c.batch(&create(d, &VERSION)).map_err(fail)?;
        }
        for n in needs {
            let probe = format!("SELECT COUNT(*) FROM {} WHERE 1 = 0", n.name);
            if c.query(&probe, &[]).is_err() {
                let extra: Vec<String> = n.extra.iter().chain(&n.optional).cloned().collect();
                c.batch(&create_as(d, n.shape, &n.name, &extra))
                    .map_err(fail)?;
                continue;
            }
            // A table an earlier rser made before it kept `version`.
            let listed = c
                .query(
                    "SELECT table_version FROM version WHERE table_name = ?",
                    &[Value::Text(n.name.clone())],
                )
                .map_err(fail)?;
            if listed.is_empty() {
                c.execute(
                    "INSERT INTO version (table_name, table_version) VALUES (?, ?)",
                    &[
                        Value::Text(n.name.clone()),
                        Value::Int(i64::from(n.shape.version)),
                    ],
                )
                .map_err(fail)?;
            }
        }
    }
    let mut problems = Vec::new();
    let rows = match c.query("SELECT table_name, table_version FROM version", &[]) {
        Ok(r) => r,
        Err(e) => {
            return Err(format!(
                "table version: cannot be read ({e}); `rserctl db init URL` creates Kamailio's tables"
            ));
        }
    };
    for n in needs {
        let version = rows
            .iter()
            .find(|r| r.first().and_then(Value::as_str) == Some(&n.name))
            .and_then(|r| r.get(1).and_then(Value::as_int));
        match version {
            None => problems.push(format!(
                "table {}: missing (no row in version; `rserctl db init URL` creates it)",
                n.name
            )),
            Some(v) if v != i64::from(n.shape.version) => problems.push(format!(
                "table {}: version {v}, rser reads Kamailio's version {} of {}",
                n.name, n.shape.version, n.shape.name
            )),
            Some(_) => {
                let cols: Vec<&String> = n.columns.iter().chain(&n.extra).collect();
                let list: Vec<&str> = cols.iter().map(|c| c.as_str()).collect();
                let probe = format!("SELECT {} FROM {} WHERE 1 = 0", list.join(", "), n.name);
                if let Err(e) = c.query(&probe, &[]) {
                    problems.push(format!(
                        "table {}: lacks a column rser uses ({}): {e}",
                        n.name,
                        list.join(", ")
                    ));
                }
            }
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems.join("; ")),
    }
}

/// Opens `url` and prepares `needs` there (start-up, in the master).
pub fn open_prepared(
    url: &super::DbUrl,
    needs: &[Need],
    timeout: std::time::Duration,
) -> Result<Conn, String> {
    let mut c = Conn::open(url, timeout).map_err(|e| e.0)?;
    prepare(&mut c, dialect(url), needs).map_err(|e| format!("database {url}: {e}"))?;
    Ok(c)
}

/// The statements' dialect for a URL.
pub fn dialect(url: &super::DbUrl) -> Dialect {
    match url {
        super::DbUrl::Mysql(_) => Dialect::Mysql,
        super::DbUrl::Postgres(_) => Dialect::Postgres,
        super::DbUrl::Sqlite(_) => Dialect::Sqlite,
    }
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
