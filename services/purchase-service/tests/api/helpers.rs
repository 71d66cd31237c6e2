//! `spawn_stack`: purchase-service and stock-writer, each on port 0, sharing one test
//! database, Redis key prefix and set of queues.

use common::jwt::Role;
use common::redis::Keyspace;
use common::shutdown::ShutdownSwitch;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use inventory::Inventory;
use inventory::stock::{ItemState, SaleTerms};
use purchase_service::configuration::{Settings, Strategy};
use purchase_service::startup::Application;
use redis::AsyncCommands;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Display;
use testkit::{ChaosProxy, Client, Response, TestEnv, TestItem};
use web_layer::service::{Running, Service};

pub use testkit::assert_envelope;

pub struct Stack {
    pub client: Client,
    pub env: TestEnv,
    pub settings: Settings,
    pub writer: Option<ShutdownSwitch>,
    pub store: Inventory,
}

/// purchase-service settings for `env`, with a quick relay (due after 300 ms, every
/// 100 ms; confirmed orders due again after 1 s).
pub fn purchase_settings(env: &TestEnv, strategy: Strategy) -> Settings {
    let mut settings: Settings = env.settings();
    settings.purchase.strategy = strategy;
    settings.purchase.relay_interval_ms = 100;
    settings.purchase.relay_after_ms = 300;
    settings.purchase.republish_after_ms = 1000;
    settings.purchase.payment_webhook_secret =
        purchase_service::configuration::Secret::new(WEBHOOK_SECRET);
    settings
}

/// The payment provider's signing secret in these tests.
pub const WEBHOOK_SECRET: &str = "whsec_test_secret";

pub async fn start_writer(env: &TestEnv) -> ShutdownSwitch {
    let writer = stock_writer::startup::Application::build(env.settings())
        .await
        .expect("build writer");
    let stop = writer.stopper();
    tokio::spawn(writer.run_until_stopped());
    stop
}

pub async fn spawn_stack(strategy: Strategy) -> Stack {
    spawn_stack_with(strategy, |_| {}).await
}

pub async fn spawn_stack_with(strategy: Strategy, customize: impl FnOnce(&mut Settings)) -> Stack {
    let env = TestEnv::new().await;
    let mut settings = purchase_settings(&env, strategy);
    // The test's own view of Redis goes straight to it, whatever the service's route.
    let store = Inventory::new(
        common::redis::client(&settings.redis).unwrap(),
        Keyspace::new(env.redis.prefix.clone()),
    );
    customize(&mut settings);
    let (client, _) = testkit::serve::<Application>(settings.clone()).await;
    let writer = Some(start_writer(&env).await);
    Stack {
        client,
        env,
        settings,
        writer,
        store,
    }
}

/// A stack with one item on sale (see [`Stack::item`]).
pub async fn spawn_stack_selling(
    strategy: Strategy,
    stock: u32,
    max_per_user: Option<u32>,
) -> (Stack, u64) {
    let stack = spawn_stack(strategy).await;
    let item = stack.item(stock, max_per_user).await;
    (stack, item)
}

pub fn token(user_id: u64) -> String {
    testkit::keys().token_for(user_id, Role::User)
}

impl Stack {
    /// An item on sale, as catalog-service would create it.
    pub async fn item(&self, stock: u32, max_per_user: Option<u32>) -> u64 {
        self.item_on_terms(stock, max_per_user, SaleTerms::default())
            .await
    }

    /// An item on sale on these terms (Redis's; MySQL's row keeps the defaults, which
    /// only sync-stock would read).
    pub async fn item_on_terms(
        &self,
        stock: u32,
        max_per_user: Option<u32>,
        terms: SaleTerms,
    ) -> u64 {
        let id = self
            .env
            .database
            .insert_item(TestItem {
                stock,
                max_per_user,
                ..TestItem::default()
            })
            .await;
        self.store
            .stock
            .put(&ItemState {
                id,
                stock,
                max_per_user,
                on_sale: true,
                terms,
            })
            .await
            .unwrap();
        id
    }

    /// Settings for a second purchase-service beside this stack's that reaches RabbitMQ
    /// through `broker` and whose relay waits an hour, so that it publishes only the
    /// orders it takes itself, when it takes them.
    pub fn settings_through(&self, broker: &ChaosProxy) -> Settings {
        let mut settings = self.settings.clone();
        settings.rabbitmq.port = broker.port;
        settings.purchase.relay_interval_ms = 3_600_000;
        settings
    }

    /// Stops stock-writer: orders stay pending (in the outbox) from now on.
    pub async fn stop_writer(&mut self) {
        self.writer.take().expect("a running writer").trigger();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    /// Changes an item's sale terms in Redis.
    pub async fn set_terms(&self, item: u64, terms: SaleTerms) {
        self.store.stock.set_terms(item, &terms).await.unwrap();
    }

    /// Reserves one unit of an item with a payment window for the user; the order id.
    pub async fn reserve(&self, user_id: u64, item: u64) -> String {
        testkit::reserved_order_id(&self.buy(user_id, item, json!(1)).await)
    }

    /// Reserves one unit of an item for each of `users` in turn: (user, order id).
    pub async fn reserve_each(
        &self,
        item: u64,
        users: impl IntoIterator<Item = u64>,
    ) -> Vec<(u64, String)> {
        let mut orders = Vec::new();
        for user in users {
            orders.push((user, self.reserve(user, item).await));
        }
        orders
    }

    /// `POST /api/v1/orders/{order_id}/cancel` as the user.
    pub async fn cancel(&self, user_id: u64, order_id: &str) -> Response {
        self.client
            .post(
                &format!("/api/v1/orders/{order_id}/cancel"),
                Some(&token(user_id)),
                &json!({}),
            )
            .await
    }

    /// The payment provider's webhook for `order_id`, signed now with the tests' secret.
    pub async fn pay(&self, order_id: &str, payment_id: &str, amount: u64) -> Response {
        let body = json!({"event": "payment.succeeded", "order_id": order_id,
            "payment_id": payment_id, "amount": amount})
        .to_string();
        let signature = common::webhook_signature::sign(
            WEBHOOK_SECRET,
            chrono::Utc::now().timestamp(),
            body.as_bytes(),
        );
        self.webhook(&body, Some(&signature)).await
    }

    /// `POST /api/v1/payments/webhook` with this body and signature header.
    pub async fn webhook(&self, body: &str, signature: Option<&str>) -> Response {
        let headers: Vec<(&str, &str)> = signature
            .map(|s| {
                vec![
                    ("Payment-Signature", s),
                    ("Content-Type", "application/json"),
                ]
            })
            .unwrap_or_default();
        self.client
            .send(
                "POST",
                "/api/v1/payments/webhook",
                None,
                &headers,
                Some(body.as_bytes().to_vec()),
            )
            .await
    }

    /// `GET path` as the user.
    pub async fn get_as(&self, user_id: u64, path: &str) -> Response {
        self.client.get(path, Some(&token(user_id))).await
    }

    /// `POST /api/v1/items/{item}/purchase` with this token (none: anonymous) and body.
    pub async fn post_purchase(
        &self,
        item: impl Display,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> Response {
        let path = format!("/api/v1/items/{item}/purchase");
        self.client.post(&path, token, body).await
    }

    pub async fn buy(&self, user_id: u64, item: u64, quantity: serde_json::Value) -> Response {
        let body = json!({ "quantity": quantity });
        self.post_purchase(item, Some(&token(user_id)), &body).await
    }

    pub async fn buy_with_key(
        &self,
        user_id: u64,
        item: u64,
        quantity: u32,
        key: &str,
    ) -> Response {
        let body = json!({ "quantity": quantity }).to_string().into_bytes();
        self.send_purchase(user_id, item, &[("Idempotency-Key", key)], Some(body))
            .await
    }

    /// `POST /api/v1/items/{item}/purchase` as the user, with these headers and this body
    /// sent as it is (none, or one that is not quite JSON).
    pub async fn send_purchase(
        &self,
        user_id: u64,
        item: u64,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Response {
        let path = format!("/api/v1/items/{item}/purchase");
        self.client
            .send("POST", &path, Some(&token(user_id)), headers, body)
            .await
    }

    pub async fn redis_stock(&self, item: u64) -> i64 {
        self.env
            .redis
            .connection()
            .await
            .get(self.store.keys(item).stock())
            .await
            .unwrap()
    }

    pub async fn mysql_stock(&self, item: u64) -> u32 {
        self.env.database.stock(item).await
    }

    /// order id → quantity, as persisted in MySQL for one item.
    pub async fn persisted_orders(&self, item: u64) -> BTreeMap<String, u32> {
        use db::schema::orders;
        orders::table
            .filter(orders::item_id.eq(item))
            .select((orders::id, orders::quantity))
            .load::<(String, u32)>(&mut self.env.database.connect().await)
            .await
            .unwrap()
            .into_iter()
            .collect()
    }

    /// Waits until stock-writer has persisted exactly the given orders and the outbox is
    /// empty, then checks conservation: MySQL stock = initial - sold = Redis stock.
    pub async fn assert_conserved(
        &self,
        item: u64,
        initial: u32,
        confirmed: &BTreeMap<String, u32>,
    ) {
        testkit::eventually(
            30,
            "every confirmed order persisted and the outbox empty",
            || async {
                self.persisted_orders(item).await.len() >= confirmed.len()
                    && self.store.outbox.len(item).await.unwrap() == 0
            },
        )
        .await;
        let persisted = self.persisted_orders(item).await;
        assert_eq!(
            &persisted, confirmed,
            "MySQL must hold exactly the orders answered 200"
        );
        let sold: u32 = confirmed.values().sum();
        assert_eq!(self.mysql_stock(item).await, initial - sold, "MySQL stock");
        assert_eq!(
            self.env.database.stock_owed(item).await,
            0,
            "MySQL owes units"
        );
        assert_eq!(
            self.redis_stock(item).await,
            i64::from(initial - sold),
            "Redis stock"
        );
    }
}

/// order id → quantity of the 200-answered purchases among `responses`.
pub fn confirmed(responses: &[Response]) -> BTreeMap<String, u32> {
    responses
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| {
            let order = &r.body["order"];
            (
                order["id"].as_str().unwrap().to_owned(),
                order["quantity"].as_u64().unwrap() as u32,
            )
        })
        .collect()
}

pub const STRATEGIES: [Strategy; 2] = [Strategy::Lua, Strategy::Lock];
