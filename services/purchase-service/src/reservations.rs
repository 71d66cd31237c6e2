//! The end of a reservation as purchase-service drives it: a buyer's cancel, and the
//! expiry worker every instance runs. Both go through the one atomic lifecycle script
//! (`inventory::lifecycle`), so any number of instances and a racing payment or cancel
//! still give each order exactly one end; each end's event goes to the publisher at
//! once (the outbox keeps it until MySQL has it).
//!
//! Behind N instances each expiry worker reads only the schedules of the items its
//! [`Share`] owns (`item id mod N = rank`, [`crate::membership`]), so each due
//! reservation is looked at by one worker rather than N; an instance that stopped or
//! died leaves its items to the others at their next heartbeat after it left the set.
//! While views of the set differ (up to one heartbeat after a change) two workers may
//! try the same reservation, and the script lets only one of them end it.

use crate::domain::OrderId;
use crate::membership::{Membership, Share};
use crate::order::{Order, OrderError};
use crate::orders::Orders;
use crate::publishing::PublishQueue;
use crate::sold_out::SoldOutMarks;
use crate::store_error::StoreError;
use common::shutdown::Shutdown;
use db::orders;
use events::StockEvent;
use inventory::lifecycle::{CancelAllowance, Ended, Step};
use inventory::{Reservations, Stock};
use prometheus_client::metrics::counter::Counter;
use std::time::Duration;

/// Most reservations one item expires per pass.
const EXPIRE_BATCH_PER_ITEM: usize = 500;

/// The handle of a reservation's ends: the buyer's cancel and the expiry worker; the
/// payment webhook ends reservations through it too.
#[derive(Clone)]
pub struct ReservationEnds {
    pub reservations: Reservations,
    /// The items there are (the expiry worker's list).
    pub stock: Stock,
    pub orders: Orders,
    pub publishing: PublishQueue,
    pub sold_out: SoldOutMarks,
    pub cancels: CancelAllowance,
}

impl ReservationEnds {
    /// The buyer gives a reservation up: its units go back to the sale at once.
    pub async fn cancel(&self, user_id: u64, order_id: &str) -> Result<Order, OrderError> {
        let order_id = OrderId::parse(order_id).ok_or(OrderError::NotFound)?;
        let Some(item_id) = self.item_of_order(order_id.as_str()).await? else {
            // No reservation by that id: the caller's own order not persisted yet is
            // `pending` (not reserved); anything else is not theirs to know of.
            let order = self.orders.order(user_id, order_id.as_str()).await?;
            return Err(OrderError::NotReserved {
                status: order.status.as_str(),
            });
        };
        let ended = self
            .reservations
            .end(
                item_id,
                order_id.as_str(),
                Step::Cancel {
                    user_id,
                    allowance: self.cancels,
                },
            )
            .await?;
        match ended {
            Ended::Cancelled { event } => {
                self.sold_out.clear(item_id);
                Ok(Order::ended(&self.offer_ended(&event)?))
            }
            Ended::NotTheBuyer => Err(OrderError::NotFound),
            Ended::TooManyCancels { retry_after_secs } => {
                Err(OrderError::TooManyCancels { retry_after_secs })
            }
            Ended::NotReserved { .. } => {
                // Not reserved any more, or never: what it is now, if it is the caller's.
                let order = self.orders.order(user_id, order_id.as_str()).await?;
                Err(OrderError::NotReserved {
                    status: order.status.as_str(),
                })
            }
            other => {
                Err(StoreError::unexpected(anyhow::anyhow!("a cancel answered {other:?}")).into())
            }
        }
    }

    /// Which item an order is of: Redis's index of reservations, else MySQL.
    pub async fn item_of_order(&self, order_id: &str) -> Result<Option<u64>, OrderError> {
        if let Some(item_id) = self.reservations.item_of(order_id).await? {
            return Ok(Some(item_id));
        }
        let mut conn = db::connection(&self.orders.db).await?;
        Ok(orders::find(&mut conn, order_id)
            .await?
            .map(|row| row.item_id))
    }

    /// Hands an end's event to the publisher; the order as it is now (its status the
    /// event's type).
    pub fn offer_ended(&self, event_json: &str) -> Result<StockEvent, OrderError> {
        let event = StockEvent::parse(event_json.as_bytes()).map_err(|reason| {
            OrderError::from(StoreError::unexpected(anyhow::anyhow!(
                "the lifecycle script wrote an unreadable event ({reason}): {event_json}"
            )))
        })?;
        self.publishing.offer(event.clone());
        Ok(event)
    }

    /// Expires what is due on the items this instance owns, until shutdown, counting
    /// them in `expired` (`reservations_expired_total`).
    pub async fn expire_until_stopped(
        self,
        interval: Duration,
        membership: Membership,
        expired: Counter,
        mut shutdown: Shutdown,
    ) {
        loop {
            match self.expire_due(membership.share()).await {
                Ok(0) => {}
                Ok(count) => {
                    expired.inc_by(count as u64);
                    tracing::info!(count, "reservations expired");
                }
                Err(error) => tracing::warn!(%error, "expiry pass failed"),
            }
            if !shutdown.sleep(interval).await {
                return;
            }
        }
    }

    /// One pass over the items `share` owns; returns how many reservations this
    /// instance expired.
    pub async fn expire_due(&self, share: Share) -> Result<usize, OrderError> {
        let mut items = self.stock.known_item_ids().await?;
        items.retain(|item_id| share.owns(*item_id));
        let due = self.reservations.due(&items, EXPIRE_BATCH_PER_ITEM).await?;
        let mut expired = 0;
        for (item_id, order_id) in due {
            if let Ended::Expired { event } = self
                .reservations
                .end(item_id, &order_id, Step::Expire)
                .await?
            {
                self.sold_out.clear(item_id);
                self.offer_ended(&event)?;
                expired += 1;
            }
        }
        Ok(expired)
    }
}
