//! What a run reports: the JSON summary and the full latency distribution
//! in HdrHistogram's percentile-distribution text (`.hgrm`), values in
//! milliseconds, as HdrHistogram's own tools and plotters read it.

use std::fmt::Write;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::driver::Stats;

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub max: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        let q = |p: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(p)
            }
        };
        Latency {
            count: h.len(),
            mean: (h.mean() * 10.0).round() / 10.0,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p99_9: q(0.999),
            max: h.max(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    pub rate: f64,
    pub sent: u64,
    pub completed: u64,
    pub failed: u64,
    pub retransmitted: u64,
    pub generator_limited: bool,
    pub clean: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub target: String,
    pub uas: String,
    /// Requests each UAS destination received (`--uas-count`), in port
    /// order: how a load balancer spread them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uas_requests: Vec<u64>,
    pub peers: usize,
    pub loss_pct: f64,
    pub rate: f64,
    pub duration_s: f64,
    /// The driver's counts, as top-level fields (`started` as `sent`).
    #[serde(flatten)]
    pub stats: Stats,
    /// Completed units per second of sending time.
    pub achieved_rate: f64,
    /// Fewer units were started than the rate asked for: the generator, not
    /// the proxy, was the limit.
    pub generator_limited: bool,
    pub latency_us: Latency,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clean_rate: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<Trial>,
}

/// Whether a run started what it was asked to: within 1% (pacing rounds).
pub fn generator_limited(stats: &Stats, rate: f64, secs: f64) -> bool {
    (stats.started as f64) < rate * secs * 0.99 - 1.0
}

/// The `.hgrm` text: HdrHistogram's percentile distribution, values
/// (recorded in µs) scaled to milliseconds.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let p = v.quantile_iterated_to();
            let ms = v.value_iterated_to() as f64 / 1000.0;
            if p < 1.0 {
                let _ = writeln!(
                    out,
                    "{ms:12.3} {p:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - p)
                );
            } else {
                let _ = writeln!(out, "{ms:12.3} {p:2.12} {total:10}");
            }
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / 1000.0,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        h.distinct_values()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hgrm_lists_the_distribution_in_ms() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 10).unwrap();
        }
        let text = hgrm(&h);
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.contains("Value"))
            .collect();
        let last: Vec<&str> = rows.last().unwrap().split_whitespace().collect();
        assert_eq!(
            last[0], "10.007",
            "the highest value equivalent to 10 ms at 3 digits"
        );
        assert_eq!(last[2], "1000");
        assert!(text.contains("Total count    =         1000"));
        let l = Latency::of(&h);
        assert!((4990..=5010).contains(&l.p50), "{}", l.p50);
        assert!((10_000..=10_010).contains(&l.max), "{}", l.max);
    }
}
