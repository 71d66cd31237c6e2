//! bcrypt hashing, always on the blocking pool: a cost-12 hash takes a quarter of a
//! second of CPU and would stall every request sharing the async worker.

use anyhow::Context;

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
        let (password, cost) = (password.to_owned(), self.cost);
        Ok(blocking(move || bcrypt::hash(password, cost)).await??)
    }

    /// Checks a password against a stored hash, or against the decoy when there is none.
    pub async fn verify(&self, password: &str, stored_hash: Option<&str>) -> anyhow::Result<bool> {
        let known = stored_hash.is_some();
        let hash = stored_hash.unwrap_or(&self.decoy_hash).to_owned();
        let password = password.to_owned();
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
}
