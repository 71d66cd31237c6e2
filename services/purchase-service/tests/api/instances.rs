//! Two purchase-service instances on one database, key prefix and set of queues, as the
//! gateway runs them: a buyer's admission rate holds over both together, the expiry
//! worker and the outbox relay split the items between them (each reservation expired,
//! each stuck order republished, by one instance), and when one stops the other takes
//! its items over. Also the instance registry on its own: a member that stops beating
//! drops out once its heartbeat runs out.

use crate::helpers::{Stack, purchase_settings, spawn_stack_with, token};
use crate::lifecycle::reservable;
use actix_web::dev::ServerHandle;
use common::redis::Keyspace;
use prometheus_client::metrics::gauge::Gauge;
use purchase_service::configuration::{Settings, Strategy};
use purchase_service::membership::{Registry, Share};
use purchase_service::startup::Application;
use redis::AsyncCommands;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use testkit::{Client, TestEnv};
use web_layer::service::{Running, Service};

/// Heartbeats this often in these tests, so a membership change shows within 300 ms.
const HEARTBEAT_MS: u64 = 100;

/// Another instance of the stack's purchase-service, on the same settings.
pub struct Instance {
    pub client: Client,
    handle: ServerHandle,
    running: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Instance {
    pub async fn start(settings: &Settings) -> Instance {
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
    pub async fn stop(self) {
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

pub async fn two_instances(customize: impl FnOnce(&mut Settings)) -> (Stack, Instance) {
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

/// Items ids and, per item, how many orders to place: 2 on an even id, 3 on an odd
/// one, so that each instance's count tells which items it did.
fn orders_per_item(items: &[u64]) -> BTreeMap<u64, u64> {
    items
        .iter()
        .map(|item| (*item, if item % 2 == 0 { 2 } else { 3 }))
        .collect()
}

/// What the instances of rank 0 and rank 1 (of two) own: the orders on even and on odd
/// items, sorted.
fn split_by_owner(orders: &BTreeMap<u64, u64>) -> Vec<u64> {
    let of = |rank| {
        let share = Share { rank, instances: 2 };
        orders
            .iter()
            .filter(|(item, _)| share.owns(**item))
            .map(|(_, count)| count)
            .sum::<u64>()
    };
    let mut split = vec![of(0), of(1)];
    split.sort();
    split
}

#[actix_web::test]
async fn two_instances_expire_each_reservation_once_and_one_takes_over_when_the_other_stops() {
    let (stack, second) = two_instances(|settings| {
        settings.purchase.expiry_interval_ms = 100;
    })
    .await;
    let mut items = Vec::new();
    for _ in 0..4 {
        items.push(stack.item_on_terms(20, None, reservable(1)).await);
    }
    let per_item = orders_per_item(&items);
    let total: u64 = per_item.values().sum();
    let mut user = 100;
    for (item, count) in &per_item {
        for _ in 0..*count {
            user += 1;
            stack.reserve(user, *item).await;
        }
    }
    let expired = |client: &Client| {
        let client = client.clone();
        async move { metric(&client, "reservations_expired_total").await }
    };
    testkit::eventually(20, "every reservation expired", || async {
        expired(&stack.client).await + expired(&second.client).await >= total
    })
    .await;
    let mut done = vec![expired(&stack.client).await, expired(&second.client).await];
    done.sort();
    assert_eq!(
        done,
        split_by_owner(&per_item),
        "each instance expired the reservations of its own items, each once"
    );
    for item in &items {
        assert_eq!(
            stack.redis_stock(*item).await,
            20,
            "every unit back on sale"
        );
    }

    // The second instance stops: the first takes over every item.
    let before = expired(&stack.client).await;
    second.stop().await;
    until_each_sees(&[&stack.client], 1).await;
    for (item, count) in &per_item {
        for _ in 0..*count {
            user += 1;
            stack.reserve(user, *item).await;
        }
    }
    testkit::eventually(
        20,
        "the remaining instance expires every reservation",
        || async { expired(&stack.client).await >= before + total },
    )
    .await;
    assert_eq!(expired(&stack.client).await, before + total);
}

/// Pushes every order of `orders` back into its outbox's due set, as if its publish had
/// never been confirmed.
async fn make_due(stack: &Stack, orders: &[(u64, String)]) {
    let refs: Vec<(u64, &str)> = orders.iter().map(|(i, o)| (*i, o.as_str())).collect();
    let long_ago = chrono::Utc::now().timestamp_millis() - 60_000;
    stack
        .store
        .outbox
        .mark_confirmed(&refs, long_ago)
        .await
        .unwrap();
}

/// Waits until each order's publish was confirmed and marked (not due for a minute).
async fn until_marked(stack: &Stack, orders: &[(u64, String)]) {
    testkit::eventually(20, "every publish confirmed and marked", || async {
        let mut redis = stack.env.redis.connection().await;
        let soon = chrono::Utc::now().timestamp_millis() + 60_000;
        for (item, order_id) in orders {
            let due: Option<i64> = redis
                .zscore(stack.store.keys(*item).outbox_times(), order_id)
                .await
                .unwrap();
            if due.is_none_or(|due| due < soon) {
                return false;
            }
        }
        true
    })
    .await;
}

/// Order ids published from now until `count` events arrived.
async fn published_orders(stack: &Stack, count: usize) -> Vec<String> {
    let messages = std::sync::Mutex::new(Vec::new());
    testkit::eventually(20, "the orders published", || async {
        let drained = stack.env.rabbit.drain_published().await;
        let mut messages = messages.lock().unwrap();
        messages.extend(drained);
        testkit::events_of(&messages).len() >= count
    })
    .await;
    let mut orders: Vec<String> = testkit::events_of(&messages.into_inner().unwrap())
        .into_iter()
        .map(|event| event.order_id)
        .collect();
    orders.sort();
    orders
}

#[actix_web::test]
async fn two_instances_republish_each_stuck_order_once_and_one_takes_over_when_the_other_stops() {
    // Confirmed orders are not due again within the test: only make_due makes them so.
    let (mut stack, second) = two_instances(|settings| {
        settings.purchase.republish_after_ms = 600_000;
    })
    .await;
    stack.stop_writer().await;
    let mut items = Vec::new();
    for _ in 0..4 {
        items.push(stack.item(20, None).await);
    }
    let per_item = orders_per_item(&items);
    let total = per_item.values().sum::<u64>() as usize;
    let mut orders = Vec::new();
    let mut user = 100;
    for (item, count) in &per_item {
        for _ in 0..*count {
            user += 1;
            let response = buy_at(&stack.client, user, *item).await;
            assert_eq!(response.status, 200, "{}", response.body);
            orders.push((
                *item,
                response.body["order"]["id"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let mut placed: Vec<String> = orders.iter().map(|(_, id)| id.clone()).collect();
    placed.sort();
    assert_eq!(
        published_orders(&stack, total).await,
        placed,
        "each order published at its purchase"
    );
    until_marked(&stack, &orders).await;

    let republished = |client: &Client| {
        let client = client.clone();
        async move { metric(&client, "outbox_republished_total").await }
    };
    let before = [
        republished(&stack.client).await,
        republished(&second.client).await,
    ];
    make_due(&stack, &orders).await;
    assert_eq!(
        published_orders(&stack, total).await,
        placed,
        "each stuck order republished once"
    );
    let mut done = vec![
        republished(&stack.client).await - before[0],
        republished(&second.client).await - before[1],
    ];
    done.sort();
    assert_eq!(
        done,
        split_by_owner(&per_item),
        "each instance republished the orders of its own items"
    );

    // The second instance stops: the first relays every outbox.
    second.stop().await;
    until_each_sees(&[&stack.client], 1).await;
    let before = republished(&stack.client).await;
    make_due(&stack, &orders).await;
    assert_eq!(
        published_orders(&stack, total).await,
        placed,
        "the remaining instance republished every stuck order, once"
    );
    assert_eq!(republished(&stack.client).await, before + total as u64);
}

#[actix_web::test]
async fn an_instance_that_stops_beating_drops_out_once_its_heartbeat_runs_out() {
    let env = TestEnv::new().await;
    let settings = purchase_settings(&env, Strategy::Lua);
    let redis = common::redis::client(&settings.redis).unwrap();
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
