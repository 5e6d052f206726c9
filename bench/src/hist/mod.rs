//! `rser-hist`: compares latency distributions from several runs.
//!
//! Each input format has its own parser that turns file *text* into
//! [`Series`]; keeping the parsers free of I/O lets the unit tests feed them
//! strings. [`load`] does the file handling and picks the parser by file
//! extension, [`table`] renders the side-by-side percentile table and
//! [`plot`] draws the chart.

pub mod axis;
pub mod font;
pub mod hgrm;
pub mod plot;
pub mod report;
pub mod sipp_csv;

use std::path::Path;

/// One latency distribution: a percentile → latency curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Shown in the table and the plot legend.
    pub label: String,
    /// Number of samples behind the distribution.
    pub count: u64,
    /// `(percentile in 0..=1, latency in ms)`, sorted by percentile and
    /// non-decreasing in latency. A point at percentile 1.0 is the maximum.
    pub points: Vec<(f64, f64)>,
}

/// Slack for comparing percentiles: the inputs print percentiles with a
/// fixed number of decimals and HdrHistogram computes its iteration levels
/// in floating point, so a level meant as 0.9 may arrive as 0.8999999999999999.
const PERCENTILE_EPSILON: f64 = 1e-9;

impl Series {
    /// The latency at percentile `p` (0..=1): the smallest recorded value
    /// whose percentile is at least `p`, as HdrHistogram defines it. `None`
    /// when the series does not reach `p` (no samples, or a truncated file).
    pub fn percentile(&self, p: f64) -> Option<f64> {
        self.points
            .iter()
            .find(|&&(q, _)| q >= p - PERCENTILE_EPSILON)
            .map(|&(_, ms)| ms)
    }
}

/// The table's columns: percentile and header.
pub const TABLE_PERCENTILES: [(f64, &str); 5] = [
    (0.5, "p50"),
    (0.9, "p90"),
    (0.99, "p99"),
    (0.999, "p99.9"),
    (1.0, "max"),
];

/// Reads `path` and parses it according to its extension. Errors are one
/// line, start with the path and, where it makes sense, the line number.
pub fn load(path: &Path) -> Result<Vec<Series>, String> {
    let shown = path.display();
    let parser: fn(&str, &str) -> Result<Vec<Series>, String> = match extension(path).as_deref() {
        Some("hgrm") => hgrm::parse,
        Some("json") => report::parse,
        Some("csv") => sipp_csv::parse,
        _ => {
            return Err(format!(
                "{shown}: unknown file type (expected .hgrm, .json or .csv)"
            ));
        }
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| shown.to_string());
    parser(&name, &text).map_err(|e| format!("{shown}: {e}"))
}

/// Lower-cased extension, so `RUN.HGRM` is accepted too.
pub fn extension(path: &Path) -> Option<String> {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
}

/// The side-by-side table: one row per series, latencies in ms with three
/// decimals (microsecond resolution, which is what the inputs carry).
pub fn table(series: &[Series]) -> String {
    let label_width = series
        .iter()
        .map(|s| s.label.chars().count())
        .chain(std::iter::once("label".len()))
        .max()
        .unwrap_or(0);
    let mut out = format!("{:<label_width$} {:>10}", "label", "count");
    for (_, name) in TABLE_PERCENTILES {
        out.push_str(&format!(" {:>10}", format!("{name}(ms)")));
    }
    out.push('\n');
    for s in series {
        out.push_str(&format!("{:<label_width$} {:>10}", s.label, s.count));
        for (p, _) in TABLE_PERCENTILES {
            match s.percentile(p) {
                Some(ms) => out.push_str(&format!(" {ms:>10.3}")),
                // Missing rather than 0: a zero would read as a real latency.
                None => out.push_str(&format!(" {:>10}", "-")),
            }
        }
        out.push('\n');
    }
    out
}

/// Shared by the parsers: a series' points must rise in both coordinates,
/// otherwise the percentile lookup (first point at or above) is meaningless.
fn is_monotonic(prev: Option<(f64, f64)>, next: (f64, f64)) -> bool {
    prev.is_none_or(|(p, v)| next.0 >= p && next.1 >= v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> Series {
        Series {
            label: "a.hgrm".into(),
            count: 10,
            points: vec![
                (0.0, 1.0),
                (0.5, 2.0),
                (0.8999999999999999, 3.0),
                (1.0, 9.0),
            ],
        }
    }

    #[test]
    fn percentile_takes_first_point_at_or_above() {
        let s = series();
        assert_eq!(s.percentile(0.0), Some(1.0));
        assert_eq!(s.percentile(0.3), Some(2.0));
        assert_eq!(s.percentile(0.5), Some(2.0));
        // Floating-point noise in the level must not skip to the next row.
        assert_eq!(s.percentile(0.9), Some(3.0));
        assert_eq!(s.percentile(0.99), Some(9.0));
        assert_eq!(s.percentile(1.0), Some(9.0));
    }

    #[test]
    fn percentile_beyond_the_data_is_none() {
        let mut s = series();
        s.points.pop();
        assert_eq!(s.percentile(0.99), None);
        s.points.clear();
        assert_eq!(s.percentile(0.5), None);
    }

    #[test]
    fn table_aligns_rows_and_marks_missing_values() {
        let mut short = series();
        short.label = "b.json:call".into();
        short.points.truncate(2);
        let t = table(&[series(), short]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("label      "));
        assert!(lines[0].contains("p99.9(ms)"));
        assert!(lines[1].starts_with("a.hgrm "));
        assert!(lines[1].ends_with("9.000"));
        assert!(lines[1].contains(" 2.000 "));
        assert!(lines[2].ends_with(" -"));
        assert!(lines.iter().all(|l| l.len() == lines[0].len()));
    }

    #[test]
    fn unknown_extension_is_rejected_before_reading() {
        let e = load(Path::new("/nonexistent/run.txt")).unwrap_err();
        assert!(
            e.contains("run.txt") && e.contains("unknown file type"),
            "{e}"
        );
    }

    #[test]
    fn unreadable_file_names_the_path() {
        let e = load(Path::new("/nonexistent/run.hgrm")).unwrap_err();
        assert!(e.starts_with("/nonexistent/run.hgrm: cannot read"), "{e}");
    }
}
