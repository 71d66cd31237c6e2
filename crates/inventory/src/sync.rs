//! Rebuilding an item's Redis state from MySQL's figures (sync-stock): one script sets
//! stock to MySQL's stock minus what Redis sold that MySQL does not have yet, so
//! purchases before it are counted and purchases after it decrement what it set.

use crate::{Error, Inventory};
use redis::Script;
use std::sync::LazyLock;

static SYNC: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("scripts/unpersisted.lua"),
        include_str!("scripts/sync_stock.lua")
    ))
});

/// MySQL's view of an item, and which of the item's outbox messages MySQL already has.
#[derive(Debug, Clone)]
pub struct MysqlFigures {
    /// MySQL's `stock - stock_owed`.
    pub stock: i64,
    pub on_sale: bool,
    pub max_per_user: Option<u32>,
    /// Outbox fields (`<order id>`, `<order id>:<type>`) whose event MySQL has applied.
    pub persisted_messages: Vec<String>,
}

/// What one sync did in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    /// Redis stock before (`None` when Redis had none).
    pub before: Option<i64>,
    pub after: i64,
    /// Units sold in Redis and not yet persisted (outbox and parked).
    pub pending: i64,
    /// Persisted events that were still in the outbox, now removed.
    pub cleaned: i64,
    /// Pending sales MySQL's stock could not cover (0 unless the two had drifted).
    pub shortfall: i64,
}

impl Inventory {
    /// Sets an item's stock, on-sale flag and limit from MySQL's figures.
    pub async fn sync(&self, item_id: u64, mysql: &MysqlFigures) -> Result<Synced, Error> {
        let keys = self.core.keys(item_id);
        let mut conn = self.core.redis().get().await?;
        let reply: Vec<String> = SYNC
            .key(keys.stock())
            .key(keys.meta())
            .key(keys.outbox())
            .key(keys.outbox_times())
            .key(keys.parked())
            .key(keys.outbox_tries())
            .arg(mysql.stock)
            .arg(u8::from(mysql.on_sale))
            .arg(mysql.max_per_user.unwrap_or(0))
            .arg(&mysql.persisted_messages)
            .invoke_async(&mut conn)
            .await?;
        let [before, after, pending, cleaned, shortfall] = numbers(reply)?;
        if after > before.max(0) {
            self.core.announce_stock_back(item_id).await;
        }
        Ok(Synced {
            before: Some(before).filter(|b| *b >= 0),
            after,
            pending,
            cleaned,
            shortfall,
        })
    }
}

/// A script's reply of `N` decimal strings, as numbers.
pub(crate) fn numbers<const N: usize>(reply: Vec<String>) -> Result<[i64; N], Error> {
    let parsed: Option<Vec<i64>> = reply.iter().map(|v| v.parse().ok()).collect();
    parsed
        .and_then(|numbers| numbers.try_into().ok())
        .ok_or_else(|| Error::UnexpectedReply(reply.join(" ")))
}
