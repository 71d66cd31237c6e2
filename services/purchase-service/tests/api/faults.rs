//! Faults during purchases: a stopped writer, an unreachable broker, a purchase-service
//! that dies between the script and the publish, and sync-stock racing purchases. After
//! recovery every 200-answered order is in MySQL exactly once and stock is conserved; and
//! a lagging writer does not make the relay publish confirmed orders again.

use crate::helpers::{Stack, confirmed, spawn_stack, start_writer, token};
use futures_util::future::join_all;
use inventory::Inventory;
use purchase_service::configuration::Strategy;
use purchase_service::startup::Application;
use serde_json::json;
use std::time::Duration;
use testkit::{ChaosProxy, Client, Response};

async fn buy_many(client: &Client, item: u64, count: u64) -> Vec<Response> {
    let path = format!("/api/v1/items/{item}/purchase");
    let body = json!({ "quantity": 1 });
    join_all((0..count).map(|i| {
        let (path, body) = (&path, &body);
        async move { client.post(path, Some(&token(100 + i)), body).await }
    }))
    .await
}

#[actix_web::test]
async fn a_writer_stopped_during_purchases_catches_up_when_restarted() {
    let mut stack = spawn_stack(Strategy::Lua).await;
    let item = stack.item(200, None).await;
    let mut responses = buy_many(&stack.client, item, 40).await;
    stack.writer.take().unwrap().trigger();
    responses.extend(buy_many(&stack.client, item, 60).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        stack.store.outbox.len(item).await.unwrap() > 0,
        "orders wait in the outbox"
    );
    stack.writer = Some(start_writer(&stack.env).await);
    responses.extend(buy_many(&stack.client, item, 20).await);
    let placed = confirmed(&responses);
    assert_eq!(placed.len(), 120);
    stack.assert_conserved(item, 200, &placed).await;
}

#[actix_web::test]
async fn purchases_go_on_while_rabbitmq_is_unreachable_and_persist_when_it_returns() {
    let proxy = ChaosProxy::to_rabbitmq().await;
    let port = proxy.port;
    let stack = spawn_stack_through(Strategy::Lua, port).await;
    let item = stack.item(100, None).await;
    let mut responses = buy_many(&stack.client, item, 10).await;
    proxy.break_all();
    responses.extend(buy_many(&stack.client, item, 30).await);
    assert!(
        responses.iter().all(|r| r.status == 200),
        "purchases must not depend on the broker"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();
    let placed = confirmed(&responses);
    stack.assert_conserved(item, 100, &placed).await;
}

#[actix_web::test]
async fn orders_the_broker_confirmed_are_not_republished_while_the_writer_catches_up() {
    let mut stack = spawn_stack(Strategy::Lua).await;
    stack.writer.take().unwrap().trigger();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let item = stack.item(100, None).await;
    let placed = confirmed(&buy_many(&stack.client, item, 20).await);
    assert_eq!(placed.len(), 20);
    // Well past relay_after_ms (300 ms), short of republish_after_ms (1 s) after the confirms.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let published = testkit::events_of(&stack.env.rabbit.drain_published().await);
    assert_eq!(
        published.len(),
        20,
        "each order published once, none again by the relay"
    );
    assert_eq!(stack.store.outbox.len(item).await.unwrap(), 20);
}

#[actix_web::test]
async fn orders_placed_while_a_confirm_is_outstanding_travel_together_in_one_message() {
    let mut stack = spawn_stack(Strategy::Lua).await;
    stack.writer.take().unwrap().trigger();
    let item = stack.item(100, None).await;
    // One message awaiting its confirm at a time, and the broker's confirms come late.
    let broker = ChaosProxy::to_rabbitmq().await;
    let mut settings = stack.settings_through(&broker);
    settings.purchase.max_publishes_in_flight = 1;
    let (client, _) = testkit::serve::<Application>(settings).await;
    broker.delay_replies(Duration::from_millis(300));
    let placed = confirmed(&buy_many(&client, item, 30).await);
    assert_eq!(placed.len(), 30);

    let messages = std::sync::Mutex::new(Vec::new());
    testkit::eventually(20, "every order published", || async {
        let drained = stack.env.rabbit.drain_published().await;
        let mut messages = messages.lock().unwrap();
        messages.extend(drained);
        testkit::events_of(&messages).len() >= 30
    })
    .await;
    let messages = messages.into_inner().unwrap();
    let mut published: Vec<String> = testkit::events_of(&messages)
        .into_iter()
        .map(|e| e.order_id)
        .collect();
    published.sort();
    let placed: Vec<String> = placed.into_keys().collect();
    assert_eq!(published, placed, "each order published once");
    assert!(
        messages.len() < 30,
        "{} messages for 30 orders: none travelled together",
        messages.len()
    );
}

/// A stack whose purchase-service reaches RabbitMQ through `rabbit_port`.
async fn spawn_stack_through(strategy: Strategy, rabbit_port: u16) -> Stack {
    crate::helpers::spawn_stack_with(strategy, |s| s.rabbitmq.port = rabbit_port).await
}

#[actix_web::test]
async fn orders_of_a_purchase_service_that_died_before_publishing_are_not_lost() {
    let stack = spawn_stack(Strategy::Lua).await;
    let item = stack.item(100, None).await;
    // The doomed instance can never publish: its broker address leads nowhere.
    let dead_end = ChaosProxy::to_rabbitmq().await;
    dead_end.break_all();
    let doomed_settings = stack.settings_through(&dead_end);
    let (doomed, server) = testkit::serve::<Application>(doomed_settings).await;
    let responses = buy_many(&doomed, item, 25).await;
    assert!(responses.iter().all(|r| r.status == 200));
    server.abort();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        stack.persisted_orders(item).await.len(),
        0,
        "nothing was published"
    );
    // The surviving instance's relay (spawn_stack's) republishes the outbox.
    stack
        .assert_conserved(item, 100, &confirmed(&responses))
        .await;
}

#[actix_web::test]
async fn sync_stock_during_a_purchase_race_keeps_conservation() {
    let stack = spawn_stack(Strategy::Lua).await;
    let item = stack.item(300, None).await;
    let store: Inventory = stack.store.clone();
    let sync = stock_writer::sync::StockSync {
        db: db::pool(&stack.settings.database.url(), 2).unwrap(),
        lock: inventory::DistributedLock::new(store.redis().clone(), stack.settings.lock.clone()),
        store,
    };
    let syncing = async {
        for _ in 0..15 {
            sync.run(Some(item)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let buying = async {
        let mut all = Vec::new();
        for _ in 0..4 {
            all.extend(buy_many(&stack.client, item, 100).await);
        }
        all
    };
    let ((), responses) = futures_util::join!(syncing, buying);
    let placed = confirmed(&responses);
    assert_eq!(placed.len(), 300, "all stock sold, none oversold");
    stack.assert_conserved(item, 300, &placed).await;
    let report = sync.run(Some(item)).await.unwrap();
    assert_eq!(report[0].redis.after, 0);
    assert_eq!(report[0].redis.shortfall, 0);
}

#[actix_web::test]
async fn orders_the_writer_refuses_are_parked_not_republished_and_replay_once_fixed() {
    let stack = spawn_stack(Strategy::Lua).await;
    // On sale in Redis, unknown to MySQL: stock-writer can never apply these orders.
    let item = 900_001;
    stack
        .store
        .stock
        .put(&inventory::stock::ItemState::on_sale(item, 10))
        .await
        .unwrap();
    let placed = confirmed(&buy_many(&stack.client, item, 3).await);
    assert_eq!(placed.len(), 3);
    let store = &stack.store;
    testkit::eventually(20, "the refused orders parked", || async {
        store.outbox.parked_counts(&[item]).await.unwrap() == [3]
    })
    .await;
    assert_eq!(store.outbox.len(item).await.unwrap(), 0);
    // Many relay periods (100 ms, due after 300 ms, republish after 1 s) later, nothing
    // was republished: each refused order reached the dead-letter queue once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dead = stack.env.rabbit.drain_dead_letters().await;
    assert_eq!(dead.len(), 3);
    let parked = stock_writer::dlq::list(store).await.unwrap();
    assert_eq!(parked.len(), 3);
    assert!(
        parked.iter().all(|p| p.reason.contains("unknown item")),
        "{parked:?}"
    );
    let event = events::StockEvent::parse(parked[0].event.as_bytes()).unwrap();
    let listed = stack
        .client
        .get(
            &format!("/api/v1/orders/{}", event.order_id),
            Some(&token(event.user_id)),
        )
        .await;
    assert_eq!(
        listed.body["status"], "pending",
        "a parked order is still its buyer's pending order"
    );

    // The operator fixes the cause, then replays.
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "INSERT INTO items (id, name, price, stock) VALUES ({item}, 'Fixed', 100, 10)"
        )),
        &mut stack.env.database.connect().await,
    )
    .await
    .unwrap();
    let replayed = stock_writer::dlq::replay(store, None).await.unwrap();
    assert_eq!(replayed.len(), 3);
    assert!(
        stock_writer::dlq::replay(store, Some("no-such-order"))
            .await
            .is_err()
    );
    stack.assert_conserved(item, 10, &placed).await;
    assert_eq!(store.outbox.parked_counts(&[item]).await.unwrap(), [0]);
}
