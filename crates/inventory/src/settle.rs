//! Settling a purchase whose outcome is unknown: the command was sent, but its reply
//! never came (a timeout, a dropped connection). The order id was minted before the
//! purchase, so one script on the item's keys can tell whether the order is in the
//! outbox, and if it is not, void the order id so that the purchase, if it is still on
//! its way, changes nothing. Either way the answer is final.

use crate::{Error, Outbox};
use redis::Script;
use std::sync::LazyLock;

static RULE_OUT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/rule_out.lua")));

/// How long a void marker outlives the purchase it voids; far longer than any command
/// can wait in a connection.
pub const VOID_TTL_SECS: u64 = 3600;

/// What Redis says of an order whose purchase had an unknown outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The purchase was taken: the order waits in the outbox.
    InOutbox,
    /// The purchase was taken and stock-writer has since parked the order.
    Parked,
    /// Not in Redis, and now it never will be: the order either was taken and already
    /// persisted (look in MySQL), or was never taken.
    RuledOut,
}

impl Outbox {
    /// Settles one order of one item; see the module documentation.
    pub async fn rule_out(&self, item_id: u64, order_id: &str) -> Result<Settled, Error> {
        let keys = self.core.keys(item_id);
        let mut conn = self.core.redis().get().await?;
        let reply: String = RULE_OUT
            .key(keys.outbox())
            .key(keys.parked())
            .key(keys.void(order_id))
            .arg(order_id)
            .arg(VOID_TTL_SECS)
            .invoke_async(&mut conn)
            .await?;
        match reply.as_str() {
            "IN_OUTBOX" => Ok(Settled::InOutbox),
            "PARKED" => Ok(Settled::Parked),
            "RULED_OUT" => Ok(Settled::RuledOut),
            other => Err(Error::UnexpectedReply(other.to_owned())),
        }
    }
}
