//! Sold-out marks: once the purchase script says an item has no unit left, this instance
//! answers its purchases 409 from memory instead of asking Redis, for a short while. In a
//! real sale most requests arrive after the sell-out, and each of them would otherwise
//! cost a Redis round trip and a script run. A mark is dropped as soon as stock comes
//! back anywhere: every store operation that gives units back (restock, cancel, expiry,
//! sync-stock, rebuild) publishes a notice that every instance listens to
//! ([`listen_for_stock_back`]). A notice can be lost (a dropped subscription), so a mark
//! also lives `SOLD_OUT_RECHECK_MS` at most; then the next purchase asks Redis again (and
//! marks again if still sold out). Either way a returned unit is on sale again on every
//! instance within that interval.

use common::config::RedisSettings;
use common::shutdown::Shutdown;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long to wait before subscribing again after the subscription failed.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

/// The sold-out marks of one instance, shared by its workers.
#[derive(Clone, Debug)]
pub struct SoldOutMarks {
    /// How long a mark is trusted; zero turns marks off.
    recheck: Duration,
    marked_at: Arc<RwLock<HashMap<u64, Instant>>>,
}

impl SoldOutMarks {
    pub fn new(recheck: Duration) -> Self {
        SoldOutMarks {
            recheck,
            marked_at: Arc::default(),
        }
    }

    /// Whether the item was seen sold out less than the re-check interval ago.
    pub fn is_sold_out(&self, item_id: u64) -> bool {
        self.is_sold_out_at(item_id, Instant::now())
    }

    fn is_sold_out_at(&self, item_id: u64, now: Instant) -> bool {
        // A poisoned lock only means a worker panicked mid-insert: the map is still a map.
        let marks = self.marked_at.read().unwrap_or_else(|e| e.into_inner());
        marks
            .get(&item_id)
            .is_some_and(|at| now.saturating_duration_since(*at) < self.recheck)
    }

    /// The script just said the item has no unit left.
    pub fn mark(&self, item_id: u64) {
        self.mark_at(item_id, Instant::now());
    }

    fn mark_at(&self, item_id: u64, at: Instant) {
        if self.recheck.is_zero() {
            return;
        }
        let mut marks = self.marked_at.write().unwrap_or_else(|e| e.into_inner());
        // Marks of items that sold out long ago would otherwise pile up.
        if marks.len() >= 4096 {
            let recheck = self.recheck;
            marks.retain(|_, marked| at.saturating_duration_since(*marked) < recheck);
        }
        marks.insert(item_id, at);
    }

    /// Units of the item came back.
    pub fn clear(&self, item_id: u64) {
        let mut marks = self.marked_at.write().unwrap_or_else(|e| e.into_inner());
        marks.remove(&item_id);
    }

    /// Notices may have been missed: trust no mark.
    fn clear_all(&self) {
        self.marked_at
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// Drops marks as the stock-back notices arrive on `channel`, until shutdown;
/// subscribes again after a lost connection (dropping every mark then, since notices
/// may have been missed meanwhile).
pub async fn listen_for_stock_back(
    marks: SoldOutMarks,
    redis: RedisSettings,
    channel: String,
    mut shutdown: Shutdown,
) {
    if marks.recheck.is_zero() {
        return;
    }
    loop {
        let subscribed = async {
            let mut pubsub = common::redis::subscriber(&redis).await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match subscribed.await {
            Ok(mut pubsub) => {
                marks.clear_all();
                tracing::debug!(%channel, "listening for stock-back notices");
                let mut notices = pubsub.on_message();
                loop {
                    tokio::select! {
                        () = shutdown.requested() => return,
                        notice = notices.next() => match notice {
                            Some(notice) => {
                                if let Some(item_id) = inventory::stock_back::item_of_notice(notice.get_payload_bytes()) {
                                    marks.clear(item_id);
                                }
                            }
                            None => break,
                        },
                    }
                }
                marks.clear_all();
                tracing::warn!("the stock-back subscription ended; subscribing again");
            }
            Err(error) => {
                tracing::warn!(%error, "could not subscribe to stock-back notices; sold-out marks last their re-check interval meanwhile");
            }
        }
        if !shutdown.sleep(RESUBSCRIBE_AFTER).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_trusted_for_the_recheck_interval_only() {
        let marks = SoldOutMarks::new(Duration::from_millis(100));
        let start = Instant::now();
        assert!(!marks.is_sold_out_at(7, start));
        marks.mark_at(7, start);
        assert!(marks.is_sold_out_at(7, start + Duration::from_millis(99)));
        assert!(!marks.is_sold_out_at(7, start + Duration::from_millis(100)));
        assert!(!marks.is_sold_out_at(8, start), "another item");
        marks.mark_at(7, start);
        marks.clear(7);
        assert!(!marks.is_sold_out_at(7, start));
    }

    #[test]
    fn a_zero_interval_turns_marks_off_and_old_marks_do_not_pile_up() {
        let off = SoldOutMarks::new(Duration::ZERO);
        off.mark(7);
        assert!(!off.is_sold_out(7));

        let marks = SoldOutMarks::new(Duration::from_millis(100));
        let start = Instant::now();
        for item in 0..4096 {
            marks.mark_at(item, start);
        }
        marks.mark_at(5000, start + Duration::from_secs(1));
        assert_eq!(marks.marked_at.read().unwrap().len(), 1);
    }
}
