//! The reference design, kept so both can be measured side by side: take the item's
//! distributed lock (LOCK_MAX_RETRIES, random backoff), WATCH the item's keys, then run
//! the purchase script inside MULTI/EXEC. The rules are the script's alone, so the two
//! strategies differ only in what the reference adds around them: the lock's round trips
//! and retries, and the aborts a change to a watched key causes. A lock never acquired or
//! an aborted EXEC is [`Outcome::Busy`] with nothing changed. The order's void marker is
//! watched too, so settling an unknown EXEC (see [`crate::settle`]) aborts it if it has
//! not run yet.

use super::script::{self, PURCHASE};
use super::{AttemptError, Outcome, Purchase};
use crate::keys::ItemKeys;
use crate::{DistributedLock, Stock};
use futures_util::future::BoxFuture;
use std::sync::Arc;

/// Runs between WATCH and EXEC; tests use it to change a watched key.
pub type WatchHook = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

impl Stock {
    /// Takes a purchase the reference's way: under the item's lock, WATCH, then the
    /// purchase script in MULTI/EXEC.
    pub async fn purchase_under_lock(
        &self,
        purchase: &Purchase<'_>,
        lock: &DistributedLock,
        after_watch: Option<&WatchHook>,
    ) -> Result<Outcome, AttemptError> {
        let keys = self.core.keys(purchase.item_id);
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
        // until it goes back, and it goes back unwatched (EXEC, run or aborted, unwatches
        // it) or not at all.
        let mut conn = self.core.redis().exclusive_for(&keys.stock()).await?;
        let result = watch_and_exec(&mut conn, purchase, keys, after_watch).await;
        if result.is_err() {
            drop(deadpool_redis::Connection::take(conn));
        }
        result
    }
}

async fn watch_and_exec(
    conn: &mut deadpool_redis::Connection,
    purchase: &Purchase<'_>,
    keys: &ItemKeys,
    after_watch: Option<&WatchHook>,
) -> Result<Outcome, AttemptError> {
    redis::cmd("WATCH")
        .arg(keys.stock())
        .arg(keys.meta())
        .arg(keys.bought())
        .arg(purchase.idempotency_key(keys))
        .arg(keys.void(purchase.order_id))
        .query_async::<()>(&mut *conn)
        .await?;
    if let Some(hook) = after_watch {
        hook().await;
    }
    // An EVALSHA of a script Redis does not hold fails only at EXEC, too late to load it
    // and send again, so the transaction loads it first (SCRIPT LOAD of a script already
    // held changes nothing, and it is not replicated).
    let invocation = script::invocation(purchase, keys);
    // EXEC answers nil when a watched key changed: nothing was written. No answer at all
    // leaves the outcome unknown.
    let executed: Option<(Vec<String>,)> = redis::pipe()
        .atomic()
        .load_script(&PURCHASE)
        .ignore()
        .invoke_script(&invocation)
        .query_async(&mut *conn)
        .await
        .map_err(AttemptError::of_write)?;
    match executed {
        Some((reply,)) => script::decode(reply),
        None => Ok(Outcome::Busy),
    }
}
