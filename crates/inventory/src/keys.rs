//! Key names. All keys of item 42 under prefix `p:` look like `p:item:{42}:<what>`.

use common::redis::Keyspace;

/// The keys of one item.
#[derive(Debug, Clone)]
pub struct ItemKeys {
    base: String,
}

impl ItemKeys {
    pub fn new(keys: &Keyspace, item_id: u64) -> Self {
        ItemKeys {
            base: keys.key(format_args!("item:{{{item_id}}}")),
        }
    }

    fn named(&self, what: &str) -> String {
        format!("{}:{what}", self.base)
    }

    /// Units left to sell (string holding an integer).
    pub fn stock(&self) -> String {
        self.named("stock")
    }

    /// Hash: `on_sale` (1/0) and `limit` (per-user limit, 0 = none).
    pub fn meta(&self) -> String {
        self.named("meta")
    }

    /// Hash: user id → units that user has bought.
    pub fn bought(&self) -> String {
        self.named("bought")
    }

    /// Hash: order id → order event JSON, for orders not yet persisted in MySQL.
    pub fn outbox(&self) -> String {
        self.named("outbox")
    }

    /// Sorted set: order id scored by the time it entered the outbox, for the relay.
    pub fn outbox_times(&self) -> String {
        self.named("outbox:at")
    }

    /// An idempotency key of one user, holding the order id it produced.
    pub fn idempotency(&self, user_id: u64, key: &str) -> String {
        self.named(&format!("idem:{user_id}:{key}"))
    }

    /// The distributed lock serializing admin operations (and the `lock` strategy).
    pub fn lock(&self) -> String {
        self.named("lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_an_item_carries_its_hash_tag() {
        let keys = ItemKeys::new(&Keyspace::new("p:"), 42);
        for key in [
            keys.stock(),
            keys.meta(),
            keys.bought(),
            keys.outbox(),
            keys.outbox_times(),
            keys.lock(),
            keys.idempotency(7, "k"),
        ] {
            assert!(key.starts_with("p:item:{42}:"), "{key}");
            assert_eq!(key.matches('{').count(), 1, "{key}");
        }
    }
}
