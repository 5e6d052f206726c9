//! Password guessing slowed down: failed authentications (a wrong
//! password, an unknown user) are counted per source address and per
//! user in shared memory (pike's table, a copy of its own); a source or
//! user with `failed_auth_limit` / `failed_auth_user_limit` failures in a
//! `failed_auth_window` has its next attempts refused with 403 without
//! their password being checked, even a right one, until it stays under
//! the limit for a whole window (it keeps itself refused by trying). Per
//! user, so that a guess spread over many addresses against one account
//! slows down too; that limit is above one address's (30 against 10 by
//! default), so a single guessing address is stopped before its target
//! is, and the owner still logs in from elsewhere. A guess from several
//! addresses does lock the account for a window or two (the trade-off of
//! any lockout; `failed_auth_user_limit` 0 turns it off).

use std::net::IpAddr;

use rser_shm::Carver;

use crate::modules::auth::Params;
use crate::modules::pike::table::{Counts, Limits, Source};

/// Which count refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    Source,
    User,
}

impl Over {
    pub fn text(self) -> &'static str {
        match self {
            Over::Source => "its source address",
            Over::User => "its user",
        }
    }
}

#[derive(Clone, Copy)]
pub struct Throttle {
    counts: Counts,
    source: Option<Limits>,
    user: Option<Limits>,
}

/// Sources and users whose failures are counted at once, at most.
pub const ENTRIES: usize = 16_384;

pub fn carve(carver: &mut Carver<'_>) -> Option<Counts> {
    Counts::carve(carver, ENTRIES)
}

fn limits(limit: u32, window: u64) -> Option<Limits> {
    (limit > 0).then(|| Limits {
        unit_ms: window * 1_000,
        // Refused once `limit` failures are counted.
        density: limit - 1,
        latency_ms: 2 * window * 1_000,
    })
}

fn user_key(user: &[u8], realm: &[u8]) -> Source {
    Source::named(&[user, realm])
}

impl Throttle {
    /// None when both counts are off.
    pub fn new(counts: Counts, p: &Params) -> Option<Throttle> {
        let t = Throttle {
            counts,
            source: limits(p.failed_limit, p.failed_window),
            user: limits(p.failed_user_limit, p.failed_window),
        };
        (t.source.is_some() || t.user.is_some()).then_some(t)
    }

    /// Whether an attempt from `src` as `user` is refused now.
    pub fn refused(&self, src: IpAddr, user: &[u8], realm: &[u8], now: u64) -> Option<Over> {
        if let Some(l) = &self.source
            && self.counts.is_hot(Source::of(src), l, now)
        {
            return Some(Over::Source);
        }
        if let Some(l) = &self.user
            && self.counts.is_hot(user_key(user, realm), l, now)
        {
            return Some(Over::User);
        }
        None
    }

    /// Counts a failure; what it put over its limit, if anything.
    pub fn failed(&self, src: IpAddr, user: &[u8], realm: &[u8], now: u64) -> Option<Over> {
        let by_source = self
            .source
            .is_some_and(|l| self.counts.hit(Source::of(src), &l, now).turned_hot);
        let by_user = self
            .user
            .is_some_and(|l| self.counts.hit(user_key(user, realm), &l, now).turned_hot);
        match (by_source, by_user) {
            (true, _) => Some(Over::Source),
            (false, true) => Some(Over::User),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(limit: u32, user_limit: u32) -> (rser_shm::Region, Throttle) {
        let r = rser_shm::Region::create(ENTRIES * Counts::bytes_per_entry() + (1 << 16)).unwrap();
        let counts = carve(&mut r.carver()).unwrap();
        let p = Params {
            failed_limit: limit,
            failed_user_limit: user_limit,
            failed_window: 60,
            ..Params::from_config(&crate::script::testing::config("route { drop; }"))
        };
        (r, Throttle::new(counts, &p).unwrap())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_is_refused_after_its_limit_then_forgiven() {
        let (_r, t) = throttle(3, 0);
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        assert_eq!(t.failed(a, b"alice", b"r", 1_000), None);
        assert_eq!(t.failed(a, b"bob", b"r", 2_000), None);
        assert_eq!(t.refused(a, b"alice", b"r", 2_000), None);
        assert_eq!(t.failed(a, b"carol", b"r", 3_000), Some(Over::Source));
        assert_eq!(t.refused(a, b"alice", b"r", 3_000), Some(Over::Source));
        // Another address, the same user: not refused (user count off).
        assert_eq!(t.refused(b, b"alice", b"r", 3_000), None);
        // Quiet for a whole window after the one it failed in: forgiven.
        assert_eq!(t.refused(a, b"alice", b"r", 119_000), Some(Over::Source));
        assert_eq!(t.refused(a, b"alice", b"r", 120_000), None);
    }

    #[test]
    fn one_user_guessed_from_many_addresses_is_refused() {
        let (_r, t) = throttle(10, 3);
        for (i, who) in ["10.0.0.1", "10.0.0.2", "10.0.0.3"].iter().enumerate() {
            let over = t.failed(ip(who), b"alice", b"example.com", 1_000 + i as u64);
            assert_eq!(over, (i == 2).then_some(Over::User));
        }
        assert_eq!(
            t.refused(ip("10.0.0.9"), b"alice", b"example.com", 5_000),
            Some(Over::User)
        );
        assert_eq!(
            t.refused(ip("10.0.0.9"), b"alice", b"other.com", 5_000),
            None
        );
        assert_eq!(
            t.refused(ip("10.0.0.9"), b"bob", b"example.com", 5_000),
            None
        );
    }
}
