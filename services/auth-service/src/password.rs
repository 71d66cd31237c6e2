//! bcrypt hashing, always on the blocking pool: a cost-12 hash takes a quarter of a
//! second of CPU and would stall every request sharing the async worker. At most
//! `HASH_CONCURRENCY` hashes run at once (one per core by default), so a flood of
//! registrations or logins cannot take every core from the purchase path; a request
//! that finds no slot free within `HASH_QUEUE_WAIT_MS` is refused ([`HashError::Busy`],
//! 503 with `Retry-After`). The slot is held by the hashing itself, so even a request
//! whose client left keeps its slot until its hash is done.
//!
//! What bcrypt is given for a password ([`bcrypt_input`]):
//! - its Unicode NFC form: "é" typed as one character or as "e" and a combining accent
//!   is one password, whichever form a keyboard or an operating system sends;
//! - when that is over the 72 bytes bcrypt reads (possible once passwords are counted
//!   in characters: 72 of them may take 288 bytes), the byte 0xFF followed by the hex
//!   SHA-256 of all of it, so no part of any password is ignored. 0xFF never occurs in
//!   UTF-8, so no password (a JSON string) can be that input: whoever learns the SHA-256
//!   of a long password cannot log in with it.
//!
//! Hashes stored before took the password as sent and, over 72 bytes, its bare hex
//! SHA-256 ([`legacy_input`]). When the two inputs differ (a long or a non-NFC
//! password) and the current one does not match, the old one is tried too, and a match
//! is [`Verdict::Outdated`]: the caller stores a fresh hash, which closes the digest
//! for that account. Both are tried whatever the account (the decoy included), so the
//! time taken depends on the password sent, never on whether the email is known.

use anyhow::Context;
use icu_normalizer::ComposingNormalizerBorrowed;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The most bytes bcrypt reads.
const BCRYPT_MAX_BYTES: usize = 72;

/// Opens every digest input: a byte no UTF-8 text contains.
const DIGEST_TAG: u8 = 0xFF;

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// What bcrypt is given for `password`: its NFC form, or for one longer than bcrypt
/// reads, [`DIGEST_TAG`] and the hex SHA-256 of that form.
fn bcrypt_input(password: &str) -> Vec<u8> {
    let password = ComposingNormalizerBorrowed::new_nfc().normalize(password);
    if password.len() <= BCRYPT_MAX_BYTES {
        return password.as_bytes().to_vec();
    }
    let mut input = vec![DIGEST_TAG];
    input.extend_from_slice(sha256_hex(password.as_bytes()).as_bytes());
    input
}

/// What bcrypt was given before: the password as sent, or the hex SHA-256 of a longer
/// one. Only ever verified against, never hashed.
fn legacy_input(password: &str) -> Vec<u8> {
    if password.len() <= BCRYPT_MAX_BYTES {
        return password.as_bytes().to_vec();
    }
    sha256_hex(password.as_bytes()).into_bytes()
}

/// Whether a password matches a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    /// It matches a hash made the old way: store a fresh one.
    Outdated,
    Invalid,
}

impl Verdict {
    pub fn is_valid(self) -> bool {
        self != Verdict::Invalid
    }
}

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot stayed taken for the whole wait: retry shortly.
    #[error("no password hashing slot came free within {0:?}")]
    Busy(Duration),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

#[derive(Clone)]
pub struct PasswordHasher {
    cost: u32,
    /// A hash of a random password at the same cost, verified against when the email is
    /// unknown so that a miss takes as long as a wrong password.
    decoy_hash: String,
    /// One permit per hash allowed to run at once.
    slots: Arc<Semaphore>,
    /// How long a request waits for a slot.
    wait: Duration,
}

impl PasswordHasher {
    /// One slot per core, waited for up to a second; see [`bounded`](Self::bounded).
    pub async fn new(cost: u32) -> anyhow::Result<Self> {
        let decoy = uuid::Uuid::new_v4().to_string();
        let decoy_hash = tokio::task::spawn_blocking(move || bcrypt::hash(decoy, cost))
            .await
            .context("password hashing task failed")??;
        Ok(PasswordHasher {
            cost,
            decoy_hash,
            slots: Arc::new(Semaphore::new(cores())),
            wait: Duration::from_secs(1),
        })
    }

    /// At most `concurrency` hashes at once (0: one per core), each request waiting up
    /// to `wait` for a slot.
    pub fn bounded(self, concurrency: usize, wait: Duration) -> Self {
        let concurrency = if concurrency == 0 {
            cores()
        } else {
            concurrency
        };
        PasswordHasher {
            slots: Arc::new(Semaphore::new(concurrency)),
            wait,
            ..self
        }
    }

    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let (password, cost) = (bcrypt_input(password), self.cost);
        self.run(move || bcrypt::hash(password, cost)).await
    }

    /// Checks a password against a stored hash, or against the decoy when there is none
    /// (always [`Verdict::Invalid`] then).
    pub async fn verify(
        &self,
        password: &str,
        stored_hash: Option<&str>,
    ) -> Result<Verdict, HashError> {
        let known = stored_hash.is_some();
        let hash = stored_hash.unwrap_or(&self.decoy_hash).to_owned();
        let current = bcrypt_input(password);
        let legacy = Some(legacy_input(password)).filter(|legacy| *legacy != current);
        let verdict = self
            .run(move || {
                if bcrypt::verify(&current, &hash)? {
                    return Ok(Verdict::Valid);
                }
                match legacy {
                    Some(legacy) if bcrypt::verify(&legacy, &hash)? => Ok(Verdict::Outdated),
                    _ => Ok(Verdict::Invalid),
                }
            })
            .await?;
        Ok(if known { verdict } else { Verdict::Invalid })
    }

    /// Runs `work` on the blocking pool once a slot is free, holding the slot until the
    /// work is done.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> bcrypt::BcryptResult<T> + Send + 'static,
    ) -> Result<T, HashError> {
        let slot = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| HashError::Busy(self.wait))?
            .context("the hashing slots are closed")?;
        let result = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work()
        })
        .await
        .context("password hashing task failed")?;
        Ok(result.context("bcrypt failed")?)
    }
}

/// The cores this process may use.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_match() {
        let hasher = PasswordHasher::new(4).await.unwrap();
        let hash = hasher.hash("correct horse").await.unwrap();
        assert!(hash.starts_with("$2b$04$"));
        let verify = async |password, hash| hasher.verify(password, hash).await.unwrap();
        assert_eq!(verify("correct horse", Some(&hash)).await, Verdict::Valid);
        assert_eq!(verify("wrong horse", Some(&hash)).await, Verdict::Invalid);
        assert_eq!(verify("correct horse", None).await, Verdict::Invalid);
    }

    #[tokio::test]
    async fn every_character_of_a_long_password_counts() {
        let hasher = PasswordHasher::new(4).await.unwrap();
        // 30 three-byte characters: 90 bytes, past bcrypt's 72.
        let password = "€".repeat(30);
        let hash = hasher.hash(&password).await.unwrap();
        assert!(
            hasher
                .verify(&password, Some(&hash))
                .await
                .unwrap()
                .is_valid()
        );
        for other in [format!("{}x", "€".repeat(29)), "€".repeat(29)] {
            let verdict = hasher.verify(&other, Some(&hash)).await.unwrap();
            assert_eq!(verdict, Verdict::Invalid, "{other}");
        }
    }

    #[tokio::test]
    async fn no_more_hashes_run_at_once_than_there_are_slots() {
        let hasher = PasswordHasher::new(4)
            .await
            .unwrap()
            .bounded(1, Duration::from_millis(50));
        let slot = hasher.slots.clone().acquire_owned().await.unwrap();
        let refused = hasher.hash("password123").await;
        assert!(matches!(refused, Err(HashError::Busy(_))), "{refused:?}");
        drop(slot);
        assert!(hasher.hash("password123").await.is_ok());
        assert_eq!(
            hasher.slots.available_permits(),
            1,
            "the slot is given back"
        );
    }

    #[test]
    fn short_nfc_passwords_are_hashed_as_they_are_and_digests_are_no_text() {
        let password = "p".repeat(72);
        assert_eq!(bcrypt_input(&password), password.as_bytes());
        assert_eq!(legacy_input(&password), password.as_bytes());
        let long = bcrypt_input(&"p".repeat(73));
        assert_eq!((long.len(), long[0]), (65, DIGEST_TAG));
        assert!(std::str::from_utf8(&long).is_err());
        assert_eq!(legacy_input(&"p".repeat(73)).len(), 64);
    }

    #[test]
    fn the_input_is_the_nfc_form() {
        let (nfc, nfd) = ("caf\u{e9}", "cafe\u{301}");
        assert_eq!(bcrypt_input(nfd), nfc.as_bytes());
        assert_eq!(bcrypt_input(nfc), nfc.as_bytes());
        assert_eq!(legacy_input(nfd), nfd.as_bytes());
    }
}
