//! The transaction state machine on a simulated clock: no sockets, no
//! shared memory. Each test plays events and checks the effects.

use super::txn::*;

const T: Timers = Timers {
    t1: 500,
    t2: 4000,
    fr: 30_000,
    fr_inv: 120_000,
    wt: 5_000,
};

/// A transaction with `n` branches started at time 0.
struct Sim {
    t: Txn,
    br: Vec<Branch>,
    sent: Vec<(u64, Effect)>,
    deleted: bool,
}

impl Sim {
    fn new(kind: Kind, n: usize) -> Sim {
        let mut s = Sim {
            t: Txn::new(kind, 0, &T),
            br: Vec::new(),
            sent: Vec::new(),
            deleted: false,
        };
        for _ in 0..n {
            s.add_branch(0);
        }
        s
    }

    fn add_branch(&mut self, now: u64) {
        let b = self.br.len() as u8;
        self.br.push(Branch::default());
        self.t.nbranch += 1;
        let mut fx = Effects::new();
        let t = self.t;
        t.start_branch(self.br.last_mut().unwrap(), b, now, &T, &mut fx);
        self.log(now, fx);
    }

    fn refs(&mut self) -> Vec<&mut Branch> {
        self.br.iter_mut().collect()
    }

    fn log(&mut self, now: u64, fx: Effects) -> Vec<Effect> {
        self.sent.extend(fx.iter().map(|e| (now, *e)));
        fx.to_vec()
    }

    fn reply(&mut self, now: u64, b: u8, code: u16) -> Vec<Effect> {
        let mut t = self.t;
        let fx = t.on_reply(&mut self.refs(), b, code, false, now, &T);
        self.t = t;
        self.log(now, fx)
    }

    fn cancel(&mut self, now: u64) -> Vec<Effect> {
        let mut t = self.t;
        let fx = t.on_cancel(&mut self.refs(), now, &T);
        self.t = t;
        self.log(now, fx)
    }

    /// Runs the timers every 10 ms from `from` to `to` (inclusive), as the
    /// timer process would when they are due.
    fn run(&mut self, from: u64, to: u64) {
        let mut now = from;
        while now <= to && !self.deleted {
            let due = {
                let refs: Vec<&mut Branch> = self.br.iter_mut().collect();
                self.t.due(&refs)
            };
            if now >= due {
                let mut t = self.t;
                let fx = t.on_timer(&mut self.refs(), now, &T);
                self.t = t;
                self.deleted = fx.contains(&Effect::Delete);
                self.log(now, fx);
            }
            now += 10;
        }
    }

    fn times_of(&self, e: Effect) -> Vec<u64> {
        self.sent
            .iter()
            .filter(|(_, x)| *x == e)
            .map(|(t, _)| *t)
            .collect()
    }

    fn failure_done(&mut self, now: u64, added: bool) -> Vec<Effect> {
        let mut t = self.t;
        let fx = t.failure_route_done(&mut self.refs(), added, now, &T);
        self.t = t;
        self.log(now, fx)
    }
}

#[test]
fn invite_retransmissions_double_from_t1_until_a_provisional() {
    let mut s = Sim::new(Kind::Invite, 1);
    s.run(0, 8000);
    // Sent at 0, then Timer A: 500, 1500, 3500, 7500 (§17.1.1.2).
    assert_eq!(
        s.times_of(Effect::SendBranch(0)),
        vec![0, 500, 1500, 3500, 7500]
    );
    s.reply(8000, 0, 100);
    s.run(8000, 40_000);
    assert_eq!(
        s.times_of(Effect::SendBranch(0)).len(),
        5,
        "no retransmission after 100"
    );
}

#[test]
fn non_invite_retransmissions_cap_at_t2_then_t2_while_proceeding() {
    let mut s = Sim::new(Kind::NonInvite, 1);
    s.run(0, 12_000);
    // 500, 1500, 3500, 7500 (+4000 cap), 11500.
    assert_eq!(
        s.times_of(Effect::SendBranch(0)),
        vec![0, 500, 1500, 3500, 7500, 11_500]
    );
    s.reply(12_000, 0, 180);
    s.run(12_000, 20_500);
    let after: Vec<u64> = s
        .times_of(Effect::SendBranch(0))
        .into_iter()
        .filter(|&t| t > 12_000)
        .collect();
    assert_eq!(
        after,
        vec![16_000, 20_000],
        "every T2 while proceeding (§17.1.2.2)"
    );
}

#[test]
fn fr_timer_ends_a_silent_branch_with_408() {
    let mut s = Sim::new(Kind::Invite, 1);
    s.run(0, 29_990);
    assert!(s.times_of(Effect::SendBest).is_empty());
    s.run(30_000, 30_000);
    assert_eq!(s.times_of(Effect::SendBest), vec![30_000]);
    assert_eq!(s.t.best_code, 408);
    assert_eq!(s.t.reply_code, 408);
    assert_eq!(s.t.uas, UasState::Completed);
    // No CANCEL: the branch never answered (§9.1).
    assert!(s.times_of(Effect::SendCancel(0)).is_empty());
}

#[test]
fn fr_inv_timer_after_a_provisional_cancels_the_branch() {
    let mut s = Sim::new(Kind::Invite, 1);
    s.reply(100, 0, 180);
    s.run(100, 30_000);
    assert!(
        s.times_of(Effect::SendBest).is_empty(),
        "fr_timer no longer applies"
    );
    s.run(30_010, 120_100);
    assert_eq!(s.times_of(Effect::SendCancel(0)), vec![120_100]);
    assert_eq!(s.times_of(Effect::SendBest), vec![120_100]);
    assert_eq!(s.t.best_code, 408);
}

#[test]
fn provisional_relayed_except_100_and_2xx_relayed_unstored() {
    let mut s = Sim::new(Kind::Invite, 1);
    assert!(s.reply(10, 0, 100).is_empty());
    assert_eq!(
        s.reply(20, 0, 180),
        vec![Effect::RelayReply { store: true }]
    );
    assert_eq!(s.t.on_retransmission(), Some(Effect::ResendReply));
    assert_eq!(
        s.reply(30, 0, 200),
        vec![Effect::RelayReply { store: false }]
    );
    assert_eq!(s.t.uas, UasState::Accepted);
    // A 2xx retransmission still goes up; an INVITE retransmission is absorbed.
    assert_eq!(
        s.reply(40, 0, 200),
        vec![Effect::RelayReply { store: false }]
    );
    assert_eq!(s.t.on_retransmission(), None);
    // Late provisional: dropped.
    assert!(s.reply(50, 0, 180).is_empty());
}

#[test]
fn negative_reply_is_acked_relayed_and_retransmitted_until_the_ack() {
    let mut s = Sim::new(Kind::Invite, 1);
    s.reply(10, 0, 180);
    let fx = s.reply(20, 0, 486);
    assert_eq!(
        fx,
        vec![Effect::SendAck(0), Effect::KeepBest, Effect::SendBest]
    );
    assert_eq!(s.t.uas, UasState::Completed);
    // The callee retransmits its 486: ACKed again, not relayed again.
    assert_eq!(s.reply(520, 0, 486), vec![Effect::SendAck(0)]);
    // Timer G: 520, 1520, 3520, then every T2 (§17.2.1).
    s.run(30, 12_000);
    assert_eq!(
        s.times_of(Effect::ResendReply),
        vec![520, 1520, 3520, 7520, 11_520]
    );
    assert!(s.t.on_ack(12_000, &T));
    assert_eq!(s.t.uas, UasState::Confirmed);
    s.run(12_000, 16_990);
    assert!(s.times_of(Effect::Delete).is_empty());
    s.run(17_000, 17_000);
    assert_eq!(
        s.times_of(Effect::Delete),
        vec![17_000],
        "wt_timer after the ACK"
    );
    assert_eq!(s.times_of(Effect::ResendReply).len(), 5);
}

#[test]
fn no_ack_ends_after_timer_h() {
    let mut s = Sim::new(Kind::Invite, 1);
    s.reply(0, 0, 404);
    s.run(0, 40_000);
    assert_eq!(s.times_of(Effect::Delete), vec![32_000]);
}

#[test]
fn forking_best_reply_waits_for_every_branch() {
    let mut s = Sim::new(Kind::Invite, 3);
    s.reply(10, 0, 180);
    s.reply(10, 1, 180);
    s.reply(10, 2, 180);
    assert_eq!(
        s.reply(20, 0, 486),
        vec![Effect::SendAck(0), Effect::KeepBest]
    );
    assert_eq!(
        s.reply(30, 1, 404),
        vec![Effect::SendAck(1)],
        "same class: first stays"
    );
    assert_eq!(s.t.best_branch, 0);
    let fx = s.reply(40, 2, 302);
    assert_eq!(
        fx,
        vec![Effect::SendAck(2), Effect::KeepBest, Effect::SendBest]
    );
    assert_eq!(s.t.best_code, 302);
    assert_eq!(s.t.best_kept, 3);
}

#[test]
fn a_2xx_cancels_the_other_branches() {
    let mut s = Sim::new(Kind::Invite, 3);
    s.reply(10, 0, 180);
    s.reply(10, 1, 180);
    let fx = s.reply(50, 1, 200);
    // Branch 0 rang: CANCEL; branch 2 never answered: ended locally.
    assert_eq!(
        fx,
        vec![Effect::RelayReply { store: false }, Effect::SendCancel(0)]
    );
    assert_eq!(s.br[2].state, BranchState::Completed);
    assert_eq!(s.br[2].code, 487);
    // The CANCEL is retransmitted until its 200, then the 487 is ACKed.
    s.run(50, 1600);
    assert_eq!(s.times_of(Effect::SendCancel(0)), vec![50, 550, 1550]);
    let mut t = s.t;
    let fx = t.on_reply(&mut s.refs(), 0, 200, true, 1600, &T);
    s.t = t;
    assert!(fx.is_empty());
    assert_eq!(s.reply(1610, 0, 487), vec![Effect::SendAck(0)]);
    s.run(1600, 6000);
    assert_eq!(s.times_of(Effect::SendCancel(0)).len(), 3);
    assert_eq!(s.times_of(Effect::Delete), vec![5050]);
    // Nothing but the 2xx went upstream.
    assert!(s.times_of(Effect::SendBest).is_empty());
}

#[test]
fn a_6xx_cancels_the_others_and_wins() {
    let mut s = Sim::new(Kind::Invite, 2);
    s.reply(10, 0, 180);
    s.reply(10, 1, 180);
    let fx = s.reply(20, 0, 603);
    // §16.7 step 9: the 603 is kept and the other branch cancelled; it
    // goes up once that branch has ended.
    assert_eq!(
        fx,
        vec![Effect::SendAck(0), Effect::SendCancel(1), Effect::KeepBest]
    );
    assert_eq!(
        s.reply(40, 1, 487),
        vec![Effect::SendAck(1), Effect::SendBest]
    );
    assert_eq!(s.t.best_code, 603);
    assert_eq!(s.t.best_kept, 1, "the callee's 603, not the 487");
}

#[test]
fn upstream_cancel_relays_the_callees_487() {
    let mut s = Sim::new(Kind::Invite, 1);
    s.reply(10, 0, 180);
    // §16.10: a CANCEL on the ringing branch; nothing goes upstream yet.
    assert_eq!(s.cancel(100), vec![Effect::SendCancel(0)]);
    assert!(s.cancel(200).is_empty(), "a second CANCEL changes nothing");
    assert_eq!(s.t.reply_code, 180);
    // The callee's 487: ACKed, kept, and sent upstream as the final reply.
    assert_eq!(
        s.reply(300, 0, 487),
        vec![Effect::SendAck(0), Effect::KeepBest, Effect::SendBest]
    );
    assert_eq!((s.t.best_code, s.t.best_kept), (487, 1));
    assert!(s.t.replied_final());
}

#[test]
fn a_2xx_crossing_the_cancel_goes_up_alone() {
    let mut s = Sim::new(Kind::Invite, 1);
    s.reply(10, 0, 180);
    s.cancel(100);
    assert_eq!(
        s.reply(110, 0, 200),
        vec![Effect::RelayReply { store: false }]
    );
    assert_eq!(s.t.reply_code, 200);
    // Then the callee's 200 for the CANCEL; no 487 ever goes upstream.
    s.run(110, 40_000);
    assert!(s.times_of(Effect::SendBest).is_empty());
}

#[test]
fn a_cancelled_branch_that_stays_silent_ends_with_487_after_64_t1() {
    let mut s = Sim::new(Kind::Invite, 1);
    s.reply(10, 0, 180);
    s.cancel(100);
    s.run(100, 40_000);
    // §9.1: 64*T1 after the CANCEL the branch is over; the caller gets a
    // local 487 (no callee reply to relay).
    assert_eq!(s.times_of(Effect::SendBest), vec![100 + 64 * 500]);
    assert_eq!((s.t.best_code, s.t.best_kept), (487, 0));
}

#[test]
fn upstream_cancel_with_a_silent_and_a_ringing_branch() {
    let mut s = Sim::new(Kind::Invite, 2);
    s.reply(10, 0, 180);
    // The silent branch may not be cancelled (§9.1): ended locally.
    assert_eq!(s.cancel(100), vec![Effect::SendCancel(0)]);
    assert_eq!((s.br[1].state, s.br[1].code), (BranchState::Completed, 487));
    // It rings after all: now it gets its CANCEL.
    assert_eq!(s.reply(150, 1, 180), vec![Effect::SendCancel(1)]);
    assert_eq!(s.reply(160, 1, 487), vec![Effect::SendAck(1)]);
    // The ringing branch's 487 ends the transaction with that 487.
    assert_eq!(
        s.reply(300, 0, 487),
        vec![Effect::SendAck(0), Effect::KeepBest, Effect::SendBest]
    );
    assert_eq!(s.t.best_kept, 1);
}

#[test]
fn upstream_cancel_before_any_provisional_answers_487_at_once() {
    let mut s = Sim::new(Kind::Invite, 1);
    assert_eq!(s.cancel(100), vec![Effect::SendBest]);
    assert_eq!((s.t.best_code, s.t.best_kept), (487, 0));
}

#[test]
fn failure_route_then_new_branch_then_its_reply() {
    let mut s = Sim::new(Kind::Invite, 1);
    s.t.on_failure = 2;
    let fx = s.reply(10, 0, 486);
    assert_eq!(
        fx,
        vec![
            Effect::SendAck(0),
            Effect::KeepBest,
            Effect::FailureRoute(2)
        ]
    );
    assert_eq!(s.t.on_failure, 0, "disarmed until armed again");
    // The route adds a branch and arms itself again.
    s.t.on_failure = 2;
    s.add_branch(20);
    assert!(s.failure_done(20, true).is_empty());
    let fx = s.reply(30, 1, 404);
    assert_eq!(fx, vec![Effect::SendAck(1), Effect::FailureRoute(2)]);
    // This time it does nothing: the best reply (486, the first of class 4)
    // goes upstream.
    assert_eq!(s.failure_done(40, false), vec![Effect::SendBest]);
    assert_eq!(s.t.reply_code, 486);
}

#[test]
fn a_failure_route_that_starts_nothing_is_not_rerun() {
    let mut s = Sim::new(Kind::Invite, 1);
    s.t.on_failure = 1;
    s.reply(10, 0, 486);
    // It armed itself again but relayed nothing: the 486 goes up.
    s.t.on_failure = 1;
    assert_eq!(s.failure_done(20, false), vec![Effect::SendBest]);
}

#[test]
fn a_branch_ending_while_failure_route_runs_waits_for_it() {
    let mut s = Sim::new(Kind::Invite, 1);
    s.t.on_failure = 1;
    s.reply(10, 0, 486);
    // The route starts a branch that fails before the route returns.
    s.add_branch(20);
    assert_eq!(s.reply(30, 1, 404), vec![Effect::SendAck(1)]);
    s.t.on_failure = 1;
    assert_eq!(s.failure_done(40, true), vec![Effect::FailureRoute(1)]);
}

#[test]
fn t_reply_in_failure_route_is_not_followed_by_the_best() {
    let mut s = Sim::new(Kind::Invite, 1);
    s.t.on_failure = 1;
    s.reply(10, 0, 486);
    let fx = s.t.on_t_reply(302, 20, &T).map(|f| f.to_vec());
    assert_eq!(fx, Some(vec![Effect::SendLocal]));
    assert!(s.failure_done(20, false).is_empty());
    assert_eq!(s.t.reply_code, 302);
}

#[test]
fn t_reply_sends_and_keeps_one_final_reply() {
    let mut s = Sim::new(Kind::NonInvite, 0);
    let fx = s.t.on_t_reply(180, 10, &T).map(|f| f.to_vec());
    assert_eq!(fx, Some(vec![Effect::SendLocal]), "a provisional one");
    let fx = s.t.on_t_reply(404, 20, &T).map(|f| f.to_vec());
    assert_eq!(fx, Some(vec![Effect::SendLocal]), "then the final one");
    assert!(
        s.t.on_t_reply(500, 30, &T).is_none(),
        "no second final reply"
    );
    assert_eq!(s.t.reply_code, 404);
}

#[test]
fn after_t_newtran_the_stored_request_is_replaced_until_a_branch_starts() {
    let mut s = Sim::new(Kind::Invite, 0);
    assert!(s.t.request_replaceable());
    s.add_branch(10);
    assert!(!s.t.request_replaceable(), "a branch was built from it");
}

#[test]
fn a_local_ending_beats_a_kept_reply_of_a_worse_class() {
    let mut s = Sim::new(Kind::Invite, 2);
    s.reply(10, 0, 180);
    s.reply(20, 0, 500);
    assert_eq!(s.t.best_kept, 1);
    s.run(20, 30_000);
    // Branch 1 timed out: 408 beats 500, and no text is kept for it.
    assert_eq!(s.t.best_code, 408);
    assert_eq!(s.t.best_branch, 1);
    assert_ne!(s.t.best_kept, s.t.best_branch + 1);
}

#[test]
fn reply_selection_order() {
    assert!(better(404, 0));
    assert!(better(302, 404));
    assert!(!better(404, 302));
    assert!(better(603, 302));
    assert!(!better(302, 603));
    assert!(!better(486, 404));
    assert!(better(408, 500));
}

#[test]
fn retransmission_before_any_reply_is_absorbed_silently() {
    let s = Sim::new(Kind::NonInvite, 1);
    assert_eq!(s.t.on_retransmission(), None);
}

#[test]
fn a_chosen_503_goes_upstream_as_500() {
    let mut s = Sim::new(Kind::Invite, 1);
    let fx = s.reply(10, 0, 503);
    assert_eq!(
        fx,
        vec![Effect::SendAck(0), Effect::KeepBest, Effect::SendBest]
    );
    // §16.7 step 6: a local 500, not the kept 503's text.
    assert_eq!(s.t.best_code, 500);
    assert!(!s.t.best_text_kept());
}

#[test]
fn an_invite_is_answered_100_at_creation_unless_auto_inv_100_is_off() {
    let mut fx = Effects::new();
    let mut t = Txn::new(Kind::Invite, 0, &T);
    t.on_created(true, 0, &T, &mut fx);
    assert_eq!(fx.as_slice(), &[Effect::ResendReply]);
    assert_eq!(t.reply_code, 100);
    let mut fx = Effects::new();
    let mut off = Txn::new(Kind::Invite, 0, &T);
    off.on_created(false, 0, &T, &mut fx);
    assert!(fx.is_empty());
    let mut msg = Txn::new(Kind::NonInvite, 0, &T);
    msg.on_created(true, 0, &T, &mut fx);
    assert!(fx.is_empty(), "only INVITEs");
}

#[test]
fn only_a_late_2xx_to_an_invite_goes_upstream() {
    assert!(Txn::late_reply_forwarded(true, 200));
    assert!(!Txn::late_reply_forwarded(true, 486));
    assert!(!Txn::late_reply_forwarded(true, 180));
    assert!(!Txn::late_reply_forwarded(false, 200));
}

#[test]
fn a_branch_silent_until_fr_timer_is_reported_silent_and_a_ringing_one_is_not() {
    let mut s = Sim::new(Kind::Invite, 2);
    s.reply(10, 1, 180);
    s.run(0, 125_000);
    // Branch 0 never answered (the blocklist's case); branch 1 rang and
    // timed out on fr_inv_timer: an unanswered call, not a dead address.
    assert_eq!(s.times_of(Effect::Silent(0)), vec![30_000]);
    assert!(s.times_of(Effect::Silent(1)).is_empty());
}
