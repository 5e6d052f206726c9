//! acc's database writer: a thread of the timer process that takes the
//! records the workers queued and inserts them, in batches, into
//! Kamailio's `acc` and `missed_calls` tables (or the table a script's
//! `acc_db_request` names), through `db/queue.rs`.

use std::time::Duration;

use crate::db::conn::{Conn, Value};
use crate::db::schema::{self, Need};

use super::params::Params;
use super::record::Record;
use super::{AccShm, DB_ERRORS, DB_WRITTEN, RECORDS_LOST};
use crate::modules::def::Start;

/// How long the writer sleeps when the queue is empty.
const IDLE: Duration = Duration::from_millis(20);

/// At start, in the master: the database opens and has every table the
/// config writes to (Kamailio's `acc` and `missed_calls`, version 5 and
/// 4, with the `db_extra` columns), or the server does not start.
pub fn prepare(url: &str, p: &Params, request_tables: &[String]) -> Result<(), String> {
    let url = crate::db::served(url)?;
    schema::open_prepared(&url, &needs(p, request_tables), crate::db::TOOL_TIMEOUT)
        .map(|_| ())
        .map_err(|e| format!("acc: {e}"))
}

fn needs(p: &Params, request_tables: &[String]) -> Vec<Need> {
    tables(p, request_tables)
        .map(|t| {
            let shape = match *t == p.table_missed {
                true => &schema::MISSED_CALLS,
                false => &schema::ACC,
            };
            let mut n = Need::of(shape, t);
            n.columns = p.columns.to_vec();
            n.extra = p.db_extra.iter().map(|e| e.name.clone()).collect();
            n
        })
        .collect()
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
    let Ok(url) = crate::db::served(url) else {
        return;
    };
    let timeout = crate::db::timeout(s.config, &url);
    let w = crate::db::queue::Writer {
        module: "acc",
        what: "records",
        counts: &s.counts,
        lost: RECORDS_LOST,
        written: DB_WRITTEN,
        errors: DB_ERRORS,
        idle: IDLE,
    };
    crate::db::queue::run(
        &queue,
        &w,
        Record::decode,
        || Conn::open(&url, timeout).map_err(|e| e.0),
        |conn, batch| insert(conn, &shm.params, batch),
    );
}

/// The batch in one transaction; the number of records written.
fn insert(conn: &mut Conn, p: &Params, batch: &[(String, Record)]) -> Result<usize, String> {
    conn.transaction(|e| e.0, |c| insert_all(c, p, batch))
}

fn insert_all(conn: &mut Conn, p: &Params, batch: &[(String, Record)]) -> Result<usize, String> {
    let columns: Vec<&str> = p
        .columns
        .iter()
        .map(String::as_str)
        .chain(p.db_extra.iter().map(|e| e.name.as_str()))
        .collect();
    let marks = vec!["?"; columns.len()].join(", ");
    let text = |b: &[u8]| Value::Text(String::from_utf8_lossy(b).into_owned());
    for (table, r) in batch {
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES ({marks})",
            columns.join(", ")
        );
        let mut values: Vec<Value> = [
            &r.method,
            &r.from_tag,
            &r.to_tag,
            &r.call_id,
            &r.code,
            &r.reason,
        ]
        .into_iter()
        .map(|v| text(v))
        .collect();
        values.push(Value::Time(r.time as i64));
        values.extend(r.extras.iter().map(|v| text(v)));
        values.resize(columns.len(), Value::Null);
        conn.execute(&sql, &values)
            .map_err(|e| format!("table {table}: {e}"))?;
    }
    Ok(batch.len())
}
