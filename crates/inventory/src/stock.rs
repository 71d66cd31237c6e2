//! An item's sale state in Redis: live stock, on-sale flag, per-user limit and sale
//! terms. The purchases that change stock are in `purchase/`; here are the catalog's
//! reads and admin writes and the start-up warm-up.

use crate::Error;
use crate::core::Core;
use crate::keys::{
    ENDS_MS, LIMIT, ON_SALE, PASS_MS, PAY_WINDOW_MS, PRICE, ROOM, ROOM_MAX, STARTS_MS,
};
use crate::room::RoomTerms;
use common::redis::SlotPipeline;
use redis::{AsyncCommands, FromRedisValue, Script};
use std::sync::LazyLock;

static ADD_STOCK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/add_stock.lua")));
static TAKE_BACK_STOCK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/take_back_stock.lua")));

/// How long a restock's marker is kept: far longer than a restock and its undo take.
const RESTOCK_MARKER_TTL_SECS: u64 = 3600;

/// What Redis must know of an item to sell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemState {
    pub id: u64,
    pub stock: u32,
    pub max_per_user: Option<u32>,
    pub on_sale: bool,
    pub terms: SaleTerms,
}

impl ItemState {
    /// An item on sale with `stock` units, no per-user limit and no other terms.
    pub fn on_sale(id: u64, stock: u32) -> Self {
        ItemState {
            id,
            stock,
            max_per_user: None,
            on_sale: true,
            terms: SaleTerms::default(),
        }
    }
}

/// When an item sells and on what terms; the purchase script reads them from the item's
/// meta hash, against the Redis server's clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaleTerms {
    /// Unit price in minor units: a reservation's amount due is price × quantity.
    pub price: u64,
    /// Unix ms; purchases before it are refused.
    pub starts_at_ms: Option<i64>,
    /// Unix ms; purchases at or after it are refused.
    pub ends_at_ms: Option<i64>,
    /// Seconds a buyer has to pay for a reservation; `None` or 0: orders are final.
    pub payment_window_secs: Option<u32>,
    pub room: RoomTerms,
}

impl SaleTerms {
    /// The meta hash's fields and values (0 stands for "none").
    fn fields(&self) -> [(&'static str, i64); 7] {
        [
            (PRICE, i64::try_from(self.price).unwrap_or(i64::MAX)),
            (STARTS_MS, self.starts_at_ms.unwrap_or(0)),
            (ENDS_MS, self.ends_at_ms.unwrap_or(0)),
            (
                PAY_WINDOW_MS,
                i64::from(self.payment_window_secs.unwrap_or(0)) * 1000,
            ),
            (ROOM, i64::from(self.room.enabled)),
            (ROOM_MAX, i64::from(self.room.max_admitted.unwrap_or(0))),
            (PASS_MS, i64::from(self.room.pass_secs) * 1000),
        ]
    }
}

/// An item's sale state and its purchases: the catalog's reads and admin writes, the
/// start-up warm-up, and the two purchase strategies (`purchase/`).
#[derive(Clone)]
pub struct Stock {
    pub(crate) core: Core,
}

/// How many items a warm-up writes per round trip.
const WARM_BATCH: usize = 500;

impl Stock {
    /// The channel stock-back notices go to (see [`crate::stock_back`]).
    pub fn stock_back_channel(&self) -> String {
        self.core.stock_back_channel()
    }

    /// Adds items to the known set (sync-stock does, for items it rebuilt).
    pub async fn remember(&self, ids: &[u64]) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.core.redis.get().await?;
        conn.sadd::<_, _, ()>(self.core.known_items(), ids).await?;
        Ok(())
    }

    pub async fn known_item_ids(&self) -> Result<Vec<u64>, Error> {
        let mut conn = self.core.redis.get().await?;
        Ok(conn.smembers(self.core.known_items()).await?)
    }

    /// Live stock of several items in one round trip (one per slot on a cluster); `None` where Redis has no figure or one that is not a
    /// count (logged: one bad key must not fail a whole page).
    pub async fn stocks(&self, ids: &[u64]) -> Result<Vec<Option<u64>>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys = ids.iter().map(|id| self.core.keys(*id).stock());
        let raw: Vec<Option<String>> = SlotPipeline::per_key(keys, |key| redis::Cmd::get(key))
            .query(&self.core.redis.get().await?)
            .await?;
        Ok(ids
            .iter()
            .zip(raw)
            .map(|(id, raw)| {
                let raw = raw?;
                let stock = raw.parse::<u64>().ok();
                if stock.is_none() {
                    tracing::error!(item_id = id, stock = %raw, "Redis holds no valid stock for the item; showing MySQL's (run sync-stock)");
                }
                stock
            })
            .collect())
    }

    /// Writes an item's whole state, replacing what was there (a new item).
    pub async fn put(&self, state: &ItemState) -> Result<(), Error> {
        let keys = self.core.keys(state.id);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set(keys.stock(), state.stock)
            .ignore()
            .hset_multiple(
                keys.meta(),
                &[
                    (ON_SALE, i64::from(state.on_sale)),
                    (LIMIT, i64::from(state.max_per_user.unwrap_or(0))),
                ],
            )
            .ignore()
            .hset_multiple(keys.meta(), &state.terms.fields())
            .ignore();
        let mut conn = self.core.redis.get().await?;
        pipe.query_async::<()>(&mut conn).await?;
        self.remember(&[state.id]).await?;
        self.core.redis.replicated(&keys.stock()).await?;
        if state.on_sale && state.stock > 0 {
            self.core.announce_stock_back(state.id).await;
        }
        Ok(())
    }

    /// Loads items Redis does not know yet, never overwriting a figure it has (Redis
    /// is ahead of MySQL while sales are being persisted). A deleted item is always
    /// taken off sale. Returns how many stock figures were loaded.
    pub async fn warm(&self, states: &[ItemState]) -> Result<usize, Error> {
        let mut loaded = 0;
        let conn = self.core.redis.get().await?;
        for batch in states.chunks(WARM_BATCH) {
            let mut pipe = SlotPipeline::new();
            for state in batch {
                let keys = self.core.keys(state.id);
                let (stock, meta) = (keys.stock(), keys.meta());
                pipe.add(&stock, redis::Cmd::set_nx(&stock, state.stock));
                let on_sale = if state.on_sale {
                    redis::Cmd::hset_nx(&meta, ON_SALE, 1)
                } else {
                    redis::Cmd::hset(&meta, ON_SALE, 0)
                };
                pipe.add_ignored(&meta, on_sale).add_ignored(
                    &meta,
                    redis::Cmd::hset_nx(&meta, LIMIT, state.max_per_user.unwrap_or(0)),
                );
                for (field, value) in state.terms.fields() {
                    pipe.add_ignored(&meta, redis::Cmd::hset_nx(&meta, field, value));
                }
            }
            let set: Vec<bool> = pipe.query(&conn).await?;
            loaded += set.into_iter().filter(|s| *s).count();
            let ids: Vec<u64> = batch.iter().map(|state| state.id).collect();
            self.remember(&ids).await?;
        }
        Ok(loaded)
    }

    /// An admin's writes below return once replicas have them (`REDIS_MIN_REPLICAS_ACKED`).
    pub async fn set_on_sale(&self, item_id: u64, on_sale: bool) -> Result<(), Error> {
        let meta = self.core.keys(item_id).meta();
        let mut conn = self.core.redis.get().await?;
        conn.hset::<_, _, _, ()>(&meta, ON_SALE, u32::from(on_sale))
            .await?;
        self.core.redis.replicated(&meta).await?;
        if on_sale {
            self.core.announce_stock_back(item_id).await;
        }
        Ok(())
    }

    pub async fn set_limit(&self, item_id: u64, max_per_user: Option<u32>) -> Result<(), Error> {
        let meta = self.core.keys(item_id).meta();
        let mut conn = self.core.redis.get().await?;
        conn.hset::<_, _, _, ()>(&meta, LIMIT, max_per_user.unwrap_or(0))
            .await?;
        Ok(self.core.redis.replicated(&meta).await?)
    }

    /// Sets an item's sale terms (an admin's change, or sync-stock's copy of MySQL's).
    pub async fn set_terms(&self, item_id: u64, terms: &SaleTerms) -> Result<(), Error> {
        let meta = self.core.keys(item_id).meta();
        let mut conn = self.core.redis.get().await?;
        conn.hset_multiple::<_, _, _, ()>(&meta, &terms.fields())
            .await?;
        Ok(self.core.redis.replicated(&meta).await?)
    }

    /// Adds stock as the restock `restock_id` (unique per restock); returns the new
    /// figure. An error leaves its outcome unknown: [`Self::take_back_stock`] with the
    /// same id undoes it exactly either way.
    pub async fn add_stock(
        &self,
        item_id: u64,
        quantity: u32,
        restock_id: &str,
    ) -> Result<i64, Error> {
        let now: i64 = self
            .run_restock_script(&ADD_STOCK, item_id, quantity, restock_id)
            .await?;
        if now < 0 {
            return Err(Error::UnexpectedReply(format!(
                "restock {restock_id} arrived after it was undone"
            )));
        }
        self.core
            .redis
            .replicated(&self.core.keys(item_id).stock())
            .await?;
        if quantity > 0 {
            self.core.announce_stock_back(item_id).await;
        }
        Ok(now)
    }

    /// Undoes the restock `restock_id` of `quantity` units whose MySQL write failed:
    /// takes back what it added, never below zero, or makes sure it never adds anything
    /// if it has not arrived; returns how many units could not be taken back (sold
    /// meanwhile). Idempotent, and returns once replicas have it.
    pub async fn take_back_stock(
        &self,
        item_id: u64,
        quantity: u32,
        restock_id: &str,
    ) -> Result<u64, Error> {
        let (_taken, short): (u64, u64) = self
            .run_restock_script(&TAKE_BACK_STOCK, item_id, quantity, restock_id)
            .await?;
        self.core
            .redis
            .replicated(&self.core.keys(item_id).stock())
            .await?;
        Ok(short)
    }

    /// Runs a restock script (`add_stock.lua`, `take_back_stock.lua`): both take the
    /// item's stock and the restock's marker as KEYS, the units and the marker's
    /// lifetime as ARGV.
    async fn run_restock_script<T: FromRedisValue>(
        &self,
        script: &Script,
        item_id: u64,
        quantity: u32,
        restock_id: &str,
    ) -> Result<T, Error> {
        let keys = self.core.keys(item_id);
        let mut conn = self.core.redis.get().await?;
        Ok(script
            .key(keys.stock())
            .key(keys.restock(restock_id))
            .arg(quantity)
            .arg(RESTOCK_MARKER_TTL_SECS)
            .invoke_async(&mut conn)
            .await?)
    }

    /// Removes an item's sale state (undoing a creation that did not commit); returns
    /// once replicas have it.
    pub async fn forget(&self, item_id: u64) -> Result<(), Error> {
        let keys = self.core.keys(item_id);
        let mut conn = self.core.redis.get().await?;
        conn.del::<_, ()>(&[keys.stock(), keys.meta()]).await?;
        Ok(self.core.redis.replicated(&keys.stock()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::TestRedis;

    #[tokio::test]
    async fn undoing_a_restock_takes_back_what_it_added_once_never_below_zero() {
        let redis = TestRedis::new();
        let stock = crate::Inventory::on(&redis).stock;
        stock.add_stock(1, 10, "r-1").await.unwrap();
        stock.add_stock(1, 4, "r-2").await.unwrap();
        assert_eq!(stock.take_back_stock(1, 4, "r-2").await.unwrap(), 0);
        assert_eq!(stock.take_back_stock(1, 4, "r-2").await.unwrap(), 0);
        assert_eq!(stock.stocks(&[1]).await.unwrap(), [Some(10)], "once");
        // 6 left of a restock of 10 whose MySQL write failed: 4 of it sold meanwhile.
        let mut conn = redis.connection().await;
        redis::AsyncCommands::set::<_, _, ()>(&mut conn, stock.core.keys(1).stock(), 6)
            .await
            .unwrap();
        assert_eq!(stock.take_back_stock(1, 10, "r-1").await.unwrap(), 4);
        assert_eq!(stock.stocks(&[1]).await.unwrap(), [Some(0)]);
    }

    #[tokio::test]
    async fn a_restock_undone_before_it_arrived_adds_nothing() {
        let redis = TestRedis::new();
        let stock = crate::Inventory::on(&redis).stock;
        stock.add_stock(1, 5, "r-1").await.unwrap();
        assert_eq!(stock.take_back_stock(1, 3, "late").await.unwrap(), 0);
        assert_eq!(
            stock.stocks(&[1]).await.unwrap(),
            [Some(5)],
            "nothing taken"
        );
        assert!(matches!(
            stock.add_stock(1, 3, "late").await,
            Err(Error::UnexpectedReply(_))
        ));
        assert_eq!(
            stock.stocks(&[1]).await.unwrap(),
            [Some(5)],
            "nothing added"
        );
    }
}
