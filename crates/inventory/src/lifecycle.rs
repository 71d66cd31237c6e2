//! The end of a reservation: paid, cancelled by its buyer, or expired, decided by one
//! atomic script (`scripts/lifecycle.lua`) so that racing steps on one order have exactly
//! one winner. Also the expiry schedule the workers read, and the order → item index a
//! payment or a cancel (which name only the order) uses to find the item's keys.

use crate::Error;
use crate::core::Core;
use crate::keys::order_item;
use crate::outbox::due_by;
use common::redis::SlotPipeline;
use common::retry::Backoff;
use redis::{AsyncCommands, Script};
use std::sync::LazyLock;

static LIFECYCLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        &[
            events::ENDED_EVENT_LUA,
            include_str!("scripts/lifecycle.lua"),
        ]
        .concat(),
    )
});
static RESTORE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/restore_reservations.lua")));

/// How long what became of a reservation (and an applied payment id) is remembered in
/// Redis; after that MySQL answers.
pub const SETTLED_TTL_SECS: u64 = 7 * 24 * 3600;

/// Every item's reservations: their ends, their expiry schedule and the order → item
/// index.
#[derive(Clone)]
pub struct Reservations {
    pub(crate) core: Core,
}

/// What to do to a reservation.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    Pay {
        payment_id: &'a str,
        amount: u64,
    },
    Cancel {
        user_id: u64,
        allowance: CancelAllowance,
    },
    Expire,
}

/// How many reservations of one item a buyer may cancel per window (`per_window` 0:
/// any number). Every cancel leaves an ended order behind (in MySQL, and in Redis for
/// `SETTLED_TTL_SECS`), so this bounds what one buyer can make the system keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancelAllowance {
    pub per_window: u32,
    pub window_secs: u64,
}

/// What the step did, or why it did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The step won; `event` is the stock event it put in the outbox.
    Paid {
        event: String,
    },
    Cancelled {
        event: String,
    },
    Expired {
        event: String,
    },
    /// This payment id was applied before (to this order id).
    DuplicatePayment {
        order_id: String,
    },
    /// Not reserved (any more): `settled` is what became of it, if Redis still knows
    /// (`paid:<payment id>`, `cancelled`, `expired`).
    NotReserved {
        settled: Option<String>,
    },
    /// A cancel by someone who is not the buyer.
    NotTheBuyer,
    /// A payment of another amount than the one due.
    WrongAmount {
        due: u64,
    },
    /// An expiry asked before the deadline (clocks apart): nothing changed.
    NotDue,
    /// The buyer used up their cancels of this item for now: nothing changed.
    TooManyCancels {
        retry_after_secs: u64,
    },
}

impl Reservations {
    /// Applies one step to a reservation of `item_id` and answers once the state it
    /// answers from is on `REDIS_MIN_REPLICAS_ACKED` replicas, so a failover cannot take
    /// back what a client is told. When the replicas cannot say so (or the reply is
    /// lost), the step is applied again until they do: the script is idempotent by order
    /// (a step that already happened is found settled, and counts as this one), so
    /// whichever master survives ends up with the step exactly once. Past the inventory's
    /// settle bound the outcome is [`Error::StepUnsettled`].
    pub async fn end(&self, item_id: u64, order_id: &str, step: Step<'_>) -> Result<Ended, Error> {
        let mut backoff = Backoff::within(self.core.settle_within);
        let reserved = self.core.keys(item_id).reserved();
        let mut won: Option<Ended> = None;
        loop {
            let attempt = match self.step_once(item_id, order_id, step).await {
                Ok(ended) => {
                    let ended = match won.take() {
                        Some(first) if first.is_repeated_by(&ended, order_id) => first,
                        _ => ended,
                    };
                    match self.core.redis().replicated(&reserved).await {
                        Ok(()) => return Ok(ended),
                        Err(error) => {
                            won = Some(ended);
                            Error::NotReplicated(error)
                        }
                    }
                }
                Err(error @ Error::UnexpectedReply(_)) => return Err(error),
                Err(error) => error,
            };
            let Some(pause) = backoff.next_pause() else {
                tracing::error!(order_id, error = %attempt, "reservation step still unsettled; answering OUTCOME_UNKNOWN");
                return Err(Error::StepUnsettled {
                    order_id: order_id.to_owned(),
                });
            };
            tracing::warn!(order_id, error = %attempt, "reservation step not known to last; applying it again");
            tokio::time::sleep(pause).await;
        }
    }

    /// Runs the lifecycle script once.
    async fn step_once(
        &self,
        item_id: u64,
        order_id: &str,
        step: Step<'_>,
    ) -> Result<Ended, Error> {
        let keys = self.core.keys(item_id);
        let none = CancelAllowance {
            per_window: 0,
            window_secs: 0,
        };
        let (action, user_id, payment_id, amount, allowance) = match step {
            Step::Pay { payment_id, amount } => ("pay", 0, payment_id, amount, none),
            Step::Cancel { user_id, allowance } => ("cancel", user_id, "-", 0, allowance),
            Step::Expire => ("expire", 0, "-", 0, none),
        };
        let mut conn = self.core.redis().get().await?;
        let reply: Vec<String> = LIFECYCLE
            .key(keys.reserved())
            .key(keys.expiry())
            .key(keys.stock())
            .key(keys.bought())
            .key(keys.outbox())
            .key(keys.outbox_times())
            .key(keys.settled(order_id))
            .key(keys.payment(payment_id))
            .key(keys.cancels(user_id))
            .arg(order_id)
            .arg(action)
            .arg(user_id)
            .arg(payment_id)
            .arg(amount)
            .arg(SETTLED_TTL_SECS)
            .arg(allowance.per_window)
            .arg(allowance.window_secs)
            .invoke_async(&mut conn)
            .await?;
        let ended =
            parse_reply(&reply).ok_or_else(|| Error::UnexpectedReply(format!("{reply:?}")))?;
        if matches!(ended, Ended::Cancelled { .. } | Ended::Expired { .. }) {
            self.core.announce_stock_back(item_id).await;
        }
        Ok(ended)
    }

    /// Reservations of these items whose deadline has passed on the Redis server's
    /// clock, at most `limit` per item: (item id, order id).
    pub async fn due(&self, item_ids: &[u64], limit: usize) -> Result<Vec<(u64, String)>, Error> {
        if item_ids.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.core.redis().get().await?;
        let now_ms = crate::server_time_ms(&mut conn.clone()).await?;
        let keys = item_ids.iter().map(|id| self.core.keys(*id).expiry());
        let due: Vec<Vec<String>> = SlotPipeline::per_key(keys, |key| due_by(key, now_ms, limit))
            .query(&conn)
            .await?;
        Ok(item_ids
            .iter()
            .zip(due)
            .flat_map(|(id, orders)| orders.into_iter().map(move |order| (*id, order)))
            .collect())
    }

    /// Remembers which item a reservation belongs to, until well after its deadline.
    pub async fn index(
        &self,
        order_id: &str,
        item_id: u64,
        pay_by_ms: i64,
        now_ms: i64,
    ) -> Result<(), Error> {
        let ttl = index_ttl_secs(pay_by_ms, now_ms);
        let mut conn = self.core.redis().get().await?;
        conn.set_ex::<_, _, ()>(order_item(self.core.keyspace(), order_id), item_id, ttl)
            .await?;
        Ok(())
    }

    /// The item of a reservation Redis still indexes.
    pub async fn item_of(&self, order_id: &str) -> Result<Option<u64>, Error> {
        let mut conn = self.core.redis().get().await?;
        Ok(conn.get(order_item(self.core.keyspace(), order_id)).await?)
    }

    /// What became of each of these reservations (item id, order id), where Redis still
    /// knows: one round trip (one per slot on a cluster).
    pub async fn settled(&self, orders: &[(u64, &str)]) -> Result<Vec<Option<String>>, Error> {
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        let keys = orders
            .iter()
            .map(|(item_id, order_id)| self.core.keys(*item_id).settled(order_id));
        Ok(SlotPipeline::per_key(keys, |key| redis::Cmd::get(key))
            .query(&self.core.redis().get().await?)
            .await?)
    }

    /// Puts back reservations Redis lost (rebuild-redis, from MySQL's open ones): each
    /// in the reserved hash and the expiry schedule, decided atomically with the restore
    /// (`scripts/restore_reservations.lua`): one Redis still holds is left alone, one
    /// Redis knows ended (settled, or its step not yet in MySQL) is not brought back.
    /// Then each restored order is indexed to its item. `reservations` are (order id,
    /// placement event JSON, pay_by ms); sent in chunks so Redis is never blocked long.
    /// Returns how many were put back.
    pub async fn restore(
        &self,
        item_id: u64,
        reservations: &[(String, String, i64)],
        now_ms: i64,
    ) -> Result<usize, Error> {
        const CHUNK: usize = 500;
        let keys = self.core.keys(item_id);
        let mut restored = 0;
        for chunk in reservations.chunks(CHUNK) {
            let mut invocation = RESTORE.prepare_invoke();
            invocation
                .key(keys.reserved())
                .key(keys.expiry())
                .key(keys.outbox())
                .key(keys.parked());
            for (order_id, event, pay_by_ms) in chunk {
                invocation
                    .key(keys.settled(order_id))
                    .arg(order_id)
                    .arg(event)
                    .arg(pay_by_ms);
            }
            let put_back: Vec<String> = invocation
                .invoke_async(&mut self.core.redis().get().await?)
                .await?;
            let mut index = SlotPipeline::new();
            for (order_id, _, pay_by_ms) in chunk.iter().filter(|r| put_back.contains(&r.0)) {
                let key = order_item(self.core.keyspace(), order_id);
                let ttl = index_ttl_secs(*pay_by_ms, now_ms);
                index.add_ignored(&key, redis::Cmd::set_ex(&key, item_id, ttl));
            }
            index.run(&self.core.redis().get().await?).await?;
            restored += put_back.len();
        }
        if restored > 0 {
            self.core.redis().replicated(&keys.reserved()).await?;
        }
        Ok(restored)
    }

    /// The placement events of an item's open reservations (order id → event JSON).
    pub async fn open(&self, item_id: u64) -> Result<Vec<(String, String)>, Error> {
        let mut conn = self.core.redis().get().await?;
        Ok(conn.hgetall(self.core.keys(item_id).reserved()).await?)
    }
}

/// How long the order → item index of a reservation lives: until well after its deadline.
fn index_ttl_secs(pay_by_ms: i64, now_ms: i64) -> u64 {
    u64::try_from((pay_by_ms - now_ms).max(0) / 1000).unwrap_or(0) + SETTLED_TTL_SECS
}

impl Ended {
    /// Whether `again`, the answer of the same step applied once more, is this step
    /// found done: the step happened once, and this answer stands.
    fn is_repeated_by(&self, again: &Ended, order_id: &str) -> bool {
        match (self, again) {
            (Ended::Paid { .. }, Ended::DuplicatePayment { order_id: paid }) => paid == order_id,
            (Ended::Cancelled { .. }, Ended::NotReserved { settled }) => {
                settled.as_deref() == Some("cancelled")
            }
            (Ended::Expired { .. }, Ended::NotReserved { settled }) => {
                settled.as_deref() == Some("expired")
            }
            _ => false,
        }
    }
}

fn parse_reply(reply: &[String]) -> Option<Ended> {
    let event = || reply.get(1).cloned();
    Some(match (reply.first()?.as_str(), reply.len()) {
        ("PAID", 2) => Ended::Paid { event: event()? },
        ("CANCELLED", 2) => Ended::Cancelled { event: event()? },
        ("EXPIRED", 2) => Ended::Expired { event: event()? },
        ("DUPLICATE_PAYMENT", 2) => Ended::DuplicatePayment { order_id: event()? },
        ("NOT_RESERVED", 2) => Ended::NotReserved {
            settled: event().filter(|s| !s.is_empty()),
        },
        ("NOT_FOUND", 1) => Ended::NotTheBuyer,
        ("WRONG_AMOUNT", 2) => Ended::WrongAmount {
            due: reply[1].parse().ok()?,
        },
        ("NOT_DUE", 1) => Ended::NotDue,
        ("TOO_MANY_CANCELS", 2) => Ended::TooManyCancels {
            retry_after_secs: reply[1].parse().ok()?,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::{EventType, StockEvent};

    /// The end events the lifecycle script writes parse as the events crate's own, with
    /// every field of the placement kept.
    #[tokio::test]
    async fn an_end_event_built_in_redis_is_the_events_crates_event() {
        let redis = testkit::TestRedis::new();
        let mut conn = redis.connection().await;
        let placed = StockEvent {
            version: events::EVENT_VERSION,
            order_id: "0192f1c2-7a4b-7cde-8f00-123456789abc".into(),
            user_id: 9_007_199_254,
            item_id: 42,
            quantity: 2,
            purchased_at_ms: 1_733_400_000_123,
            request_id: Some("r\"q".into()),
            pay_by_ms: Some(1_733_400_120_123),
            amount: Some(6_000),
            ..StockEvent::default()
        };
        let script = Script::new(
            &[
                events::ENDED_EVENT_LUA,
                "return ended_event(ARGV[1], ARGV[2], ARGV[3], ARGV[4])",
            ]
            .concat(),
        );
        for (status, kind, payment_id) in [
            ("paid", EventType::Paid, Some("pi_\"1")),
            ("cancelled", EventType::Cancelled, None),
            ("expired", EventType::Expired, None),
        ] {
            let mut call = script.prepare_invoke();
            call.arg(placed.to_json()).arg(status).arg("1733400060456");
            if let Some(id) = payment_id {
                call.arg(id);
            }
            let json: String = call.invoke_async(&mut conn).await.unwrap();
            let ended = StockEvent::parse(json.as_bytes()).unwrap();
            assert_eq!(
                ended,
                StockEvent {
                    kind,
                    at_ms: Some(1_733_400_060_456),
                    payment_id: payment_id.map(str::to_owned),
                    ..placed.clone()
                },
                "{json}"
            );
        }
    }

    /// The statuses the script ends a reservation in (`status = '...'`): they become the
    /// events' types, MySQL's statuses and the settled markers, so each must be one of
    /// `db`'s.
    #[test]
    fn the_scripts_statuses_are_order_statuses() {
        let script = include_str!("scripts/lifecycle.lua");
        let written: Vec<&str> = script
            .split("status = '")
            .skip(1)
            .filter_map(|rest| rest.split('\'').next())
            .collect();
        assert_eq!(written.len(), 4, "{written:?}");
        for status in written {
            assert!(
                db::orders::OrderStatus::parse(status).is_some(),
                "lifecycle.lua writes {status}, which db::orders::OrderStatus does not know"
            );
        }
        assert!(script.contains("settled = 'paid:' .."));
        assert_eq!(
            db::orders::OrderStatus::parse("paid:pay_1"),
            Some(db::orders::OrderStatus::Paid)
        );
    }

    fn reply(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn every_reply_is_understood_and_nothing_else_is() {
        assert_eq!(
            parse_reply(&reply(&["NOT_RESERVED", ""])),
            Some(Ended::NotReserved { settled: None })
        );
        assert_eq!(
            parse_reply(&reply(&["NOT_RESERVED", "expired"])),
            Some(Ended::NotReserved {
                settled: Some("expired".into())
            })
        );
        assert_eq!(
            parse_reply(&reply(&["WRONG_AMOUNT", "3000"])),
            Some(Ended::WrongAmount { due: 3000 })
        );
        assert_eq!(
            parse_reply(&reply(&["TOO_MANY_CANCELS", "60"])),
            Some(Ended::TooManyCancels {
                retry_after_secs: 60
            })
        );
        for unexpected in [
            reply(&[]),
            reply(&["PAID"]),
            reply(&["WRONG_AMOUNT", "x"]),
            reply(&["NOPE", "1"]),
        ] {
            assert_eq!(parse_reply(&unexpected), None, "{unexpected:?}");
        }
    }
}
