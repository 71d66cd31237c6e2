//! The default strategy: one Lua script does every check and every write atomically in
//! one round trip (EVALSHA; redis-rs reloads the script on NOSCRIPT). No lock, no retry,
//! no WATCH conflict: Redis runs scripts one at a time.

use super::{Attempt, Outcome, parse_idempotency_record};
use common::redis::{Keyspace, RedisPool};
use redis::Script;
use std::sync::LazyLock;

/// KEYS: stock, meta, bought, outbox, outbox times, idempotency key.
/// ARGV: user id, quantity, order id, event JSON, now (ms), idempotency TTL (0 = none).
pub const PURCHASE_LUA: &str = r#"
local ttl = tonumber(ARGV[6])
if ttl > 0 then
  local prior = redis.call('GET', KEYS[6])
  if prior then return {'DUPLICATE', prior} end
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
  redis.call('SET', KEYS[6], ARGV[3] .. ':' .. ARGV[2], 'EX', ttl)
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

    pub async fn attempt(
        &self,
        attempt: &Attempt,
        now_ms: i64,
    ) -> Result<Outcome, inventory::Error> {
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
            .arg(event.user_id)
            .arg(event.quantity)
            .arg(&event.order_id)
            .arg(event.to_json())
            .arg(now_ms)
            .arg(attempt.idempotency_ttl())
            .invoke_async(&mut conn)
            .await?;
        Ok(parse_reply(&reply))
    }
}

fn number(reply: &[String], index: usize) -> u64 {
    reply.get(index).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Turns the script's reply into an outcome.
pub fn parse_reply(reply: &[String]) -> Outcome {
    match reply.first().map(String::as_str) {
        Some("OK") => Outcome::Placed {
            remaining: number(reply, 1),
        },
        Some("DUPLICATE") => match reply.get(1).and_then(|r| parse_idempotency_record(r)) {
            Some((order_id, quantity)) => Outcome::Duplicate { order_id, quantity },
            None => Outcome::Busy,
        },
        Some("INSUFFICIENT_STOCK") => Outcome::InsufficientStock {
            current_stock: number(reply, 1),
        },
        Some("LIMIT_EXCEEDED") => Outcome::LimitExceeded {
            limit: number(reply, 1),
            already_bought: number(reply, 2),
        },
        _ => Outcome::NotOnSale,
    }
}
