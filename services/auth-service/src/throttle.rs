//! The policies of auth-service's attempt limits: login throttling and the refresh
//! limit. The counting itself ([`crate::attempts`]) counts an attempt before it is
//! decided, atomically over all its counters, so racing requests cannot all slip past
//! a check; every counter expires one window after its first count.
//!
//! Logins are counted three ways (the policy is in docs/security.md, Login limits): per
//! (email, address) pair, per address, and per email across all addresses with a much
//! higher ceiling. "Email" means the account it names, not its spelling: MySQL finds
//! `admin@example.com` for `ÁDMIN@éxample.com` too, so the counters are keyed by the
//! email's [`LoginIdentity`], which every spelling of it shares. A guesser at one address locks only that pair, and the owner still
//! logs in from elsewhere; shutting an email out everywhere takes the per-email ceiling
//! of attempts. A successful login gives its attempt back and clears its pair, so owners
//! never use up their own attempts.
//!
//! Key layout: one script may only touch keys of one Redis Cluster slot. The pair and the
//! email counters share the hash tag `{<identity>}` (`login:{i}:pair:<address>`,
//! `login:{i}:email`); the address counter has its own (`login:addr:{<address>}`). A login
//! therefore runs the script twice: for the address first (a flood refused at its own
//! address touches nobody else's counters, nor MySQL), then for the identity; when the
//! identity's call refuses, the address's count is given back. Each counter is still checked and counted
//! atomically, so none ever admits more than its limit; between the two calls an address
//! may look one attempt fuller than it is, which can refuse, never admit.

use crate::accounts::AccountError;
use crate::attempts::{AttemptCounters, Counter};
use common::client::ClientAddress;
use common::redis::Keyspace;
use sha2::{Digest, Sha256};

/// 429 when an attempt was refused, with the seconds to wait.
fn refused(wait: Option<u64>) -> Result<(), AccountError> {
    match wait {
        None => Ok(()),
        Some(retry_after_secs) => Err(AccountError::TooManyRequests { retry_after_secs }),
    }
}

#[derive(Clone)]
pub struct LoginThrottle {
    pub counters: AttemptCounters,
    pub keys: Keyspace,
    /// Per (email, address) pair: `LOGIN_MAX_ATTEMPTS`.
    pub max_per_pair: u64,
    pub max_per_address: u64,
    pub max_per_email: u64,
    pub decay_secs: u64,
}

/// Whom a login is for, the same for every spelling of the email: a digest (128 bits,
/// hex) of the email's sort key under the collation the `users` look-up compares with
/// ([`crate::users::email_sort_key`]). Emails never appear in the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginIdentity(String);

impl LoginIdentity {
    pub fn from_sort_key(sort_key: &str) -> Self {
        let digest = Sha256::digest(sort_key.as_bytes());
        LoginIdentity(digest[..16].iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The keys of one login's counters.
struct LoginKeys {
    pair: String,
    email: String,
    address: String,
}

impl LoginKeys {
    fn new(keys: &Keyspace, identity: &LoginIdentity, address: &ClientAddress) -> Self {
        let (identity, address) = (identity.as_str(), address.limit_key());
        LoginKeys {
            pair: keys.key(format_args!("login:{{{identity}}}:pair:{address}")),
            email: keys.key(format_args!("login:{{{identity}}}:email")),
            address: keys.key(format_args!("login:addr:{{{address}}}")),
        }
    }

    fn address(keys: &Keyspace, address: &ClientAddress) -> String {
        let address = address.limit_key();
        keys.key(format_args!("login:addr:{{{address}}}"))
    }
}

impl LoginThrottle {
    /// Counts a login attempt at its address, first thing; 429 when the address is at
    /// its limit. [`begin`](Self::begin) must follow once the identity is known.
    pub async fn begin_at(&self, address: &ClientAddress) -> Result<(), AccountError> {
        let by_address = [Counter {
            key: LoginKeys::address(&self.keys, address),
            limit: self.max_per_address,
        }];
        refused(self.counters.count(&by_address, self.decay_secs).await?)
    }

    /// Counts the attempt for its identity before its password is checked; 429 when the
    /// pair or the email is already at its limit (giving the address's count back).
    pub async fn begin(
        &self,
        identity: &LoginIdentity,
        address: &ClientAddress,
    ) -> Result<(), AccountError> {
        let keys = LoginKeys::new(&self.keys, identity, address);
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
        let wait = self.counters.count(&by_email, self.decay_secs).await?;
        if wait.is_some() {
            self.counters.give_back(&[], &[&keys.address]).await?;
        }
        refused(wait)
    }

    /// A successful login gives its attempt back and clears its pair's count. The
    /// address's and the email's earlier failures stand: one user logging in must not
    /// reset a guesser's count at the same address or for the same email elsewhere.
    pub async fn succeeded(
        &self,
        identity: &LoginIdentity,
        address: &ClientAddress,
    ) -> Result<(), redis::RedisError> {
        let keys = LoginKeys::new(&self.keys, identity, address);
        self.counters
            .give_back(&[&keys.pair], &[&keys.email])
            .await?;
        self.counters.give_back(&[], &[&keys.address]).await
    }
}

/// Registrations per client address per window: each costs a bcrypt hash and a row, so
/// one address cannot make the service hash (or store) without bound. Every attempt
/// counts, a successful one too.
#[derive(Clone)]
pub struct RegisterLimit {
    pub counters: AttemptCounters,
    pub keys: Keyspace,
    pub max_per_address: u64,
    pub window_secs: u64,
}

impl RegisterLimit {
    /// Counts a registration before anything else is done for it; 429 past the limit.
    pub async fn count(&self, address: &ClientAddress) -> Result<(), AccountError> {
        let address = address.limit_key();
        let counter = Counter {
            key: self.keys.key(format_args!("register:addr:{{{address}}}")),
            limit: self.max_per_address,
        };
        refused(self.counters.count(&[counter], self.window_secs).await?)
    }
}

/// Refreshes per user per window. Each refresh revokes a token (a Redis key living as
/// long as the token could still be refreshed), so this also bounds those keys.
#[derive(Clone)]
pub struct RefreshLimit {
    pub counters: AttemptCounters,
    pub keys: Keyspace,
    pub max_per_user: u64,
    pub window_secs: u64,
}

impl RefreshLimit {
    /// Counts a refresh by a verified, unrevoked token; 429 past the limit.
    pub async fn count(&self, user_id: u64) -> Result<(), AccountError> {
        let counter = Counter {
            key: self.keys.key(format_args!("refresh:{{{user_id}}}")),
            limit: self.max_per_user,
        };
        refused(self.counters.count(&[counter], self.window_secs).await?)
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
        for sort_key in ["0E33", "7B7D", "7D7B"] {
            let identity = LoginIdentity::from_sort_key(sort_key);
            let keys = LoginKeys::new(&prefix, &identity, &address);
            assert_eq!(hash_tag(&keys.pair), identity.as_str(), "{sort_key}");
            assert_eq!(hash_tag(&keys.email), identity.as_str(), "{sort_key}");
            assert_eq!(hash_tag(&keys.address), "2001:db8::/64");
            assert_eq!(keys.address, LoginKeys::address(&prefix, &address));
        }
        let identity = LoginIdentity::from_sort_key("0E33");
        assert_eq!(identity.as_str().len(), 32);
        let keys = LoginKeys::new(&prefix, &identity, &address);
        let tag = identity.as_str();
        assert_eq!(keys.pair, format!("p:login:{{{tag}}}:pair:2001:db8::/64"));
        assert_eq!(keys.email, format!("p:login:{{{tag}}}:email"));
    }
}
