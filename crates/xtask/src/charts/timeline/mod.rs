//! A drill's timeline: panels stacked over one time axis (seconds since the load
//! started), one measure each, with every fault drawn as a vertical line through all
//! of them where it happened and named above the first, the names put in rows so that
//! none covers another.

mod panel;

use super::{Drawn, Picture, text};
use panel::draw_panel;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const WIDTH: u32 = 1100;
const TITLE_HEIGHT: u32 = 40;
const PANEL_HEIGHT: u32 = 175;
/// The bottom panel's extra height for the time axis' labels.
const AXIS_HEIGHT: u32 = 48;
const ROW_HEIGHT: u32 = 18;
const MARGIN_LEFT: u32 = 10;
const MARGIN_RIGHT: u32 = 25;
const Y_LABEL_AREA: u32 = 80;
/// Above each panel's plot: its title and legend.
const PANEL_HEADER: u32 = 24;
const MARK_COLOR: RGBColor = RGBColor(160, 30, 30);
const MARK_TEXT: f64 = 13.0;

/// Measures over time, with the moments that matter marked.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub title: String,
    pub x_label: String,
    pub panels: Vec<TimePanel>,
    pub marks: Vec<Mark>,
}

/// One measure: its own y axis, from 0.
#[derive(Debug, Clone, PartialEq)]
pub struct TimePanel {
    /// What the panel shows, exactly (written above it).
    pub title: String,
    pub y_label: String,
    pub series: Vec<TimeSeries>,
}

/// A measure sampled over time; `None` where it could not be read (drawn as a gap).
#[derive(Debug, Clone, PartialEq)]
pub struct TimeSeries {
    pub name: String,
    pub color: usize,
    pub points: Vec<(f64, Option<f64>)>,
}

/// A moment to mark: seconds from the start, and a short name.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub at_s: f64,
    pub label: String,
}

impl Timeline {
    /// The time axis: from 0 to the last point or mark, whole seconds.
    fn span(&self) -> f64 {
        let points = self
            .panels
            .iter()
            .flat_map(|p| &p.series)
            .flat_map(|s| s.points.iter().map(|p| p.0));
        let marks = self.marks.iter().map(|m| m.at_s);
        points.chain(marks).fold(1.0, f64::max).ceil()
    }

    /// Each mark's row above the plots, given its text's width in pixels: the first row
    /// where it starts clear of the text before it (a name that would leave the picture
    /// on the right ends at its line instead of starting there).
    fn rows(&self, width_of: impl Fn(&str) -> u32) -> Vec<usize> {
        let (x0, x1) = plot_x_range();
        let span = self.span();
        let mut row_ends: Vec<f64> = Vec::new();
        self.marks
            .iter()
            .map(|mark| {
                let (start, end) = label_extent(mark, span, width_of(&mark.label));
                let start = start.max(f64::from(x0));
                let row = row_ends
                    .iter()
                    .position(|end| *end + 8.0 <= start)
                    .unwrap_or(row_ends.len());
                if row == row_ends.len() {
                    row_ends.push(end.min(f64::from(x1)));
                } else {
                    row_ends[row] = end;
                }
                row
            })
            .collect()
    }
}

/// The plots' horizontal pixel range (every panel's is the same).
fn plot_x_range() -> (u32, u32) {
    (MARGIN_LEFT + Y_LABEL_AREA, WIDTH - MARGIN_RIGHT)
}

fn pixel_x(at_s: f64, span: f64) -> f64 {
    let (x0, x1) = plot_x_range();
    f64::from(x0) + at_s / span * f64::from(x1 - x0)
}

/// Where a mark's name goes, in pixels: right of its line, or left of it near the end.
fn label_extent(mark: &Mark, span: f64, width: u32) -> (f64, f64) {
    let x = pixel_x(mark.at_s, span);
    let width = f64::from(width);
    if x + 4.0 + width > f64::from(WIDTH) - 4.0 {
        (x - 4.0 - width, x)
    } else {
        (x, x + 4.0 + width)
    }
}

impl Picture for Timeline {
    fn title(&self) -> &str {
        &self.title
    }

    fn size(&self) -> (u32, u32) {
        let rows = self.rows(label_width);
        let row_count = rows.iter().max().map_or(0, |r| r + 1);
        (WIDTH, self.height(row_count))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let label_style = text(MARK_TEXT);
        let rows = self.rows(label_width);
        let row_count = rows.iter().max().map_or(0, |r| r + 1);
        let (title, rest) = root.split_vertically(TITLE_HEIGHT);
        title
            .draw_text(
                &self.title,
                &text(19.0).pos(Pos::new(HPos::Center, VPos::Center)),
                (WIDTH as i32 / 2, TITLE_HEIGHT as i32 / 2),
            )
            .drawn()?;
        let strip_height = row_count as u32 * ROW_HEIGHT + 6;
        let (strip, mut rest) = rest.split_vertically(strip_height);
        let span = self.span();

        for (i, panel) in self.panels.iter().enumerate() {
            let last = i + 1 == self.panels.len();
            let height = PANEL_HEIGHT + if last { AXIS_HEIGHT } else { 0 };
            let (area, below) = rest.split_vertically(height);
            rest = below;
            draw_panel(
                &area,
                panel,
                &self.marks,
                span,
                last.then_some(&self.x_label),
            )?;
        }

        // The marks' names, each in its row, with a line down to the plots.
        for (mark, row) in self.marks.iter().zip(rows) {
            let x = pixel_x(mark.at_s, span) as i32;
            let y = (row as u32 * ROW_HEIGHT + ROW_HEIGHT / 2) as i32;
            let (start, _) = label_extent(mark, span, label_width(&mark.label));
            strip
                .draw(&PathElement::new(
                    vec![(x, y), (x, strip_height as i32)],
                    MARK_COLOR.mix(0.6).stroke_width(1),
                ))
                .drawn()?;
            strip
                .draw_text(
                    &mark.label,
                    &label_style
                        .color(&MARK_COLOR)
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                    (start as i32 + if start < f64::from(x) { 0 } else { 4 }, y),
                )
                .drawn()?;
        }
        Ok(())
    }
}

/// A mark's name's width in pixels, as plotters estimates it for sans-serif.
fn label_width(label: &str) -> u32 {
    text(MARK_TEXT)
        .font
        .box_size(label)
        .map_or(label.len() as u32 * 8, |(w, _)| w)
}

impl Timeline {
    fn height(&self, rows: usize) -> u32 {
        TITLE_HEIGHT
            + rows as u32 * ROW_HEIGHT
            + 6
            + self.panels.len() as u32 * PANEL_HEIGHT
            + AXIS_HEIGHT
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_drawn, scratch};
    use super::super::write;
    use super::*;

    /// A series over 40 s: `normal` each second, `during` in `[from, to)`.
    fn series(
        name: &str,
        color: usize,
        normal: f64,
        during: Option<f64>,
        (from, to): (f64, f64),
    ) -> TimeSeries {
        let points = (0..40).map(f64::from).map(|s| {
            (
                s + 0.5,
                if (from..to).contains(&s) {
                    during
                } else {
                    Some(normal)
                },
            )
        });
        TimeSeries {
            name: name.into(),
            color,
            points: points.collect(),
        }
    }

    fn panel(title: &str, y_label: &str, series: Vec<TimeSeries>) -> TimePanel {
        TimePanel {
            title: title.into(),
            y_label: y_label.into(),
            series,
        }
    }

    fn drill() -> Timeline {
        let marks = [
            (4.0, "kill -9 stock-writer"),
            (8.0, "restart stock-writer"),
            (12.1, "broker restart"),
            (14.6, "broker back"),
            (17.6, "kill -9 purchase-service"),
            (18.6, "restart purchase-service"),
            (39.5, "load over"),
        ];
        let outage = (17.0, 19.0);
        Timeline {
            title: "Chaos drill".into(),
            x_label: "seconds since the load started".into(),
            panels: vec![
                panel(
                    "answered 200 each second",
                    "per second",
                    vec![
                        series("purchases", 0, 1800.0, Some(0.0), outage),
                        series("reservations", 2, 400.0, None, (0.0, 0.0)),
                    ],
                ),
                panel(
                    "5xx or no answer each second",
                    "per second",
                    vec![series("purchases", 1, 0.0, Some(900.0), outage)],
                ),
                panel(
                    "stock-writer's mean lag, purchase to MySQL commit",
                    "mean lag, ms",
                    vec![series("lag", 4, 45.0, None, (4.0, 8.0))],
                ),
            ],
            marks: marks
                .map(|(at_s, label)| Mark {
                    at_s,
                    label: label.into(),
                })
                .to_vec(),
        }
    }

    #[test]
    fn marks_close_together_take_rows_of_their_own() {
        let rows = drill().rows(|label| label.len() as u32 * 7);
        // 1 s is about 25 px here, "kill -9 stock-writer" 140.
        assert_eq!(
            rows[..3],
            [0, 1, 0],
            "the restart 4 s later is not clear of the kill, the broker's 8 s later is"
        );
        assert_ne!(rows[4], rows[5], "1 s apart: a row each");
        assert_eq!(
            rows[6], 0,
            "the last one ends at its line, clear of the rest"
        );
    }

    #[test]
    fn a_timeline_is_drawn_with_its_panels_marks_and_gaps() {
        let dir = scratch("timeline");
        write(&drill(), &dir, "timeline").unwrap();
        let svg = assert_drawn(
            &dir,
            "timeline",
            &[
                "Chaos drill",
                "seconds since the load started",
                "answered 200 each second",
                "5xx or no answer each second",
                "mean lag, ms",
                "reservations",
                "kill -9 stock-writer",
                "restart purchase-service",
                "load over",
            ],
        );
        assert!(svg.contains("\n35\n"), "time ticks are labelled");
    }

    #[test]
    fn an_empty_timeline_is_still_a_picture() {
        let dir = scratch("empty-timeline");
        let empty = Timeline {
            title: "nothing".into(),
            x_label: "s".into(),
            panels: vec![panel("none", "n", vec![])],
            marks: vec![],
        };
        write(&empty, &dir, "empty").unwrap();
        assert_drawn(&dir, "empty", &["nothing"]);
    }
}
