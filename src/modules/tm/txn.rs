//! A stateful proxy transaction as plain data, and the pure logic that
//! drives it: a server transaction toward the caller (RFC 3261 §17.2) and
//! one client transaction per branch (§17.1), joined by the response
//! context of §16.7. Input is an event and the current time; output is a
//! list of [`Effect`]s for the caller to carry out (send, store, run a
//! route). No sockets, no clock, no shared memory: the table keeps these
//! structs in shared memory, tests keep them on the stack.

use arrayvec::ArrayVec;
use rser_shm::Chain;

use rser_shm::Peer;

pub use crate::sip::limits::MAX_BRANCHES;

/// A branch whose request could not be sent ends with this code, and a
/// stateless send that failed is answered with it (Kamailio's 477).
pub const SEND_FAILED: u16 = 477;
pub const SEND_FAILED_REASON: &str = "Unfortunately error on sending to next hop occurred";

/// No slot, branch record or route: the end of a list.
pub const NIL: u32 = u32::MAX;

/// tm's timer values in milliseconds (module parameters of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// `retr_timer1`: T1, the first retransmission interval (§17.1.1.1).
    pub t1: u64,
    /// `retr_timer2`: T2, the cap for non-INVITE and reply retransmissions.
    pub t2: u64,
    /// `fr_timer`: how long a branch waits for a final reply (or, for an
    /// INVITE, for a provisional one).
    pub fr: u64,
    /// `fr_inv_timer`: how long an INVITE branch waits for a final reply
    /// once it had a provisional (RFC 3261's Timer C).
    pub fr_inv: u64,
    /// `wt_timer`: how long a completed transaction stays to absorb late
    /// retransmissions (Timers I and J).
    pub wt: u64,
}

impl Default for Timers {
    /// Kamailio's defaults.
    fn default() -> Self {
        Timers {
            t1: 500,
            t2: 4000,
            fr: 30_000,
            fr_inv: 120_000,
            wt: 5_000,
        }
    }
}

impl Timers {
    /// 64*T1: Timers B, F and H.
    pub fn t64(&self) -> u64 {
        64 * self.t1
    }
}

#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BranchState {
    /// Not used.
    #[default]
    Free,
    /// Sent, no reply yet (Calling for an INVITE, Trying otherwise).
    Calling,
    /// A provisional reply came.
    Proceeding,
    /// A final reply came, or the branch ended locally (408, 487).
    Completed,
}

#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CancelState {
    #[default]
    None,
    /// A CANCEL is out, retransmitted until its final reply (§9.1; it is a
    /// non-INVITE client transaction of its own, §17.1.2).
    Sent,
    Done,
    /// Ended locally before it rang: a CANCEL goes out should a
    /// provisional reply still come (§9.1 allows none before).
    Wanted,
}

/// One branch: a client transaction toward one destination.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Branch {
    pub state: BranchState,
    pub cancel: CancelState,
    /// The last reply code; the final one once Completed (408 or 487 when
    /// the branch ended locally).
    pub code: u16,
    /// Socket index to send from.
    pub sock: u8,
    /// Sent over a stream (TCP): nothing is retransmitted (RFC 3261
    /// §17.1.1.2, §17.1.2.2: Timers A and E are for unreliable
    /// transports); its timeouts still run.
    pub reliable: bool,
    pub dest: Peer,
    /// The branch's Request-URI.
    pub uri: Chain,
    /// The branch's own request, when branch_route or failure_route
    /// changed the text (empty: the transaction's `request`). Its CANCEL
    /// and ACK are built from it too (§9.1: same Route set).
    pub request: Chain,
    /// Next request retransmission (0: none).
    pub retr_at: u64,
    pub retr_interval: u32,
    /// When the branch gives up waiting (fr_timer / fr_inv_timer).
    pub fr_at: u64,
    pub cancel_retr_at: u64,
    pub cancel_interval: u32,
    /// When the CANCEL gives up (64*T1, Timer F).
    pub cancel_end_at: u64,
    /// The request could not be sent (the branch ended with 477).
    pub unsent: bool,
    /// What happened to it: [`REPLIED`], [`TIMED_OUT`] (tmx's
    /// `t_branch_replied`, `t_branch_timeout`).
    pub history: u8,
}

/// [`Branch::history`]: a reply came from its destination.
pub const REPLIED: u8 = 1;
/// [`Branch::history`]: its fr_timer or fr_inv_timer ran out.
pub const TIMED_OUT: u8 = 2;

impl Branch {
    /// Its history, as tmx's `t_branch_replied`/`t_branch_timeout` ask.
    pub fn happened(&self, what: u8) -> bool {
        self.history & what != 0
    }

    /// A final reply came, or the branch ended locally: its request
    /// timers stop.
    fn complete(&mut self, code: u16) {
        self.state = BranchState::Completed;
        self.code = code;
        self.retr_at = 0;
        self.fr_at = 0;
    }
}

#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    #[default]
    Invite,
    NonInvite,
}

/// The server transaction toward the caller.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UasState {
    /// No final reply sent yet.
    #[default]
    Proceeding,
    /// A final non-2xx sent; for an INVITE, retransmitted until the ACK
    /// (§17.2.1 Timer G).
    Completed,
    /// A 2xx sent to an INVITE (RFC 6026's Accepted): retransmissions of
    /// the INVITE are absorbed, further 2xx still forwarded.
    Accepted,
    /// The ACK to our non-2xx came.
    Confirmed,
}

/// Flag bits of [`Txn::flags`].
pub const CANCELED: u8 = 1;
/// failure_route is running (on some process) for this transaction.
pub const IN_FAILURE: u8 = 2;
/// Its final reply was reported to the modules' callbacks (once: a 2xx
/// retransmitted or from another fork goes upstream without it).
pub const REPORTED: u8 = 4;

/// A transaction's state. `#[repr(C)]` plain data, so it can live in
/// shared memory; the table's bookkeeping fields sit beside it there.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Txn {
    pub kind: Kind,
    pub uas: UasState,
    pub flags: u8,
    /// Branches started so far.
    pub nbranch: u8,
    /// The last reply sent upstream (0: none; 100 is rebuilt, not stored).
    pub reply_code: u16,
    /// The best final reply among ended branches (§16.7 step 6).
    pub best_code: u16,
    pub best_branch: u8,
    /// Branch + 1 whose reply text `best` holds (0: none); when the best
    /// is a local ending (408, 487) it differs from `best_branch` + 1 and
    /// a local reply is built instead.
    pub best_kept: u8,
    /// Socket the request came in on, and where replies go (§18.2.2).
    pub in_sock: u8,
    /// It came over a stream: a final reply is not retransmitted (§17.2.1,
    /// Timer G is for unreliable transports).
    pub reliable: bool,
    pub upstream: Peer,
    /// The port the request came from (`$sp`); its address is
    /// `upstream`'s, which replies go to (§18.2.2: the source address,
    /// the Via's port without rport).
    pub source_port: u16,
    /// Route indices + 1 (0: none) armed by t_on_failure / t_on_reply /
    /// t_on_branch.
    pub on_failure: u16,
    pub on_reply: u16,
    pub on_branch: u16,
    /// The script's flags when the transaction was created, restored in
    /// failure_route (SER's flags are per transaction).
    pub script_flags: u32,
    /// The dispatcher's selection, restored in failure_route for
    /// `ds_next_dst` and written back after it.
    pub ds: crate::modules::dispatcher::Failover,
    /// The request as relayed, before our Via (see `relay.rs`).
    pub request: Chain,
    /// The last reply sent upstream (not 100 and not 2xx).
    pub reply: Chain,
    /// The best final reply kept for failure_route (empty: local reply).
    pub best: Chain,
    /// The script's `$avp`s (`script::avp`'s encoding), given back to
    /// failure and reply routes and kept as they leave them.
    pub avps: Chain,
    /// Next retransmission of a non-2xx final reply (Timer G; 0: none).
    pub reply_retr_at: u64,
    pub reply_interval: u32,
    /// tmx's `t_set_fr`: this transaction's fr_inv_timer and fr_timer in
    /// tenths of a second (0: tm's); small, as a transaction must fit
    /// its 2 KiB.
    pub fr_inv_ds: u16,
    pub fr_ds: u16,
    /// When the transaction ends (Timer H, or wt_timer).
    pub end_at: u64,
}

/// What the caller must do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Send (or resend) branch N's request.
    SendBranch(u8),
    /// Send (or resend) a CANCEL on branch N (§9.1).
    SendCancel(u8),
    /// ACK the non-2xx final reply in hand on branch N (§17.1.1.3).
    SendAck(u8),
    /// Forward the reply in hand upstream without our Via; with `store`,
    /// keep it as the transaction's last reply.
    RelayReply { store: bool },
    /// Keep the reply in hand (as it would be forwarded) as the best one.
    KeepBest,
    /// Resend the stored last reply (or rebuild the 100 Trying).
    ResendReply,
    /// Send upstream the reply the script built (`t_reply`), and keep it
    /// as the last reply, for retransmissions of the request and Timer G.
    SendLocal,
    /// Send the best final reply upstream: the kept one, or a local reply
    /// with `best_code`; it becomes the last reply.
    SendBest,
    /// Run failure_route[N - 1]; call [`Txn::failure_route_done`] after.
    FailureRoute(u16),
    /// Branch N's destination let its request time out without any
    /// reply (the destination blocklist takes it, when kept).
    Silent(u8),
    /// The transaction is over: free it.
    Delete,
}

pub type Effects = ArrayVec<Effect, { 4 * MAX_BRANCHES + 8 }>;

/// A timer's interval (ms) as the narrower field it is kept in.
fn ms32(ms: u64) -> u32 {
    u32::try_from(ms).unwrap_or(u32::MAX)
}

/// Whether final reply `new` beats `old` for forwarding (§16.7 step 6: a
/// 6xx, else the lowest class; within a class the first stays).
pub fn better(new: u16, old: u16) -> bool {
    if old == 0 {
        return true;
    }
    let (n, o) = (new / 100, old / 100);
    if o == 6 {
        return false;
    }
    n == 6 || n < o
}

impl Txn {
    /// Where the request came from.
    pub fn source(&self) -> std::net::SocketAddr {
        let up = std::net::SocketAddr::from(self.upstream);
        std::net::SocketAddr::new(up.ip(), self.source_port)
    }

    pub fn new(kind: Kind, now: u64, timers: &Timers) -> Txn {
        Txn {
            kind,
            // A transaction nobody answers still ends: no branch waits
            // longer than fr_inv_timer, no reply longer than 64*T1.
            end_at: now + timers.fr.max(timers.fr_inv) + timers.t64(),
            ..Txn::default()
        }
    }

    /// `t_set_fr(fr_inv, fr)`: this transaction's own timers for the
    /// branches it starts from now (0: tm's); its end waits for them.
    pub fn set_fr(&mut self, fr_inv_ms: u32, fr_ms: u32, now: u64, timers: &Timers) {
        let ds = |ms: u32| u16::try_from(ms.div_ceil(100)).unwrap_or(u16::MAX);
        (self.fr_inv_ds, self.fr_ds) = (ds(fr_inv_ms), ds(fr_ms));
        let longest = self.fr(timers).max(self.fr_inv(timers));
        self.end_at = self.end_at.max(now + longest + timers.t64());
    }

    fn fr(&self, timers: &Timers) -> u64 {
        if self.fr_ds == 0 {
            timers.fr
        } else {
            u64::from(self.fr_ds) * 100
        }
    }

    fn fr_inv(&self, timers: &Timers) -> u64 {
        if self.fr_inv_ds == 0 {
            timers.fr_inv
        } else {
            u64::from(self.fr_inv_ds) * 100
        }
    }

    /// The transaction was just created for a request: an INVITE is
    /// answered 100 Trying at once when `auto_100` (tm's `auto_inv_100`,
    /// §16.2), so the caller stops retransmitting.
    pub fn on_created(&mut self, auto_100: bool, now: u64, timers: &Timers, fx: &mut Effects) {
        if self.is_invite() && auto_100 {
            self.on_local_reply(100, now, timers);
            fx.push(Effect::ResendReply);
        }
    }

    /// A reply for a transaction that no longer exists: a 2xx to an
    /// INVITE still goes upstream, statelessly (§16.7 step 5: the UAC
    /// needs every 2xx to ACK it); anything else is dropped.
    pub fn late_reply_forwarded(invite: bool, code: u16) -> bool {
        invite && (200..300).contains(&code)
    }

    pub fn is_invite(&self) -> bool {
        self.kind == Kind::Invite
    }

    pub fn canceled(&self) -> bool {
        self.flags & CANCELED != 0
    }

    /// A retransmission of the request: resend what we last sent, unless
    /// a 2xx went out (RFC 6026 §8.7: absorbed) or nothing did yet.
    pub fn on_retransmission(&self) -> Option<Effect> {
        match self.uas {
            UasState::Proceeding | UasState::Completed if self.reply_code != 0 => {
                Some(Effect::ResendReply)
            }
            _ => None,
        }
    }

    /// An ACK matching the INVITE: true when it ends here (the ACK to our
    /// own non-2xx final reply, §17.2.1); false when the script routes it.
    pub fn on_ack(&mut self, now: u64, timers: &Timers) -> bool {
        match self.uas {
            UasState::Completed if self.is_invite() => {
                self.uas = UasState::Confirmed;
                self.reply_retr_at = 0;
                self.end_at = now + timers.wt; // Timer I
                true
            }
            UasState::Confirmed => true,
            _ => false,
        }
    }

    /// Records a final reply sent upstream (relayed, kept or local).
    fn uas_final(&mut self, code: u16, now: u64, timers: &Timers) {
        self.reply_code = code;
        if self.is_invite() && code >= 300 {
            self.uas = UasState::Completed;
            self.reply_retr_at = if self.reliable { 0 } else { now + timers.t1 };
            self.reply_interval = ms32(timers.t1);
            self.end_at = now + timers.t64(); // Timer H
        } else {
            self.uas = if self.is_invite() {
                UasState::Accepted
            } else {
                UasState::Completed
            };
            self.end_at = now + timers.wt;
        }
    }

    /// `t_reply(code)` (and stateful `send_reply`): the reply the script
    /// built goes upstream and is kept ([`Effect::SendLocal`]); `None`
    /// when a final reply went upstream already (the action is false).
    pub fn on_t_reply(&mut self, code: u16, now: u64, timers: &Timers) -> Option<Effects> {
        if self.replied_final() {
            return None;
        }
        self.on_local_reply(code, now, timers);
        let mut fx = Effects::new();
        fx.push(Effect::SendLocal);
        Some(fx)
    }

    /// `t_relay` after `t_newtran`: the request the route left replaces
    /// the one stored at `t_newtran` while no branch was started from it
    /// (and not from failure_route, whose changes are its new branches').
    pub fn request_replaceable(&self) -> bool {
        self.nbranch == 0 && self.flags & IN_FAILURE == 0
    }

    /// A reply sent on the transaction by tm itself (100 Trying) or the
    /// script: the server side's state follows it.
    fn on_local_reply(&mut self, code: u16, now: u64, timers: &Timers) {
        if code >= 200 {
            self.uas_final(code, now, timers);
        } else {
            self.reply_code = code;
        }
    }

    /// Whether `best` holds the text of the best reply (else a local
    /// reply with `best_code` stands for it).
    pub fn best_text_kept(&self) -> bool {
        self.best_kept == self.best_branch + 1 && !self.best.is_empty()
    }

    /// Whether a final reply went upstream already.
    pub fn replied_final(&self) -> bool {
        self.reply_code >= 200
    }

    /// Starts branch `b` (just filled in by the caller): timers set, and
    /// its request to send.
    pub fn start_branch(
        &self,
        br: &mut Branch,
        b: u8,
        now: u64,
        timers: &Timers,
        fx: &mut Effects,
    ) {
        br.state = BranchState::Calling;
        br.cancel = CancelState::None;
        br.code = 0;
        br.unsent = false;
        br.history = 0;
        // Over UDP the request is retransmitted from T1 (§17.1.1.2, §17.1.2.2).
        br.retr_interval = ms32(timers.t1);
        br.retr_at = if br.reliable { 0 } else { now + timers.t1 };
        br.fr_at = now + self.fr(timers);
        fx.push(Effect::SendBranch(b));
    }

    /// The CANCEL from upstream (§16.10): every branch still pending is
    /// cancelled. The caller answers the CANCEL itself with 200.
    pub fn on_cancel(&mut self, br: &mut [&mut Branch], now: u64, timers: &Timers) -> Effects {
        let mut fx = Effects::new();
        if self.canceled() || self.replied_final() {
            return fx;
        }
        self.flags |= CANCELED;
        self.cancel_pending(br, now, timers, &mut fx);
        self.check_done(br, now, timers, &mut fx);
        fx
    }

    /// Cancels every branch without a final reply (§16.10). A branch that
    /// answered provisionally gets a CANCEL and stays pending: its own
    /// final reply (the callee's 487, or a 2xx that crossed the CANCEL)
    /// is what §16.7 selects from, and only if none comes within 64*T1
    /// does it end with a local 487 (§9.1). A branch that never answered
    /// may not be cancelled yet (§9.1): it ends at once with a local 487,
    /// and gets its CANCEL should a provisional reply still come.
    fn cancel_pending(
        &mut self,
        br: &mut [&mut Branch],
        now: u64,
        timers: &Timers,
        fx: &mut Effects,
    ) {
        if !self.is_invite() {
            return;
        }
        for (i, b) in br.iter_mut().enumerate() {
            match b.state {
                BranchState::Proceeding if b.cancel == CancelState::None => {
                    start_cancel(b, now, timers);
                    b.fr_at = b.fr_at.min(b.cancel_end_at);
                    fx.push(Effect::SendCancel(i as u8));
                }
                BranchState::Calling => {
                    b.complete(487);
                    b.cancel = CancelState::Wanted;
                    self.note_final(i as u8, 487, false, fx);
                }
                _ => {}
            }
        }
    }

    /// A negative final reply on branch `b`: the best so far is kept
    /// (`in_hand`: its text is the reply being processed).
    fn note_final(&mut self, b: u8, code: u16, in_hand: bool, fx: &mut Effects) {
        // Within a class a received reply beats one we would make up (a
        // callee's 487 over the local 487 of a branch that never rang).
        let local = self.best_kept != self.best_branch + 1;
        let over_local = in_hand && local && code / 100 == self.best_code / 100;
        if better(code, self.best_code) || over_local {
            self.best_code = code;
            self.best_branch = b;
            if in_hand {
                self.best_kept = b + 1;
                fx.push(Effect::KeepBest);
            }
        }
    }

    /// A reply on branch `b` (`for_cancel`: its CSeq method is CANCEL).
    pub fn on_reply(
        &mut self,
        br: &mut [&mut Branch],
        b: u8,
        code: u16,
        for_cancel: bool,
        now: u64,
        timers: &Timers,
    ) -> Effects {
        let mut fx = Effects::new();
        let Some(branch) = br.get_mut(b as usize) else {
            return fx;
        };
        if for_cancel {
            if code >= 200 {
                branch.cancel = CancelState::Done;
                branch.cancel_retr_at = 0;
            }
            return fx;
        }
        if branch.state == BranchState::Free {
            return fx;
        }
        branch.history |= REPLIED;
        if code < 200 {
            self.on_provisional(br, b, code, now, timers, &mut fx);
            return fx;
        }
        let already = branch.state == BranchState::Completed;
        if self.is_invite() && code >= 300 {
            // Every non-2xx final, retransmissions too, is ACKed hop by
            // hop (§17.1.1.3).
            fx.push(Effect::SendAck(b));
        }
        if (200..300).contains(&code) {
            // Every 2xx goes upstream (§16.7 step 5), retransmissions and
            // 2xx from other branches included.
            self.relay_2xx(br, b, code, now, timers, &mut fx);
            return fx;
        }
        if already {
            return fx;
        }
        let branch = &mut br[b as usize];
        branch.complete(code);
        if code >= 600 && self.is_invite() {
            // §16.7 step 9: a 6xx cancels the other branches.
            self.cancel_pending(br, now, timers, &mut fx);
        }
        if !self.replied_final() {
            self.note_final(b, code, true, &mut fx);
        }
        self.check_done(br, now, timers, &mut fx);
        fx
    }

    /// Branch `b`'s request could not be sent (the kernel refused it: no
    /// route, ICMP unreachable): the branch ends at once as if it had
    /// received a 477, Kamailio's code for a failed send, and the
    /// transaction goes on as for any failure (failure_route, or the best
    /// reply; 503 when no branch could be sent at all). None when the
    /// branch had ended already (the refused datagram was its ACK, or a
    /// CANCEL after its final reply).
    pub fn on_send_failed(
        &mut self,
        br: &mut [&mut Branch],
        b: u8,
        now: u64,
        timers: &Timers,
    ) -> Option<Effects> {
        let mut fx = Effects::new();
        let branch = br.get_mut(usize::from(b))?;
        if !matches!(branch.state, BranchState::Calling | BranchState::Proceeding) {
            return None;
        }
        branch.complete(SEND_FAILED);
        branch.unsent = true;
        if !self.replied_final() {
            self.note_final(b, SEND_FAILED, false, &mut fx);
        }
        self.check_done(br, now, timers, &mut fx);
        Some(fx)
    }

    fn on_provisional(
        &mut self,
        br: &mut [&mut Branch],
        b: u8,
        code: u16,
        now: u64,
        timers: &Timers,
        fx: &mut Effects,
    ) {
        let canceled = self.canceled();
        let branch = &mut br[b as usize];
        if branch.state == BranchState::Calling {
            branch.state = BranchState::Proceeding;
            if self.is_invite() {
                // §17.1.1.2: retransmissions stop; Timer C replaces fr.
                branch.retr_at = 0;
                branch.fr_at = now + self.fr_inv(timers);
            } else {
                // §17.1.2.2: retransmit at T2 while proceeding.
                branch.retr_interval = ms32(timers.t2);
                branch.retr_at = if branch.reliable { 0 } else { now + timers.t2 };
            }
        }
        if branch.state == BranchState::Completed {
            if branch.cancel == CancelState::Wanted {
                // Ended by a CANCEL before it rang: it may be cancelled
                // now that it answered (§9.1).
                start_cancel(branch, now, timers);
                fx.push(Effect::SendCancel(b));
            }
            return;
        }
        if canceled {
            return;
        }
        branch.code = code;
        // §16.7 step 5: provisional replies other than 100 go upstream.
        if code > 100 && !self.replied_final() {
            self.reply_code = code;
            fx.push(Effect::RelayReply { store: true });
        }
    }

    fn relay_2xx(
        &mut self,
        br: &mut [&mut Branch],
        b: u8,
        code: u16,
        now: u64,
        timers: &Timers,
        fx: &mut Effects,
    ) {
        let first_final = !self.replied_final();
        let branch = &mut br[b as usize];
        if branch.state != BranchState::Completed {
            branch.complete(code);
        }
        fx.push(Effect::RelayReply { store: false });
        if first_final {
            self.uas_final(code, now, timers);
            // §16.7 step 10: the other branches are cancelled.
            self.cancel_pending(br, now, timers, fx);
        }
    }

    /// When every branch has ended and no final reply went upstream:
    /// failure_route if armed (§16.7 step 6's "the proxy may choose to
    /// fork again"), else the best reply.
    fn check_done(&mut self, br: &mut [&mut Branch], now: u64, timers: &Timers, fx: &mut Effects) {
        self.finish(br, true, now, timers, fx);
    }

    fn finish(
        &mut self,
        br: &mut [&mut Branch],
        allow_failure_route: bool,
        now: u64,
        timers: &Timers,
        fx: &mut Effects,
    ) {
        if self.replied_final()
            || self.flags & IN_FAILURE != 0
            || br
                .iter()
                .any(|b| matches!(b.state, BranchState::Calling | BranchState::Proceeding))
        {
            return;
        }
        if allow_failure_route && self.on_failure != 0 && !self.canceled() && !br.is_empty() {
            self.flags |= IN_FAILURE;
            let route = self.on_failure;
            // Armed again only if the route calls t_on_failure again.
            self.on_failure = 0;
            fx.push(Effect::FailureRoute(route));
            return;
        }
        if self.best_code == 0 {
            // No branch at all (every destination failed to start).
            self.best_code = 500;
        }
        if !br.is_empty() && br.iter().all(|b| b.unsent) {
            // Not one request went out: this proxy cannot serve it now.
            self.best_code = 503;
            self.best_kept = 0;
            fx.push(Effect::SendBest);
            self.uas_final(self.best_code, now, timers);
            return;
        }
        if self.best_code == 503 {
            // §16.7 step 6: a 503 would tell the caller that this proxy is
            // unavailable; it gets a local 500 instead.
            self.best_code = 500;
            self.best_kept = 0;
        }
        fx.push(Effect::SendBest);
        self.uas_final(self.best_code, now, timers);
    }

    /// failure_route has run (it may have started branches, `added`, or
    /// replied). A route that started nothing is not run again for the
    /// same branches, even if it armed itself again.
    pub fn failure_route_done(
        &mut self,
        br: &mut [&mut Branch],
        added: bool,
        now: u64,
        timers: &Timers,
    ) -> Effects {
        let mut fx = Effects::new();
        self.flags &= !IN_FAILURE;
        self.finish(br, added, now, timers, &mut fx);
        fx
    }

    /// The script relayed without starting any branch (every destination
    /// unreachable): ends like a transaction whose branches all failed.
    pub fn no_branch_started(
        &mut self,
        br: &mut [&mut Branch],
        now: u64,
        timers: &Timers,
    ) -> Effects {
        let mut fx = Effects::new();
        self.check_done(br, now, timers, &mut fx);
        fx
    }

    /// Timers due at `now`.
    pub fn on_timer(&mut self, br: &mut [&mut Branch], now: u64, timers: &Timers) -> Effects {
        let mut fx = Effects::new();
        let mut ended: ArrayVec<u8, MAX_BRANCHES> = ArrayVec::new();
        for (i, b) in br.iter_mut().enumerate() {
            let i = i as u8;
            if matches!(b.state, BranchState::Calling | BranchState::Proceeding) {
                if b.retr_at != 0 && now >= b.retr_at {
                    fx.push(Effect::SendBranch(i));
                    // INVITE: Timer A doubles without a cap (§17.1.1.2);
                    // non-INVITE: Timer E doubles up to T2 (§17.1.2.2).
                    b.retr_interval = if self.is_invite() {
                        b.retr_interval.saturating_mul(2)
                    } else {
                        b.retr_interval.saturating_mul(2).min(ms32(timers.t2))
                    };
                    b.retr_at = now + u64::from(b.retr_interval);
                }
                if b.fr_at != 0 && now >= b.fr_at {
                    if b.state == BranchState::Calling {
                        fx.push(Effect::Silent(i));
                    }
                    if b.cancel != CancelState::None {
                        // Cancelled and silent for 64*T1: over (§9.1).
                        b.complete(487);
                    } else {
                        // §16.8: Timer C on a ringing INVITE branch
                        // cancels it; either way the branch ends with 408.
                        if b.state == BranchState::Proceeding && self.is_invite() {
                            start_cancel(b, now, timers);
                            fx.push(Effect::SendCancel(i));
                        }
                        b.history |= TIMED_OUT;
                        b.complete(408);
                    }
                    ended.push(i);
                }
            }
            if b.cancel == CancelState::Sent {
                if now >= b.cancel_end_at {
                    b.cancel = CancelState::Done;
                    b.cancel_retr_at = 0;
                } else if b.cancel_retr_at != 0 && now >= b.cancel_retr_at {
                    fx.push(Effect::SendCancel(i));
                    b.cancel_interval = b.cancel_interval.saturating_mul(2).min(ms32(timers.t2));
                    b.cancel_retr_at = now + u64::from(b.cancel_interval);
                }
            }
        }
        if !ended.is_empty() {
            if !self.replied_final() {
                for i in ended {
                    let code = br[usize::from(i)].code;
                    self.note_final(i, code, false, &mut fx);
                }
            }
            self.check_done(br, now, timers, &mut fx);
        }
        if self.reply_retr_at != 0 && now >= self.reply_retr_at {
            // Timer G: the non-2xx final again, until the ACK (§17.2.1).
            fx.push(Effect::ResendReply);
            self.reply_interval = self.reply_interval.saturating_mul(2).min(ms32(timers.t2));
            self.reply_retr_at = now + u64::from(self.reply_interval);
        }
        if now >= self.end_at && self.flags & IN_FAILURE == 0 && !self.busy(br) {
            fx.push(Effect::Delete);
        }
        fx
    }

    /// Whether a branch still has a request or a CANCEL in flight.
    fn busy(&self, br: &[&mut Branch]) -> bool {
        br.iter().any(|b| {
            matches!(b.state, BranchState::Calling | BranchState::Proceeding)
                || b.cancel == CancelState::Sent
        })
    }

    /// The earliest time any timer of the transaction is due. While a
    /// branch is busy, its own timers bound the wait, not the end.
    pub fn due(&self, br: &[&mut Branch]) -> u64 {
        let mut due = if self.busy(br) { u64::MAX } else { self.end_at };
        let mut consider = |t: u64| {
            if t != 0 && t < due {
                due = t;
            }
        };
        consider(self.reply_retr_at);
        for b in br {
            if matches!(b.state, BranchState::Calling | BranchState::Proceeding) {
                consider(b.retr_at);
                consider(b.fr_at);
            }
            if b.cancel == CancelState::Sent {
                consider(b.cancel_retr_at);
                consider(b.cancel_end_at);
            }
        }
        due
    }
}

fn start_cancel(b: &mut Branch, now: u64, timers: &Timers) {
    b.cancel = CancelState::Sent;
    b.cancel_interval = ms32(timers.t1);
    b.cancel_retr_at = if b.reliable { 0 } else { now + timers.t1 };
    b.cancel_end_at = now + timers.t64();
}
