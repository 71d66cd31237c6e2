//! Applying stock events to MySQL: each placement inserts its order (keyed by the order
//! id, so a redelivered event changes nothing) and takes its units from the item's stock.
//! A reservation's later steps (paid, cancelled, expired) move the order's status on from
//! `reserved`, once, and a release gives the units back; one that arrives before its
//! placement records the order in its final status and leaves the stock alone (nothing
//! was taken from it), and the placement then changes nothing.
//!
//! Redis decided every sale before its event was sent, and events of one item arrive in
//! any order (see `db::stock`): a placement is never refused because MySQL's stock is
//! short, as the release that freed its unit may simply not have arrived yet. It takes
//! what the stock holds and owes the rest, which that release settles.
//!
//! A batch shares one transaction. The fast path does the whole batch in a few
//! statements (find the orders already persisted, one stock update per item, one
//! multi-row insert); if any event cannot apply it falls back to one savepoint per
//! event, so an event that can never apply is rolled back alone and the rest commit.
//!
//! An event that can never apply is one whose item MySQL does not have, whose fields the
//! columns cannot hold (checked before anything is written: [`check_columns`]) or one
//! MySQL refuses with an error that retrying cannot change (data too long, out of range,
//! a constraint: see [`permanent_reason`]); either is refused alone. Any other database
//! error is taken as passing (an outage, a deadlock) and the batch is retried.

use chrono::DateTime;
use db::orders::{NewOrder, OrderStatus};
use db::stock::Change;
use diesel_async::{AsyncConnection, AsyncMysqlConnection};
use events::{EventType, StockEvent};
use std::collections::{BTreeMap, HashSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// The order was already persisted: acknowledged without effect.
    Duplicate,
    /// Can never be applied; goes to the dead-letter queue with this reason.
    Poison(String),
}

#[derive(Debug, thiserror::Error)]
enum EventError {
    #[error("{0}")]
    Poison(String),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

/// The row an event's order starts as, in the status the event leaves it in.
fn new_order(event: &StockEvent) -> Result<NewOrder<'_>, EventError> {
    Ok(NewOrder {
        id: &event.order_id,
        user_id: event.user_id,
        item_id: event.item_id,
        quantity: event.quantity,
        purchased_at: millis(event.purchased_at_ms, "purchased_at_ms")?,
        status: status_after(event),
        pay_by: event
            .pay_by_ms
            .map(|ms| millis(ms, "pay_by_ms"))
            .transpose()?,
        amount: event.amount,
    })
}

/// The earliest and latest instants (Unix ms) a MySQL `DATETIME` holds:
/// `1000-01-01 00:00:00.000` and `9999-12-31 23:59:59.999`.
const DATETIME_MS: std::ops::RangeInclusive<i64> = -30_610_224_000_000..=253_402_300_799_999;

/// The most characters `orders.payment_id` (`VARCHAR(255)`) holds.
pub const PAYMENT_ID_MAX_CHARS: usize = 255;

fn millis(ms: i64, field: &str) -> Result<chrono::NaiveDateTime, EventError> {
    DateTime::from_timestamp_millis(ms)
        .filter(|_| DATETIME_MS.contains(&ms))
        .map(|at| at.naive_utc())
        .ok_or_else(|| {
            EventError::Poison(format!(
                "{field} {ms} is out of the range a MySQL DATETIME holds (years 1000-9999)"
            ))
        })
}

/// Whether the columns can hold every field of `event` (the order id's form, the
/// quantity and the ids are checked when it is parsed); the error says which cannot.
pub fn check_columns(event: &StockEvent) -> Result<(), String> {
    let poison = |error: EventError| error.to_string();
    millis(event.purchased_at_ms, "purchased_at_ms").map_err(poison)?;
    for (ms, field) in [(event.pay_by_ms, "pay_by_ms"), (event.at_ms, "at_ms")] {
        if let Some(ms) = ms {
            millis(ms, field).map_err(poison)?;
        }
    }
    if let Some(payment_id) = &event.payment_id {
        let chars = payment_id.chars().count();
        if chars > PAYMENT_ID_MAX_CHARS {
            return Err(format!(
                "payment_id has {chars} characters; orders.payment_id holds {PAYMENT_ID_MAX_CHARS}"
            ));
        }
    }
    // quantity (u32), amount and the ids (u64) fit INT UNSIGNED and BIGINT UNSIGNED.
    Ok(())
}

/// The reason, when `error` is one MySQL gives whatever the attempt (the value does not
/// fit its column, a constraint refuses the row): retrying the event cannot help. A
/// duplicate key is not one of them: a competing writer's insert of the same order is
/// resolved by retrying, where it answers as a duplicate.
pub fn permanent_reason(error: &diesel::result::Error) -> Option<String> {
    use diesel::result::{DatabaseErrorKind, Error};
    let Error::DatabaseError(kind, info) = error else {
        return None;
    };
    let message = info.message();
    let permanent = match kind {
        DatabaseErrorKind::NotNullViolation
        | DatabaseErrorKind::CheckViolation
        | DatabaseErrorKind::ForeignKeyViolation => true,
        // The driver keeps the server's message only; these are the server's messages
        // of data errors (MySQL and MariaDB error codes 1264, 1292, 1366, 1406, 1690,
        // 3819 and MariaDB's 4025).
        DatabaseErrorKind::Unknown => {
            [
                "Data too long for column",
                "Out of range value for column",
                "value is out of range in",
                "Incorrect datetime value",
                "Incorrect integer value",
                "Incorrect string value",
                "Incorrect decimal value",
                "Truncated incorrect",
                "Check constraint",
            ]
            .iter()
            .any(|known| message.contains(known))
                || (message.starts_with("CONSTRAINT") && message.contains("failed for"))
        }
        _ => false,
    };
    permanent.then(|| format!("MySQL refused the event: {message}"))
}

/// The status an event leaves its order in: a placement records a reservation or a
/// final order; a reservation's later step, its type (`db::orders::persisted_messages`
/// relies on that).
fn status_after(event: &StockEvent) -> OrderStatus {
    match event.kind {
        EventType::Placed if event.pay_by_ms.is_some() => OrderStatus::Reserved,
        EventType::Placed => OrderStatus::Confirmed,
        EventType::Paid => OrderStatus::Paid,
        EventType::Cancelled => OrderStatus::Cancelled,
        EventType::Expired => OrderStatus::Expired,
    }
}

/// A reservation's later step: moves the order on from `reserved` (a release gives the
/// units back), or, before its placement arrived, records the order as it ends.
async fn apply_step(
    conn: &mut AsyncMysqlConnection,
    event: &StockEvent,
) -> Result<Applied, EventError> {
    let at = millis(event.at_ms.unwrap_or(event.purchased_at_ms), "at_ms")?;
    let payment_id = event.payment_id.as_deref();
    let moved =
        db::orders::end_reservation(conn, &event.order_id, status_after(event), at, payment_id)
            .await?;
    if moved {
        if event.kind.releases() {
            db::stock::apply(conn, Change::GiveBack, event.item_id, event.quantity).await?;
        }
        return Ok(Applied::Applied);
    }
    if db::orders::exists(conn, &event.order_id).await? {
        return Ok(Applied::Duplicate);
    }
    // The placement has not arrived: a payment takes the units now; a release of units
    // MySQL never took leaves the stock as it is.
    db::orders::insert_ended(conn, &new_order(event)?, at, payment_id).await?;
    if event.kind == EventType::Paid {
        take_stock(conn, event).await?;
    }
    Ok(Applied::Applied)
}

/// Takes a placement's units, owing what the stock cannot cover yet; poison when MySQL
/// has no such item.
async fn take_stock(conn: &mut AsyncMysqlConnection, event: &StockEvent) -> Result<(), EventError> {
    if db::stock::apply(conn, Change::Take, event.item_id, event.quantity).await? {
        return Ok(());
    }
    Err(EventError::Poison(format!(
        "unknown item {}",
        event.item_id
    )))
}

async fn apply_one(
    conn: &mut AsyncMysqlConnection,
    event: &StockEvent,
) -> Result<Applied, EventError> {
    check_columns(event).map_err(EventError::Poison)?;
    if event.kind != EventType::Placed {
        return apply_step(conn, event).await;
    }
    if !db::orders::insert_if_new(conn, &new_order(event)?).await? {
        return Ok(Applied::Duplicate);
    }
    take_stock(conn, event).await?;
    Ok(Applied::Applied)
}

/// Applies a batch: the reservations' later steps first, one savepoint each, then its
/// placements in one transaction (the fast path). Steps first, so a release in the batch
/// gives back its units before a resale of them takes them (nothing is owed in between).
/// It is right in any arrival order: a step whose placement is in the same batch records
/// the order in its final state, as if it had arrived first, and the placement then
/// changes nothing. An `Err` is a passing database failure: the caller retries the whole
/// batch, and what already committed answers as a duplicate.
pub async fn apply_batch(
    conn: &mut AsyncMysqlConnection,
    events: &[&StockEvent],
) -> Result<Vec<Applied>, diesel::result::Error> {
    type Indexed<'a> = Vec<(usize, &'a StockEvent)>;
    let (placements, steps): (Indexed, Indexed) = events
        .iter()
        .copied()
        .enumerate()
        .partition(|(_, event)| event.kind == EventType::Placed);
    let mut outcomes = vec![Applied::Duplicate; events.len()];
    let stepped: Vec<&StockEvent> = steps.iter().map(|(_, event)| *event).collect();
    let step_outcomes = apply_one_by_one(conn, &stepped).await?;
    let placed: Vec<&StockEvent> = placements.iter().map(|(_, event)| *event).collect();
    let placed_outcomes = match apply_all_or_none(conn, &placed).await? {
        Some(outcomes) => outcomes,
        None => apply_one_by_one(conn, &placed).await?,
    };
    for ((index, _), outcome) in placements
        .iter()
        .chain(&steps)
        .zip(placed_outcomes.into_iter().chain(step_outcomes))
    {
        outcomes[*index] = outcome;
    }
    Ok(outcomes)
}

/// The whole batch, or `None` (nothing written) when some event cannot apply.
async fn apply_all_or_none(
    conn: &mut AsyncMysqlConnection,
    events: &[&StockEvent],
) -> Result<Option<Vec<Applied>>, diesel::result::Error> {
    if events.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let outcome = conn
        .transaction(async |c| {
            let ids: Vec<&str> = events.iter().map(|e| e.order_id.as_str()).collect();
            let persisted: HashSet<String> = db::orders::persisted_among(&mut *c, &ids)
                .await?
                .into_iter()
                .collect();
            let mut seen = HashSet::new();
            let mut outcomes = Vec::with_capacity(events.len());
            let mut rows = Vec::with_capacity(events.len());
            let mut per_item: BTreeMap<u64, u64> = BTreeMap::new();
            for event in events {
                if persisted.contains(&event.order_id) || !seen.insert(event.order_id.as_str()) {
                    outcomes.push(Applied::Duplicate);
                    continue;
                }
                // An event that can never apply makes the batch go one by one, where it is
                // refused alone.
                if check_columns(event).is_err() {
                    return Err(diesel::result::Error::RollbackTransaction);
                }
                let Ok(row) = new_order(event) else {
                    return Err(diesel::result::Error::RollbackTransaction);
                };
                rows.push(row);
                *per_item.entry(event.item_id).or_default() += u64::from(event.quantity);
                outcomes.push(Applied::Applied);
            }
            // Items in id order, so concurrent writers lock rows in the same order.
            for (item_id, quantity) in per_item {
                let quantity = u32::try_from(quantity)
                    .map_err(|_| diesel::result::Error::RollbackTransaction)?;
                if !db::stock::apply(&mut *c, Change::Take, item_id, quantity).await? {
                    return Err(diesel::result::Error::RollbackTransaction);
                }
            }
            db::orders::insert_all(&mut *c, &rows).await?;
            Ok(outcomes)
        })
        .await;
    match outcome {
        Ok(outcomes) => Ok(Some(outcomes)),
        Err(diesel::result::Error::RollbackTransaction) => Ok(None),
        // One event MySQL refuses for good: one by one, it is refused alone.
        Err(error) if permanent_reason(&error).is_some() => Ok(None),
        Err(error) => Err(error),
    }
}

/// One savepoint per event: the poison ones (and the ones MySQL refuses for good) roll
/// back alone.
async fn apply_one_by_one(
    conn: &mut AsyncMysqlConnection,
    events: &[&StockEvent],
) -> Result<Vec<Applied>, diesel::result::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    conn.transaction(async |c| {
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            let outcome = c
                .transaction::<_, EventError, _>(async |sp| apply_one(sp, event).await)
                .await;
            outcomes.push(match outcome {
                Ok(applied) => applied,
                Err(EventError::Poison(reason)) => Applied::Poison(reason),
                Err(EventError::Database(error)) => match permanent_reason(&error) {
                    Some(reason) => Applied::Poison(reason),
                    None => return Err(error),
                },
            });
        }
        Ok(outcomes)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind, Error};

    fn event() -> StockEvent {
        StockEvent {
            version: events::EVENT_VERSION,
            order_id: "o-1".into(),
            user_id: 7,
            item_id: 1,
            quantity: 1,
            purchased_at_ms: 1_700_000_000_000,
            ..StockEvent::default()
        }
    }

    #[test]
    fn the_columns_bound_timestamps_and_payment_ids() {
        assert_eq!(check_columns(&event()), Ok(()));
        for (ms, fits) in [
            (*DATETIME_MS.start(), true),
            (*DATETIME_MS.end(), true),
            (DATETIME_MS.start() - 1, false),
            (DATETIME_MS.end() + 1, false),
            (i64::MAX, false),
        ] {
            let purchased = StockEvent {
                purchased_at_ms: ms,
                ..event()
            };
            assert_eq!(check_columns(&purchased).is_ok(), fits, "{ms}");
            let stepped = StockEvent {
                at_ms: Some(ms),
                pay_by_ms: Some(ms),
                ..event()
            };
            assert_eq!(check_columns(&stepped).is_ok(), fits, "{ms}");
        }
        // Characters, not bytes: the column is utf8mb4.
        let paid = |id: String| StockEvent {
            payment_id: Some(id),
            ..event()
        };
        assert!(check_columns(&paid("é".repeat(255))).is_ok());
        assert!(
            check_columns(&paid("p".repeat(256)))
                .unwrap_err()
                .contains("payment_id")
        );
    }

    #[test]
    fn a_step_leaves_its_order_in_the_status_its_type_spells() {
        for kind in [EventType::Paid, EventType::Cancelled, EventType::Expired] {
            let step = StockEvent { kind, ..event() };
            assert_eq!(status_after(&step).as_str(), kind.as_str());
        }
        let reservation = StockEvent {
            pay_by_ms: Some(1),
            ..event()
        };
        assert_eq!(status_after(&reservation), OrderStatus::Reserved);
        assert_eq!(status_after(&event()), OrderStatus::Confirmed);
    }

    #[test]
    fn data_errors_are_permanent_and_outages_and_duplicates_are_not() {
        let database = |kind, message: &str| {
            Error::DatabaseError(kind, Box::new(message.to_owned()) as Box<_>)
        };
        for message in [
            "Data too long for column 'payment_id' at row 1",
            "Out of range value for column 'stock' at row 1",
            "CONSTRAINT `orders_quantity_positive` failed for `db`.`orders`",
        ] {
            assert!(
                permanent_reason(&database(DatabaseErrorKind::Unknown, message)).is_some(),
                "{message}"
            );
        }
        assert!(permanent_reason(&database(DatabaseErrorKind::CheckViolation, "x")).is_some());
        for (kind, message) in [
            (
                DatabaseErrorKind::Unknown,
                "Input/output error: broken pipe",
            ),
            (
                DatabaseErrorKind::Unknown,
                "Deadlock found when trying to get lock",
            ),
            (DatabaseErrorKind::UniqueViolation, "Duplicate entry 'o-1'"),
        ] {
            assert_eq!(
                permanent_reason(&database(kind, message)),
                None,
                "{message}"
            );
        }
        assert_eq!(permanent_reason(&Error::NotFound), None);
    }
}
