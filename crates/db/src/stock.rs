//! An item's stock in MySQL, written in one place for every writer of it: stock-writer's
//! sales and releases, catalog-service's restocks. Redis decides every sale; MySQL
//! follows in whatever order the events reach it (two purchase-service instances publish
//! on their own channels, a release whose publish failed is sent later by the relay, two
//! stock-writers reorder even one channel's messages). So a sale can arrive before the
//! release or restock that freed its unit: it takes what `stock` holds and records the
//! rest in `stock_owed`, and units given back settle what is owed first. Both columns
//! stay unsigned, the stock never goes negative, and the item's stock is
//! `stock - stock_owed` (at most one of the two is non-zero). Once every event has
//! arrived nothing is owed, unless Redis sold more than the item had.

use diesel::sql_types::{Bigint, Integer, Unsigned};
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};

// Each assignment reads only the column assigned after it, so MySQL's left-to-right
// assignment and MariaDB's SIMULTANEOUS_ASSIGNMENT mode compute the same.
const TAKE: &str = "UPDATE items \
    SET stock_owed = stock_owed + ? - LEAST(stock, ?), stock = stock - LEAST(stock, ?) \
    WHERE id = ?";
macro_rules! give_back {
    () => {
        "UPDATE items \
         SET stock = stock + ? - LEAST(stock_owed, ?), stock_owed = stock_owed - LEAST(stock_owed, ?) \
         WHERE id = ?"
    };
}
const GIVE_BACK: &str = give_back!();
const GIVE_BACK_TO_LIVE: &str = concat!(give_back!(), " AND deleted_at IS NULL");

/// A write to an item's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A sale Redis made: takes the units, owing what the stock cannot cover yet.
    Take,
    /// A release: gives the units back, settling what the item owes first.
    GiveBack,
    /// A restock: [`Change::GiveBack`] to an item that is not deleted. A total beyond the
    /// unsigned column is refused by MySQL (out of range).
    Restock,
}

/// Applies `change` of `quantity` units to the item; false when there is no such item
/// (for a restock, no such live item).
pub async fn apply(
    conn: &mut AsyncMysqlConnection,
    change: Change,
    item_id: u64,
    quantity: u32,
) -> diesel::QueryResult<bool> {
    let statement = match change {
        Change::Take => TAKE,
        Change::GiveBack => GIVE_BACK,
        Change::Restock => GIVE_BACK_TO_LIVE,
    };
    let updated = diesel::sql_query(statement)
        .bind::<Unsigned<Integer>, _>(quantity)
        .bind::<Unsigned<Integer>, _>(quantity)
        .bind::<Unsigned<Integer>, _>(quantity)
        .bind::<Unsigned<Bigint>, _>(item_id)
        .execute(conn)
        .await?;
    Ok(updated == 1)
}

/// The item's stock as MySQL has it: `stock - stock_owed`, negative while sales wait
/// for the releases that freed their units.
pub fn net(stock: u32, owed: u32) -> i64 {
    i64::from(stock) - i64::from(owed)
}
