//! What the inventory's types share: the Redis client, the keyspace, and how long a
//! write whose outcome is unknown is looked into. Each type ([`crate::Stock`],
//! [`crate::Outbox`], [`crate::Reservations`]) holds a copy, so each can be handed alone
//! to the code that needs only it.

use crate::keys::ItemKeys;
use common::redis::{Keyspace, RedisClient};
use std::time::Duration;

/// How long a write whose outcome is unknown is looked into before it is reported so,
/// unless the owner says otherwise ([`crate::Inventory::settling_within`]).
const DEFAULT_SETTLE_WITHIN: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub(crate) struct Core {
    pub(crate) redis: RedisClient,
    pub(crate) keys: Keyspace,
    /// How long a write whose outcome is unknown is looked into (see lifecycle).
    pub(crate) settle_within: Duration,
}

impl Core {
    pub(crate) fn new(redis: RedisClient, keys: Keyspace) -> Self {
        Core {
            redis,
            keys,
            settle_within: DEFAULT_SETTLE_WITHIN,
        }
    }

    pub(crate) fn keys(&self, item_id: u64) -> ItemKeys {
        ItemKeys::new(&self.keys, item_id)
    }

    pub(crate) fn keyspace(&self) -> &Keyspace {
        &self.keys
    }

    pub(crate) fn redis(&self) -> &RedisClient {
        &self.redis
    }

    /// The set of item ids Redis holds state for; lets the outbox relay find every
    /// outbox without scanning the keyspace.
    pub(crate) fn known_items(&self) -> String {
        self.keys.key("items:known")
    }

    /// Sorted set: the items sold lately or still holding pending orders, scored by when
    /// a purchase-service last marked them (Unix ms); see [`crate::selling`].
    pub(crate) fn selling_items(&self) -> String {
        self.keys.key("items:selling")
    }
}
