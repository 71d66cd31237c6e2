//! The purchase use case: run the configured strategy, settle an attempt whose outcome
//! is unknown before answering, and hand the order to RabbitMQ without making the buyer
//! wait for it.

use crate::admission::{Admission, RetryAfter};
use crate::configuration::{PurchaseSettings, Strategy};
use crate::domain::{IdempotencyKey, Quantity};
use crate::order::Order;
use crate::orders::Orders;
use crate::publishing::PublishQueue;
use crate::sold_out::SoldOutMarks;
use crate::store_error::{StoreError, store_error_converts_to};
use chrono::{DateTime, Utc};
use common::retry::Backoff;
use db::orders::{self, OrderStatus};
use events::StockEvent;
use inventory::purchase::{
    AttemptError, Idempotency, IdempotencyRecord, Outcome, Purchase, WatchHook,
};
use inventory::room::TicketState;
use inventory::selling::Marker;
use inventory::settle::Settled;
use inventory::{DistributedLock, Inventory};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Why a purchase did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum PurchaseError {
    /// No such item on sale.
    #[error("not found")]
    NotFound,
    #[error("insufficient stock: {current_stock} left")]
    InsufficientStock { current_stock: u64 },
    #[error("purchase limit {limit} reached ({already_bought} bought)")]
    LimitExceeded { limit: u64, already_bought: u64 },
    #[error("the sale opens at {starts_at}")]
    SaleNotStarted { starts_at: DateTime<Utc> },
    #[error("the sale closed at {ended_at}")]
    SaleEnded { ended_at: DateTime<Utc> },
    /// The buyer's purchase rate is used up (`PURCHASE_RATE_PER_USER`).
    #[error("too many purchases; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("the idempotency key was used for another quantity")]
    KeyReused,
    /// A waiting-room item, and the buyer holds no open pass (`None`: no ticket).
    #[error("not admitted by the waiting room")]
    NotAdmitted { state: Option<TicketState> },
    /// Certainly not taken: the lock strategy's lock or EXEC lost, or the order id was
    /// ruled out while settling.
    #[error("busy; the purchase did not happen")]
    Busy,
    #[error("the outcome of order {order_id} is unknown")]
    OutcomeUnknown { order_id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

store_error_converts_to!(PurchaseError);

/// What a buyer asked for, parsed.
pub struct PurchaseRequest {
    pub item_id: u64,
    pub user_id: u64,
    pub quantity: Quantity,
    pub idempotency_key: Option<IdempotencyKey>,
    pub request_id: Option<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    strategy: &'static str,
    outcome: &'static str,
}

#[derive(Clone)]
pub struct Purchases {
    pub strategy: Strategy,
    pub store: Inventory,
    /// The item locks of the `lock` strategy.
    pub lock: DistributedLock,
    /// (lock strategy) runs between the reads and EXEC; tests use it.
    pub after_watch: Option<WatchHook>,
    pub publishing: PublishQueue,
    /// Reads the order an Idempotency-Key replays (and MySQL's row when settling).
    pub orders: Orders,
    pub settings: PurchaseSettings,
    pub outcomes: Family<OutcomeLabels, Counter>,
    pub admission: Admission,
    pub sold_out: SoldOutMarks,
    /// Lists the items this instance sells where buyers' pending orders are looked for.
    pub selling: Arc<Marker>,
}

impl Purchases {
    /// Runs a purchase and answers it within `PURCHASE_OUTCOME_TIMEOUT_MS` of its start,
    /// whatever Redis and MySQL do meanwhile, so that the service answers before the
    /// gateway gives up ([`crate::configuration::check_answer_bound`]). An unknown
    /// outcome is looked up until then. A step still waiting on a server at the deadline
    /// (a Redis reply, the lock strategy's retries, a MySQL query, which has no timeout of
    /// its own) is not cut off mid-way: the purchase goes on in the background and, as it
    /// may yet happen, the buyer is answered `OUTCOME_UNKNOWN` with its order id.
    pub async fn purchase(
        self: &Arc<Self>,
        request: PurchaseRequest,
    ) -> Result<Order, PurchaseError> {
        let deadline = Instant::now() + Duration::from_millis(self.settings.outcome_timeout_ms);
        let order_id = uuid::Uuid::now_v7().to_string();
        // The order an Idempotency-Key replays, once the attempt has found one.
        let replayed = Arc::new(OnceLock::new());
        let work = {
            let (purchases, order_id, replayed) =
                (Arc::clone(self), order_id.clone(), Arc::clone(&replayed));
            async move { purchases.run(request, order_id, deadline, &replayed).await }
        };
        let mut work = Box::pin(work);
        let answered =
            tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), &mut work).await;
        if let Ok(answer) = answered {
            return answer;
        }
        let order_id = replayed.get().cloned().unwrap_or(order_id);
        self.count("deadline");
        tracing::error!(%order_id, "purchase not done within PURCHASE_OUTCOME_TIMEOUT_MS; answering OUTCOME_UNKNOWN while it goes on");
        tokio::spawn(async move {
            match work.await {
                Ok(order) => {
                    tracing::warn!(order_id = %order.id, status = order.status.as_str(), "purchase answered OUTCOME_UNKNOWN has ended: it happened")
                }
                Err(error) => {
                    tracing::warn!(%error, "purchase answered OUTCOME_UNKNOWN has ended without an order")
                }
            }
        });
        Err(PurchaseError::OutcomeUnknown { order_id })
    }

    /// The purchase itself, looking up an unknown outcome until `deadline`; `order_id`
    /// is the order it would create, and `replayed` learns the order an Idempotency-Key
    /// replays instead.
    async fn run(
        &self,
        request: PurchaseRequest,
        order_id: String,
        deadline: Instant,
        replayed: &OnceLock<String>,
    ) -> Result<Order, PurchaseError> {
        if let Err(RetryAfter(wait)) = self.admission.admit(request.user_id) {
            self.count("rate_limited");
            return Err(PurchaseError::RateLimited {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            });
        }
        // A retry with an Idempotency-Key may be of a purchase that happened: only Redis
        // can say, so it is never answered from the mark.
        if request.idempotency_key.is_none() && self.sold_out.is_sold_out(request.item_id) {
            self.count("sold_out_mark");
            return Err(PurchaseError::InsufficientStock { current_stock: 0 });
        }
        let mut event = StockEvent {
            version: events::EVENT_VERSION,
            order_id,
            user_id: request.user_id,
            item_id: request.item_id,
            quantity: request.quantity.get(),
            purchased_at_ms: Utc::now().timestamp_millis(),
            request_id: request.request_id,
            ..StockEvent::default()
        };
        let event_json = event.to_json();
        let purchase = Purchase {
            item_id: event.item_id,
            user_id: event.user_id,
            quantity: event.quantity,
            order_id: &event.order_id,
            event_json: &event_json,
            now_ms: event.purchased_at_ms,
            idempotency: request.idempotency_key.as_ref().map(|key| Idempotency {
                key: key.as_str(),
                ttl_secs: self.settings.idempotency_ttl_secs,
            }),
        };
        let attempted = match self.strategy {
            Strategy::Lua => self.store.stock.purchase_by_script(&purchase).await,
            Strategy::Lock => {
                self.store
                    .stock
                    .purchase_under_lock(&purchase, &self.lock, self.after_watch.as_ref())
                    .await
            }
        };
        let outcome = match attempted {
            Ok(placed @ (Outcome::Placed | Outcome::Reserved { .. })) => {
                match self
                    .replicated_or_settled(event.item_id, &event.order_id, deadline)
                    .await?
                {
                    Outcome::Placed => placed,
                    settled => settled,
                }
            }
            Ok(Outcome::Duplicate(record)) => {
                let _ = replayed.set(record.order_id.clone());
                match self
                    .replicated_or_settled(event.item_id, &record.order_id, deadline)
                    .await?
                {
                    Outcome::Placed | Outcome::Reserved { .. } => Outcome::Duplicate(record),
                    voided => voided,
                }
            }
            Ok(outcome) => outcome,
            Err(AttemptError::Unknown(error)) => {
                tracing::warn!(order_id = %event.order_id, %error, "purchase outcome unknown; settling it");
                self.count("unknown");
                self.settle(event.item_id, &event.order_id, deadline)
                    .await?
            }
            Err(AttemptError::NotTaken(error)) => return Err(error.into()),
            Err(error @ AttemptError::UnexpectedReply(_)) => {
                return Err(StoreError::unexpected(error).into());
            }
        };
        self.count(outcome_label(&outcome));
        match outcome {
            Outcome::Reserved { pay_by_ms, amount } => {
                event.pay_by_ms = Some(pay_by_ms);
                event.amount = Some(amount);
                if let Err(error) = self
                    .store
                    .reservations
                    .index(
                        &event.order_id,
                        event.item_id,
                        pay_by_ms,
                        event.purchased_at_ms,
                    )
                    .await
                {
                    tracing::warn!(order_id = %event.order_id, %error, "could not index the reservation by order; a payment or cancel finds it once persisted");
                }
                Ok(self.accept(event).await)
            }
            Outcome::Placed => Ok(self.accept(event).await),
            Outcome::Duplicate(record) => self.replay(event.item_id, record, deadline).await,
            Outcome::KeyReused(_) => Err(PurchaseError::KeyReused),
            Outcome::NotOnSale => Err(PurchaseError::NotFound),
            Outcome::SaleNotStarted { starts_at_ms } => Err(PurchaseError::SaleNotStarted {
                starts_at: DateTime::from_timestamp_millis(starts_at_ms).unwrap_or_default(),
            }),
            Outcome::SaleEnded { ended_at_ms } => Err(PurchaseError::SaleEnded {
                ended_at: DateTime::from_timestamp_millis(ended_at_ms).unwrap_or_default(),
            }),
            Outcome::InsufficientStock { current_stock } => {
                if current_stock == 0 {
                    self.sold_out.mark(event.item_id);
                }
                Err(PurchaseError::InsufficientStock { current_stock })
            }
            Outcome::NotAdmitted { state } => Err(PurchaseError::NotAdmitted { state }),
            Outcome::LimitExceeded {
                limit,
                already_bought,
            } => Err(PurchaseError::LimitExceeded {
                limit,
                already_bought,
            }),
            // Only a settle voids an order id, and the purchase it voids was ruled out:
            // nothing happened.
            Outcome::Busy | Outcome::Void => Err(PurchaseError::Busy),
        }
    }

    /// Makes a placed order findable among its buyer's pending ones and hands it to the
    /// publisher.
    async fn accept(&self, event: StockEvent) -> Order {
        // Debug, not info: the request's own log line and the event's request id
        // already tie the request to the order, and a second line per purchase
        // cost a tenth of the service's CPU under load.
        tracing::debug!(order_id = %event.order_id, item_id = event.item_id, "purchase placed");
        if let Err(error) = self.selling.mark(event.item_id).await {
            tracing::warn!(order_id = %event.order_id, %error, "could not mark the item as selling; the order shows among the buyer's once persisted");
        }
        let order = Order::pending(&event);
        self.publishing.offer(event);
        order
    }

    /// The order an idempotency key produced, as it is now. The purchase happened, so a
    /// read of it that fails must not be answered as if it had not (`SYSTEM_BUSY`): it
    /// is looked at again like any unknown outcome, then answered `OUTCOME_UNKNOWN` with
    /// the order id.
    async fn replay(
        &self,
        item_id: u64,
        record: IdempotencyRecord,
        deadline: Instant,
    ) -> Result<Order, PurchaseError> {
        let order_id = record.order_id.clone();
        self.until_known(
            &order_id,
            deadline,
            "replay the idempotent purchase",
            || self.replay_once(item_id, &record),
        )
        .await
    }

    async fn replay_once(
        &self,
        item_id: u64,
        record: &IdempotencyRecord,
    ) -> Result<Order, crate::order::OrderError> {
        let pending = self
            .store
            .outbox
            .event(item_id, &record.order_id)
            .await?
            .and_then(|json| StockEvent::parse(json.as_bytes()).ok());
        Ok(
            match self.orders.current_order(&record.order_id, pending).await? {
                Some((order, _)) => order,
                // Gone from both only if MySQL lost it; the record still says what was sold.
                None => Order {
                    id: record.order_id.clone(),
                    item_id,
                    quantity: record.quantity,
                    status: OrderStatus::Pending,
                    purchased_at: record
                        .purchased_at_ms
                        .and_then(DateTime::from_timestamp_millis)
                        .unwrap_or_default(),
                    pay_by: None,
                },
            },
        )
    }

    /// Runs `look` until it tells, pausing between tries ([`Backoff`]) until the
    /// purchase's deadline; then `OUTCOME_UNKNOWN` with the order id.
    async fn until_known<T, E, F, Fut>(
        &self,
        order_id: &str,
        deadline: Instant,
        what: &str,
        mut look: F,
    ) -> Result<T, PurchaseError>
    where
        E: std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut backoff = Backoff::until(deadline);
        loop {
            let error = match look().await {
                Ok(known) => return Ok(known),
                Err(error) => error,
            };
            let Some(pause) = backoff.next_pause() else {
                tracing::error!(%order_id, %error, "purchase outcome still unknown (could not {what} in time); answering OUTCOME_UNKNOWN");
                return Err(PurchaseError::OutcomeUnknown {
                    order_id: order_id.to_owned(),
                });
            };
            tracing::warn!(%order_id, %error, "cannot {what} yet");
            tokio::time::sleep(pause).await;
        }
    }

    /// A placed order is answered only once `REDIS_MIN_REPLICAS_ACKED` replicas have it.
    /// If they cannot say so in time (too slow, or the master failed), whether the
    /// order survives is unknown, and it is settled like any unknown outcome: after a
    /// failover, a new master that never got the order voids its id.
    async fn replicated_or_settled(
        &self,
        item_id: u64,
        order_id: &str,
        deadline: Instant,
    ) -> Result<Outcome, PurchaseError> {
        let outbox = self.store.keys(item_id).outbox();
        match self.store.redis().replicated(&outbox).await {
            Ok(()) => Ok(Outcome::Placed),
            Err(error) => {
                tracing::warn!(%order_id, %error, "purchase not yet on enough replicas; settling it");
                self.count("unreplicated");
                self.settle(item_id, order_id, deadline).await
            }
        }
    }

    /// Finds out whether a purchase whose reply never came (or whose replicas did not
    /// answer) was taken for good: [`Outcome::Placed`] (or [`Outcome::Reserved`], read from
    /// its outbox entry) if it was, [`Outcome::Void`] if
    /// it certainly was not (and now never will be). Keeps looking while Redis or MySQL
    /// cannot tell, until `deadline`, then answers `OUTCOME_UNKNOWN` with the order id.
    async fn settle(
        &self,
        item_id: u64,
        order_id: &str,
        deadline: Instant,
    ) -> Result<Outcome, PurchaseError> {
        let outcome = self
            .until_known(order_id, deadline, "settle the purchase outcome", || {
                self.settle_once(item_id, order_id)
            })
            .await?;
        tracing::info!(%order_id, ?outcome, "unknown purchase outcome settled");
        Ok(outcome)
    }

    /// One look: an order in Redis counts once replicas have it too. One that left the
    /// outbox meanwhile (persisted, or a read that reached another master) is what MySQL
    /// says of it, and not settled while MySQL has nothing.
    async fn settle_once(&self, item_id: u64, order_id: &str) -> anyhow::Result<Outcome> {
        match self.store.outbox.rule_out(item_id, order_id).await? {
            settled @ (Settled::InOutbox | Settled::Parked) => {
                let outbox = self.store.keys(item_id).outbox();
                self.store.redis().replicated(&outbox).await?;
                let event = self.store.outbox.event(item_id, order_id).await?;
                match event.and_then(|json| StockEvent::parse(json.as_bytes()).ok()) {
                    Some(event) => Ok(placed_as(Some(event))),
                    None if settled == Settled::Parked => Ok(placed_as(None)),
                    None => gone_from_outbox(order_id, self.persisted_as(order_id).await?),
                }
            }
            Settled::RuledOut => Ok(self.persisted_as(order_id).await?.unwrap_or(Outcome::Void)),
        }
    }

    /// What MySQL has of an order: placed, reserved, or nothing.
    async fn persisted_as(&self, order_id: &str) -> anyhow::Result<Option<Outcome>> {
        let mut conn = self.orders.db.get().await?;
        Ok(orders::find(&mut conn, order_id)
            .await?
            .map(|row| match row.pay_by {
                Some(pay_by) => Outcome::Reserved {
                    pay_by_ms: pay_by.and_utc().timestamp_millis(),
                    amount: row.amount.unwrap_or(0),
                },
                None => Outcome::Placed,
            }))
    }

    fn count(&self, outcome: &'static str) {
        self.outcomes
            .get_or_create(&OutcomeLabels {
                strategy: self.strategy.name(),
                outcome,
            })
            .inc();
    }
}

/// An order settling found in the outbox and then no longer there: what MySQL has of
/// it. With nothing in MySQL it is not settled yet, and never "placed" on Redis's word
/// alone: in a split brain the two reads may have reached different masters.
fn gone_from_outbox(order_id: &str, persisted: Option<Outcome>) -> anyhow::Result<Outcome> {
    persisted.ok_or_else(|| {
        anyhow::anyhow!("order {order_id} left the outbox but MySQL does not have it")
    })
}

/// A placed order found by settling, as its outbox entry (or parked event) says: a
/// reservation if it has a deadline.
fn placed_as(event: Option<StockEvent>) -> Outcome {
    match event {
        Some(StockEvent {
            pay_by_ms: Some(pay_by_ms),
            amount,
            ..
        }) => Outcome::Reserved {
            pay_by_ms,
            amount: amount.unwrap_or(0),
        },
        _ => Outcome::Placed,
    }
}

fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Placed => "placed",
        Outcome::Reserved { .. } => "reserved",
        Outcome::Duplicate(_) => "duplicate",
        Outcome::KeyReused(_) => "key_reused",
        Outcome::Void => "void",
        Outcome::NotOnSale => "not_on_sale",
        Outcome::SaleNotStarted { .. } => "sale_not_started",
        Outcome::SaleEnded { .. } => "sale_ended",
        Outcome::InsufficientStock { .. } => "insufficient_stock",
        Outcome::LimitExceeded { .. } => "limit_exceeded",
        Outcome::NotAdmitted { .. } => "not_admitted",
        Outcome::Busy => "busy",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_gone_from_the_outbox_is_what_mysql_says_and_never_placed_without_it() {
        assert!(gone_from_outbox("o-1", None).is_err());
        assert_eq!(
            gone_from_outbox("o-1", Some(Outcome::Placed)).unwrap(),
            Outcome::Placed
        );
        let reserved = Outcome::Reserved {
            pay_by_ms: 1,
            amount: 2,
        };
        assert_eq!(
            gone_from_outbox("o-1", Some(reserved.clone())).unwrap(),
            reserved
        );
    }
}
