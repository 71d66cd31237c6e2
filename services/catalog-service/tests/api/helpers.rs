//! `spawn_app`: the real catalog-service on port 0 with its own database and key prefix.

use catalog_service::configuration::Settings;
use catalog_service::startup::Application;
use common::jwt::Role;
use common::redis::Keyspace;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use inventory::ItemKeys;
use redis::AsyncCommands;
use serde_json::{Value, json};
use testkit::{Client, Response, TestDatabase, TestRedis};

pub struct TestApp {
    pub client: Client,
    pub database: TestDatabase,
    pub redis: TestRedis,
    pub settings: Settings,
    pub admin: String,
    pub user: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_on(TestDatabase::new().await, TestRedis::new(), |_| {}).await
}

pub async fn spawn_app_on(
    database: TestDatabase,
    redis: TestRedis,
    customize: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = Settings::load().expect("settings");
    settings.app.port = 0;
    settings.app.host = "127.0.0.1".into();
    database.apply(&mut settings.database);
    redis.apply(&mut settings.redis);
    testkit::keys().apply(&mut settings.jwt);
    customize(&mut settings);
    let app = Application::build(settings.clone())
        .await
        .expect("build app");
    let client = Client::new(format!("http://127.0.0.1:{}", app.port()));
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        client,
        database,
        redis,
        settings,
        admin: testkit::keys().token_for(1, Role::Admin),
        user: testkit::keys().token_for(2, Role::User),
    }
}

impl TestApp {
    pub async fn create_item(&self, body: Value) -> Response {
        self.client
            .post("/api/v1/items", Some(&self.admin), &body)
            .await
    }

    /// Creates an item with the given stock and returns its id.
    pub async fn item_with_stock(&self, stock: u32) -> u64 {
        let response = self
            .create_item(json!({ "name": "Widget", "price": 1000, "stock": stock }))
            .await;
        assert_eq!(response.status, 201, "{}", response.body);
        response.body["id"].as_u64().unwrap()
    }

    pub async fn restock(&self, id: u64, quantity: Value) -> Response {
        self.client
            .post(
                &format!("/api/v1/items/{id}/restock"),
                Some(&self.admin),
                &json!({ "quantity": quantity }),
            )
            .await
    }

    pub fn keys(&self, id: u64) -> ItemKeys {
        ItemKeys::new(&Keyspace::new(self.redis.prefix.clone()), id)
    }

    pub async fn redis_stock(&self, id: u64) -> Option<i64> {
        self.redis
            .connection()
            .await
            .get(self.keys(id).stock())
            .await
            .unwrap()
    }

    pub async fn redis_on_sale(&self, id: u64) -> Option<i64> {
        self.redis
            .connection()
            .await
            .hget(self.keys(id).meta(), "on_sale")
            .await
            .unwrap()
    }

    pub async fn mysql(&self) -> AsyncMysqlConnection {
        AsyncMysqlConnection::establish(&self.database.url())
            .await
            .expect("connect")
    }

    pub async fn mysql_stock(&self, id: u64) -> u32 {
        use db::schema::items;
        items::table
            .find(id)
            .select(items::stock)
            .first(&mut self.mysql().await)
            .await
            .expect("item row")
    }
}

pub fn assert_envelope(response: &Response, status: u16, error_code: &str) {
    assert_eq!(response.status, status, "body: {}", response.body);
    assert_eq!(
        response.body["error_code"], error_code,
        "body: {}",
        response.body
    );
}

pub fn error_fields(response: &Response) -> Vec<String> {
    response.body["errors"]
        .as_object()
        .map(|errors| errors.keys().cloned().collect())
        .unwrap_or_default()
}
