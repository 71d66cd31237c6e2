//! Applying stock events to MySQL: each event inserts its order (keyed by the order id,
//! so a redelivered event changes nothing) and decrements the item's stock with a
//! checked update. A batch shares one transaction; each event runs in a savepoint, so
//! an event that can never apply is rolled back alone and the rest commit.

use chrono::DateTime;
use db::schema::{items, orders};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use events::StockEvent;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// The order was already persisted: acknowledged without effect.
    Duplicate,
    /// Can never be applied; goes to the dead-letter queue with this reason.
    Poison(String),
}

#[derive(Debug, thiserror::Error)]
enum EventError {
    #[error("{0}")]
    Poison(String),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

#[derive(Insertable)]
#[diesel(table_name = orders)]
struct NewOrder<'a> {
    id: &'a str,
    user_id: u64,
    item_id: u64,
    quantity: u32,
    purchased_at: chrono::NaiveDateTime,
}

async fn apply_one(
    conn: &mut AsyncMysqlConnection,
    event: &StockEvent,
) -> Result<Applied, EventError> {
    let purchased_at = DateTime::from_timestamp_millis(event.purchased_at_ms)
        .ok_or_else(|| EventError::Poison("purchased_at_ms is out of range".into()))?
        .naive_utc();
    let inserted = diesel::insert_or_ignore_into(orders::table)
        .values(NewOrder {
            id: &event.order_id,
            user_id: event.user_id,
            item_id: event.item_id,
            quantity: event.quantity,
            purchased_at,
        })
        .execute(conn)
        .await?;
    if inserted == 0 {
        return Ok(Applied::Duplicate);
    }
    let decremented = diesel::update(
        items::table
            .find(event.item_id)
            .filter(items::stock.ge(event.quantity)),
    )
    .set(items::stock.eq(items::stock - event.quantity))
    .execute(conn)
    .await?;
    if decremented == 1 {
        return Ok(Applied::Applied);
    }
    let stock: Option<u32> = items::table
        .find(event.item_id)
        .select(items::stock)
        .first(conn)
        .await
        .optional()?;
    Err(EventError::Poison(match stock {
        None => format!("unknown item {}", event.item_id),
        Some(stock) => format!(
            "would make stock negative: item {} has {stock}, order wants {}",
            event.item_id, event.quantity
        ),
    }))
}

/// Applies a batch in one transaction. An `Err` is a database failure (nothing was
/// committed): the caller retries the batch later.
pub async fn apply_batch(
    conn: &mut AsyncMysqlConnection,
    events: &[&StockEvent],
) -> Result<Vec<Applied>, diesel::result::Error> {
    conn.transaction(async |c| {
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            let outcome = c
                .transaction::<_, EventError, _>(async |sp| apply_one(sp, event).await)
                .await;
            outcomes.push(match outcome {
                Ok(applied) => applied,
                Err(EventError::Poison(reason)) => Applied::Poison(reason),
                Err(EventError::Database(error)) => return Err(error),
            });
        }
        Ok(outcomes)
    })
    .await
}
