//! The reference design, done right, kept so both can be measured side by side: take
//! the item's distributed lock (LOCK_MAX_RETRIES, random backoff), then WATCH the
//! item's keys, read and check, and write in MULTI/EXEC. A lock never acquired or an
//! aborted EXEC is [`Outcome::Busy`] with nothing changed. The order's void marker is
//! watched too, so settling an unknown EXEC (see [`inventory::settle`]) aborts it if it
//! has not run yet.

use super::{Attempt, AttemptError, IdempotencyRecord, Outcome};
use common::redis::{Keyspace, RedisPool};
use futures_util::future::BoxFuture;
use inventory::{DistributedLock, ItemKeys};
use redis::AsyncCommands;
use std::sync::Arc;

/// Runs between the reads and EXEC; tests use it to change a watched key.
pub type WatchHook = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

#[derive(Clone)]
pub struct LockStrategy {
    pub redis: RedisPool,
    pub keys: Keyspace,
    pub lock: DistributedLock,
    pub after_watch: Option<WatchHook>,
}

impl LockStrategy {
    pub async fn attempt(&self, attempt: &Attempt, now_ms: i64) -> Result<Outcome, AttemptError> {
        let keys = attempt.keys(&self.keys);
        let guard = match self.lock.acquire(&keys.lock()).await {
            Ok(guard) => guard,
            Err(inventory::Error::LockBusy { .. }) => return Ok(Outcome::Busy),
            Err(error) => return Err(error.into()),
        };
        let outcome = self.watched(attempt, &keys, now_ms).await;
        if let Err(error) = self.lock.release(guard).await {
            tracing::warn!(%error, "could not release the item lock; it expires by itself");
        }
        outcome
    }

    async fn watched(
        &self,
        attempt: &Attempt,
        keys: &ItemKeys,
        now_ms: i64,
    ) -> Result<Outcome, AttemptError> {
        // WATCH state belongs to the connection: this pooled connection is ours alone
        // until it goes back, and it goes back unwatched (EXEC or UNWATCH) or not at all.
        let mut conn = self.redis.exclusive().await?;
        let result = self.check_and_write(&mut conn, attempt, keys, now_ms).await;
        match &result {
            Ok(Outcome::Placed) | Ok(Outcome::Busy) => {}
            Ok(_) => redis::cmd("UNWATCH").query_async::<()>(&mut conn).await?,
            Err(_) => drop(deadpool_redis::Connection::take(conn)),
        }
        result
    }

    async fn check_and_write(
        &self,
        conn: &mut deadpool_redis::Connection,
        attempt: &Attempt,
        keys: &ItemKeys,
        now_ms: i64,
    ) -> Result<Outcome, AttemptError> {
        let event = &attempt.event;
        let idempotency_key = attempt.idempotency_redis_key(keys);
        let void_key = attempt.void_key(keys);
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
        if attempt.idempotency_key.is_some() {
            let prior: Option<String> = conn.get(&idempotency_key).await?;
            if let Some(prior) = prior {
                let record = IdempotencyRecord::parse(&prior)
                    .ok_or_else(|| AttemptError::UnexpectedReply(vec![prior]))?;
                return Ok(if record.quantity == event.quantity {
                    Outcome::Duplicate(record)
                } else {
                    Outcome::KeyReused(record)
                });
            }
        }
        let (on_sale, limit): (Option<String>, Option<u64>) = redis::cmd("HMGET")
            .arg(keys.meta())
            .arg("on_sale")
            .arg("limit")
            .query_async(&mut *conn)
            .await?;
        let stock: Option<u64> = conn.get(keys.stock()).await?;
        let (Some("1"), Some(stock)) = (on_sale.as_deref(), stock) else {
            return Ok(Outcome::NotOnSale);
        };
        let quantity = u64::from(event.quantity);
        if quantity > stock {
            return Ok(Outcome::InsufficientStock {
                current_stock: stock,
            });
        }
        let limit = limit.unwrap_or(0);
        if limit > 0 {
            let bought: Option<u64> = conn.hget(keys.bought(), event.user_id).await?;
            let bought = bought.unwrap_or(0);
            if bought + quantity > limit {
                return Ok(Outcome::LimitExceeded {
                    limit,
                    already_bought: bought,
                });
            }
        }
        if let Some(hook) = &self.after_watch {
            hook().await;
        }
        let mut pipe = redis::pipe();
        pipe.atomic()
            .decr(keys.stock(), quantity)
            .ignore()
            .hincr(keys.bought(), event.user_id, quantity)
            .ignore()
            .hset(keys.outbox(), &event.order_id, event.to_json())
            .ignore()
            .zadd(keys.outbox_times(), &event.order_id, now_ms)
            .ignore();
        if attempt.idempotency_key.is_some() {
            pipe.set_ex(
                &idempotency_key,
                IdempotencyRecord::of(event),
                attempt.idempotency_ttl(),
            )
            .ignore();
        }
        // EXEC answers nil when a watched key changed: nothing was written. No answer at
        // all leaves the outcome unknown.
        let executed: Option<()> = pipe
            .query_async(&mut *conn)
            .await
            .map_err(AttemptError::of_write)?;
        Ok(match executed {
            Some(()) => Outcome::Placed,
            None => Outcome::Busy,
        })
    }
}
