//! `spawn_writer`: the real stock-writer with its own database, key prefix and queues,
//! optionally behind chaos proxies; and helpers to publish events and read results.

use common::shutdown::ShutdownSwitch;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use events::{Publisher, StockEvent};
use inventory::Inventory;
use std::time::Duration;
use stock_writer::configuration::Settings;
use stock_writer::startup::Application;
use testkit::{TestEnv, TestItem};
use web_layer::service::{Running, Service};

pub struct Writer {
    pub env: TestEnv,
    /// The port of its `/healthz`, `/readyz` and `/metrics`.
    pub port: u16,
    pub settings: Settings,
    pub stop: ShutdownSwitch,
    pub publisher: Publisher,
}

pub async fn spawn_writer_with(customize: impl FnOnce(&mut Settings)) -> Writer {
    let env = TestEnv::new().await;
    let mut settings: Settings = env.settings();
    customize(&mut settings);
    let app = Application::build(settings.clone())
        .await
        .expect("build writer");
    let stop = app.stopper();
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    let publisher = Publisher::new(
        testkit::rabbit_url(),
        env.rabbit.topology(),
        Duration::from_secs(2),
    );
    Writer {
        env,
        port,
        settings,
        stop,
        publisher,
    }
}

pub async fn spawn_writer() -> Writer {
    spawn_writer_with(|_| {}).await
}

pub fn event(order: &str, item_id: u64, quantity: u32) -> StockEvent {
    StockEvent {
        version: events::EVENT_VERSION,
        order_id: order.to_owned(),
        user_id: 7,
        item_id,
        quantity,
        purchased_at_ms: chrono::Utc::now().timestamp_millis(),
        request_id: Some("req-1".into()),
        ..StockEvent::default()
    }
}

impl Writer {
    pub async fn insert_item(&self, id: u64, stock: u32) {
        self.env
            .database
            .insert_item(TestItem {
                id: Some(id),
                stock,
                ..TestItem::default()
            })
            .await;
    }

    pub async fn stock(&self, id: u64) -> u32 {
        self.env.database.stock(id).await
    }

    pub async fn order_count(&self) -> i64 {
        use db::schema::orders;
        orders::table
            .count()
            .get_result(&mut self.env.database.connect().await)
            .await
            .expect("count")
    }

    pub async fn publish(&self, event: &StockEvent) {
        self.publish_raw(&event.message_id(), event.to_json().as_bytes())
            .await;
    }

    pub async fn publish_raw(&self, message_id: &str, body: &[u8]) {
        let queue = self.env.rabbit.topology().queue;
        self.publisher
            .publish(&queue, message_id, body, &[])
            .await
            .expect("publish");
    }

    /// A client of its operational endpoints.
    pub fn client(&self) -> testkit::Client {
        testkit::Client::new(format!("http://127.0.0.1:{}", self.port))
    }

    /// Every message in the dead-letter queue once there are `count`, with the reason
    /// each was refused.
    pub async fn dead_letters(&self, count: usize) -> Vec<(String, Vec<u8>)> {
        let collected = std::sync::Mutex::new(Vec::new());
        testkit::eventually(10, &format!("{count} dead letters"), || async {
            let messages = self.env.rabbit.drain_dead_letters().await;
            let mut collected = collected.lock().unwrap();
            collected.extend(messages);
            collected.len() >= count
        })
        .await;
        collected
            .into_inner()
            .unwrap()
            .into_iter()
            .map(|m| {
                let reason = m
                    .headers
                    .iter()
                    .find(|(k, _)| k == "x-death-reason")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                (reason, m.body)
            })
            .collect()
    }

    pub fn store(&self) -> Inventory {
        stock_writer::startup::store(&self.settings).expect("store")
    }

    pub fn stock_sync(&self) -> stock_writer::sync::StockSync {
        stock_writer::startup::stock_sync(&self.settings).expect("sync-stock")
    }

    /// Waits for `orders` orders, gives a redelivery time to double one, then checks that
    /// MySQL holds exactly `orders` orders and item 1 has `stock` left.
    pub async fn assert_settled(&self, orders: i64, stock: u32) {
        self.wait_for_orders(orders).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(self.order_count().await, orders);
        assert_eq!(self.stock(1).await, stock);
    }

    pub async fn wait_for_orders(&self, count: i64) {
        testkit::eventually(20, &format!("{count} orders in MySQL"), || async {
            self.order_count().await == count
        })
        .await;
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}
