//! Parked orders: taken in Redis (the buyer was answered 200) but refused by
//! stock-writer for good (say the item is unknown to MySQL, or MySQL's stock cannot
//! cover it). stock-writer dead-letters the message and moves the order out of the
//! outbox into the item's parked set, so the relay stops republishing it; an operator
//! lists them and, once the cause is fixed, puts them back (`stock-writer dlq`).

use crate::outbox::OrderRef;
use crate::{Error, Outbox};
use common::redis::SlotPipeline;
use redis::Script;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

static PARK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/park.lua")));
static UNPARK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/unpark.lua")));

/// A parked order as stored: the event and why it was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedOrder {
    #[serde(default)]
    pub item_id: u64,
    #[serde(default)]
    pub order_id: String,
    /// The stock event JSON, as it was in the outbox.
    pub event: String,
    pub reason: String,
    pub parked_at_ms: i64,
}

/// The event JSON of a stored parked entry.
pub fn event_of(stored: &str) -> Option<String> {
    serde_json::from_str::<ParkedOrder>(stored)
        .ok()
        .map(|p| p.event)
}

impl Outbox {
    /// Parks an order stock-writer refused for good.
    pub async fn park(
        &self,
        order: OrderRef<'_>,
        event: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<(), Error> {
        let keys = self.core.keys(order.item_id);
        let entry = ParkedOrder {
            item_id: order.item_id,
            order_id: order.order_id.to_owned(),
            event: event.to_owned(),
            reason: reason.to_owned(),
            parked_at_ms: now_ms,
        };
        let mut conn = self.core.redis().get().await?;
        PARK.key(keys.outbox())
            .key(keys.outbox_times())
            .key(keys.outbox_tries())
            .key(keys.parked())
            .arg(order.order_id)
            .arg(serde_json::to_string(&entry).unwrap_or_default())
            .invoke_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// The parked orders of the given items, oldest first.
    pub async fn parked_orders(&self, item_ids: &[u64]) -> Result<Vec<ParkedOrder>, Error> {
        if item_ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys = item_ids.iter().map(|id| self.core.keys(*id).parked());
        let all: Vec<Vec<(String, String)>> =
            SlotPipeline::per_key(keys, |key| redis::Cmd::hgetall(key))
                .query(&self.core.redis().get().await?)
                .await?;
        let mut parked = Vec::new();
        for (item_id, entries) in item_ids.iter().zip(all) {
            for (order_id, stored) in entries {
                let mut entry = serde_json::from_str::<ParkedOrder>(&stored)
                    .map_err(|_| Error::UnexpectedReply(stored.clone()))?;
                entry.item_id = *item_id;
                entry.order_id = order_id;
                parked.push(entry);
            }
        }
        parked.sort_by_key(|p| p.parked_at_ms);
        Ok(parked)
    }

    /// How many orders are parked, per item, for the given items.
    pub async fn parked_counts(&self, item_ids: &[u64]) -> Result<Vec<u64>, Error> {
        self.hash_lengths(item_ids, |keys| keys.parked()).await
    }

    /// How many orders wait in each outbox, for the given items.
    pub async fn counts(&self, item_ids: &[u64]) -> Result<Vec<u64>, Error> {
        self.hash_lengths(item_ids, |keys| keys.outbox()).await
    }

    async fn hash_lengths(
        &self,
        item_ids: &[u64],
        key: impl Fn(&crate::ItemKeys) -> String,
    ) -> Result<Vec<u64>, Error> {
        if item_ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys = item_ids.iter().map(|id| key(&self.core.keys(*id)));
        Ok(SlotPipeline::per_key(keys, |key| redis::Cmd::hlen(key))
            .query(&self.core.redis().get().await?)
            .await?)
    }

    /// Puts a parked order back into its outbox, due at `due_ms`; false if it was not
    /// parked (any more).
    pub async fn unpark(&self, parked: &ParkedOrder, due_ms: i64) -> Result<bool, Error> {
        let keys = self.core.keys(parked.item_id);
        let mut conn = self.core.redis().get().await?;
        let moved: i64 = UNPARK
            .key(keys.parked())
            .key(keys.outbox())
            .key(keys.outbox_times())
            .key(keys.outbox_tries())
            .arg(&parked.order_id)
            .arg(&parked.event)
            .arg(due_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok(moved == 1)
    }
}
