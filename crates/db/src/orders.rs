//! Queries on `orders` that more than one service runs, and the statuses an order has.

use crate::schema::orders;
use diesel::prelude::*;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};

/// An order's status, the one spelling of it: `confirmed` is a final order in MySQL and
/// `pending` one still in an outbox (never in MySQL); a reservation is `reserved` until
/// it is `paid`, `cancelled` or `expired`. inventory's lifecycle script writes the last
/// three (a test there checks its spellings parse here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Reserved,
    Paid,
    Cancelled,
    Expired,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        OrderStatus::Reserved,
        OrderStatus::Paid,
        OrderStatus::Cancelled,
        OrderStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Reserved => "reserved",
            OrderStatus::Paid => "paid",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Expired => "expired",
        }
    }

    /// A status as MySQL or a reservation's settled marker in Redis
    /// (`paid:<payment id>`) spells it.
    pub fn parse(raw: &str) -> Option<Self> {
        let name = raw.split(':').next()?;
        OrderStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == name)
    }
}

/// Which of these order ids MySQL already has (the idempotency check of stock-writer,
/// sync-stock's outbox cleanup, and the order listings' dedup of pending orders).
pub async fn persisted_among<S: AsRef<str>>(
    conn: &mut AsyncMysqlConnection,
    ids: &[S],
) -> QueryResult<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = ids.iter().map(AsRef::as_ref).collect();
    orders::table
        .filter(orders::id.eq_any(ids))
        .select(orders::id)
        .load(conn)
        .await
}

/// Which of these outbox messages (`<order id>` for a placement, `<order id>:<type>` for
/// a reservation's later step) MySQL already has: the order, or the order in that status.
pub async fn persisted_messages<S: AsRef<str>>(
    conn: &mut AsyncMysqlConnection,
    message_ids: &[S],
) -> QueryResult<Vec<String>> {
    let order_ids: Vec<&str> = message_ids
        .iter()
        .map(|id| id.as_ref().split(':').next().unwrap_or_default())
        .collect();
    if order_ids.is_empty() {
        return Ok(Vec::new());
    }
    let statuses: std::collections::HashMap<String, String> = orders::table
        .filter(orders::id.eq_any(&order_ids))
        .select((orders::id, orders::status))
        .load(conn)
        .await?
        .into_iter()
        .collect();
    Ok(message_ids
        .iter()
        .map(AsRef::as_ref)
        .filter(|id| match id.split_once(':') {
            None => statuses.contains_key(*id),
            Some((order, kind)) => statuses.get(order).is_some_and(|status| status == kind),
        })
        .map(str::to_owned)
        .collect())
}

/// Units each buyer holds of an item in MySQL (released reservations left out):
/// (user id, units), by user id.
pub async fn bought_per_user(
    conn: &mut AsyncMysqlConnection,
    item_id: u64,
) -> QueryResult<Vec<(u64, u64)>> {
    use diesel::dsl::sql;
    use diesel::sql_types::Unsigned;
    orders::table
        .filter(orders::item_id.eq(item_id))
        .filter(orders::released_at.is_null())
        .group_by(orders::user_id)
        .select((
            orders::user_id,
            sql::<Unsigned<diesel::sql_types::BigInt>>("CAST(SUM(quantity) AS UNSIGNED)"),
        ))
        .order(orders::user_id)
        .load(conn)
        .await
}

/// An order MySQL has as `reserved`: what rebuild-redis needs to put it back in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct OpenReservation {
    pub id: String,
    pub user_id: u64,
    pub quantity: u32,
    pub purchased_at: chrono::NaiveDateTime,
    pub pay_by: Option<chrono::NaiveDateTime>,
    pub amount: Option<u64>,
}

/// The item's orders still `reserved` in MySQL.
pub async fn open_reservations(
    conn: &mut AsyncMysqlConnection,
    item_id: u64,
) -> QueryResult<Vec<OpenReservation>> {
    orders::table
        .filter(orders::item_id.eq(item_id))
        .filter(orders::status.eq(OrderStatus::Reserved.as_str()))
        .select((
            orders::id,
            orders::user_id,
            orders::quantity,
            orders::purchased_at,
            orders::pay_by,
            orders::amount,
        ))
        .order(orders::id)
        .load(conn)
        .await
}

/// The order this payment paid, as MySQL has it (the index `orders_by_payment`): how a
/// redelivered payment is recognised once Redis has forgotten its id.
pub async fn paid_by(
    conn: &mut AsyncMysqlConnection,
    payment_id: &str,
) -> QueryResult<Option<String>> {
    orders::table
        .filter(orders::payment_id.eq(payment_id))
        .select(orders::id)
        .order(orders::id)
        .first(conn)
        .await
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_parses_back_from_its_spelling_and_settled_markers_too() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(OrderStatus::parse("paid:pay_1"), Some(OrderStatus::Paid));
        assert_eq!(OrderStatus::parse("placed"), None);
        assert_eq!(OrderStatus::parse(""), None);
    }
}
