//! A purchase-service told to stop (SIGTERM) takes no new purchases, answers those in
//! flight, publishes what its queue holds, waits for the broker's confirms and marks
//! them before it exits, so the relay of the next start has nothing to republish.

use crate::helpers::spawn_stack_with;
use futures_util::future::join_all;
use purchase_service::configuration::Strategy;
use purchase_service::startup::Application;
use redis::AsyncCommands;
use serde_json::json;
use std::time::Duration;
use testkit::ChaosProxy;
use web_layer::service::{Running, Service};

#[actix_web::test]
async fn a_stopping_service_publishes_and_marks_every_order_before_it_exits() {
    // The stack's own purchase-service must not relay these orders meanwhile.
    let mut stack = spawn_stack_with(Strategy::Lua, |s| {
        s.purchase.relay_interval_ms = 3_600_000;
    })
    .await;
    stack.writer.take().unwrap().trigger();
    let item = stack.item(100, None).await;
    // The broker's confirms come late, so publishes are still in flight at the stop.
    let broker = ChaosProxy::to_rabbitmq().await;
    let mut settings = stack.settings_through(&broker);
    settings.app.shutdown_timeout_secs = 20;
    let app = Application::build(settings).await.expect("build");
    let client = testkit::Client::new(format!("http://127.0.0.1:{}", app.port()));
    let handle = app.handle();
    let running = actix_web::rt::spawn(app.run_until_stopped());
    broker.delay_replies(Duration::from_millis(400));
    let responses = join_all((0..40).map(|user| {
        let client = client.clone();
        async move {
            client
                .post(
                    &format!("/api/v1/items/{item}/purchase"),
                    Some(&crate::helpers::token(100 + user)),
                    &json!({ "quantity": 1 }),
                )
                .await
        }
    }))
    .await;
    assert!(responses.iter().all(|r| r.status == 200));
    handle.stop(true).await;
    running.await.unwrap().unwrap();

    let mut redis = stack.env.redis.connection().await;
    let due: Vec<(String, i64)> = redis
        .zrange_withscores(stack.store.keys(item).outbox_times(), 0, -1)
        .await
        .unwrap();
    assert_eq!(due.len(), 40);
    for response in &responses {
        let order = &response.body["order"];
        let purchased_at =
            chrono::DateTime::parse_from_rfc3339(order["purchased_at"].as_str().unwrap())
                .unwrap()
                .timestamp_millis();
        let (_, due_at) = due
            .iter()
            .find(|(id, _)| id == order["id"].as_str().unwrap())
            .expect("in the outbox");
        assert!(
            *due_at >= purchased_at + stack.settings.purchase.republish_after_ms,
            "order {} was confirmed and marked before the service exited",
            order["id"]
        );
    }
    broker.delay_replies(Duration::ZERO);
    let published = testkit::events_of(&stack.env.rabbit.drain_published().await);
    assert_eq!(published.len(), 40, "each order published once");
}
