//! bcrypt hashing, always on the blocking pool: a cost-12 hash takes a quarter of a
//! second of CPU and would stall every request sharing the async worker.
//!
//! bcrypt reads only the first 72 bytes of its input. A longer password (possible once
//! passwords are counted in characters: 72 of them may take 288 bytes) is first reduced
//! to the hex SHA-256 of all of it, so no part of any password is ever ignored. Passwords
//! of up to 72 bytes are hashed as they are, so every stored hash stays valid.

use anyhow::Context;
use sha2::{Digest, Sha256};

/// The most bytes bcrypt reads.
const BCRYPT_MAX_BYTES: usize = 72;

/// What bcrypt is given for `password`: itself, or the hex SHA-256 of a longer one.
fn bcrypt_input(password: &str) -> String {
    if password.len() <= BCRYPT_MAX_BYTES {
        return password.to_owned();
    }
    Sha256::digest(password.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
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

    /// Checks a password against a stored hash, or against the decoy when there is none.
    pub async fn verify(&self, password: &str, stored_hash: Option<&str>) -> anyhow::Result<bool> {
        let known = stored_hash.is_some();
        let hash = stored_hash.unwrap_or(&self.decoy_hash).to_owned();
        let password = bcrypt_input(password);
        let matches = blocking(move || bcrypt::verify(password, &hash)).await??;
        Ok(known && matches)
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
        assert!(hasher.verify("correct horse", Some(&hash)).await.unwrap());
        assert!(!hasher.verify("wrong horse", Some(&hash)).await.unwrap());
        assert!(!hasher.verify("correct horse", None).await.unwrap());
    }

    #[tokio::test]
    async fn every_character_of_a_long_password_counts() {
        let hasher = PasswordHasher::new(4).await.unwrap();
        // 30 three-byte characters: 90 bytes, past bcrypt's 72.
        let password = "€".repeat(30);
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hasher.verify(&password, Some(&hash)).await.unwrap());
        let last_changed = format!("{}x", "€".repeat(29));
        assert!(!hasher.verify(&last_changed, Some(&hash)).await.unwrap());
        let shorter_by_one = "€".repeat(29);
        assert!(!hasher.verify(&shorter_by_one, Some(&hash)).await.unwrap());
    }

    #[tokio::test]
    async fn passwords_of_up_to_72_bytes_are_hashed_as_they_are() {
        let hasher = PasswordHasher::new(4).await.unwrap();
        let password = "p".repeat(72);
        let hash = hasher.hash(&password).await.unwrap();
        assert!(bcrypt::verify(&password, &hash).unwrap());
        assert_eq!(bcrypt_input(&password), password);
        assert_eq!(bcrypt_input(&"p".repeat(73)).len(), 64);
    }
}
