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
        self.revoke_as(claims, "1").await
    }

    /// [`revoke`](Self::revoke), with `holder` (unique to the caller) as the entry's
    /// value, so that the caller can [`withdraw`](Self::withdraw) it.
    pub async fn revoke_as(&self, claims: &Claims, holder: &str) -> Result<bool, AuthError> {
        let ttl = revocation_ttl(claims, &self.verifier, now_secs());
        let key = self.keys.revoked_token(&claims.jti);
        let mut conn = self.redis.get().await?;
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(holder)
            .arg("NX")
            .arg("EX")
            .arg(ttl)
            .query_async(&mut conn)
            .await?;
        self.redis.replicated(&key).await?;
        Ok(set.is_some())
    }

    /// Takes back a revocation written by [`revoke_as`](Self::revoke_as) with this
    /// `holder`, if it is still that one (compare and delete, atomically): for a
    /// request that failed after revoking, so that its retry is not refused. Anyone
    /// else's revocation of the token stays.
    pub async fn withdraw(&self, claims: &Claims, holder: &str) -> Result<(), AuthError> {
        let mut conn = self.redis.get().await?;
        redis::Script::new(WITHDRAW)
            .key(self.keys.revoked_token(&claims.jti))
            .arg(holder)
            .invoke_async::<i64>(&mut conn)
            .await?;
        Ok(())
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

/// Deletes KEYS[1] if its value is ARGV[1].
const WITHDRAW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
";

/// A second past the last one a token is accepted in, for the time the revocation takes
/// to reach Redis and for the clocks of the services, which all read the same token.
const REVOCATION_MARGIN_SECS: u64 = 1;

/// How long a revocation written at `now` (whole seconds) must live: through the whole
/// last second in which `claims` are still accepted (`exp` plus the refresh window, or
/// plus the leeway if that is longer: checks compare whole seconds, so that second
/// lasts until its end), and a margin.
fn revocation_ttl(claims: &Claims, verifier: &JwtVerifier, now: u64) -> u64 {
    let grace = verifier.refresh_window_secs().max(verifier.leeway_secs());
    let last_accepted = claims.exp.saturating_add(grace);
    (last_accepted + 1).saturating_sub(now) + REVOCATION_MARGIN_SECS
}

/// Logs why a token was refused; the caller only learns that it was.
pub fn reject(error: TokenError) -> AuthError {
    tracing::info!(reason = %error, "token refused");
    AuthError::Unauthenticated
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JwtSettings;
    use crate::jwt::generate_key_pair;

    fn verifier_with(refresh_ttl_minutes: u64, leeway_secs: u64) -> JwtVerifier {
        let settings = JwtSettings {
            public_key_path: "unused".into(),
            private_key_path: "unused".into(),
            ttl_minutes: 60,
            refresh_ttl_minutes,
            leeway_secs,
            verified_cache_size: 0,
        };
        let pem = generate_key_pair().unwrap().public_pem;
        JwtVerifier::from_public_pem(pem.as_bytes(), &settings).unwrap()
    }

    #[test]
    fn a_revocation_outlives_the_last_second_its_token_is_accepted_in() {
        // Refreshable through second 160 (exp 100, a 60 s window): to its end, 161.
        let window = verifier_with(1, 0);
        for (now, ttl) in [(100, 62), (159, 3), (160, 2), (161, 1), (500, 1)] {
            assert_eq!(
                revocation_ttl(&Claims::of_user_expiring_at(100), &window, now),
                ttl,
                "{now}"
            );
            // Written as late as the end of second `now`, it still outlives second 160.
            let lives_until = now as f64 + 0.999 + ttl as f64;
            assert!(now > 160 || lives_until >= 161.0, "{now}");
        }
        // A leeway longer than the window is what decides.
        assert_eq!(
            revocation_ttl(
                &Claims::of_user_expiring_at(100),
                &verifier_with(0, 30),
                100
            ),
            32
        );
    }
}
