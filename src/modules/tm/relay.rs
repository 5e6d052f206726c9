//! tm's relaying in a worker: `t_relay` (a new transaction's branches,
//! or failure_route's), branch_route on each branch, CANCEL and ACK, and
//! `t_newtran`. Destinations are resolved and the script's routes run
//! before the transaction's lock is taken.

use std::net::SocketAddr;

use arrayvec::{ArrayString, ArrayVec};

use super::state::{TmState, count};
use super::stateful::TxnRef;
use crate::cfg::ast::RouteKind;
use crate::cfg::settings::Proto;
use crate::modules::def::Cx;
use crate::modules::tm::Table;
use crate::modules::tm::TmCounter;
use crate::modules::tm::key::server_key;
use crate::modules::tm::table::Locked;
use crate::modules::tm::txn::{Effects, Kind, MAX_BRANCHES, Txn};
use crate::script::MsgCtx;
use crate::script::uri_ops::Rewrite;
use crate::server::proxy::{self, ForwardError};
use crate::server::shared::Counter;
use crate::sip::uri::{Host as UriHost, Scheme, Uri};
use crate::sip::{Message, Method};
use rser_shm::Chain;
use rser_shm::Peer;

/// One destination of a relay, resolved before any lock is taken.
struct Hop {
    /// Range of the branch's URI in the worker's `uris` buffer.
    uri: (usize, usize),
    /// Range in the worker's `variants` buffer of the branch's own
    /// request, when branch_route or failure_route changed the text.
    request: Option<(usize, usize)>,
    /// Range in the worker's `paths` buffer of the Route the branch is
    /// sent with (a binding's path), if any.
    path: Option<(usize, usize)>,
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
pub(crate) fn uri_target(uri: &[u8]) -> Option<(ArrayString<255>, u16, Proto)> {
    target_of(&Uri::parse(uri).ok()?)
}

/// [`uri_target`] of a parsed URI.
fn target_of(u: &Uri<'_>) -> Option<(ArrayString<255>, u16, Proto)> {
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
/// Whether the current Request-URI makes a new branch in failure_route:
/// rewritten there, sent to a next hop set there, or relayed to an
/// explicit host.
fn ruri_is_new(ctx: &MsgCtx<'_, '_>, to: RelayTo<'_>) -> bool {
    ctx.uri_rewritten() || !ctx.st.dst_uri.is_empty() || to.host.is_some()
}

/// Where `t_relay` and its kin send: an explicit host and port
/// (`t_relay_to_udp(h, p)`), else the destination set; over a transport
/// the action forces (`t_relay_to_tcp()`), else the URI's.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RelayTo<'s> {
    pub host: Option<(&'s str, u16)>,
    pub proto: Option<Proto>,
}

impl TmState {
    /// `t_relay()`, `t_relay(host, port)`, `t_relay_to_udp(host, port)`.
    pub(crate) fn t_relay(
        &mut self,
        cx: &mut Cx<'_>,
        ctx: &mut MsgCtx<'_, '_>,
        to: RelayTo<'_>,
    ) -> i32 {
        let Some(table) = self.table else {
            return -1;
        };
        match ctx.msg.method() {
            // An ACK (for a 2xx) is its own transaction and has no reply:
            // relayed statelessly (§16.10's "forwarded statelessly" case).
            Some(Method::Ack) => return self.relay_stateless(cx, ctx, to),
            Some(Method::Cancel) => return self.relay_cancel(cx, &table, ctx),
            _ => {}
        }
        if !self.in_failure_route {
            // The request as the route leaves it, which the transaction
            // keeps to build every branch from (§16.6 but our Via).
            if let Err(r) = self.build_stored(cx, ctx) {
                return r;
            }
        }
        self.hop_error = None;
        let mut hops = self.resolve_hops(cx, ctx, to, true);
        // The first branch leaves by another socket than the request came
        // in on (UDP to TCP, another interface): the stored request gets
        // the double Record-Route facing it.
        if ctx.st.record_route
            && !self.in_failure_route
            && let Some(h) = hops.first()
            && h.sock != cx.shell.in_sock()
            && let Err(r) = self.build_stored_from(cx, ctx, h.sock)
        {
            return r;
        }
        self.add_paths(&mut hops);
        // onsend_route may keep a branch from going.
        let before = hops.len();
        hops.retain(|h| cx.shell.on_send(ctx.msg, ctx.src, ctx.st.flags, h.dest));
        if hops.len() < before && hops.is_empty() {
            self.hop_error = Some((477, "Dropped by onsend_route"));
        }
        if hops.is_empty() && self.cur_txn.is_none() {
            ctx.st.last_error = Some(self.hop_error.unwrap_or((500, "Unresolvable destination")));
            return -1;
        }
        let mut fx = Effects::new();
        let (t, mut l) = match self.cur_txn {
            Some(t) => {
                let mut l = table.lock(t.bucket);
                // After t_newtran: the text as the route left it now, as
                // long as no branch went out with the earlier one.
                if !self.in_failure_route
                    && let Some(s) = table.slot(&mut l, t.idx, t.generation)
                    && s.txn.request_replaceable()
                {
                    if !table.pool.replace(&mut s.txn.request, &self.stored) {
                        log::warn!(
                            "tm: shared memory full; the request as first stored is relayed"
                        );
                    }
                    // A selection made after t_newtran goes with it too.
                    if s.txn.ds.is_empty() && !ctx.st.ds.is_empty() {
                        let mut fo = ctx.st.ds;
                        cx.shell.tm_created(&mut fo);
                        s.txn.ds = fo;
                    }
                }
                (t, l)
            }
            None => match self.insert_txn(cx, &table, ctx, &mut fx) {
                Ok(Some(new)) => new,
                Ok(None) => return 0, // a retransmission raced us: absorbed
                Err(code) => return code,
            },
        };
        let Some(s) = table.slot(&mut l, t.idx, t.generation) else {
            return -1;
        };
        if self.armed.reply != 0 {
            s.txn.on_reply = self.armed.reply;
        }
        if self.armed.branch != 0 {
            s.txn.on_branch = self.armed.branch;
        }
        if self.armed.fr_inv_ms != 0 || self.armed.fr_ms != 0 {
            s.txn.set_fr(
                self.armed.fr_inv_ms,
                self.armed.fr_ms,
                cx.now_ms,
                &self.timers,
            );
        }
        if !self.in_failure_route {
            s.txn.on_failure = self.armed.failure;
            super::stateful::keep_avps(
                cx,
                &table,
                &mut s.txn.avps,
                &ctx.st.avps,
                &mut self.avp_buf,
            );
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
            branch.reliable = cx.shell.transport(hop.sock).is_stream();
            txn.start_branch(branch, b, cx.now_ms, &self.timers, &mut fx);
            started = true;
        }
        if !started && !self.in_failure_route {
            let (txn, mut br) = table.view(s);
            fx.extend(txn.no_branch_started(&mut br, cx.now_ms, &self.timers));
        }
        let failure = self.tm_exec(cx, &table, &mut l, t, &fx, None);
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
        cx: &mut Cx<'_>,
        ctx: &MsgCtx<'_, '_>,
        to: RelayTo<'_>,
        branches: bool,
    ) -> ArrayVec<Hop, MAX_BRANCHES> {
        self.uris.clear();
        self.variants.clear();
        self.paths.clear();
        let route = if branches { self.armed.branch } else { 0 };
        // failure_route's own edits go on every branch it starts.
        let mut base = std::mem::take(&mut self.base_buf);
        base.clear();
        let mut shared = None;
        if branches && self.in_failure_route && (!ctx.st.edits.is_empty() || ctx.st.record_route) {
            let local = cx.shell.local(cx.shell.in_sock());
            let transport = cx.shell.transport(cx.shell.in_sock()).via_name();
            match proxy::build_edited(ctx, local, transport, &mut base) {
                Ok(()) => {
                    self.variants.extend_from_slice(&base);
                    shared = Some((0, base.len()));
                }
                Err(e) => log::warn!("failure_route: its changes are not applied: {e}"),
            }
        }
        // What branch_route works on: the text the branches share.
        let stored = std::mem::take(&mut self.stored);
        self.relay_size = if branches {
            stored.len()
        } else {
            ctx.msg.buf().len()
        };
        let hops = match (route, shared, self.in_failure_route) {
            (0, _, _) => self.hops_for(cx, ctx, to, 0, None, shared),
            (_, None, true) => self.hops_for(cx, ctx, to, route, Some(ctx.msg), shared),
            _ => {
                let text = if shared.is_some() { &base } else { &stored };
                match Message::parse(text) {
                    Ok(m) => self.hops_for(cx, ctx, to, route, Some(&m), shared),
                    Err(e) => {
                        log::error!("tm: the request to relay does not parse: {e}");
                        self.hops_for(cx, ctx, to, 0, None, shared)
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
        cx: &mut Cx<'_>,
        ctx: &MsgCtx<'_, '_>,
        to: RelayTo<'_>,
        route: u16,
        on: Option<&Message<'_>>,
        shared: Option<(usize, usize)>,
    ) -> ArrayVec<Hop, MAX_BRANCHES> {
        let mut hops = ArrayVec::new();
        let prefer_v6 = cx.shell.local(cx.shell.in_sock()).is_ipv6();
        let first = std::iter::once(ctx.uri());
        for (i, uri) in first.chain(ctx.branches()).enumerate() {
            if i == 0 && self.in_failure_route && !ruri_is_new(ctx, to) {
                // SER and Kamailio fork again from failure_route only to
                // what the route added: the Request-URI that just failed
                // goes out again only if the route rewrote it or set its
                // next hop.
                continue;
            }
            let start = self.uris.len();
            let dst: &[u8] = if i == 0 {
                &ctx.st.dst_uri
            } else {
                ctx.branch_dst(i - 1)
            };
            self.branch_dst.clear();
            let request = match on {
                Some(m) => match self.run_branch_route(cx, route, m, ctx, (uri, dst), hops.len()) {
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
            let target = match to.host {
                Some((h, p)) => {
                    let mut host = ArrayString::new();
                    let _ = host.try_push_str(h.trim_start_matches('[').trim_end_matches(']'));
                    Some((host, p, Proto::Udp))
                }
                None if !self.branch_dst.is_empty() => uri_target(&self.branch_dst),
                // The Request-URI as received is parsed already.
                None => ctx.msg.uri_parsed(uri).ok().and_then(|u| target_of(&u)),
            }
            .map(|(h, p, proto)| (h, p, to.proto.unwrap_or(proto)));
            // Whether UDP was asked for: by the action, or the next hop's
            // `transport` parameter (parsed again only for a request too
            // large for UDP).
            let hop_uri: &[u8] = if self.branch_dst.is_empty() {
                uri
            } else {
                &self.branch_dst
            };
            let forced = || {
                to.proto.is_some()
                    || to.host.is_some()
                    || Uri::parse(hop_uri).is_ok_and(|u| u.transport.is_some())
            };
            let Some((host, port, proto)) = target else {
                if !crate::sip::uri::is_sip_scheme(uri) {
                    // RFC 3261 §8.2.2.1: a scheme we cannot route (tel:,
                    // a URN) is the caller's problem, not a server error.
                    log::debug!("tm: no route for {}", String::from_utf8_lossy(uri));
                    self.hop_error = Some(crate::sip::uri::UNSUPPORTED_SCHEME);
                } else {
                    log::warn!("tm: cannot send to {}", String::from_utf8_lossy(uri));
                }
                self.uris.truncate(start);
                continue;
            };
            if proto == Proto::Sctp {
                log::warn!(
                    "tm: {host}:{port} over {}: not served by this build",
                    proto.name()
                );
                self.hop_error = Some((500, "Unsupported Transport"));
                self.uris.truncate(start);
                continue;
            }
            let Some(dest) = cx.shell.resolve(&host, port, prefer_v6) else {
                log::warn!("tm: cannot resolve {host}");
                self.uris.truncate(start);
                continue;
            };
            let listed = self.blocklist.is_some_and(|b| {
                ctx.msg
                    .method()
                    .is_some_and(|m| self.blst_lookup & super::blocklist::method_bit(m) != 0)
                    && b.contains(dest, cx.now_ms)
            });
            if listed {
                log::debug!("tm: {dest} is blocklisted; branch not sent");
                count(cx, TmCounter::Blocklisted);
                self.hop_error = Some((503, "Destination Blocklisted"));
                self.uris.truncate(start);
                continue;
            }
            let Some(mut sock) = cx.shell.send_socket(ctx.st.force_send, dest, proto) else {
                log::warn!("tm: {dest} over {}: no such listen address", proto.name());
                self.hop_error = Some((500, "Unsupported Transport"));
                self.uris.truncate(start);
                continue;
            };
            // RFC 3261 §18.1.1: a request too large for UDP (with room for
            // our Via) goes over TCP when rser serves it.
            let size = self.relay_size + 128;
            if proto == Proto::Udp
                && ctx.st.force_send.is_none()
                && self.udp_mtu > 0
                && size > self.udp_mtu
                && !forced()
                && let Some(other) = cx.shell.send_socket(None, dest, self.udp_mtu_try_proto)
            {
                sock = other;
            }
            // RFC 5626 §5.3: a request for a flow goes over that
            // connection or not at all.
            if ctx.st.forward_no_connect && proto.is_stream() && !cx.shell.connected(dest, proto) {
                log::debug!(
                    "tm: no {} connection to {dest}; branch not sent",
                    proto.name()
                );
                self.hop_error = Some((430, "Flow Failed"));
                self.uris.truncate(start);
                continue;
            }
            let path: &[u8] = if i == 0 {
                &ctx.st.path
            } else {
                ctx.branch_path(i - 1)
            };
            let path = (!path.is_empty()).then(|| {
                let at = self.paths.len();
                self.paths.extend_from_slice(path);
                (at, self.paths.len())
            });
            if hops
                .try_push(Hop {
                    uri: (start, self.uris.len()),
                    request,
                    path,
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
        cx: &mut Cx<'_>,
        route: u16,
        on: &Message<'_>,
        main: &MsgCtx<'_, '_>,
        (uri, dst): (&[u8], &[u8]),
        idx: usize,
    ) -> BranchVerdict {
        let mut st = std::mem::take(&mut self.branch_st);
        let local = cx.shell.local(cx.shell.in_sock());
        let mut ctx = MsgCtx::new(on, main.src, local, main.proto, &mut st);
        ctx.st.flags = main.st.flags;
        ctx.st.avps.clone_from(&main.st.avps);
        if idx == 0 {
            ctx.st.bflags = main.st.bflags;
        }
        // `$T_branch_idx`: the branch's place among those this relay makes.
        ctx.st.branch_idx = idx as u32;
        ctx.st.dst_uri.extend_from_slice(dst);
        if uri != on.request_uri_raw() {
            let _ = ctx.rewrite_uri(Rewrite::Uri(uri));
        }
        let out = cx.run_route(RouteKind::Branch, u32::from(route - 1), &mut ctx, self);
        let verdict = if out.dropped {
            BranchVerdict::Dropped
        } else {
            self.uris.extend_from_slice(ctx.uri());
            self.branch_dst.extend_from_slice(&ctx.st.dst_uri);
            let start = self.variants.len();
            if ctx.st.edits.is_empty() && !ctx.st.record_route {
                BranchVerdict::Send(None)
            } else {
                // Built apart (a build starts its buffer afresh), then
                // added after the earlier branches' variants.
                let mut one = std::mem::take(&mut self.branch_buf);
                let transport = cx.shell.transport(cx.shell.in_sock()).via_name();
                let r = proxy::build_edited(&ctx, local, transport, &mut one);
                self.variants.extend_from_slice(&one);
                self.branch_buf = one;
                match r {
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

    /// Gives each hop with a path its own text: the request it would be
    /// sent with (its variant, or the stored request) with the path as
    /// its first Route.
    fn add_paths(&mut self, hops: &mut [Hop]) {
        for h in hops.iter_mut() {
            let Some((a, b)) = h.path else { continue };
            if self.in_failure_route && h.request.is_none() {
                // The transaction's stored request is not at hand here.
                log::warn!(
                    "tm: a branch from failure_route to {} goes without its path",
                    h.dest
                );
                continue;
            }
            let mut text = std::mem::take(&mut self.path_buf);
            text.clear();
            match h.request {
                Some((x, y)) => text.extend_from_slice(&self.variants[x..y]),
                None => text.extend_from_slice(&self.stored),
            }
            let start = self.variants.len();
            match proxy::with_route(&text, &self.paths[a..b], &mut self.variants) {
                Ok(()) => h.request = Some((start, self.variants.len())),
                Err(e) => {
                    self.variants.truncate(start);
                    log::warn!("tm: the branch to {} goes without its path: {e}", h.dest);
                }
            }
            self.path_buf = text;
        }
    }

    /// Relays statelessly to the first hop (ACK, or CANCEL without its
    /// INVITE here).
    fn relay_stateless(
        &mut self,
        cx: &mut Cx<'_>,
        ctx: &mut MsgCtx<'_, '_>,
        to: RelayTo<'_>,
    ) -> i32 {
        let hops = self.resolve_hops(cx, ctx, to, false);
        let Some(hop) = hops.first() else {
            ctx.st.last_error = Some((500, "Unresolvable destination"));
            return -1;
        };
        let via = cx.shell.local(hop.sock);
        let transport = cx.shell.transport(hop.sock).via_name();
        let buf = cx.shell.push(hop.sock, hop.dest);
        match proxy::build_request(ctx, via, transport, true, buf) {
            Ok(()) => {
                cx.shell.count(Counter::ForwardedRequests);
                1
            }
            Err(e) => {
                cx.shell.pop();
                log::warn!("relay to {}: {e}", hop.dest);
                -1
            }
        }
    }

    /// A CANCEL (§16.10): answered 200 here and sent on every pending
    /// branch of its INVITE; without that INVITE, relayed statelessly.
    fn relay_cancel(&mut self, cx: &mut Cx<'_>, table: &Table, ctx: &mut MsgCtx<'_, '_>) -> i32 {
        let Some(key) = server_key(ctx.msg, true) else {
            return -1;
        };
        let bucket = table.bucket_of(key);
        let mut l = table.lock(bucket);
        let Some((idx, generation)) = table.find(&l, bucket, key) else {
            drop(l);
            // §9.2: no transaction to cancel. tm keeps every INVITE it
            // relayed until it ends, so this one was never ours: 481
            // rather than §16.10's stateless forward of a CANCEL that
            // cannot match anything downstream (a script may still
            // `forward()` it).
            count(cx, TmCounter::CancelUnmatched);
            cx.shell
                .reply_stateless(ctx, 481, b"Call/Transaction Does Not Exist");
            return 1;
        };
        let t = TxnRef {
            bucket,
            idx,
            generation,
        };
        // §16.10: the CANCEL is answered at once, before anything the
        // cancelled branches produce.
        cx.shell.reply_stateless(ctx, 200, b"canceling");
        self.cancel_answered(cx, ctx);
        let fx = table.slot(&mut l, idx, generation).map(|s| {
            let (txn, mut br) = table.view(s);
            txn.on_cancel(&mut br, cx.now_ms, &self.timers)
        });
        if let Some(fx) = fx {
            self.tm_exec(cx, table, &mut l, t, &fx, None);
        }
        drop(l);
        1
    }

    /// The CANCEL's own 200 as a tm callback (Kamailio's acc records it
    /// with `report_cancels`): the reply as sl wrote it.
    fn cancel_answered(&mut self, cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>) {
        if !cx.shell.tm_hooked(ctx.st.flags) {
            return;
        }
        let tag = cx.shell.to_tag(ctx.msg);
        let to_tag = match ctx.msg.to() {
            Ok(to) if to.tag.is_some() => to.tag.unwrap_or_default(),
            _ => tag.as_ref().map_or(&b""[..], |t| t.as_bytes()),
        };
        let ev = crate::modules::def::TmEvent::ResponseOut {
            req: crate::modules::def::TmRequest {
                msg: ctx.msg,
                source: ctx.src,
                local: ctx.dst,
                flags: ctx.st.flags,
            },
            code: 200,
            reason: b"canceling",
            to_tag,
            has_body: false,
        };
        ctx.st.flags &= !cx.shell.tm_emit(&ev);
    }

    /// Builds the request the transaction keeps into `stored`: the
    /// received one with the route's changes. Err: the script's return
    /// value (the error is left for `sl_reply_error`).
    fn build_stored(&mut self, cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>) -> Result<(), i32> {
        self.build_stored_from(cx, ctx, cx.shell.in_sock())
    }

    /// [`TmState::build_stored`], its Record-Route (if asked for) naming
    /// socket `sock`, which the branches leave by.
    fn build_stored_from(
        &mut self,
        cx: &mut Cx<'_>,
        ctx: &mut MsgCtx<'_, '_>,
        sock: usize,
    ) -> Result<(), i32> {
        let local = cx.shell.local(sock);
        let transport = cx.shell.transport(sock).via_name();
        self.stored.clear();
        proxy::build_request(ctx, local, transport, false, &mut self.stored).map_err(|e| {
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
        cx: &mut Cx<'_>,
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
        let mut l = table.lock(bucket);
        if table.find(&l, bucket, key).is_some() {
            self.stored = stored;
            return Ok(None);
        }
        let kind = if msg.method() == Some(Method::Invite) {
            Kind::Invite
        } else {
            Kind::NonInvite
        };
        let mut txn = Txn::new(kind, cx.now_ms, &self.timers);
        txn.upstream = Peer::from(crate::modules::sl::reply_destination_forced(
            msg,
            ctx.src,
            ctx.st.force_rport,
        ));
        txn.source_port = ctx.src.port();
        txn.in_sock = cx.shell.in_sock() as u8;
        txn.reliable = cx.shell.transport(cx.shell.in_sock()).is_stream();
        txn.script_flags = ctx.st.flags;
        let mut fo = ctx.st.ds;
        cx.shell.tm_created(&mut fo);
        txn.ds = fo;
        let inserted = table
            .pool
            .store(&stored)
            .ok_or(crate::modules::tm::Full)
            .and_then(|chain| {
                txn.request = chain;
                table
                    .insert(&mut l, bucket, key, txn)
                    .inspect_err(|_| table.pool.free(chain))
            });
        self.stored = stored;
        let Ok((idx, generation)) = inserted else {
            drop(l);
            cx.shell.tm_destroyed(&fo);
            count(cx, TmCounter::TableFull);
            if let Some(held) = self.full_log.allow(cx.now_ms) {
                log::warn!(
                    "tm: transaction table full ({} live); replying 503{}",
                    table.live(),
                    crate::server::log_limit::held_text(held)
                );
            }
            cx.shell
                .reply_stateless(ctx, 503, b"Service Unavailable (transaction table full)");
            return Err(0);
        };
        let t = TxnRef {
            bucket,
            idx,
            generation,
        };
        count(cx, TmCounter::Transactions);
        if let Some(s) = table.slot(&mut l, idx, generation) {
            s.txn.on_created(self.auto_100, cx.now_ms, &self.timers, fx);
        }
        self.cur_txn = Some(t);
        Ok(Some((t, l)))
    }

    /// `t_newtran()`: 1 when the transaction is new, 0 when the request is
    /// a retransmission (the script ends: SER's semantics).
    pub(crate) fn t_newtran(&mut self, cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>) -> i32 {
        let Some(table) = self.table else {
            return -1;
        };
        if self.cur_txn.is_some() {
            return 1;
        }
        if let Some(Method::Ack | Method::Cancel) = ctx.msg.method() {
            return -1;
        }
        let mut fx = Effects::new();
        if let Err(r) = self.build_stored(cx, ctx) {
            return r;
        }
        match self.insert_txn(cx, &table, ctx, &mut fx) {
            Ok(Some((t, mut l))) => {
                // Sends the 100 if any, and arms the transaction's end.
                self.tm_exec(cx, &table, &mut l, t, &fx, None);
                1
            }
            Ok(None) => 0,
            Err(r) => r,
        }
    }
}
