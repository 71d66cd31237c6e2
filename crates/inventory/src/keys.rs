//! Key names. All keys of item 42 under prefix `p:` look like `p:item:{42}:<what>`: each
//! carries the item's hash tag, so a script may touch one item's keys together on a Redis
//! Cluster.

use common::redis::Keyspace;

/// The field of an item's meta hash that says whether it is on sale (`1`/`0`).
pub const ON_SALE: &str = "on_sale";
/// The field of an item's meta hash holding the per-user limit (0: none).
pub const LIMIT: &str = "limit";
/// Fields of an item's meta hash holding its sale terms (see [`crate::store::SaleTerms`]):
/// when the sale opens and closes (Unix ms, 0: no bound), how long a buyer has to pay
/// (ms, 0: no payment step) and the unit price (minor units).
pub const STARTS_MS: &str = "starts_ms";
pub const ENDS_MS: &str = "ends_ms";
pub const PAY_WINDOW_MS: &str = "pay_window_ms";
pub const PRICE: &str = "price";
/// Fields of an item's meta hash holding its waiting room (see [`crate::room::RoomTerms`]):
/// whether it has one (`1`/`0`), how many buyers it admits at once (0: as many as units
/// left) and how long a pass is open (ms).
pub const ROOM: &str = "room";
pub const ROOM_MAX: &str = "room_max";
pub const PASS_MS: &str = "pass_ms";

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

    /// Hash: [`ON_SALE`] (1/0), [`LIMIT`] (per-user limit, 0 = none) and the sale terms.
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

    /// Sorted set: order id scored by the time it is next due for publishing, for the
    /// relay.
    pub fn outbox_times(&self) -> String {
        self.named("outbox:at")
    }

    /// Hash: order id → how many times the relay has republished it (its backoff).
    pub fn outbox_tries(&self) -> String {
        self.named("outbox:tries")
    }

    /// Set: the ids of one buyer's orders of this item still in its outbox (or parked),
    /// written by the purchase script beside the outbox entry, so that listing a buyer's
    /// pending orders reads only theirs and costs the purchase no second write.
    pub fn buyer_pending(&self, user_id: u64) -> String {
        self.named(&format!("pending:{user_id}"))
    }

    /// Hash: order id → a parked order (event and reason): taken in Redis, refused by
    /// stock-writer for good, waiting for an operator (`stock-writer dlq`).
    pub fn parked(&self) -> String {
        self.named("parked")
    }

    /// Hash: order id → the placement event of a reservation not yet paid, cancelled or
    /// expired (its owner, the lifecycle script, removes it when one of those happens).
    pub fn reserved(&self) -> String {
        self.named("reserved")
    }

    /// Sorted set: reserved order id scored by its `pay_by` (Unix ms): the expiry
    /// schedule every purchase-service instance works through.
    pub fn expiry(&self) -> String {
        self.named("expiry")
    }

    /// What became of a reservation (`paid:<payment id>`, `cancelled`, `expired`),
    /// kept for `ORDER_STATUS_TTL_SECS` so late payments and cancels get a true answer.
    pub fn settled(&self, order_id: &str) -> String {
        self.named(&format!("settled:{order_id}"))
    }

    /// How many reservations of this item a buyer cancelled in the current window.
    pub fn cancels(&self, user_id: u64) -> String {
        self.named(&format!("cancels:{user_id}"))
    }

    /// A payment already applied (payment id → order id), so a redelivered webhook
    /// changes nothing.
    pub fn payment(&self, payment_id: &str) -> String {
        self.named(&format!("payment:{payment_id}"))
    }

    /// Marks an order id that was ruled out while its purchase's outcome was unknown: a
    /// purchase carrying it that reaches Redis later does nothing.
    pub fn void(&self, order_id: &str) -> String {
        self.named(&format!("void:{order_id}"))
    }

    /// What became of one restock (`applied`, `undone`, `void`), so that undoing it
    /// is exact even when its own outcome was unknown.
    pub fn restock(&self, restock_id: &str) -> String {
        self.named(&format!("restock:{restock_id}"))
    }

    /// An idempotency key of one user, holding the order id it produced.
    pub fn idempotency(&self, user_id: u64, key: &str) -> String {
        self.named(&format!("idem:{user_id}:{key}"))
    }

    /// Hash: the waiting room's counters (`arrivals`, `admitted_total`, `first_admit_ms`).
    pub fn room(&self) -> String {
        self.named("room")
    }

    /// Hash: user id → the buyer's ticket (see `scripts/queue.lua`).
    pub fn room_tickets(&self) -> String {
        self.named("room:tickets")
    }

    /// Sorted set: the buyers waiting, in queue order.
    pub fn room_queue(&self) -> String {
        self.named("room:queue")
    }

    /// Sorted set: the buyers holding an open pass, scored by when it closes (Unix ms).
    pub fn room_admitted(&self) -> String {
        self.named("room:admitted")
    }

    /// The distributed lock serializing admin operations (and the `lock` strategy).
    pub fn lock(&self) -> String {
        self.named("lock")
    }
}

/// String: the item of a reservation (written after the purchase, bounded by a TTL), so
/// a cancel or a payment, which name only the order, finds the item's keys before MySQL
/// has the order.
pub fn order_item(keys: &Keyspace, order_id: &str) -> String {
    keys.key(format_args!("order:{{{order_id}}}:item"))
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
            keys.outbox_tries(),
            keys.parked(),
            keys.buyer_pending(7),
            keys.void("0192-ab"),
            keys.reserved(),
            keys.expiry(),
            keys.settled("0192-ab"),
            keys.payment("pay_1"),
            keys.restock("r-1"),
            keys.cancels(7),
            keys.lock(),
            keys.idempotency(7, "k"),
            keys.room(),
            keys.room_tickets(),
            keys.room_queue(),
            keys.room_admitted(),
        ] {
            assert!(key.starts_with("p:item:{42}:"), "{key}");
            assert_eq!(key.matches('{').count(), 1, "{key}");
        }
    }
}
