//! A client transaction started from outside (SER's FIFO `:t_uac_from:`
//! and `:t_uac_dlg:`, Kamailio's `tm.t_uac_wait`), its timers as pure code
//! on an injected clock. Non-INVITE: RFC 3261 §17.1.2.2's Timer E
//! retransmissions (T1 doubling up to T2, then every T2 once a provisional
//! came) until a final reply or Timer F (fr_timer). INVITE: §17.1.1.2's
//! Timer A (T1 doubling) until a provisional; no reply within fr_timer, or
//! no final within fr_inv_timer of the provisional (Kamailio's timers
//! standing for Timer B), ends it.

use super::Timers;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send the request (again) now.
    Send,
    /// Nothing to do before this time.
    Wait(u64),
    /// A final reply came.
    Done(u16),
    /// No final reply before Timer F: the transaction ends with a 408.
    TimedOut,
}

#[derive(Debug, Clone, Copy)]
pub struct Uac {
    retr_at: u64,
    interval: u64,
    t2: u64,
    deadline: u64,
    proceeding: bool,
    final_code: Option<u16>,
    /// INVITE: what fr_inv_timer allows once a provisional came.
    invite_wait: Option<u64>,
}

impl Uac {
    /// Started (and first sent) at `now`.
    pub fn new(now: u64, timers: &Timers) -> Uac {
        Uac {
            retr_at: now + timers.t1,
            interval: timers.t1,
            t2: timers.t2,
            deadline: now + timers.fr,
            proceeding: false,
            final_code: None,
            invite_wait: None,
        }
    }

    /// An INVITE started (and first sent) at `now`.
    pub fn invite(now: u64, timers: &Timers) -> Uac {
        Uac {
            t2: u64::MAX,
            invite_wait: Some(timers.fr_inv),
            ..Uac::new(now, timers)
        }
    }

    /// Whether a provisional reply came (an INVITE then needs a CANCEL
    /// to end it early, §9.1).
    pub fn proceeding(&self) -> bool {
        self.proceeding
    }

    /// A reply to the request.
    pub fn on_reply(&mut self, code: u16, now: u64) {
        if self.final_code.is_some() {
            return;
        }
        if code >= 200 {
            self.final_code = Some(code);
        } else if let (Some(wait), false) = (self.invite_wait, self.proceeding) {
            // §17.1.1.2: a provisional stops Timer A; fr_inv_timer runs.
            self.proceeding = true;
            self.retr_at = u64::MAX;
            self.deadline = now + wait;
        } else if !self.proceeding {
            // §17.1.2.2: in Proceeding, retransmit every T2.
            self.proceeding = true;
            self.interval = self.t2;
            self.retr_at = self.retr_at.min(now + self.t2);
        }
    }

    /// When `poll` next has something to do (now, if a final reply came),
    /// without doing it.
    pub fn due(&self) -> u64 {
        match self.final_code {
            Some(_) => 0,
            None => self.retr_at.min(self.deadline),
        }
    }

    /// What to do at `now`.
    pub fn poll(&mut self, now: u64) -> Step {
        if let Some(code) = self.final_code {
            return Step::Done(code);
        }
        if now >= self.deadline {
            return Step::TimedOut;
        }
        if now >= self.retr_at {
            self.interval = if self.proceeding {
                self.t2
            } else {
                (self.interval * 2).min(self.t2)
            };
            self.retr_at = now + self.interval;
            return Step::Send;
        }
        Step::Wait(self.retr_at.min(self.deadline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timers = Timers {
        t1: 500,
        t2: 4000,
        fr: 32_000,
        fr_inv: 120_000,
        wt: 5000,
    };

    #[test]
    fn timer_e_doubles_to_t2_and_timer_f_ends_it() {
        let mut u = Uac::new(0, &T);
        let mut sends = Vec::new();
        let mut now = 0;
        loop {
            match u.poll(now) {
                Step::Send => sends.push(now),
                Step::Wait(t) => now = t,
                Step::TimedOut => break,
                Step::Done(_) => unreachable!(),
            }
        }
        assert_eq!(&sends[..5], [500, 1500, 3500, 7500, 11500]);
        assert_eq!(now, 32_000);
    }

    #[test]
    fn an_invite_doubles_without_t2_until_a_provisional_then_waits_fr_inv() {
        let mut u = Uac::invite(0, &T);
        let mut sends = Vec::new();
        let mut now = 0;
        while now < 8000 {
            match u.poll(now) {
                Step::Send => sends.push(now),
                Step::Wait(t) => now = t,
                s => unreachable!("{s:?}"),
            }
        }
        assert_eq!(sends, [500, 1500, 3500, 7500]);
        u.on_reply(180, 8000);
        assert!(u.proceeding());
        assert_eq!(u.poll(8000), Step::Wait(128_000));
        assert_eq!(u.due(), 128_000);
        assert_eq!(u.poll(128_000), Step::TimedOut);
        // No reply at all: fr_timer ends it.
        let mut u = Uac::invite(0, &T);
        let mut now = 0;
        let end = loop {
            match u.poll(now) {
                Step::Send => {}
                Step::Wait(t) => now = t,
                s => break s,
            }
        };
        assert_eq!((end, now), (Step::TimedOut, 32_000));
    }

    #[test]
    fn a_provisional_slows_it_and_a_final_ends_it() {
        let mut u = Uac::new(0, &T);
        u.on_reply(100, 100);
        assert_eq!(u.poll(100), Step::Wait(500));
        assert_eq!(u.poll(500), Step::Send);
        assert_eq!(u.poll(501), Step::Wait(4500));
        u.on_reply(200, 600);
        u.on_reply(500, 700);
        assert_eq!(u.poll(700), Step::Done(200));
    }
}
