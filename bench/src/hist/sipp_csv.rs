//! sipp's `-trace_rtt` dump (`<scenario>_<pid>_rtt.csv`).
//!
//! sipp (src/stat.cpp, `CStat::dumpDataRtt`) writes a header
//! `Date_ms;response_time_ms;rtd_no` and then one line per measured
//! response time: `date;rtt;rtd`, with the rtt in milliseconds as a C++
//! stream prints a double (6 significant digits) and the rtd as the name of
//! the scenario's response-time counter (older releases wrote its number).
//! `;` is only the default of sipp's `-stat_delimiter`, so the delimiter is
//! taken from the header.
//!
//! Raw samples are binned into an HdrHistogram, so that the table and the
//! plot are computed the same way as rser-bench's own `.hgrm` output.

use hdrhistogram::Histogram;

use super::{Series, TABLE_PERCENTILES};

/// Same resolution as rser-bench's histograms: 3 significant digits.
const SIGFIGS: u8 = 3;
/// HdrHistogram's customary step for percentile output (its Java
/// `outputPercentileDistribution` default): 5 rows per halving towards 100%.
const TICKS_PER_HALF_DISTANCE: u32 = 5;
/// i64::MAX µs, HdrHistogram's largest trackable value, in ms.
const MAX_RTT_MS: f64 = 9.2e15;

pub fn parse(name: &str, text: &str) -> Result<Vec<Series>, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let Some((header_line, header)) = lines.next() else {
        return Err("empty file (expected sipp -trace_rtt output)".into());
    };
    let delimiter = header_delimiter(header).ok_or_else(|| {
        format!(
            "line {header_line}: expected the sipp -trace_rtt header \
             `Date_ms;response_time_ms;rtd_no`"
        )
    })?;

    // In order of first appearance, so the output follows the scenario.
    let mut by_rtd: Vec<(String, Histogram<u64>)> = Vec::new();
    for (lineno, line) in lines {
        // Files concatenated from several runs repeat the header.
        if line == header {
            continue;
        }
        let mut fields = line.splitn(3, delimiter);
        let (Some(date), Some(rtt), Some(rtd)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!(
                "line {lineno}: expected `date{delimiter}response_time{delimiter}rtd`"
            ));
        };
        if date.trim().parse::<f64>().is_err() {
            return Err(format!("line {lineno}: date `{date}` is not a number"));
        }
        let rtt_ms = match rtt.trim().parse::<f64>() {
            // The cap (~292 years) keeps µs within HdrHistogram's range;
            // beyond it the float-to-int conversion would silently saturate.
            Ok(v) if v.is_finite() && (0.0..MAX_RTT_MS).contains(&v) => v,
            _ => {
                return Err(format!(
                    "line {lineno}: response time `{rtt}` is not a number of ms in 0..{MAX_RTT_MS:e}"
                ));
            }
        };
        let rtd = rtd.trim();
        if rtd.is_empty() {
            return Err(format!("line {lineno}: empty rtd name"));
        }
        let index = match by_rtd.iter().position(|(n, _)| n == rtd) {
            Some(i) => i,
            None => {
                let h = Histogram::new(SIGFIGS).map_err(|e| format!("histogram: {e}"))?;
                by_rtd.push((rtd.to_string(), h));
                by_rtd.len() - 1
            }
        };
        let us = (rtt_ms * 1000.0).round() as u64;
        by_rtd[index]
            .1
            .record(us)
            .map_err(|e| format!("line {lineno}: cannot record {rtt_ms} ms: {e:?}"))?;
    }
    if by_rtd.is_empty() {
        return Err("no response-time samples after the header".into());
    }

    let several = by_rtd.len() > 1;
    Ok(by_rtd
        .into_iter()
        .map(|(rtd, h)| Series {
            label: if several {
                format!("{name}:{rtd}")
            } else {
                name.to_string()
            },
            count: h.len(),
            points: distribution(&h),
        })
        .collect())
}

/// The delimiter between `Date_ms`, `response_time_ms` and `rtd_no`; the
/// same one must separate both pairs of names.
fn header_delimiter(header: &str) -> Option<&str> {
    let (first, rest) = header
        .strip_prefix("Date_ms")?
        .split_once("response_time_ms")?;
    let second = rest.strip_suffix("rtd_no")?;
    (!first.is_empty() && first == second).then_some(first)
}

/// The percentile curve in ms. The iteration rows alone rarely land on
/// 99% or 99.9% exactly, so the table's percentiles are added as exact
/// points; both are HdrHistogram values, so the curve stays monotonic.
fn distribution(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let ms = |us: u64| us as f64 / 1000.0;
    let mut points: Vec<(f64, f64)> = h
        .iter_quantiles(TICKS_PER_HALF_DISTANCE)
        .map(|v| (v.quantile_iterated_to(), ms(v.value_iterated_to())))
        .collect();
    points.extend(
        TABLE_PERCENTILES
            .iter()
            .map(|&(p, _)| (p, ms(h.value_at_quantile(p)))),
    );
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    points.dedup();
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1000 samples of 1.000..=1.999 ms on one rtd.
    fn uniform(rtd: &str) -> String {
        let mut text = String::from("Date_ms;response_time_ms;rtd_no\n");
        for i in 0..1000 {
            text.push_str(&format!(
                "{}.5;{};{rtd}\n",
                1_700_000_000_000u64 + i,
                1.0 + i as f64 / 1000.0
            ));
        }
        text
    }

    #[test]
    fn one_rtd_gives_one_series_named_after_the_file() {
        let series = parse("uac_42_rtt.csv", &uniform("1")).unwrap();
        assert_eq!(series.len(), 1);
        let s = &series[0];
        assert_eq!((s.label.as_str(), s.count), ("uac_42_rtt.csv", 1000));
        // 3 significant digits in µs: 1000..1999 µs are all exact.
        assert_eq!(s.percentile(0.5), Some(1.499));
        assert_eq!(s.percentile(0.9), Some(1.899));
        assert_eq!(s.percentile(0.99), Some(1.989));
        assert_eq!(s.percentile(0.999), Some(1.998));
        assert_eq!(s.percentile(1.0), Some(1.999));
        assert!(s.points.len() > 20, "plot needs the full distribution");
        assert!(
            s.points
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1)
        );
    }

    #[test]
    fn several_rtds_give_one_series_each() {
        let text = "Date_ms;response_time_ms;rtd_no\n\
                    1.0;0.5;invite\n\
                    2.0;1.5;register\n\
                    3.0;0.7;invite\n";
        let series = parse("x_rtt.csv", text).unwrap();
        let labels: Vec<&str> = series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["x_rtt.csv:invite", "x_rtt.csv:register"]);
        assert_eq!(series[0].count, 2);
        assert_eq!(series[0].percentile(1.0), Some(0.7));
    }

    #[test]
    fn delimiter_comes_from_the_header() {
        let text = "Date_ms,response_time_ms,rtd_no\r\n1.0,0.25,1\r\n";
        let s = &parse("c_rtt.csv", text).unwrap()[0];
        assert_eq!(s.percentile(0.5), Some(0.25));
    }

    #[test]
    fn malformed_lines_are_rejected_with_their_number() {
        let e = parse("r.csv", "time;rtt\n").unwrap_err();
        assert!(e.starts_with("line 1: expected the sipp"), "{e}");
        let e = parse(
            "r.csv",
            "Date_ms;response_time_ms;rtd_no\n1;2;1\n1;oops;1\n",
        )
        .unwrap_err();
        assert!(e.starts_with("line 3: response time `oops`"), "{e}");
        let e = parse("r.csv", "Date_ms;response_time_ms;rtd_no\n\n1;-2;1\n").unwrap_err();
        assert!(e.starts_with("line 3: "), "{e}");
        let e = parse("r.csv", "Date_ms;response_time_ms;rtd_no\n1;1e300;1\n").unwrap_err();
        assert!(e.starts_with("line 2: response time"), "{e}");
        let e = parse("r.csv", "Date_ms;response_time_ms;rtd_no\n1;2\n").unwrap_err();
        assert!(e.starts_with("line 2: expected"), "{e}");
        assert!(parse("r.csv", "Date_ms;response_time_ms;rtd_no\n").is_err());
        assert!(parse("r.csv", "").is_err());
    }
}
