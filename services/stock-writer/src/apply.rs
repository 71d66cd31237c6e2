//! Applying stock events to MySQL: each event inserts its order (keyed by the order id,
//! so a redelivered event changes nothing) and decrements the item's stock with a
//! checked update. A batch shares one transaction. The fast path does the whole batch in
//! a few statements (find the orders already persisted, one checked decrement per item,
//! one multi-row insert); if any item cannot cover its share it falls back to one
//! savepoint per event, so an event that can never apply is rolled back alone and the
//! rest commit.

use chrono::DateTime;
use db::schema::{items, orders};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use events::StockEvent;
use std::collections::{BTreeMap, HashSet};

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
    match apply_all_or_none(conn, events).await? {
        Some(outcomes) => Ok(outcomes),
        None => apply_one_by_one(conn, events).await,
    }
}

/// The whole batch, or `None` (nothing written) when some event cannot apply.
async fn apply_all_or_none(
    conn: &mut AsyncMysqlConnection,
    events: &[&StockEvent],
) -> Result<Option<Vec<Applied>>, diesel::result::Error> {
    let outcome = conn
        .transaction(async |c| {
            let ids: Vec<&str> = events.iter().map(|e| e.order_id.as_str()).collect();
            let persisted: HashSet<String> = db::orders::persisted_among(&mut *c, &ids)
                .await?
                .into_iter()
                .collect();
            let mut seen = HashSet::new();
            let mut outcomes = Vec::with_capacity(events.len());
            let mut rows = Vec::with_capacity(events.len());
            let mut per_item: BTreeMap<u64, u64> = BTreeMap::new();
            for event in events {
                if persisted.contains(&event.order_id) || !seen.insert(event.order_id.as_str()) {
                    outcomes.push(Applied::Duplicate);
                    continue;
                }
                let Some(purchased_at) = DateTime::from_timestamp_millis(event.purchased_at_ms)
                else {
                    return Err(diesel::result::Error::RollbackTransaction);
                };
                rows.push(NewOrder {
                    id: &event.order_id,
                    user_id: event.user_id,
                    item_id: event.item_id,
                    quantity: event.quantity,
                    purchased_at: purchased_at.naive_utc(),
                });
                *per_item.entry(event.item_id).or_default() += u64::from(event.quantity);
                outcomes.push(Applied::Applied);
            }
            // Items in id order, so concurrent writers lock rows in the same order.
            for (item_id, quantity) in per_item {
                let quantity = u32::try_from(quantity)
                    .map_err(|_| diesel::result::Error::RollbackTransaction)?;
                let decremented =
                    diesel::update(items::table.find(item_id).filter(items::stock.ge(quantity)))
                        .set(items::stock.eq(items::stock - quantity))
                        .execute(&mut *c)
                        .await?;
                if decremented != 1 {
                    return Err(diesel::result::Error::RollbackTransaction);
                }
            }
            if !rows.is_empty() {
                diesel::insert_into(orders::table)
                    .values(&rows)
                    .execute(&mut *c)
                    .await?;
            }
            Ok(outcomes)
        })
        .await;
    match outcome {
        Ok(outcomes) => Ok(Some(outcomes)),
        Err(diesel::result::Error::RollbackTransaction) => Ok(None),
        Err(error) => Err(error),
    }
}

/// One savepoint per event: the poison ones roll back alone.
async fn apply_one_by_one(
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
