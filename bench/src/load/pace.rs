//! Pacing: a token bucket filled at the target rate. Its depth is a few
//! milliseconds of tokens, so poll jitter does not lose transactions, but a
//! generator that falls further behind drops the tokens instead of bursting
//! them all at once; the shortfall shows in the report as fewer sent than
//! asked for (`generator_limited`), never as a silent burst.

/// Time is in microseconds from the start of the run (an injected clock).
pub struct TokenBucket {
    per_us: f64,
    depth: f64,
    tokens: f64,
    last_us: u64,
}

impl TokenBucket {
    pub fn new(rate_per_s: f64, depth_ms: f64) -> TokenBucket {
        let per_us = rate_per_s / 1e6;
        TokenBucket {
            per_us,
            // At least two tokens, so a late wake-up keeps the part of a
            // token it overslept, and the first unit starts at once.
            depth: (per_us * depth_ms * 1000.0).max(2.0),
            tokens: 1.0,
            last_us: 0,
        }
    }

    /// How many transactions may start now; each taken token is spent.
    pub fn take(&mut self, now_us: u64) -> u32 {
        let dt = now_us.saturating_sub(self.last_us) as f64;
        self.last_us = now_us;
        self.tokens = (self.tokens + dt * self.per_us).min(self.depth);
        // The epsilon absorbs rounding: 0.2 + 0.8 tokens is one token.
        let n = (self.tokens + 1e-9).floor();
        self.tokens = (self.tokens - n).max(0.0);
        n as u32
    }

    /// Microseconds until the next token, from `now_us` after a `take`.
    pub fn wait_us(&self) -> u64 {
        if self.per_us <= 0.0 {
            return u64::MAX;
        }
        ((1.0 - self.tokens) / self.per_us).ceil().max(0.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_at_the_rate() {
        let mut b = TokenBucket::new(1000.0, 5.0);
        let mut total = b.take(0);
        for ms in 1..1000u64 {
            total += b.take(ms * 1000);
        }
        assert_eq!(total, 1000);
    }

    #[test]
    fn a_stall_loses_tokens_beyond_the_depth() {
        let mut b = TokenBucket::new(10_000.0, 2.0);
        // 100 ms without taking: only 2 ms worth (20) are kept.
        assert_eq!(b.take(0), 1);
        assert_eq!(b.take(100_000), 20);
        assert_eq!(b.take(100_100), 1);
    }

    #[test]
    fn low_rates_wait_for_whole_tokens() {
        let mut b = TokenBucket::new(2.0, 1.0);
        assert_eq!(b.take(0), 1);
        assert_eq!(b.take(100_000), 0);
        assert!((400_000..=400_001).contains(&b.wait_us()));
        assert_eq!(b.take(500_000), 1);
    }
}
