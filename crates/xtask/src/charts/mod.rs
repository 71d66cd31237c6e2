//! The charts of the bench and the drills, drawn with plotters from plain data (named
//! series of points), so that each can be tested on made-up figures without a stack.
//! Every chart is written as `<name>.svg` beside the report that shows it. Its text is
//! SVG text, set in the viewer's sans-serif: no font file is read and no pixels are
//! encoded, so a chart needs nothing on the machine (plotters only estimates each
//! label's width to lay it out). A chart that cannot be written is a warning: it never
//! fails a bench or a drill.

mod bars;
mod lines;
mod timeline;

pub use bars::StackedBars;
pub use lines::LinePanel;
pub use timeline::{Mark, TimePanel, TimeSeries, Timeline};

use anyhow::Context;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// A line of a chart: points in data units, a palette colour ([`color`]), solid or
/// dashed.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub color: usize,
    pub dashed: bool,
    /// Whether the legend names it (a series that repeats another's colour for a second
    /// measure may leave it to a style key).
    pub in_legend: bool,
}

impl Series {
    pub fn new(name: impl Into<String>, color: usize, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
            color,
            dashed: false,
            in_legend: true,
        }
    }
}

/// A chart that can be drawn on any plotters backend.
pub trait Picture {
    /// What it shows (the image's alternative text).
    fn title(&self) -> &str;
    /// Width and height in pixels (the bench's panels' size unless said).
    fn size(&self) -> (u32, u32) {
        (1060, 560)
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>;
}

/// A plotters result as ours (their errors borrow the backend's error type).
trait Drawn<T> {
    fn drawn(self) -> anyhow::Result<T>;
}

impl<T, E: std::fmt::Display> Drawn<T> for Result<T, E> {
    fn drawn(self) -> anyhow::Result<T> {
        self.map_err(|error| anyhow::anyhow!("drawing a chart: {error}"))
    }
}

/// Draws `picture` into `<dir>/<name>.svg`; its path.
pub fn write(picture: &impl Picture, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, picture.size()).into_drawing_area();
        root.fill(&WHITE).drawn()?;
        picture.draw(&root)?;
        root.present().drawn()?;
    }
    let path = dir.join(format!("{name}.svg"));
    std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Writes the chart `name` (`<name>.svg`) into `dir`; the Markdown image that shows it
/// from a report in `dir`, or `None` after a warning on standard error saying why it
/// was not drawn.
pub fn publish(picture: &impl Picture, dir: &Path, name: &str) -> Option<String> {
    match write(picture, dir, name) {
        Ok(_) => Some(format!("![{}]({name}.svg)", picture.title())),
        Err(error) => {
            crate::step(format!("WARNING: chart {name} not drawn: {error:#}"));
            None
        }
    }
}

/// Colours that tell lines apart (Tableau's ten), by index, cycling.
pub fn color(index: usize) -> RGBColor {
    const PALETTE: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (214, 39, 40),
        (44, 160, 44),
        (255, 127, 14),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (23, 190, 207),
        (188, 189, 34),
        (127, 127, 127),
    ];
    let (r, g, b) = PALETTE[index % PALETTE.len()];
    RGBColor(r, g, b)
}

/// A tick label: `12`, `2.5`, `0.05`, `20k`, `1.5M`.
pub fn compact(value: f64) -> String {
    let trim = |text: String| {
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            text
        }
    };
    let magnitude = value.abs();
    if magnitude >= 1e6 {
        trim(format!("{:.2}", value / 1e6)) + "M"
    } else if magnitude >= 1e4 {
        trim(format!("{:.1}", value / 1e3)) + "k"
    } else if magnitude >= 10.0 || value == 0.0 {
        format!("{value:.0}")
    } else {
        trim(format!("{value:.3}"))
    }
}

/// The text style of every label: sans-serif at `size` pixels.
fn text(size: f64) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&BLACK)
}

/// A legend's line at `y`: a sample of the line's style (colour, dashed, marker) and
/// its name beside it.
fn legend_entry<DB: DrawingBackend>(
    legend: &DrawingArea<DB, Shift>,
    y: i32,
    name: &str,
    (color, dashed, marker): (RGBColor, bool, Option<usize>),
) -> anyhow::Result<()> {
    sample(legend, (8, y), color, dashed, marker)?;
    legend_name(legend, y, name)
}

/// A legend's name at `y`, right of its sample.
fn legend_name<DB: DrawingBackend>(
    legend: &DrawingArea<DB, Shift>,
    y: i32,
    name: &str,
) -> anyhow::Result<()> {
    let style = text(14.0).pos(Pos::new(HPos::Left, VPos::Center));
    legend.draw_text(name, &style, (44, y)).drawn()
}

/// Draws a legend entry's sample at `(x, y)` (its left end, its middle): a short line,
/// solid or dashed, with the series' marker.
fn sample<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (x, y): (i32, i32),
    color: RGBColor,
    dashed: bool,
    marker: Option<usize>,
) -> anyhow::Result<()> {
    let style = color.stroke_width(2);
    if dashed {
        area.draw(&DashedPathElement::new([(x, y), (x + 28, y)], 5, 3, style))
            .drawn()?;
    } else {
        area.draw(&PathElement::new(vec![(x, y), (x + 28, y)], style))
            .drawn()?;
    }
    if let Some(marker) = marker {
        draw_marker(area, (x + 14, y), marker, color, !dashed)?;
    }
    Ok(())
}

/// One of four marker shapes (circle, triangle, square, cross) at a pixel.
fn draw_marker<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    shape: usize,
    color: RGBColor,
    filled: bool,
) -> anyhow::Result<()>
where
    CT::From: Clone + 'static,
{
    let style = if filled {
        color.filled()
    } else {
        color.stroke_width(2)
    };
    match shape % 4 {
        0 => area.draw(&Circle::new(at, 4, style)).drawn(),
        1 => area.draw(&TriangleMarker::new(at, 5, style)).drawn(),
        2 => area
            .draw(&(EmptyElement::at(at) + Rectangle::new([(-4, -4), (4, 4)], style)))
            .drawn(),
        _ => area.draw(&Cross::new(at, 4, color.stroke_width(2))).drawn(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_are_short() {
        let labels: Vec<String> = [0.0, 0.05, 2.5, 12.0, 250.0, 5000.0, 20_000.0, 1.5e6]
            .into_iter()
            .map(compact)
            .collect();
        assert_eq!(
            labels,
            ["0", "0.05", "2.5", "12", "250", "5000", "20k", "1.5M"]
        );
    }

    #[test]
    fn the_palette_cycles() {
        assert_eq!(color(0), color(10));
        assert_ne!(color(0), color(1));
    }
}

/// What the chart tests share: a scratch directory, and the checks every chart passes.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::{Path, PathBuf};

    /// A fresh directory under the system's temporary one (the same each run, so that
    /// the last run's pictures can be looked at).
    pub fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-charts-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The SVG is there and says every one of `texts`; its text.
    pub fn assert_drawn(dir: &Path, name: &str, texts: &[&str]) -> String {
        let svg = std::fs::read_to_string(dir.join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{name}.svg is no SVG");
        for text in texts {
            let escaped = text
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('\'', "&apos;")
                .replace('"', "&quot;");
            assert!(
                svg.contains(text) || svg.contains(&escaped),
                "{name}.svg does not say {text:?}"
            );
        }
        svg
    }
}
