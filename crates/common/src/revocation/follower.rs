//! The follower: the one task per process that keeps its ledger in step with the
//! revocation stream.
//!
//! It takes a connection of its own to the node that holds the stream (a blocking read
//! on the shared multiplexed connection would hold up every command queued behind it),
//! with a response timeout of `REDIS_RESPONSE_TIMEOUT_MS` beyond the block. On every
//! (re)connection it reads the whole stream, in pages, then waits for what comes next
//! with `XREAD BLOCK` from the last id it read. The block is a third of the max lag, so
//! that a quiet feed completes a read, and stays current, well within it.
//!
//! A read that fails (a node restarted or failed over, a timeout) makes the feed not
//! current at once; the follower reconnects with a growing pause and reads the whole
//! stream again rather than going on from its last id. Stream ids come from the Redis
//! server's clock: after a restart that lost the stream, or a failover to a replica
//! missing its newest entries (revocations are answered only once replicated, so those
//! were never answered), new ids may be lower than the last one read, and a read from
//! there would skip them. Reading it all again assumes only that the stream now holds
//! every revocation that was answered. Trimming needs no such care: it drops only
//! entries of tokens that can no longer authenticate anyone.

use super::Inner;
use crate::redis::RedisClient;
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use std::sync::Weak;
use std::time::{Duration, Instant};

/// Entries per read, at start and while following.
const PAGE: usize = 1000;
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Follows the stream until the feed is dropped.
pub(super) async fn run(feed: Weak<Inner>, redis: RedisClient, stream: String) {
    let Some(max_lag) = feed.upgrade().map(|inner| inner.settings.max_lag) else {
        return;
    };
    let block = (max_lag / 3).max(Duration::from_millis(1));
    let mut pause = FIRST_PAUSE;
    let mut failures = 0u32;
    loop {
        let error = match session(&feed, &redis, &stream, block, &mut pause).await {
            Ok(()) => return,
            Err(error) => error,
        };
        let Some(inner) = feed.upgrade() else {
            return;
        };
        inner.unknown();
        drop(inner);
        if failures == 0 {
            tracing::warn!(%error, "revocation feed lost; reconnecting");
        } else {
            tracing::debug!(%error, failures, "revocation feed still lost");
        }
        failures = failures.saturating_add(1);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// One connection's life: a full read, then following. Ends with `Ok` when the feed is
/// dropped, with the error when Redis fails.
async fn session(
    feed: &Weak<Inner>,
    redis: &RedisClient,
    stream: &str,
    block: Duration,
    pause: &mut Duration,
) -> Result<(), redis::RedisError> {
    let mut conn = redis.dedicated_for(stream, block).await?;
    let mut last_id = match feed.upgrade() {
        Some(inner) => reload(&inner, &mut conn, stream).await?,
        None => return Ok(()),
    };
    *pause = FIRST_PAUSE;
    loop {
        let sent = Instant::now();
        let reply: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(PAGE)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(stream)
            .arg(&last_id)
            .query_async(&mut conn)
            .await?;
        let Some(inner) = feed.upgrade() else {
            return Ok(());
        };
        let entries: Vec<StreamId> = reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .collect();
        if let Some(last) = entries.last() {
            last_id = last.id.clone();
        }
        apply(&inner, &entries);
        // A full page may have left entries older than `sent` for the next read.
        if entries.len() < PAGE {
            inner.known(sent);
        }
        let room_again = inner
            .ledger
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .has_room_again();
        if room_again {
            last_id = reload(&inner, &mut conn, stream).await?;
        }
    }
}

/// Reads the whole stream into the ledger (over what it holds: replaying entries it
/// has is harmless), returning the last id read (`0-0` for an empty stream). The feed
/// is not current meanwhile; once done, every entry appended before the first page was
/// asked for is known.
async fn reload(
    inner: &Inner,
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> Result<String, redis::RedisError> {
    inner.unknown();
    inner.apply(|ledger, _| ledger.rebuilding());
    let sent = Instant::now();
    let mut start = "-".to_owned();
    let mut last_id = "0-0".to_owned();
    loop {
        let page: StreamRangeReply = redis::cmd("XRANGE")
            .arg(stream)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(PAGE)
            .query_async(conn)
            .await?;
        if let Some(last) = page.ids.last() {
            last_id = last.id.clone();
            start = format!("({last_id}");
        }
        apply(inner, &page.ids);
        if page.ids.len() < PAGE {
            break;
        }
    }
    inner.known(sent);
    Ok(last_id)
}

/// Applies stream entries, in order, to the ledger; a malformed one is skipped.
fn apply(inner: &Inner, entries: &[StreamId]) {
    if entries.is_empty() {
        return;
    }
    inner.apply(|ledger, now| {
        for entry in entries {
            let (Some(op), Some(jti), Some(holder)) = (
                entry.get::<String>("op"),
                entry.get::<String>("jti"),
                entry.get::<String>("holder"),
            ) else {
                tracing::warn!(id = %entry.id, "malformed revocation stream entry skipped");
                continue;
            };
            match (op.as_str(), entry.get::<u64>("until")) {
                ("revoke", Some(until)) => ledger.revoke(&jti, &holder, until, now),
                ("withdraw", _) => ledger.withdraw(&jti, &holder),
                _ => tracing::warn!(id = %entry.id, %op, "unknown revocation stream entry skipped"),
            }
        }
    });
}
