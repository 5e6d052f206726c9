//! The percentile axis, HdrHistogram style: x is log10(1/(1-p)), the
//! number of "nines", so 90%, 99%, 99.9%... are evenly spaced and the tail
//! gets the room it deserves.

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;

use super::Series;

/// The x axis always reaches 99.999%, where a JSON report's max is drawn.
const MIN_X_NINES: u32 = 5;
/// The percentile files print 12 decimals, so 1 - p is never below 1e-12.
const MAX_X_NINES: u32 = 12;

/// x coordinate of percentile `p` (0..=1); 100% has no finite position and
/// goes to the right edge.
pub fn x_of(p: f64, x_max: f64) -> f64 {
    if p >= 1.0 {
        x_max
    } else {
        (1.0 / (1.0 - p)).log10().clamp(0.0, x_max)
    }
}

/// Label of tick `nines`: 0 → "0%", 1 → "90%", 2 → "99%", 3 → "99.9%".
/// Built as text because `100 * (1 - 10^-n)` does not print cleanly.
pub fn tick_label(nines: u32) -> String {
    match nines {
        0 => "0%".into(),
        1 => "90%".into(),
        n => format!(
            "99{}{}%",
            if n > 2 { "." } else { "" },
            "9".repeat(n as usize - 2)
        ),
    }
}

/// Linear in nines with a labelled tick at every whole nine. plotters' float
/// axis chooses its own tick spacing, and its key-point wrapper loses the
/// default label formatting that `configure_mesh` needs; hence this type.
pub struct NinesAxis {
    linear: RangedCoordf64,
    nines: u32,
}

impl NinesAxis {
    pub fn new(nines: u32) -> NinesAxis {
        NinesAxis {
            linear: (0.0..f64::from(nines)).into(),
            nines,
        }
    }
}

impl Ranged for NinesAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.linear.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Bold points only: light grid lines between nines would suggest
        // a linear scale.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            (0..=self.nines).map(f64::from).collect()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.linear.range()
    }
}

/// Enough decades to show every finite percentile in the input.
pub fn x_nines(series: &[Series]) -> u32 {
    let deepest = series
        .iter()
        .flat_map(|s| &s.points)
        .filter(|&&(p, _)| p < 1.0)
        // The slack keeps 0.999 (log10 = 3.0000000000000004) at 3 decades.
        .map(|&(p, _)| ((1.0 / (1.0 - p)).log10() - 1e-9).ceil())
        .fold(0.0_f64, f64::max);
    (deepest as u32).clamp(MIN_X_NINES, MAX_X_NINES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_positions() {
        assert_eq!(tick_label(0), "0%");
        assert_eq!(tick_label(1), "90%");
        assert_eq!(tick_label(2), "99%");
        assert_eq!(tick_label(4), "99.99%");
        assert!((x_of(0.999, 5.0) - 3.0).abs() < 1e-9);
        assert_eq!(x_of(1.0, 5.0), 5.0);
        assert_eq!(x_of(0.0, 5.0), 0.0);
        let shallow = Series {
            label: "s".into(),
            count: 1,
            points: vec![(0.5, 1.0), (0.999, 2.0), (1.0, 3.0)],
        };
        assert_eq!(x_nines(&[shallow]), MIN_X_NINES);
        let deep = Series {
            label: "d".into(),
            count: 1,
            points: vec![(0.99999990, 1.0)],
        };
        assert_eq!(x_nines(&[deep]), 7);
        let six = Series {
            label: "6".into(),
            count: 1,
            points: vec![(0.999999, 1.0)],
        };
        assert_eq!(x_nines(&[six]), 6);
    }
}
