//! The purchase and order use cases: run the configured strategy, hand the order to
//! RabbitMQ without making the buyer wait for it, and list a user's orders (persisted
//! ones from MySQL as `confirmed`, outbox ones from Redis as `pending`).

use crate::configuration::{PurchaseSection, Strategy};
use crate::orders::{self, OrderRow};
use crate::publishing::PublishQueue;
use crate::purchase::lock::LockStrategy;
use crate::purchase::lua::LuaStrategy;
use crate::purchase::{Attempt, IdempotencyKey, Outcome, Quantity};
use chrono::{DateTime, Utc};
use common::ApiError;
use common::input::Pagination;
use db::DbPool;
use events::StockEvent;
use inventory::ItemStore;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Pending,
    Confirmed,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Confirmed => "confirmed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Order {
    pub id: String,
    pub item_id: u64,
    pub quantity: u32,
    pub status: OrderStatus,
    pub purchased_at: DateTime<Utc>,
}

impl Order {
    fn confirmed(row: OrderRow) -> Self {
        Order {
            id: row.id,
            item_id: row.item_id,
            quantity: row.quantity,
            status: OrderStatus::Confirmed,
            purchased_at: row.purchased_at.and_utc(),
        }
    }

    fn pending(event: &StockEvent) -> Self {
        Order {
            id: event.order_id.clone(),
            item_id: event.item_id,
            quantity: event.quantity,
            status: OrderStatus::Pending,
            purchased_at: DateTime::from_timestamp_millis(event.purchased_at_ms)
                .unwrap_or_default(),
        }
    }
}

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
pub enum Taker {
    Lua(LuaStrategy),
    Lock(LockStrategy),
}

impl Taker {
    fn name(&self) -> &'static str {
        match self {
            Taker::Lua(_) => "lua",
            Taker::Lock(_) => "lock",
        }
    }

    pub fn strategy(&self) -> Strategy {
        match self {
            Taker::Lua(_) => Strategy::Lua,
            Taker::Lock(_) => Strategy::Lock,
        }
    }
}

#[derive(Clone)]
pub struct Purchases {
    pub taker: Taker,
    pub store: ItemStore,
    pub db: DbPool,
    pub publishing: PublishQueue,
    pub settings: PurchaseSection,
    pub outcomes: Family<OutcomeLabels, Counter>,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl Purchases {
    pub async fn purchase(&self, request: PurchaseRequest) -> Result<Order, ApiError> {
        let now = now_ms();
        let attempt = Attempt {
            event: StockEvent {
                version: events::EVENT_VERSION,
                order_id: uuid::Uuid::now_v7().to_string(),
                user_id: request.user_id,
                item_id: request.item_id,
                quantity: request.quantity.get(),
                purchased_at_ms: now,
                request_id: request.request_id,
            },
            idempotency_key: request.idempotency_key,
            idempotency_ttl_secs: self.settings.idempotency_ttl_secs,
        };
        let outcome = match &self.taker {
            Taker::Lua(lua) => lua.attempt(&attempt, now).await?,
            Taker::Lock(lock) => lock.attempt(&attempt, now).await?,
        };
        self.count(&outcome);
        match outcome {
            Outcome::Placed { remaining } => {
                // Debug, not info: the request's own log line and the event's request id
                // already tie the request to the order, and a second line per purchase
                // cost a tenth of the service's CPU under load.
                tracing::debug!(order_id = %attempt.event.order_id, item_id = request.item_id, remaining, "purchase placed");
                self.publishing.offer(attempt.event.clone());
                Ok(Order::pending(&attempt.event))
            }
            Outcome::Duplicate { order_id, quantity } => {
                let persisted =
                    orders::find(&mut *db::connection(&self.db).await?, &order_id).await?;
                Ok(match persisted {
                    Some(row) => Order::confirmed(row),
                    None => Order {
                        id: order_id,
                        item_id: request.item_id,
                        quantity,
                        status: OrderStatus::Pending,
                        purchased_at: Utc::now(),
                    },
                })
            }
            Outcome::NotOnSale => Err(ApiError::NotFound),
            Outcome::InsufficientStock { current_stock } => {
                Err(ApiError::InsufficientStock { current_stock })
            }
            Outcome::LimitExceeded {
                limit,
                already_bought,
            } => Err(ApiError::PurchaseLimitExceeded {
                limit,
                already_bought,
            }),
            Outcome::Busy => Err(ApiError::SystemBusy {
                retry_after_secs: 1,
            }),
        }
    }

    fn count(&self, outcome: &Outcome) {
        let outcome = match outcome {
            Outcome::Placed { .. } => "placed",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::NotOnSale => "not_on_sale",
            Outcome::InsufficientStock { .. } => "insufficient_stock",
            Outcome::LimitExceeded { .. } => "limit_exceeded",
            Outcome::Busy => "busy",
        };
        self.outcomes
            .get_or_create(&OutcomeLabels {
                strategy: self.taker.name(),
                outcome,
            })
            .inc();
    }

    /// A page of the user's orders: pending ones (outbox) first on page 1, then the
    /// persisted ones.
    pub async fn orders(
        &self,
        user_id: u64,
        pagination: Pagination,
    ) -> Result<(Vec<Order>, i64), ApiError> {
        let mut conn = db::connection(&self.db).await?;
        let (rows, persisted_total) =
            orders::page_for_user(&mut conn, user_id, pagination.offset(), pagination.limit())
                .await?;
        let pending = self.pending_orders(user_id).await?;
        let pending_ids: Vec<&str> = pending.iter().map(|e| e.order_id.as_str()).collect();
        let already_persisted = orders::persisted_among(&mut conn, &pending_ids).await?;
        let pending: Vec<Order> = pending
            .iter()
            .filter(|event| !already_persisted.contains(&event.order_id))
            .map(Order::pending)
            .collect();
        let total = persisted_total + pending.len() as i64;
        let mut page = if pagination.page == 1 {
            pending
        } else {
            Vec::new()
        };
        page.extend(rows.into_iter().map(Order::confirmed));
        Ok((page, total))
    }

    pub async fn order(&self, user_id: u64, order_id: &str) -> Result<Order, ApiError> {
        if let Some(row) = orders::find(&mut *db::connection(&self.db).await?, order_id).await? {
            return if row.user_id == user_id {
                Ok(Order::confirmed(row))
            } else {
                Err(ApiError::NotFound)
            };
        }
        self.pending_orders(user_id)
            .await?
            .iter()
            .find(|event| event.order_id == order_id)
            .map(Order::pending)
            .ok_or(ApiError::NotFound)
    }

    async fn pending_orders(&self, user_id: u64) -> Result<Vec<StockEvent>, ApiError> {
        let items = self.store.known_item_ids().await?;
        let entries = self.store.outbox_entries(&items).await?;
        Ok(entries
            .iter()
            .filter_map(|entry| StockEvent::parse(entry.event.as_bytes()).ok())
            .filter(|event| event.user_id == user_id)
            .collect())
    }
}
