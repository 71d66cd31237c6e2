//! The default way: one Lua script (`scripts/purchase.lua`) does every check and every
//! write atomically in one round trip (EVALSHA; redis-rs reloads it on NOSCRIPT). The
//! script is the only statement of the purchase rules: the lock strategy runs it too, with
//! the keys and arguments built and the reply decoded here.

use super::{AttemptError, IdempotencyRecord, Outcome, Purchase};
use crate::Stock;
use crate::keys::ItemKeys;
use crate::room::TicketState;
use redis::{Script, ScriptInvocation};
use std::sync::LazyLock;

/// The script's source, for tools that run it outside the service (the benchmark's
/// redis-benchmark ceiling).
pub const PURCHASE_LUA: &str = include_str!("../scripts/purchase.lua");

pub(super) static PURCHASE: LazyLock<Script> = LazyLock::new(|| Script::new(PURCHASE_LUA));

/// The script's KEYS for a purchase by `user_id` (all in the item's slot), with the
/// idempotency and void keys the purchase names.
pub fn purchase_keys(
    keys: &ItemKeys,
    user_id: u64,
    idempotency: String,
    void: String,
) -> [String; 12] {
    [
        keys.stock(),
        keys.meta(),
        keys.bought(),
        keys.outbox(),
        keys.outbox_times(),
        idempotency,
        void,
        keys.reserved(),
        keys.expiry(),
        keys.room_tickets(),
        keys.room_admitted(),
        keys.buyer_pending(user_id),
    ]
}

/// The script's call for `purchase`: its KEYS and ARGV.
pub(super) fn invocation(purchase: &Purchase<'_>, keys: &ItemKeys) -> ScriptInvocation<'static> {
    let mut invocation = PURCHASE.prepare_invoke();
    let script_keys = purchase_keys(
        keys,
        purchase.user_id,
        purchase.idempotency_key(keys),
        keys.void(purchase.order_id),
    );
    for key in script_keys {
        invocation.key(key);
    }
    invocation
        .arg(purchase.user_id)
        .arg(purchase.quantity)
        .arg(purchase.order_id)
        .arg(purchase.event_json)
        .arg(purchase.now_ms)
        .arg(purchase.idempotency_ttl());
    invocation
}

/// The outcome the script's reply stands for; a reply it never gives is a defect.
pub(super) fn decode(reply: Vec<String>) -> Result<Outcome, AttemptError> {
    parse_reply(&reply).ok_or(AttemptError::UnexpectedReply(reply))
}

impl Stock {
    /// Loads the purchase script so the first purchase is already an EVALSHA.
    pub async fn preload_purchase_script(&self) -> Result<(), crate::Error> {
        let mut conn = self.core.redis().get().await?;
        PURCHASE.prepare_invoke().load_async(&mut conn).await?;
        Ok(())
    }

    /// Takes a purchase with the atomic script.
    pub async fn purchase_by_script(
        &self,
        purchase: &Purchase<'_>,
    ) -> Result<Outcome, AttemptError> {
        let keys = self.core.keys(purchase.item_id);
        let mut conn = self.core.redis().get().await?;
        let reply: Vec<String> = invocation(purchase, &keys)
            .invoke_async(&mut conn)
            .await
            .map_err(AttemptError::of_write)?;
        decode(reply)
    }
}

fn number(reply: &[String], index: usize) -> Option<u64> {
    reply.get(index)?.parse().ok()
}

fn millis(reply: &[String], index: usize) -> Option<i64> {
    reply.get(index)?.parse().ok().filter(|ms| *ms > 0)
}

fn record(reply: &[String]) -> Option<IdempotencyRecord> {
    IdempotencyRecord::parse(reply.get(1)?)
}

/// Turns the script's reply into an outcome; `None` for a reply it never gives.
fn parse_reply(reply: &[String]) -> Option<Outcome> {
    let expected_len = match reply.first()?.as_str() {
        "OK" | "DUPLICATE" | "KEY_REUSED" | "INSUFFICIENT_STOCK" | "SALE_NOT_STARTED"
        | "SALE_ENDED" | "NOT_ADMITTED" => 2,
        "VOID" | "NOT_ON_SALE" => 1,
        "RESERVED" => 4,
        "LIMIT_EXCEEDED" => 3,
        _ => return None,
    };
    if reply.len() != expected_len {
        return None;
    }
    Some(match reply[0].as_str() {
        "OK" => {
            number(reply, 1)?;
            Outcome::Placed
        }
        "RESERVED" => {
            number(reply, 1)?;
            Outcome::Reserved {
                pay_by_ms: millis(reply, 2)?,
                amount: number(reply, 3)?,
            }
        }
        "DUPLICATE" => Outcome::Duplicate(record(reply)?),
        "KEY_REUSED" => Outcome::KeyReused(record(reply)?),
        "VOID" => Outcome::Void,
        "NOT_ON_SALE" => Outcome::NotOnSale,
        "SALE_NOT_STARTED" => Outcome::SaleNotStarted {
            starts_at_ms: millis(reply, 1)?,
        },
        "SALE_ENDED" => Outcome::SaleEnded {
            ended_at_ms: millis(reply, 1)?,
        },
        "NOT_ADMITTED" => Outcome::NotAdmitted {
            state: match reply[1].as_str() {
                "none" => None,
                state => Some(TicketState::parse(state)?),
            },
        },
        "INSUFFICIENT_STOCK" => Outcome::InsufficientStock {
            current_stock: number(reply, 1)?,
        },
        _ => Outcome::LimitExceeded {
            limit: number(reply, 1)?,
            already_bought: number(reply, 2)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn every_reply_the_script_gives_is_understood() {
        assert_eq!(parse_reply(&reply(&["OK", "4"])), Some(Outcome::Placed));
        assert_eq!(
            parse_reply(&reply(&["INSUFFICIENT_STOCK", "2"])),
            Some(Outcome::InsufficientStock { current_stock: 2 })
        );
        assert_eq!(
            parse_reply(&reply(&["LIMIT_EXCEEDED", "3", "2"])),
            Some(Outcome::LimitExceeded {
                limit: 3,
                already_bought: 2
            })
        );
        assert_eq!(parse_reply(&reply(&["VOID"])), Some(Outcome::Void));
        assert_eq!(
            parse_reply(&reply(&["NOT_ADMITTED", "none"])),
            Some(Outcome::NotAdmitted { state: None })
        );
        assert_eq!(
            parse_reply(&reply(&["NOT_ADMITTED", "lapsed"])),
            Some(Outcome::NotAdmitted {
                state: Some(TicketState::Lapsed)
            })
        );
        assert_eq!(
            parse_reply(&reply(&["RESERVED", "4", "1700000000000", "3000"])),
            Some(Outcome::Reserved {
                pay_by_ms: 1_700_000_000_000,
                amount: 3000
            })
        );
        assert_eq!(
            parse_reply(&reply(&["SALE_NOT_STARTED", "1700000000000"])),
            Some(Outcome::SaleNotStarted {
                starts_at_ms: 1_700_000_000_000
            })
        );
        assert_eq!(
            parse_reply(&reply(&["SALE_ENDED", "1700000000000"])),
            Some(Outcome::SaleEnded {
                ended_at_ms: 1_700_000_000_000
            })
        );
        assert!(matches!(
            parse_reply(&reply(&["DUPLICATE", "o-1:2:1700000000000"])),
            Some(Outcome::Duplicate(record)) if record.order_id == "o-1" && record.quantity == 2
        ));
    }

    #[test]
    fn a_reply_it_never_gives_is_not_mistaken_for_an_answer() {
        for unexpected in [
            reply(&[]),
            reply(&["ERR"]),
            reply(&["NOT_ON_SALE", "extra"]),
            reply(&["INSUFFICIENT_STOCK"]),
            reply(&["INSUFFICIENT_STOCK", "-1"]),
            reply(&["DUPLICATE", "garbage"]),
            reply(&["LIMIT_EXCEEDED", "3"]),
            reply(&["OK", "x"]),
            reply(&["SALE_ENDED", "0"]),
            reply(&["SALE_NOT_STARTED"]),
            reply(&["NOT_ADMITTED", "maybe"]),
        ] {
            assert_eq!(parse_reply(&unexpected), None, "{unexpected:?}");
        }
    }
}
