//! HTTP handlers for `/api/v1/auth/*`: parse the input, call [`Accounts`], shape the
//! answer. Nothing else happens here.

use crate::accounts::Accounts;
use crate::domain::{Credentials, Registration};
use crate::tokens::IssuedToken;
use crate::users::User;
use actix_web::{HttpRequest, HttpResponse, web};
use common::ApiError;
use common::auth::{AuthUser, bearer_token};
use common::input::JsonObject;
use serde_json::{Value, json};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/auth")
            .service(web::resource("/register").route(web::post().to(register)))
            .service(web::resource("/login").route(web::post().to(login)))
            .service(
                web::resource("/me")
                    .route(web::get().to(me))
                    .route(web::post().to(me)),
            )
            .service(web::resource("/logout").route(web::post().to(logout)))
            .service(web::resource("/refresh").route(web::post().to(refresh))),
    );
}

/// Whether the client address may be read from `X-Forwarded-For` (behind the gateway).
#[derive(Clone, Copy)]
pub struct TrustForwardedFor(pub bool);

fn client_address(req: &HttpRequest) -> String {
    let trust = req.app_data::<TrustForwardedFor>().is_some_and(|t| t.0);
    let address = if trust {
        req.connection_info()
            .realip_remote_addr()
            .map(str::to_owned)
    } else {
        req.peer_addr().map(|a| a.ip().to_string())
    };
    address.unwrap_or_else(|| "unknown".into())
}

fn user_json(user: &User) -> Value {
    json!({ "id": user.id, "name": user.name, "email": user.email, "role": user.role })
}

fn token_json(issued: &IssuedToken) -> Value {
    json!({
        "access_token": issued.token,
        "token_type": "bearer",
        "expires_in": issued.expires_in,
    })
}

async fn register(
    accounts: web::Data<Accounts>,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let registration = Registration::parse(&body).map_err(ApiError::Validation)?;
    let (user, issued) = accounts.register(registration).await?;
    Ok(HttpResponse::Created().json(json!({
        "user": user_json(&user),
        "token": issued.token,
        "token_type": "bearer",
        "expires_in": issued.expires_in,
    })))
}

async fn login(
    accounts: web::Data<Accounts>,
    req: HttpRequest,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let credentials = Credentials::parse(&body).map_err(ApiError::Validation)?;
    let issued = accounts.login(credentials, &client_address(&req)).await?;
    Ok(HttpResponse::Ok().json(token_json(&issued)))
}

async fn me(accounts: web::Data<Accounts>, caller: AuthUser) -> Result<HttpResponse, ApiError> {
    let user = accounts.me(&caller).await?;
    let mut body = user_json(&user);
    body["created_at"] = json!(user.created_at.and_utc().to_rfc3339());
    Ok(HttpResponse::Ok().json(body))
}

async fn logout(accounts: web::Data<Accounts>, caller: AuthUser) -> Result<HttpResponse, ApiError> {
    accounts.logout(&caller).await?;
    Ok(HttpResponse::Ok().json(json!({ "message": "Successfully logged out" })))
}

async fn refresh(
    accounts: web::Data<Accounts>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let token = bearer_token(&req).ok_or(ApiError::Unauthenticated)?;
    let issued = accounts.refresh(token).await?;
    Ok(HttpResponse::Ok().json(token_json(&issued)))
}
