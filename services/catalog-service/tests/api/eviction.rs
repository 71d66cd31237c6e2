//! Redis holds unpersisted sales and revocations, so a service refuses to start in
//! production on a Redis that may evict keys, and logs an error elsewhere.

use crate::helpers::spawn_app_in;
use catalog_service::configuration::Settings;
use catalog_service::startup::Application;
use common::config::Environment;
use testkit::{RedisServer, TestEnv};
use web_layer::service::Service;

/// Why these tests skip themselves on a Redis Cluster.
const OWN_SERVER: &str = "it starts a server of its own with the maxmemory-policy under test";

fn settings_for(env: &TestEnv, redis: &RedisServer, app_env: Environment) -> Settings {
    let mut settings: Settings = env.settings();
    settings.app.env = app_env;
    settings.redis.port = redis.port;
    settings
}

#[actix_web::test]
async fn production_refuses_a_redis_that_evicts_keys() {
    if testkit::needs_single_redis(OWN_SERVER) {
        return;
    }
    let evicting = RedisServer::start(&["--maxmemory-policy", "allkeys-lru"]);
    let env = TestEnv::new().await;
    let refused = Application::build(settings_for(&env, &evicting, Environment::Production)).await;
    let error = refused
        .err()
        .expect("production must not start")
        .to_string();
    assert!(error.contains("maxmemory-policy is allkeys-lru"), "{error}");
    assert!(
        Application::build(settings_for(&env, &evicting, Environment::Local))
            .await
            .is_ok(),
        "elsewhere it starts (and logs an error)"
    );
}

#[actix_web::test]
async fn production_starts_on_a_redis_that_never_evicts() {
    if testkit::needs_single_redis(OWN_SERVER) {
        return;
    }
    let safe = RedisServer::start(&["--maxmemory-policy", "noeviction"]);
    let app = spawn_app_in(TestEnv::new().await, |s| {
        s.app.env = Environment::Production;
        s.redis.port = safe.port;
    })
    .await;
    assert_eq!(app.client.get("/readyz", None).await.status, 200);
}
