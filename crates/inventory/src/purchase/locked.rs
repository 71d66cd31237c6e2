//! The reference design, done right, kept so both can be measured side by side: take
//! the item's distributed lock (LOCK_MAX_RETRIES, random backoff), then WATCH the
//! item's keys, read and check, and write in MULTI/EXEC. A lock never acquired or an
//! aborted EXEC is [`Outcome::Busy`] with nothing changed. The order's void marker is
//! watched too, so settling an unknown EXEC (see [`crate::settle`]) aborts it if it has
//! not run yet.

use super::{AttemptError, IdempotencyRecord, Outcome, Purchase};
use crate::keys::{ENDS_MS, ItemKeys, LIMIT, ON_SALE, PAY_WINDOW_MS, PRICE, STARTS_MS};
use crate::{DistributedLock, ItemStore};
use futures_util::future::BoxFuture;
use redis::AsyncCommands;
use std::sync::Arc;

/// Runs between the reads and EXEC; tests use it to change a watched key.
pub type WatchHook = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

impl ItemStore {
    /// Takes a purchase the reference's way: under the item's lock, WATCH, check,
    /// MULTI/EXEC.
    pub async fn purchase_under_lock(
        &self,
        purchase: &Purchase<'_>,
        lock: &DistributedLock,
        after_watch: Option<&WatchHook>,
    ) -> Result<Outcome, AttemptError> {
        let keys = self.keys(purchase.item_id);
        let guard = match lock.acquire(&keys.lock()).await {
            Ok(guard) => guard,
            Err(crate::Error::LockBusy { .. }) => return Ok(Outcome::Busy),
            Err(error) => return Err(error.into()),
        };
        let outcome = self.watched(purchase, &keys, after_watch).await;
        if let Err(error) = lock.release(guard).await {
            tracing::warn!(%error, "could not release the item lock; it expires by itself");
        }
        outcome
    }

    async fn watched(
        &self,
        purchase: &Purchase<'_>,
        keys: &ItemKeys,
        after_watch: Option<&WatchHook>,
    ) -> Result<Outcome, AttemptError> {
        // WATCH state belongs to the connection: this pooled connection is ours alone
        // until it goes back, and it goes back unwatched (EXEC or UNWATCH) or not at all.
        let mut conn = self.redis().exclusive_for(&keys.stock()).await?;
        let result = check_and_write(&mut conn, purchase, keys, after_watch).await;
        let unwatched = match &result {
            // EXEC ran (or was aborted): it unwatched the connection.
            Ok(Outcome::Placed | Outcome::Reserved { .. } | Outcome::Busy) => true,
            // Nothing was written, so the outcome stands whatever UNWATCH answers.
            Ok(_) => redis::cmd("UNWATCH")
                .query_async::<()>(&mut conn)
                .await
                .is_ok(),
            Err(_) => false,
        };
        if !unwatched {
            drop(deadpool_redis::Connection::take(conn));
        }
        result
    }
}

async fn check_and_write(
    conn: &mut deadpool_redis::Connection,
    purchase: &Purchase<'_>,
    keys: &ItemKeys,
    after_watch: Option<&WatchHook>,
) -> Result<Outcome, AttemptError> {
    let idempotency_key = purchase.idempotency_key(keys);
    let void_key = keys.void(purchase.order_id);
    redis::cmd("WATCH")
        .arg(keys.stock())
        .arg(keys.meta())
        .arg(keys.bought())
        .arg(&idempotency_key)
        .arg(&void_key)
        .query_async::<()>(&mut *conn)
        .await?;
    if conn.exists(&void_key).await? {
        return Ok(Outcome::Void);
    }
    if purchase.idempotency.is_some() {
        let prior: Option<String> = conn.get(&idempotency_key).await?;
        if let Some(prior) = prior {
            let record = IdempotencyRecord::parse(&prior)
                .ok_or_else(|| AttemptError::UnexpectedReply(vec![prior]))?;
            return Ok(if record.quantity == purchase.quantity {
                Outcome::Duplicate(record)
            } else {
                Outcome::KeyReused(record)
            });
        }
    }
    type Meta = (
        Option<String>,
        Option<u64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<u64>,
    );
    let (on_sale, limit, starts, ends, window, price): Meta = redis::cmd("HMGET")
        .arg(keys.meta())
        .arg(ON_SALE)
        .arg(LIMIT)
        .arg(STARTS_MS)
        .arg(ENDS_MS)
        .arg(PAY_WINDOW_MS)
        .arg(PRICE)
        .query_async(&mut *conn)
        .await?;
    let stock: Option<u64> = conn.get(keys.stock()).await?;
    let (Some("1"), Some(stock)) = (on_sale.as_deref(), stock) else {
        return Ok(Outcome::NotOnSale);
    };
    let (starts, ends, window) = (starts.unwrap_or(0), ends.unwrap_or(0), window.unwrap_or(0));
    let mut now = 0;
    if starts > 0 || ends > 0 || window > 0 {
        now = crate::server_time_ms(&mut *conn).await?;
        if starts > 0 && now < starts {
            return Ok(Outcome::SaleNotStarted {
                starts_at_ms: starts,
            });
        }
        if ends > 0 && now >= ends {
            return Ok(Outcome::SaleEnded { ended_at_ms: ends });
        }
    }
    let quantity = u64::from(purchase.quantity);
    if quantity > stock {
        return Ok(Outcome::InsufficientStock {
            current_stock: stock,
        });
    }
    let limit = limit.unwrap_or(0);
    if limit > 0 {
        let bought: Option<u64> = conn.hget(keys.bought(), purchase.user_id).await?;
        let bought = bought.unwrap_or(0);
        if bought + quantity > limit {
            return Ok(Outcome::LimitExceeded {
                limit,
                already_bought: bought,
            });
        }
    }
    if let Some(hook) = after_watch {
        hook().await;
    }
    let reservation = (window > 0).then(|| Outcome::Reserved {
        pay_by_ms: now + window,
        amount: price.unwrap_or(0) * quantity,
    });
    let event = match &reservation {
        Some(Outcome::Reserved { pay_by_ms, amount }) => {
            reserved_event(purchase.event_json, *pay_by_ms, *amount)
        }
        _ => purchase.event_json.to_owned(),
    };
    let mut pipe = redis::pipe();
    pipe.atomic()
        .decr(keys.stock(), quantity)
        .ignore()
        .hincr(keys.bought(), purchase.user_id, quantity)
        .ignore()
        .hset(keys.outbox(), purchase.order_id, &event)
        .ignore()
        .zadd(keys.outbox_times(), purchase.order_id, purchase.now_ms)
        .ignore();
    if let Some(Outcome::Reserved { pay_by_ms, .. }) = &reservation {
        pipe.hset(keys.reserved(), purchase.order_id, &event)
            .ignore()
            .zadd(keys.expiry(), purchase.order_id, *pay_by_ms)
            .ignore();
    }
    if purchase.idempotency.is_some() {
        pipe.set_ex(
            &idempotency_key,
            IdempotencyRecord::of(purchase),
            purchase.idempotency_ttl(),
        )
        .ignore();
    }
    // EXEC answers nil when a watched key changed: nothing was written. No answer at all
    // leaves the outcome unknown.
    let executed: Option<()> = pipe
        .query_async(&mut *conn)
        .await
        .map_err(AttemptError::of_write)?;
    Ok(match executed {
        Some(()) => reservation.unwrap_or(Outcome::Placed),
        None => Outcome::Busy,
    })
}

/// The placement event of a reservation: the service's event with its deadline and
/// amount due, as the purchase script writes it.
fn reserved_event(event_json: &str, pay_by_ms: i64, amount: u64) -> String {
    let body = event_json.strip_suffix('}').unwrap_or(event_json);
    format!(r#"{body},"pay_by_ms":{pay_by_ms},"amount":{amount}}}"#)
}
