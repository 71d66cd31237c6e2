//! The conservation check, the one invariant every load must keep: for an item that
//! started with `initial` units, MySQL's stock plus the units its orders hold (confirmed,
//! reserved or paid; a cancelled or expired reservation holds none) is `initial`, MySQL
//! owes nothing (every release has arrived), Redis holds the same stock as MySQL, no
//! order answered 200 is missing from MySQL and none is there twice. The benchmark checks it after every scenario,
//! the chaos drill after its faults, the end-to-end tests after their purchases.
//! Redis keys come from `inventory::ItemKeys` under the stack's own key prefix.

use common::redis::Keyspace;
use diesel::prelude::*;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};
use inventory::ItemKeys;
use redis::AsyncCommands;
use redis::aio::ConnectionLike;
use serde::Serialize;
use std::collections::HashSet;

/// One item's stock as MySQL and Redis see it at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StockAccount {
    pub item_id: u64,
    pub initial: u64,
    /// Units the item's orders in MySQL hold (released reservations left out).
    pub sold: u64,
    /// Units of reservations that were cancelled or expired (given back).
    #[serde(default)]
    pub released: u64,
    pub mysql_stock: u64,
    /// Units persisted sales took beyond MySQL's stock (`items.stock_owed`): 0 once every
    /// release has arrived.
    #[serde(default)]
    pub stock_owed: u64,
    /// `None` when Redis has no stock for the item.
    pub redis_stock: Option<i64>,
    /// Order rows for the item, and how many distinct order ids they carry.
    pub order_rows: u64,
    pub distinct_orders: u64,
}

impl StockAccount {
    /// Reads the item's figures from MySQL and from Redis under `keyspace`.
    pub async fn measure(
        mysql: &mut AsyncMysqlConnection,
        redis: &mut (impl ConnectionLike + Send + Sync),
        keyspace: &Keyspace,
        item_id: u64,
        initial: u64,
    ) -> anyhow::Result<Self> {
        use db::schema::items;
        let (sold, released) = db::orders::units_of_item(mysql, item_id).await?;
        let (order_rows, distinct_orders) = db::orders::rows_of_item(mysql, item_id).await?;
        let (mysql_stock, stock_owed): (u32, u32) = items::table
            .find(item_id)
            .select((items::stock, items::stock_owed))
            .first(mysql)
            .await?;
        let redis_stock: Option<i64> = redis.get(ItemKeys::new(keyspace, item_id).stock()).await?;
        Ok(StockAccount {
            item_id,
            initial,
            sold,
            released,
            mysql_stock: mysql_stock.into(),
            stock_owed: stock_owed.into(),
            redis_stock,
            order_rows: order_rows.try_into()?,
            distinct_orders: distinct_orders.try_into()?,
        })
    }

    /// MySQL stock + sold = initial with nothing owed, and Redis = MySQL.
    pub fn conserved(&self) -> bool {
        self.mysql_stock + self.sold == self.initial
            && self.stock_owed == 0
            && self.redis_stock == i64::try_from(self.mysql_stock).ok()
    }

    /// Units sold beyond what there was.
    pub fn oversold(&self) -> u64 {
        self.sold.saturating_sub(self.initial)
    }

    /// Order rows beyond one per order id.
    pub fn duplicated(&self) -> u64 {
        self.order_rows.saturating_sub(self.distinct_orders)
    }
}

/// The ids of the item's orders persisted in MySQL.
pub async fn persisted_order_ids(
    mysql: &mut AsyncMysqlConnection,
    item_id: u64,
) -> anyhow::Result<Vec<String>> {
    Ok(db::orders::ids_of_item(mysql, item_id).await?)
}

/// The status of each of the item's orders in MySQL, by order id.
pub async fn order_statuses(
    mysql: &mut AsyncMysqlConnection,
    item_id: u64,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    Ok(db::orders::statuses_of_item(mysql, item_id)
        .await?
        .into_iter()
        .collect())
}

/// How many of the item's orders MySQL has in each status.
pub async fn status_counts(
    mysql: &mut AsyncMysqlConnection,
    item_id: u64,
) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
    let counts = db::orders::status_counts_of_item(mysql, item_id).await?;
    Ok(counts
        .into_iter()
        .map(|(status, count)| (status, count.try_into().unwrap_or(0)))
        .collect())
}

/// Reservations Redis still holds open for the item.
pub async fn open_reservations(
    redis: &mut (impl ConnectionLike + Send + Sync),
    keyspace: &Keyspace,
    item_id: u64,
) -> anyhow::Result<u64> {
    Ok(redis
        .hlen(ItemKeys::new(keyspace, item_id).reserved())
        .await?)
}

/// Orders in the items' outboxes: sold in Redis, not yet persisted in MySQL.
pub async fn outbox_len(
    redis: &mut (impl ConnectionLike + Send + Sync),
    keyspace: &Keyspace,
    items: &[u64],
) -> anyhow::Result<u64> {
    let mut pending = 0;
    for item in items {
        let len: u64 = redis.hlen(ItemKeys::new(keyspace, *item).outbox()).await?;
        pending += len;
    }
    Ok(pending)
}

/// The orders answered 200 set against the orders MySQL persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderAudit {
    /// Orders answered 200.
    pub confirmed: usize,
    /// Answered 200 but not in MySQL: lost sales.
    pub missing: usize,
    /// In MySQL but never answered 200 (the answer was cut, by a kill say): their
    /// stock is accounted for, nobody was told.
    pub unconfirmed: usize,
}

impl OrderAudit {
    pub fn new(confirmed: &[String], persisted: &[String]) -> Self {
        let persisted_set: HashSet<&str> = persisted.iter().map(String::as_str).collect();
        let confirmed_set: HashSet<&str> = confirmed.iter().map(String::as_str).collect();
        OrderAudit {
            confirmed: confirmed_set.len(),
            missing: confirmed_set.difference(&persisted_set).count(),
            unconfirmed: persisted_set.difference(&confirmed_set).count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(sold: u64, mysql_stock: u64, redis_stock: Option<i64>) -> StockAccount {
        StockAccount {
            item_id: 1,
            initial: 100,
            sold,
            released: 0,
            mysql_stock,
            stock_owed: 0,
            redis_stock,
            order_rows: sold,
            distinct_orders: sold,
        }
    }

    #[test]
    fn stock_is_conserved_only_when_mysql_adds_up_and_redis_agrees() {
        assert!(account(30, 70, Some(70)).conserved());
        assert!(
            !account(30, 71, Some(71)).conserved(),
            "MySQL does not add up"
        );
        assert!(!account(30, 70, Some(69)).conserved(), "Redis is ahead");
        assert!(!account(30, 70, None).conserved(), "Redis lost the item");
        let owing = StockAccount {
            stock_owed: 1,
            ..account(30, 70, Some(70))
        };
        assert!(!owing.conserved(), "a release has not arrived");
        assert_eq!(account(30, 70, Some(70)).oversold(), 0);
        assert_eq!(account(103, 0, Some(0)).oversold(), 3);
    }

    #[test]
    fn duplicated_rows_are_rows_beyond_one_per_order() {
        let mut doubled = account(3, 97, Some(97));
        doubled.order_rows = 4;
        assert_eq!(doubled.duplicated(), 1);
        assert_eq!(account(3, 97, Some(97)).duplicated(), 0);
    }

    #[test]
    fn an_audit_finds_lost_and_unanswered_orders() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let audit = OrderAudit::new(&ids(&["a", "b", "c"]), &ids(&["b", "c", "d", "e"]));
        assert_eq!(
            audit,
            OrderAudit {
                confirmed: 3,
                missing: 1,
                unconfirmed: 2
            }
        );
    }
}
