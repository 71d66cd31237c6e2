//! The drill's report: what was done when, and what was found (the order audit and the
//! item's stock account), as JSON and as Markdown.

use devstack::{OrderAudit, StockAccount};
use serde::Serialize;

/// Something the drill did, at a time of day (HH:MM:SS).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub at: String,
    pub what: String,
}

/// The drill's events in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timeline(pub Vec<Event>);

impl Timeline {
    /// Records an event now and says it on standard error.
    pub fn note(&mut self, what: impl Into<String>) {
        let what = what.into();
        crate::step(&what);
        let at = chrono::Local::now().format("%H:%M:%S").to_string();
        self.0.push(Event { at, what });
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
}

impl DrillReport {
    /// Nothing lost, nothing doubled, stock conserved.
    pub fn passed(&self) -> bool {
        self.orders.missing == 0 && self.stock.duplicated() == 0 && self.stock.conserved()
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
        lines.extend(
            self.timeline
                .0
                .iter()
                .map(|e| format!("- {} {}", e.at, e.what)),
        );
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
        lines.join("\n") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(missing: usize, duplicated: u64, mysql_stock: u64) -> DrillReport {
        DrillReport {
            cpus: 2,
            item: 7,
            seconds: 90,
            concurrency: 32,
            broker: "flash-chaos@localhost on 127.0.0.1:5679".into(),
            timeline: Timeline(vec![Event {
                at: "10:00:04".into(),
                what: "kill -9 stock-writer".into(),
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
                mysql_stock,
                redis_stock: Some(898),
                order_rows: 102 + duplicated,
                distinct_orders: 102,
            },
        }
    }

    #[test]
    fn a_clean_drill_passes_and_says_so() {
        let clean = report(0, 0, 898);
        assert!(clean.passed());
        let markdown = clean.markdown();
        for line in [
            "- 10:00:04 kill -9 stock-writer",
            "- orders answered 200: 100",
            "- of those missing from MySQL: **0**",
            "- duplicated order rows: **0**",
            "(cut by kill -9 after the script ran): 2",
            "- stock: MySQL 898 + sold 102 = 1000 (initial 1000); Redis 898; conserved: **yes**",
            "Broker: the private node flash-chaos@localhost on 127.0.0.1:5679.",
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
    }
}
