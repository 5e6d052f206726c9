//! acc in a worker: tm's callbacks and the script's actions become
//! records, logged at once and queued for the database writer. Nothing
//! here waits: a full queue drops the record with a counter and a log
//! line at most once a second.

use std::net::SocketAddr;

use super::params::{Extra, Params};
use super::record::{self, Kind, Record, Sinks};
use super::{AccShm, QUEUE_FULL, RECORDS, RECORDS_LOST};
use crate::cfg::program::Param;
use crate::cfg::settings::Proto;
use crate::modules::def::{Counts, Cx, Runtime, Start, TmEvent, TmRequest, Wants, bad_args};
use crate::script::{MsgCtx, ScriptState};
use crate::server::log_limit::{LogLimit, held_text};
use crate::sip::{Message, Method};
use rser_shm::ring::PushError;

pub fn start<'a>(s: &Start<'a>) -> Box<dyn Runtime + 'a> {
    let shm = s
        .shm
        .and_then(|m| m.downcast_ref::<AccShm>())
        .expect("acc's carve made its tables");
    Box::new(Acc {
        shm,
        counts: s.counts,
        st: ScriptState::new(),
        encoded: Vec::new(),
        full_log: LogLimit::default(),
    })
}

struct Acc<'a> {
    shm: &'a AccShm,
    counts: Counts<'a>,
    /// For the extras' pseudo-variables over a transaction's request.
    st: ScriptState,
    encoded: Vec<u8>,
    full_log: LogLimit,
}

/// Where a record's fields come from.
struct Source<'r, 'a, 'm> {
    ctx: &'r MsgCtx<'a, 'm>,
    code: &'r [u8],
    reason: &'r [u8],
    /// The reply's To tag; empty: the request's.
    to_tag: &'r [u8],
}

impl Acc<'_> {
    fn params(&self) -> &Params {
        &self.shm.params
    }

    /// Builds the record with the extras of one sink.
    fn record(src: &Source<'_, '_, '_>, extras: &[Extra]) -> Record {
        let msg = src.ctx.msg;
        let to_tag = match src.to_tag {
            [] => msg.to().ok().and_then(|t| t.tag).unwrap_or_default(),
            t => t,
        };
        Record {
            time: crate::modules::usrloc::unix_now(),
            method: msg
                .cseq()
                .map(|c| c.method_raw.to_vec())
                .unwrap_or_default(),
            from_tag: msg
                .from()
                .ok()
                .and_then(|f| f.tag)
                .unwrap_or_default()
                .to_vec(),
            to_tag: to_tag.to_vec(),
            call_id: msg.call_id().map(<[u8]>::to_vec).unwrap_or_default(),
            code: src.code.to_vec(),
            reason: src.reason.to_vec(),
            extras: extras
                .iter()
                .map(|e| {
                    let mut v = Vec::new();
                    crate::script::pv::format_into(&e.value, src.ctx, &mut v);
                    v
                })
                .collect(),
        }
    }

    /// One record to the sinks asked for: the log line now, the
    /// database through the queue.
    fn account(
        &mut self,
        cx: &Cx<'_>,
        kind: Kind,
        sinks: Sinks,
        src: &Source<'_, '_, '_>,
        table: &str,
    ) {
        if sinks.log {
            let p = self.params();
            let names = p.log_extra.iter().map(|e| e.name.as_str());
            let line = Self::record(src, &p.log_extra).log_line(kind, names);
            log::log!(target: "acc", p.log_level, "{line}");
            if let Some(facility) = p.log_facility {
                syslog(facility, p.log_level, &line);
            }
            self.counts.add(RECORDS, 1);
        }
        if sinks.db {
            let r = Self::record(src, &self.shm.params.db_extra);
            self.queue(cx, &r, table);
        }
    }

    fn queue(&mut self, cx: &Cx<'_>, r: &Record, table: &str) {
        let Some(q) = self.shm.queue else { return };
        let fits = r.encode(table, q.record_bytes(), &mut self.encoded);
        let pushed = match fits {
            true => q.push(&self.encoded, cx.now_ms),
            false => Err(PushError::TooLong),
        };
        let why = match pushed {
            Ok(()) => {
                self.counts.add(RECORDS, 1);
                return;
            }
            Err(PushError::Full) => {
                self.counts.add(QUEUE_FULL, 1);
                "the queue to the database is full"
            }
            Err(PushError::TooLong) => {
                self.counts.add(RECORDS_LOST, 1);
                "the record is longer than a queue cell"
            }
            Err(PushError::Lost) => {
                self.counts.add(RECORDS_LOST, 1);
                "the writer skipped it as stale"
            }
        };
        if let Some(held) = self.full_log.allow(cx.now_ms) {
            log::warn!(
                "acc: a record for {table} dropped: {why}{}",
                held_text(held)
            );
        }
    }

    /// A transaction's reply (or failure) as tm reports it, recorded as
    /// answered and as missed where `answered` and `missed` say; the
    /// missed-call flags to reset once one is recorded.
    fn transaction(
        &mut self,
        cx: &Cx<'_>,
        ev: (&TmRequest<'_, '_>, u16, &[u8], &[u8]),
        answered: Sinks,
        missed: Sinks,
    ) -> u32 {
        let (req, code, reason, to_tag) = ev;
        if !missed.any() && !answered.any() {
            return 0;
        }
        // The tables live in shared memory, not in `self`.
        let p = &self.shm.params;
        let (table_acc, table_missed) = (p.table_acc.as_str(), p.table_missed.as_str());
        let reset = if missed.any() { p.missed_bits() } else { 0 };
        let mut st = std::mem::take(&mut self.st);
        let ctx = request_ctx(req.msg, req.source, req.local, &mut st);
        let code_text = code.to_string();
        let src = Source {
            ctx: &ctx,
            code: code_text.as_bytes(),
            reason,
            to_tag,
        };
        // Kamailio's order: the missed call first, then the transaction.
        self.account(cx, Kind::Missed, missed, &src, table_missed);
        self.account(cx, Kind::Answered, answered, &src, table_acc);
        self.st = st;
        reset
    }
}

fn request_ctx<'a, 'm>(
    msg: &'a Message<'m>,
    src: SocketAddr,
    local: SocketAddr,
    st: &'a mut ScriptState,
) -> MsgCtx<'a, 'm> {
    MsgCtx::new(msg, src, local, Proto::Udp, st)
}

impl Runtime for Acc<'_> {
    fn call(&mut self, cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, id: u8, args: &[Param]) -> i32 {
        let (comment, table, sinks) = match (id, args) {
            (super::ACC_LOG_REQUEST, [Param::Str(c)]) => (
                c,
                None,
                Sinks {
                    log: true,
                    db: false,
                },
            ),
            (super::ACC_DB_REQUEST, [Param::Str(c), Param::Str(t)]) => (
                c,
                Some(t),
                Sinks {
                    log: false,
                    db: true,
                },
            ),
            (super::ACC_REQUEST, [Param::Str(c), Param::Str(t)]) => (
                c,
                Some(t),
                Sinks {
                    log: true,
                    db: true,
                },
            ),
            _ => return bad_args("acc", id),
        };
        let (code, reason) = record::parse_comment(comment.as_bytes());
        let src = Source {
            ctx,
            code,
            reason,
            to_tag: b"",
        };
        self.account(cx, Kind::Request, sinks, &src, table.map_or("", |t| t));
        1
    }

    fn wants(&self) -> Wants {
        Wants {
            tm_events: true,
            ..Wants::default()
        }
    }

    fn tm_wants(&self, flags: u32) -> bool {
        self.params().any_flag(flags)
    }

    fn tm_event(&mut self, cx: &mut Cx<'_>, ev: &TmEvent<'_, '_>) -> u32 {
        match ev {
            TmEvent::ResponseOut {
                req,
                code,
                reason,
                to_tag,
                has_body,
            } => {
                let p = self.params();
                // A CANCEL's own transaction only with report_cancels.
                if req.msg.method() == Some(Method::Cancel) && !p.report_cancels {
                    return 0;
                }
                let answered = record::on_reply(p, req.flags, *code, *has_body);
                let invite = req.msg.method() == Some(Method::Invite);
                let missed = record::on_missed(p, req.flags, invite, *code);
                self.transaction(cx, (req, *code, reason, to_tag), answered, missed)
            }
            TmEvent::Failure {
                req,
                code,
                reason,
                to_tag,
            } => {
                let invite = req.msg.method() == Some(Method::Invite);
                let missed = record::on_missed(self.params(), req.flags, invite, *code);
                self.transaction(cx, (req, *code, reason, to_tag), Sinks::default(), missed)
            }
        }
    }
}

/// A record to syslog(3) too, with `log_facility`.
fn syslog(facility: i32, level: log::Level, line: &str) {
    let priority = match level {
        log::Level::Error => libc::LOG_ERR,
        log::Level::Warn => libc::LOG_WARNING,
        log::Level::Info => libc::LOG_NOTICE,
        _ => libc::LOG_DEBUG,
    };
    let Ok(text) = std::ffi::CString::new(line.replace('\0', " ")) else {
        return;
    };
    // SAFETY: both strings are NUL-terminated; "%s" takes one argument.
    unsafe { libc::syslog(facility | priority, c"%s".as_ptr(), text.as_ptr()) };
}
