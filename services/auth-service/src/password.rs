//! bcrypt hashing, always on the blocking pool: a cost-12 hash takes a quarter of a
//! second of CPU and would stall every request sharing the async worker.
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

#[derive(Clone)]
pub struct PasswordHasher {
    cost: u32,
    /// A hash of a random password at the same cost, verified against when the email is
    /// unknown so that a miss takes as long as a wrong password.
    decoy_hash: String,
}

impl PasswordHasher {
    pub async fn new(cost: u32) -> anyhow::Result<Self> {
        let decoy = uuid::Uuid::new_v4().to_string();
        let decoy_hash = blocking(move || bcrypt::hash(decoy, cost)).await??;
        Ok(PasswordHasher { cost, decoy_hash })
    }

    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let (password, cost) = (bcrypt_input(password), self.cost);
        Ok(blocking(move || bcrypt::hash(password, cost)).await??)
    }

    /// Checks a password against a stored hash, or against the decoy when there is none
    /// (always [`Verdict::Invalid`] then).
    pub async fn verify(
        &self,
        password: &str,
        stored_hash: Option<&str>,
    ) -> anyhow::Result<Verdict> {
        let known = stored_hash.is_some();
        let hash = stored_hash.unwrap_or(&self.decoy_hash).to_owned();
        let current = bcrypt_input(password);
        let legacy = Some(legacy_input(password)).filter(|legacy| *legacy != current);
        let verdict = blocking(move || -> bcrypt::BcryptResult<Verdict> {
            if bcrypt::verify(&current, &hash)? {
                return Ok(Verdict::Valid);
            }
            match legacy {
                Some(legacy) if bcrypt::verify(&legacy, &hash)? => Ok(Verdict::Outdated),
                _ => Ok(Verdict::Invalid),
            }
        })
        .await??;
        Ok(if known { verdict } else { Verdict::Invalid })
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("password hashing task failed")
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
