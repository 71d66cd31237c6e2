use crate::helpers::{TestApp, assert_envelope, spawn_app, spawn_app_with};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::jwt::{Role, now_secs};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

async fn user_claims(app: &TestApp) -> (String, Value) {
    let token = app.user_token("claims@example.com").await;
    let payload = token.split('.').nth(1).unwrap();
    let claims = decode_segment(payload);
    (token, claims)
}

fn decode_segment(segment: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

fn encode_segment(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `claims` with `changes` (an object of claims) written over them, signed with the
/// tests' key. The changes stay in `claims`, so that the next ones build on them.
fn resign(claims: &mut Value, changes: Value) -> String {
    for (name, value) in changes.as_object().expect("an object of claims") {
        claims[name] = value.clone();
    }
    testkit::keys().sign(claims)
}

#[actix_web::test]
async fn me_without_a_token_is_401_with_the_reference_message() {
    let app = spawn_app().await;
    let response = app.client.post("/api/v1/auth/me", None, &Value::Null).await;
    assert_eq!(response.status, 401);
    assert_eq!(response.body["message"], "Unauthenticated.");
    assert_eq!(response.body["error_code"], "UNAUTHENTICATED");
    let garbage = app.me("not-a-jwt").await;
    assert_envelope(&garbage, 401, "UNAUTHENTICATED");
}

#[actix_web::test]
async fn logout_kills_the_token() {
    let app = spawn_app().await;
    let token = app.user_token("out@example.com").await;
    let response = app.logout(&token).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body["message"], "Successfully logged out");
    app.assert_revoked(&token).await;
}

#[actix_web::test]
async fn refresh_returns_a_different_token_and_revokes_the_old_one() {
    let app = spawn_app().await;
    let token = app.user_token("fresh@example.com").await;
    let response = app.refresh(&token).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let new_token = response.body["access_token"].as_str().unwrap();
    assert_ne!(new_token, token);
    assert_eq!(app.me(new_token).await.status, 200);
    app.assert_revoked(&token).await;
}

#[actix_web::test]
async fn racing_refreshes_of_one_token_yield_one_new_token() {
    let app = spawn_app().await;
    let token = app.user_token("racer@example.com").await;
    let attempts = (0..8).map(|_| app.refresh(&token));
    let responses = futures_util::future::join_all(attempts).await;
    assert_eq!(responses.iter().filter(|r| r.status == 200).count(), 1);
    assert_eq!(responses.iter().filter(|r| r.status == 401).count(), 7);
}

#[actix_web::test]
async fn an_expired_token_is_401_but_refreshable_within_the_window() {
    let app = spawn_app().await;
    let (_, mut claims) = user_claims(&app).await;
    let now = now_secs();
    let expired = resign(&mut claims, json!({"iat": now - 7200, "exp": now - 3600}));
    assert_envelope(&app.me(&expired).await, 401, "UNAUTHENTICATED");
    let refreshed = app.refresh(&expired).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);

    let window = app.settings.jwt.refresh_ttl_minutes * 60;
    let too_old = resign(
        &mut claims,
        json!({"jti": "too-old", "exp": now - window - 60}),
    );
    assert_envelope(&app.refresh(&too_old).await, 401, "UNAUTHENTICATED");
}

#[actix_web::test]
async fn a_revoked_token_cannot_be_refreshed_even_when_expired() {
    let app = spawn_app().await;
    let (token, _) = user_claims(&app).await;
    app.logout(&token).await;
    assert_envelope(&app.refresh(&token).await, 401, "UNAUTHENTICATED");
}

#[actix_web::test]
async fn forged_and_malformed_tokens_are_401() {
    let app = spawn_app().await;
    let (token, claims) = user_claims(&app).await;
    let mut forged = Vec::new();

    // Tampered signature: flip the last character.
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    forged.push(("tampered signature", tampered));

    // Tampered payload (admin role) under the original signature.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut elevated = claims.clone();
    elevated["role"] = json!("admin");
    parts[1] = encode_segment(elevated.to_string().as_bytes());
    forged.push(("tampered payload", parts.join(".")));

    // alg: none.
    let header = encode_segment(br#"{"alg":"none","typ":"JWT"}"#);
    let body = encode_segment(claims.to_string().as_bytes());
    forged.push(("alg none", format!("{header}.{body}.")));

    // HS256 forged with a secret, including the public key as the secret.
    for secret in [
        b"secret".to_vec(),
        testkit::keys().pair.public_pem.clone().into_bytes(),
    ] {
        let hs = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&secret),
        )
        .unwrap();
        forged.push(("HS256", hs));
    }

    // Signed by another Ed25519 key.
    let other = common::jwt::generate_key_pair().unwrap();
    let other_key = EncodingKey::from_ed_pem(other.private_pem.as_bytes()).unwrap();
    forged.push((
        "other key",
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &other_key).unwrap(),
    ));

    // Valid signature but a required claim missing or malformed.
    for field in ["jti", "role", "iat", "sub", "exp"] {
        let mut partial = claims.clone();
        partial.as_object_mut().unwrap().remove(field);
        forged.push(("missing claim", testkit::keys().sign(&partial)));
    }
    let mut bad_role = claims.clone();
    bad_role["role"] = json!("superuser");
    forged.push(("unknown role", testkit::keys().sign(&bad_role)));
    let mut bad_sub = claims.clone();
    bad_sub["sub"] = json!("abc");
    forged.push(("non-numeric sub", testkit::keys().sign(&bad_sub)));

    for (what, token) in forged {
        let me = app.me(&token).await;
        assert_envelope(&me, 401, "UNAUTHENTICATED");
        let refresh = app.refresh(&token).await;
        assert_eq!(refresh.status, 401, "refresh accepted a token with {what}");
    }
}

#[actix_web::test]
async fn refreshes_past_the_limit_are_429_and_revoke_nothing() {
    let limit = 4;
    let app = spawn_app_with(|s| {
        s.auth.refresh_max_attempts = limit as u64;
        s.auth.refresh_decay_seconds = 3600;
    })
    .await;
    let mut token = app.user_token("often@example.com").await;
    for _ in 0..limit {
        let refreshed = app.refresh(&token).await;
        assert_eq!(refreshed.status, 200, "{}", refreshed.body);
        token = refreshed.body["access_token"].as_str().unwrap().to_owned();
    }
    let revoked = app.redis_keys("revoked:").await;
    assert_eq!(revoked.len(), limit);
    let refused = app.refresh(&token).await;
    assert_envelope(&refused, 429, "TOO_MANY_REQUESTS");
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry_after));
    assert_eq!(app.redis_keys("revoked:").await, revoked);
    assert_eq!(
        app.me(&token).await.status,
        200,
        "the token was not revoked"
    );
}

#[actix_web::test]
async fn only_good_tokens_spend_a_users_refreshes() {
    let app = spawn_app_with(|s| s.auth.refresh_max_attempts = 2).await;
    let (token, claims) = user_claims(&app).await;
    let user_id: u64 = claims["sub"].as_str().unwrap().parse().unwrap();
    let stranger_keys = common::jwt::generate_key_pair().unwrap();
    let forger = auth_service::tokens::TokenIssuer::from_private_pem(
        stranger_keys.private_pem.as_bytes(),
        60,
    )
    .unwrap();
    let forged = forger.issue(user_id, Role::User).unwrap().token;
    let second_login = app.login("claims@example.com", "password123").await;
    let revoked = second_login.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.logout(&revoked).await;
    for _ in 0..5 {
        assert_envelope(&app.refresh(&forged).await, 401, "UNAUTHENTICATED");
        assert_envelope(&app.refresh(&revoked).await, 401, "UNAUTHENTICATED");
        assert_envelope(&app.refresh("not-a-jwt").await, 401, "UNAUTHENTICATED");
    }
    let refreshed = app.refresh(&token).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let next = refreshed.body["access_token"].as_str().unwrap();
    assert_eq!(
        app.refresh(next).await.status,
        200,
        "the user's second refresh"
    );
}

/// Sleeps until the clock is just past `second` + `millis` ms (Unix time).
async fn sleep_until(second: u64, millis: u64) {
    let target = std::time::UNIX_EPOCH + std::time::Duration::from_millis(second * 1000 + millis);
    if let Ok(wait) = target.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(wait).await;
    }
}

#[actix_web::test]
async fn a_revoked_token_cannot_be_refreshed_in_the_last_second_of_its_window() {
    let app = spawn_app().await;
    let (_, mut claims) = user_claims(&app).await;
    let window = app.settings.jwt.refresh_ttl_minutes * 60;
    // Start at the beginning of a second, so the refresh and its revocation happen in it.
    let start = now_secs() + 1;
    sleep_until(start, 0).await;
    // Refreshable until the end of the next second.
    let token = resign(
        &mut claims,
        json!({"exp": start + 1 - window, "iat": start - window - 3600}),
    );
    let refreshed = app.refresh(&token).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    // The window's last second, past a revocation that lived one second only.
    sleep_until(start + 1, 500).await;
    assert_eq!(
        now_secs(),
        start + 1,
        "the test ran too slowly to say anything"
    );
    assert_envelope(&app.refresh(&token).await, 401, "UNAUTHENTICATED");
}

#[actix_web::test]
async fn a_token_is_refused_before_its_nbf_and_accepted_from_it() {
    let app = spawn_app().await;
    let (_, mut claims) = user_claims(&app).await;
    let now = now_secs();
    let early = resign(&mut claims, json!({"jti": "not-yet", "nbf": now + 600}));
    assert_envelope(&app.me(&early).await, 401, "UNAUTHENTICATED");
    assert_envelope(&app.refresh(&early).await, 401, "UNAUTHENTICATED");
    let valid = resign(&mut claims, json!({"jti": "already", "nbf": now - 10}));
    assert_eq!(app.me(&valid).await.status, 200);
    let malformed = resign(&mut claims, json!({"jti": "malformed", "nbf": "soon"}));
    assert_envelope(&app.me(&malformed).await, 401, "UNAUTHENTICATED");
}

/// The role and the account come from the token until it is refreshed (docs/security.md,
/// What a token says): a refresh reads the account again, so a demotion applies there and a
/// deleted account gets no new token.
#[actix_web::test]
async fn a_refresh_reads_the_account_again() {
    use db::schema::users;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let app = spawn_app().await;
    let (_, claims) = user_claims(&app).await;
    let id: u64 = claims["sub"].as_str().unwrap().parse().unwrap();
    let admin = testkit::keys().token_for(id, Role::Admin);
    let refreshed = app.refresh(&admin).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let token = refreshed.body["access_token"].as_str().unwrap().to_owned();
    let payload = decode_segment(token.split('.').nth(1).unwrap());
    assert_eq!(payload["role"], "user", "the stored role, not the token's");
    diesel::delete(users::table.find(id))
        .execute(&mut app.env.database.connect().await)
        .await
        .unwrap();
    assert_envelope(&app.refresh(&token).await, 401, "UNAUTHENTICATED");
}

#[actix_web::test]
async fn a_refresh_refused_for_want_of_replicas_can_be_retried() {
    let app = spawn_app().await;
    let token = app.user_token("retry@example.com").await;
    // Another instance on the same stores, whose replica waits fail.
    let (lagging, _) = app
        .env
        .spawn::<auth_service::startup::Application>(|s| {
            s.auth.bcrypt_rounds = 4;
            s.redis.min_replicas_acked = common::config::ReplicasAcked::Exactly(5);
            s.redis.replica_ack_timeout_ms = 100;
        })
        .await;
    let refused = lagging
        .post("/api/v1/auth/refresh", Some(&token), &Value::Null)
        .await;
    assert_envelope(&refused, 503, "SYSTEM_BUSY");
    // No new token was handed out, so the old one still works, and a retry (once the
    // replicas are back: here, at the healthy instance) gets one.
    assert_eq!(app.me(&token).await.status, 200);
    let retried = app.refresh(&token).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    app.assert_revoked(&token).await;
}
