use crate::helpers::{event, spawn_writer_with};
use std::time::Duration;
use testkit::ChaosProxy;

#[tokio::test]
async fn a_mysql_outage_loses_and_doubles_nothing() {
    let proxy = ChaosProxy::to_mysql().await;
    let port = proxy.port;
    let writer = spawn_writer_with(|s| {
        s.database.port = port;
        s.database.pool_size = 2;
    })
    .await;
    writer.insert_item(1, 100).await;
    writer.publish(&event("before", 1, 1)).await;
    writer.wait_for_orders(1).await;

    proxy.break_all();
    for i in 0..20 {
        writer.publish(&event(&format!("during-{i}"), 1, 1)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        writer.order_count().await,
        1,
        "nothing can be written while MySQL is away"
    );
    proxy.restore();
    writer.wait_for_orders(21).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(writer.order_count().await, 21);
    assert_eq!(writer.stock(1).await, 79);
}

#[tokio::test]
async fn the_consumer_reconnects_after_a_rabbitmq_outage() {
    let proxy = ChaosProxy::to_rabbitmq().await;
    let port = proxy.port;
    let writer = spawn_writer_with(|s| s.rabbitmq.port = port).await;
    writer.insert_item(1, 100).await;
    writer.publish(&event("before", 1, 1)).await;
    writer.wait_for_orders(1).await;

    proxy.break_all();
    // Published straight to the broker (not through the proxy) while the writer is cut off.
    for i in 0..10 {
        writer.publish(&event(&format!("during-{i}"), 1, 2)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(writer.order_count().await, 1);
    proxy.restore();
    writer.wait_for_orders(11).await;
    assert_eq!(writer.stock(1).await, 79);
}
