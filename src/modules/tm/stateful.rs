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

use crate::cfg::settings::Proto;
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
use crate::server::worker::Worker;
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
}

impl Worker<'_> {
    /// Before the script: a retransmission of a request whose transaction
    /// exists gets the last reply again (§17.2.1, §17.2.2), and the ACK to
    /// our own non-2xx final reply ends here (§17.2.1). True: handled.
    pub(crate) fn tm_absorb(&mut self, msg: &Message<'_>) -> bool {
        let Some(table) = self.tm.table else {
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
            if !s.txn.on_ack(self.now_ms, &self.tm.timers) {
                return false; // an ACK for a 2xx sharing the branch: routed
            }
            self.tm_count(TmCounter::AcksAbsorbed);
            self.tm_exec(&table, &mut l, t, &[], None);
            return true;
        }
        self.tm_count(TmCounter::RetransmissionsAbsorbed);
        if let Some(e) = s.txn.on_retransmission() {
            self.tm_exec(&table, &mut l, t, &[e], None);
        }
        true
    }

    /// `t_reply(code, reason)` and `send_reply` once a transaction exists:
    /// the reply is sent, kept for retransmissions, and ends the
    /// transaction's server side if final. `self.text` holds the reason.
    pub(crate) fn t_reply(&mut self, ctx: &mut MsgCtx<'_, '_>, code: u16) -> i32 {
        let (Some(table), Some(t)) = (self.tm.table, self.tm.cur_txn) else {
            log::warn!("t_reply: no transaction (call t_newtran or t_relay first)");
            return -1;
        };
        // A final reply is reported to the runtimes that want it, once.
        let hooked = code >= 200 && self.tm_hooked(ctx.st.flags);
        let mut l = table.lock(t.bucket);
        let decided = table.slot(&mut l, t.idx, t.generation).and_then(|s| {
            let fx = s.txn.on_t_reply(code, self.now_ms, &self.tm.timers)?;
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
            .then(|| self.shared.ack_filter.signature().to_tag(ctx.msg))
            .flatten();
        let mut reply = std::mem::take(&mut self.tm.local_reply);
        write_reply(
            ctx.msg,
            code,
            &self.text,
            tag.as_ref().map(|t| t.as_bytes()),
            None,
            &self.reply_extra,
            b"",
            &mut reply,
        );
        self.tm_count(TmCounter::LocalReplies);
        if report {
            let req = TmRequest {
                msg: ctx.msg,
                source: ctx.src,
                local: ctx.dst,
                flags: ctx.st.flags,
            };
            if let Ok(r) = Message::parse(&reply) {
                ctx.st.flags &= !self.tm_response_out(req, &r);
            }
        }
        self.tm.local_reply = reply;
        self.tm_exec(&table, &mut l, t, &fx, None);
        1
    }

    /// A reply whose top Via carries one of our transaction branches.
    /// False: not a tm branch (the stateless path takes it).
    pub(crate) fn tm_reply(&mut self, msg: &Message<'_>, src: SocketAddr) -> bool {
        let Some(table) = self.tm.table else {
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
        let Some(on_reply) = table
            .slot(&mut l, t.idx, t.generation)
            .map(|s| s.txn.on_reply)
        else {
            self.tm_count(TmCounter::RepliesLate);
            let invite = msg.cseq().is_ok_and(|c| c.method == Method::Invite);
            // False: the stateless path takes it upstream.
            return !Txn::late_reply_forwarded(invite, code);
        };
        if on_reply != 0 && !for_cancel {
            // The script runs without the lock, which is taken again after.
            drop(l);
            let dropped = self.run_reply_route(msg, src, on_reply);
            if dropped && code < 200 {
                return true; // onreply_route dropped a provisional reply
            }
            l = table.lock(t.bucket);
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
                self.now_ms,
                &self.tm.timers,
            )
        };
        let failure = self.tm_exec(&table, &mut l, t, &fx, Some(msg));
        drop(l);
        if let Some(route) = failure {
            self.run_failure_route(t, route);
        }
        true
    }

    /// Runs onreply_route[route - 1] on a reply; true when it dropped it.
    fn run_reply_route(&mut self, msg: &Message<'_>, src: SocketAddr, route: u16) -> bool {
        let mut st = std::mem::take(&mut self.tm.aux_st);
        let local = self.locals[self.in_sock];
        let mut ctx = MsgCtx::new(msg, src, local, Proto::Udp, &mut st);
        let vm = self.vm;
        let out = vm.run(u32::from(route - 1), &mut ctx, self);
        if let Some(e) = out.error {
            self.count(Counter::ScriptErrors);
            log::warn!("onreply_route: {e}");
        }
        self.tm.aux_st = st;
        out.dropped
    }

    /// Runs failure_route[route - 1] on the stored request, without the
    /// lock, then lets the transaction go on (§16.7 step 6's new branches,
    /// or the best reply).
    pub(crate) fn run_failure_route(&mut self, t: TxnRef, route: u16) {
        let Some(table) = self.tm.table else { return };
        let mut buf = std::mem::take(&mut self.tm.failure_buf);
        buf.clear();
        let (flags, ds, code, source, before) = {
            let mut l = table.lock(t.bucket);
            let Some(s) = table.slot(&mut l, t.idx, t.generation) else {
                self.tm.failure_buf = buf;
                return;
            };
            table.pool.read(s.txn.request, &mut buf);
            (
                s.txn.script_flags,
                s.txn.ds,
                s.txn.best_code,
                s.txn.source(),
                s.txn.nbranch,
            )
        };
        let mut st = std::mem::take(&mut self.tm.aux_st);
        let prev_txn = self.tm.cur_txn.replace(t);
        let prev_armed = std::mem::take(&mut self.tm.armed);
        self.tm.in_failure_route = true;
        match Message::parse(&buf) {
            Ok(msg) => {
                let local = self.locals[self.in_sock];
                let mut ctx = MsgCtx::new(&msg, source, local, Proto::Udp, &mut st);
                ctx.status = Some(code);
                ctx.st.flags = flags;
                ctx.st.ds = ds;
                let vm = self.vm;
                let out = vm.run(u32::from(route - 1), &mut ctx, self);
                if let Some(e) = out.error {
                    self.count(Counter::ScriptErrors);
                    log::warn!("failure_route: {e}");
                }
            }
            Err(e) => log::error!("tm: stored request does not parse: {e}"),
        }
        self.tm.in_failure_route = false;
        let armed = std::mem::replace(&mut self.tm.armed, prev_armed);
        self.tm.cur_txn = prev_txn;
        self.tm.aux_st = st;
        self.tm.failure_buf = buf;
        let mut l = table.lock(t.bucket);
        let Some(s) = table.slot(&mut l, t.idx, t.generation) else {
            return;
        };
        s.txn.on_failure = armed.failure;
        // SER's flags are the transaction's: what failure_route set or
        // reset stays (acc's missed-call flag set again, say).
        s.txn.script_flags = self.tm.aux_st.flags;
        // ds_next_dst moved on (and the call's load with it).
        s.txn.ds = self.tm.aux_st.ds;
        let added = s.txn.nbranch > before;
        let fx = {
            let (txn, mut br) = table.view(s);
            txn.failure_route_done(&mut br, added, self.now_ms, &self.tm.timers)
        };
        let again = self.tm_exec(&table, &mut l, t, &fx, None);
        drop(l);
        if let Some(route) = again {
            self.run_failure_route(t, route);
        }
    }

    /// The timer process's turn: every transaction due now, in batches
    /// of [`TIMER_BATCH`], so no rate of transactions outruns it; after
    /// [`TIMER_ROUNDS`] full batches the rest waits a tick and the lag is
    /// counted.
    pub(crate) fn tm_timers(&mut self) {
        let Some(table) = self.tm.table else { return };
        for _ in 0..TIMER_ROUNDS {
            let mut due: ArrayVec<u32, TIMER_BATCH> = ArrayVec::new();
            table.wheel.take_due(&table, self.now_ms, &mut due);
            let full = due.is_full();
            for idx in due {
                self.tm_timer_one(&table, idx);
            }
            if !full {
                return;
            }
        }
        self.tm_count(TmCounter::TimerLag);
    }

    fn tm_timer_one(&mut self, table: &Table, idx: u32) {
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
                if txn.due(&br) > self.now_ms {
                    Default::default()
                } else {
                    txn.on_timer(&mut br, self.now_ms, &self.tm.timers)
                }
            };
            self.tm_exec(table, &mut l, t, &fx, None)
        };
        if let Some(route) = failure {
            self.run_failure_route(t, route);
        }
    }

    /// Branch `b` let its request time out without a reply: its address
    /// is skipped for `dst_blocklist_expire` when the blocklist takes
    /// this transaction's method (`blst_methods_add`: 1 INVITE, other
    /// bits the rest).
    fn blocklist_silent(&self, txn: &Txn, br: &[&mut Branch], b: u8) {
        let wanted = match txn.kind {
            Kind::Invite => self.tm.blst_methods & 1 != 0,
            Kind::NonInvite => self.tm.blst_methods & !1 != 0,
        };
        let Some(branch) = br.get(usize::from(b)).filter(|_| wanted) else {
            return;
        };
        let dest = SocketAddr::from(branch.dest);
        if self.blocklist_add(dest) {
            log::info!(
                "tm: {dest} let a request time out; blocklisted for {} s",
                self.tm.blst_expire_ms / 1000
            );
        }
    }

    /// Skips `dest` for `dst_blocklist_expire`; false when no blocklist
    /// is kept.
    fn blocklist_add(&self, dest: SocketAddr) -> bool {
        let Some(list) = self.tm.blocklist else {
            return false;
        };
        list.add(dest, self.now_ms + self.tm.blst_expire_ms, self.now_ms);
        self.tm_count(TmCounter::BlocklistAdded);
        true
    }

    /// Carries out effects on a locked transaction, then re-arms its timer
    /// or frees it. Returns the failure_route to run, if any.
    pub(crate) fn tm_exec(
        &mut self,
        table: &Table,
        l: &mut Locked<'_>,
        t: TxnRef,
        fx: &[Effect],
        reply: Option<&Message<'_>>,
    ) -> Option<u16> {
        let s = table.slot(l, t.idx, t.generation)?;
        let mut stored = std::mem::take(&mut self.tm.stored);
        stored.clear();
        // Modules that asked for this transaction's callbacks see its
        // final reply go out (the stored request is read for them).
        let hooked = self.tm_hooked(s.txn.script_flags);
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
                            let mut text = std::mem::take(&mut self.tm.base_buf);
                            text.clear();
                            table.pool.read(c, &mut text);
                            match Message::parse(&text) {
                                Ok(m) => self.send_on_branch(table, s, t, b, e, &m, reply),
                                Err(err) => log::error!("tm: a branch's request: {err}"),
                            }
                            self.tm.base_buf = text;
                        }
                        None => {
                            if let Some(m) = &smsg {
                                self.send_on_branch(table, s, t, b, e, m, reply);
                            }
                        }
                    }
                }
                Effect::RelayReply { store } => {
                    let Some(r) = reply else { continue };
                    if seen {
                        out = Some(FinalOut::Relayed);
                    }
                    let mut out = std::mem::take(&mut self.tm.scratch);
                    if proxy::build_reply_forward(r, &mut out).is_ok() {
                        let up = SocketAddr::from(s.txn.upstream);
                        self.outbox
                            .push(s.txn.in_sock as usize, up)
                            .extend_from_slice(&out);
                        self.count(Counter::ForwardedReplies);
                        if store && !table.pool.replace(&mut s.txn.reply, &out) {
                            log::warn!("tm: shared memory full; a reply not kept");
                        }
                    }
                    self.tm.scratch = out;
                }
                Effect::KeepBest => {
                    let Some(r) = reply else { continue };
                    let mut out = std::mem::take(&mut self.tm.scratch);
                    if proxy::build_reply_forward(r, &mut out).is_ok()
                        && !table.pool.replace(&mut s.txn.best, &out)
                    {
                        log::warn!("tm: shared memory full; a reply not kept");
                        s.txn.best_kept = 0;
                    }
                    self.tm.scratch = out;
                }
                Effect::ResendReply => self.resend_reply(table, s, smsg.as_ref()),
                Effect::SendLocal => {
                    let out = std::mem::take(&mut self.tm.local_reply);
                    let up = SocketAddr::from(s.txn.upstream);
                    self.outbox
                        .push(s.txn.in_sock as usize, up)
                        .extend_from_slice(&out);
                    if !table.pool.replace(&mut s.txn.reply, &out) {
                        log::warn!("tm: shared memory full; a reply sent but not kept");
                    }
                    self.tm.local_reply = out;
                }
                Effect::SendBest => {
                    self.send_best(table, s, smsg.as_ref());
                    if !reported {
                        out = Some(FinalOut::Kept);
                    }
                }
                Effect::FailureRoute(r) => failure = Some(r),
                Effect::Silent(b) => {
                    let (txn, br) = table.view(s);
                    self.blocklist_silent(txn, &br, b);
                }
                Effect::Delete => delete = true,
            }
        }
        if let (true, Some(m)) = (hooked, &smsg) {
            self.tm_report(table, s, m, reply, out, failure.is_some());
        }
        self.tm.stored = stored;
        if delete {
            let ds = s.txn.ds;
            table.remove(l, t.idx);
            self.tm_destroyed(&ds);
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
    fn tm_report(
        &mut self,
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
            local: self.locals[usize::from(s.txn.in_sock).min(self.locals.len() - 1)],
            flags: s.txn.script_flags,
        };
        let mut text = std::mem::take(&mut self.tm.base_buf);
        let reset = match (out, reply) {
            (Some(FinalOut::Relayed), Some(r)) => {
                let req = req();
                self.tm_response_out(req, r)
            }
            (Some(FinalOut::Kept), _) => {
                text.clear();
                table.pool.read(s.txn.reply, &mut text);
                match Message::parse(&text) {
                    Ok(r) => {
                        let req = req();
                        self.tm_response_out(req, &r)
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
                let local_tag = self.shared.ack_filter.signature().to_tag(stored);
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
                self.tm_emit(&ev)
            }
            _ => 0,
        };
        self.tm.base_buf = text;
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

    /// TMCB_REQUEST_IN to the runtimes that follow transactions' lives:
    /// the transaction keeps the selection as they leave it.
    pub(crate) fn tm_created(&mut self, sel: &mut crate::modules::dispatcher::Failover) {
        for m in self.rt_lifecycle.clone() {
            self.with_runtime(usize::from(m), |rt, cx| rt.tm_created(cx, sel));
        }
    }

    /// TMCB_DESTROY to the same runtimes.
    pub(crate) fn tm_destroyed(&mut self, sel: &crate::modules::dispatcher::Failover) {
        for m in self.rt_lifecycle.clone() {
            self.with_runtime(usize::from(m), |rt, cx| rt.tm_destroyed(cx, sel));
        }
    }

    /// Whether a module runtime wants tm's callbacks for a transaction
    /// with these script flags.
    pub(crate) fn tm_hooked(&self, flags: u32) -> bool {
        self.rt_tm_events.iter().any(|&m| {
            self.runtimes[usize::from(m)]
                .as_ref()
                .is_some_and(|r| r.tm_wants(flags))
        })
    }

    /// TMCB_RESPONSE_OUT: reply `r` went upstream for `req`; the script
    /// flags the modules reset.
    pub(crate) fn tm_response_out(&mut self, req: TmRequest<'_, '_>, r: &Message<'_>) -> u32 {
        let ev = TmEvent::ResponseOut {
            code: r.status().unwrap_or(0),
            reason: r.reason(),
            to_tag: r.to().ok().and_then(|t| t.tag).unwrap_or_default(),
            has_body: !r.body().is_empty(),
            req,
        };
        self.tm_emit(&ev)
    }

    /// A tm callback to every runtime that wants it; the script flags
    /// they reset.
    pub(crate) fn tm_emit(&mut self, ev: &TmEvent<'_, '_>) -> u32 {
        let flags = match ev {
            TmEvent::ResponseOut { req, .. } | TmEvent::Failure { req, .. } => req.flags,
        };
        let mut reset = 0;
        for m in self.rt_tm_events.clone() {
            reset |= self
                .with_runtime(usize::from(m), |rt, cx| match rt.tm_wants(flags) {
                    true => rt.tm_event(cx, ev),
                    false => 0,
                })
                .unwrap_or(0);
        }
        reset
    }

    #[allow(clippy::too_many_arguments)]
    fn send_on_branch(
        &mut self,
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
        self.tm.uri_buf.clear();
        table.pool.read(uri, &mut self.tm.uri_buf);
        let id = BranchId {
            bucket: t.bucket,
            slot: t.idx,
            generation: t.generation,
            branch: b,
        };
        let via = OurVia::new(self.locals[sock.min(self.locals.len() - 1)], id.encode());
        let out = self.outbox.push(sock, dest);
        let built = match (e, reply) {
            (Effect::SendBranch(_), _) => {
                tmbuild::branch_request(stored, &self.tm.uri_buf, &via, out)
            }
            (Effect::SendCancel(_), _) => tmbuild::cancel(stored, &self.tm.uri_buf, &via, out),
            (_, Some(r)) => tmbuild::ack(stored, r, &self.tm.uri_buf, &via, out),
            (_, None) => return,
        };
        match built {
            Ok(()) if e == Effect::SendBranch(b) => {
                self.outbox.tag_last(id);
                self.count(Counter::ForwardedRequests);
            }
            Ok(()) => {}
            Err(err) => {
                self.outbox.pop();
                self.count(Counter::SendErrors);
                log::warn!("tm: cannot build a request for {dest}: {err}");
            }
        }
    }

    /// A branch's request the kernel would not send: the branch ends with
    /// 477 at once (failure_route may run), its destination goes on the
    /// blocklist if one is kept, and one error line names it.
    pub(crate) fn tm_send_failed(&mut self, id: BranchId, dest: SocketAddr) {
        let Some(table) = self.tm.table else { return };
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
                txn.on_send_failed(&mut br, id.branch, self.now_ms, &self.tm.timers)
            };
            // Only a branch still pending ends (not one whose ACK bounced).
            let Some(fx) = fx else { return };
            self.tm_count(TmCounter::SendFailed);
            self.blocklist_add(dest);
            self.tm_exec(&table, &mut l, t, &fx, None)
        };
        if let Some(route) = failure {
            self.run_failure_route(t, route);
        }
    }

    /// The last reply again: the kept one, or a rebuilt 100 Trying.
    fn resend_reply(
        &mut self,
        table: &Table,
        s: &crate::modules::tm::table::Slot,
        stored: Option<&Message<'_>>,
    ) {
        let up = SocketAddr::from(s.txn.upstream);
        if !s.txn.reply.is_empty() {
            let out = self.outbox.push(s.txn.in_sock as usize, up);
            table.pool.read(s.txn.reply, out);
        } else if s.txn.reply_code == 100
            && let Some(m) = stored
        {
            let out = self.outbox.push(s.txn.in_sock as usize, up);
            write_reply(m, 100, b"Trying", None, None, b"", b"", out);
        }
    }

    /// The best final reply upstream: the kept text, or a local reply.
    fn send_best(
        &mut self,
        table: &Table,
        s: &mut crate::modules::tm::table::Slot,
        stored: Option<&Message<'_>>,
    ) {
        let txn = &mut s.txn;
        let up = SocketAddr::from(txn.upstream);
        if txn.best_text_kept() {
            let out = self.outbox.push(txn.in_sock as usize, up);
            table.pool.read(txn.best, out);
            let old = std::mem::replace(&mut txn.reply, txn.best);
            txn.best = Default::default();
            table.pool.free(old);
            self.count(Counter::ForwardedReplies);
            return;
        }
        let Some(m) = stored else { return };
        let code = txn.best_code;
        let tag = m
            .to()
            .is_ok_and(|t| t.tag.is_none())
            .then(|| self.shared.ack_filter.signature().to_tag(m))
            .flatten();
        let mut out = std::mem::take(&mut self.tm.scratch);
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
        self.outbox
            .push(txn.in_sock as usize, up)
            .extend_from_slice(&out);
        if !table.pool.replace(&mut txn.reply, &out) {
            log::warn!("tm: shared memory full; reply {code} sent but not kept");
        }
        self.tm.scratch = out;
        self.tm_count(TmCounter::LocalReplies);
    }
}
