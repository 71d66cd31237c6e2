//! The outbox: orders taken in Redis but not yet persisted in MySQL, per item, as a
//! hash (order id → event JSON) and a sorted set (order id → when it is next due for
//! publishing, in Unix milliseconds). The purchase script writes both; stock-writer
//! removes an order once MySQL has it; purchase-service pushes an order's due time back
//! once the broker has confirmed it, and the relay republishes what comes due.

use crate::{Error, ItemStore};
use redis::AsyncCommands;

/// An outbox entry: which item's outbox, the order id and the event JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub item_id: u64,
    pub order_id: String,
    pub event: String,
}

impl ItemStore {
    /// Entries due at `now_ms` or earlier, at most `limit` per item.
    pub async fn due_outbox_entries(
        &self,
        item_ids: &[u64],
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, Error> {
        if item_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.redis().get().await?;
        let mut pipe = redis::pipe();
        for id in item_ids {
            pipe.zrangebyscore_limit(
                self.keys(*id).outbox_times(),
                "-inf",
                now_ms,
                0,
                limit as isize,
            );
        }
        let due: Vec<Vec<String>> = pipe.query_async(&mut conn).await?;
        let mut pipe = redis::pipe();
        let mut wanted = Vec::new();
        for (id, order_ids) in item_ids.iter().zip(due) {
            if order_ids.is_empty() {
                continue;
            }
            pipe.cmd("HMGET")
                .arg(self.keys(*id).outbox())
                .arg(&order_ids);
            wanted.push((*id, order_ids));
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let events: Vec<Vec<Option<String>>> = pipe.query_async(&mut conn).await?;
        let mut entries = Vec::new();
        let mut stale = redis::pipe();
        let mut any_stale = false;
        for ((item_id, order_ids), events) in wanted.into_iter().zip(events) {
            for (order_id, event) in order_ids.into_iter().zip(events) {
                match event {
                    Some(event) => entries.push(OutboxEntry {
                        item_id,
                        order_id,
                        event,
                    }),
                    // Persisted and removed between the two reads; drop its schedule too.
                    None => {
                        stale
                            .zrem(self.keys(item_id).outbox_times(), order_id)
                            .ignore();
                        any_stale = true;
                    }
                }
            }
        }
        if any_stale {
            stale.query_async::<()>(&mut conn).await?;
        }
        Ok(entries)
    }

    /// Schedules orders (item id, order id) to be due again at `due_ms`, those still in
    /// the outbox only.
    pub async fn reschedule(&self, orders: &[(u64, &str)], due_ms: i64) -> Result<(), Error> {
        if orders.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (item_id, order_id) in orders {
            pipe.cmd("ZADD")
                .arg(self.keys(*item_id).outbox_times())
                .arg("XX")
                .arg(due_ms)
                .arg(*order_id)
                .ignore();
        }
        let mut conn = self.redis().get().await?;
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Removes persisted orders from their outboxes.
    pub async fn remove_from_outbox(&self, orders: &[(u64, &str)]) -> Result<(), Error> {
        if orders.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (item_id, order_id) in orders {
            let keys = self.keys(*item_id);
            pipe.hdel(keys.outbox(), *order_id).ignore();
            pipe.zrem(keys.outbox_times(), *order_id).ignore();
        }
        let mut conn = self.redis().get().await?;
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Every outbox entry of the given items (order listings; outboxes stay small while
    /// stock-writer keeps up).
    pub async fn outbox_entries(&self, item_ids: &[u64]) -> Result<Vec<OutboxEntry>, Error> {
        if item_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in item_ids {
            pipe.hgetall(self.keys(*id).outbox());
        }
        let mut conn = self.redis().get().await?;
        let all: Vec<Vec<(String, String)>> = pipe.query_async(&mut conn).await?;
        Ok(item_ids
            .iter()
            .zip(all)
            .flat_map(|(item_id, entries)| {
                entries
                    .into_iter()
                    .map(move |(order_id, event)| OutboxEntry {
                        item_id: *item_id,
                        order_id,
                        event,
                    })
            })
            .collect())
    }

    /// How many orders sit in one item's outbox.
    pub async fn outbox_len(&self, item_id: u64) -> Result<u64, Error> {
        let mut conn = self.redis().get().await?;
        Ok(conn.hlen(self.keys(item_id).outbox()).await?)
    }
}
