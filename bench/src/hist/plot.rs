//! The chart: one line per series over the percentile axis of `axis.rs`,
//! latency in ms upwards, written as SVG or PNG.
//!
//! Nothing here asks plotters to measure text (no chart caption, no built-in
//! legend): with the ab_glyph feature that needs a registered font, and SVG
//! output has to work on machines without any.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{NinesAxis, tick_label, x_nines, x_of};
use super::{Series, font};

const SIZE: (u32, u32) = (1000, 600);
const TEXT_SIZE: f64 = 17.0;
/// Dark, mutually distinct line colours that stay readable on white
/// (plotters' palettes include pale yellows and greys).
const COLOURS: [RGBColor; 8] = [
    RGBColor(0, 90, 181),
    RGBColor(220, 50, 32),
    RGBColor(0, 140, 70),
    RGBColor(150, 60, 170),
    RGBColor(230, 120, 0),
    RGBColor(0, 150, 160),
    RGBColor(120, 80, 40),
    RGBColor(90, 90, 90),
];

fn line_colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

/// Output formats, chosen by the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

impl Format {
    /// Also makes a PNG's font available, so that a missing font is
    /// reported before any input is parsed.
    pub fn for_path(path: &Path) -> Result<Format, String> {
        match super::extension(path).as_deref() {
            Some("svg") => Ok(Format::Svg),
            Some("png") => {
                font::register().map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(Format::Png)
            }
            _ => Err(format!(
                "{}: unknown plot type (expected .svg or .png)",
                path.display()
            )),
        }
    }
}

/// Draws `series` into `path` (.svg or .png).
pub fn draw(series: &[Series], path: &Path) -> Result<(), String> {
    let shown = path.display();
    let in_error = |e: String| format!("{shown}: {e}");
    match Format::for_path(path)? {
        Format::Svg => {
            // Render to memory first: a failed drawing leaves no half file,
            // and a write error gets a plain message.
            let mut svg = String::new();
            render(
                SVGBackend::with_string(&mut svg, SIZE).into_drawing_area(),
                series,
            )
            .map_err(in_error)?;
            std::fs::write(path, svg).map_err(|e| format!("{shown}: cannot write: {e}"))
        }
        Format::Png => {
            // The image encoder's I/O errors are verbose debug dumps;
            // creating the file first reports an unwritable path plainly.
            std::fs::File::create(path).map_err(|e| format!("{shown}: cannot write: {e}"))?;
            render(BitMapBackend::new(path, SIZE).into_drawing_area(), series).map_err(in_error)
        }
    }
}

fn render<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, series: &[Series]) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let drawn: Vec<&Series> = series.iter().filter(|s| !s.points.is_empty()).collect();
    if drawn.is_empty() {
        return Err("no series with samples to plot".into());
    }
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let nines = x_nines(series);
    let x_max = f64::from(nines);
    let y_top = drawn
        .iter()
        .flat_map(|s| &s.points)
        .map(|&(_, ms)| ms)
        .fold(0.0_f64, f64::max);
    let y_max = if y_top > 0.0 { y_top * 1.05 } else { 1.0 };
    // Enough decimals to tell the y ticks apart, no more.
    let y_decimals = match y_max {
        m if m >= 100.0 => 0,
        m if m >= 10.0 => 1,
        m if m >= 0.1 => 2,
        _ => 3,
    };

    root.fill(&WHITE).map_err(err)?;
    let text = |size: f64| (font::FAMILY, size).into_font().color(&BLACK);
    root.draw(&Text::new(
        "Latency by percentile",
        (SIZE.0 as i32 / 2, 10),
        text(TEXT_SIZE * 1.4).pos(Pos::new(HPos::Center, VPos::Top)),
    ))
    .map_err(err)?;

    let mut chart = ChartBuilder::on(&root)
        .margin(15)
        .margin_top(45)
        // Room for the centred last tick label (99.999%).
        .margin_right(35)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(NinesAxis::new(nines), 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("Percentile")
        .y_desc("Latency (ms)")
        .label_style(text(TEXT_SIZE))
        .axis_desc_style(text(TEXT_SIZE))
        .y_max_light_lines(2)
        .x_label_formatter(&|x| tick_label(x.round() as u32))
        .y_label_formatter(&|y| format!("{y:.y_decimals$}"))
        .draw()
        .map_err(err)?;

    for (i, s) in drawn.iter().enumerate() {
        let colour = line_colour(i);
        let xy: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|&(p, ms)| (x_of(p, x_max), ms))
            .collect();
        chart
            .draw_series(LineSeries::new(xy.iter().copied(), colour.stroke_width(2)))
            .map_err(err)?;
        // A handful of points (a JSON report) would otherwise hide where
        // the measurements are and what is interpolation.
        if xy.len() <= 10 {
            chart
                .draw_series(xy.iter().map(|&c| Circle::new(c, 3, colour.filled())))
                .map_err(err)?;
        }
    }

    // Hand-made legend in the top-left corner, where percentile curves
    // are lowest; sized from a character-width estimate, not font metrics.
    let (x_range, y_range) = chart.plotting_area().get_pixel_range();
    let (left, top) = (x_range.start + 12, y_range.start + 10);
    let row = TEXT_SIZE as i32 + 6;
    let widest = drawn
        .iter()
        .map(|s| s.label.chars().count())
        .max()
        .unwrap_or(0) as i32;
    let box_w = 44 + widest * (TEXT_SIZE * 0.5) as i32;
    let box_h = 8 + row * drawn.len() as i32;
    root.draw(&Rectangle::new(
        [(left, top), (left + box_w, top + box_h)],
        WHITE.mix(0.85).filled(),
    ))
    .map_err(err)?;
    root.draw(&Rectangle::new(
        [(left, top), (left + box_w, top + box_h)],
        BLACK.stroke_width(1),
    ))
    .map_err(err)?;
    for (i, s) in drawn.iter().enumerate() {
        let y = top + 4 + row * i as i32 + row / 2;
        let colour = line_colour(i);
        root.draw(&PathElement::new(
            [(left + 8, y), (left + 32, y)],
            colour.stroke_width(2),
        ))
        .map_err(err)?;
        root.draw(&Text::new(
            s.label.as_str(),
            (left + 38, y),
            text(TEXT_SIZE).pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(err)?;
    }
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_series() -> Vec<Series> {
        vec![
            Series {
                label: "alpha.hgrm".into(),
                count: 4,
                points: vec![
                    (0.0, 0.1),
                    (0.5, 0.2),
                    (0.99, 0.5),
                    (0.9999, 0.8),
                    (1.0, 1.0),
                ],
            },
            Series {
                label: "beta.json:call".into(),
                count: 10,
                points: vec![
                    (0.5, 0.3),
                    (0.9, 0.4),
                    (0.99, 0.6),
                    (0.999, 0.9),
                    (1.0, 2.0),
                ],
            },
        ]
    }

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("rser-hist-{}-{name}", std::process::id()))
    }

    #[test]
    fn svg_contains_every_label() {
        let path = temp_path("plot.svg");
        draw(&two_series(), &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert!(svg.contains("<svg"));
        for label in ["alpha.hgrm", "beta.json:call", "99.9%", "Latency (ms)"] {
            assert!(svg.contains(label), "missing {label}");
        }
    }

    #[test]
    fn png_renders_when_a_font_is_installed() {
        // Machines without fonts cannot do PNG by design; SVG covers them.
        if font::register().is_err() {
            return;
        }
        let path = temp_path("plot.png");
        draw(&two_series(), &path).unwrap();
        let png = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert!(png.starts_with(b"\x89PNG"));
    }

    #[test]
    fn bad_targets_are_errors() {
        let e = draw(&two_series(), Path::new("out.pdf")).unwrap_err();
        assert!(e.contains("out.pdf") && e.contains(".svg"), "{e}");
        let empty = [Series {
            label: "e".into(),
            count: 0,
            points: vec![],
        }];
        assert!(draw(&empty, &temp_path("empty.svg")).is_err());
        let e = draw(&two_series(), Path::new("/nonexistent/dir/x.svg")).unwrap_err();
        assert!(e.contains("cannot write"), "{e}");
    }
}
