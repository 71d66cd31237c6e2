//! The default strategy: one Lua script does every check and every write atomically in
//! one round trip (EVALSHA; redis-rs reloads the script on NOSCRIPT). No lock, no retry,
//! no WATCH conflict: Redis runs scripts one at a time.

use super::{Attempt, AttemptError, IdempotencyRecord, Outcome};
use common::redis::{Keyspace, RedisPool};
use redis::Script;
use std::sync::LazyLock;

/// KEYS: stock, meta, bought, outbox, outbox times, idempotency key, void marker.
/// ARGV: user id, quantity, order id, event JSON, now (ms), idempotency TTL (0 = none).
/// An idempotency key remembers `order_id:quantity:purchased_at_ms`; reused for another
/// quantity it is refused.
pub const PURCHASE_LUA: &str = r#"
if redis.call('EXISTS', KEYS[7]) == 1 then return {'VOID'} end
local ttl = tonumber(ARGV[6])
if ttl > 0 then
  local prior = redis.call('GET', KEYS[6])
  if prior then
    if string.match(prior, '^[^:]*:(%d+)') ~= ARGV[2] then return {'KEY_REUSED', prior} end
    return {'DUPLICATE', prior}
  end
end
if redis.call('HGET', KEYS[2], 'on_sale') ~= '1' then return {'NOT_ON_SALE'} end
local stock = tonumber(redis.call('GET', KEYS[1]))
if not stock then return {'NOT_ON_SALE'} end
local quantity = tonumber(ARGV[2])
if quantity > stock then return {'INSUFFICIENT_STOCK', tostring(stock)} end
local limit = tonumber(redis.call('HGET', KEYS[2], 'limit') or '0')
if limit > 0 then
  local bought = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
  if bought + quantity > limit then
    return {'LIMIT_EXCEEDED', tostring(limit), tostring(bought)}
  end
end
redis.call('DECRBY', KEYS[1], quantity)
redis.call('HINCRBY', KEYS[3], ARGV[1], quantity)
redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[3])
if ttl > 0 then
  redis.call('SET', KEYS[6], ARGV[3] .. ':' .. ARGV[2] .. ':' .. ARGV[5], 'EX', ttl)
end
return {'OK', tostring(stock - quantity)}
"#;

static PURCHASE: LazyLock<Script> = LazyLock::new(|| Script::new(PURCHASE_LUA));

#[derive(Clone)]
pub struct LuaStrategy {
    pub redis: RedisPool,
    pub keys: Keyspace,
}

impl LuaStrategy {
    /// Loads the script so the first purchase is already an EVALSHA.
    pub async fn preload(&self) -> Result<(), inventory::Error> {
        let mut conn = self.redis.get().await?;
        PURCHASE.prepare_invoke().load_async(&mut conn).await?;
        Ok(())
    }

    pub async fn attempt(&self, attempt: &Attempt, now_ms: i64) -> Result<Outcome, AttemptError> {
        let keys = attempt.keys(&self.keys);
        let event = &attempt.event;
        let mut conn = self.redis.get().await?;
        let reply: Vec<String> = PURCHASE
            .key(keys.stock())
            .key(keys.meta())
            .key(keys.bought())
            .key(keys.outbox())
            .key(keys.outbox_times())
            .key(attempt.idempotency_redis_key(&keys))
            .key(attempt.void_key(&keys))
            .arg(event.user_id)
            .arg(event.quantity)
            .arg(&event.order_id)
            .arg(event.to_json())
            .arg(now_ms)
            .arg(attempt.idempotency_ttl())
            .invoke_async(&mut conn)
            .await
            .map_err(AttemptError::of_write)?;
        parse_reply(&reply).ok_or(AttemptError::UnexpectedReply(reply))
    }
}

fn number(reply: &[String], index: usize) -> Option<u64> {
    reply.get(index)?.parse().ok()
}

fn record(reply: &[String]) -> Option<IdempotencyRecord> {
    IdempotencyRecord::parse(reply.get(1)?)
}

/// Turns the script's reply into an outcome; `None` for a reply it never gives.
pub fn parse_reply(reply: &[String]) -> Option<Outcome> {
    let expected_len = match reply.first()?.as_str() {
        "OK" => 2,
        "DUPLICATE" | "KEY_REUSED" => 2,
        "VOID" | "NOT_ON_SALE" => 1,
        "INSUFFICIENT_STOCK" => 2,
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
        "DUPLICATE" => Outcome::Duplicate(record(reply)?),
        "KEY_REUSED" => Outcome::KeyReused(record(reply)?),
        "VOID" => Outcome::Void,
        "NOT_ON_SALE" => Outcome::NotOnSale,
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
        ] {
            assert_eq!(parse_reply(&unexpected), None, "{unexpected:?}");
        }
    }
}
