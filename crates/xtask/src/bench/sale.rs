//! The flash-sale moment, as its buyers meet it: one item with a small stock and one
//! with a large one, [`SALE_BUYERS`] distinct buyers with their own tokens coming
//! through the gateway as fast as the stack takes them (every connection sends the next
//! buyer's purchase as soon as its last answer came), until a few seconds after the
//! first "sold out". What it reports: how long the stock lasted, the successful
//! purchases' rate and latency, how fast the late buyers were turned away (and how many
//! of them the sold-out marks answered without Redis), 5xx, oversold, and how long
//! MySQL took to hold every order after the sale.

use super::Bench;
use crate::metrics;
use anyhow::Context;
use devstack::probe;
use loadgen::Summary as Load;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Distinct buyers (tokens) of a sale.
pub const SALE_BUYERS: u64 = 20_000;
/// The stocks on sale: sold out in a blink, and lasting a while.
pub const SALE_STOCKS: [u64; 2] = [1_000, 100_000];
/// How long buyers keep coming after the first "sold out".
const SALE_TAIL: Duration = Duration::from_secs(3);
/// A sale that has not sold out by then ends anyway.
const SALE_LIMIT: Duration = Duration::from_secs(120);

/// One sale's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlashSale {
    pub stock: u64,
    pub buyers: u64,
    pub concurrency: usize,
    /// `single` or `cluster` (with `REDIS_MIN_REPLICAS_ACKED=1`).
    pub redis: String,
    pub load: Load,
    /// Purchases purchase-service answered 409 from its sold-out marks.
    pub answered_from_marks: u64,
    /// From the end of the sale until MySQL held every order.
    pub drain_s: f64,
    pub oversold: u64,
}

impl FlashSale {
    /// The key of its figures in `summary.json`: `flash_sale_1k`, `flash_sale_cluster_1k`.
    pub fn key(&self) -> String {
        let stock = if self.stock.is_multiple_of(1000) {
            format!("{}k", self.stock / 1000)
        } else {
            self.stock.to_string()
        };
        match self.redis.as_str() {
            "single" => format!("flash_sale_{stock}"),
            other => format!("flash_sale_{other}_{stock}"),
        }
    }

    /// The share of the late buyers' refusals the sold-out marks answered.
    pub fn answered_from_marks_share(&self) -> f64 {
        let refused = self.load.error_count("INSUFFICIENT_STOCK");
        self.answered_from_marks as f64 / refused.max(1) as f64
    }

    /// Its figures for `summary.json`, each as `<key>_<figure>`.
    pub fn summary_figures(&self) -> Vec<(String, f64)> {
        let key = self.key();
        let sale = self.load.sale.clone().unwrap_or_else(no_sale);
        [
            ("sold_out_s", sale.sold_out_after_s),
            ("ok_per_s", sale.ok_per_s),
            ("ok_p50_ms", sale.ok_latency_ms.p50),
            ("ok_p99_ms", sale.ok_latency_ms.p99),
            ("rejected_per_s", sale.rejected_per_s),
            ("sold_out_mark_share", self.answered_from_marks_share()),
            ("5xx", sale.server_errors as f64),
            ("oversold", self.oversold as f64),
            ("drain_s", self.drain_s),
        ]
        .into_iter()
        .map(|(figure, value)| (format!("{key}_{figure}"), value))
        .collect()
    }

    pub fn table_row(&self) -> String {
        let sale = self.load.sale.clone().unwrap_or_else(no_sale);
        format!(
            "| {} | {} | {} | {:.2} | {:.0} | {:.1} | {:.1} | {:.0} | {:.0} % | {} | {} | {} | {:.1} |",
            self.redis,
            self.stock,
            self.buyers,
            sale.sold_out_after_s,
            sale.ok_per_s,
            sale.ok_latency_ms.p50,
            sale.ok_latency_ms.p99,
            sale.rejected_per_s,
            self.answered_from_marks_share() * 100.0,
            sale.server_errors,
            self.load.ok,
            self.oversold,
            self.drain_s
        )
    }
}

fn no_sale() -> loadgen::SaleFigures {
    loadgen::SaleFigures {
        sold_out_after_s: 0.0,
        ok_per_s: 0.0,
        ok_latency_ms: loadgen::Latency {
            p50: 0.0,
            p95: 0.0,
            p99: 0.0,
            max: 0.0,
            mean: 0.0,
        },
        rejected_after: 0,
        rejected_per_s: 0.0,
        server_errors: 0,
    }
}

/// The section of `report.md`.
pub fn markdown(sales: &[FlashSale]) -> String {
    let mut lines = vec![
        String::new(),
        "## Flash sale".to_owned(),
        String::new(),
        format!(
            "{SALE_BUYERS} buyers with their own tokens through the gateway, each connection sending the next buyer's purchase as soon as its answer came, until {}s after the first sold out. Rejected/s: answers after the last sale; from marks: the share of the sold-out answers given without Redis.",
            SALE_TAIL.as_secs()
        ),
        String::new(),
        "| Redis | stock | buyers | sold out after s | purchases/s | p50 ms (200s) | p99 ms (200s) | rejected/s after | from marks | 5xx | sold | oversold | MySQL had all after s |".into(),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|".into(),
    ];
    lines.extend(sales.iter().map(FlashSale::table_row));
    lines.join("\n") + "\n"
}

impl Bench<'_> {
    /// Runs one sale of a new item of `stock` through the gateway; the item, the load,
    /// and how many refusals purchase-service answered from its marks meanwhile. The
    /// caller drains and checks.
    pub(super) async fn sell_out(
        &mut self,
        stock: u64,
        label: &str,
    ) -> anyhow::Result<(u64, Load, u64)> {
        let item = self.new_item(stock).await?;
        let ports = self.stack.ports("purchase-service");
        let marks_before = answered_from_marks(&ports).await?;
        crate::step(format!(
            "flash sale: {label} ({stock} units, {SALE_BUYERS} buyers, concurrency {})",
            self.plan.top()
        ));
        let run = loadgen::Run {
            concurrency: self.plan.top(),
            duration: SALE_LIMIT,
            users: SALE_BUYERS,
            label: label.to_owned(),
            sale_tail: Some(SALE_TAIL),
            ..loadgen::Run::new(
                format!("http://127.0.0.1:{}", self.stack.gateway_port),
                vec![item],
                self.stack.settings.jwt.private_key_path.clone(),
            )
        };
        let outcome = tokio::task::spawn_blocking(move || run.execute()).await??;
        super::write_json(&self.out.join(format!("{label}.json")), &outcome.summary)?;
        let marks = answered_from_marks(&ports).await? - marks_before;
        Ok((item, outcome.summary, marks))
    }
}

/// purchase-service's count of purchases answered from its sold-out marks, over the
/// instances on `ports`.
async fn answered_from_marks(ports: &[u16]) -> anyhow::Result<u64> {
    let [answered] = purchase_outcomes(ports, ["outcome=\"sold_out_mark\""]).await?;
    Ok(answered as u64)
}

/// purchase-service's `purchase_outcomes_total` over its instances on `ports`, summed
/// once per label: the series whose labels contain it (`outcome=`: every series).
pub(super) async fn purchase_outcomes<const N: usize>(
    ports: &[u16],
    labels: [&str; N],
) -> anyhow::Result<[f64; N]> {
    let mut sums = [0.0; N];
    for &port in ports {
        let text = probe::get(port, "/metrics")
            .await
            .with_context(|| format!("purchase-service's /metrics on {port} does not answer"))?
            .body;
        for (sum, label) in sums.iter_mut().zip(labels) {
            *sum += metrics::counter_sum(&text, "purchase_outcomes_total", label);
        }
    }
    Ok(sums)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sale_is_keyed_by_its_redis_and_stock() {
        let sale = FlashSale {
            stock: 100_000,
            buyers: SALE_BUYERS,
            concurrency: 256,
            redis: "cluster".into(),
            load: serde_json::from_value(serde_json::json!({
                "label": "sale", "url": "http://x", "items": [1], "concurrency": 256,
                "mode": "closed", "duration_s": 5.0, "requests": 120000, "ok": 100000,
                "ok_per_s": 20000.0, "requests_per_s": 24000.0,
                "statuses": {"200": 100000, "409": 20000},
                "error_codes": {"INSUFFICIENT_STOCK": 20000},
                "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 3.0, "max": 4.0, "mean": 1.5}
            }))
            .unwrap(),
            answered_from_marks: 15_000,
            drain_s: 1.5,
            oversold: 0,
        };
        assert_eq!(sale.key(), "flash_sale_cluster_100k");
        assert_eq!(sale.answered_from_marks_share(), 0.75);
        let figures = sale.summary_figures();
        assert!(figures.contains(&("flash_sale_cluster_100k_sold_out_mark_share".into(), 0.75)));
        assert!(figures.contains(&("flash_sale_cluster_100k_drain_s".into(), 1.5)));
        assert!(sale.table_row().starts_with("| cluster | 100000 | 20000 |"));
    }
}
