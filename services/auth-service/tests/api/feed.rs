//! The revocation feed between instances: authenticators as the services build them, two
//! of them on one key prefix standing for two instances, against the real Redis (single
//! server or cluster, as the suite runs).

use common::auth::{AuthError, Authenticator};
use common::jwt::{Claims, JwtVerifier, Role};
use common::metrics::Metrics;
use common::redis::{Keyspace, RedisClient};
use common::revocation::{FeedSettings, Source};
use std::time::{Duration, Instant};
use testkit::{ChaosProxy, TestRedis};

/// The max lag of the instances whose bound is under test.
const MAX_LAG: Duration = Duration::from_millis(400);

fn jwt_settings(max_lag: Duration, max_entries: usize) -> common::config::JwtSettings {
    let mut jwt = auth_service::configuration::Settings::defaults()
        .expect("default settings")
        .jwt
        .clone();
    testkit::keys().apply(&mut jwt);
    jwt.revocation_feed_max_lag_ms = max_lag.as_millis() as u64;
    jwt.revocation_feed_max_entries = max_entries;
    jwt
}

fn client(redis: &TestRedis) -> RedisClient {
    common::redis::client(&redis.settings()).expect("redis client")
}

/// An instance's authenticator on `redis`'s prefix, its feed not following yet.
fn instance(redis: &TestRedis, max_lag: Duration, max_entries: usize) -> Authenticator {
    let jwt = jwt_settings(max_lag, max_entries);
    Authenticator::new(
        JwtVerifier::from_settings(&jwt).expect("verifier"),
        client(redis),
        Keyspace::new(redis.prefix.clone()),
        FeedSettings::from_jwt(&jwt),
    )
}

/// An instance whose feed follows the stream and has become current.
async fn following(redis: &TestRedis, max_lag: Duration) -> Authenticator {
    let authenticator = instance(redis, max_lag, 1000);
    authenticator.follow_revocations();
    until_current(&authenticator, true).await;
    authenticator
}

/// Waits (at most 15 s: a reconnection pauses up to 5 s) until the feed is, or is not,
/// current.
async fn until_current(authenticator: &Authenticator, current: bool) {
    let what = if current { "current" } else { "not current" };
    testkit::eventually(15, &format!("the revocation feed {what}"), || async {
        authenticator.feed.is_current() == current
    })
    .await;
}

/// A fresh user token and its claims.
fn fresh_token(authenticator: &Authenticator) -> (String, Claims) {
    let token = testkit::keys().token_for(7, Role::User);
    let claims = authenticator
        .verifier
        .verify(&token)
        .expect("a valid token");
    (token, claims)
}

async fn accepted(authenticator: &Authenticator, token: &str) -> bool {
    match authenticator.authenticate(token).await {
        Ok(_) => true,
        Err(AuthError::Unauthenticated) => false,
        Err(error) => panic!("the check failed: {error}"),
    }
}

/// Polls until `authenticator` refuses `token`, at most `bound`; how long it took.
async fn refused_within(authenticator: &Authenticator, token: &str, bound: Duration) -> Duration {
    let start = Instant::now();
    while accepted(authenticator, token).await {
        assert!(
            start.elapsed() < bound,
            "still accepted {bound:?} after its revocation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[actix_web::test]
async fn a_revocation_is_refused_at_once_here_and_within_the_max_lag_elsewhere() {
    let redis = TestRedis::new();
    let (one, other) = (
        following(&redis, MAX_LAG).await,
        following(&redis, MAX_LAG).await,
    );
    let (token, claims) = fresh_token(&one);
    assert!(accepted(&one, &token).await && accepted(&other, &token).await);

    assert!(one.revoke(&claims).await.expect("revoked"));
    assert!(
        !accepted(&one, &token).await,
        "at once where it was revoked"
    );
    let took = refused_within(&other, &token, MAX_LAG * 4).await;
    // Whatever the load, past the max lag the other instance knows or looks it up.
    tokio::time::sleep(MAX_LAG.saturating_sub(took)).await;
    assert!(
        !accepted(&other, &token).await,
        "{took:?}, then refused for good"
    );
    assert!(!accepted(&one, &token).await);
}

#[actix_web::test]
async fn a_withdrawn_revocation_is_accepted_again_everywhere_at_once() {
    let redis = TestRedis::new();
    let (one, other) = (
        following(&redis, MAX_LAG).await,
        following(&redis, MAX_LAG).await,
    );
    let (token, claims) = fresh_token(&one);
    assert!(one.revoke_as(&claims, "refresh-1").await.expect("revoked"));
    refused_within(&other, &token, MAX_LAG * 4).await;

    one.withdraw(&claims, "refresh-1").await.expect("withdrawn");
    // A flagged token is looked up, so the withdrawal needs no wait anywhere.
    assert!(accepted(&one, &token).await);
    assert!(accepted(&other, &token).await);
    // And once the withdrawal reached the feed, without a lookup either.
    testkit::eventually(5, "the withdrawal in the other feed", || async {
        let before = other.feed.checks(Source::Lookup);
        accepted(&other, &token).await && other.feed.checks(Source::Lookup) == before
    })
    .await;

    // Another holder's revocation of the token stands through a withdrawal.
    assert!(one.revoke_as(&claims, "refresh-2").await.expect("revoked"));
    assert!(!other.revoke(&claims).await.expect("already revoked"));
    one.withdraw(&claims, "refresh-1").await.expect("withdrawn");
    assert!(!accepted(&one, &token).await);
    refused_within(&other, &token, MAX_LAG * 4).await;
}

#[actix_web::test]
async fn a_current_feed_answers_checks_without_a_lookup() {
    let redis = TestRedis::new();
    // A lag this long keeps the feed current through the loop on any machine.
    let one = following(&redis, Duration::from_secs(30)).await;
    let mut metrics = Metrics::new("auth-service");
    one.feed.register(&mut metrics);
    // Some revocations in the feed, none of them this token's.
    for _ in 0..3 {
        let (_, claims) = fresh_token(&one);
        one.revoke(&claims).await.expect("revoked");
    }
    let (token, _) = fresh_token(&one);
    let (feed, lookups) = (
        one.feed.checks(Source::Feed),
        one.feed.checks(Source::Lookup),
    );
    const CHECKS: u64 = 50;
    for _ in 0..CHECKS {
        assert!(accepted(&one, &token).await);
    }
    assert_eq!(one.feed.checks(Source::Lookup), lookups, "no lookup");
    assert_eq!(one.feed.checks(Source::Feed), feed + CHECKS);
    let exported = metrics.encode();
    assert!(
        exported.contains(&format!(
            "revocation_checks_total{{service=\"auth-service\",source=\"feed\"}} {}",
            feed + CHECKS
        )),
        "{exported}"
    );
    assert!(
        exported.contains("revocation_feed_current{service=\"auth-service\"} 1"),
        "{exported}"
    );
    assert!(
        exported.contains("revocation_feed_entries{service=\"auth-service\"} 3"),
        "{exported}"
    );
}

#[actix_web::test]
async fn with_the_feed_off_every_check_is_a_lookup_and_no_feed_gauge_is_exported() {
    let redis = TestRedis::new();
    let off = instance(&redis, Duration::ZERO, 1000);
    off.follow_revocations();
    let mut metrics = Metrics::new("auth-service");
    off.feed.register(&mut metrics);
    let (token, _) = fresh_token(&off);
    assert!(accepted(&off, &token).await);
    assert_eq!(off.feed.checks(Source::Lookup), 1);
    let exported = metrics.encode();
    assert!(
        exported.contains("revocation_checks_total{service=\"auth-service\",source=\"lookup\"} 1"),
        "{exported}"
    );
    // A gauge reading 0 for good would keep RevocationFeedBehind firing.
    assert!(!exported.contains("revocation_feed_"), "{exported}");
}

#[actix_web::test]
async fn a_feed_not_following_looks_every_revocation_up() {
    let redis = TestRedis::new();
    let one = following(&redis, MAX_LAG).await;
    let idle = instance(&redis, MAX_LAG, 1000);
    let (token, claims) = fresh_token(&one);
    assert!(accepted(&idle, &token).await);
    one.revoke(&claims).await.expect("revoked");
    assert!(!accepted(&idle, &token).await, "looked up: refused at once");
    assert_eq!(idle.feed.checks(Source::Feed), 0);
    assert_eq!(idle.feed.checks(Source::Lookup), 2);
}

#[actix_web::test]
async fn a_full_feed_looks_revocations_up() {
    let redis = TestRedis::new();
    let one = following(&redis, MAX_LAG).await;
    let small = instance(&redis, MAX_LAG, 2);
    small.follow_revocations();
    until_current(&small, true).await;
    let tokens: Vec<(String, Claims)> = (0..3).map(|_| fresh_token(&one)).collect();
    for (_, claims) in &tokens {
        one.revoke(claims).await.expect("revoked");
    }
    until_current(&small, false).await;
    let lookups = small.feed.checks(Source::Lookup);
    for (token, _) in &tokens {
        assert!(!accepted(&small, token).await);
    }
    assert_eq!(small.feed.checks(Source::Lookup), lookups + 3);
}

#[actix_web::test]
async fn a_feed_cut_off_from_redis_looks_revocations_up_until_it_is_back() {
    if testkit::needs_single_redis("a chaos proxy stands in front of the feed's connection") {
        return;
    }
    let redis = TestRedis::new();
    let one = following(&redis, MAX_LAG).await;
    // The other instance: its lookups reach Redis, its feed goes through a proxy.
    let proxy = ChaosProxy::to_redis().await;
    let other = instance(&redis, MAX_LAG, 1000);
    let mut proxied = redis.settings();
    proxied.port = proxy.port;
    let proxied = common::redis::client(&proxied).expect("redis client");
    other.feed.follow(proxied, other.keys.revocations());
    until_current(&other, true).await;

    proxy.break_all();
    // No read completes now: within the max lag the feed stops being current.
    until_current(&other, false).await;
    let (token, claims) = fresh_token(&one);
    one.revoke(&claims).await.expect("revoked");
    let lookups = other.feed.checks(Source::Lookup);
    assert!(
        !accepted(&other, &token).await,
        "looked up: refused at once"
    );
    assert_eq!(other.feed.checks(Source::Lookup), lookups + 1);

    // Back, it reads the whole stream again, this revocation with it.
    proxy.restore();
    until_current(&other, true).await;
    assert!(!accepted(&other, &token).await);
    let (fresh, _) = fresh_token(&one);
    let lookups = other.feed.checks(Source::Lookup);
    assert!(accepted(&other, &fresh).await);
    assert_eq!(other.feed.checks(Source::Lookup), lookups, "current again");
}
