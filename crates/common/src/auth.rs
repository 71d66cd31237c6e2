//! Who is calling: a verified, unrevoked token turned into a [`Caller`]. Revocation is
//! looked up in Redis on every request, so a logged-out token is dead in every service
//! at once. The web layer's extractors call this; so does auth-service's refresh.

use crate::jwt::{Claims, JwtVerifier, Role, TokenError, now_secs};
use crate::redis::{Keyspace, RedisClient};
use redis::AsyncCommands;

/// Why a request is not authenticated, or could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Missing, malformed, expired, tampered, foreign or revoked: one answer for all
    /// (the reason is logged).
    #[error("unauthenticated")]
    Unauthenticated,
    /// The revocation list could not be read.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// A revocation was written but is not known to be on enough replicas to outlive
    /// its master (`REDIS_MIN_REPLICAS_ACKED`); writing it again is harmless.
    #[error(transparent)]
    NotReplicated(#[from] crate::redis::ReplicationError),
}

/// Everything needed to authenticate a request; registered as app data.
#[derive(Clone)]
pub struct Authenticator {
    pub verifier: JwtVerifier,
    pub redis: RedisClient,
    pub keys: Keyspace,
}

/// An authenticated caller: the user id and the token's claims.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: u64,
    pub claims: Claims,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.claims.role == Role::Admin
    }
}

impl Authenticator {
    pub async fn is_revoked(&self, jti: &str) -> Result<bool, AuthError> {
        let mut conn = self.redis.get().await?;
        Ok(conn.exists(self.keys.revoked_token(jti)).await?)
    }

    /// Revokes a token until it could no longer be used even at `/auth/refresh`.
    /// Returns false when it was already revoked, so of two racing revocations (a
    /// double refresh, say) exactly one wins.
    pub async fn revoke(&self, claims: &Claims) -> Result<bool, AuthError> {
        let usable_until = claims
            .exp
            .saturating_add(self.verifier.refresh_window_secs());
        let ttl = usable_until.saturating_sub(now_secs()).max(1);
        let key = self.keys.revoked_token(&claims.jti);
        let mut conn = self.redis.get().await?;
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(ttl)
            .query_async(&mut conn)
            .await?;
        self.redis.replicated(&key).await?;
        Ok(set.is_some())
    }

    /// Verifies a bearer token and checks it has not been revoked.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, AuthError> {
        let claims = self.verifier.verify(token).map_err(reject)?;
        self.admit(claims).await
    }

    /// Turns verified claims into the caller, unless the token was revoked.
    pub async fn admit(&self, claims: Claims) -> Result<Caller, AuthError> {
        if self.is_revoked(&claims.jti).await? {
            tracing::info!(jti = %claims.jti, "revoked token presented");
            return Err(AuthError::Unauthenticated);
        }
        let id = claims.user_id().ok_or(AuthError::Unauthenticated)?;
        Ok(Caller { id, claims })
    }
}

/// Logs why a token was refused; the caller only learns that it was.
pub fn reject(error: TokenError) -> AuthError {
    tracing::info!(reason = %error, "token refused");
    AuthError::Unauthenticated
}
