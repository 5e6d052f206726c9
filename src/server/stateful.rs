//! tm in a worker (and in the timer process): the script's tm actions,
//! requests and replies that belong to a transaction, and carrying out
//! what the pure state machine (`modules::tm::txn`) asks for.
//!
//! A transaction lives in shared memory; any process handles any message
//! of it by locking its stripe, running the state machine, and sending
//! what it says. Nothing slow (DNS, the script) runs under a lock: the
//! destinations are resolved first, and failure_route and onreply_route
//! run between two locked steps.

use std::net::SocketAddr;

use arrayvec::{ArrayString, ArrayVec};

use super::proxy::{self, ForwardError};
use super::shared::Counter;
use super::worker::{Worker, now_ms};
use crate::cfg::settings::Proto;
use crate::modules::tm::build::{self as tmbuild, OurVia};
use crate::modules::tm::key::{BranchId, server_key};
use crate::modules::tm::table::Locked;
use crate::modules::tm::txn::{Effect, Effects, Kind, MAX_BRANCHES, Txn};
use crate::modules::tm::{Table, peer::Peer};
use crate::script::MsgCtx;
use crate::script::uri_ops::Rewrite;
use crate::sip::build::write_reply;
use crate::sip::uri::{Host as UriHost, Scheme, Uri};
use crate::sip::{Message, Method};
use rser_shm::Chain;

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

/// One destination of a relay, resolved before any lock is taken.
struct Hop {
    /// Range of the branch's URI in the worker's `uris` buffer.
    uri: (usize, usize),
    /// Range in the worker's `variants` buffer of the branch's own
    /// request, when branch_route or failure_route changed the text.
    request: Option<(usize, usize)>,
    dest: SocketAddr,
    sock: usize,
}

/// A branch_route's verdict on one branch.
enum BranchVerdict {
    /// `drop`: the branch is not started.
    Dropped,
    /// Sent with the shared request text, or its own (a `variants` range).
    Send(Option<(usize, usize)>),
}

/// Host, port and transport a URI sends to (RFC 3263's simple case: the
/// host and port as written, 5060 or 5061 when no port).
fn uri_target(uri: &[u8]) -> Option<(ArrayString<255>, u16, Proto)> {
    let u = Uri::parse(uri).ok()?;
    if u.host == UriHost::None {
        return None;
    }
    let raw = u.maddr.unwrap_or(u.host_text());
    let mut host = ArrayString::new();
    host.try_push_str(std::str::from_utf8(raw).ok()?).ok()?;
    let secure = u.scheme == Scheme::Sips;
    let port = u.port_or_default();
    let proto = u
        .transport
        .and_then(|t| std::str::from_utf8(t).ok())
        .and_then(Proto::parse)
        .unwrap_or(if secure { Proto::Tls } else { Proto::Udp });
    Some((host, port, proto))
}

impl Worker<'_> {
    /// Before the script: a retransmission of a request whose transaction
    /// exists gets the last reply again (§17.2.1, §17.2.2), and the ACK to
    /// our own non-2xx final reply ends here (§17.2.1). True: handled.
    pub(super) fn tm_absorb(&mut self, msg: &Message<'_>) -> bool {
        let Some(table) = self.tm else { return false };
        if msg.method() == Some(Method::Cancel) {
            return false; // its own transaction: the script decides
        }
        let Some(key) = server_key(msg, false) else {
            return false;
        };
        let bucket = table.bucket_of(key);
        let l = table.lock(bucket);
        let Some((idx, generation)) = table.find(&l, bucket, key) else {
            return false;
        };
        let t = TxnRef {
            bucket,
            idx,
            generation,
        };
        let Some(s) = table.slot(&l, idx, generation) else {
            return false;
        };
        if msg.method() == Some(Method::Ack) {
            if !s.txn.on_ack(self.now_ms, &self.timers) {
                return false; // an ACK for a 2xx sharing the branch: routed
            }
            self.count(Counter::TmAcksAbsorbed);
            self.tm_exec(&table, &l, t, &[], None);
            return true;
        }
        self.count(Counter::TmRetransmissionsAbsorbed);
        if let Some(e) = s.txn.on_retransmission() {
            self.tm_exec(&table, &l, t, &[e], None);
        }
        true
    }

    /// `t_relay()`, `t_relay(host, port)`, `t_relay_to_udp(host, port)`.
    pub(super) fn t_relay(&mut self, ctx: &mut MsgCtx<'_, '_>, to: Option<(&str, u16)>) -> i32 {
        let Some(table) = self.tm else { return -1 };
        match ctx.msg.method() {
            // An ACK (for a 2xx) is its own transaction and has no reply:
            // relayed statelessly (§16.10's "forwarded statelessly" case).
            Some(Method::Ack) => return self.relay_stateless(ctx, to),
            Some(Method::Cancel) => return self.relay_cancel(&table, ctx, to),
            _ => {}
        }
        if !self.in_failure_route {
            // The request as the route leaves it, which the transaction
            // keeps to build every branch from (§16.6 but our Via).
            if let Err(r) = self.build_stored(ctx) {
                return r;
            }
        }
        let hops = self.resolve_hops(ctx, to, true);
        if hops.is_empty() && self.cur_txn.is_none() {
            ctx.st.last_error = Some((500, "Unresolvable destination"));
            return -1;
        }
        let mut fx = Effects::new();
        let (t, l) = match self.cur_txn {
            Some(t) => {
                let l = table.lock(t.bucket);
                // After t_newtran: the text as the route left it now, as
                // long as no branch went out with the earlier one.
                if !self.in_failure_route
                    && let Some(s) = table.slot(&l, t.idx, t.generation)
                    && s.txn.nbranch == 0
                    && !table.pool.replace(&mut s.txn.request, &self.stored)
                {
                    log::warn!("tm: shared memory full; the request as first stored is relayed");
                }
                (t, l)
            }
            None => match self.insert_txn(&table, ctx, &mut fx) {
                Ok(Some(new)) => new,
                Ok(None) => return 0, // a retransmission raced us: absorbed
                Err(code) => return code,
            },
        };
        let Some(s) = table.slot(&l, t.idx, t.generation) else {
            return -1;
        };
        if self.armed.reply != 0 {
            s.txn.on_reply = self.armed.reply;
        }
        if self.armed.branch != 0 {
            s.txn.on_branch = self.armed.branch;
        }
        if !self.in_failure_route {
            s.txn.on_failure = self.armed.failure;
        }
        let mut started = false;
        for hop in &hops {
            let Some(chain) = table.pool.store(&self.uris[hop.uri.0..hop.uri.1]) else {
                log::warn!("tm: shared memory full; branch to {} not started", hop.dest);
                break;
            };
            let request = match hop.request {
                None => Some(Chain::EMPTY),
                Some((a, b)) => table.pool.store(&self.variants[a..b]),
            };
            let Some(request) = request else {
                table.pool.free(chain);
                log::warn!("tm: shared memory full; branch to {} not started", hop.dest);
                break;
            };
            let Ok(b) = table.add_branch(s) else {
                table.pool.free(chain);
                table.pool.free(request);
                log::warn!("tm: no room for another branch; {} not tried", hop.dest);
                break;
            };
            let (txn, mut br) = table.view(s);
            let Some(branch) = br.get_mut(b as usize) else {
                break;
            };
            branch.uri = chain;
            branch.request = request;
            branch.dest = Peer::from(hop.dest);
            branch.sock = hop.sock as u8;
            txn.start_branch(branch, b, self.now_ms, &self.timers, &mut fx);
            started = true;
        }
        if !started && !self.in_failure_route {
            let (txn, mut br) = table.view(s);
            fx.extend(txn.no_branch_started(&mut br, self.now_ms, &self.timers));
        }
        let failure = self.tm_exec(&table, &l, t, &fx, None);
        drop(l);
        debug_assert!(failure.is_none(), "failure_route from t_relay");
        if started { 1 } else { -1 }
    }

    /// Resolves the destination set (the current URI, or the next hop
    /// `loose_route` chose, then every appended branch), running the
    /// armed branch_route on each when `branches` (a transaction's, not a
    /// stateless relay's). Unresolvable ones are logged and skipped.
    fn resolve_hops(
        &mut self,
        ctx: &MsgCtx<'_, '_>,
        to: Option<(&str, u16)>,
        branches: bool,
    ) -> ArrayVec<Hop, MAX_BRANCHES> {
        self.uris.clear();
        self.variants.clear();
        let route = if branches { self.armed.branch } else { 0 };
        // failure_route's own edits go on every branch it starts.
        let mut base = std::mem::take(&mut self.base_buf);
        base.clear();
        let mut shared = None;
        if branches && self.in_failure_route && (!ctx.st.edits.is_empty() || ctx.st.record_route) {
            let local = self.locals[self.in_sock];
            match proxy::build_edited(ctx, local, b"UDP", &mut base) {
                Ok(()) => {
                    self.variants.extend_from_slice(&base);
                    shared = Some((0, base.len()));
                }
                Err(e) => log::warn!("failure_route: its changes are not applied: {e}"),
            }
        }
        // What branch_route works on: the text the branches share.
        let stored = std::mem::take(&mut self.stored);
        let hops = match (route, shared, self.in_failure_route) {
            (0, _, _) => self.hops_for(ctx, to, 0, None, shared),
            (_, None, true) => self.hops_for(ctx, to, route, Some(ctx.msg), shared),
            _ => {
                let text = if shared.is_some() { &base } else { &stored };
                match Message::parse(text) {
                    Ok(m) => self.hops_for(ctx, to, route, Some(&m), shared),
                    Err(e) => {
                        log::error!("tm: the request to relay does not parse: {e}");
                        self.hops_for(ctx, to, 0, None, shared)
                    }
                }
            }
        };
        self.stored = stored;
        self.base_buf = base;
        hops
    }

    /// The hops of `resolve_hops`, with branch_route run on `on`.
    fn hops_for(
        &mut self,
        ctx: &MsgCtx<'_, '_>,
        to: Option<(&str, u16)>,
        route: u16,
        on: Option<&Message<'_>>,
        shared: Option<(usize, usize)>,
    ) -> ArrayVec<Hop, MAX_BRANCHES> {
        let mut hops = ArrayVec::new();
        let prefer_v6 = self.locals[self.in_sock].is_ipv6();
        let first = std::iter::once(ctx.uri());
        for (i, uri) in first.chain(ctx.branches()).enumerate() {
            let start = self.uris.len();
            let dst: &[u8] = if i == 0 { &ctx.st.dst_uri } else { b"" };
            self.branch_dst.clear();
            let request = match on {
                Some(m) => match self.run_branch_route(route, m, ctx, uri, dst) {
                    BranchVerdict::Dropped => continue,
                    BranchVerdict::Send(own) => own.or(shared),
                },
                None => {
                    self.uris.extend_from_slice(uri);
                    self.branch_dst.extend_from_slice(dst);
                    shared
                }
            };
            let uri = &self.uris[start..];
            let target = match to {
                Some((h, p)) => {
                    let mut host = ArrayString::new();
                    let _ = host.try_push_str(h.trim_start_matches('[').trim_end_matches(']'));
                    Some((host, p, Proto::Udp))
                }
                None if !self.branch_dst.is_empty() => uri_target(&self.branch_dst),
                None => uri_target(uri),
            };
            let Some((host, port, proto)) = target else {
                log::warn!("tm: cannot send to {}", String::from_utf8_lossy(uri));
                self.uris.truncate(start);
                continue;
            };
            if proto != Proto::Udp {
                log::warn!(
                    "tm: {host}:{port} over {}: only UDP is served yet",
                    proto.name()
                );
                self.uris.truncate(start);
                continue;
            }
            let Some(dest) = self.dns.resolve(&host, port, prefer_v6) else {
                log::warn!("tm: cannot resolve {host}");
                self.uris.truncate(start);
                continue;
            };
            let sock = self.socket_for(dest);
            if hops
                .try_push(Hop {
                    uri: (start, self.uris.len()),
                    request,
                    dest,
                    sock,
                })
                .is_err()
            {
                break;
            }
        }
        hops
    }

    /// Runs branch_route[route - 1] on one branch: `on` is the request
    /// the branches share, `uri` the branch's Request-URI and `dst` its
    /// next hop if set. Leaves the URI it chose in `uris`, the next hop in
    /// `branch_dst`, and the branch's own text in `variants` if it
    /// changed any (Kamailio's per-branch changes).
    fn run_branch_route(
        &mut self,
        route: u16,
        on: &Message<'_>,
        main: &MsgCtx<'_, '_>,
        uri: &[u8],
        dst: &[u8],
    ) -> BranchVerdict {
        let mut st = std::mem::take(&mut self.branch_st);
        let local = self.locals[self.in_sock];
        let mut ctx = MsgCtx::new(on, main.src, local, Proto::Udp, &mut st);
        ctx.st.flags = main.st.flags;
        ctx.st.dst_uri.extend_from_slice(dst);
        if uri != on.request_uri_raw() {
            let _ = ctx.rewrite_uri(Rewrite::Uri(uri));
        }
        self.in_branch_route = true;
        let vm = self.vm;
        let out = vm.run(u32::from(route - 1), &mut ctx, self);
        self.in_branch_route = false;
        if let Some(e) = out.error {
            self.count(Counter::ScriptErrors);
            log::warn!("branch_route: {e}");
        }
        let verdict = if out.dropped {
            BranchVerdict::Dropped
        } else {
            self.uris.extend_from_slice(ctx.uri());
            self.branch_dst.extend_from_slice(&ctx.st.dst_uri);
            let start = self.variants.len();
            if ctx.st.edits.is_empty() && !ctx.st.record_route {
                BranchVerdict::Send(None)
            } else {
                match proxy::build_edited(&ctx, local, b"UDP", &mut self.variants) {
                    Ok(()) => BranchVerdict::Send(Some((start, self.variants.len()))),
                    Err(e) => {
                        self.variants.truncate(start);
                        log::warn!("branch_route: its changes are not applied: {e}");
                        BranchVerdict::Send(None)
                    }
                }
            }
        };
        self.branch_st = st;
        verdict
    }

    /// Relays statelessly to the first hop (ACK, or CANCEL without its
    /// INVITE here).
    fn relay_stateless(&mut self, ctx: &mut MsgCtx<'_, '_>, to: Option<(&str, u16)>) -> i32 {
        let hops = self.resolve_hops(ctx, to, false);
        let Some(hop) = hops.first() else {
            ctx.st.last_error = Some((500, "Unresolvable destination"));
            return -1;
        };
        let via = self.locals[hop.sock];
        let buf = self.outbox.push(hop.sock, hop.dest);
        match proxy::build_request(ctx, via, b"UDP", true, buf) {
            Ok(()) => {
                self.count(Counter::ForwardedRequests);
                1
            }
            Err(e) => {
                self.outbox.pop();
                log::warn!("relay to {}: {e}", hop.dest);
                -1
            }
        }
    }

    /// A CANCEL (§16.10): answered 200 here and sent on every pending
    /// branch of its INVITE; without that INVITE, relayed statelessly.
    fn relay_cancel(
        &mut self,
        table: &Table,
        ctx: &mut MsgCtx<'_, '_>,
        to: Option<(&str, u16)>,
    ) -> i32 {
        let Some(key) = server_key(ctx.msg, true) else {
            return -1;
        };
        let bucket = table.bucket_of(key);
        let l = table.lock(bucket);
        let Some((idx, generation)) = table.find(&l, bucket, key) else {
            drop(l);
            return self.relay_stateless(ctx, to);
        };
        let t = TxnRef {
            bucket,
            idx,
            generation,
        };
        if let Some(s) = table.slot(&l, idx, generation) {
            let (txn, mut br) = table.view(s);
            let fx = txn.on_cancel(&mut br, self.now_ms, &self.timers);
            self.tm_exec(table, &l, t, &fx, None);
        }
        drop(l);
        self.text.clear();
        self.text.extend_from_slice(b"canceling");
        self.sl_reply(ctx, 200, true);
        1
    }

    /// Builds the request the transaction keeps into `stored`: the
    /// received one with the route's changes. Err: the script's return
    /// value (the error is left for `sl_reply_error`).
    fn build_stored(&mut self, ctx: &mut MsgCtx<'_, '_>) -> Result<(), i32> {
        let local = self.locals[self.in_sock];
        self.stored.clear();
        proxy::build_request(ctx, local, b"UDP", false, &mut self.stored).map_err(|e| {
            ctx.st.last_error = Some(match e {
                ForwardError::MaxForwardsExhausted => (483, "Too Many Hops"),
                ForwardError::Build(_) => (500, "Cannot Build Request"),
            });
            -1
        })
    }

    /// Creates the transaction of the request in hand, keeping `stored`,
    /// and returns it with its stripe still locked; the 100 Trying an
    /// INVITE gets is pushed on `fx` for the caller to carry out with the
    /// rest. `Ok(None)`: it exists already (a retransmission got here
    /// first); `Err(ret)`: the script's return value after a failure
    /// (replied or not).
    fn insert_txn<'t>(
        &mut self,
        table: &'t Table,
        ctx: &mut MsgCtx<'_, '_>,
        fx: &mut Effects,
    ) -> Result<Option<(TxnRef, Locked<'t>)>, i32> {
        let msg = ctx.msg;
        let Some(key) = server_key(msg, false) else {
            ctx.st.last_error = Some((400, "Bad Request"));
            return Err(-1);
        };
        let stored = std::mem::take(&mut self.stored);
        let bucket = table.bucket_of(key);
        let l = table.lock(bucket);
        if table.find(&l, bucket, key).is_some() {
            self.stored = stored;
            return Ok(None);
        }
        let kind = if msg.method() == Some(Method::Invite) {
            Kind::Invite
        } else {
            Kind::NonInvite
        };
        let mut txn = Txn::new(kind, self.now_ms, &self.timers);
        txn.upstream = Peer::from(crate::modules::sl::reply_destination(msg, ctx.src));
        txn.in_sock = self.in_sock as u8;
        txn.script_flags = ctx.st.flags;
        let inserted = table
            .pool
            .store(&stored)
            .ok_or(crate::modules::tm::Full)
            .and_then(|chain| {
                txn.request = chain;
                table
                    .insert(&l, bucket, key, txn)
                    .inspect_err(|_| table.pool.free(chain))
            });
        self.stored = stored;
        let Ok((idx, generation)) = inserted else {
            drop(l);
            self.count(Counter::TmTableFull);
            log::warn!(
                "tm: transaction table full ({} live); replying 503",
                table.live()
            );
            self.text.clear();
            self.text
                .extend_from_slice(b"Service Unavailable (transaction table full)");
            self.sl_reply(ctx, 503, true);
            return Err(0);
        };
        let t = TxnRef {
            bucket,
            idx,
            generation,
        };
        self.count(Counter::TmTransactions);
        if kind == Kind::Invite && self.auto_100 {
            // §16.2: a stateful proxy answers an INVITE with 100 Trying.
            if let Some(s) = table.slot(&l, idx, generation) {
                s.txn.on_local_reply(100, self.now_ms, &self.timers);
                fx.push(Effect::ResendReply);
            }
        }
        self.cur_txn = Some(t);
        Ok(Some((t, l)))
    }

    /// `t_newtran()`: 1 when the transaction is new, 0 when the request is
    /// a retransmission (the script ends: SER's semantics).
    pub(super) fn t_newtran(&mut self, ctx: &mut MsgCtx<'_, '_>) -> i32 {
        let Some(table) = self.tm else { return -1 };
        if self.cur_txn.is_some() {
            return 1;
        }
        if let Some(Method::Ack | Method::Cancel) = ctx.msg.method() {
            return -1;
        }
        let mut fx = Effects::new();
        if let Err(r) = self.build_stored(ctx) {
            return r;
        }
        match self.insert_txn(&table, ctx, &mut fx) {
            Ok(Some((t, l))) => {
                // Sends the 100 if any, and arms the transaction's end.
                self.tm_exec(&table, &l, t, &fx, None);
                1
            }
            Ok(None) => 0,
            Err(r) => r,
        }
    }

    /// `t_reply(code, reason)` and `send_reply` once a transaction exists:
    /// the reply is sent, kept for retransmissions, and ends the
    /// transaction's server side if final. `self.text` holds the reason.
    pub(super) fn t_reply(&mut self, ctx: &mut MsgCtx<'_, '_>, code: u16) -> i32 {
        let (Some(table), Some(t)) = (self.tm, self.cur_txn) else {
            log::warn!("t_reply: no transaction (call t_newtran or t_relay first)");
            return -1;
        };
        let l = table.lock(t.bucket);
        let Some(s) = table.slot(&l, t.idx, t.generation) else {
            return -1;
        };
        if s.txn.replied_final() {
            return -1;
        }
        let tag = ctx
            .msg
            .to()
            .is_ok_and(|t| t.tag.is_none())
            .then(|| self.shared.ack_filter.signature().to_tag(ctx.msg))
            .flatten();
        let mut reply = std::mem::take(&mut self.scratch);
        write_reply(
            ctx.msg,
            code,
            &self.text,
            tag.as_ref().map(|t| t.as_bytes()),
            None,
            b"",
            b"",
            &mut reply,
        );
        if !table.pool.replace(&mut s.txn.reply, &reply) {
            log::warn!("tm: shared memory full; reply {code} sent but not kept");
        }
        s.txn.on_local_reply(code, self.now_ms, &self.timers);
        let dest = SocketAddr::from(s.txn.upstream);
        self.outbox
            .push(s.txn.in_sock as usize, dest)
            .extend_from_slice(&reply);
        self.scratch = reply;
        self.count(Counter::TmLocalReplies);
        self.tm_exec(&table, &l, t, &[], None);
        1
    }

    /// A reply whose top Via carries one of our transaction branches.
    /// False: not a tm branch (the stateless path takes it).
    pub(super) fn tm_reply(&mut self, msg: &Message<'_>, src: SocketAddr) -> bool {
        let Some(table) = self.tm else { return false };
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
        let Some(on_reply) = table.slot(&l, t.idx, t.generation).map(|s| s.txn.on_reply) else {
            self.count(Counter::TmRepliesLate);
            // A 2xx retransmission after the transaction ended still goes
            // upstream (§16.7 step 5; the UAC needs it to ACK).
            let invite = msg.cseq().is_ok_and(|c| c.method == Method::Invite);
            return !(invite && (200..300).contains(&code));
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
        let Some(s) = table.slot(&l, t.idx, t.generation) else {
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
                &self.timers,
            )
        };
        let failure = self.tm_exec(&table, &l, t, &fx, Some(msg));
        drop(l);
        if let Some(route) = failure {
            self.run_failure_route(t, route);
        }
        true
    }

    /// Runs onreply_route[route - 1] on a reply; true when it dropped it.
    fn run_reply_route(&mut self, msg: &Message<'_>, src: SocketAddr, route: u16) -> bool {
        let mut st = std::mem::take(&mut self.aux_st);
        let local = self.locals[self.in_sock];
        let mut ctx = MsgCtx::new(msg, src, local, Proto::Udp, &mut st);
        let vm = self.vm;
        let out = vm.run(u32::from(route - 1), &mut ctx, self);
        if let Some(e) = out.error {
            self.count(Counter::ScriptErrors);
            log::warn!("onreply_route: {e}");
        }
        self.aux_st = st;
        out.dropped
    }

    /// Runs failure_route[route - 1] on the stored request, without the
    /// lock, then lets the transaction go on (§16.7 step 6's new branches,
    /// or the best reply).
    pub(super) fn run_failure_route(&mut self, t: TxnRef, route: u16) {
        let Some(table) = self.tm else { return };
        let mut buf = std::mem::take(&mut self.failure_buf);
        buf.clear();
        let (flags, code, upstream, before) = {
            let l = table.lock(t.bucket);
            let Some(s) = table.slot(&l, t.idx, t.generation) else {
                self.failure_buf = buf;
                return;
            };
            table.pool.read(s.txn.request, &mut buf);
            (
                s.txn.script_flags,
                s.txn.best_code,
                SocketAddr::from(s.txn.upstream),
                s.txn.nbranch,
            )
        };
        let mut st = std::mem::take(&mut self.aux_st);
        let prev_txn = self.cur_txn.replace(t);
        let prev_armed = std::mem::take(&mut self.armed);
        self.in_failure_route = true;
        match Message::parse(&buf) {
            Ok(msg) => {
                let local = self.locals[self.in_sock];
                let mut ctx = MsgCtx::new(&msg, upstream, local, Proto::Udp, &mut st);
                ctx.status = Some(code);
                ctx.st.flags = flags;
                let vm = self.vm;
                let out = vm.run(u32::from(route - 1), &mut ctx, self);
                if let Some(e) = out.error {
                    self.count(Counter::ScriptErrors);
                    log::warn!("failure_route: {e}");
                }
            }
            Err(e) => log::error!("tm: stored request does not parse: {e}"),
        }
        self.in_failure_route = false;
        let armed = std::mem::replace(&mut self.armed, prev_armed);
        self.cur_txn = prev_txn;
        self.aux_st = st;
        self.failure_buf = buf;
        let l = table.lock(t.bucket);
        let Some(s) = table.slot(&l, t.idx, t.generation) else {
            return;
        };
        s.txn.on_failure = armed.failure;
        let added = s.txn.nbranch > before;
        let fx = {
            let (txn, mut br) = table.view(s);
            txn.failure_route_done(&mut br, added, self.now_ms, &self.timers)
        };
        let again = self.tm_exec(&table, &l, t, &fx, None);
        drop(l);
        if let Some(route) = again {
            self.run_failure_route(t, route);
        }
    }

    /// The timer process's turn: every transaction due now.
    pub(super) fn tm_timers(&mut self) {
        let Some(table) = self.tm else { return };
        let mut due: ArrayVec<u32, 256> = ArrayVec::new();
        table.wheel.take_due(&table, self.now_ms, &mut due);
        for idx in due {
            let Some((bucket, generation)) = table.peek(idx) else {
                continue;
            };
            let t = TxnRef {
                bucket,
                idx,
                generation,
            };
            let failure = {
                let l = table.lock(bucket);
                let Some(s) = table.slot(&l, idx, generation) else {
                    continue;
                };
                // Re-armed for later meanwhile by a worker: nothing due,
                // and tm_exec puts it back on the wheel.
                let fx = {
                    let (txn, mut br) = table.view(s);
                    if txn.due(&br) > self.now_ms {
                        Default::default()
                    } else {
                        txn.on_timer(&mut br, self.now_ms, &self.timers)
                    }
                };
                self.tm_exec(&table, &l, t, &fx, None)
            };
            if let Some(route) = failure {
                self.run_failure_route(t, route);
            }
        }
    }

    /// Carries out effects on a locked transaction, then re-arms its timer
    /// or frees it. Returns the failure_route to run, if any.
    fn tm_exec(
        &mut self,
        table: &Table,
        l: &Locked<'_>,
        t: TxnRef,
        fx: &[Effect],
        reply: Option<&Message<'_>>,
    ) -> Option<u16> {
        let s = table.slot(l, t.idx, t.generation)?;
        let mut stored = std::mem::take(&mut self.stored);
        stored.clear();
        // The stored request is read and parsed only when a message is
        // built from it: not to resend a kept reply.
        let needs_stored = {
            let (txn, br) = table.view(s);
            fx.iter().any(|e| match e {
                Effect::SendBranch(b) | Effect::SendCancel(b) | Effect::SendAck(b) => {
                    br.get(*b as usize).is_some_and(|b| b.request.is_empty())
                }
                Effect::ResendReply => txn.reply.is_empty(),
                Effect::SendBest => !txn.best_text_kept(),
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
                                Ok(m) => self.send_on_branch(table, s, t, b, e, &m, reply),
                                Err(err) => log::error!("tm: a branch's request: {err}"),
                            }
                            self.base_buf = text;
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
                    let mut out = std::mem::take(&mut self.scratch);
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
                Effect::ResendReply => self.resend_reply(table, s, smsg.as_ref()),
                Effect::SendBest => self.send_best(table, s, smsg.as_ref()),
                Effect::FailureRoute(r) => failure = Some(r),
                Effect::Delete => delete = true,
            }
        }
        self.stored = stored;
        if delete {
            table.remove(l, t.idx);
        } else {
            let due = {
                let (txn, br) = table.view(s);
                txn.due(&br)
            };
            table.arm(s, t.idx, due);
        }
        failure
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
        self.uri_buf.clear();
        table.pool.read(uri, &mut self.uri_buf);
        let id = BranchId {
            bucket: t.bucket,
            slot: t.idx,
            generation: t.generation,
            branch: b,
        };
        let via = OurVia::new(self.locals[sock.min(self.locals.len() - 1)], id.encode());
        let out = self.outbox.push(sock, dest);
        let built = match (e, reply) {
            (Effect::SendBranch(_), _) => tmbuild::branch_request(stored, &self.uri_buf, &via, out),
            (Effect::SendCancel(_), _) => tmbuild::cancel(stored, &self.uri_buf, &via, out),
            (_, Some(r)) => tmbuild::ack(stored, r, &self.uri_buf, &via, out),
            (_, None) => return,
        };
        match built {
            Ok(()) if e == Effect::SendBranch(b) => self.count(Counter::ForwardedRequests),
            Ok(()) => {}
            Err(err) => {
                self.outbox.pop();
                self.count(Counter::SendErrors);
                log::warn!("tm: cannot build a request for {dest}: {err}");
            }
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
        self.outbox
            .push(txn.in_sock as usize, up)
            .extend_from_slice(&out);
        if !table.pool.replace(&mut txn.reply, &out) {
            log::warn!("tm: shared memory full; reply {code} sent but not kept");
        }
        self.scratch = out;
        self.count(Counter::TmLocalReplies);
    }

    /// The timer process: wakes every tick, never receives.
    pub fn run_timer_process(&mut self) -> ! {
        let tick = std::time::Duration::from_millis(crate::modules::tm::wheel::TICK_MS);
        loop {
            std::thread::sleep(tick);
            self.now_ms = now_ms();
            self.tm_timers();
            let failed = self.outbox.flush(self.sockets);
            for _ in 0..failed {
                self.count(Counter::SendErrors);
            }
        }
    }
}
