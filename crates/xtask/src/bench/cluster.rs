//! The bench's Redis Cluster runs, in the same run as the single-server ones so they
//! compare: the hot item and 50 items through the gateway with the services on the local
//! cluster (`REDIS_CLUSTER_NODES`, which `scripts/bench` starts), with
//! `REDIS_MIN_REPLICAS_ACKED` 0 and then 1, so the acknowledgement's cost is a ratio.
//! Conservation is checked after each. Written to `cluster.json` and as a section of
//! `report.md`.

use super::sale::{FlashSale, SALE_BUYERS, SALE_STOCKS};
use super::{Bench, HOT_STOCK, MANY_ITEMS, MANY_ITEMS_STOCK};
use crate::step;
use anyhow::Context;
use common::config::{RedisMode, ReplicasAcked};
use common::redis::{Keyspace, SharedConnection};
use devstack::stock::outbox_len;
use devstack::{SERVICES, ServiceEnv, StockAccount};
use loadgen::Summary as Load;
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize)]
pub struct ClusterRun {
    pub acked: u32,
    pub items: usize,
    pub load: Load,
    pub conserved: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterRuns {
    pub nodes: String,
    pub runs: Vec<ClusterRun>,
    /// The small-stock flash sale, with the acknowledgement on.
    pub flash_sales: Vec<FlashSale>,
}

impl ClusterRuns {
    fn rps(&self, acked: u32, items: usize) -> f64 {
        self.runs
            .iter()
            .find(|r| r.acked == acked && r.items == items)
            .map_or(0.0, |r| r.load.ok_per_s)
    }

    /// The section of `report.md`, beside the single server's figures at the same
    /// concurrency.
    pub fn markdown(&self, single_hot_rps: f64, single_many_rps: f64) -> String {
        let mut lines = vec![
            String::new(),
            "## Redis Cluster".to_owned(),
            String::new(),
            format!(
                "The services on a local cluster ({}: 3 masters, 3 replicas, on the same two cores), through the gateway.",
                self.nodes
            ),
            String::new(),
            "| scenario | REDIS_MIN_REPLICAS_ACKED | purchases/s | p50 ms | p99 ms | non-200 | conserved |".into(),
            "|---|---|---|---|---|---|---|".into(),
        ];
        for run in &self.runs {
            let what = if run.items == 1 {
                "hot item".to_owned()
            } else {
                format!("{} items", run.items)
            };
            lines.push(format!(
                "| {what} | {} | {:.0} | {:.2} | {:.2} | {} | {} |",
                run.acked,
                run.load.ok_per_s,
                run.load.latency_ms.p50,
                run.load.latency_ms.p99,
                run.load.requests - run.load.ok,
                if run.conserved { "yes" } else { "**no**" }
            ));
        }
        let ratio = |a: f64, b: f64| a / b.max(1e-9);
        lines.extend([
            String::new(),
            format!(
                "- the acknowledgement's cost (acked 1 / acked 0): hot item **{:.2}**, 50 items **{:.2}**",
                ratio(self.rps(1, 1), self.rps(0, 1)),
                ratio(self.rps(1, MANY_ITEMS), self.rps(0, MANY_ITEMS))
            ),
            format!(
                "- cluster (acked 0) / single server: hot item {:.2}, 50 items {:.2}",
                ratio(self.rps(0, 1), single_hot_rps),
                ratio(self.rps(0, MANY_ITEMS), single_many_rps)
            ),
        ]);
        lines.join("\n") + "\n"
    }
}

impl Bench<'_> {
    /// Every cluster run; the services are back on the single server afterwards.
    pub(super) async fn cluster(&mut self, concurrency: usize) -> anyhow::Result<ClusterRuns> {
        let nodes = std::env::var("REDIS_CLUSTER_NODES")
            .ok()
            .filter(|n| !n.is_empty())
            .context("REDIS_CLUSTER_NODES is not set (deploy/local.env names the local cluster)")?;
        let mut settings = self.stack.settings.redis.clone();
        settings.mode = RedisMode::Cluster;
        settings.cluster_nodes = nodes.clone();
        settings.min_replicas_acked = ReplicasAcked::Exactly(0);
        let mut redis = common::redis::client(&settings)?
            .get()
            .await
            .context("the local Redis Cluster (scripts/bench starts it)")?;
        let keyspace = Keyspace::new(settings.key_prefix.clone());
        let gateway = self.stack.gateway_port;
        let mut runs = Vec::new();
        let mut flash_sales = Vec::new();
        let outcome = async {
            for acked in [0, 1] {
                step(format!(
                    "the services on the Redis Cluster, REDIS_MIN_REPLICAS_ACKED={acked}"
                ));
                let env = ServiceEnv::new()
                    .with("REDIS_MODE", "cluster")
                    .with("REDIS_CLUSTER_NODES", nodes.clone())
                    .with("REDIS_MIN_REPLICAS_ACKED", acked.to_string());
                for service in SERVICES {
                    self.stack.restart_service(service, &env).await?;
                }
                for (count, stock) in [(1, HOT_STOCK), (MANY_ITEMS, MANY_ITEMS_STOCK)] {
                    let mut items = Vec::with_capacity(count);
                    for _ in 0..count {
                        items.push(self.new_item(stock).await?);
                    }
                    let label = format!("cluster-acked{acked}-items{count}-c{concurrency}");
                    let load = self
                        .load(
                            &label,
                            gateway,
                            items.clone(),
                            concurrency,
                            self.plan.duration,
                        )
                        .await?;
                    drain(&mut redis, &keyspace, &items).await?;
                    let mut conserved = true;
                    for item in &items {
                        let account = StockAccount::measure(
                            &mut self.backends.mysql,
                            &mut redis,
                            &keyspace,
                            *item,
                            stock,
                        )
                        .await?;
                        conserved &= account.conserved();
                        self.record_check(&label, account);
                    }
                    runs.push(ClusterRun {
                        acked,
                        items: count,
                        load,
                        conserved,
                    });
                }
            }
            // The services are still on the cluster with the acknowledgement on.
            let stock = SALE_STOCKS[0];
            let label = format!("cluster-flash-sale-{stock}");
            let (item, load, answered_from_marks) = self.sell_out(stock, &label).await?;
            let drain_s = drain(&mut redis, &keyspace, &[item]).await?;
            let account =
                StockAccount::measure(&mut self.backends.mysql, &mut redis, &keyspace, item, stock)
                    .await?;
            let oversold = self.record_check(&label, account);
            flash_sales.push(FlashSale {
                stock,
                buyers: SALE_BUYERS,
                concurrency,
                redis: "cluster".into(),
                load,
                answered_from_marks,
                drain_s,
                oversold,
            });
            anyhow::Ok(())
        }
        .await;
        step("the services back on the single Redis server");
        for service in SERVICES {
            self.stack
                .restart_service(service, &ServiceEnv::new())
                .await?;
        }
        outcome?;
        Ok(ClusterRuns {
            nodes,
            runs,
            flash_sales,
        })
    }
}

/// Waits until stock-writer has persisted every order of `items`; seconds waited.
async fn drain(
    redis: &mut SharedConnection,
    keyspace: &Keyspace,
    items: &[u64],
) -> anyhow::Result<f64> {
    let started = Instant::now();
    while started.elapsed() < super::DRAIN_LIMIT && outbox_len(redis, keyspace, items).await? > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0)
}
