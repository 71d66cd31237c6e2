//! The drill's report: what was done when, what was recorded each second
//! ([`PerSecond`]) and what was found (the order audit and the item's stock account), as
//! JSON and as Markdown, which shows the timeline chart.

use super::seconds::PerSecond;
use crate::charts::Mark;
use devstack::{OrderAudit, StockAccount};
use serde::Serialize;
use std::time::Instant;

/// Something the drill did, at a time of day (HH:MM:SS) and, once the load's start is
/// known, at a time on the load's clock.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub at: String,
    /// Seconds since the load started (none for what came before it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub t_s: Option<f64>,
    pub what: String,
    /// A fault or a recovery's short name, for its line on the timeline chart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark: Option<String>,
    #[serde(skip)]
    pub instant: Instant,
}

/// The drill's events in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timeline(pub Vec<Event>);

impl Timeline {
    /// Records an event now and says it on standard error.
    pub fn note(&mut self, what: impl Into<String>) {
        self.record(what.into(), None);
    }

    /// Records a fault or a recovery now: also drawn on the chart, named `mark`.
    pub fn mark(&mut self, mark: &str, what: impl Into<String>) {
        self.record(what.into(), Some(mark.to_owned()));
    }

    fn record(&mut self, what: String, mark: Option<String>) {
        crate::step(&what);
        self.0.push(Event {
            at: chrono::Local::now().format("%H:%M:%S").to_string(),
            t_s: None,
            what,
            mark,
            instant: Instant::now(),
        });
    }

    /// Puts every event from `started` on (the load's start) on the load's clock.
    pub fn align(&mut self, started: Instant) {
        for event in &mut self.0 {
            event.t_s = event
                .instant
                .checked_duration_since(started)
                .map(|t| (t.as_secs_f64() * 10.0).round() / 10.0);
        }
    }

    /// The marked events on the load's clock, for the chart.
    pub fn marks(&self) -> Vec<Mark> {
        self.0
            .iter()
            .filter_map(|event| {
                Some(Mark {
                    at_s: event.t_s?,
                    label: event.mark.clone()?,
                })
            })
            .collect()
    }

    /// One Markdown list item per event.
    pub fn markdown(&self) -> impl Iterator<Item = String> + '_ {
        self.0.iter().map(|e| match e.t_s {
            Some(t) => format!("- {} (t = {t:.1} s) {}", e.at, e.what),
            None => format!("- {} {}", e.at, e.what),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillReport {
    pub cpus: usize,
    pub item: u64,
    pub seconds: u64,
    pub concurrency: usize,
    /// The RabbitMQ node the drill restarted.
    pub broker: String,
    pub timeline: Timeline,
    pub orders: OrderAudit,
    pub stock: StockAccount,
    pub reservations: ReservationCheck,
    pub per_second: PerSecond,
    /// The timeline chart's Markdown image, when it was drawn.
    #[serde(skip)]
    pub chart: Option<String>,
}

/// The reservation load beside the purchase load: every reservation answered 200 must
/// be in MySQL once, each must have expired exactly once (its units back), and the
/// item's stock must be whole again.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReservationCheck {
    pub item: u64,
    pub window_secs: u32,
    pub concurrency: usize,
    pub orders: OrderAudit,
    /// MySQL's orders of the item by status.
    pub statuses: std::collections::BTreeMap<String, u64>,
    /// Reservations Redis still holds open.
    pub open_in_redis: u64,
    pub stock: StockAccount,
}

impl ReservationCheck {
    /// Nothing lost or doubled, every reservation expired once, the stock whole again.
    pub fn passed(&self) -> bool {
        let expired = self.statuses.get("expired").copied().unwrap_or(0);
        self.orders.missing == 0
            && self.stock.duplicated() == 0
            && self.stock.conserved()
            && self.open_in_redis == 0
            && expired == self.stock.order_rows
            && self.stock.mysql_stock == self.stock.initial
    }

    fn markdown(&self) -> Vec<String> {
        let stock = &self.stock;
        vec![
            String::new(),
            "## Reservations".into(),
            format!(
                "Item {}, stock {}, payment window {} s, bought at concurrency {} through the same faults and never paid: each must expire once and give its unit back.",
                self.item, stock.initial, self.window_secs, self.concurrency
            ),
            format!("- reservations answered 200: {}", self.orders.confirmed),
            format!("- of those missing from MySQL: **{}**", self.orders.missing),
            format!("- duplicated order rows: **{}**", stock.duplicated()),
            format!(
                "- MySQL statuses: {:?}; still open in Redis: {}",
                self.statuses, self.open_in_redis
            ),
            format!(
                "- stock: MySQL {} (initial {}), units released {}; Redis {}; whole again: **{}**",
                stock.mysql_stock,
                stock.initial,
                stock.released,
                stock
                    .redis_stock
                    .map_or_else(|| "missing".to_owned(), |s| s.to_string()),
                if self.passed() { "yes" } else { "no" }
            ),
        ]
    }
}

impl DrillReport {
    /// Nothing lost, nothing doubled, stock conserved; every reservation expired once.
    pub fn passed(&self) -> bool {
        self.orders.missing == 0
            && self.stock.duplicated() == 0
            && self.stock.conserved()
            && self.reservations.passed()
    }

    pub fn markdown(&self) -> String {
        let stock = &self.stock;
        let mut lines = vec![
            "# Chaos drill".to_owned(),
            String::new(),
            format!(
                "Machine: {} CPUs. Item {}, initial stock {}, {}s of load at concurrency {}. Broker: the private node {}.",
                self.cpus, self.item, stock.initial, self.seconds, self.concurrency, self.broker
            ),
            String::new(),
            "## What was done".into(),
        ];
        lines.extend(self.timeline.markdown());
        if let Some(chart) = &self.chart {
            lines.extend([String::new(), chart.clone()]);
        }
        let redis = stock
            .redis_stock
            .map_or_else(|| "missing".to_owned(), |s| s.to_string());
        lines.extend([
            String::new(),
            "## What was found".into(),
            format!("- orders answered 200: {}", self.orders.confirmed),
            format!("- of those missing from MySQL: **{}**", self.orders.missing),
            format!("- duplicated order rows: **{}**", stock.duplicated()),
            format!(
                "- orders persisted whose answer never reached the client (cut by kill -9 after the script ran): {}",
                self.orders.unconfirmed
            ),
            format!(
                "- stock: MySQL {} + sold {} = {} (initial {}); Redis {redis}; conserved: **{}**",
                stock.mysql_stock,
                stock.sold,
                stock.mysql_stock + stock.sold,
                stock.initial,
                if stock.conserved() { "yes" } else { "no" }
            ),
        ]);
        lines.extend(self.reservations.markdown());
        lines.join("\n") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn events_are_put_on_the_loads_clock_and_the_marked_ones_on_the_chart() {
        let mut timeline = Timeline::default();
        timeline.note("item 7 created");
        let started = Instant::now();
        timeline.mark("kill -9 writer", "kill -9 stock-writer");
        timeline.note("load over");
        timeline.0[1].instant = started + Duration::from_millis(4_040);
        timeline.align(started);
        let times: Vec<Option<f64>> = timeline.0.iter().map(|e| e.t_s).collect();
        assert_eq!(times[..2], [None, Some(4.0)]);
        assert_eq!(
            timeline.marks(),
            [Mark {
                at_s: 4.0,
                label: "kill -9 writer".into()
            }]
        );
        let json = serde_json::to_value(&timeline).unwrap();
        assert_eq!(json[0].as_object().unwrap().len(), 2, "at and what: {json}");
        assert_eq!(json[1]["t_s"], 4.0);
        assert_eq!(json[1]["mark"], "kill -9 writer");
        let lines: Vec<String> = timeline.markdown().collect();
        assert!(lines[0].ends_with(" item 7 created"));
        assert!(lines[1].ends_with(" (t = 4.0 s) kill -9 stock-writer"));
    }

    fn report(missing: usize, duplicated: u64, mysql_stock: u64) -> DrillReport {
        DrillReport {
            cpus: 2,
            item: 7,
            seconds: 90,
            concurrency: 32,
            broker: "flash-chaos@localhost on 127.0.0.1:5679".into(),
            timeline: Timeline(vec![Event {
                at: "10:00:04".into(),
                t_s: Some(4.0),
                what: "kill -9 stock-writer".into(),
                mark: Some("kill -9 stock-writer".into()),
                instant: Instant::now(),
            }]),
            orders: OrderAudit {
                confirmed: 100,
                missing,
                unconfirmed: 2,
            },
            stock: StockAccount {
                item_id: 7,
                initial: 1000,
                sold: 102,
                released: 0,
                mysql_stock,
                stock_owed: 0,
                redis_stock: Some(898),
                order_rows: 102 + duplicated,
                distinct_orders: 102,
            },
            reservations: ReservationCheck {
                item: 8,
                window_secs: 2,
                concurrency: 8,
                orders: OrderAudit {
                    confirmed: 40,
                    missing: 0,
                    unconfirmed: 0,
                },
                statuses: [("expired".to_owned(), 40)].into(),
                open_in_redis: 0,
                stock: StockAccount {
                    item_id: 8,
                    initial: 500,
                    sold: 0,
                    released: 40,
                    mysql_stock: 500,
                    stock_owed: 0,
                    redis_stock: Some(500),
                    order_rows: 40,
                    distinct_orders: 40,
                },
            },
            per_second: PerSecond::default(),
            chart: Some("![Chaos drill](timeline.svg)".into()),
        }
    }

    #[test]
    fn a_clean_drill_passes_and_says_so() {
        let clean = report(0, 0, 898);
        assert!(clean.passed());
        let markdown = clean.markdown();
        for line in [
            "- 10:00:04 (t = 4.0 s) kill -9 stock-writer",
            "\n![Chaos drill](timeline.svg)\n",
            "- orders answered 200: 100",
            "- of those missing from MySQL: **0**",
            "- duplicated order rows: **0**",
            "(cut by kill -9 after the script ran): 2",
            "- stock: MySQL 898 + sold 102 = 1000 (initial 1000); Redis 898; conserved: **yes**",
            "Broker: the private node flash-chaos@localhost on 127.0.0.1:5679.",
            "- stock: MySQL 500 (initial 500), units released 40; Redis 500; whole again: **yes**",
        ] {
            assert!(markdown.contains(line), "missing {line:?} in\n{markdown}");
        }
    }

    #[test]
    fn a_lost_doubled_or_unconserved_order_fails_the_drill() {
        assert!(!report(1, 0, 898).passed());
        assert!(!report(0, 1, 898).passed());
        let unconserved = report(0, 0, 897);
        assert!(!unconserved.passed());
        assert!(unconserved.markdown().contains("conserved: **no**"));
        let mut still_open = report(0, 0, 898);
        still_open.reservations.open_in_redis = 1;
        assert!(!still_open.passed(), "a reservation that never expired");
        let mut doubled_release = report(0, 0, 898);
        doubled_release.reservations.stock.mysql_stock = 501;
        assert!(!doubled_release.passed(), "a unit given back twice");
    }
}
