//! `cargo xtask chaos --redis [SECONDS]`: the Redis drill. During a purchase load
//! through the gateway, on one hot item and on 50 items: the replica of the Redis master
//! that owns the (first) item stalls for 2 s (a replica falling behind, as across a slow
//! network), the master is killed (kill -9), the replica resumes and the cluster fails
//! over to it, the killed node is restarted (it rejoins as a replica), then the orders
//! drain; with `REDIS_MIN_REPLICAS_ACKED` 1 and then 0, so that what the
//! acknowledgement saves is measured. Then a single server with AOF
//! (`appendfsync everysec`, then `always`) killed and restarted. Every scenario reports
//! the window without a 200, the 5xx, the 200-answered orders missing from MySQL, the
//! units Redis would sell twice (its stock above MySQL's) and conservation, and, where
//! Redis lost data, the same after `stock-writer rebuild-redis`. The servers are
//! private (ports 7101-7106 and 7199, under target/chaos/redis); the services go back
//! to the machine's Redis afterwards. Each scenario records its seconds and draws them
//! with its faults ([`super::seconds`]); the report is [`super::redis_report`]. Passes
//! when the acknowledged scenarios lost and doubled nothing and no scenario doubled an
//! order.

use super::redis_nodes::{RedisCluster, RedisNode, start_single};
use super::redis_report::ScenarioReport;
use super::report::Timeline;
use super::seconds::{LoadSeconds, Sampler};
use crate::api::Admin;
use crate::native::NativeStack;
use crate::step;
use anyhow::Context;
use common::config::{RedisMode, RedisSettings, ReplicasAcked};
use common::redis::{Keyspace, SharedConnection, slot_of};
use devstack::stock::{outbox_len, persisted_order_ids};
use devstack::{OrderAudit, SERVICES, ServiceEnv, StockAccount};
use diesel_async::{AsyncConnection, AsyncMysqlConnection};
use inventory::ItemKeys;
use std::path::Path;
use std::time::{Duration, Instant};

pub const INITIAL_STOCK: u64 = 1_000_000;
pub const CONCURRENCY: usize = 32;
const MANY_ITEMS: usize = 50;
/// Load before the fault.
const BEFORE_FAULT: Duration = Duration::from_secs(5);
/// How far the replica falls behind before its master is killed.
const REPLICA_STALL: Duration = Duration::from_secs(2);
const DRAIN_LIMIT: Duration = Duration::from_secs(180);

/// Where a scenario's Redis is.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Cluster { acked: u32 },
    Single { appendfsync: &'static str },
}

/// Runs every scenario; the reports, in order.
pub async fn run(
    stack: &NativeStack,
    seconds: u64,
    out: &Path,
) -> anyhow::Result<Vec<ScenarioReport>> {
    stack.up().await?;
    let dir = out.join("redis");
    step("starting the drill's Redis Cluster on 127.0.0.1:7101-7106");
    let cluster = RedisCluster::start(&dir).await?;
    let mut reports = Vec::new();
    let mut failed = None;
    let mut record = |name: String, outcome: anyhow::Result<ScenarioReport>| match outcome {
        Ok(report) => reports.push(report),
        Err(error) => {
            step(format!("scenario {name} failed: {error:#}"));
            failed.get_or_insert(error.context(name));
        }
    };
    for acked in [1, 0] {
        for items in [1, MANY_ITEMS] {
            let backend = Backend::Cluster { acked };
            let outcome = scenario(stack, backend, Some(&cluster), None, items, seconds).await;
            record(format!("cluster acked={acked} items={items}"), outcome);
        }
    }
    cluster.stop();
    for appendfsync in ["everysec", "always"] {
        step(format!(
            "starting a single Redis with appendfsync {appendfsync} on 127.0.0.1:7199"
        ));
        let single = start_single(&dir, appendfsync).await?;
        let backend = Backend::Single { appendfsync };
        let outcome = scenario(stack, backend, None, Some(&single), 1, seconds).await;
        record(format!("single appendfsync={appendfsync}"), outcome);
        single.kill();
    }
    step("the services back on the machine's Redis");
    for service in SERVICES {
        stack.restart_service(service, &ServiceEnv::new()).await?;
    }
    match failed {
        Some(error) => Err(error),
        None => Ok(reports),
    }
}

fn redis_settings(
    stack: &NativeStack,
    backend: Backend,
    cluster: Option<&RedisCluster>,
) -> RedisSettings {
    let mut settings = stack.settings.redis.clone();
    match backend {
        Backend::Cluster { acked } => {
            settings.mode = RedisMode::Cluster;
            settings.cluster_nodes = cluster.map(RedisCluster::nodes_setting).unwrap_or_default();
            settings.min_replicas_acked = ReplicasAcked::Exactly(acked);
        }
        Backend::Single { .. } => {
            settings.mode = RedisMode::Single;
            settings.host = "127.0.0.1".into();
            settings.port = super::redis_nodes::SINGLE_PORT;
            settings.min_replicas_acked = ReplicasAcked::Exactly(0);
        }
    }
    settings
}

fn service_env(settings: &RedisSettings) -> ServiceEnv {
    ServiceEnv::new()
        .with("REDIS_MODE", settings.mode.as_str())
        .with("REDIS_CLUSTER_NODES", settings.cluster_nodes.clone())
        .with("REDIS_HOST", settings.host.clone())
        .with("REDIS_PORT", settings.port.to_string())
        .with(
            "REDIS_MIN_REPLICAS_ACKED",
            settings.replicas_to_ack().to_string(),
        )
}

async fn scenario(
    stack: &NativeStack,
    backend: Backend,
    cluster: Option<&RedisCluster>,
    single: Option<&RedisNode>,
    item_count: usize,
    seconds: u64,
) -> anyhow::Result<ScenarioReport> {
    let items = if item_count == 1 {
        "hot item".to_owned()
    } else {
        format!("{item_count} items")
    };
    let (name, chart_file) = match backend {
        Backend::Cluster { acked } => (
            format!("cluster, REDIS_MIN_REPLICAS_ACKED={acked}, {items}"),
            format!(
                "redis-timeline-cluster-acked{acked}-{}",
                items.replace(' ', "-")
            ),
        ),
        Backend::Single { appendfsync } => (
            format!("single server, appendfsync {appendfsync}"),
            format!("redis-timeline-single-{appendfsync}"),
        ),
    };
    step(format!("scenario: {name}"));
    let settings = redis_settings(stack, backend, cluster);
    let env = service_env(&settings);
    for service in SERVICES {
        stack.restart_service(service, &env).await?;
    }
    let admin = Admin::login(stack.gateway_port).await?;
    let mut items = Vec::with_capacity(item_count);
    for n in 0..item_count {
        let name = format!("redis drill {} {n}", std::process::id());
        items.push(admin.create_item(&name, INITIAL_STOCK).await?);
    }
    let keyspace = Keyspace::new(settings.key_prefix.clone());
    let mut timeline = Timeline::default();
    timeline.note(format!(
        "{item_count} item(s) with stock {INITIAL_STOCK} each; load for {seconds}s at concurrency {CONCURRENCY} through the gateway"
    ));
    let run = loadgen::Run {
        concurrency: CONCURRENCY,
        duration: Duration::from_secs(seconds),
        collect_orders: true,
        label: name.clone(),
        progress: false,
        ..loadgen::Run::new(
            format!("http://127.0.0.1:{}", stack.gateway_port),
            items.clone(),
            stack.settings.jwt.private_key_path.clone(),
        )
    };
    let sampler = Sampler::start(
        settings.clone(),
        items.clone(),
        NativeStack::port("stock-writer"),
    );
    let load = tokio::task::spawn_blocking(move || run.execute());
    tokio::time::sleep(BEFORE_FAULT).await;

    let failover_s = match (cluster, single) {
        (Some(cluster), _) => {
            let slot = slot_of(&ItemKeys::new(&keyspace, items[0]).stock());
            let master = cluster.master_of(slot).await?;
            let node = cluster
                .node(master)
                .context("the master is not a drill node")?;
            let replica = cluster.replica_of(master).await?;
            timeline.mark(
                "replica stalls",
                format!(
                    "the replica (port {}) of the master of item {}'s slot {slot} (port {master}) stalls (SIGSTOP): it falls behind, as across a slow network",
                    replica.port, items[0]
                ),
            );
            replica.pause();
            tokio::time::sleep(REPLICA_STALL).await;
            timeline.mark(
                "kill -9 master",
                format!("kill -9 the master (port {master})"),
            );
            let killed = Instant::now();
            node.kill();
            tokio::time::sleep(Duration::from_millis(500)).await;
            timeline.mark(
                "replica resumes",
                format!("the replica (port {}) resumes (SIGCONT)", replica.port),
            );
            replica.resume();
            cluster.wait_failover(slot, master).await?;
            let failover = killed.elapsed().as_secs_f64();
            timeline.mark(
                "failover",
                format!(
                    "slot {slot} served by port {} after {failover:.1}s",
                    cluster.master_of(slot).await?
                ),
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
            timeline.mark("restart old master", format!("restart port {master}"));
            node.start()?;
            cluster.wait_replica(master).await?;
            timeline.mark(
                "old master back",
                format!("port {master} back, a replica in sync"),
            );
            Some(failover)
        }
        (None, Some(node)) => {
            timeline.mark("kill -9 Redis", "kill -9 Redis");
            node.kill();
            tokio::time::sleep(Duration::from_secs(1)).await;
            timeline.mark("restart Redis", "restart Redis (it replays its AOF)");
            node.start()?;
            node.wait_up().await?;
            timeline.mark("Redis back", "Redis back");
            None
        }
        (None, None) => None,
    };
    if load.is_finished() {
        timeline.note("WARNING: the load ended before the fault was over; pass a longer SECONDS");
    }
    let outcome = load.await??;
    let loads = vec![LoadSeconds::of("purchases", &outcome, outcome.started)];
    let summary = &outcome.summary;
    timeline.note(format!(
        "load over: {}",
        serde_json::to_string(&summary.statuses)?
    ));

    stack.wait_ready().await?;
    let mut mysql = AsyncMysqlConnection::establish(&stack.settings.database.url()).await?;
    let mut redis = common::redis::client(&settings)?.get().await?;
    let drained = drain(&mut mysql, &mut redis, &keyspace, &items).await?;
    timeline.note(format!("drained in {}s", drained.as_secs()));
    let per_second = sampler.stop(outcome.started, loads);

    let mut persisted = Vec::new();
    for item in &items {
        persisted.extend(persisted_order_ids(&mut mysql, *item).await?);
    }
    let orders = OrderAudit::new(&outcome.order_ids, &persisted);
    let measured = accounts(&mut mysql, &mut redis, &keyspace, &items).await?;
    let conserved = measured.iter().all(StockAccount::conserved);
    let conserved_after_rebuild = if conserved {
        None
    } else {
        timeline.note("stock-writer rebuild-redis");
        stack.run_cli_with("stock-writer", &["rebuild-redis"], &env)?;
        let after = accounts(&mut mysql, &mut redis, &keyspace, &items).await?;
        Some(after.iter().all(StockAccount::conserved))
    };
    timeline.align(outcome.started);
    Ok(ScenarioReport {
        name,
        chart_file,
        items: item_count,
        timeline,
        ok: summary.ok,
        server_errors: summary
            .statuses
            .iter()
            .filter(|(status, _)| **status >= 500 || **status == 0)
            .map(|(_, n)| n)
            .sum(),
        error_codes: summary.error_codes.clone(),
        longest_gap_without_ok_s: summary.longest_gap_without_ok_s,
        failover_s,
        orders,
        duplicated: measured.iter().map(StockAccount::duplicated).sum(),
        sellable_twice: measured
            .iter()
            .map(|a| a.redis_stock.unwrap_or(0) - a.mysql_stock as i64)
            .filter(|over| *over > 0)
            .sum(),
        conserved,
        conserved_after_rebuild,
        guaranteed: matches!(backend, Backend::Cluster { acked: 1.. }),
        per_second,
        chart: None,
    })
}

/// Waits until no order of the items is left in an outbox and MySQL's order count has
/// not moved for three seconds.
async fn drain(
    mysql: &mut AsyncMysqlConnection,
    redis: &mut SharedConnection,
    keyspace: &Keyspace,
    items: &[u64],
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let (mut last, mut still_since) = (u64::MAX, Instant::now());
    while started.elapsed() < DRAIN_LIMIT {
        let pending = outbox_len(redis, keyspace, items).await?;
        let rows: u64 = accounts(mysql, redis, keyspace, items)
            .await?
            .iter()
            .map(|a| a.order_rows)
            .sum();
        if rows != last {
            (last, still_since) = (rows, Instant::now());
        }
        if pending == 0 && still_since.elapsed() >= Duration::from_secs(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(started.elapsed())
}

async fn accounts(
    mysql: &mut AsyncMysqlConnection,
    redis: &mut SharedConnection,
    keyspace: &Keyspace,
    items: &[u64],
) -> anyhow::Result<Vec<StockAccount>> {
    let mut accounts = Vec::with_capacity(items.len());
    for item in items {
        accounts.push(StockAccount::measure(mysql, redis, keyspace, *item, INITIAL_STOCK).await?);
    }
    Ok(accounts)
}
