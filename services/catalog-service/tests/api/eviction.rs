//! Redis holds unpersisted sales and revocations, so a service refuses to start in
//! production on a Redis that may evict keys, and logs an error elsewhere.

use crate::helpers::spawn_app_on;
use catalog_service::configuration::Settings;
use catalog_service::startup::Application;
use common::config::Environment;
use testkit::{RedisServer, TestDatabase, TestRedis};

fn settings_for(database: &TestDatabase, redis: &RedisServer, env: Environment) -> Settings {
    let mut settings = Settings::load().expect("settings");
    settings.app.port = 0;
    settings.app.env = env;
    database.apply(&mut settings.database);
    settings.redis.port = redis.port;
    testkit::keys().apply(&mut settings.jwt);
    settings
}

#[actix_web::test]
async fn production_refuses_a_redis_that_evicts_keys() {
    let evicting = RedisServer::start(&["--maxmemory-policy", "allkeys-lru"]);
    let database = TestDatabase::new().await;
    let refused =
        Application::build(settings_for(&database, &evicting, Environment::Production)).await;
    let error = refused
        .err()
        .expect("production must not start")
        .to_string();
    assert!(error.contains("maxmemory-policy is allkeys-lru"), "{error}");
    assert!(
        Application::build(settings_for(&database, &evicting, Environment::Local))
            .await
            .is_ok(),
        "elsewhere it starts (and logs an error)"
    );
}

#[actix_web::test]
async fn production_starts_on_a_redis_that_never_evicts() {
    let safe = RedisServer::start(&["--maxmemory-policy", "noeviction"]);
    let database = TestDatabase::new().await;
    let redis = TestRedis::new();
    let app = spawn_app_on(database, redis, |s| {
        s.app.env = Environment::Production;
        s.redis.port = safe.port;
    })
    .await;
    assert_eq!(app.client.get("/readyz", None).await.status, 200);
}
