//! Attempt limits kept in Redis: login throttling and the refresh limit.
//!
//! An attempt is counted BEFORE it is decided, by a Lua script that checks its counters
//! and, only when none is at its limit, increments them all; so racing requests cannot
//! all slip past a check before any of them is counted. Every counter expires one window
//! after its first count (`EXPIRE NX`), so no key outlives its window.
//!
//! Logins are counted three ways (the policy is in README's Security section): per
//! (email, address) pair, per address, and per email across all addresses with a much
//! higher ceiling. A guesser at one address locks only that pair, and the owner still
//! logs in from elsewhere; shutting an email out everywhere takes the per-email ceiling
//! of attempts. A successful login gives its attempt back and clears its pair, so owners
//! never use up their own attempts.
//!
//! Key layout: one script may only touch keys of one Redis Cluster slot. The pair and the
//! email counters share the hash tag `{<email>}` (`login:{e}:pair:<address>`,
//! `login:{e}:email`); the address counter has its own (`login:addr:{<address>}`). A login
//! therefore runs the script twice: for the address first (a flood refused at its own
//! address touches nobody else's counters), then for the email; when the email's call
//! refuses, the address's count is given back. Each counter is still checked and counted
//! atomically, so none ever admits more than its limit; between the two calls an address
//! may look one attempt fuller than it is, which can refuse, never admit.

use common::ApiError;
use common::client::ClientAddress;
use common::redis::{Keyspace, RedisPool};
use redis::Script;
use std::sync::LazyLock;

/// KEYS: the counters. ARGV[1]: the window in seconds; ARGV[1 + i]: the limit of KEYS[i].
/// Returns 0 when the attempt was counted on every counter, otherwise the seconds until
/// the last of the counters at their limit expires (and counts nothing).
const COUNT_LUA: &str = r#"
local wait = 0
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i + 1]) then
    local ttl = redis.call('TTL', key)
    if ttl < 0 then
      redis.call('EXPIRE', key, ARGV[1])
      ttl = tonumber(ARGV[1])
    end
    wait = math.max(wait, ttl, 1)
  end
end
if wait > 0 then return wait end
for _, key in ipairs(KEYS) do
  redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[1], 'NX')
end
return 0
"#;

/// KEYS: the counters. ARGV[1]: how many of the first KEYS to delete; the others are
/// decremented, never below zero (one may have expired since it was counted).
const GIVE_BACK_LUA: &str = r#"
local cleared = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  if i <= cleared then
    redis.call('DEL', key)
  elseif tonumber(redis.call('GET', key) or '0') > 0 then
    redis.call('DECR', key)
  end
end
return 0
"#;

static COUNT: LazyLock<Script> = LazyLock::new(|| Script::new(COUNT_LUA));
static GIVE_BACK: LazyLock<Script> = LazyLock::new(|| Script::new(GIVE_BACK_LUA));

/// A counter and the count at which it refuses.
struct Counter {
    key: String,
    limit: u64,
}

/// Runs the counting scripts; shared by the login and the refresh limits.
#[derive(Clone)]
pub struct AttemptCounters {
    pub redis: RedisPool,
    pub keys: Keyspace,
}

impl AttemptCounters {
    /// Counts one attempt on every counter (all in one slot), or on none when any is at
    /// its limit: then 429 with the seconds until the last of those expires.
    async fn count(&self, counters: &[Counter], window_secs: u64) -> Result<(), ApiError> {
        let mut invocation = COUNT.prepare_invoke();
        invocation.arg(window_secs);
        for counter in counters {
            invocation.key(&counter.key).arg(counter.limit);
        }
        let mut conn = self.redis.get().await?;
        let wait: u64 = invocation.invoke_async(&mut conn).await?;
        if wait == 0 {
            Ok(())
        } else {
            Err(ApiError::TooManyRequests {
                retry_after_secs: wait,
            })
        }
    }

    /// Gives a counted attempt back: `cleared` counters are deleted, `returned` ones
    /// decremented (all in one slot).
    async fn give_back(&self, cleared: &[&str], returned: &[&str]) -> Result<(), ApiError> {
        let mut invocation = GIVE_BACK.prepare_invoke();
        invocation.arg(cleared.len());
        for key in cleared.iter().chain(returned) {
            invocation.key(*key);
        }
        let mut conn = self.redis.get().await?;
        invocation.invoke_async::<()>(&mut conn).await?;
        Ok(())
    }
}

#[derive(Clone)]
pub struct LoginThrottle {
    pub counters: AttemptCounters,
    /// Per (email, address) pair: `LOGIN_MAX_ATTEMPTS`.
    pub max_per_pair: u64,
    pub max_per_address: u64,
    pub max_per_email: u64,
    pub decay_secs: u64,
}

/// The keys of one login's counters.
struct LoginKeys {
    pair: String,
    email: String,
    address: String,
}

impl LoginKeys {
    fn new(keys: &Keyspace, email: &str, address: &ClientAddress) -> Self {
        let address = address.limit_key();
        LoginKeys {
            pair: keys.key(format_args!("login:{{{email}}}:pair:{address}")),
            email: keys.key(format_args!("login:{{{email}}}:email")),
            address: keys.key(format_args!("login:addr:{{{address}}}")),
        }
    }
}

impl LoginThrottle {
    /// Counts a login attempt before its password is checked; 429 when any of its
    /// counters is already at its limit.
    pub async fn begin(&self, email: &str, address: &ClientAddress) -> Result<(), ApiError> {
        let keys = LoginKeys::new(&self.counters.keys, email, address);
        let by_address = [Counter {
            key: keys.address.clone(),
            limit: self.max_per_address,
        }];
        self.counters.count(&by_address, self.decay_secs).await?;
        let by_email = [
            Counter {
                key: keys.pair,
                limit: self.max_per_pair,
            },
            Counter {
                key: keys.email,
                limit: self.max_per_email,
            },
        ];
        if let Err(refused) = self.counters.count(&by_email, self.decay_secs).await {
            self.counters.give_back(&[], &[&keys.address]).await?;
            return Err(refused);
        }
        Ok(())
    }

    /// A successful login gives its attempt back and clears its pair's count. The
    /// address's and the email's earlier failures stand: one user logging in must not
    /// reset a guesser's count at the same address or for the same email elsewhere.
    pub async fn succeeded(&self, email: &str, address: &ClientAddress) -> Result<(), ApiError> {
        let keys = LoginKeys::new(&self.counters.keys, email, address);
        self.counters
            .give_back(&[&keys.pair], &[&keys.email])
            .await?;
        self.counters.give_back(&[], &[&keys.address]).await
    }
}

/// Refreshes per user per window. Each refresh revokes a token (a Redis key living as
/// long as the token could still be refreshed), so this also bounds those keys.
#[derive(Clone)]
pub struct RefreshLimit {
    pub counters: AttemptCounters,
    pub max_per_user: u64,
    pub window_secs: u64,
}

impl RefreshLimit {
    /// Counts a refresh by a verified, unrevoked token; 429 past the limit.
    pub async fn count(&self, user_id: u64) -> Result<(), ApiError> {
        let counter = Counter {
            key: self
                .counters
                .keys
                .key(format_args!("refresh:{{{user_id}}}")),
            limit: self.max_per_user,
        };
        self.counters.count(&[counter], self.window_secs).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The part of a key Redis Cluster hashes: the first `{...}` if not empty.
    fn hash_tag(key: &str) -> &str {
        key.find('{')
            .and_then(|open| {
                let close = key[open + 1..].find('}')? + open + 1;
                (close > open + 1).then(|| &key[open + 1..close])
            })
            .unwrap_or(key)
    }

    #[test]
    fn each_script_call_touches_keys_of_one_slot() {
        let prefix = Keyspace::new("p:");
        let address = ClientAddress::resolve(Some("2001:db8::1"), None);
        for email in ["a@example.com", "we{ird}@example.com", "x}{y@example.com"] {
            let keys = LoginKeys::new(&prefix, email, &address);
            assert_eq!(hash_tag(&keys.pair), hash_tag(&keys.email), "{email}");
            assert_eq!(hash_tag(&keys.address), "2001:db8::/64");
        }
        let keys = LoginKeys::new(&prefix, "a@example.com", &address);
        assert_eq!(keys.pair, "p:login:{a@example.com}:pair:2001:db8::/64");
        assert_eq!(keys.email, "p:login:{a@example.com}:email");
    }
}
