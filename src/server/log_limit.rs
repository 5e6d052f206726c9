//! Warnings that overload repeats per message (a full table) are logged at
//! most once a second per process, with how many were held back, so a
//! flood cannot flood the log too; the counters still count every one.

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
}
