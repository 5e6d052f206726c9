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
    /// A DATETIME, in seconds since the epoch (`time.rs` says how each
    /// server stores it).
    Time(i64),
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
            Value::Time(t) => Some(*t),
            Value::Null => None,
        }
    }

    /// A DATETIME column as read back: the server's own type, or SQLite's
    /// Julian day (a number), or its text.
    pub fn as_time(&self) -> Option<i64> {
        match self {
            Value::Time(t) => Some(*t),
            Value::Float(f) => Some(super::time::from_julian_day(*f)),
            Value::Int(i) => Some(*i),
            Value::Text(s) => super::time::parse(s),
            Value::Null => None,
        }
    }

    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            Value::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Text, or None for NULL; numbers as they print.
    pub fn text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Text(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Time(t) => Some(super::time::text(*t)),
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
    Postgres(Box<Pg>),
}

/// A PostgreSQL connection and its prepared statements: preparing is a
/// round trip of its own, done once per statement text (at most
/// [`PG_STATEMENTS`] kept; the connection's own limit otherwise).
pub struct Pg {
    client: postgres::Client,
    prepared: std::collections::HashMap<String, postgres::Statement>,
}

const PG_STATEMENTS: usize = 64;

impl Pg {
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, DbError> {
        if let Some(st) = self.prepared.get(sql) {
            return Ok(st.clone());
        }
        let st = self
            .client
            .prepare(&numbered(sql))
            .map_err(|e| DbError(e.to_string()))?;
        if self.prepared.len() >= PG_STATEMENTS {
            self.prepared.clear();
        }
        self.prepared.insert(sql.to_string(), st.clone());
        Ok(st)
    }
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
        // The host the URL names, not the server's Unix socket the
        // client would otherwise switch to on a local address.
        .prefer_socket(false)
        .tcp_connect_timeout(Some(timeout))
        .read_timeout(Some(timeout))
        .tcp_keepalive_time_ms(Some(10_000))
        .write_timeout(Some(timeout))
        .into()
}

fn postgres_config(s: &Server, timeout: Duration) -> postgres::Config {
    let mut c = postgres::Config::new();
    c.host(&s.host)
        .port(s.port.unwrap_or(5432))
        .user(&s.user)
        .dbname(&s.database)
        .connect_timeout(timeout)
        // A server gone without a word (host down, partition) is found
        // by the kernel's probes, not after hours.
        .keepalives(true)
        .keepalives_idle(std::time::Duration::from_secs(10))
        .tcp_user_timeout(timeout.max(std::time::Duration::from_secs(5)));
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
                Ok(Conn::Postgres(Box::new(Pg {
                    client: c,
                    prepared: Default::default(),
                })))
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
                let stmt = c.statement(sql)?;
                let p = to_postgres(params, stmt.params())?;
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    p.iter().map(|v| v.as_ref() as _).collect();
                c.client.execute(&stmt, &refs).map_err(|e| err(&e))
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
                let stmt = c.statement(sql)?;
                let p = to_postgres(params, stmt.params())?;
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    p.iter().map(|v| v.as_ref() as _).collect();
                let rows = c.client.query(&stmt, &refs).map_err(|e| err(&e))?;
                rows.iter().map(from_postgres).collect()
            }
        }
    }

    /// `work` in one transaction: committed when it succeeds, rolled back
    /// when it fails; `fail` turns a BEGIN or COMMIT failure into the
    /// caller's error.
    pub fn transaction<T, E>(
        &mut self,
        fail: impl Fn(DbError) -> E,
        work: impl FnOnce(&mut Conn) -> Result<T, E>,
    ) -> Result<T, E> {
        self.batch("BEGIN").map_err(&fail)?;
        match work(self) {
            Ok(v) => self.batch("COMMIT").map(|_| v).map_err(fail),
            Err(e) => {
                let _ = self.batch("ROLLBACK");
                Err(e)
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
            Conn::Postgres(c) => c.client.batch_execute(sql).map_err(|e| err(&e)),
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
        Value::Time(t) => S::Real(super::time::julian_day(*t)),
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
        Value::Time(t) => match super::time::fields(*t) {
            Some([y, mo, d, h, mi, s]) => {
                mysql::Value::Date(y as u16, mo as u8, d as u8, h as u8, mi as u8, s as u8, 0)
            }
            None => mysql::Value::NULL,
        },
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
        mysql::Value::Date(y, mo, d, h, mi, s, _) => {
            super::time::from_fields([y.into(), mo.into(), d.into(), h.into(), mi.into(), s.into()])
                .map_or(Value::Null, Value::Time)
        }
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
                // A naive timestamp holds local time: carried as if UTC.
                _ if *t == Type::TIMESTAMP => {
                    let secs = v
                        .as_time()
                        .ok_or_else(|| DbError(format!("{v:?} is not a time for a {t} column")))?;
                    Box::new(naive_as_utc(secs))
                }
                _ if *t == Type::INT2 => Box::new(i16::try_from(int()?).map_err(narrow)?),
                _ if *t == Type::INT4 => Box::new(i32::try_from(int()?).map_err(narrow)?),
                _ if *t == Type::INT8 => Box::new(int()?),
                Value::Float(f) if *t == Type::FLOAT4 => Box::new(*f as f32),
                Value::Float(f) => Box::new(*f),
                Value::Int(i) if *t == Type::FLOAT8 => Box::new(*i as f64),
                Value::Int(i) => Box::new(i.to_string()),
                Value::Text(s) => Box::new(s.clone()),
                Value::Time(secs) => Box::new(super::time::text(*secs)),
            })
        })
        .collect()
}

/// A local time as PostgreSQL's naive timestamp, which the client
/// carries as a `SystemTime` read as UTC.
fn naive_as_utc(secs: i64) -> std::time::SystemTime {
    let naive = super::time::fields(secs).map(|[y, mo, d, h, mi, s]| {
        days_from_civil(i64::from(y), mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s)
    });
    let n = naive.unwrap_or(0);
    let abs = std::time::Duration::from_secs(n.unsigned_abs());
    match n >= 0 {
        true => std::time::UNIX_EPOCH + abs,
        false => std::time::UNIX_EPOCH - abs,
    }
}

/// A naive timestamp read back: its fields are local time.
fn local_of_naive(t: std::time::SystemTime) -> i64 {
    let n = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let (days, rem) = (n.div_euclid(86_400), n.rem_euclid(86_400) as u32);
    let (y, mo, d) = civil_from_days(days);
    super::time::from_fields([y as u32, mo, d, rem / 3600, rem / 60 % 60, rem % 60]).unwrap_or(n)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
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
            } else if *t == Type::TIMESTAMP {
                row.try_get::<_, Option<std::time::SystemTime>>(i)
                    .map_err(err)?
                    .map_or(Value::Null, |v| Value::Time(local_of_naive(v)))
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
    fn naive_timestamps_carry_local_fields() {
        for secs in [0, 951_782_400, 1_700_000_000, 1_900_000_000] {
            assert_eq!(local_of_naive(naive_as_utc(secs)), secs);
        }
        assert_eq!(civil_from_days(days_from_civil(2000, 2, 29)), (2000, 2, 29));
    }

    #[test]
    fn placeholders_are_numbered_for_postgres_outside_quotes() {
        assert_eq!(
            numbered("SELECT a FROM t WHERE b = ? AND c = '?' AND d = ?"),
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d = $2"
        );
    }
}
