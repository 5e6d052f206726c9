//! acc's database writer: a thread of the timer process that takes the
//! records the workers queued and inserts them, in batches, into
//! Kamailio's `acc` and `missed_calls` tables (or the table a script's
//! `acc_db_request` names). A database that is slow or gone only fills
//! the queue: the batch in hand waits and is written when it is back.

use std::time::Duration;

use crate::db::conn::{Conn, Value};
use crate::db::schema::{self, Need};

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
/// After a failure: the database back is written within this.
const RETRY: Duration = Duration::from_millis(500);

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
    let timeout = match crate::db::served(url) {
        Ok(u) => crate::db::timeout(s.config, &u),
        Err(_) => return,
    };
    let mut db: Option<Conn> = None;
    let mut batch: Vec<(String, Record)> = Vec::with_capacity(BATCH);
    let mut buf = Vec::new();
    let mut err_log = LogLimit::default();
    let _draining = crate::server::drain::Writer::register();
    loop {
        let now = crate::server::worker::now_ms();
        let stopping = crate::server::drain::stopping();
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
            if stopping {
                return; // all written
            }
            std::thread::sleep(IDLE);
            continue;
        }
        let written = match &mut db {
            Some(conn) => insert(conn, &shm.params, &batch),
            None => crate::db::served(url)
                .and_then(|u| Conn::open(&u, timeout).map_err(|e| e.0))
                .map(|c| {
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
                if stopping {
                    log::error!(
                        "acc: stopping: {} writes in hand (and the rest of the queue) not taken by the database: {e}",
                        batch.len()
                    );
                    return;
                }
                std::thread::sleep(RETRY);
            }
        }
    }
}

/// The batch in one transaction; the number of records written.
fn insert(conn: &mut Conn, p: &Params, batch: &[(String, Record)]) -> Result<usize, String> {
    let fail = |e: crate::db::conn::DbError| e.0;
    conn.batch("BEGIN").map_err(fail)?;
    let r = insert_all(conn, p, batch);
    match r {
        Ok(n) => conn.batch("COMMIT").map(|_| n).map_err(fail),
        Err(e) => {
            let _ = conn.batch("ROLLBACK");
            Err(e)
        }
    }
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
