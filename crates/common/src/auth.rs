//! Who is calling: a verified, unrevoked token turned into a [`Caller`]; and revoking
//! tokens. A revocation is `revoked:<jti>` in Redis, the truth, which auth-service's
//! refresh always looks up; it is also appended to the revocation stream, which every
//! process follows ([`crate::revocation`]), so an ordinary request is checked without a
//! Redis call while this process's feed is current, and looked up while it is not. A
//! logout is refused at once by the instance that did it, and by every other instance
//! within `REVOCATION_FEED_MAX_LAG_MS`. The web layer's extractors call this; so does
//! auth-service's refresh.

use crate::jwt::{Claims, JwtVerifier, Role, TokenError, now_secs};
use crate::redis::{Keyspace, RedisClient};
use crate::revocation::{Answer, FeedSettings, MARGIN_SECS, RevocationFeed, Source};
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
    /// This process's feed of revocations (shared by every clone).
    pub feed: RevocationFeed,
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
    /// An authenticator whose feed does not follow the stream yet (so it looks every
    /// revocation up): see [`follow_revocations`](Self::follow_revocations).
    pub fn new(
        verifier: JwtVerifier,
        redis: RedisClient,
        keys: Keyspace,
        feed: FeedSettings,
    ) -> Self {
        Authenticator {
            verifier,
            redis,
            keys,
            feed: RevocationFeed::new(feed),
        }
    }

    /// Starts this process's follower of the revocation stream (on a connection of its
    /// own), unless the feed is off. Needs a Tokio runtime.
    pub fn follow_revocations(&self) {
        self.feed
            .follow(self.redis.clone(), self.keys.revocations());
    }

    /// Looks the revocation up in Redis: the truth, one round trip.
    pub async fn is_revoked(&self, jti: &str) -> Result<bool, AuthError> {
        let mut conn = self.redis.get().await?;
        Ok(conn.exists(self.keys.revoked_token(jti)).await?)
    }

    /// Whether `jti` is revoked: from the feed while it is current and does not flag
    /// the token, else looked up (a flagged token too, since its revocation may have
    /// been withdrawn since).
    async fn check(&self, jti: &str) -> Result<bool, AuthError> {
        match self.feed.answer(jti, now_secs()) {
            Answer::Clear => {
                self.feed.count_check(Source::Feed);
                Ok(false)
            }
            Answer::Flagged | Answer::Unknown => {
                self.feed.count_check(Source::Lookup);
                self.is_revoked(jti).await
            }
        }
    }

    /// Revokes a token until it could no longer be used even at `/auth/refresh`.
    /// Returns false when it was already revoked, so of two racing revocations (a
    /// double refresh, say) exactly one wins.
    pub async fn revoke(&self, claims: &Claims) -> Result<bool, AuthError> {
        self.revoke_as(claims, "1").await
    }

    /// [`revoke`](Self::revoke), with `holder` (unique to the caller) as the entry's
    /// value, so that the caller can [`withdraw`](Self::withdraw) it.
    ///
    /// Written in this order: the key; this process's feed (so the instance refuses the
    /// token at once); the stream entry, which the other instances follow; then both
    /// are waited on to be replicated. The entry is appended also when the key was
    /// already this `holder`'s (a retried logout), so a retry repairs a failed append;
    /// and not at all for a token that can no longer authenticate a request anyway.
    pub async fn revoke_as(&self, claims: &Claims, holder: &str) -> Result<bool, AuthError> {
        let now = now_secs();
        let ttl = revocation_ttl(claims, &self.verifier, now);
        let key = self.keys.revoked_token(&claims.jti);
        let mut conn = self.redis.get().await?;
        // NX GET: nil when this set it, else the holder already there.
        let previous: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(holder)
            .arg("NX")
            .arg("GET")
            .arg("EX")
            .arg(ttl)
            .query_async(&mut conn)
            .await?;
        let won = previous.is_none();
        let until = feed_until(claims, &self.verifier);
        if !(won || previous.as_deref() == Some(holder)) || until < now {
            self.redis.replicated(&key).await?;
            return Ok(won);
        }
        self.feed.record_revocation(&claims.jti, holder, until);
        let stream = self.keys.revocations();
        self.feed
            .revocation_entry(&stream, &claims.jti, holder, until)
            .query_async::<()>(&mut conn)
            .await?;
        let (key_replicated, stream_replicated) =
            tokio::join!(self.redis.replicated(&key), self.redis.replicated(&stream));
        key_replicated?;
        stream_replicated?;
        Ok(won)
    }

    /// Takes back a revocation written by [`revoke_as`](Self::revoke_as) with this
    /// `holder`, if it is still that one (compare and delete, atomically): for a
    /// request that failed after revoking, so that its retry is not refused. Anyone
    /// else's revocation of the token stays. Then the withdrawal is known here at once
    /// and appended to the stream, so every feed drops this holder's revocation.
    pub async fn withdraw(&self, claims: &Claims, holder: &str) -> Result<(), AuthError> {
        let mut conn = self.redis.get().await?;
        redis::Script::new(WITHDRAW)
            .key(self.keys.revoked_token(&claims.jti))
            .arg(holder)
            .invoke_async::<i64>(&mut conn)
            .await?;
        self.feed.record_withdrawal(&claims.jti, holder);
        self.feed
            .withdrawal_entry(&self.keys.revocations(), &claims.jti, holder)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Verifies a bearer token and checks it has not been revoked.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, AuthError> {
        let claims = self.verifier.verify(token).map_err(reject)?;
        self.admit(claims).await
    }

    /// Turns verified claims into the caller, unless the token was revoked (as far as
    /// the feed knows while it is current, else as Redis says).
    pub async fn admit(&self, claims: Claims) -> Result<Caller, AuthError> {
        let revoked = self.check(&claims.jti).await?;
        caller_unless_revoked(claims, revoked)
    }

    /// [`admit`](Self::admit), always looking the revocation up in Redis: for a refresh,
    /// which accepts tokens past their expiry (the feed forgets a revocation once its
    /// token expires) and must see a revocation made a moment ago anywhere.
    pub async fn admit_looked_up(&self, claims: Claims) -> Result<Caller, AuthError> {
        let revoked = self.is_revoked(&claims.jti).await?;
        caller_unless_revoked(claims, revoked)
    }
}

fn caller_unless_revoked(claims: Claims, revoked: bool) -> Result<Caller, AuthError> {
    if revoked {
        tracing::info!(jti = %claims.jti, "revoked token presented");
        return Err(AuthError::Unauthenticated);
    }
    let id = claims.user_id().ok_or(AuthError::Unauthenticated)?;
    Ok(Caller { id, claims })
}

/// Deletes KEYS[1] if its value is ARGV[1].
const WITHDRAW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
";

/// How long a revocation written at `now` (whole seconds) must live: through the whole
/// last second in which `claims` are still accepted (`exp` plus the refresh window, or
/// plus the leeway if that is longer: checks compare whole seconds, so that second
/// lasts until its end), and a margin.
fn revocation_ttl(claims: &Claims, verifier: &JwtVerifier, now: u64) -> u64 {
    let grace = verifier.refresh_window_secs().max(verifier.leeway_secs());
    let last_accepted = claims.exp.saturating_add(grace);
    (last_accepted + 1).saturating_sub(now) + MARGIN_SECS
}

/// The last second in which `claims` can authenticate an ordinary request (`exp` plus
/// the leeway; not the refresh window, which looks revocations up), plus the margin:
/// until then the feeds must remember their revocation.
fn feed_until(claims: &Claims, verifier: &JwtVerifier) -> u64 {
    claims
        .exp
        .saturating_add(verifier.leeway_secs())
        .saturating_add(MARGIN_SECS)
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
            revocation_feed_max_lag_ms: 1000,
            revocation_feed_max_entries: 10,
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

    #[test]
    fn the_feed_remembers_a_revocation_through_the_tokens_last_usable_second() {
        let claims = Claims::of_user_expiring_at(100);
        // Not the refresh window: refresh looks revocations up.
        assert_eq!(feed_until(&claims, &verifier_with(60, 0)), 101);
        assert_eq!(feed_until(&claims, &verifier_with(60, 5)), 106);
    }
}
