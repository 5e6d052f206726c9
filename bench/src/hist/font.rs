//! Finding a TrueType font for PNG output.
//!
//! plotters is built with `ab_glyph` rather than its `ttf` feature so that
//! no fontconfig/freetype is linked; the price is that it knows no system
//! fonts and a font file has to be found and registered by hand. SVG output
//! needs none of this: its text is left to the SVG viewer.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::style::FontStyle;

/// Lets a user point at a font when none is in the usual places.
pub const FONT_ENV: &str = "RSER_HIST_FONT";

/// Well-known locations of plain sans-serif fonts (Debian/Ubuntu, Fedora,
/// Arch, Alpine, macOS), tried before any directory walk.
const CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

const SEARCH_ROOTS: &[&str] = &["/usr/share/fonts", "/usr/local/share/fonts"];
/// Bounds for the walk, so a huge or looping font tree cannot stall us.
const MAX_DEPTH: usize = 6;
const MAX_ENTRIES: usize = 20_000;

/// The family name the chart asks plotters for.
pub const FAMILY: &str = "sans-serif";

/// Registers a system font as [`FAMILY`] (once per process) and returns
/// its path, or explains how to get one.
pub fn register() -> Result<&'static Path, String> {
    static REGISTERED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    REGISTERED
        .get_or_init(register_first_usable)
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(Clone::clone)
}

fn register_first_usable() -> Result<PathBuf, String> {
    // The walk only runs when no well-known font is usable. Few files are
    // tried: each failure costs a read and a leaked buffer.
    let usable = known_fonts()
        .into_iter()
        .find(|p| try_register(p))
        .or_else(|| walked_fonts().into_iter().take(8).find(|p| try_register(p)));
    usable.ok_or_else(|| {
        format!(
            "no usable TrueType font found for PNG text (looked at {} and under {}); \
             install fonts-dejavu-core, set {FONT_ENV}=/path/to/font.ttf, or plot to .svg",
            CANDIDATES[0],
            SEARCH_ROOTS.join(", ")
        )
    })
}

fn try_register(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    // plotters keeps fonts for the life of the process and wants 'static
    // bytes; one font file per run is a bounded leak.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).is_ok()
}

/// The user's choice, then the well-known regular sans fonts.
fn known_fonts() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::env::var_os(FONT_ENV)
        .map(PathBuf::from)
        .into_iter()
        .collect();
    out.extend(CANDIDATES.iter().map(PathBuf::from).filter(|p| p.is_file()));
    out
}

/// Any `*.ttf` under the search roots, regular weights first since they
/// read best in small chart labels.
fn walked_fonts() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut budget = MAX_ENTRIES;
    for root in SEARCH_ROOTS {
        walk(Path::new(root), MAX_DEPTH, &mut budget, &mut found);
    }
    found.sort_by_key(|p| (!is_regular(p), p.clone()));
    found
}

fn walk(dir: &Path, depth: usize, budget: &mut usize, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let path = entry.path();
        // file_type() does not follow symlinks, so link loops are not walked.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && depth > 0 {
            walk(&path, depth - 1, budget, found);
        } else if crate::hist::extension(&path).as_deref() == Some("ttf") {
            found.push(path);
        }
    }
}

fn is_regular(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    ["bold", "italic", "oblique", "mono", "light", "condensed"]
        .iter()
        .all(|style| !name.contains(style))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_fonts_sort_first() {
        assert!(is_regular(Path::new("/f/DejaVuSans.ttf")));
        assert!(!is_regular(Path::new("/f/DejaVuSans-Bold.ttf")));
        assert!(!is_regular(Path::new("/f/DejaVuSansMono.ttf")));
    }

    #[test]
    fn walk_finds_only_ttf_files() {
        let fonts = walked_fonts();
        assert!(
            fonts
                .iter()
                .all(|p| crate::hist::extension(p).as_deref() == Some("ttf"))
        );
    }

    #[test]
    fn walk_is_bounded() {
        let mut found = Vec::new();
        let mut budget = 3;
        walk(Path::new("/usr"), MAX_DEPTH, &mut budget, &mut found);
        assert_eq!(budget, 0);
    }
}
