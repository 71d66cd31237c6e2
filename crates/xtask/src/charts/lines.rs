//! A chart of one measure against concurrency ([`LinePanel`]), for the bench: both
//! axes logarithmic (concurrency doubles and quadruples; purchases/s of the strategies,
//! the paths and the Redis ceiling differ tenfold, as do the latencies), a tick at each
//! concurrency measured, labelled ticks on both axes, reference lines, and the legend
//! beside the plot so that it never hides a line.

use super::{Drawn, Picture, Series, color, compact, draw_marker, legend_entry, text};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Width of the plot; the legend takes the rest.
pub const PLOT_WIDTH: u32 = 700;
pub const LEGEND_LINE: i32 = 22;

/// Series of one measure against concurrency.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePanel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// The concurrencies measured: the x axis has a tick at each.
    pub x_ticks: Vec<f64>,
    pub series: Vec<Series>,
    /// Horizontal lines, dashed grey, each with its name in the legend.
    pub references: Vec<(String, f64)>,
    /// Legend lines for what a line's style means (text, dashed), when series share
    /// a colour.
    pub style_key: Vec<(String, bool)>,
}

impl LinePanel {
    /// Every positive y, of the series and of the references (a log axis has no 0).
    fn ys(&self) -> impl Iterator<Item = f64> + '_ {
        self.series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .chain(self.references.iter().map(|r| r.1))
            .filter(|y| *y > 0.0 && y.is_finite())
    }
}

/// `[lowest / margin, highest × margin]` of positive values (`[1, 10]` without any).
fn log_range(values: impl Iterator<Item = f64>, margin: f64) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if hi <= 0.0 {
        (1.0, 10.0)
    } else {
        (lo / margin, hi * margin)
    }
}

/// Ticks of a log axis over `[lo, hi]`: 1, 2, 5 of each decade; only the powers of
/// ten if that is more than a dozen, every 1…9 if it is fewer than three.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let over = |steps: &[f64]| -> Vec<f64> {
        let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        (first..=last)
            .flat_map(|decade| steps.iter().map(move |m| m * 10f64.powi(decade)))
            .filter(|v| *v >= lo && *v <= hi)
            .collect()
    };
    let ticks = over(&[1.0, 2.0, 5.0]);
    if ticks.len() > 12 {
        over(&[1.0])
    } else if ticks.len() < 3 {
        over(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    } else {
        ticks
    }
}

impl Picture for LinePanel {
    fn title(&self) -> &str {
        &self.title
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let (plot, legend) = root.split_horizontally(PLOT_WIDTH);
        let xs = self.x_ticks.iter().copied().chain(
            self.series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.0)),
        );
        let (x_lo, x_hi) = log_range(xs.filter(|x| *x > 0.0), 1.5);
        let (y_lo, y_hi) = log_range(self.ys(), 1.6);
        let x_ticks: Vec<f64> = self.x_ticks.iter().copied().filter(|x| *x > 0.0).collect();
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, text(19.0))
            .margin(12)
            .x_label_area_size(52)
            .y_label_area_size(72)
            .build_cartesian_2d(
                (x_lo..x_hi).log_scale().with_key_points(x_ticks),
                (y_lo..y_hi)
                    .log_scale()
                    .with_key_points(log_ticks(y_lo, y_hi)),
            )
            .drawn()?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_label_formatter(&|x| compact(*x))
            .y_label_formatter(&|y| compact(*y))
            .label_style(text(14.0))
            .axis_desc_style(text(15.0))
            .bold_line_style(BLACK.mix(0.12))
            .draw()
            .drawn()?;

        let grey = RGBColor(90, 90, 90);
        for (_, y) in self.references.iter().filter(|r| r.1 > 0.0) {
            chart
                .draw_series(DashedLineSeries::new(
                    [(x_lo, *y), (x_hi, *y)],
                    8,
                    5,
                    grey.stroke_width(2),
                ))
                .drawn()?;
        }
        for series in &self.series {
            let points: Vec<(f64, f64)> = series
                .points
                .iter()
                .copied()
                .filter(|(x, y)| *x > 0.0 && *y > 0.0)
                .collect();
            let style = color(series.color).stroke_width(2);
            if series.dashed {
                chart
                    .draw_series(DashedLineSeries::new(points.clone(), 7, 4, style))
                    .drawn()?;
            } else {
                chart
                    .draw_series(LineSeries::new(points.clone(), style))
                    .drawn()?;
            }
            for point in points {
                draw_marker(
                    chart.plotting_area(),
                    point,
                    series.color,
                    color(series.color),
                    !series.dashed,
                )?;
            }
        }

        let mut y = 60;
        for series in self.series.iter().filter(|s| s.in_legend) {
            let style = (color(series.color), series.dashed, Some(series.color));
            legend_entry(&legend, y, &series.name, style)?;
            y += LEGEND_LINE;
        }
        for (name, _) in &self.references {
            legend_entry(&legend, y, name, (grey, true, None))?;
            y += LEGEND_LINE;
        }
        if !self.style_key.is_empty() {
            y += LEGEND_LINE / 2;
        }
        for (name, dashed) in &self.style_key {
            legend_entry(&legend, y, name, (BLACK, *dashed, None))?;
            y += LEGEND_LINE;
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
    fn log_ticks_are_one_two_five_of_each_decade() {
        assert_eq!(
            log_ticks(300.0, 30_000.0),
            [500.0, 1000.0, 2000.0, 5000.0, 10000.0, 20000.0]
        );
        assert_eq!(log_ticks(1.0, 1e9).len(), 10, "only the powers of ten");
        assert_eq!(log_ticks(2500.0, 6400.0), [3000.0, 4000.0, 5000.0, 6000.0]);
    }

    fn throughput() -> LinePanel {
        let levels = [16.0, 64.0, 256.0];
        let line = |name: &str, color, ys: [f64; 3]| {
            Series::new(name, color, levels.iter().copied().zip(ys).collect())
        };
        LinePanel {
            title: "Hot item: purchases/s".into(),
            x_label: "concurrency (log scale)".into(),
            y_label: "purchases/s (log scale)".into(),
            x_ticks: levels.to_vec(),
            series: vec![
                line("lua, gateway", 0, [3100.0, 3700.0, 3650.0]),
                line("lock, gateway", 1, [700.0, 560.0, 410.0]),
                Series::new("lua, direct", 2, vec![(256.0, 7000.0)]),
                Series::new("lua, cluster, acked 1", 3, vec![(256.0, 2900.0)]),
            ],
            references: vec![("redis-benchmark ceiling".into(), 28_000.0)],
            style_key: vec![],
        }
    }

    #[test]
    fn a_line_panel_is_drawn_with_its_labels_ticks_and_legend() {
        let dir = scratch("lines");
        write(&throughput(), &dir, "throughput").unwrap();
        assert_drawn(
            &dir,
            "throughput",
            &[
                "Hot item: purchases/s",
                "concurrency (log scale)",
                "purchases/s (log scale)",
                "lua, gateway",
                "lock, gateway",
                "lua, direct",
                "lua, cluster, acked 1",
                "redis-benchmark ceiling",
                "\n16\n",
                "\n256\n",
                "\n20k\n",
            ],
        );
    }

    #[test]
    fn a_quick_run_of_one_concurrency_is_drawn_too() {
        let dir = scratch("one-level");
        let mut one = throughput();
        one.x_ticks = vec![64.0];
        for series in &mut one.series {
            series.points = vec![(64.0, 1000.0)];
        }
        one.style_key = vec![("p99".into(), false), ("p50".into(), true)];
        write(&one, &dir, "one").unwrap();
        assert_drawn(&dir, "one", &["\n64\n", "p99", "p50"]);
    }
}
