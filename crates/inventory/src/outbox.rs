//! The outbox: orders taken in Redis but not yet persisted in MySQL, per item, as a
//! hash (order id → event JSON) and a sorted set (order id → when it is next due for
//! publishing, in Unix milliseconds). The purchase script writes both; stock-writer
//! removes an order once MySQL has it; purchase-service pushes an order's due time back
//! once the broker has confirmed it, and the relay republishes what comes due.
//!
//! The purchase script also lists each order in its buyer's set of pending orders of
//! the item (same slot), cleared with the outbox entry, so that listing a buyer's
//! pending orders reads only theirs, among the items selling now ([`crate::selling`]).

use crate::Error;
use crate::core::Core;
use common::redis::SlotPipeline;
use redis::AsyncCommands;
use std::collections::BTreeMap;

/// Run as EVAL inside a pipeline (one per item); Redis caches it compiled by its hash.
const BACK_OFF_LUA: &str = include_str!("scripts/back_off.lua");
const OUTBOX_OLDEST_LUA: &str = include_str!("scripts/outbox_oldest.lua");
const BUYER_PENDING_LUA: &str = include_str!("scripts/buyer_pending.lua");

/// The outbox of every item, and each buyer's set of their orders in it.
#[derive(Clone)]
pub struct Outbox {
    pub(crate) core: Core,
}

/// An order stock-writer has persisted (or parked): enough to clear it everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderRef<'a> {
    pub item_id: u64,
    pub user_id: u64,
    pub order_id: &'a str,
}

/// An outbox entry: which item's outbox, the order id and the event JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub item_id: u64,
    pub order_id: String,
    pub event: String,
}

/// The members of a sorted set scored `max_score` or lower, `limit` at most, lowest
/// first: what is due in a schedule.
pub(crate) fn due_by(key: &str, max_score: i64, limit: usize) -> redis::Cmd {
    let mut cmd = redis::cmd("ZRANGE");
    cmd.arg(key)
        .arg("-inf")
        .arg(max_score)
        .arg("BYSCORE")
        .arg("LIMIT")
        .arg(0)
        .arg(limit);
    cmd
}

impl Outbox {
    /// Entries due at `now_ms` or earlier, at most `limit` per item.
    pub async fn due_entries(
        &self,
        item_ids: &[u64],
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, Error> {
        if item_ids.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.core.redis().get().await?;
        let keys = item_ids.iter().map(|id| self.core.keys(*id).outbox_times());
        let due: Vec<Vec<String>> = SlotPipeline::per_key(keys, |key| due_by(key, now_ms, limit))
            .query(&conn)
            .await?;
        let mut pipe = SlotPipeline::new();
        let mut wanted = Vec::new();
        for (id, order_ids) in item_ids.iter().zip(due) {
            if order_ids.is_empty() {
                continue;
            }
            let key = self.core.keys(*id).outbox();
            let mut cmd = redis::cmd("HMGET");
            cmd.arg(&key).arg(&order_ids);
            pipe.add(&key, cmd);
            wanted.push((*id, order_ids));
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let events: Vec<Vec<Option<String>>> = pipe.query(&conn).await?;
        let mut entries = Vec::new();
        let mut stale = SlotPipeline::new();
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
                        let key = self.core.keys(item_id).outbox_times();
                        stale.add_ignored(&key, redis::Cmd::zrem(&key, order_id));
                    }
                }
            }
        }
        stale.run(&conn).await?;
        Ok(entries)
    }

    /// Marks orders (item id, order id) the broker has confirmed: each is due again (for
    /// the relay) only at `due_ms`, those still in the outbox only.
    pub async fn mark_confirmed(&self, orders: &[(u64, &str)], due_ms: i64) -> Result<(), Error> {
        if orders.is_empty() {
            return Ok(());
        }
        let mut pipe = SlotPipeline::new();
        for (item_id, order_id) in orders {
            let key = self.core.keys(*item_id).outbox_times();
            let mut cmd = redis::cmd("ZADD");
            cmd.arg(&key).arg("XX").arg(due_ms).arg(*order_id);
            pipe.add_ignored(&key, cmd);
        }
        pipe.run(&self.core.redis().get().await?).await?;
        Ok(())
    }

    /// Pushes back orders the relay has republished, each by its own exponential backoff
    /// (`base_ms` doubling per republish of that order, at most `max_ms`), so an order
    /// stock-writer cannot take yet is not republished every few seconds for as long as
    /// that lasts.
    pub async fn back_off(
        &self,
        orders: &[(u64, &str)],
        now_ms: i64,
        base_ms: i64,
        max_ms: i64,
    ) -> Result<(), Error> {
        let mut by_item: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
        for (item_id, order_id) in orders {
            by_item.entry(*item_id).or_default().push(order_id);
        }
        if by_item.is_empty() {
            return Ok(());
        }
        let mut pipe = SlotPipeline::new();
        for (item_id, order_ids) in by_item {
            let keys = self.core.keys(item_id);
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(BACK_OFF_LUA)
                .arg(3)
                .arg(keys.outbox())
                .arg(keys.outbox_times())
                .arg(keys.outbox_tries())
                .arg(now_ms)
                .arg(base_ms)
                .arg(max_ms)
                .arg(order_ids);
            pipe.add_ignored(&keys.outbox(), cmd);
        }
        pipe.run(&self.core.redis().get().await?).await?;
        Ok(())
    }

    /// Removes persisted orders from their outboxes and from their buyers' sets.
    pub async fn remove(&self, orders: &[OrderRef<'_>]) -> Result<(), Error> {
        if orders.is_empty() {
            return Ok(());
        }
        let mut pipe = SlotPipeline::new();
        for order in orders {
            let keys = self.core.keys(order.item_id);
            pipe.add_ignored(
                &keys.outbox(),
                redis::Cmd::hdel(keys.outbox(), order.order_id),
            )
            .add_ignored(
                &keys.outbox(),
                redis::Cmd::zrem(keys.outbox_times(), order.order_id),
            )
            .add_ignored(
                &keys.outbox(),
                redis::Cmd::hdel(keys.outbox_tries(), order.order_id),
            );
            pipe.add_ignored(
                &keys.outbox(),
                redis::Cmd::srem(keys.buyer_pending(order.user_id), order.order_id),
            );
        }
        pipe.run(&self.core.redis().get().await?).await?;
        Ok(())
    }

    /// The outbox (or parked) entries of one buyer's pending orders among `item_ids`
    /// (the items selling now, [`crate::Selling::items`]); `order_id` narrows it to one.
    /// Ids whose order has left both (persisted meanwhile) leave the buyer's set.
    pub async fn pending_of_user(
        &self,
        user_id: u64,
        item_ids: &[u64],
        order_id: Option<&str>,
    ) -> Result<Vec<OutboxEntry>, Error> {
        if item_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = SlotPipeline::new();
        for item_id in item_ids {
            let keys = self.core.keys(*item_id);
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(BUYER_PENDING_LUA)
                .arg(3)
                .arg(keys.buyer_pending(user_id))
                .arg(keys.outbox())
                .arg(keys.parked())
                .arg(order_id);
            pipe.add(&keys.outbox(), cmd);
        }
        let found: Vec<Vec<Option<String>>> = pipe.query(&self.core.redis().get().await?).await?;
        let mut entries = Vec::new();
        for (item_id, found) in item_ids.iter().zip(found) {
            for triple in found.chunks_exact(3) {
                let [Some(order_id), event, parked] = triple else {
                    continue;
                };
                let event = event
                    .clone()
                    .or_else(|| parked.as_deref().and_then(crate::parked::event_of));
                if let Some(event) = event {
                    entries.push(OutboxEntry {
                        item_id: *item_id,
                        order_id: order_id.clone(),
                        event,
                    });
                }
            }
        }
        Ok(entries)
    }

    /// One outbox entry's event JSON.
    pub async fn event(&self, item_id: u64, message_id: &str) -> Result<Option<String>, Error> {
        let mut conn = self.core.redis().get().await?;
        Ok(conn
            .hget(self.core.keys(item_id).outbox(), message_id)
            .await?)
    }

    /// When the oldest entry of each item's outbox was written (Unix ms, the event's own
    /// time), `None` for an empty outbox. Reads every entry of each outbox in Redis:
    /// meant for the few items that have pending orders, every few seconds.
    pub async fn oldest_entries(&self, item_ids: &[u64]) -> Result<Vec<Option<i64>>, Error> {
        if item_ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys = item_ids.iter().map(|id| self.core.keys(*id).outbox());
        let pipe = SlotPipeline::per_key(keys, |key| {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(OUTBOX_OLDEST_LUA).arg(1).arg(key);
            cmd
        });
        Ok(pipe.query(&self.core.redis().get().await?).await?)
    }

    /// The message ids (outbox fields) in an item's outbox: `<order id>` for a
    /// placement, `<order id>:<type>` for a reservation's later step.
    pub async fn message_ids(&self, item_id: u64) -> Result<Vec<String>, Error> {
        let mut conn = self.core.redis().get().await?;
        Ok(redis::cmd("HKEYS")
            .arg(self.core.keys(item_id).outbox())
            .query_async(&mut conn)
            .await?)
    }

    /// How many orders sit in one item's outbox.
    pub async fn len(&self, item_id: u64) -> Result<u64, Error> {
        let mut conn = self.core.redis().get().await?;
        Ok(conn.hlen(self.core.keys(item_id).outbox()).await?)
    }
}

#[cfg(test)]
mod tests {
    use testkit::TestRedis;

    #[tokio::test]
    async fn each_republish_of_an_order_doubles_its_wait_up_to_the_cap() {
        use redis::AsyncCommands;
        let redis = TestRedis::new();
        let store = crate::Inventory::on(&redis).outbox;
        let keys = store.core.keys(1);
        let mut conn = redis.connection().await;
        conn.hset::<_, _, _, ()>(keys.outbox(), "o-1", "{}")
            .await
            .unwrap();
        conn.zadd::<_, _, _, ()>(keys.outbox_times(), "o-1", 0)
            .await
            .unwrap();
        let mut waits = Vec::new();
        for _ in 0..6 {
            store
                .back_off(&[(1, "o-1")], 1_000, 100, 1_600)
                .await
                .unwrap();
            let due: i64 = conn.zscore(keys.outbox_times(), "o-1").await.unwrap();
            waits.push(due - 1_000);
        }
        assert_eq!(waits, [100, 200, 400, 800, 1_600, 1_600]);
        // An order persisted meanwhile is left alone.
        store
            .back_off(&[(1, "gone")], 1_000, 100, 1_600)
            .await
            .unwrap();
        let scheduled: u64 = conn.zcard(keys.outbox_times()).await.unwrap();
        assert_eq!(scheduled, 1);
    }

    #[tokio::test]
    async fn the_oldest_outbox_entry_is_told_by_its_own_time() {
        use redis::AsyncCommands;
        let redis = TestRedis::new();
        let store = crate::Inventory::on(&redis).outbox;
        let mut conn = redis.connection().await;
        let outbox = store.core.keys(1).outbox();
        for (field, event) in [
            ("o-1", r#"{"order_id":"o-1","purchased_at_ms":5000}"#),
            ("o-2", r#"{"order_id":"o-2","purchased_at_ms":3000}"#),
            // A step of an order placed long ago entered the outbox when it happened.
            (
                "o-0:paid",
                r#"{"type":"paid","order_id":"o-0","purchased_at_ms":1000,"at_ms":4000}"#,
            ),
        ] {
            conn.hset::<_, _, _, ()>(&outbox, field, event)
                .await
                .unwrap();
        }
        assert_eq!(
            store.oldest_entries(&[1, 2]).await.unwrap(),
            [Some(3000), None]
        );
        assert!(store.oldest_entries(&[]).await.unwrap().is_empty());
    }
}
