//! Outages of MySQL and RabbitMQ while the writer runs (staged with a chaos proxy, never by
//! stopping the shared servers): nothing is lost or doubled, and it resumes by itself.

use crate::helpers::{Writer, event, spawn_writer_with};
use std::time::Duration;
use testkit::ChaosProxy;

/// Item 1 with 100 units and one order persisted through `proxy`; then the proxy cuts the
/// writer off and `count` events of `quantity` units are published meanwhile (straight to
/// the broker, not through the proxy).
async fn publish_during_an_outage(
    writer: &Writer,
    proxy: &ChaosProxy,
    count: usize,
    quantity: u32,
) {
    writer.insert_item(1, 100).await;
    writer.publish(&event("before", 1, 1)).await;
    writer.wait_for_orders(1).await;
    proxy.break_all();
    for i in 0..count {
        writer
            .publish(&event(&format!("during-{i}"), 1, quantity))
            .await;
    }
}

/// A writer that reaches MySQL through a chaos proxy, with a pool of two connections.
async fn spawn_writer_behind_a_mysql_proxy() -> (ChaosProxy, Writer) {
    let proxy = ChaosProxy::to_mysql().await;
    let port = proxy.port;
    let writer = spawn_writer_with(|s| {
        s.database.port = port;
        s.database.pool_size = 2;
    })
    .await;
    (proxy, writer)
}

#[tokio::test]
async fn a_mysql_outage_loses_and_doubles_nothing() {
    let (proxy, writer) = spawn_writer_behind_a_mysql_proxy().await;
    publish_during_an_outage(&writer, &proxy, 20, 1).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        writer.order_count().await,
        1,
        "nothing can be written while MySQL is away"
    );
    proxy.restore();
    writer.assert_settled(21, 79).await;
}

#[tokio::test]
async fn the_consumer_reconnects_after_a_rabbitmq_outage() {
    let proxy = ChaosProxy::to_rabbitmq().await;
    let port = proxy.port;
    let writer = spawn_writer_with(|s| s.rabbitmq.port = port).await;
    publish_during_an_outage(&writer, &proxy, 10, 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(writer.order_count().await, 1);
    proxy.restore();
    writer.wait_for_orders(11).await;
    assert_eq!(writer.stock(1).await, 79);
}

#[actix_web::test]
async fn a_consumer_stuck_retrying_is_not_ready_and_says_why() {
    let (proxy, writer) = spawn_writer_behind_a_mysql_proxy().await;
    let client = writer.client();
    publish_during_an_outage(&writer, &proxy, 3, 1).await;
    testkit::eventually(10, "readiness names the batch being retried", || async {
        let ready = client.get("/readyz", None).await;
        ready.status == 503
            && ready.body["checks"]["consumer"]
                .as_str()
                .is_some_and(|reason| reason.contains("being retried"))
    })
    .await;
    let metrics = String::from_utf8(client.get("/metrics", None).await.raw).unwrap();
    let retrying: f64 = metrics
        .lines()
        .find(|line| line.starts_with("writer_batch_retry_seconds{"))
        .and_then(|line| line.split_whitespace().last()?.parse().ok())
        .expect("writer_batch_retry_seconds exported");
    assert!(retrying > 0.0, "{metrics}");

    proxy.restore();
    writer.assert_settled(4, 96).await;
    testkit::eventually(10, "ready again", || async {
        client.get("/readyz", None).await.status == 200
    })
    .await;
}
