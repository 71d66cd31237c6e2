//! Rebuilding an item's Redis state from MySQL after Redis lost data (a failover
//! without acknowledgement, a restart without persistence): stock, every buyer's count
//! and the limit, in one script, so that what is left of the outbox and the parked
//! orders is counted exactly once. stock-writer's `rebuild-redis` drives it.

use crate::{Error, Inventory};
use redis::Script;
use std::sync::LazyLock;

static REBUILD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("scripts/unpersisted.lua"),
        include_str!("scripts/rebuild.lua")
    ))
});

/// MySQL's figures for one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistedSales {
    /// MySQL's `stock - stock_owed`.
    pub stock: i64,
    pub max_per_user: Option<u32>,
    /// (user id, units) of every buyer MySQL has orders of.
    pub bought: Vec<(u64, u64)>,
}

/// What a rebuild changed in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// Redis stock before (`None` when Redis had none).
    pub stock_before: Option<i64>,
    pub stock_after: i64,
    /// Units sold in Redis and not in MySQL (left in the outbox, or parked).
    pub pending: i64,
    /// Pending sales MySQL's stock could not cover (0 unless the two had drifted).
    pub shortfall: i64,
    /// (buyers, units) counted against the limit, before and after.
    pub bought_before: (i64, i64),
    pub bought_after: (i64, i64),
}

impl Inventory {
    /// Sets an item's stock, buyers' counts and limit from MySQL's figures; see the
    /// module documentation.
    pub async fn rebuild(&self, item_id: u64, mysql: &PersistedSales) -> Result<Rebuilt, Error> {
        let keys = self.core.keys(item_id);
        let mut invocation = REBUILD.prepare_invoke();
        invocation
            .key(keys.stock())
            .key(keys.meta())
            .key(keys.bought())
            .key(keys.outbox())
            .key(keys.parked())
            .arg(mysql.stock)
            .arg(mysql.max_per_user.unwrap_or(0));
        for (user_id, units) in &mysql.bought {
            invocation.arg(user_id).arg(units);
        }
        let mut conn = self.core.redis().get().await?;
        let reply: Vec<String> = invocation.invoke_async(&mut conn).await?;
        let [
            before,
            after,
            pending,
            shortfall,
            buyers,
            units,
            buyers_now,
            units_now,
        ] = crate::sync::numbers(reply)?;
        let rebuilt = Rebuilt {
            stock_before: Some(before).filter(|b| *b >= 0),
            stock_after: after,
            pending,
            shortfall,
            bought_before: (buyers, units),
            bought_after: (buyers_now, units_now),
        };
        self.core.redis().replicated(&keys.stock()).await?;
        if after > before.max(0) {
            self.core.announce_stock_back(item_id).await;
        }
        Ok(rebuilt)
    }
}
