//! acc's database writer: a thread of the timer process that takes the
//! records the workers queued and inserts them, in batches, into
//! Kamailio's `acc` and `missed_calls` tables (or the table a script's
//! `acc_db_request` names). A database that is slow or gone only fills
//! the queue: the batch in hand waits and is written when it is back.

use std::time::Duration;

use rusqlite::Connection;

use super::params::Params;
use super::record::Record;
use super::{AccShm, DB_ERRORS, DB_WRITTEN, RECORDS_LOST};
use crate::modules::def::Start;
use crate::server::log_limit::{LogLimit, held_text};
use rser_shm::ring::Pop;

/// Records inserted in one database transaction, at most.
const BATCH: usize = 256;
/// How long the writer sleeps when the queue is empty, and after a
/// database error.
const IDLE: Duration = Duration::from_millis(20);
const RETRY: Duration = Duration::from_secs(1);

/// At start, in the master: the database opens and has every table the
/// config writes to, or the server does not start.
pub fn prepare(url: &str, p: &Params, request_tables: &[String]) -> Result<(), String> {
    let conn = crate::db::connect(url)?;
    create_tables(&conn, p, request_tables)
}

/// Kamailio's acc schema (acc-create.sql): the same columns for `acc`,
/// `missed_calls` and request tables, then the `db_extra` columns.
fn create_tables(conn: &Connection, p: &Params, request_tables: &[String]) -> Result<(), String> {
    let [method, from_tag, to_tag, callid, code, reason, time] = &p.columns;
    let extras: String = p
        .db_extra
        .iter()
        .map(|e| format!(", {} TEXT", e.name))
        .collect();
    for t in tables(p, request_tables) {
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {t} (\
             id INTEGER PRIMARY KEY AUTOINCREMENT, \
             {method} VARCHAR(16) NOT NULL DEFAULT '', \
             {from_tag} VARCHAR(128) NOT NULL DEFAULT '', \
             {to_tag} VARCHAR(128) NOT NULL DEFAULT '', \
             {callid} VARCHAR(255) NOT NULL DEFAULT '', \
             {code} VARCHAR(3) NOT NULL DEFAULT '', \
             {reason} VARCHAR(128) NOT NULL DEFAULT '', \
             {time} DATETIME NOT NULL{extras}); \
             CREATE INDEX IF NOT EXISTS {t}_callid_idx ON {t} ({callid});"
        ))
        .map_err(|e| format!("acc: table {t}: {e}"))?;
    }
    Ok(())
}

fn tables<'p>(p: &'p Params, request_tables: &'p [String]) -> impl Iterator<Item = &'p String> {
    let mut all: Vec<&String> = vec![&p.table_acc, &p.table_missed];
    for t in request_tables {
        if !all.contains(&t) {
            all.push(t);
        }
    }
    all.into_iter()
}

/// The writer's loop (never returns while the process lives).
pub fn run(s: &Start<'_>) {
    let Some(shm) = s.shm.and_then(|m| m.downcast_ref::<AccShm>()) else {
        return;
    };
    let (Some(queue), Some(url)) = (shm.queue, &shm.params.db_url) else {
        return;
    };
    let mut db: Option<Connection> = None;
    let mut batch: Vec<(String, Record)> = Vec::with_capacity(BATCH);
    let mut buf = Vec::new();
    let mut err_log = LogLimit::default();
    loop {
        let now = crate::server::worker::now_ms();
        while batch.len() < BATCH {
            match queue.pop(&mut buf, now) {
                Pop::Record => match Record::decode(&buf) {
                    Some(r) => batch.push(r),
                    None => s.counts.add(RECORDS_LOST, 1),
                },
                Pop::Lost => s.counts.add(RECORDS_LOST, 1),
                Pop::Empty => break,
            }
        }
        if batch.is_empty() {
            std::thread::sleep(IDLE);
            continue;
        }
        let written = match &mut db {
            Some(conn) => insert(conn, &shm.params, &batch),
            None => crate::db::connect(url).map(|c| {
                db = Some(c);
                0
            }),
        };
        match written {
            Ok(0) => {}
            Ok(n) => {
                s.counts.add(DB_WRITTEN, n as u64);
                batch.clear();
            }
            Err(e) => {
                s.counts.add(DB_ERRORS, 1);
                if let Some(held) = err_log.allow(now) {
                    log::error!(
                        "acc: {} records wait for the database: {e}{}",
                        batch.len(),
                        held_text(held)
                    );
                }
                db = None;
                std::thread::sleep(RETRY);
            }
        }
    }
}

/// The batch in one transaction; the number of records written.
fn insert(conn: &mut Connection, p: &Params, batch: &[(String, Record)]) -> Result<usize, String> {
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    let columns: Vec<&str> = p
        .columns
        .iter()
        .map(String::as_str)
        .chain(p.db_extra.iter().map(|e| e.name.as_str()))
        .collect();
    let marks = vec!["?"; columns.len()].join(", ");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    for (table, r) in batch {
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES ({marks})",
            columns.join(", ")
        );
        let mut stmt = tx
            .prepare_cached(&sql)
            .map_err(|e| format!("table {table}: {e}"))?;
        let mut values: Vec<rusqlite::types::Value> = [
            &r.method,
            &r.from_tag,
            &r.to_tag,
            &r.call_id,
            &r.code,
            &r.reason,
        ]
        .into_iter()
        .map(|v| text(v).into())
        .collect();
        values.push(julian_day(r.time).into());
        values.extend(r.extras.iter().map(|v| text(v).into()));
        values.resize(columns.len(), String::new().into());
        stmt.execute(rusqlite::params_from_iter(values.iter()))
            .map_err(|e| format!("table {table}: {e}"))?;
    }
    tx.commit().map_err(|e| e.to_string())?;
    Ok(batch.len())
}

/// A time as Kamailio's db_sqlite stores a DATETIME: the Julian day, a
/// number SQLite's date functions read (`datetime(time)`) whatever the
/// time zone.
pub fn julian_day(unix_secs: u64) -> f64 {
    unix_secs as f64 / 86_400.0 + 2_440_587.5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_julian_days_as_sqlite_reads_them() {
        let c = Connection::open_in_memory().unwrap();
        let shown: String = c
            .query_row("SELECT datetime(?1)", [julian_day(1_700_000_000)], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(shown, "2023-11-14 22:13:20");
    }
}
