//! `spawn_app`: the real auth-service on port 0 with its own database and key prefix.

use auth_service::configuration::Settings;
use auth_service::startup::Application;
use serde_json::{Value, json};
use testkit::{Client, Response, TestDatabase, TestRedis};

pub struct TestApp {
    pub client: Client,
    pub database: TestDatabase,
    pub redis: TestRedis,
    pub settings: Settings,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    let database = TestDatabase::new().await;
    let redis = TestRedis::new();
    let mut settings = Settings::load().expect("settings");
    settings.app.port = 0;
    settings.app.host = "127.0.0.1".into();
    settings.auth.bcrypt_rounds = 4;
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
        self.client
            .send(
                "POST",
                "/api/v1/auth/login",
                None,
                &[("X-Forwarded-For", address)],
                Some(body.to_string().into_bytes()),
            )
            .await
    }

    pub async fn refresh(&self, token: &str) -> Response {
        self.client
            .post("/api/v1/auth/refresh", Some(token), &Value::Null)
            .await
    }

    /// The keys under this test's prefix whose name contains `part`.
    pub async fn redis_keys(&self, part: &str) -> Vec<String> {
        let mut conn = self.redis.connection().await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.redis.prefix))
            .query_async(&mut conn)
            .await
            .expect("KEYS");
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
        use diesel::prelude::*;
        use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
        let mut conn = AsyncMysqlConnection::establish(&self.database.url())
            .await
            .expect("connect");
        db::schema::users::table
            .filter(db::schema::users::email.eq(email))
            .count()
            .get_result(&mut conn)
            .await
            .expect("count")
    }

    pub async fn stored_hash(&self, email: &str) -> String {
        use diesel::prelude::*;
        use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
        let mut conn = AsyncMysqlConnection::establish(&self.database.url())
            .await
            .expect("connect");
        db::schema::users::table
            .filter(db::schema::users::email.eq(email))
            .select(db::schema::users::password_hash)
            .first(&mut conn)
            .await
            .expect("user row")
    }
}

pub fn assert_envelope(response: &Response, status: u16, error_code: &str) {
    assert_eq!(response.status, status, "body: {}", response.body);
    assert_eq!(
        response.body["error_code"], error_code,
        "body: {}",
        response.body
    );
    assert!(
        response.body["message"].is_string(),
        "body: {}",
        response.body
    );
}
