//! The font every chart's text is measured and drawn with. plotters (its `ab_glyph`
//! feature, chosen to keep font-kit and the system's font libraries out of the build)
//! knows no font of its own: one TrueType file is read at run time, the first found of
//! `CHART_FONT`, a few usual places (DejaVu, Liberation, Noto; Debian's
//! `fonts-dejavu-core` is on the project's machines) and what `fc-match` names, and
//! registered as `sans-serif`, once per process.

use plotters::style::FontStyle;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Where the usual sans-serif fonts are, on Debian and Ubuntu first.
const KNOWN: [&str; 8] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
];

/// Registers the font once; afterwards, whether that worked (and if not, why).
pub fn register() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match REGISTERED.get_or_init(find_and_register) {
        Ok(_) => Ok(()),
        Err(why) => anyhow::bail!("{why}"),
    }
}

fn find_and_register() -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = match std::env::var_os("CHART_FONT") {
        Some(path) => vec![PathBuf::from(path)],
        None => KNOWN.iter().map(PathBuf::from).chain(fc_match()).collect(),
    };
    let path = candidates.iter().find(|path| path.is_file()).ok_or_else(|| {
        format!(
            "no TrueType font to write its text with (looked for {}; install fonts-dejavu-core or set CHART_FONT to a .ttf)",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    // plotters keeps the font for the whole process and wants it 'static: read once.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| format!("{} is not a font plotters can read", path.display()))?;
    Ok(path.clone())
}

/// The file fontconfig picks for a TrueType sans-serif, when it is installed.
fn fc_match() -> Option<PathBuf> {
    let output = std::process::Command::new("fc-match")
        .args(["--format=%{file}", "sans-serif:fontformat=TrueType"])
        .output()
        .ok()?;
    let path = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !path.trim().is_empty()).then(|| PathBuf::from(path.trim()))
}
