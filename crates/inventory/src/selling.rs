//! The items selling now: where a buyer's pending orders can be. The purchase script
//! lists each order in a per-buyer set in its item's slot ([`crate::ItemKeys::buyer_pending`]),
//! so a purchase is one round trip on a Redis Cluster too; listing a buyer's pending
//! orders then reads that set for each item in this registry (a sorted set scored by
//! when an item was last marked).
//!
//! Its rules, which keep every pending order findable:
//! - a purchase-service marks an item (ZADD GT now) before it answers a purchase of it,
//!   unless it marked the item less than [`MARK_EVERY`] ago: at most one write per
//!   item per instance per period, so the hot path pays for it almost never;
//! - an item leaves only through [`Selling::sweep`], and only when its mark is older
//!   than [`FORGET_AFTER`] (far longer than [`MARK_EVERY`], so no instance still
//!   counts on it) and it holds no order in its outbox or parked: a removal checked
//!   on the registry's own key, atomically against a concurrent mark.

use crate::Error;
use crate::core::Core;
use common::redis::SlotPipeline;
use redis::AsyncCommands;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often an instance renews its mark of an item it sells.
pub const MARK_EVERY: Duration = Duration::from_secs(10);

/// How long after its last mark an item with nothing pending leaves the registry.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);

/// Removes ARGV[2..] from KEYS[1] where their score is below ARGV[1].
const FORGET_LUA: &str = r"
local removed = 0
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) < tonumber(ARGV[1]) then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return removed
";

/// The registry of items selling now.
#[derive(Clone)]
pub struct Selling {
    pub(crate) core: Core,
}

impl Selling {
    /// Marks items as selling at `now_ms`.
    pub async fn mark(&self, item_ids: &[u64], now_ms: i64) -> Result<(), Error> {
        if item_ids.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(self.core.selling_items()).arg("GT");
        for item_id in item_ids {
            cmd.arg(now_ms).arg(*item_id);
        }
        let mut conn = self.core.redis().get().await?;
        cmd.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Every item in the registry.
    pub async fn items(&self) -> Result<Vec<u64>, Error> {
        let mut conn = self.core.redis().get().await?;
        Ok(conn.zrange(self.core.selling_items(), 0, -1).await?)
    }

    /// Forgets the items `owns` picks that were last marked before
    /// `now_ms - FORGET_AFTER` and hold no order in their outbox or parked; returns how
    /// many it forgot.
    pub async fn sweep(&self, owns: impl Fn(u64) -> bool, now_ms: i64) -> Result<usize, Error> {
        let cutoff = now_ms - FORGET_AFTER.as_millis() as i64;
        let registry = self.core.selling_items();
        let mut conn = self.core.redis().get().await?;
        let stale: Vec<u64> = conn.zrangebyscore(&registry, "-inf", cutoff - 1).await?;
        let stale: Vec<u64> = stale.into_iter().filter(|id| owns(*id)).collect();
        if stale.is_empty() {
            return Ok(0);
        }
        let mut pipe = SlotPipeline::new();
        for item_id in &stale {
            let keys = self.core.keys(*item_id);
            pipe.add(&keys.outbox(), redis::Cmd::hlen(keys.outbox()))
                .add(&keys.outbox(), redis::Cmd::hlen(keys.parked()));
        }
        let lengths: Vec<u64> = pipe.query(&conn).await?;
        let idle: Vec<u64> = stale
            .iter()
            .zip(lengths.chunks(2))
            .filter(|(_, lengths)| lengths.iter().all(|len| *len == 0))
            .map(|(item_id, _)| *item_id)
            .collect();
        if idle.is_empty() {
            return Ok(0);
        }
        let removed: usize = redis::Script::new(FORGET_LUA)
            .key(&registry)
            .arg(cutoff)
            .arg(&idle)
            .invoke_async(&mut conn)
            .await?;
        Ok(removed)
    }
}

/// One instance's marking of the items it sells: it remembers when it last marked each
/// item, so that it writes the mark once per [`MARK_EVERY`] rather than once per
/// purchase. Holds only items a purchase was placed for (real, on-sale items).
pub struct Marker {
    selling: Selling,
    marked_at: Mutex<HashMap<u64, Instant>>,
}

impl Marker {
    pub fn new(selling: Selling) -> Self {
        Marker {
            selling,
            marked_at: Mutex::default(),
        }
    }

    /// Marks `item_id` as selling unless this instance did so less than [`MARK_EVERY`]
    /// ago. Call it before answering a purchase of the item.
    pub async fn mark(&self, item_id: u64) -> Result<(), Error> {
        let now = Instant::now();
        if !self.due(item_id, now) {
            return Ok(());
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as i64);
        self.selling.mark(&[item_id], now_ms).await?;
        let mut marked_at = self.marked_at.lock().unwrap_or_else(|e| e.into_inner());
        marked_at.insert(item_id, now);
        Ok(())
    }

    fn due(&self, item_id: u64, now: Instant) -> bool {
        let marked_at = self.marked_at.lock().unwrap_or_else(|e| e.into_inner());
        marked_at
            .get(&item_id)
            .is_none_or(|at| now.saturating_duration_since(*at) >= MARK_EVERY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::TestRedis;

    #[tokio::test]
    async fn an_instance_marks_an_item_once_per_period() {
        let redis = TestRedis::new();
        let selling = crate::Inventory::on(&redis).selling;
        let marker = Marker::new(selling.clone());
        let start = Instant::now();
        assert!(marker.due(1, start));
        marker.mark(1).await.unwrap();
        assert_eq!(selling.items().await.unwrap(), [1]);
        assert!(!marker.due(1, start + MARK_EVERY / 2));
        assert!(marker.due(2, start));
        assert!(marker.due(1, Instant::now() + MARK_EVERY));
    }

    #[tokio::test]
    async fn an_item_leaves_only_when_its_mark_is_old_and_nothing_of_it_is_pending() {
        let redis = TestRedis::new();
        let inventory = crate::Inventory::on(&redis);
        let selling = inventory.selling.clone();
        let forget_ms = FORGET_AFTER.as_millis() as i64;
        let now = 10 * forget_ms;
        selling.mark(&[1, 2, 3], now - forget_ms - 1).await.unwrap();
        selling.mark(&[4], now - forget_ms + 1).await.unwrap();
        // Marks only move forward.
        selling.mark(&[3], now - 2 * forget_ms).await.unwrap();
        let mut conn = redis.connection().await;
        conn.hset::<_, _, _, ()>(inventory.keys(2).outbox(), "o-1", "{}")
            .await
            .unwrap();
        conn.hset::<_, _, _, ()>(inventory.keys(3).parked(), "o-2", "{}")
            .await
            .unwrap();

        // Item 1 is idle and old; 2 and 3 hold orders; 4 was marked lately; 5 is not
        // among the items this sweep looks after.
        selling.mark(&[5], now - forget_ms - 1).await.unwrap();
        let owned = |id| id != 5;
        assert_eq!(selling.sweep(owned, now).await.unwrap(), 1);
        let mut left = selling.items().await.unwrap();
        left.sort();
        assert_eq!(left, [2, 3, 4, 5]);
    }
}
