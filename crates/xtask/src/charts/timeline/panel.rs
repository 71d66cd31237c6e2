//! One panel of a drill's timeline: a measure from 0 against the shared time axis,
//! gaps where it could not be read, the marks' lines through it, and above it its title
//! and, when it has several series, which colour is which.

use super::{
    AXIS_HEIGHT, MARGIN_LEFT, MARGIN_RIGHT, MARK_COLOR, Mark, PANEL_HEADER, TimePanel, Y_LABEL_AREA,
};
use crate::charts::{Drawn, color, compact, text};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &TimePanel,
    marks: &[Mark],
    span: f64,
    x_label: Option<&String>,
) -> anyhow::Result<()> {
    let top = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|p| p.1))
        .fold(0.0, f64::max);
    let top = if top > 0.0 { top * 1.15 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .margin_left(MARGIN_LEFT)
        .margin_right(MARGIN_RIGHT)
        .margin_top(PANEL_HEADER)
        .margin_bottom(6)
        .x_label_area_size(if x_label.is_some() { AXIS_HEIGHT } else { 0 })
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(0.0..span, 0.0..top)
        .drawn()?;
    let mut mesh = chart.configure_mesh();
    mesh.y_desc(&panel.y_label)
        .y_labels(5)
        .x_labels(16)
        .x_label_formatter(&|x| compact(*x))
        .y_label_formatter(&|y| compact(*y))
        .label_style(text(13.0))
        .axis_desc_style(text(14.0))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(TRANSPARENT);
    if let Some(x_label) = x_label {
        mesh.x_desc(x_label);
    }
    mesh.draw().drawn()?;

    for mark in marks {
        chart
            .draw_series(DashedLineSeries::new(
                [(mark.at_s, 0.0), (mark.at_s, top)],
                6,
                4,
                MARK_COLOR.mix(0.7).stroke_width(1),
            ))
            .drawn()?;
    }
    for series in &panel.series {
        let style = color(series.color).stroke_width(2);
        for run in series.points.split(|p| p.1.is_none()) {
            let points: Vec<(f64, f64)> =
                run.iter().filter_map(|(x, y)| Some((*x, (*y)?))).collect();
            if let [point] = points[..] {
                chart
                    .draw_series([Circle::new(point, 2, style.filled())])
                    .drawn()?;
            } else {
                chart.draw_series(LineSeries::new(points, style)).drawn()?;
            }
        }
    }

    // Above the plot: the panel's title, then a sample of each series' colour and name
    // (when there is more than one).
    let header_y = PANEL_HEADER as i32 / 2;
    let mut x = (MARGIN_LEFT + Y_LABEL_AREA) as i32;
    let title_style = text(14.0).pos(Pos::new(HPos::Left, VPos::Center));
    area.draw_text(&panel.title, &title_style, (x, header_y))
        .drawn()?;
    x += area
        .estimate_text_size(&panel.title, &title_style)
        .map_or(0, |(w, _)| w as i32)
        + 20;
    if panel.series.len() > 1 {
        for series in &panel.series {
            area.draw(&PathElement::new(
                vec![(x, header_y), (x + 22, header_y)],
                color(series.color).stroke_width(3),
            ))
            .drawn()?;
            area.draw_text(&series.name, &title_style, (x + 28, header_y))
                .drawn()?;
            x += 28
                + area
                    .estimate_text_size(&series.name, &title_style)
                    .map_or(0, |(w, _)| w as i32)
                + 18;
        }
    }
    Ok(())
}
