//! An order as a buyer (or the payment provider) is shown it, whichever store holds it
//! now: MySQL's row, an outbox entry, or the event a reservation's end left; and what can
//! go wrong reading or ending one.

use crate::store_error::{StoreError, store_error_converts_to};
use chrono::{DateTime, Utc};
use db::orders::{OrderRow, OrderStatus};
use events::StockEvent;

#[derive(Debug, Clone)]
pub struct Order {
    pub id: String,
    pub item_id: u64,
    pub quantity: u32,
    pub status: OrderStatus,
    pub purchased_at: DateTime<Utc>,
    /// A reservation's deadline.
    pub pay_by: Option<DateTime<Utc>>,
}

impl Order {
    /// An order as MySQL has it.
    pub fn confirmed(row: OrderRow) -> Self {
        Order {
            status: OrderStatus::parse(&row.status).unwrap_or(OrderStatus::Confirmed),
            id: row.id,
            item_id: row.item_id,
            quantity: row.quantity,
            purchased_at: row.purchased_at.and_utc(),
            pay_by: row.pay_by.map(|at| at.and_utc()),
        }
    }

    /// An order still in an outbox: `reserved` if it has a deadline, else `pending`.
    pub fn pending(event: &StockEvent) -> Self {
        let pay_by = event.pay_by_ms.and_then(DateTime::from_timestamp_millis);
        Order {
            id: event.order_id.clone(),
            item_id: event.item_id,
            quantity: event.quantity,
            status: if pay_by.is_some() {
                OrderStatus::Reserved
            } else {
                OrderStatus::Pending
            },
            purchased_at: DateTime::from_timestamp_millis(event.purchased_at_ms)
                .unwrap_or_default(),
            pay_by,
        }
    }

    /// The order a lifecycle event leaves.
    pub fn ended(event: &StockEvent) -> Self {
        let mut order = Order::pending(event);
        order.status = match event.kind {
            events::EventType::Paid => OrderStatus::Paid,
            events::EventType::Cancelled => OrderStatus::Cancelled,
            events::EventType::Expired => OrderStatus::Expired,
            events::EventType::Placed => order.status,
        };
        order
    }
}

/// Why an order could not be shown, cancelled or paid.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// No such order of the caller's (or, for a payment, of anyone's).
    #[error("not found")]
    NotFound,
    /// A payment for a reservation that expired first.
    #[error("the reservation expired")]
    Expired,
    /// Input that is well formed but does not fit the order (a payment's amount).
    #[error("invalid: {0}")]
    Invalid(common::ValidationErrors),
    /// The refund of a refused payment could not be announced: the provider must retry.
    #[error("could not announce the refund: {0}")]
    RefundNotAnnounced(events::PublishError),
    /// A cancel (or payment) of an order that is not reserved; `status` is what it is.
    #[error("the order is {status}, not reserved")]
    NotReserved { status: &'static str },
    /// The buyer used up their cancels of this item for now.
    #[error("too many cancels; retry in {retry_after_secs} s")]
    TooManyCancels { retry_after_secs: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

store_error_converts_to!(OrderError);
