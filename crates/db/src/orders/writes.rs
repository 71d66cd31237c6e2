//! Writes of `orders`, all stock-writer's: a placement's insert (one, or a batch's many)
//! and a reservation's end. Each runs on the caller's connection, inside the caller's
//! transaction or savepoint, so the stock change that goes with it commits or rolls back
//! with it.

use crate::orders::OrderStatus;
use crate::schema::orders;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};

/// An order's row as it is first written.
#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    pub id: &'a str,
    pub user_id: u64,
    pub item_id: u64,
    pub quantity: u32,
    pub purchased_at: NaiveDateTime,
    pub status: OrderStatus,
    pub pay_by: Option<NaiveDateTime>,
    pub amount: Option<u64>,
}

#[derive(Insertable)]
#[diesel(table_name = orders)]
struct Values<'a> {
    id: &'a str,
    user_id: u64,
    item_id: u64,
    quantity: u32,
    purchased_at: NaiveDateTime,
    status: &'static str,
    pay_by: Option<NaiveDateTime>,
    amount: Option<u64>,
}

impl<'a> From<&NewOrder<'a>> for Values<'a> {
    fn from(order: &NewOrder<'a>) -> Self {
        Values {
            id: order.id,
            user_id: order.user_id,
            item_id: order.item_id,
            quantity: order.quantity,
            purchased_at: order.purchased_at,
            status: order.status.as_str(),
            pay_by: order.pay_by,
            amount: order.amount,
        }
    }
}

/// Inserts the order unless MySQL has its id already (`INSERT IGNORE`): true when it
/// was inserted.
pub async fn insert_if_new(
    conn: &mut AsyncMysqlConnection,
    order: &NewOrder<'_>,
) -> QueryResult<bool> {
    let inserted = diesel::insert_or_ignore_into(orders::table)
        .values(Values::from(order))
        .execute(conn)
        .await?;
    Ok(inserted != 0)
}

/// Inserts every order in one statement (none when there are none); an id MySQL has
/// already fails the whole statement.
pub async fn insert_all(
    conn: &mut AsyncMysqlConnection,
    new_orders: &[NewOrder<'_>],
) -> QueryResult<usize> {
    if new_orders.is_empty() {
        return Ok(0);
    }
    let rows: Vec<Values> = new_orders.iter().map(Values::from).collect();
    diesel::insert_into(orders::table)
        .values(&rows)
        .execute(conn)
        .await
}

/// Moves a reservation MySQL has as `reserved` on to `status` at `at`: `paid` with its
/// payment, or released (`cancelled`, `expired`). False when the order is not there as
/// `reserved`.
pub async fn end_reservation(
    conn: &mut AsyncMysqlConnection,
    id: &str,
    status: OrderStatus,
    at: NaiveDateTime,
    payment_id: Option<&str>,
) -> QueryResult<bool> {
    let still_reserved = orders::table
        .find(id)
        .filter(orders::status.eq(OrderStatus::Reserved.as_str()));
    let moved = if status == OrderStatus::Paid {
        diesel::update(still_reserved)
            .set((
                orders::status.eq(status.as_str()),
                orders::paid_at.eq(at),
                orders::payment_id.eq(payment_id),
            ))
            .execute(conn)
            .await?
    } else {
        diesel::update(still_reserved)
            .set((
                orders::status.eq(status.as_str()),
                orders::released_at.eq(at),
            ))
            .execute(conn)
            .await?
    };
    Ok(moved == 1)
}

/// Inserts a reservation that ended before its placement reached MySQL, as it ended:
/// `order.status` `paid` at `at` (with its payment), or released at `at`.
pub async fn insert_ended(
    conn: &mut AsyncMysqlConnection,
    order: &NewOrder<'_>,
    at: NaiveDateTime,
    payment_id: Option<&str>,
) -> QueryResult<()> {
    let paid = order.status == OrderStatus::Paid;
    diesel::insert_into(orders::table)
        .values((
            Values::from(order),
            if paid {
                (orders::paid_at.eq(Some(at)), orders::released_at.eq(None))
            } else {
                (orders::paid_at.eq(None), orders::released_at.eq(Some(at)))
            },
            orders::payment_id.eq(payment_id),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
