//! acc: transaction accounting, as Kamailio's module of that name. A
//! transaction flagged before it is created (`setflag(log_flag)`,
//! `db_flag`, the missed-call flags) is recorded when its reply goes
//! upstream, through tm's callbacks; `acc_log_request`,
//! `acc_db_request` and `acc_request` record the current request.
//!
//! - `params.rs`: the module parameters, Kamailio's names and defaults.
//! - `record.rs`: which replies give a record, its fields, its log line
//!   and its encoding (pure code).
//! - `runtime.rs`: the runtime in each worker: records built from the
//!   transaction's request and reply, logged at once, queued for the
//!   database.
//! - `writer.rs`: the database writer, a thread of the timer process that
//!   empties the queue; no worker waits on the database.

pub mod params;
pub mod record;
pub mod runtime;
pub mod writer;

use crate::cfg::ast::Arg;
use crate::cfg::fixup::{Fixup, error, nonempty, text};
use crate::cfg::program::Param;
use crate::cfg::{Config, ConfigError};
use crate::modules::def::{Carved, Hooks, Module, ParamType, Routes, action};
use rser_shm::{Carver, Ring};

use ParamType::{Int, Str};

pub(crate) const ACC_LOG_REQUEST: u8 = 0;
pub(crate) const ACC_DB_REQUEST: u8 = 1;
pub(crate) const ACC_REQUEST: u8 = 2;

/// Indices in [`MODULE`]'s counters.
pub(crate) const RECORDS: usize = 0;
pub(crate) const QUEUE_FULL: usize = 1;
pub(crate) const RECORDS_LOST: usize = 2;
pub(crate) const DB_WRITTEN: usize = 3;
pub(crate) const DB_ERRORS: usize = 4;

const REQ: Routes = Routes::REQUEST.or(Routes::FAILURE);

pub static MODULE: Module = Module {
    name: "acc",
    params: &[
        ("log_flag", Int),
        ("log_missed_flag", Int),
        ("db_flag", Int),
        ("db_missed_flag", Int),
        ("failed_transaction_flag", Int),
        ("failed_filter", Str),
        ("early_media", Int),
        ("report_ack", Int),
        ("report_cancels", Int),
        ("detect_direction", Int),
        ("time_mode", Int),
        ("log_level", Int),
        ("log_facility", Str),
        ("log_extra", Str),
        ("db_extra", Str),
        ("db_url", Str),
        ("db_table_acc", Str),
        ("db_table_missed_calls", Str),
        ("db_insert_mode", Int),
        ("acc_method_column", Str),
        ("acc_from_tag_column", Str),
        ("acc_to_tag_column", Str),
        ("acc_callid_column", Str),
        ("acc_sip_code_column", Str),
        ("acc_sip_reason_column", Str),
        ("acc_time_column", Str),
    ],
    actions: &[
        action("acc_log_request", ACC_LOG_REQUEST, (1, 1), comment, REQ),
        action("acc_db_request", ACC_DB_REQUEST, (2, 2), comment_table, REQ),
        action("acc_request", ACC_REQUEST, (2, 2), comment_table, REQ),
    ],
    counters: &[
        "acc_records",
        "acc_queue_full",
        "acc_records_lost",
        "acc_db_written",
        "acc_db_errors",
    ],
    hooks: Some(&Hooks {
        carve: Some(carve),
        start: Some(runtime::start),
        helper: Some(writer::run),
        used: None,
    }),
    unapplied: &[],
    check: Some(check),
};

/// The longest record the queue takes (Kamailio's columns are at most
/// 128-255 characters; extras share the rest).
pub const RECORD_BYTES: usize = 2048;
/// Share of the region for the queue, and its bounds in records.
const QUEUE_SHARE: usize = 32;
const QUEUE_MIN: usize = 64;
const QUEUE_MAX: usize = 65_536;

/// What acc keeps in shared memory: the queue to the database writer
/// (with `db_url`), and the parameters, checked once in the master and
/// inherited by every process.
pub struct AccShm {
    pub params: params::Params,
    pub queue: Option<Ring>,
    /// Tables the script's `acc_db_request`/`acc_request` name.
    pub request_tables: Vec<String>,
}

/// acc's parameters as a start reads them: a database this build serves,
/// and one at all where the script writes records to it.
fn check(config: &Config) -> Result<Vec<String>, String> {
    let params = params::Params::from_config(config)?;
    let mut warnings = Vec::new();
    if config.modparam_int("acc", "db_insert_mode", 0) != 0 {
        warnings.push(
            "db_insert_mode: accepted and ignored: records are inserted by a helper thread, never by a worker"
                .to_string(),
        );
    }
    match &params.db_url {
        Some(url) => {
            crate::db::served(url)?;
        }
        None if !config
            .program
            .string_args(&["acc_db_request", "acc_request"], 1)
            .is_empty() =>
        {
            return Err(
                "acc_db_request and acc_request need modparam(\"acc\", \"db_url\", ...)".into(),
            );
        }
        None => {}
    }
    Ok(warnings)
}

fn carve(config: &Config, carver: &mut Carver<'_>, region: usize) -> Result<Carved, String> {
    check(config)?;
    let params = params::Params::from_config(config)?;
    let request_tables = config
        .program
        .string_args(&["acc_db_request", "acc_request"], 1);
    let queue = match &params.db_url {
        Some(url) => {
            writer::prepare(url, &params, &request_tables)?;
            let cells = (region / QUEUE_SHARE / RECORD_BYTES).clamp(QUEUE_MIN, QUEUE_MAX);
            let ring = Ring::carve(carver, cells, RECORD_BYTES)
                .ok_or("shared memory too small for acc's queue")?;
            Some(ring)
        }
        None if !request_tables.is_empty() => {
            return Err(
                "acc_db_request and acc_request need modparam(\"acc\", \"db_url\", ...)".into(),
            );
        }
        None => None,
    };
    let capacity = match (&queue, &params.db_url) {
        (Some(q), Some(url)) => format!(
            "a queue of {} records of {RECORD_BYTES} bytes to {url}",
            q.capacity()
        ),
        _ => "no queue (no db_url)".into(),
    };
    Ok(Carved {
        capacity,
        shm: Box::new(AccShm {
            params,
            queue,
            request_tables,
        }),
    })
}

/// The comment: `"200 OK"` gives a code and a reason, other text a
/// reason.
fn comment(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    Ok(vec![Param::Str(text(&a[0]).into())])
}

/// The comment and the table the record goes to.
fn comment_table(_: &Fixup<'_>, a: &[Arg]) -> Result<Vec<Param>, ConfigError> {
    let table = nonempty(&a[1])?;
    crate::db::check_table_name(&table).map_err(|e| error(&a[1], e))?;
    Ok(vec![Param::Str(text(&a[0]).into()), Param::Str(table)])
}
