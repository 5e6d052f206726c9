//! One connection to any served database (SQLite, MySQL/MariaDB,
//! PostgreSQL) behind one small interface: statements written once with
//! `?` placeholders, values as [`Value`], every network operation bounded
//! by a timeout (`db_timeout`). The client crates (`rusqlite`, `mysql`,
//! `postgres`) speak the wire protocols.
//!
//! Issue 21 builds on this; the modules still open SQLite through
//! `db::connect` until they move over.

use std::time::Duration;

use super::url::{DbUrl, Server};

/// A column's or parameter's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Text(s) => s.trim().parse().ok(),
            Value::Float(f) => Some(*f as i64),
            Value::Null => None,
        }
    }
}

/// A database failure; its text never holds the URL's password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError(pub String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub enum Conn {
    Sqlite(rusqlite::Connection),
    Mysql(Box<mysql::Conn>),
    Postgres(Box<postgres::Client>),
}

/// `?` placeholders as PostgreSQL's `$1`, `$2`... (outside quotes).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let (mut n, mut quoted) = (0, false);
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

fn mysql_opts(s: &Server, timeout: Duration) -> mysql::Opts {
    mysql::OptsBuilder::new()
        .ip_or_hostname(Some(s.host.clone()))
        .tcp_port(s.port.unwrap_or(3306))
        .user(Some(s.user.clone()))
        .pass(s.password.clone())
        .db_name(Some(s.database.clone()))
        .tcp_connect_timeout(Some(timeout))
        .read_timeout(Some(timeout))
        .write_timeout(Some(timeout))
        .into()
}

fn postgres_config(s: &Server, timeout: Duration) -> postgres::Config {
    let mut c = postgres::Config::new();
    c.host(&s.host)
        .port(s.port.unwrap_or(5432))
        .user(&s.user)
        .dbname(&s.database)
        .connect_timeout(timeout);
    if let Some(p) = &s.password {
        c.password(p);
    }
    c
}

impl Conn {
    /// Connects to what `url` names, within `timeout` (and every query
    /// after it bounded by the same).
    pub fn open(url: &DbUrl, timeout: Duration) -> Result<Conn, DbError> {
        let fail = |e: &dyn std::fmt::Display| DbError(format!("database {url}: {e}"));
        match url {
            DbUrl::Sqlite(_) => super::connect(&url.to_string())
                .map(Conn::Sqlite)
                .map_err(DbError),
            DbUrl::Mysql(s) => mysql::Conn::new(mysql_opts(s, timeout))
                .map(|c| Conn::Mysql(Box::new(c)))
                .map_err(|e| fail(&e)),
            DbUrl::Postgres(s) => {
                let mut c = postgres_config(s, timeout)
                    .connect(postgres::NoTls)
                    .map_err(|e| fail(&e))?;
                // The server bounds each statement (the client waits on).
                let ms = timeout.as_millis().max(1);
                c.batch_execute(&format!("SET statement_timeout = {ms}"))
                    .map_err(|e| fail(&e))?;
                Ok(Conn::Postgres(Box::new(c)))
            }
        }
    }

    /// Runs a statement that returns no rows; the rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let err = |e: &dyn std::fmt::Display| DbError(format!("{e}"));
        match self {
            Conn::Sqlite(c) => {
                let p: Vec<rusqlite::types::Value> = params.iter().map(to_sqlite).collect();
                c.execute(sql, rusqlite::params_from_iter(p))
                    .map(|n| n as u64)
                    .map_err(|e| err(&e))
            }
            Conn::Mysql(c) => {
                use mysql::prelude::Queryable;
                let p: Vec<mysql::Value> = params.iter().map(to_mysql).collect();
                c.exec_drop(sql, mysql::Params::Positional(p))
                    .map_err(|e| err(&e))?;
                Ok(c.affected_rows())
            }
            Conn::Postgres(c) => {
                let stmt = c.prepare(&numbered(sql)).map_err(|e| err(&e))?;
                let p = to_postgres(params, stmt.params())?;
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    p.iter().map(|v| v.as_ref() as _).collect();
                c.execute(&stmt, &refs).map_err(|e| err(&e))
            }
        }
    }

    /// Runs a query; its rows, each a value per column.
    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, DbError> {
        let err = |e: &dyn std::fmt::Display| DbError(format!("{e}"));
        match self {
            Conn::Sqlite(c) => {
                let p: Vec<rusqlite::types::Value> = params.iter().map(to_sqlite).collect();
                let mut stmt = c.prepare(sql).map_err(|e| err(&e))?;
                let n = stmt.column_count();
                let rows = stmt
                    .query_map(rusqlite::params_from_iter(p), |r| {
                        (0..n)
                            .map(|i| r.get::<_, rusqlite::types::Value>(i).map(from_sqlite))
                            .collect()
                    })
                    .map_err(|e| err(&e))?;
                rows.collect::<Result<_, _>>().map_err(|e| err(&e))
            }
            Conn::Mysql(c) => {
                use mysql::prelude::Queryable;
                let p: Vec<mysql::Value> = params.iter().map(to_mysql).collect();
                let rows: Vec<mysql::Row> = c
                    .exec(sql, mysql::Params::Positional(p))
                    .map_err(|e| err(&e))?;
                Ok(rows
                    .into_iter()
                    .map(|r| r.unwrap().into_iter().map(from_mysql).collect())
                    .collect())
            }
            Conn::Postgres(c) => {
                let stmt = c.prepare(&numbered(sql)).map_err(|e| err(&e))?;
                let p = to_postgres(params, stmt.params())?;
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    p.iter().map(|v| v.as_ref() as _).collect();
                let rows = c.query(&stmt, &refs).map_err(|e| err(&e))?;
                rows.iter().map(from_postgres).collect()
            }
        }
    }

    /// Runs statements with no parameters (a schema), in one go.
    pub fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        let err = |e: &dyn std::fmt::Display| DbError(format!("{e}"));
        match self {
            Conn::Sqlite(c) => c.execute_batch(sql).map_err(|e| err(&e)),
            Conn::Mysql(c) => {
                use mysql::prelude::Queryable;
                c.query_drop(sql).map_err(|e| err(&e))
            }
            Conn::Postgres(c) => c.batch_execute(sql).map_err(|e| err(&e)),
        }
    }
}

fn to_sqlite(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    match v {
        Value::Null => S::Null,
        Value::Int(i) => S::Integer(*i),
        Value::Float(f) => S::Real(*f),
        Value::Text(t) => S::Text(t.clone()),
    }
}

fn from_sqlite(v: rusqlite::types::Value) -> Value {
    use rusqlite::types::Value as S;
    match v {
        S::Null => Value::Null,
        S::Integer(i) => Value::Int(i),
        S::Real(f) => Value::Float(f),
        S::Text(t) => Value::Text(t),
        S::Blob(b) => Value::Text(String::from_utf8_lossy(&b).into_owned()),
    }
}

fn to_mysql(v: &Value) -> mysql::Value {
    match v {
        Value::Null => mysql::Value::NULL,
        Value::Int(i) => mysql::Value::Int(*i),
        Value::Float(f) => mysql::Value::Double(*f),
        Value::Text(t) => mysql::Value::Bytes(t.as_bytes().to_vec()),
    }
}

fn from_mysql(v: mysql::Value) -> Value {
    match v {
        mysql::Value::NULL => Value::Null,
        mysql::Value::Int(i) => Value::Int(i),
        mysql::Value::UInt(u) => Value::Int(u as i64),
        mysql::Value::Float(f) => Value::Float(f64::from(f)),
        mysql::Value::Double(f) => Value::Float(f),
        // Text protocol values, and dates as text.
        mysql::Value::Bytes(b) => Value::Text(String::from_utf8_lossy(&b).into_owned()),
        other => Value::Text(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

type PgParam = Box<dyn postgres::types::ToSql + Sync>;

/// Values as the types the prepared statement wants (PostgreSQL converts
/// nothing on its own: an `int8` for an `integer` column is refused).
fn to_postgres(params: &[Value], types: &[postgres::types::Type]) -> Result<Vec<PgParam>, DbError> {
    use postgres::types::Type;
    if params.len() != types.len() {
        return Err(DbError(format!(
            "{} parameters for {} placeholders",
            params.len(),
            types.len()
        )));
    }
    params
        .iter()
        .zip(types)
        .map(|(v, t)| -> Result<PgParam, DbError> {
            let int = || {
                v.as_int()
                    .ok_or_else(|| DbError(format!("{v:?} is not a number for a {t} column")))
            };
            let narrow = |e| DbError(format!("{v:?} is out of range for {t}: {e}"));
            Ok(match v {
                Value::Null => Box::new(Option::<String>::None),
                _ if *t == Type::INT2 => Box::new(i16::try_from(int()?).map_err(narrow)?),
                _ if *t == Type::INT4 => Box::new(i32::try_from(int()?).map_err(narrow)?),
                _ if *t == Type::INT8 => Box::new(int()?),
                Value::Float(f) if *t == Type::FLOAT4 => Box::new(*f as f32),
                Value::Float(f) => Box::new(*f),
                Value::Int(i) if *t == Type::FLOAT8 => Box::new(*i as f64),
                Value::Int(i) => Box::new(i.to_string()),
                Value::Text(s) => Box::new(s.clone()),
            })
        })
        .collect()
}

fn from_postgres(row: &postgres::Row) -> Result<Vec<Value>, DbError> {
    use postgres::types::Type;
    let err = |e: postgres::Error| DbError(e.to_string());
    (0..row.len())
        .map(|i| {
            let t = row.columns()[i].type_();
            Ok(if *t == Type::INT2 {
                row.try_get::<_, Option<i16>>(i)
                    .map_err(err)?
                    .map_or(Value::Null, |v| Value::Int(v.into()))
            } else if *t == Type::INT4 {
                row.try_get::<_, Option<i32>>(i)
                    .map_err(err)?
                    .map_or(Value::Null, |v| Value::Int(v.into()))
            } else if *t == Type::INT8 {
                row.try_get::<_, Option<i64>>(i)
                    .map_err(err)?
                    .map_or(Value::Null, Value::Int)
            } else if *t == Type::FLOAT4 || *t == Type::FLOAT8 {
                let v = match *t == Type::FLOAT4 {
                    true => row
                        .try_get::<_, Option<f32>>(i)
                        .map_err(err)?
                        .map(f64::from),
                    false => row.try_get::<_, Option<f64>>(i).map_err(err)?,
                };
                v.map_or(Value::Null, Value::Float)
            } else {
                row.try_get::<_, Option<String>>(i)
                    .map_err(|_| {
                        DbError(format!(
                            "column {} of type {t}: not read by rser",
                            row.columns()[i].name()
                        ))
                    })?
                    .map_or(Value::Null, Value::Text)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_outside_quotes() {
        assert_eq!(
            numbered("SELECT a FROM t WHERE b = ? AND c = '?' AND d = ?"),
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d = $2"
        );
    }
}
