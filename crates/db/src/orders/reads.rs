//! Reads of `orders`: a buyer's orders (purchase-service's listings and look-ups), which
//! orders and outbox messages MySQL already has (stock-writer's idempotency, sync-stock,
//! the listings), what rebuild-redis puts back, and an item's figures for the
//! conservation check (devstack).

use crate::orders::OrderStatus;
use crate::schema::orders;
use chrono::NaiveDateTime;
use diesel::dsl::{count_star, sql};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Unsigned};
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = orders)]
#[diesel(check_for_backend(diesel::mysql::Mysql))]
pub struct OrderRow {
    pub id: String,
    pub user_id: u64,
    pub item_id: u64,
    pub quantity: u32,
    pub purchased_at: NaiveDateTime,
    pub persisted_at: NaiveDateTime,
    pub status: String,
    pub pay_by: Option<NaiveDateTime>,
    pub amount: Option<u64>,
}

/// A user's persisted orders, newest first, and how many there are.
pub async fn page_for_user(
    conn: &mut AsyncMysqlConnection,
    user_id: u64,
    offset: i64,
    limit: i64,
) -> QueryResult<(Vec<OrderRow>, i64)> {
    let rows = orders::table
        .filter(orders::user_id.eq(user_id))
        .order((orders::purchased_at.desc(), orders::id.desc()))
        .offset(offset)
        .limit(limit)
        .select(OrderRow::as_select())
        .load(conn)
        .await?;
    let total = orders::table
        .filter(orders::user_id.eq(user_id))
        .count()
        .get_result(conn)
        .await?;
    Ok((rows, total))
}

pub async fn find(conn: &mut AsyncMysqlConnection, id: &str) -> QueryResult<Option<OrderRow>> {
    orders::table
        .find(id)
        .select(OrderRow::as_select())
        .first(conn)
        .await
        .optional()
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
    orders::table
        .filter(orders::item_id.eq(item_id))
        .filter(orders::released_at.is_null())
        .group_by(orders::user_id)
        .select((
            orders::user_id,
            sql::<Unsigned<BigInt>>("CAST(SUM(quantity) AS UNSIGNED)"),
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

/// Whether MySQL has the order, in any status.
pub async fn exists(conn: &mut AsyncMysqlConnection, id: &str) -> QueryResult<bool> {
    let known: i64 = orders::table.find(id).count().get_result(conn).await?;
    Ok(known > 0)
}

/// Units the item's orders hold (released reservations left out) and units released
/// reservations gave back: (held, released).
pub async fn units_of_item(
    conn: &mut AsyncMysqlConnection,
    item_id: u64,
) -> QueryResult<(u64, u64)> {
    // MySQL sums integers as DECIMAL; cast back so no decimal type is needed.
    orders::table
        .filter(orders::item_id.eq(item_id))
        .select((
            sql::<Unsigned<BigInt>>(
                "CAST(COALESCE(SUM(CASE WHEN released_at IS NULL THEN quantity END), 0) AS UNSIGNED)",
            ),
            sql::<Unsigned<BigInt>>(
                "CAST(COALESCE(SUM(CASE WHEN released_at IS NULL THEN 0 ELSE quantity END), 0) AS UNSIGNED)",
            ),
        ))
        .first(conn)
        .await
}

/// The item's order rows, and how many distinct order ids they carry.
pub async fn rows_of_item(
    conn: &mut AsyncMysqlConnection,
    item_id: u64,
) -> QueryResult<(i64, i64)> {
    orders::table
        .filter(orders::item_id.eq(item_id))
        .select((count_star(), sql::<BigInt>("COUNT(DISTINCT id)")))
        .first(conn)
        .await
}

/// The ids of the item's orders.
pub async fn ids_of_item(
    conn: &mut AsyncMysqlConnection,
    item_id: u64,
) -> QueryResult<Vec<String>> {
    orders::table
        .filter(orders::item_id.eq(item_id))
        .select(orders::id)
        .load(conn)
        .await
}

/// The item's orders: (order id, status as MySQL spells it).
pub async fn statuses_of_item(
    conn: &mut AsyncMysqlConnection,
    item_id: u64,
) -> QueryResult<Vec<(String, String)>> {
    orders::table
        .filter(orders::item_id.eq(item_id))
        .select((orders::id, orders::status))
        .load(conn)
        .await
}

/// How many of the item's orders are in each status: (status, count).
pub async fn status_counts_of_item(
    conn: &mut AsyncMysqlConnection,
    item_id: u64,
) -> QueryResult<Vec<(String, i64)>> {
    orders::table
        .filter(orders::item_id.eq(item_id))
        .group_by(orders::status)
        .select((orders::status, count_star()))
        .load(conn)
        .await
}
