//! tm's per-process state on the worker: its shared table and timers,
//! the transaction of the message being scripted and the routes it armed,
//! the state of its own routes, and the buffers it reuses.

use std::net::SocketAddr;

use super::blocklist::Blocklist;
use super::key::BranchId;
use super::stateful::{Armed, TxnRef};
use super::{Table, Timers, TmCounter, TmShm};
use crate::cfg::program::Param;
use crate::modules::def::{Cx, Refusal, Runtime, Start, Wants};
use crate::script::{MsgCtx, ScriptState};
use crate::server::log_limit::LogLimit;

pub struct TmState {
    /// The table, when tm is loaded.
    pub table: Option<Table>,
    pub timers: Timers,
    /// Whether INVITEs get an automatic 100 Trying (`auto_inv_100`).
    pub auto_100: bool,
    /// The transaction of the message being scripted, once it has one.
    pub cur_txn: Option<TxnRef>,
    pub armed: Armed,
    pub in_failure_route: bool,
    /// Reused buffers: a stored request, a built message, URIs.
    pub stored: Vec<u8>,
    pub scratch: Vec<u8>,
    /// The reply `t_reply` built, for the state machine's `SendLocal`.
    pub local_reply: Vec<u8>,
    pub uri_buf: Vec<u8>,
    pub uris: Vec<u8>,
    pub failure_buf: Vec<u8>,
    /// A transaction's `$avp`s, encoded.
    pub avp_buf: Vec<u8>,
    /// Script state for onreply_route and failure_route.
    pub aux_st: ScriptState,
    /// branch_route: its script state, the next hop it chose, and the
    /// branches' own requests it (or failure_route) produced.
    pub branch_st: ScriptState,
    pub branch_dst: Vec<u8>,
    /// The branches' paths (a `Hop`'s range), and a branch's text while
    /// its path is added.
    pub paths: Vec<u8>,
    pub path_buf: Vec<u8>,
    pub variants: Vec<u8>,
    /// One branch's variant as built, before it joins `variants`.
    pub branch_buf: Vec<u8>,
    pub base_buf: Vec<u8>,
    /// The destination blocklist: how long an address stays, and for
    /// which timed-out requests (`blst_methods_add`: 1 INVITE, other bits
    /// the rest).
    pub blocklist: Option<Blocklist>,
    pub blst_expire_ms: u64,
    pub blst_methods: i64,
    /// `blst_methods_lookup`: methods whose branches skip blocklisted
    /// destinations.
    pub blst_lookup: u32,
    /// `udp_mtu` and the transport a larger request goes over instead
    /// (RFC 3261 §18.1.1).
    pub udp_mtu: usize,
    pub udp_mtu_try_proto: crate::cfg::settings::Proto,
    /// The size of the request being relayed (its text before our Via),
    /// for `udp_mtu`.
    pub relay_size: usize,
    /// `blst_503`'s settings.
    pub blst_503: super::blocklist::Rule503,
    /// Why the last resolve_hops skipped a destination, as the reply
    /// `sl_reply_error` gives when none was left (None: unresolvable).
    pub hop_error: Option<(u16, &'static str)>,
    /// Table-full warnings, at most once a second.
    pub full_log: LogLimit,
    /// When this worker next looks for due timers after a batch (the
    /// earliest shard hint it saw, at most a tick away).
    pub next_timer_look: u64,
    /// A formatted reason (`t_reply`'s).
    pub text: Vec<u8>,
    /// `t_check_status`'s expressions, compiled once.
    pub regexes: crate::modules::def::Regexes,
}

/// Counts one of tm's counters.
pub fn count(cx: &Cx<'_>, c: TmCounter) {
    cx.counts.add(c as usize, 1);
}

/// tm in a worker or the timer process, over its tables.
pub fn start<'a>(s: &Start<'a>) -> Box<dyn Runtime + 'a> {
    let shm = s.shm.and_then(|m| m.downcast_ref::<TmShm>());
    Box::new(TmState::new(s.config, shm))
}

impl TmState {
    pub fn new(config: &crate::cfg::Config, shm: Option<&TmShm>) -> TmState {
        TmState {
            table: shm.map(|t| t.table),
            timers: super::timers(config),
            auto_100: config.modparam_int("tm", "auto_inv_100", 1) != 0,
            cur_txn: None,
            armed: Armed::default(),
            in_failure_route: false,
            stored: Vec::new(),
            scratch: Vec::new(),
            local_reply: Vec::new(),
            uri_buf: Vec::new(),
            uris: Vec::new(),
            failure_buf: Vec::new(),
            avp_buf: Vec::new(),
            aux_st: ScriptState::new(),
            branch_st: ScriptState::new(),
            branch_dst: Vec::new(),
            paths: Vec::new(),
            path_buf: Vec::new(),
            variants: Vec::new(),
            branch_buf: Vec::new(),
            base_buf: Vec::new(),
            blocklist: shm.and_then(|t| t.blocklist),
            blst_expire_ms: u64::from(config.settings.dst_blocklist_expire) * 1000,
            blst_methods: config.settings.blst_methods_add.map_or_else(
                || config.modparam_int("tm", "blst_methods_add", 1),
                i64::from,
            ),
            blst_lookup: config.settings.blst_methods_lookup,
            udp_mtu: config.settings.udp_mtu as usize,
            udp_mtu_try_proto: config.settings.udp_mtu_try_proto,
            relay_size: 0,
            blst_503: super::blocklist::Rule503::of(&config.settings),
            hop_error: None,
            full_log: LogLimit::default(),
            next_timer_look: 0,
            text: Vec::new(),
            regexes: Default::default(),
        }
    }
}

impl Runtime for TmState {
    fn wants(&self) -> Wants {
        Wants {
            per_message: true,
            ticks: true,
            drives_timers: true,
            requests: true,
            replies: true,
            transactions: true,
            send_failures: true,
            ..Wants::default()
        }
    }

    fn message_start(&mut self) {
        self.cur_txn = None;
        self.armed = Armed::default();
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        self.tm_timers(cx);
    }

    fn drive_timers(&mut self, cx: &mut Cx<'_>) {
        self.tm_drive(cx);
    }

    fn next_tick(&self, now_ms: u64) -> u64 {
        self.table
            .as_ref()
            .map_or(u64::MAX, |t| t.wheel.next_look(now_ms))
    }

    fn request_in(&mut self, cx: &mut Cx<'_>, msg: &crate::sip::Message<'_>) -> bool {
        self.tm_absorb(cx, msg)
    }

    fn reply_in(
        &mut self,
        cx: &mut Cx<'_>,
        msg: &crate::sip::Message<'_>,
        src: SocketAddr,
    ) -> bool {
        // tm's own branches first: a replica's reply is rare.
        self.tm_reply(cx, msg, src) || super::actions::absorbs_replica_reply(cx, msg)
    }

    fn reply_on_txn(
        &mut self,
        cx: &mut Cx<'_>,
        ctx: &mut MsgCtx<'_, '_>,
        code: u16,
        reason: &[u8],
        headers: &[u8],
    ) -> Option<i32> {
        self.cur_txn?;
        Some(self.t_reply(cx, ctx, code, reason, headers))
    }

    fn send_failed(&mut self, cx: &mut Cx<'_>, dest: SocketAddr, what: Refusal<'_>) {
        let id = match what {
            Refusal::Tagged(tag) => Some(BranchId::unpack(tag)),
            Refusal::Head(head) => BranchId::in_head(head),
        };
        if let Some(id) = id {
            self.tm_send_failed(cx, id, dest);
        }
    }

    fn call(&mut self, cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, id: u8, args: &[Param]) -> i32 {
        super::actions::run(self, cx, ctx, id, args)
    }
}
