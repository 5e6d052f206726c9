//! rser-bench's JSON report (`.json`): only `scenario` and `latency_us`
//! are read, everything else in the report is ignored.

use serde::Deserialize;

use super::{Series, is_monotonic};

#[derive(Deserialize)]
struct Report {
    scenario: Option<String>,
    latency_us: Latency,
}

#[derive(Deserialize)]
struct Latency {
    count: u64,
    p50: f64,
    p90: f64,
    p99: f64,
    p99_9: f64,
    max: f64,
}

pub fn parse(name: &str, text: &str) -> Result<Vec<Series>, String> {
    let report: Report = serde_json::from_str(text).map_err(|e| {
        // serde_json appends " at line L column C"; the line goes first
        // instead so that all parsers' errors read the same.
        let message = e.to_string();
        let message = match message.rfind(" at line ") {
            Some(at) => message[..at].to_string(),
            None => message,
        };
        format!("line {}: {message}", e.line())
    })?;
    let l = &report.latency_us;
    let label = match report.scenario.as_deref() {
        Some(scenario) if !scenario.is_empty() => format!("{name}:{scenario}"),
        _ => name.to_string(),
    };
    // A run with no successful transaction has nothing to plot; it keeps
    // its table row (count 0, no latencies) so that it is not silently lost.
    if l.count == 0 {
        return Ok(vec![Series {
            label,
            count: 0,
            points: Vec::new(),
        }]);
    }
    let fields = [
        (0.5, l.p50, "p50"),
        (0.9, l.p90, "p90"),
        (0.99, l.p99, "p99"),
        (0.999, l.p99_9, "p99_9"),
        (1.0, l.max, "max"),
    ];
    let mut points: Vec<(f64, f64)> = Vec::with_capacity(fields.len());
    for (p, us, field) in fields {
        let ms = us / 1000.0;
        if !ms.is_finite() || ms < 0.0 || !is_monotonic(points.last().copied(), (p, ms)) {
            // The values passed JSON parsing, so point at the object that
            // holds them rather than at line 1.
            return Err(format!(
                "line {}: latency_us.{field} = {us} is negative or below the previous percentile",
                line_of(text, "\"latency_us\"")
            ));
        }
        points.push((p, ms));
    }
    Ok(vec![Series {
        label,
        count: l.count,
        points,
    }])
}

/// 1-based line of the first occurrence of `needle`, or 1.
fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle)
        .map(|at| text[..at].matches('\n').count() + 1)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
  "scenario": "call",
  "rate": 500,
  "errors": {"timeouts": 0},
  "latency_us": {
    "count": 20000, "mean": 312.5,
    "p50": 250, "p90": 400, "p99": 900, "p99_9": 2000.5, "max": 5000
  },
  "extra": [1, 2, 3]
}"#;

    #[test]
    fn reads_latency_in_ms_and_ignores_other_fields() {
        let s = &parse("run.json", SAMPLE).unwrap()[0];
        assert_eq!(s.label, "run.json:call");
        assert_eq!(s.count, 20000);
        assert_eq!(s.percentile(0.5), Some(0.25));
        assert_eq!(s.percentile(0.9), Some(0.4));
        assert_eq!(s.percentile(0.99), Some(0.9));
        assert_eq!(s.percentile(0.999), Some(2.0005));
        assert_eq!(s.percentile(1.0), Some(5.0));
    }

    #[test]
    fn label_without_scenario_is_the_file_name() {
        let text = SAMPLE.replace(r#""scenario": "call","#, "");
        assert_eq!(parse("run.json", &text).unwrap()[0].label, "run.json");
    }

    #[test]
    fn empty_run_keeps_a_row_without_points() {
        let text =
            r#"{"latency_us": {"count": 0, "p50": 0, "p90": 0, "p99": 0, "p99_9": 0, "max": 0}}"#;
        let s = &parse("empty.json", text).unwrap()[0];
        assert_eq!((s.count, s.points.len()), (0, 0));
    }

    #[test]
    fn syntax_and_missing_fields_report_the_line() {
        let e = parse("run.json", "{\n  \"latency_us\": {,\n}").unwrap_err();
        assert!(e.starts_with("line 2: "), "{e}");
        let e = parse("run.json", &SAMPLE.replace(r#""p90": 400, "#, "")).unwrap_err();
        assert!(e.starts_with("line 8: missing field `p90`"), "{e}");
    }

    #[test]
    fn decreasing_percentiles_are_rejected() {
        let e = parse(
            "run.json",
            &SAMPLE.replace(r#""p99": 900"#, r#""p99": 300"#),
        )
        .unwrap_err();
        assert!(e.starts_with("line 5: latency_us.p99"), "{e}");
    }
}
