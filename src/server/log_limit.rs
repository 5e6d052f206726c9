//! Warnings that overload repeats per message (a full table) are logged at
//! most once a second per process, with how many were held back, so a
//! flood cannot flood the log too; the counters still count every one.

use std::net::IpAddr;

/// One warning's limiter.
#[derive(Debug, Default)]
pub struct LogLimit {
    next_ms: u64,
    held: u64,
}

impl LogLimit {
    /// Whether to log now (`now_ms` monotonic); `Some(n)`: log, saying `n`
    /// were held back since the last one.
    pub fn allow(&mut self, now_ms: u64) -> Option<u64> {
        if now_ms < self.next_ms {
            self.held += 1;
            return None;
        }
        self.next_ms = now_ms + 1000;
        Some(std::mem::take(&mut self.held))
    }
}

/// Sources a [`PerSource`] tells apart at once (direct-mapped by a hash
/// of the address: a flood from many addresses shares entries, which only
/// logs more).
const SOURCES: usize = 256;

/// One warning's limiter per source address: at most one line a second
/// for each, with how many were held back.
#[derive(Debug)]
pub struct PerSource {
    entries: Box<[(Option<IpAddr>, LogLimit)]>,
}

impl Default for PerSource {
    fn default() -> Self {
        PerSource {
            entries: (0..SOURCES).map(|_| (None, LogLimit::default())).collect(),
        }
    }
}

impl PerSource {
    /// As [`LogLimit::allow`], for `source`.
    pub fn allow(&mut self, source: IpAddr, now_ms: u64) -> Option<u64> {
        let key = match source {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        let i = (xxhash_rust::xxh3::xxh3_64(&key.to_le_bytes()) % SOURCES as u64) as usize;
        let (who, limit) = &mut self.entries[i];
        if *who != Some(source) {
            // A new source takes the entry over, with a clean count.
            *who = Some(source);
            *limit = LogLimit::default();
        }
        limit.allow(now_ms)
    }
}

/// ", N more not logged" when some were held back.
pub fn held_text(n: u64) -> String {
    match n {
        0 => String::new(),
        n => format!(" ({n} more not logged)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_a_second_with_the_count_held_back() {
        let mut l = LogLimit::default();
        assert_eq!(l.allow(5_000), Some(0));
        assert_eq!(l.allow(5_100), None);
        assert_eq!(l.allow(5_999), None);
        assert_eq!(l.allow(6_000), Some(2));
        assert_eq!(held_text(2), " (2 more not logged)");
        assert_eq!(held_text(0), "");
    }

    #[test]
    fn per_source_each_address_once_a_second() {
        let (a, b) = ("192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap());
        let mut l = PerSource::default();
        assert_eq!(l.allow(a, 1_000), Some(0));
        assert_eq!(l.allow(b, 1_000), Some(0), "another source logs too");
        assert_eq!(l.allow(a, 1_500), None);
        assert_eq!(l.allow(a, 2_000), Some(1));
    }
}
