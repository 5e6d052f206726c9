//! HdrHistogram's percentile-distribution text (`.hgrm`), values in ms.
//!
//! The rows already are the distribution HdrHistogram's own plotter draws,
//! so they become the series' points unchanged.

use super::{Series, is_monotonic};

pub fn parse(name: &str, text: &str) -> Result<Vec<Series>, String> {
    let mut points: Vec<(f64, f64)> = Vec::new();
    let mut last_count: Option<(u64, usize)> = None;
    let mut footer_max: Option<f64> = None;
    let mut footer_count: Option<u64> = None;

    for (index, raw) in text.lines().enumerate() {
        let lineno = index + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(footer) = line.strip_prefix("#[") {
            read_footer(footer, lineno, &mut footer_max, &mut footer_count)?;
            continue;
        }
        // Other comments, and the column header, carry no data.
        if line.starts_with('#') || line.starts_with("Value") {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        // The 4th column, 1/(1-p), is derived from the 2nd and missing or
        // "inf" on the last row, so it is not read.
        if !(3..=4).contains(&fields.len()) {
            return Err(format!(
                "line {lineno}: expected `value percentile total-count [1/(1-p)]`, got {} columns",
                fields.len()
            ));
        }
        let value = number(fields[0], "value", lineno)?;
        let percentile = number(fields[1], "percentile", lineno)?;
        if !(0.0..=1.0).contains(&percentile) {
            return Err(format!(
                "line {lineno}: percentile {percentile} is outside 0..1"
            ));
        }
        let count: u64 = fields[2].parse().map_err(|_| {
            format!(
                "line {lineno}: total count `{}` is not a whole number",
                fields[2]
            )
        })?;
        if !is_monotonic(points.last().copied(), (percentile, value))
            || last_count.is_some_and(|(c, _)| count < c)
        {
            return Err(format!(
                "line {lineno}: rows must not decrease in value, percentile or count"
            ));
        }
        points.push((percentile, value));
        last_count = Some((count, lineno));
    }

    let Some((row_count, _)) = last_count else {
        // rser-bench writes an empty histogram as the header and a footer
        // with `Total count = 0`; that run keeps a row in the table.
        if footer_count == Some(0) {
            return Ok(vec![Series {
                label: name.to_string(),
                count: 0,
                points: Vec::new(),
            }]);
        }
        return Err("no percentile rows found (is this HdrHistogram percentile output?)".into());
    };
    // A writer that stops short of the 100% row still gives the maximum in
    // the footer; adding it keeps the table's max column filled.
    if let (Some(max), Some(&(last_p, last_v))) = (footer_max, points.last())
        && last_p < 1.0
        && max >= last_v
    {
        points.push((1.0, max));
    }
    Ok(vec![Series {
        label: name.to_string(),
        count: footer_count.unwrap_or(row_count),
        points,
    }])
}

/// `#[Key = value, Key = value]`: only Max and Total count matter.
fn read_footer(
    footer: &str,
    lineno: usize,
    max: &mut Option<f64>,
    count: &mut Option<u64>,
) -> Result<(), String> {
    let body = footer.trim_end().strip_suffix(']').unwrap_or(footer);
    for pair in body.split(',') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "Max" => *max = Some(number(value, "Max", lineno)?),
            "Total count" => {
                *count = Some(value.parse().map_err(|_| {
                    format!("line {lineno}: Total count `{value}` is not a whole number")
                })?)
            }
            _ => {}
        }
    }
    Ok(())
}

/// A finite, non-negative number; latencies and percentiles are never
/// negative and NaN would poison every comparison after it.
fn number(field: &str, what: &str, lineno: usize) -> Result<f64, String> {
    match field.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "line {lineno}: {what} `{field}` is not a non-negative number"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "       Value     Percentile TotalCount 1/(1-Percentile)

       0.051 0.000000000000          1           1.00
       0.120 0.500000000000       5012           2.00
       0.180 0.900000000000       9001          10.00
       0.400 0.990625000000       9907         106.67
       1.100 0.999023437500       9991        1024.00
       4.211 1.000000000000      10000
#[Mean    =        0.132, StdDeviation   =        0.087]
#[Max     =        4.211, Total count    =        10000]
#[Buckets =           22, SubBuckets     =         2048]
";

    #[test]
    fn parses_rows_and_footer() {
        let s = &parse("a.hgrm", SAMPLE).unwrap()[0];
        assert_eq!(s.label, "a.hgrm");
        assert_eq!(s.count, 10000);
        assert_eq!(s.points.len(), 6);
        assert_eq!(s.percentile(0.5), Some(0.120));
        assert_eq!(s.percentile(0.9), Some(0.180));
        assert_eq!(s.percentile(0.99), Some(0.400));
        assert_eq!(s.percentile(0.999), Some(1.100));
        assert_eq!(s.percentile(1.0), Some(4.211));
    }

    #[test]
    fn accepts_inf_in_last_column_and_no_footer() {
        let text = "0.1 0.0 1 1.00\n0.5 1.0 4 inf\n";
        let s = &parse("b.hgrm", text).unwrap()[0];
        assert_eq!(s.count, 4);
        assert_eq!(s.percentile(1.0), Some(0.5));
    }

    #[test]
    fn footer_max_completes_a_series_without_the_100_percent_row() {
        let text = "0.1 0.0 1 1.00\n0.2 0.5 2 2.00\n#[Max = 3.5, Total count = 4]\n";
        let s = &parse("c.hgrm", text).unwrap()[0];
        assert_eq!(s.count, 4);
        assert_eq!(s.percentile(1.0), Some(3.5));
    }

    #[test]
    fn rejects_bad_rows_with_their_line_number() {
        let bad_number = SAMPLE.replace("0.180 0.9", "0.1x0 0.9");
        let e = parse("a.hgrm", &bad_number).unwrap_err();
        assert!(e.starts_with("line 5: value `0.1x0`"), "{e}");

        let decreasing = SAMPLE.replace("0.400 0.99", "0.100 0.99");
        let e = parse("a.hgrm", &decreasing).unwrap_err();
        assert!(e.starts_with("line 6: "), "{e}");

        let e = parse("a.hgrm", "0.1 0.0 1\n0.2 1.5 2\n").unwrap_err();
        assert!(e.starts_with("line 2: percentile"), "{e}");

        let e = parse("a.hgrm", "0.1 0.0\n").unwrap_err();
        assert!(e.starts_with("line 1: expected"), "{e}");

        let e = parse("a.hgrm", "0.1 0.0 1\n#[Max = big]\n").unwrap_err();
        assert!(e.starts_with("line 2: Max"), "{e}");
    }

    #[test]
    fn empty_histogram_is_a_series_without_points() {
        let text = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n\
                    #[Mean    =        0.000, StdDeviation   =        0.000]\n\
                    #[Max     =        0.000, Total count    =            0]\n";
        let s = &parse("e.hgrm", text).unwrap()[0];
        assert_eq!((s.count, s.points.len()), (0, 0));
    }

    #[test]
    fn rejects_text_without_rows() {
        assert!(parse("a.hgrm", "").is_err());
        assert!(parse("a.hgrm", "# nothing here\n").is_err());
    }
}
