//! `spawn_app`: the real catalog-service on port 0 with its own database and key prefix.

use catalog_service::configuration::Settings;
use catalog_service::startup::Application;
use common::jwt::Role;
use common::redis::Keyspace;
use inventory::ItemKeys;
use inventory::keys::ON_SALE;
use redis::AsyncCommands;
use serde_json::{Value, json};
use testkit::{Client, Response, TestEnv};

pub use testkit::{assert_envelope, error_fields};

pub struct TestApp {
    pub client: Client,
    pub env: TestEnv,
    pub settings: Settings,
    pub admin: String,
    pub user: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_in(TestEnv::new().await, |_| {}).await
}

/// The service in an environment the test may have prepared (rows, Redis figures).
pub async fn spawn_app_in(env: TestEnv, customize: impl FnOnce(&mut Settings)) -> TestApp {
    let (client, settings) = env.spawn::<Application>(customize).await;
    TestApp {
        client,
        env,
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

    /// `PATCH /api/v1/items/{id}` as the admin.
    pub async fn patch_item(&self, id: u64, body: &Value) -> Response {
        let body = Some(body.to_string().into_bytes());
        let path = format!("/api/v1/items/{id}");
        self.client
            .send("PATCH", &path, Some(&self.admin), &[], body)
            .await
    }

    /// `DELETE /api/v1/items/{id}` as the admin.
    pub async fn delete_item(&self, id: u64) -> Response {
        let path = format!("/api/v1/items/{id}");
        self.client
            .send("DELETE", &path, Some(&self.admin), &[], None)
            .await
    }

    pub fn keys(&self, id: u64) -> ItemKeys {
        ItemKeys::new(&Keyspace::new(self.env.redis.prefix.clone()), id)
    }

    pub async fn redis_stock(&self, id: u64) -> Option<i64> {
        self.env
            .redis
            .connection()
            .await
            .get(self.keys(id).stock())
            .await
            .unwrap()
    }

    pub async fn redis_on_sale(&self, id: u64) -> Option<i64> {
        self.redis_meta(id, ON_SALE).await
    }

    /// A field of the item's meta hash in Redis.
    pub async fn redis_meta(&self, id: u64, field: &str) -> Option<i64> {
        self.env
            .redis
            .connection()
            .await
            .hget(self.keys(id).meta(), field)
            .await
            .unwrap()
    }

    pub async fn mysql_stock(&self, id: u64) -> u32 {
        self.env.database.stock(id).await
    }
}
