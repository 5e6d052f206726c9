//! tm in a worker (and in the timer process): requests and replies that
//! belong to a transaction, `t_reply`, onreply_route and failure_route,
//! the timers, and carrying out what the pure state machine
//! (`modules::tm::txn`) asks for. Relaying is in `relay.rs`.
//!
//! A transaction lives in shared memory; any process handles any message
//! of it by locking its stripe, running the state machine, and sending
//! what it says. Nothing slow (DNS, the script) runs under a lock: the
//! destinations are resolved first, and failure_route and onreply_route
//! run between two locked steps.

use std::net::SocketAddr;

use arrayvec::ArrayVec;

use super::state::{TmState, count};
use crate::cfg::ast::RouteKind;
use crate::modules::def::Cx;
use crate::modules::def::{TmEvent, TmRequest};
use crate::modules::tm::Table;
use crate::modules::tm::TmCounter;
use crate::modules::tm::build::{self as tmbuild, OurVia};
use crate::modules::tm::key::{BranchId, server_key};
use crate::modules::tm::table::Locked;
use crate::modules::tm::txn::{Branch, Effect, Kind, REPORTED, Txn};
use crate::script::MsgCtx;
use crate::server::limits::{TIMER_BATCH, TIMER_ROUNDS};
use crate::server::proxy;
use crate::server::shared::Counter;
use crate::sip::build::write_reply;
use crate::sip::{Message, Method};

/// How a final reply went upstream in one `tm_exec`.
#[derive(Debug, Clone, Copy)]
enum FinalOut {
    /// The reply in hand, relayed.
    Relayed,
    /// The kept best reply or a local one, now the stored last reply.
    Kept,
}

/// A transaction as the processes name it: bucket, slot and generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnRef {
    pub bucket: u32,
    pub idx: u32,
    pub generation: u32,
}

/// Routes armed by t_on_failure / t_on_reply / t_on_branch during one
/// script run (route index + 1; 0: none).
#[derive(Debug, Default, Clone, Copy)]
pub struct Armed {
    pub failure: u16,
    pub reply: u16,
    pub branch: u16,
    /// `t_set_fr`'s fr_inv_timer and fr_timer (ms; 0: tm's), for the
    /// transaction `t_relay` makes or goes on with.
    pub fr_inv_ms: u32,
    pub fr_ms: u32,
}

/// Keeps `avps` as a transaction's (`slot`), replacing what it had; what
/// does not fit is not kept, with a log line and a count.
pub(crate) fn keep_avps(
    cx: &Cx<'_>,
    table: &Table,
    slot: &mut rser_shm::Chain,
    avps: &crate::script::avp::Avps,
    buf: &mut Vec<u8>,
) {
    if avps.is_empty() && slot.is_empty() {
        return;
    }
    buf.clear();
    let kept = avps.encode(buf) && table.pool.replace(slot, buf);
    if !kept {
        count(cx, TmCounter::AvpsNotKept);
        log::warn!(
            "tm: the transaction's $avp and $xavp values are not kept for its failure and reply routes (over {} bytes, or shared memory full)",
            crate::script::avp::MAX_AVP_BYTES
        );
    }
}

impl TmState {
    /// Before the script: a retransmission of a request whose transaction
    /// exists gets the last reply again (§17.2.1, §17.2.2), and the ACK to
    /// our own non-2xx final reply ends here (§17.2.1). True: handled.
    pub(crate) fn tm_absorb(&mut self, cx: &mut Cx<'_>, msg: &Message<'_>) -> bool {
        let Some(table) = self.table else {
            return false;
        };
        if msg.method() == Some(Method::Cancel) {
            return false; // its own transaction: the script decides
        }
        let Some(key) = server_key(msg, false) else {
            return false;
        };
        let bucket = table.bucket_of(key);
        let mut l = table.lock(bucket);
        let Some((idx, generation)) = table.find(&l, bucket, key) else {
            return false;
        };
        let t = TxnRef {
            bucket,
            idx,
            generation,
        };
        let Some(s) = table.slot(&mut l, idx, generation) else {
            return false;
        };
        if msg.method() == Some(Method::Ack) {
            if !s.txn.on_ack(cx.now_ms, &self.timers) {
                return false; // an ACK for a 2xx sharing the branch: routed
            }
            count(cx, TmCounter::AcksAbsorbed);
            self.tm_exec(cx, &table, &mut l, t, &[], None);
            return true;
        }
        count(cx, TmCounter::RetransmissionsAbsorbed);
        if let Some(e) = s.txn.on_retransmission() {
            self.tm_exec(cx, &table, &mut l, t, &[e], None);
        }
        true
    }

    /// `t_reply(code, reason)` and `send_reply` once a transaction exists:
    /// the reply is sent, kept for retransmissions, and ends the
    /// transaction's server side if final; `headers` are extra header
    /// lines.
    /// Kamailio's `t_check_trans()`. A CANCEL: true when its INVITE's
    /// transaction is here (the script then relays it). An ACK: true when
    /// it belongs to an INVITE transaction here (one to a 2xx: the ACK to
    /// a non-2xx was absorbed before the script). A reply: true when it is
    /// a branch's. Another request: its retransmissions never reach the
    /// script (absorbed with the last reply resent), so a transaction
    /// found is this request's own, made by `t_newtran()`: the script
    /// ends (0), as Kamailio's for a retransmission; none: false.
    pub(crate) fn t_check_trans(&self, ctx: &MsgCtx<'_, '_>) -> i32 {
        let Some(table) = self.table else {
            return -1;
        };
        let msg = ctx.msg;
        if !msg.is_request() {
            let ours = msg
                .top_via()
                .ok()
                .and_then(|v| v.branch)
                .and_then(super::key::BranchId::decode)
                .is_some_and(|id| {
                    let mut l = table.lock(id.bucket);
                    table.slot(&mut l, id.slot, id.generation).is_some()
                });
            return if ours { 1 } else { -1 };
        }
        let cancel = msg.method() == Some(Method::Cancel);
        let Some(key) = super::key::server_key(msg, cancel) else {
            return -1;
        };
        let bucket = table.bucket_of(key);
        let l = table.lock(bucket);
        let found = table.find(&l, bucket, key).is_some();
        drop(l);
        match (found, msg.method()) {
            (false, _) => -1,
            (true, Some(Method::Cancel | Method::Ack)) => 1,
            (true, _) => 0,
        }
    }

    /// Whether the current transaction was cancelled.
    /// In failure_route: whether the winning branch (`any`: any branch)
    /// has `what` (`txn::REPLIED`, `txn::TIMED_OUT`) in its history.
    pub(crate) fn branch_history(&self, what: u8, any: bool) -> bool {
        let (Some(table), Some(t)) = (self.table, self.cur_txn) else {
            return false;
        };
        let mut l = table.lock(t.bucket);
        let Some(s) = table.slot(&mut l, t.idx, t.generation) else {
            return false;
        };
        let best = usize::from(s.txn.best_branch);
        let (_, br) = table.view(s);
        if any {
            br.iter().any(|b| b.happened(what))
        } else {
            br.get(best).is_some_and(|b| b.happened(what))
        }
    }

    /// The code of the last reply the current transaction sent upstream.
    pub(crate) fn last_reply_code(&self) -> Option<u16> {
        let (table, t) = (self.table?, self.cur_txn?);
        let mut l = table.lock(t.bucket);
        let code = table.slot(&mut l, t.idx, t.generation)?.txn.reply_code;
        (code != 0).then_some(code)
    }

    pub(crate) fn is_canceled(&self) -> bool {
        let (Some(table), Some(t)) = (self.table, self.cur_txn) else {
            return false;
        };
        let mut l = table.lock(t.bucket);
        table
            .slot(&mut l, t.idx, t.generation)
            .is_some_and(|s| s.txn.canceled())
    }

    pub(crate) fn t_reply(
        &mut self,
        cx: &mut Cx<'_>,
        ctx: &mut MsgCtx<'_, '_>,
        code: u16,
        reason: &[u8],
        headers: &[u8],
    ) -> i32 {
        let (Some(table), Some(t)) = (self.table, self.cur_txn) else {
            log::warn!("t_reply: no transaction (call t_newtran or t_relay first)");
            return -1;
        };
        // A final reply is reported to the runtimes that want it, once.
        let hooked = code >= 200 && cx.shell.tm_hooked(ctx.st.flags);
        let mut l = table.lock(t.bucket);
        let decided = table.slot(&mut l, t.idx, t.generation).and_then(|s| {
            let fx = s.txn.on_t_reply(code, cx.now_ms, &self.timers)?;
            let report = hooked && s.txn.flags & REPORTED == 0;
            if report {
                s.txn.flags |= REPORTED;
            }
            Some((fx, report))
        });
        let Some((fx, report)) = decided else {
            return -1; // gone, or a final reply went upstream already
        };
        let tag = ctx
            .msg
            .to()
            .is_ok_and(|t| t.tag.is_none())
            .then(|| cx.shell.to_tag(ctx.msg))
            .flatten();
        let mut reply = std::mem::take(&mut self.local_reply);
        let headers = ctx.reply_header_lines(headers);
        write_reply(
            ctx.msg,
            code,
            reason,
            tag.as_ref().map(|t| t.as_bytes()),
            None,
            &headers,
            b"",
            &mut reply,
        );
        count(cx, TmCounter::LocalReplies);
        if report {
            let req = TmRequest {
                msg: ctx.msg,
                source: ctx.src,
                local: ctx.dst,
                flags: ctx.st.flags,
            };
            if let Ok(r) = Message::parse(&reply) {
                ctx.st.flags &= !response_out(cx, req, &r);
            }
        }
        self.local_reply = reply;
        self.tm_exec(cx, &table, &mut l, t, &fx, None);
        1
    }

    /// A reply whose top Via carries one of our transaction branches.
    /// False: not a tm branch (the stateless path takes it).
    pub(crate) fn tm_reply(&mut self, cx: &mut Cx<'_>, msg: &Message<'_>, src: SocketAddr) -> bool {
        let Some(table) = self.table else {
            return false;
        };
        let Some(id) = msg
            .top_via()
            .ok()
            .and_then(|v| v.branch)
            .and_then(BranchId::decode)
        else {
            return false;
        };
        let Some(code) = msg.status() else {
            return true;
        };
        let for_cancel = msg.cseq().is_ok_and(|c| c.method == Method::Cancel);
        let t = TxnRef {
            bucket: id.bucket,
            idx: id.slot,
            generation: id.generation,
        };
        let mut l = table.lock(t.bucket);
        let Some(on_reply) = table.slot(&mut l, t.idx, t.generation).map(|s| {
            if s.txn.on_reply != 0 {
                self.avp_buf.clear();
                table.pool.read(s.txn.avps, &mut self.avp_buf);
            }
            s.txn.on_reply
        }) else {
            count(cx, TmCounter::RepliesLate);
            let invite = msg.cseq().is_ok_and(|c| c.method == Method::Invite);
            // False: the stateless path takes it upstream.
            return !Txn::late_reply_forwarded(invite, code);
        };
        if code == 503 && !for_cancel {
            self.blocklist_503(cx, msg, src);
        }
        if on_reply != 0 && !for_cancel {
            // The script runs without the lock, which is taken again after.
            drop(l);
            let dropped = self.run_reply_route(cx, msg, src, on_reply);
            if dropped && code < 200 {
                return true; // onreply_route dropped a provisional reply
            }
            l = table.lock(t.bucket);
            if self.aux_st.avps.changed
                && let Some(s) = table.slot(&mut l, t.idx, t.generation)
            {
                keep_avps(
                    cx,
                    &table,
                    &mut s.txn.avps,
                    &self.aux_st.avps,
                    &mut self.avp_buf,
                );
            }
        }
        let Some(s) = table.slot(&mut l, t.idx, t.generation) else {
            return true;
        };
        let fx = {
            let (txn, mut br) = table.view(s);
            txn.on_reply(
                &mut br,
                id.branch,
                code,
                for_cancel,
                cx.now_ms,
                &self.timers,
            )
        };
        let failure = self.tm_exec(cx, &table, &mut l, t, &fx, Some(msg));
        drop(l);
        if let Some(route) = failure {
            self.run_failure_route(cx, t, route);
        }
        true
    }

    /// Runs onreply_route[route - 1] on a reply; true when it dropped it.
    fn run_reply_route(
        &mut self,
        cx: &mut Cx<'_>,
        msg: &Message<'_>,
        src: SocketAddr,
        route: u16,
    ) -> bool {
        let mut st = std::mem::take(&mut self.aux_st);
        let local = cx.shell.local(cx.shell.in_sock());
        let proto = cx.shell.transport(cx.shell.in_sock());
        let mut ctx = MsgCtx::new(msg, src, local, proto, &mut st);
        ctx.st.avps.decode(&self.avp_buf);
        let out = cx.run_route(RouteKind::Reply, u32::from(route - 1), &mut ctx, self);
        self.aux_st = st;
        out.dropped
    }

    /// Runs failure_route[route - 1] on the stored request, without the
    /// lock, then lets the transaction go on (§16.7 step 6's new branches,
    /// or the best reply).
    pub(crate) fn run_failure_route(&mut self, cx: &mut Cx<'_>, t: TxnRef, route: u16) {
        let Some(table) = self.table else { return };
        let mut buf = std::mem::take(&mut self.failure_buf);
        buf.clear();
        let (flags, ds, code, source, before, in_sock) = {
            let mut l = table.lock(t.bucket);
            let Some(s) = table.slot(&mut l, t.idx, t.generation) else {
                self.failure_buf = buf;
                return;
            };
            table.pool.read(s.txn.request, &mut buf);
            self.avp_buf.clear();
            table.pool.read(s.txn.avps, &mut self.avp_buf);
            (
                s.txn.script_flags,
                s.txn.ds,
                s.txn.best_code,
                s.txn.source(),
                s.txn.nbranch,
                usize::from(s.txn.in_sock),
            )
        };
        let mut st = std::mem::take(&mut self.aux_st);
        let prev_txn = self.cur_txn.replace(t);
        let prev_armed = std::mem::take(&mut self.armed);
        self.in_failure_route = true;
        match Message::parse(&buf) {
            Ok(msg) => {
                let local = cx.shell.local(cx.shell.in_sock());
                let proto = cx.shell.transport(in_sock);
                let mut ctx = MsgCtx::new(&msg, source, local, proto, &mut st);
                ctx.status = Some(code);
                ctx.st.flags = flags;
                ctx.st.ds = ds;
                ctx.st.avps.decode(&self.avp_buf);
                cx.run_route(RouteKind::Failure, u32::from(route - 1), &mut ctx, self);
            }
            Err(e) => log::error!("tm: stored request does not parse: {e}"),
        }
        self.in_failure_route = false;
        let armed = std::mem::replace(&mut self.armed, prev_armed);
        self.cur_txn = prev_txn;
        self.aux_st = st;
        self.failure_buf = buf;
        let mut l = table.lock(t.bucket);
        let Some(s) = table.slot(&mut l, t.idx, t.generation) else {
            return;
        };
        s.txn.on_failure = armed.failure;
        // SER's flags are the transaction's: what failure_route set or
        // reset stays (acc's missed-call flag set again, say).
        s.txn.script_flags = self.aux_st.flags;
        // ds_next_dst moved on (and the call's load with it).
        s.txn.ds = self.aux_st.ds;
        // So do the AVPs it set (Kamailio's are the transaction's).
        if self.aux_st.avps.changed {
            keep_avps(
                cx,
                &table,
                &mut s.txn.avps,
                &self.aux_st.avps,
                &mut self.avp_buf,
            );
        }
        let added = s.txn.nbranch > before;
        let fx = {
            let (txn, mut br) = table.view(s);
            txn.failure_route_done(&mut br, added, cx.now_ms, &self.timers)
        };
        let again = self.tm_exec(cx, &table, &mut l, t, &fx, None);
        drop(l);
        if let Some(route) = again {
            self.run_failure_route(cx, t, route);
        }
    }

    /// The timer process's turn: every transaction due now, in batches
    /// of [`TIMER_BATCH`], so no rate of transactions outruns it; after
    /// [`TIMER_ROUNDS`] full batches the rest waits a tick and the lag is
    /// counted. It waits for shards a worker holds.
    pub(crate) fn tm_timers(&mut self, cx: &mut Cx<'_>) {
        let Some(table) = self.table else { return };
        for _ in 0..TIMER_ROUNDS {
            let mut due: ArrayVec<u32, TIMER_BATCH> = ArrayVec::new();
            table.wheel.take_due(&table, cx.now_ms, &mut due);
            let full = due.is_full();
            for idx in due {
                self.tm_timer_one(cx, &table, idx);
            }
            if !full {
                return;
            }
        }
        count(cx, TmCounter::TimerLag);
    }

    /// A worker's turn after a batch: the transactions due in shards no
    /// one else is taking, so timer work is spread over the processes
    /// that are awake rather than queued for one. Skipped until the
    /// earliest due time it saw, and at most a tick (the timer process
    /// takes what an idle worker leaves).
    pub(crate) fn tm_drive(&mut self, cx: &mut Cx<'_>) {
        let Some(table) = self.table else { return };
        if cx.now_ms < self.next_timer_look {
            return;
        }
        let mut next = u64::MAX;
        for _ in 0..TIMER_ROUNDS {
            let mut due: ArrayVec<u32, TIMER_BATCH> = ArrayVec::new();
            next = table.wheel.take_ready(&table, cx.now_ms, &mut due);
            if due.is_empty() {
                break;
            }
            cx.counts
                .add(TmCounter::TimersByWorkers as usize, due.len() as u64);
            for idx in due {
                self.tm_timer_one(cx, &table, idx);
            }
        }
        self.next_timer_look = next.min(cx.now_ms + super::wheel::TICK_MS);
    }

    fn tm_timer_one(&mut self, cx: &mut Cx<'_>, table: &Table, idx: u32) {
        let Some((bucket, generation)) = table.peek(idx) else {
            return;
        };
        let t = TxnRef {
            bucket,
            idx,
            generation,
        };
        let failure = {
            let mut l = table.lock(bucket);
            let Some(s) = table.slot(&mut l, idx, generation) else {
                return;
            };
            // Re-armed for later meanwhile by a worker: nothing due, and
            // tm_exec puts it back on the wheel.
            let fx = {
                let (txn, mut br) = table.view(s);
                if txn.due(&br) > cx.now_ms {
                    Default::default()
                } else {
                    txn.on_timer(&mut br, cx.now_ms, &self.timers)
                }
            };
            self.tm_exec(cx, table, &mut l, t, &fx, None)
        };
        if let Some(route) = failure {
            self.run_failure_route(cx, t, route);
        }
    }

    /// Branch `b` let its request time out without a reply: its address
    /// is skipped for `dst_blocklist_expire` when the blocklist takes
    /// this transaction's method (`blst_methods_add`: 1 INVITE, other
    /// bits the rest).
    fn blocklist_silent(&mut self, cx: &mut Cx<'_>, txn: &Txn, br: &[&mut Branch], b: u8) {
        let wanted = match txn.kind {
            Kind::Invite => self.blst_methods & 1 != 0,
            Kind::NonInvite => self.blst_methods & !1 != 0,
        };
        let Some(branch) = br.get(usize::from(b)).filter(|_| wanted) else {
            return;
        };
        let dest = SocketAddr::from(branch.dest);
        if self.blocklist_add(cx, dest) {
            log::info!(
                "tm: {dest} let a request time out; blocklisted for {} s",
                self.blst_expire_ms / 1000
            );
        }
    }

    /// `blst_503`: a 503 from `src` skips it for its Retry-After.
    fn blocklist_503(&mut self, cx: &mut Cx<'_>, msg: &Message<'_>, src: SocketAddr) {
        let retry_after = msg.named(b"Retry-After").next().and_then(|h| {
            let v = msg.value(h);
            let digits = v.iter().take_while(|b| b.is_ascii_digit()).count();
            std::str::from_utf8(&v[..digits]).ok()?.parse::<u32>().ok()
        });
        let (Some(ms), Some(list)) = (
            super::blocklist::for_503(retry_after, self.blst_503),
            self.blocklist,
        ) else {
            return;
        };
        list.add(src, cx.now_ms + ms, cx.now_ms);
        count(cx, TmCounter::BlocklistAdded);
        log::info!("tm: {src} answered 503; blocklisted for {} s", ms / 1000);
    }

    /// Skips `dest` for `dst_blocklist_expire`; false when no blocklist
    /// is kept.
    fn blocklist_add(&mut self, cx: &mut Cx<'_>, dest: SocketAddr) -> bool {
        let Some(list) = self.blocklist else {
            return false;
        };
        list.add(dest, cx.now_ms + self.blst_expire_ms, cx.now_ms);
        count(cx, TmCounter::BlocklistAdded);
        true
    }

    /// Carries out effects on a locked transaction, then re-arms its timer
    /// or frees it. Returns the failure_route to run, if any.
    pub(crate) fn tm_exec(
        &mut self,
        cx: &mut Cx<'_>,
        table: &Table,
        l: &mut Locked<'_>,
        t: TxnRef,
        fx: &[Effect],
        reply: Option<&Message<'_>>,
    ) -> Option<u16> {
        let s = table.slot(l, t.idx, t.generation)?;
        let mut stored = std::mem::take(&mut self.stored);
        stored.clear();
        // Modules that asked for this transaction's callbacks see its
        // final reply go out (the stored request is read for them).
        let hooked = cx.shell.tm_hooked(s.txn.script_flags);
        let reported = s.txn.flags & REPORTED != 0;
        // A relayed reply they see: every provisional one, the first final.
        let seen = reply
            .and_then(Message::status)
            .is_some_and(|c| c < 200 || !reported);
        let mut out = None;
        // The stored request is read and parsed only when a message is
        // built from it: not to resend a kept reply.
        let needs_stored = {
            let (txn, br) = table.view(s);
            fx.iter().any(|e| match e {
                Effect::SendBranch(b) | Effect::SendCancel(b) | Effect::SendAck(b) => {
                    br.get(*b as usize).is_some_and(|b| b.request.is_empty())
                }
                Effect::ResendReply => txn.reply.is_empty(),
                Effect::SendBest => !txn.best_text_kept() || (hooked && !reported),
                Effect::RelayReply { .. } => hooked && seen,
                Effect::FailureRoute(_) => hooked,
                _ => false,
            })
        };
        if needs_stored {
            table.pool.read(s.txn.request, &mut stored);
        }
        let smsg = if needs_stored {
            Message::parse(&stored).ok()
        } else {
            None
        };
        let mut failure = None;
        let mut delete = false;
        for &e in fx {
            match e {
                Effect::SendBranch(b) | Effect::SendCancel(b) | Effect::SendAck(b) => {
                    let own = table.view(s).1.get(b as usize).map(|br| br.request);
                    match own.filter(|c| !c.is_empty()) {
                        // branch_route or failure_route gave it its own text.
                        Some(c) => {
                            let mut text = std::mem::take(&mut self.base_buf);
                            text.clear();
                            table.pool.read(c, &mut text);
                            match Message::parse(&text) {
                                Ok(m) => self.send_on_branch(cx, table, s, t, b, e, &m, reply),
                                Err(err) => log::error!("tm: a branch's request: {err}"),
                            }
                            self.base_buf = text;
                        }
                        None => {
                            if let Some(m) = &smsg {
                                self.send_on_branch(cx, table, s, t, b, e, m, reply);
                            }
                        }
                    }
                }
                Effect::RelayReply { store } => {
                    let Some(r) = reply else { continue };
                    if seen {
                        out = Some(FinalOut::Relayed);
                    }
                    let mut out = std::mem::take(&mut self.scratch);
                    if proxy::build_reply_forward(r, &mut out).is_ok() {
                        let up = SocketAddr::from(s.txn.upstream);
                        cx.shell
                            .push(s.txn.in_sock as usize, up)
                            .extend_from_slice(&out);
                        cx.shell.count(Counter::ForwardedReplies);
                        if store && !table.pool.replace(&mut s.txn.reply, &out) {
                            log::warn!("tm: shared memory full; a reply not kept");
                        }
                    }
                    self.scratch = out;
                }
                Effect::KeepBest => {
                    let Some(r) = reply else { continue };
                    let mut out = std::mem::take(&mut self.scratch);
                    if proxy::build_reply_forward(r, &mut out).is_ok()
                        && !table.pool.replace(&mut s.txn.best, &out)
                    {
                        log::warn!("tm: shared memory full; a reply not kept");
                        s.txn.best_kept = 0;
                    }
                    self.scratch = out;
                }
                Effect::ResendReply => self.resend_reply(cx, table, s, smsg.as_ref()),
                Effect::SendLocal => {
                    let out = std::mem::take(&mut self.local_reply);
                    let up = SocketAddr::from(s.txn.upstream);
                    cx.shell
                        .push(s.txn.in_sock as usize, up)
                        .extend_from_slice(&out);
                    if !table.pool.replace(&mut s.txn.reply, &out) {
                        log::warn!("tm: shared memory full; a reply sent but not kept");
                    }
                    self.local_reply = out;
                }
                Effect::SendBest => {
                    self.send_best(cx, table, s, smsg.as_ref());
                    if !reported {
                        out = Some(FinalOut::Kept);
                    }
                }
                Effect::FailureRoute(r) => failure = Some(r),
                Effect::Silent(b) => {
                    let (txn, br) = table.view(s);
                    self.blocklist_silent(cx, txn, &br, b);
                }
                Effect::Delete => delete = true,
            }
        }
        if let (true, Some(m)) = (hooked, &smsg) {
            self.tm_report(cx, table, s, m, reply, out, failure.is_some());
        }
        self.stored = stored;
        if delete {
            let ds = s.txn.ds;
            table.remove(l, t.idx);
            cx.shell.tm_destroyed(&ds);
        } else {
            let due = {
                let (txn, br) = table.view(s);
                txn.due(&br)
            };
            table.arm(s, t.idx, due);
        }
        failure
    }

    /// tm's callbacks for what `tm_exec` just did: the reply that went
    /// upstream (`out`), or the failure failure_route is about to see.
    #[allow(clippy::too_many_arguments)]
    fn tm_report(
        &mut self,
        cx: &mut Cx<'_>,
        table: &Table,
        s: &mut crate::modules::tm::table::Slot,
        stored: &Message<'_>,
        reply: Option<&Message<'_>>,
        out: Option<FinalOut>,
        failure: bool,
    ) {
        let req = || TmRequest {
            msg: stored,
            source: s.txn.source(),
            local: cx.shell.local(usize::from(s.txn.in_sock)),
            flags: s.txn.script_flags,
        };
        let mut text = std::mem::take(&mut self.base_buf);
        let reset = match (out, reply) {
            (Some(FinalOut::Relayed), Some(r)) => {
                let req = req();
                response_out(cx, req, r)
            }
            (Some(FinalOut::Kept), _) => {
                text.clear();
                table.pool.read(s.txn.reply, &mut text);
                match Message::parse(&text) {
                    Ok(r) => {
                        let req = req();
                        response_out(cx, req, &r)
                    }
                    Err(_) => 0,
                }
            }
            _ if failure => {
                // The best reply failure_route sees: kept, or tm's own.
                let code = s.txn.best_code;
                let kept = s.txn.best_text_kept();
                if kept {
                    text.clear();
                    table.pool.read(s.txn.best, &mut text);
                }
                let parsed = kept.then(|| Message::parse(&text).ok()).flatten();
                let local_tag = cx.shell.to_tag(stored);
                let (reason, to_tag) = match &parsed {
                    Some(r) => (
                        r.reason(),
                        r.to().ok().and_then(|t| t.tag).unwrap_or_default(),
                    ),
                    None => (
                        tmbuild::reason(code),
                        local_tag.as_ref().map_or(&b""[..], |t| t.as_bytes()),
                    ),
                };
                let ev = TmEvent::Failure {
                    req: req(),
                    code,
                    reason,
                    to_tag,
                };
                cx.shell.tm_emit(&ev)
            }
            _ => 0,
        };
        self.base_buf = text;
        let is_final = match (out, reply) {
            (Some(FinalOut::Relayed), Some(r)) => r.status().is_some_and(|c| c >= 200),
            (Some(FinalOut::Kept), _) => true,
            _ => false,
        };
        if is_final {
            s.txn.flags |= REPORTED;
        }
        s.txn.script_flags &= !reset;
    }

    #[allow(clippy::too_many_arguments)]
    fn send_on_branch(
        &mut self,
        cx: &mut Cx<'_>,
        table: &Table,
        s: &mut crate::modules::tm::table::Slot,
        t: TxnRef,
        b: u8,
        e: Effect,
        stored: &Message<'_>,
        reply: Option<&Message<'_>>,
    ) {
        let (_, br) = table.view(s);
        let Some(branch) = br.get(b as usize) else {
            return;
        };
        let (uri, dest, sock) = (
            branch.uri,
            SocketAddr::from(branch.dest),
            branch.sock as usize,
        );
        self.uri_buf.clear();
        table.pool.read(uri, &mut self.uri_buf);
        let id = BranchId {
            bucket: t.bucket,
            slot: t.idx,
            generation: t.generation,
            branch: b,
        };
        let via = OurVia::new(cx.shell.local(sock), id.encode())
            .over(cx.shell.transport(sock).via_name());
        let out = cx.shell.push(sock, dest);
        let built = match (e, reply) {
            (Effect::SendBranch(_), _) => tmbuild::branch_request(stored, &self.uri_buf, &via, out),
            (Effect::SendCancel(_), _) => tmbuild::cancel(stored, &self.uri_buf, &via, out),
            (_, Some(r)) => tmbuild::ack(stored, r, &self.uri_buf, &via, out),
            (_, None) => return,
        };
        match built {
            Ok(()) if e == Effect::SendBranch(b) => {
                cx.shell.tag_last(id.pack());
                cx.shell.count(Counter::ForwardedRequests);
            }
            Ok(()) => {}
            Err(err) => {
                cx.shell.pop();
                cx.shell.count(Counter::SendErrors);
                log::warn!("tm: cannot build a request for {dest}: {err}");
            }
        }
    }

    /// A branch's request the kernel would not send: the branch ends with
    /// 477 at once (failure_route may run), its destination goes on the
    /// blocklist if one is kept, and one error line names it.
    pub(crate) fn tm_send_failed(&mut self, cx: &mut Cx<'_>, id: BranchId, dest: SocketAddr) {
        let Some(table) = self.table else { return };
        let t = TxnRef {
            bucket: id.bucket,
            idx: id.slot,
            generation: id.generation,
        };
        let failure = {
            let mut l = table.lock(t.bucket);
            let Some(s) = table.slot(&mut l, t.idx, t.generation) else {
                return;
            };
            let fx = {
                let (txn, mut br) = table.view(s);
                txn.on_send_failed(&mut br, id.branch, cx.now_ms, &self.timers)
            };
            // Only a branch still pending ends (not one whose ACK bounced).
            let Some(fx) = fx else { return };
            count(cx, TmCounter::SendFailed);
            self.blocklist_add(cx, dest);
            self.tm_exec(cx, &table, &mut l, t, &fx, None)
        };
        if let Some(route) = failure {
            self.run_failure_route(cx, t, route);
        }
    }

    /// The last reply again: the kept one, or a rebuilt 100 Trying.
    fn resend_reply(
        &mut self,
        cx: &mut Cx<'_>,
        table: &Table,
        s: &crate::modules::tm::table::Slot,
        stored: Option<&Message<'_>>,
    ) {
        let up = SocketAddr::from(s.txn.upstream);
        if !s.txn.reply.is_empty() {
            let out = cx.shell.push(s.txn.in_sock as usize, up);
            table.pool.read(s.txn.reply, out);
        } else if s.txn.reply_code == 100
            && let Some(m) = stored
        {
            let out = cx.shell.push(s.txn.in_sock as usize, up);
            write_reply(m, 100, b"Trying", None, None, b"", b"", out);
        }
    }

    /// The best final reply upstream: the kept text, or a local reply.
    fn send_best(
        &mut self,
        cx: &mut Cx<'_>,
        table: &Table,
        s: &mut crate::modules::tm::table::Slot,
        stored: Option<&Message<'_>>,
    ) {
        let txn = &mut s.txn;
        let up = SocketAddr::from(txn.upstream);
        if txn.best_text_kept() {
            let out = cx.shell.push(txn.in_sock as usize, up);
            table.pool.read(txn.best, out);
            let old = std::mem::replace(&mut txn.reply, txn.best);
            txn.best = Default::default();
            table.pool.free(old);
            cx.shell.count(Counter::ForwardedReplies);
            return;
        }
        let Some(m) = stored else { return };
        let code = txn.best_code;
        let tag = m
            .to()
            .is_ok_and(|t| t.tag.is_none())
            .then(|| cx.shell.to_tag(m))
            .flatten();
        let mut out = std::mem::take(&mut self.scratch);
        write_reply(
            m,
            code,
            tmbuild::reason(code),
            tag.as_ref().map(|t| t.as_bytes()),
            None,
            b"",
            b"",
            &mut out,
        );
        cx.shell
            .push(txn.in_sock as usize, up)
            .extend_from_slice(&out);
        if !table.pool.replace(&mut txn.reply, &out) {
            log::warn!("tm: shared memory full; reply {code} sent but not kept");
        }
        self.scratch = out;
        count(cx, TmCounter::LocalReplies);
    }
}

/// TMCB_RESPONSE_OUT: reply `r` went upstream for `req`; the script
/// flags the modules reset.
fn response_out(cx: &mut Cx<'_>, req: TmRequest<'_, '_>, r: &Message<'_>) -> u32 {
    let ev = TmEvent::ResponseOut {
        code: r.status().unwrap_or(0),
        reason: r.reason(),
        to_tag: r.to().ok().and_then(|t| t.tag).unwrap_or_default(),
        has_body: !r.body().is_empty(),
        req,
    };
    cx.shell.tm_emit(&ev)
}
