//! The authenticated caller, as actix extractors: [`AuthUser`] for any valid,
//! unrevoked token, [`AdminUser`] for an admin. Revocation is looked up in Redis on
//! every request, so a logged-out token is dead in every service at once.

use crate::error::ApiError;
use crate::jwt::{Claims, JwtVerifier, Role, TokenError, now_secs};
use crate::redis::{Keyspace, RedisPool};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use redis::AsyncCommands;

/// Everything needed to authenticate a request; registered as app data.
#[derive(Clone)]
pub struct Authenticator {
    pub verifier: JwtVerifier,
    pub redis: RedisPool,
    pub keys: Keyspace,
}

impl Authenticator {
    pub async fn is_revoked(&self, jti: &str) -> Result<bool, ApiError> {
        let mut conn = self.redis.get().await?;
        Ok(conn.exists(self.keys.revoked_token(jti)).await?)
    }

    /// Revokes a token until it could no longer be used even at `/auth/refresh`.
    /// Returns false when it was already revoked, so of two racing revocations (a
    /// double refresh, say) exactly one wins.
    pub async fn revoke(&self, claims: &Claims) -> Result<bool, ApiError> {
        let usable_until = claims
            .exp
            .saturating_add(self.verifier.refresh_window_secs());
        let ttl = usable_until.saturating_sub(now_secs()).max(1);
        let mut conn = self.redis.get().await?;
        let set: Option<String> = redis::cmd("SET")
            .arg(self.keys.revoked_token(&claims.jti))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(ttl)
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }

    /// Verifies a bearer token and checks it has not been revoked.
    pub async fn authenticate(&self, token: &str) -> Result<AuthUser, ApiError> {
        let claims = self.verifier.verify(token).map_err(reject)?;
        self.admit(claims).await
    }

    /// Turns verified claims into the caller, unless the token was revoked.
    pub async fn admit(&self, claims: Claims) -> Result<AuthUser, ApiError> {
        if self.is_revoked(&claims.jti).await? {
            tracing::info!(jti = %claims.jti, "revoked token presented");
            return Err(ApiError::Unauthenticated);
        }
        let id = claims.user_id().ok_or(ApiError::Unauthenticated)?;
        Ok(AuthUser { id, claims })
    }
}

pub fn reject(error: TokenError) -> ApiError {
    tracing::info!(reason = %error, "token refused");
    ApiError::Unauthenticated
}

/// The bearer token of a request, if it has one.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn authenticator(req: &HttpRequest) -> Result<web::Data<Authenticator>, ApiError> {
    req.app_data::<web::Data<Authenticator>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("Authenticator is not registered")))
}

#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: u64,
    pub claims: Claims,
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.claims.role == Role::Admin
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req).map(str::to_owned);
        let authenticator = authenticator(req);
        Box::pin(async move {
            let token = token.ok_or(ApiError::Unauthenticated)?;
            authenticator?.authenticate(&token).await
        })
    }
}

/// An authenticated caller with the admin role; a user gets 403.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = AuthUser::from_request(req, payload);
        Box::pin(async move {
            let user = user.await?;
            if user.is_admin() {
                Ok(AdminUser(user))
            } else {
                Err(ApiError::Forbidden)
            }
        })
    }
}
