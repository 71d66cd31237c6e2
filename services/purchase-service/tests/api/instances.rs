//! Two purchase-service instances on one database, key prefix and set of queues, as the
//! gateway runs them: a buyer's admission rate holds over both together. Also the
//! instance registry on its own: each instance gets its own rank, a member that stops
//! beating drops out once its heartbeat runs out, and one that leaves is gone at once.

use crate::helpers::{Stack, purchase_settings, spawn_stack_with, token};
use actix_web::dev::ServerHandle;
use common::redis::Keyspace;
use prometheus_client::metrics::gauge::Gauge;
use purchase_service::configuration::{Settings, Strategy};
use purchase_service::membership::{Registry, Share};
use purchase_service::startup::Application;
use serde_json::json;
use std::time::{Duration, Instant};
use testkit::{Client, TestEnv};
use web_layer::service::{Running, Service};

/// Heartbeats this often in these tests, so a membership change shows within 300 ms.
const HEARTBEAT_MS: u64 = 100;

/// Another instance of the stack's purchase-service, on the same settings.
struct Instance {
    client: Client,
    handle: ServerHandle,
    running: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Instance {
    async fn start(settings: &Settings) -> Instance {
        let app = Application::build(settings.clone())
            .await
            .expect("build the second instance");
        let client = Client::new(format!("http://127.0.0.1:{}", app.port()));
        let handle = app.handle();
        let running = actix_web::rt::spawn(app.run_until_stopped());
        Instance {
            client,
            handle,
            running,
        }
    }

    /// Stops it as SIGTERM does, and waits until it has exited (and left the set).
    async fn stop(self) {
        self.handle.stop(true).await;
        self.running.await.unwrap().unwrap();
    }
}

/// A counter or gauge of one instance's metrics (0 when it has no sample yet).
async fn metric(client: &Client, name: &str) -> u64 {
    let metrics = client.get("/metrics", None).await;
    String::from_utf8_lossy(&metrics.raw)
        .lines()
        .find(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// Waits until every one of `clients` sees `instances` live instances.
async fn until_each_sees(clients: &[&Client], instances: u64) {
    testkit::eventually(10, "every instance sees the others", || async {
        for client in clients {
            if metric(client, "purchase_instances_live").await != instances {
                return false;
            }
        }
        true
    })
    .await;
}

async fn buy_at(client: &Client, user_id: u64, item: u64) -> testkit::Response {
    client
        .post(
            &format!("/api/v1/items/{item}/purchase"),
            Some(&token(user_id)),
            &json!({ "quantity": 1 }),
        )
        .await
}

async fn two_instances(customize: impl FnOnce(&mut Settings)) -> (Stack, Instance) {
    let stack = spawn_stack_with(Strategy::Lua, |settings| {
        settings.purchase.instance_heartbeat_ms = HEARTBEAT_MS;
        customize(settings);
    })
    .await;
    let second = Instance::start(&stack.settings).await;
    until_each_sees(&[&stack.client, &second.client], 2).await;
    (stack, second)
}

#[actix_web::test]
async fn a_buyer_spread_over_two_instances_is_admitted_the_configured_rate_in_total() {
    let (rate, burst) = (2u32, 4u32);
    let (stack, second) = two_instances(|settings| {
        settings.purchase.rate_per_user = rate;
        settings.purchase.burst_per_user = burst;
    })
    .await;
    let item = stack.item(1000, None).await;
    let instances = [&stack.client, &second.client];
    let started = Instant::now();
    let (mut admitted, mut refused) = (0u32, 0u32);
    for request in 0..40 {
        let response = buy_at(instances[request % 2], 7, item).await;
        match response.status {
            200 => admitted += 1,
            429 => refused += 1,
            other => panic!("unexpected {other}: {}", response.body),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Each instance holds burst/2 and refills at rate/2 from its first request on, so
    // the two together admit at most burst + rate × elapsed; each was full at first.
    let most = f64::from(burst) + f64::from(rate) * elapsed;
    assert!(
        f64::from(admitted) <= most,
        "{admitted} admitted in {elapsed:.2}s; at most {most:.1} (one bucket per instance would give {})",
        2 * burst
    );
    assert!(admitted >= burst, "{admitted} admitted: the burst at least");
    assert_eq!(admitted + refused, 40);
    assert_eq!(
        stack.redis_stock(item).await,
        1000 - i64::from(admitted),
        "refused purchases took nothing"
    );
    second.stop().await;
}

#[actix_web::test]
async fn an_instance_that_stops_beating_drops_out_once_its_heartbeat_runs_out() {
    let env = TestEnv::new().await;
    let settings = purchase_settings(&env, Strategy::Lua);
    let redis = common::redis::pool(&settings.redis).unwrap();
    let keys = Keyspace::new(env.redis.prefix.clone());
    let heartbeat = Duration::from_millis(HEARTBEAT_MS);
    let registry = || Registry::new(redis.clone(), &keys, heartbeat, Gauge::default());
    let (first, second) = (registry(), registry());
    assert_eq!(first.beat().await.unwrap(), Share::ALONE);
    let seen_by_second = second.beat().await.unwrap();
    let seen_by_first = first.beat().await.unwrap();
    assert_eq!(seen_by_first.instances, 2);
    assert_eq!(seen_by_second.instances, 2);
    assert_ne!(seen_by_first.rank, seen_by_second.rank, "one rank each");

    // The second stops beating (as a killed process would): once its heartbeat has run
    // out, the first is alone.
    testkit::eventually(10, "the silent instance dropped", || async {
        first.beat().await.unwrap() == Share::ALONE
    })
    .await;

    // One that leaves is gone at once.
    second.beat().await.unwrap();
    assert_eq!(first.beat().await.unwrap().instances, 2);
    second.leave().await.unwrap();
    assert_eq!(first.beat().await.unwrap(), Share::ALONE);
}
