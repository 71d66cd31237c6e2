//! `stock-writer dlq list` and `stock-writer dlq replay [ORDER_ID]`: what an operator
//! does with orders stock-writer refused for good. Each refused message is also in the
//! dead-letter queue (with the reason in `x-death-reason`), unreadable ones included;
//! the parked set in Redis is what replay works from, since it holds the orders taken
//! in Redis that MySQL still lacks.

use inventory::Inventory;
use inventory::parked::ParkedOrder;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use std::time::Duration;

/// Every parked order, oldest first.
pub async fn list(store: &Inventory) -> anyhow::Result<Vec<ParkedOrder>> {
    let items = store.stock.known_item_ids().await?;
    Ok(store.outbox.parked_orders(&items).await?)
}

/// Puts parked orders (all, or the one named) back into their outboxes, due at once:
/// the relay publishes them again and stock-writer applies them, or parks them again if
/// the cause is still there. Returns the orders put back.
pub async fn replay(store: &Inventory, order_id: Option<&str>) -> anyhow::Result<Vec<ParkedOrder>> {
    let parked = list(store).await?;
    if let Some(wanted) = order_id
        && !parked.iter().any(|p| p.order_id == wanted)
    {
        anyhow::bail!("order {wanted} is not parked (see `stock-writer dlq list`)");
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut replayed = Vec::new();
    for order in parked
        .into_iter()
        .filter(|p| order_id.is_none_or(|wanted| p.order_id == wanted))
    {
        if store.outbox.unpark(&order, now_ms).await? {
            tracing::info!(order_id = %order.order_id, item_id = order.item_id, "parked order put back into the outbox");
            replayed.push(order);
        }
    }
    Ok(replayed)
}

/// How many messages are ready in a queue (the dead-letter queue, the stock queue), if
/// the broker can be asked.
pub async fn message_count(url: &str, queue: &str) -> anyhow::Result<u32> {
    let (connection, channel) = events::publisher::connect(url, Duration::from_secs(5))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let _ = connection.close(200, "done".into()).await;
    Ok(declared.message_count())
}
