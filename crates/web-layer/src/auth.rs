//! The authenticated caller as actix extractors: [`AuthUser`] for any valid, unrevoked
//! token (401 otherwise), [`AdminUser`] for an admin (403 for a user).

use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use common::auth::{Authenticator, Caller};
use futures_util::future::LocalBoxFuture;

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

/// Any authenticated caller.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Caller);

impl std::ops::Deref for AuthUser {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.0
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
            Ok(AuthUser(authenticator?.authenticate(&token).await?))
        })
    }
}

/// An authenticated caller with the admin role; a user gets 403.
#[derive(Debug, Clone)]
pub struct AdminUser(pub Caller);

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = AuthUser::from_request(req, payload);
        Box::pin(async move {
            let AuthUser(caller) = user.await?;
            if caller.is_admin() {
                Ok(AdminUser(caller))
            } else {
                Err(ApiError::Forbidden)
            }
        })
    }
}
