//! The search for the highest clean rate: the rate doubles while trials
//! are clean, halves while they are not, then bisects between the best
//! clean and the lowest unclean rate until they are within `precision`.

pub struct Search {
    best_clean: Option<f64>,
    lowest_unclean: Option<f64>,
    precision: f64,
    trials_left: u32,
}

impl Search {
    pub fn new(precision: f64, max_trials: u32) -> Search {
        Search {
            best_clean: None,
            lowest_unclean: None,
            precision,
            trials_left: max_trials,
        }
    }

    /// Records a trial; returns the next rate to try, or None when done.
    pub fn record(&mut self, rate: f64, clean: bool) -> Option<f64> {
        self.trials_left = self.trials_left.saturating_sub(1);
        if clean {
            self.best_clean = Some(self.best_clean.map_or(rate, |b| b.max(rate)));
        } else {
            self.lowest_unclean = Some(self.lowest_unclean.map_or(rate, |u| u.min(rate)));
        }
        if self.trials_left == 0 {
            return None;
        }
        let next = match (self.best_clean, self.lowest_unclean) {
            (Some(lo), Some(hi)) => {
                if hi <= lo * (1.0 + self.precision) {
                    return None;
                }
                (lo + hi) / 2.0
            }
            (Some(lo), None) => lo * 2.0,
            (None, Some(hi)) => hi / 2.0,
            (None, None) => unreachable!("a trial was just recorded"),
        };
        // Below one transaction a second nothing is clean: give up.
        (next >= 1.0).then_some(next.round())
    }

    pub fn clean_rate(&self) -> Option<f64> {
        self.best_clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(limit: f64, start: f64) -> (Option<f64>, u32) {
        let mut s = Search::new(0.05, 30);
        let mut rate = start;
        let mut trials = 0;
        loop {
            trials += 1;
            match s.record(rate, rate <= limit) {
                Some(r) => rate = r,
                None => return (s.clean_rate(), trials),
            }
        }
    }

    #[test]
    fn finds_the_limit_within_the_precision() {
        let (found, trials) = run(7_300.0, 500.0);
        let found = found.unwrap();
        assert!((7_300.0 / 1.05..=7_300.0).contains(&found), "{found}");
        assert!(trials < 15, "{trials}");
    }

    #[test]
    fn goes_down_when_the_start_is_too_high() {
        let (found, _) = run(300.0, 5_000.0);
        let found = found.unwrap();
        assert!((300.0 / 1.05..=300.0).contains(&found), "{found}");
    }

    #[test]
    fn nothing_clean_gives_none() {
        assert_eq!(run(0.0, 100.0).0, None);
    }
}
