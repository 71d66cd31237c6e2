//! The Redis drill's report: a scenario's findings ([`ScenarioReport`]) and the
//! Markdown of them all, one table, then each scenario's timeline as a list and as the
//! chart `redis-timeline-<scenario>.svg`.

use super::redis_drill::{CONCURRENCY, INITIAL_STOCK};
use super::report::Timeline;
use super::seconds::PerSecond;
use devstack::OrderAudit;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub name: String,
    /// The timeline chart's file name, without its extension.
    pub chart_file: String,
    pub items: usize,
    pub timeline: Timeline,
    pub ok: u64,
    pub server_errors: u64,
    pub error_codes: std::collections::BTreeMap<String, u64>,
    pub longest_gap_without_ok_s: f64,
    /// kill to a new master serving the slot (cluster only).
    pub failover_s: Option<f64>,
    pub orders: OrderAudit,
    pub duplicated: u64,
    /// Units of Redis stock above MySQL's over the items: sales Redis forgot, whose
    /// units it would sell again.
    pub sellable_twice: i64,
    pub conserved: bool,
    /// Conservation once `stock-writer rebuild-redis` ran (only where it was broken).
    pub conserved_after_rebuild: Option<bool>,
    /// Whether this scenario must lose nothing (the acknowledged ones).
    pub guaranteed: bool,
    pub per_second: PerSecond,
    /// The timeline chart's Markdown image, when it was drawn.
    #[serde(skip)]
    pub chart: Option<String>,
}

impl ScenarioReport {
    pub fn passed(&self) -> bool {
        self.duplicated == 0
            && (!self.guaranteed
                || (self.orders.missing == 0 && self.sellable_twice == 0 && self.conserved))
    }
}

/// The drill's report as Markdown: one table, then each scenario's timeline.
pub fn markdown(reports: &[ScenarioReport], cpus: usize) -> String {
    let mut lines = vec![
        "# Redis drill".to_owned(),
        String::new(),
        format!(
            "Machine: {cpus} CPUs. Load at concurrency {CONCURRENCY} through the gateway; initial stock {INITIAL_STOCK} per item. The cluster: 3 masters, 3 replicas, cluster-node-timeout 2 s, AOF everysec."
        ),
        String::new(),
        "| scenario | 200s | 5xx | longest without a 200 | failover | 200s missing from MySQL | units Redis would sell twice | duplicated orders | conserved | after rebuild-redis |".into(),
        "|---|---|---|---|---|---|---|---|---|---|".into(),
    ];
    for r in reports {
        lines.push(format!(
            "| {} | {} | {} | {:.1} s | {} | **{}** | **{}** | {} | {} | {} |",
            r.name,
            r.ok,
            r.server_errors,
            r.longest_gap_without_ok_s,
            r.failover_s.map_or("-".into(), |s| format!("{s:.1} s")),
            r.orders.missing,
            r.sellable_twice,
            r.duplicated,
            if r.conserved { "yes" } else { "no" },
            match r.conserved_after_rebuild {
                None => "-",
                Some(true) => "conserved",
                Some(false) => "NOT conserved",
            },
        ));
    }
    for r in reports {
        lines.extend([String::new(), format!("## {}", r.name)]);
        lines.extend(r.timeline.markdown());
        lines.push(format!(
            "- non-200 answers: {}",
            serde_json::to_string(&r.error_codes).unwrap_or_default()
        ));
        if let Some(chart) = &r.chart {
            lines.extend([String::new(), chart.clone()]);
        }
    }
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(chart: Option<&str>) -> ScenarioReport {
        let mut timeline = Timeline::default();
        timeline.mark("kill -9 master", "kill -9 the master (port 7101)");
        ScenarioReport {
            name: "cluster, REDIS_MIN_REPLICAS_ACKED=1, hot item".into(),
            chart_file: "redis-timeline-cluster-acked1-hot-item".into(),
            items: 1,
            timeline,
            ok: 9000,
            server_errors: 12,
            error_codes: [("SYSTEM_BUSY".to_owned(), 12)].into(),
            longest_gap_without_ok_s: 2.4,
            failover_s: Some(2.9),
            orders: OrderAudit {
                confirmed: 9000,
                missing: 0,
                unconfirmed: 0,
            },
            duplicated: 0,
            sellable_twice: 0,
            conserved: true,
            conserved_after_rebuild: None,
            guaranteed: true,
            per_second: PerSecond::default(),
            chart: chart.map(str::to_owned),
        }
    }

    #[test]
    fn each_scenario_shows_its_timeline_chart_when_drawn() {
        let drawn = "![cluster](redis-timeline-cluster-acked1-hot-item.svg)";
        let markdown = markdown(&[scenario(Some(drawn)), scenario(None)], 2);
        assert!(markdown.contains("| cluster, REDIS_MIN_REPLICAS_ACKED=1, hot item | 9000 | 12 | 2.4 s | 2.9 s | **0** | **0** | 0 | yes | - |"));
        assert!(markdown.contains(
            " kill -9 the master (port 7101)\n- non-200 answers: {\"SYSTEM_BUSY\":12}\n\n![cluster]"
        ));
        assert_eq!(markdown.matches("![").count(), 1, "{markdown}");
        assert!(scenario(None).passed());
    }
}
