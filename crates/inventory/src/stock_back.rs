//! "Units of this item are on sale again": a Redis pub/sub notice every purchase-service
//! instance listens to, so that a sold-out mark it keeps in memory is dropped as soon as
//! stock comes back (a restock, a release, sync-stock, a rebuild), not only when the mark
//! runs out. Every operation that can give stock back announces it here, once it has
//! written; the notice is best effort (a lost one costs at most the marks' short re-check
//! interval), so a failure to publish is logged, never returned. On a Redis Cluster a
//! notice published on any node reaches the subscribers of every node.

use crate::core::Core;

impl Core {
    /// The channel the notices go to (one per keyspace).
    pub(crate) fn stock_back_channel(&self) -> String {
        self.keys.key("stock-back")
    }

    /// Tells every listening instance that `item_id` may have units again.
    pub(crate) async fn announce_stock_back(&self, item_id: u64) {
        let published = async {
            let mut conn = self.redis.get().await?;
            redis::cmd("PUBLISH")
                .arg(self.stock_back_channel())
                .arg(item_id)
                .query_async::<i64>(&mut conn)
                .await
        };
        if let Err(error) = published.await {
            tracing::warn!(item_id, %error, "could not announce stock back; sold-out marks elsewhere last their re-check interval");
        }
    }
}

/// The item a notice names, if it names one.
pub fn item_of_notice(payload: &[u8]) -> Option<u64> {
    std::str::from_utf8(payload).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_names_an_item_or_nothing() {
        assert_eq!(item_of_notice(b"42"), Some(42));
        assert_eq!(item_of_notice(b"-1"), None);
        assert_eq!(item_of_notice(b"forty"), None);
        assert_eq!(item_of_notice(&[0xff]), None);
    }
}
