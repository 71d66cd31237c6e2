//! Tokens whose signature has already been checked, so the next request carrying the
//! same token skips the check.
//!
//! An Ed25519 verification costs tens of microseconds, about a quarter of a purchase's
//! CPU, and a client sends the same token with every request until it expires. Entries
//! are keyed by the token's full text, so a token that differs in any byte (a tampered
//! signature, other claims) misses and is verified from scratch; only tokens that passed
//! verification are stored, and an entry is never used past the token's `exp`.
//! Revocation is not cached here: callers check it on every request (see
//! `crate::revocation`).

use super::Claims;
use std::collections::HashMap;
use std::sync::Mutex;

pub struct VerifiedTokens {
    capacity: usize,
    entries: Mutex<HashMap<Box<str>, Claims>>,
}

impl VerifiedTokens {
    /// A cache of at most `capacity` tokens; 0 turns it off.
    pub fn new(capacity: usize) -> Self {
        VerifiedTokens {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The claims of `token` if it was verified before and is still valid at `now`
    /// (allowing `leeway_secs` past `exp`, as the verifier does).
    pub fn get(&self, token: &str, now: u64, leeway_secs: u64) -> Option<Claims> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(token)
            .filter(|claims| claims.exp.saturating_add(leeway_secs) >= now)
            .cloned()
    }

    /// Remembers a token that has just passed verification. When full, expired entries
    /// go first; if none has expired, everything goes, which keeps memory bounded at
    /// the price of re-verifying the tokens in use once.
    pub fn insert(&self, token: &str, claims: &Claims, now: u64, leeway_secs: u64) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity {
            entries.retain(|_, c| c.exp.saturating_add(leeway_secs) >= now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(token.into(), claims.clone());
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_token_is_returned_until_it_expires() {
        let cache = VerifiedTokens::new(10);
        cache.insert("t", &Claims::of_user_expiring_at(100), 50, 5);
        assert_eq!(
            cache.get("t", 100, 5),
            Some(Claims::of_user_expiring_at(100))
        );
        assert_eq!(
            cache.get("t", 105, 5),
            Some(Claims::of_user_expiring_at(100))
        );
        assert_eq!(cache.get("t", 106, 5), None);
    }

    #[test]
    fn only_the_exact_token_text_hits() {
        let cache = VerifiedTokens::new(10);
        cache.insert(
            "header.payload.signature",
            &Claims::of_user_expiring_at(100),
            50,
            0,
        );
        assert_eq!(cache.get("header.payload.signaturf", 60, 0), None);
        assert_eq!(cache.get("header.payload.signatur", 60, 0), None);
    }

    #[test]
    fn it_never_grows_past_its_capacity() {
        let cache = VerifiedTokens::new(3);
        for i in 0..10 {
            cache.insert(&format!("t{i}"), &Claims::of_user_expiring_at(100), 50, 0);
            assert!(cache.len() <= 3);
        }
        assert!(cache.get("t9", 60, 0).is_some());
    }

    #[test]
    fn expired_entries_make_room_first() {
        let cache = VerifiedTokens::new(2);
        cache.insert("old", &Claims::of_user_expiring_at(10), 0, 0);
        cache.insert("live", &Claims::of_user_expiring_at(100), 0, 0);
        cache.insert("new", &Claims::of_user_expiring_at(100), 50, 0);
        assert!(cache.get("live", 50, 0).is_some());
        assert!(cache.get("new", 50, 0).is_some());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn capacity_zero_remembers_nothing() {
        let cache = VerifiedTokens::new(0);
        cache.insert("t", &Claims::of_user_expiring_at(100), 50, 0);
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.get("t", 60, 0), None);
    }
}
