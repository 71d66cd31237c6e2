//! HTTP handlers for `/api/v1/auth/*`: parse the input, call [`Accounts`], shape the
//! answer, and map an [`AccountError`] to its status. Nothing else happens here.

use crate::accounts::{AccountError, Accounts};
use crate::domain::{Credentials, Registration};
use crate::tokens::IssuedToken;
use crate::users::User;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use web_layer::ApiError;
use web_layer::auth::{AuthUser, bearer_token};
use web_layer::client::ClientIp;
use web_layer::input::JsonBody;

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        match error {
            // As the Laravel API answered it: clients read `errors.email`.
            AccountError::EmailTaken => {
                ApiError::validation("email", "The email has already been taken.")
            }
            AccountError::InvalidCredentials => ApiError::InvalidCredentials,
            AccountError::TooManyRequests { retry_after_secs } => {
                ApiError::TooManyRequests { retry_after_secs }
            }
            AccountError::Auth(error) => error.into(),
            AccountError::Database(error) => error.into(),
            AccountError::Redis(error) => error.into(),
            AccountError::Busy(error) => ApiError::busy("password hashing is at its bound", &error),
            AccountError::Internal(error) => ApiError::Internal(error),
        }
    }
}

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
    ClientIp(address): ClientIp,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let registration = Registration::parse(&body).map_err(ApiError::Validation)?;
    let (user, issued) = accounts.register(registration, &address).await?;
    Ok(HttpResponse::Created().json(json!({
        "user": user_json(&user),
        "token": issued.token,
        "token_type": "bearer",
        "expires_in": issued.expires_in,
    })))
}

async fn login(
    accounts: web::Data<Accounts>,
    ClientIp(address): ClientIp,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let credentials = Credentials::parse(&body).map_err(ApiError::Validation)?;
    let issued = accounts.login(credentials, &address).await?;
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
