//! Parts of a whole stacked as bars ([`StackedBars`]), for the bench's CPU per
//! purchase of each process, with a reference line (what the machine has to give).

use super::lines::{LEGEND_LINE, PLOT_WIDTH};
use super::{Drawn, Picture, color, compact, legend_entry, legend_name, text};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Bars made of parts stacked from the bottom up, in one unit.
#[derive(Debug, Clone, PartialEq)]
pub struct StackedBars {
    pub title: String,
    pub y_label: String,
    /// The unit after each value in the legend (`µs`).
    pub unit: String,
    /// Each bar: its label and its parts from the bottom up (name, value).
    pub bars: Vec<(String, Vec<(String, f64)>)>,
    /// A horizontal line, dashed grey: its name and height.
    pub reference: Option<(String, f64)>,
}

impl StackedBars {
    /// Part names in the order they first appear: a part's colour is its index here.
    fn parts(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for (_, parts) in &self.bars {
            for (name, _) in parts {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        }
        names
    }
}

impl Picture for StackedBars {
    fn title(&self) -> &str {
        &self.title
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let (plot, legend) = root.split_horizontally(PLOT_WIDTH);
        let totals: Vec<f64> = self
            .bars
            .iter()
            .map(|(_, parts)| parts.iter().map(|p| p.1).sum())
            .collect();
        let top = totals
            .iter()
            .copied()
            .chain(self.reference.iter().map(|r| r.1))
            .fold(0.0, f64::max)
            .max(1.0)
            * 1.12;
        let bars = self.bars.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, text(19.0))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(72)
            .build_cartesian_2d(0.0..bars, 0.0..top)
            .drawn()?;
        // The bars' names are written under them below, not as ticks.
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc(&self.y_label)
            .y_labels(8)
            .y_label_formatter(&|y| compact(*y))
            .label_style(text(14.0))
            .axis_desc_style(text(15.0))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(TRANSPARENT)
            .draw()
            .drawn()?;

        let names = self.parts();
        let colour_of = |name: &str| color(names.iter().position(|n| *n == name).unwrap_or(0));
        // Bars narrow enough that one alone does not look like a wall.
        let half = 0.3f64.min(0.15 * bars);
        for (i, (label, parts)) in self.bars.iter().enumerate() {
            let (left, right) = (i as f64 + 0.5 - half, i as f64 + 0.5 + half);
            let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            plot.draw(&Text::new(
                label.clone(),
                (x, y + 10),
                text(14.0).pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .drawn()?;
            let mut base = 0.0;
            for (name, value) in parts {
                let bottom = base;
                base += value;
                chart
                    .draw_series([Rectangle::new(
                        [(left, bottom), (right, base)],
                        colour_of(name).filled(),
                    )])
                    .drawn()?;
                chart
                    .draw_series([Rectangle::new([(left, bottom), (right, base)], WHITE)])
                    .drawn()?;
                let (_, y0) = chart.backend_coord(&(left, bottom));
                let (_, y1) = chart.backend_coord(&(left, base));
                if y0 - y1 >= 18 {
                    let style = text(13.0)
                        .color(&WHITE)
                        .pos(Pos::new(HPos::Center, VPos::Center));
                    plot.draw(&Text::new(
                        format!("{name} {}", compact(*value)),
                        chart.backend_coord(&(i as f64 + 0.5, bottom + value / 2.0)),
                        style,
                    ))
                    .drawn()?;
                }
            }
            let style = text(14.0).pos(Pos::new(HPos::Center, VPos::Bottom));
            let (x, y) = chart.backend_coord(&(i as f64 + 0.5, base));
            plot.draw(&Text::new(
                format!("total {} {}", compact(base), self.unit),
                (x, y - 4),
                style,
            ))
            .drawn()?;
        }
        let grey = RGBColor(90, 90, 90);
        if let Some((_, y)) = &self.reference {
            chart
                .draw_series(DashedLineSeries::new(
                    [(0.0, *y), (bars, *y)],
                    8,
                    5,
                    grey.stroke_width(2),
                ))
                .drawn()?;
        }

        // The legend lists the parts top down, as they are stacked, with their values
        // when there is one bar.
        let mut y = 60;
        let single = (self.bars.len() == 1).then(|| &self.bars[0].1);
        for name in names.iter().rev() {
            legend
                .draw(&Rectangle::new(
                    [(10, y - 7), (34, y + 7)],
                    colour_of(name).filled(),
                ))
                .drawn()?;
            let value = single
                .and_then(|parts| parts.iter().find(|p| p.0 == *name))
                .map(|p| format!(": {} {}", compact(p.1), self.unit))
                .unwrap_or_default();
            legend_name(&legend, y, &format!("{name}{value}"))?;
            y += LEGEND_LINE;
        }
        if let Some((name, _)) = &self.reference {
            y += LEGEND_LINE / 2;
            legend_entry(&legend, y, name, (grey, true, None))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_drawn, scratch};
    use super::super::write;
    use super::*;

    #[test]
    fn stacked_bars_are_drawn_with_each_part_and_the_reference() {
        let dir = scratch("bars");
        let bars = StackedBars {
            title: "CPU per purchase".into(),
            y_label: "CPU µs per purchase".into(),
            unit: "µs".into(),
            bars: vec![(
                "direct, lua, c256".into(),
                vec![
                    ("purchase-service".into(), 110.0),
                    ("beam.smp".into(), 58.0),
                    ("loadgen".into(), 33.0),
                    ("other".into(), 3.0),
                ],
            )],
            reference: Some(("2 CPUs at 7000/s".into(), 286.0)),
        };
        write(&bars, &dir, "cpu").unwrap();
        assert_drawn(
            &dir,
            "cpu",
            &[
                "CPU per purchase",
                "CPU µs per purchase",
                "direct, lua, c256",
                "purchase-service: 110 µs",
                "beam.smp: 58 µs",
                "2 CPUs at 7000/s",
                "total 204 µs",
            ],
        );
    }
}
