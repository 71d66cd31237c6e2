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
use crate::listing::Order;
use crate::membership::{Membership, Share};
use crate::purchases::{PurchaseError, Purchases};
use common::shutdown::Shutdown;
use db::orders::{self, OrderStatus};
use events::StockEvent;
use inventory::lifecycle::{CancelAllowance, Ended, Step};
use prometheus_client::metrics::counter::Counter;
use std::time::Duration;

/// Most reservations one item expires per pass.
const EXPIRE_BATCH_PER_ITEM: usize = 500;

impl Purchases {
    /// The buyer gives a reservation up: its units go back to the sale at once.
    pub async fn cancel(&self, user_id: u64, order_id: &str) -> Result<Order, PurchaseError> {
        let order_id = OrderId::parse(order_id).ok_or(PurchaseError::NotFound)?;
        let Some(item_id) = self.item_of_order(order_id.as_str()).await? else {
            // No reservation by that id: the caller's own order not persisted yet is
            // `pending` (not reserved); anything else is not theirs to know of.
            let order = self.order(user_id, order_id.as_str()).await?;
            return Err(PurchaseError::NotReserved {
                status: order.status.as_str(),
            });
        };
        let ended = self
            .store
            .reservations
            .end(
                item_id,
                order_id.as_str(),
                Step::Cancel {
                    user_id,
                    allowance: CancelAllowance {
                        per_window: self.settings.cancels_per_item,
                        window_secs: self.settings.cancel_window_secs,
                    },
                },
            )
            .await?;
        match ended {
            Ended::Cancelled { event } => {
                self.sold_out.clear(item_id);
                Ok(Order::ended(&self.offer_ended(&event)?))
            }
            Ended::NotTheBuyer => Err(PurchaseError::NotFound),
            Ended::TooManyCancels { retry_after_secs } => {
                Err(PurchaseError::RateLimited { retry_after_secs })
            }
            Ended::NotReserved { .. } => {
                // Not reserved any more, or never: what it is now, if it is the caller's.
                let order = self.order(user_id, order_id.as_str()).await?;
                Err(PurchaseError::NotReserved {
                    status: order.status.as_str(),
                })
            }
            other => Err(PurchaseError::Unexpected(anyhow::anyhow!(
                "a cancel answered {other:?}"
            ))),
        }
    }

    /// Which item an order is of: Redis's index of reservations, else MySQL.
    pub(crate) async fn item_of_order(&self, order_id: &str) -> Result<Option<u64>, PurchaseError> {
        if let Some(item_id) = self.store.reservations.item_of(order_id).await? {
            return Ok(Some(item_id));
        }
        let mut conn = db::connection(&self.db).await?;
        Ok(orders::find(&mut conn, order_id)
            .await?
            .map(|row| row.item_id))
    }

    /// Hands an end's event to the publisher; the order as it is now (its status the
    /// event's type).
    pub(crate) fn offer_ended(&self, event_json: &str) -> Result<StockEvent, PurchaseError> {
        let event = StockEvent::parse(event_json.as_bytes()).map_err(|reason| {
            PurchaseError::Unexpected(anyhow::anyhow!(
                "the lifecycle script wrote an unreadable event ({reason}): {event_json}"
            ))
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
    pub async fn expire_due(&self, share: Share) -> Result<usize, PurchaseError> {
        let mut items = self.store.stock.known_item_ids().await?;
        items.retain(|item_id| share.owns(*item_id));
        let due = self
            .store
            .reservations
            .due(&items, EXPIRE_BATCH_PER_ITEM)
            .await?;
        let mut expired = 0;
        for (item_id, order_id) in due {
            if let Ended::Expired { event } = self
                .store
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

impl Order {
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
