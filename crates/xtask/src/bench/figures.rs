//! The bench's charts, drawn from its measurements by [`crate::charts`]: purchases/s
//! (`throughput`) and p50/p99 latency (`latency`) against concurrency, one series per
//! strategy and path (the hot item through the gateway with each strategy, straight at
//! purchase-service, 50 items, each Redis Cluster run), the redis-benchmark ceiling as a
//! reference line; and the CPU each process spent per purchase during the direct run,
//! stacked (`cpu`). Each as `.svg` beside `report.md`, which shows them.

use super::cluster::ClusterRuns;
use super::report::{Measurements, Strategy};
use crate::charts::{self, LinePanel, Series, StackedBars};
use loadgen::Summary as Load;
use std::path::Path;

/// Processes below this share of the CPU per purchase are summed as "other".
const OTHER_BELOW: f64 = 0.02;

/// One strategy on one path: its legend name, its colour, its loads by concurrency.
struct Route<'a> {
    name: String,
    color: usize,
    loads: Vec<(usize, &'a Load)>,
}

/// Every path measured; those measured at the top concurrency alone are one point.
fn routes<'a>(m: &'a Measurements, cluster: &'a ClusterRuns) -> Vec<Route<'a>> {
    let mut routes: Vec<Route> = Strategy::ALL
        .into_iter()
        .map(|strategy| {
            let mut loads: Vec<(usize, &Load)> = m
                .hot
                .iter()
                .filter(|run| run.strategy == strategy)
                .map(|run| (run.concurrency, &run.load))
                .collect();
            loads.sort_by_key(|(concurrency, _)| *concurrency);
            (format!("{}, gateway", strategy.name()), loads)
        })
        .chain([
            (
                "lua, direct".to_owned(),
                vec![(m.direct.concurrency, &m.direct)],
            ),
            (
                "lua, gateway, 50 items".to_owned(),
                vec![(m.many_items.concurrency, &m.many_items)],
            ),
        ])
        .chain(cluster.runs.iter().map(|run| {
            let items = if run.items > 1 {
                format!(", {} items", run.items)
            } else {
                String::new()
            };
            (
                format!("lua, cluster, acked {}{items}", run.acked),
                vec![(run.load.concurrency, &run.load)],
            )
        }))
        .enumerate()
        .map(|(color, (name, loads))| Route { name, color, loads })
        .collect();
    routes.retain(|route| !route.loads.is_empty());
    routes
}

fn series(route: &Route, dashed: bool, y: impl Fn(&Load) -> f64) -> Series {
    let points = route
        .loads
        .iter()
        .map(|(concurrency, load)| (*concurrency as f64, y(load)))
        .collect();
    Series {
        dashed,
        in_legend: !dashed,
        ..Series::new(&route.name, route.color, points)
    }
}

const X_LABEL: &str = "concurrency: buyers at once (log scale)";

pub fn throughput(m: &Measurements, cluster: &ClusterRuns) -> LinePanel {
    LinePanel {
        title: "Purchases/s against concurrency (hot item unless said)".into(),
        x_label: X_LABEL.into(),
        y_label: "purchases answered 200 per second (log scale)".into(),
        x_ticks: m.levels.iter().map(|c| *c as f64).collect(),
        series: routes(m, cluster)
            .iter()
            .map(|route| series(route, false, |load| load.ok_per_s))
            .collect(),
        references: vec![(
            format!(
                "redis-benchmark ceiling, same script, c{}: {}/s",
                m.top(),
                charts::compact(m.redis_ceiling_rps.round())
            ),
            m.redis_ceiling_rps,
        )],
        style_key: vec![],
    }
}

pub fn latency(m: &Measurements, cluster: &ClusterRuns) -> LinePanel {
    let routes = routes(m, cluster);
    let p99 = routes
        .iter()
        .map(|route| series(route, false, |load| load.latency_ms.p99));
    let p50 = routes
        .iter()
        .map(|route| series(route, true, |load| load.latency_ms.p50));
    LinePanel {
        title: "Purchase latency against concurrency (hot item unless said)".into(),
        x_label: X_LABEL.into(),
        y_label: "latency, ms (log scale)".into(),
        x_ticks: m.levels.iter().map(|c| *c as f64).collect(),
        series: p99.chain(p50).collect(),
        references: vec![],
        style_key: vec![("p99 (solid)".into(), false), ("p50 (dashed)".into(), true)],
    }
}

pub fn cpu(m: &Measurements) -> StackedBars {
    let total: f64 = m.direct_cpu_us_per_purchase.iter().map(|(_, us)| us).sum();
    type Parts = Vec<(String, f64)>;
    let (mut parts, small): (Parts, Parts) = m
        .direct_cpu_us_per_purchase
        .iter()
        .cloned()
        .partition(|(_, us)| *us >= OTHER_BELOW * total);
    // Largest at the bottom.
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    let other: f64 = small.iter().map(|(_, us)| us).sum();
    if other > 0.0 {
        let names: Vec<&str> = small.iter().map(|(name, _)| name.as_str()).collect();
        parts.push((format!("other: {}", names.join(", ")), other));
    }
    let rps = m.direct.ok_per_s.max(1e-9);
    let cpus = m.machine.cpus;
    StackedBars {
        title: "CPU time per purchase, by process".into(),
        y_label: "CPU µs per purchase".into(),
        unit: "µs".into(),
        bars: vec![(
            format!("hot item, lua, direct, c{}", m.direct.concurrency),
            parts,
        )],
        reference: Some((
            format!(
                "all {cpus} CPUs at {} purchases/s: {} µs",
                charts::compact(rps.round()),
                charts::compact((cpus as f64 * 1e6 / rps).round())
            ),
            cpus as f64 * 1e6 / rps,
        )),
    }
}

/// Draws every chart into `dir`; the Markdown image of each one drawn.
pub fn publish(dir: &Path, m: &Measurements, cluster: &ClusterRuns) -> Vec<String> {
    [
        charts::publish(&throughput(m, cluster), dir, "throughput"),
        charts::publish(&latency(m, cluster), dir, "latency"),
        charts::publish(&cpu(m), dir, "cpu"),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The report's section of charts (none when none was drawn).
pub fn markdown(images: &[String]) -> String {
    if images.is_empty() {
        return String::new();
    }
    let mut lines = vec![String::new(), "## Charts".to_owned()];
    for image in images {
        lines.extend([String::new(), image.clone()]);
    }
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::super::cluster::ClusterRun;
    use super::super::report::tests::{load, measurements};
    use super::*;
    use crate::charts::testing::{assert_drawn, scratch};

    fn cluster() -> ClusterRuns {
        let run = |acked, items, ok_per_s| ClusterRun {
            acked,
            items,
            load: load("cluster", ok_per_s, 90.0, 0),
            conserved: true,
        };
        ClusterRuns {
            nodes: "127.0.0.1:7001".into(),
            runs: vec![
                run(0, 1, 3000.0),
                run(0, 50, 3900.0),
                run(1, 1, 2500.0),
                run(1, 50, 3100.0),
            ],
            flash_sales: Vec::new(),
        }
    }

    #[test]
    fn each_strategy_and_path_is_a_series() {
        let panel = throughput(&measurements(), &cluster());
        let names: Vec<&str> = panel.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "lua, gateway",
                "lock, gateway",
                "lua, direct",
                "lua, gateway, 50 items",
                "lua, cluster, acked 0",
                "lua, cluster, acked 0, 50 items",
                "lua, cluster, acked 1",
                "lua, cluster, acked 1, 50 items",
            ]
        );
        assert_eq!(panel.series[0].points, [(16.0, 3700.0), (64.0, 3700.0)]);
        assert_eq!(panel.series[2].points, [(64.0, 7000.0)]);
        assert_eq!(panel.references[0].1, 28000.0);

        let latency = latency(&measurements(), &cluster());
        assert_eq!(latency.series.len(), 16, "p99 and p50 of each");
        assert_eq!(latency.series[1].points, [(16.0, 695.29), (64.0, 695.29)]);
        assert!(latency.series[9].dashed && !latency.series[9].in_legend);
    }

    #[test]
    fn small_cpu_shares_are_summed_as_other_largest_at_the_bottom() {
        let bars = cpu(&measurements());
        let (label, parts) = &bars.bars[0];
        assert_eq!(label, "hot item, lua, direct, c64");
        assert_eq!(
            parts,
            &[
                ("purchase-service".to_owned(), 110.0),
                ("beam.smp".to_owned(), 58.0),
                ("redis-server".to_owned(), 40.0),
                ("loadgen".to_owned(), 33.0),
                ("other: nginx".to_owned(), 0.2),
            ]
        );
        let (name, available) = bars.reference.unwrap();
        assert_eq!(name, "all 2 CPUs at 7000 purchases/s: 286 µs");
        assert!((available - 285.714).abs() < 0.001);
    }

    #[test]
    fn every_chart_is_drawn_and_shown_in_the_report() {
        let dir = scratch("bench");
        let images = publish(&dir, &measurements(), &cluster());
        assert_eq!(
            images,
            [
                "![Purchases/s against concurrency (hot item unless said)](throughput.svg)",
                "![Purchase latency against concurrency (hot item unless said)](latency.svg)",
                "![CPU time per purchase, by process](cpu.svg)",
            ]
        );
        assert_drawn(
            &dir,
            "throughput",
            &[
                "lock, gateway",
                "lua, cluster, acked 1, 50 items",
                "redis-benchmark ceiling, same script, c64: 28k/s",
                "purchases answered 200 per second (log scale)",
                X_LABEL,
            ],
        );
        assert_drawn(
            &dir,
            "latency",
            &["latency, ms (log scale)", "p99 (solid)", "p50 (dashed)"],
        );
        assert_drawn(
            &dir,
            "cpu",
            &["CPU µs per purchase", "purchase-service: 110 µs"],
        );
        let section = markdown(&images);
        assert!(section.starts_with("\n## Charts\n"));
        assert!(section.ends_with("(cpu.svg)\n"));
        assert_eq!(markdown(&[]), "");
    }
}
