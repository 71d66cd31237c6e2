//! `spawn_app`: the real auth-service on port 0 with its own database and key prefix.

use auth_service::configuration::Settings;
use auth_service::startup::Application;
use serde_json::{Value, json};
use testkit::{Client, Response, TestEnv};

pub use testkit::assert_envelope;

pub struct TestApp {
    pub client: Client,
    pub env: TestEnv,
    pub settings: Settings,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    let env = TestEnv::new().await;
    let (client, settings) = env
        .spawn::<Application>(|settings| {
            settings.auth.bcrypt_rounds = 4;
            customize(settings);
        })
        .await;
    TestApp {
        client,
        env,
        settings,
    }
}

impl TestApp {
    pub async fn register(&self, name: &str, email: &str, password: &str) -> Response {
        self.client
            .post(
                "/api/v1/auth/register",
                None,
                &json!({ "name": name, "email": email, "password": password }),
            )
            .await
    }

    /// A registration as the gateway forwards it from `address` (the app must trust
    /// `X-Forwarded-For`).
    pub async fn register_from(&self, address: &str, email: &str) -> Response {
        let body = json!({ "name": "Flood", "email": email, "password": "password123" });
        self.post_from(address, "/api/v1/auth/register", &body)
            .await
    }

    /// `POST path` as the gateway forwards it from `address`.
    async fn post_from(&self, address: &str, path: &str, body: &Value) -> Response {
        let headers = [("X-Forwarded-For", address)];
        let body = Some(body.to_string().into_bytes());
        self.client.send("POST", path, None, &headers, body).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.client
            .post(
                "/api/v1/auth/login",
                None,
                &json!({ "email": email, "password": password }),
            )
            .await
    }

    /// A login as the gateway forwards it from `address` (the app must trust
    /// `X-Forwarded-For`).
    pub async fn login_from(&self, address: &str, email: &str, password: &str) -> Response {
        let body = json!({ "email": email, "password": password });
        self.post_from(address, "/api/v1/auth/login", &body).await
    }

    pub async fn logout(&self, token: &str) -> Response {
        self.client
            .post("/api/v1/auth/logout", Some(token), &Value::Null)
            .await
    }

    /// A revoked token: `/me`, `/logout` and `/refresh` each refuse it with 401.
    pub async fn assert_revoked(&self, token: &str) {
        assert_envelope(&self.me(token).await, 401, "UNAUTHENTICATED");
        assert_envelope(&self.logout(token).await, 401, "UNAUTHENTICATED");
        assert_envelope(&self.refresh(token).await, 401, "UNAUTHENTICATED");
    }

    pub async fn refresh(&self, token: &str) -> Response {
        self.client
            .post("/api/v1/auth/refresh", Some(token), &Value::Null)
            .await
    }

    /// The keys under this test's prefix whose name contains `part`.
    pub async fn redis_keys(&self, part: &str) -> Vec<String> {
        let keys = self.env.redis.keys().await;
        keys.into_iter().filter(|k| k.contains(part)).collect()
    }

    /// Registers a user and returns a token from logging in.
    pub async fn user_token(&self, email: &str) -> String {
        assert_eq!(
            self.register("Test User", email, "password123")
                .await
                .status,
            201
        );
        let login = self.login(email, "password123").await;
        assert_eq!(login.status, 200, "{}", login.body);
        login.body["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    pub async fn me(&self, token: &str) -> Response {
        self.client
            .post("/api/v1/auth/me", Some(token), &Value::Null)
            .await
    }

    pub async fn count_users(&self, email: &str) -> i64 {
        use db::schema::users;
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        users::table
            .filter(users::email.eq(email))
            .count()
            .get_result(&mut self.env.database.connect().await)
            .await
            .expect("count")
    }

    pub async fn stored_hash(&self, email: &str) -> String {
        use db::schema::users;
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        users::table
            .filter(users::email.eq(email))
            .select(users::password_hash)
            .first(&mut self.env.database.connect().await)
            .await
            .expect("user row")
    }
}
