//! acc through the real binary: answered, busy, cancelled and unanswered
//! calls give the records Kamailio's acc gives (its log line and its
//! `acc` and `missed_calls` rows, field by field), written to SQLite by
//! the timer process's writer.

mod common;

use std::time::{Duration, Instant};

use common::{Peer, Server, answer, expect, temp_dir};

const SEC: Duration = Duration::from_secs(3);

/// Flags as Kamailio's stock config numbers them: 1 acc, 2 missed,
/// 3 failed transactions; here 4 and 5 the database's.
fn config(callee: &Peer, db: &str) -> String {
    format!(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"acc.so\"\n\
         modparam(\"tm\", \"fr_inv_timer\", 1500)\n\
         modparam(\"acc\", \"log_flag\", 1)\n\
         modparam(\"acc\", \"log_missed_flag\", 2)\n\
         modparam(\"acc\", \"failed_transaction_flag\", 3)\n\
         modparam(\"acc\", \"db_flag\", 4)\n\
         modparam(\"acc\", \"db_missed_flag\", 5)\n\
         modparam(\"acc\", \"db_url\", \"sqlite://{db}\")\n\
         modparam(\"acc\", \"log_extra\", \"src_ip=$si;caller=$fU;callee=$rU\")\n\
         modparam(\"acc\", \"db_extra\", \"src_ip=$si\")\n\
         route {{\n\
           if (method == \"INVITE\" || method == \"BYE\") {{\n\
             setflag(1); setflag(3); setflag(4);\n\
           }}\n\
           if (method == \"INVITE\") {{ setflag(2); setflag(5); }}\n\
           rewritehostport(\"{}\");\n\
           t_relay();\n\
         }}\n",
        callee.addr
    )
}

/// Rows of `table` as (method, from_tag, to_tag, callid, sip_code,
/// sip_reason, src_ip), waiting (bounded) for `n` of them.
fn rows(db: &str, table: &str, n: usize) -> Vec<[String; 7]> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got: Vec<[String; 7]> = rusqlite::Connection::open(db)
            .ok()
            .and_then(|c| {
                let mut st = c
                    .prepare(&format!(
                        "SELECT method, from_tag, to_tag, callid, sip_code, sip_reason, src_ip, \
                         datetime(time) FROM {table} ORDER BY id"
                    ))
                    .inspect_err(|e| eprintln!("{table}: {e}"))
                    .ok()?;
                let rows = st
                    .query_map([], |r| {
                        let t: String = r.get(7)?;
                        assert_eq!(t.len(), 19, "a DATETIME: {t}");
                        Ok(std::array::from_fn(|i| r.get::<_, String>(i).unwrap()))
                    })
                    .ok()?
                    .collect::<Result<Vec<_>, _>>()
                    .ok()?;
                Some(rows)
            })
            .unwrap_or_default();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn row(m: &str, ft: &str, tt: &str, ci: &str, code: &str, reason: &str) -> [String; 7] {
    [m, ft, tt, ci, code, reason, "127.0.0.1"].map(str::to_string)
}

/// The part of Kamailio's log line after its timestamp.
fn line_after_timestamp(line: &str) -> String {
    let at = line.find("timestamp=").expect("a timestamp");
    let rest = &line[at..];
    let (ts, fields) = rest.split_once(';').unwrap();
    let secs: u64 = ts["timestamp=".len()..].parse().expect("Unix seconds");
    assert!(secs > 1_600_000_000, "{secs}");
    fields.to_string()
}

fn setup(name: &str) -> (Peer, Peer, Server, String) {
    let dir = temp_dir(name);
    let db = dir.join("acc.db").display().to_string();
    let (caller, callee) = (Peer::new(), Peer::new());
    let rser = Server::start(&config(&callee, &db), 2, &[]);
    (caller, callee, rser, db)
}

#[test]
fn an_answered_call_and_its_bye_give_start_and_stop_records() {
    let (caller, callee, rser, db) = setup("acc-answered");
    caller.send(rser.addr, &caller.invite("acc-ok"));
    let (inv, _) = expect(&callee, "INVITE", SEC).expect("INVITE relayed");
    callee.send(rser.addr, &answer(&inv, 180, "Ringing", "bob-tag"));
    callee.send(rser.addr, &answer(&inv, 200, "OK", "bob-tag"));
    expect(&caller, "SIP/2.0 200", SEC).expect("200 upstream");
    let line = rser
        .wait_log("ACC: transaction answered:", SEC)
        .expect("the INVITE's record in the log");
    assert_eq!(
        line_after_timestamp(&line),
        "method=INVITE;from_tag=from-acc-ok;to_tag=bob-tag;call_id=acc-ok;code=200;reason=OK;\
         src_ip=127.0.0.1;caller=alice;callee=bob"
    );
    let bye = caller
        .request("BYE", "sip:bob@example.com", "acc-ok", "")
        .replace(
            "To: <sip:bob@example.com>",
            "To: <sip:bob@example.com>;tag=bob-tag",
        );
    caller.send(rser.addr, &bye);
    let (got, _) = expect(&callee, "BYE", SEC).expect("BYE relayed");
    callee.send(rser.addr, &answer(&got, 200, "OK", "bob-tag"));
    expect(&caller, "SIP/2.0 200", SEC).expect("200 for the BYE");
    assert_eq!(
        rows(&db, "acc", 2),
        [
            row("INVITE", "from-acc-ok", "bob-tag", "acc-ok", "200", "OK"),
            row("BYE", "from-acc-ok", "bob-tag", "acc-ok", "200", "OK"),
        ],
        "start and stop, joined by Call-ID"
    );
    assert!(rows(&db, "missed_calls", 0).is_empty());
}

#[test]
fn a_busy_callee_gives_a_failed_transaction_and_a_missed_call() {
    let (caller, callee, rser, db) = setup("acc-busy");
    caller.send(rser.addr, &caller.invite("acc-busy"));
    let (inv, _) = expect(&callee, "INVITE", SEC).expect("INVITE relayed");
    callee.send(rser.addr, &answer(&inv, 486, "Busy Here", "bob-busy"));
    expect(&caller, "SIP/2.0 486", SEC).expect("486 upstream");
    let missed = rser
        .wait_log("ACC: call missed:", SEC)
        .expect("missed call logged");
    assert!(
        line_after_timestamp(&missed).starts_with(
            "method=INVITE;from_tag=from-acc-busy;to_tag=bob-busy;call_id=acc-busy;code=486;\
             reason=Busy Here;"
        ),
        "{missed}"
    );
    let want = row(
        "INVITE",
        "from-acc-busy",
        "bob-busy",
        "acc-busy",
        "486",
        "Busy Here",
    );
    assert_eq!(rows(&db, "acc", 1), std::slice::from_ref(&want));
    assert_eq!(
        rows(&db, "missed_calls", 1),
        [want],
        "once, not per callback"
    );
}

#[test]
fn a_cancelled_call_is_recorded_with_the_callees_487() {
    let (caller, callee, rser, db) = setup("acc-cancel");
    let inv = caller.invite("acc-cancel");
    caller.send(rser.addr, &inv);
    let (got, _) = expect(&callee, "INVITE", SEC).expect("INVITE relayed");
    callee.send(rser.addr, &answer(&got, 180, "Ringing", "bob-c"));
    expect(&caller, "SIP/2.0 180", SEC).expect("180 upstream");
    let cancel = inv
        .replacen("INVITE ", "CANCEL ", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    caller.send(rser.addr, &cancel);
    let (c, _) = expect(&callee, "CANCEL", SEC).expect("CANCEL downstream");
    callee.send(rser.addr, &answer(&c, 200, "OK", "bob-c"));
    callee.send(rser.addr, &answer(&got, 487, "Request Terminated", "bob-c"));
    let want = row(
        "INVITE",
        "from-acc-cancel",
        "bob-c",
        "acc-cancel",
        "487",
        "Request Terminated",
    );
    assert_eq!(
        rows(&db, "acc", 1),
        std::slice::from_ref(&want),
        "no record of the CANCEL itself"
    );
    assert_eq!(rows(&db, "missed_calls", 1), [want]);
    drop(rser);
}

#[test]
fn an_unanswered_call_is_recorded_with_tms_own_408() {
    let (caller, callee, rser, db) = setup("acc-timeout");
    caller.send(rser.addr, &caller.invite("acc-408"));
    let (inv, _) = expect(&callee, "INVITE", SEC).expect("INVITE relayed");
    // Ringing, never answered: fr_inv_timer ends it.
    callee.send(rser.addr, &answer(&inv, 180, "Ringing", "bob-ring"));
    let (r, _) =
        expect(&caller, "SIP/2.0 408", Duration::from_secs(5)).expect("408 after fr_inv_timer");
    let tag = common::to_tag(&r).expect("tm's own To tag");
    let want = row(
        "INVITE",
        "from-acc-408",
        &tag,
        "acc-408",
        "408",
        "Request Timeout",
    );
    assert_eq!(rows(&db, "acc", 1), std::slice::from_ref(&want));
    assert_eq!(rows(&db, "missed_calls", 1), [want]);
    drop(rser);
}

/// A database that is locked (busy) stalls nothing: every request is
/// still answered at once, records wait in the queue and reach the
/// table once it is free, and those beyond the queue's bound are
/// dropped with a log line (and counted), never blocking a worker.
#[test]
fn a_busy_database_stalls_no_worker_and_loses_only_what_the_queue_cannot_hold() {
    let dir = temp_dir("acc-busy-db");
    let db = dir.join("acc.db").display().to_string();
    let (caller, callee) = (Peer::new(), Peer::new());
    let cfg = format!(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"acc.so\"\n\
         modparam(\"acc\", \"db_flag\", 1)\n\
         modparam(\"acc\", \"db_url\", \"sqlite://{db}\")\n\
         modparam(\"acc\", \"db_extra\", \"src_ip=$si\")\n\
         route {{ setflag(1); rewritehostport(\"{}\"); t_relay(); }}\n",
        callee.addr
    );
    // 8 MiB: a queue of 128 records.
    let rser = Server::start(&cfg, 2, &[]);
    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let n = 300;
    for i in 0..n {
        let m = caller.request("MESSAGE", "sip:bob@example.com", &format!("busy-{i}"), "");
        caller.send(rser.addr, &m);
        let (got, _) =
            expect(&callee, "MESSAGE", SEC).expect("relayed while the database is locked");
        callee.send(rser.addr, &answer(&got, 200, "OK", "bob"));
        expect(&caller, "SIP/2.0 200", SEC).expect("answered while the database is locked");
    }
    rser.wait_log("the queue to the database is full", SEC)
        .expect("the full queue said in the log");
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    let got = rows(&db, "acc", 128);
    assert!(
        (128..n).contains(&got.len()),
        "the queue's records arrive once the database is free: {}",
        got.len()
    );
    assert_eq!(got[0][3], "busy-0", "in order, from the first");
}
