//! Every answer is true when Redis is slow or unreachable: a purchase whose reply never
//! came is settled before the buyer is answered: placed (200) if it happened, and
//! exactly once; `SYSTEM_BUSY` only if it certainly did not; `OUTCOME_UNKNOWN` with the
//! order id if that cannot be known in time. Staged with a chaos proxy between
//! purchase-service (or the lock strategy's connections) and Redis that delays one
//! direction.

use crate::helpers::{Stack, assert_envelope, spawn_stack, token};
use common::ApiError;
use common::config::LockSettings;
use common::input::JsonObject;
use common::redis::Keyspace;
use events::StockEvent;
use inventory::settle::Settled;
use inventory::store::ItemState;
use inventory::{DistributedLock, ItemStore};
use purchase_service::configuration::Strategy;
use purchase_service::listing::Order;
use purchase_service::purchase::lock::LockStrategy;
use purchase_service::purchase::lua::LuaStrategy;
use purchase_service::purchase::{Attempt, AttemptError, Outcome, Quantity};
use purchase_service::purchases::{PurchaseRequest, Purchases};
use purchase_service::startup::Application;
use redis::AsyncCommands;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use testkit::{ChaosProxy, TestRedis};

async fn redis_proxy() -> ChaosProxy {
    let target = testkit::redis_url()
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .expect("host:port")
        .parse()
        .expect("a socket address");
    ChaosProxy::start(target).await
}

/// A stack (purchase-service, stock-writer) and, beside it, the purchase use case of a
/// second purchase-service that reaches Redis through `proxy`, gives up on a reply
/// after 300 ms and settles for up to `outcome_timeout_ms`. Called directly, since the
/// HTTP layer would look up the token's revocation through the same slow Redis first.
async fn purchases_through(proxy: &ChaosProxy, outcome_timeout_ms: u64) -> (Stack, Purchases) {
    let stack = spawn_stack(Strategy::Lua).await;
    let mut settings = stack.settings.clone();
    settings.redis.port = proxy.port;
    settings.redis.response_timeout_ms = 300;
    settings.purchase.outcome_timeout_ms = outcome_timeout_ms;
    let app = Application::build(settings)
        .await
        .expect("build purchase-service");
    let purchases = app.purchases.clone();
    actix_web::rt::spawn(app.run_until_stopped());
    (stack, purchases)
}

fn request(item_id: u64, quantity: u32) -> PurchaseRequest {
    PurchaseRequest {
        item_id,
        user_id: 1,
        quantity: Quantity::parse(&JsonObject(
            json!({ "quantity": quantity })
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ))
        .expect("a quantity"),
        idempotency_key: None,
        request_id: None,
    }
}

fn as_confirmed(order: &Order) -> BTreeMap<String, u32> {
    BTreeMap::from([(order.id.clone(), order.quantity)])
}

#[actix_web::test]
async fn a_purchase_whose_reply_came_too_late_is_answered_as_placed_once() {
    let proxy = redis_proxy().await;
    let (stack, purchases) = purchases_through(&proxy, 5_000).await;
    let item = stack.item(10, None).await;
    proxy.delay_replies(Duration::from_millis(1_000));
    let (order, ()) = tokio::join!(purchases.purchase(request(item, 2)), async {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        proxy.delay_replies(Duration::ZERO);
    });
    let order = order.expect("the sale happened, so it is not refused");
    stack
        .assert_conserved(item, 10, &as_confirmed(&order))
        .await;
}

#[actix_web::test]
async fn a_purchase_that_reached_redis_after_its_client_gave_up_is_answered_as_placed_once() {
    let proxy = redis_proxy().await;
    let (stack, purchases) = purchases_through(&proxy, 5_000).await;
    let item = stack.item(10, None).await;
    proxy.delay_requests(Duration::from_millis(1_000));
    let (order, ()) = tokio::join!(purchases.purchase(request(item, 3)), async {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        proxy.delay_requests(Duration::ZERO);
    });
    let order = order.expect("the sale happened, so it is not refused");
    stack
        .assert_conserved(item, 10, &as_confirmed(&order))
        .await;
}

#[actix_web::test]
async fn an_outcome_that_cannot_be_learned_in_time_is_outcome_unknown_never_busy() {
    let proxy = redis_proxy().await;
    let (stack, purchases) = purchases_through(&proxy, 1_000).await;
    let item = stack.item(10, None).await;
    proxy.break_all();
    let refused = purchases.purchase(request(item, 1)).await;
    proxy.restore();
    let Err(ApiError::OutcomeUnknown { order_id }) = refused else {
        panic!("expected OUTCOME_UNKNOWN, got {refused:?}");
    };
    // Redis never got it: the order does not exist, and stock is untouched.
    let looked_up = stack
        .client
        .get(&format!("/api/v1/orders/{order_id}"), Some(&token(1)))
        .await;
    assert_envelope(&looked_up, 404, "NOT_FOUND");
    assert_eq!(stack.redis_stock(item).await, 10);
}

fn attempt(order_id: &str, quantity: u32) -> Attempt {
    Attempt {
        event: StockEvent {
            version: events::EVENT_VERSION,
            order_id: order_id.to_owned(),
            user_id: 1,
            item_id: 1,
            quantity,
            purchased_at_ms: 1,
            request_id: None,
        },
        idempotency_key: None,
        idempotency_ttl_secs: 60,
    }
}

/// Redis with item 1 on sale (stock 10): the store goes straight to Redis, `pool`
/// through the proxy with a 300 ms reply timeout.
async fn item_behind(proxy: &ChaosProxy) -> (TestRedis, ItemStore, common::redis::RedisPool) {
    let redis = TestRedis::new();
    let mut settings = purchase_service::configuration::Settings::load().unwrap();
    redis.apply(&mut settings.redis);
    let store = ItemStore::new(
        common::redis::pool(&settings.redis).unwrap(),
        Keyspace::new(redis.prefix.clone()),
    );
    store
        .put(&ItemState {
            id: 1,
            stock: 10,
            max_per_user: None,
            on_sale: true,
        })
        .await
        .unwrap();
    settings.redis.port = proxy.port;
    settings.redis.response_timeout_ms = 300;
    let pool = common::redis::pool(&settings.redis).unwrap();
    (redis, store, pool)
}

async fn stock_and_outbox(redis: &TestRedis, store: &ItemStore) -> (i64, u64) {
    let stock: i64 = redis
        .connection()
        .await
        .get(store.keys(1).stock())
        .await
        .unwrap();
    (stock, store.outbox_len(1).await.unwrap())
}

#[tokio::test]
async fn a_purchase_script_arriving_after_its_order_was_ruled_out_does_nothing() {
    let proxy = redis_proxy().await;
    let (redis, store, pool) = item_behind(&proxy).await;
    let lua = LuaStrategy {
        redis: pool,
        keys: Keyspace::new(redis.prefix.clone()),
    };
    lua.preload().await.unwrap();
    proxy.delay_requests(Duration::from_millis(800));
    let order = attempt("ruled-out-1", 2);
    let outcome = lua.attempt(&order, 1).await;
    assert!(
        matches!(outcome, Err(AttemptError::Unknown(_))),
        "{outcome:?}"
    );
    // Settled straight at Redis, before the delayed script gets there.
    assert_eq!(
        store.rule_out(1, "ruled-out-1").await.unwrap(),
        Settled::RuledOut
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(stock_and_outbox(&redis, &store).await, (10, 0));
    let again = LuaStrategy {
        redis: store.redis().clone(),
        keys: Keyspace::new(redis.prefix.clone()),
    };
    assert_eq!(again.attempt(&order, 1).await.unwrap(), Outcome::Void);
    assert_eq!(stock_and_outbox(&redis, &store).await, (10, 0));
}

fn lock_strategy(pool: common::redis::RedisPool, keys: Keyspace) -> LockStrategy {
    LockStrategy {
        lock: DistributedLock::new(
            pool.clone(),
            LockSettings {
                max_retries: 5,
                retry_delay_min_us: 1_000,
                retry_delay_max_us: 3_000,
                ttl_ms: 5_000,
            },
        ),
        redis: pool,
        keys,
        after_watch: None,
    }
}

#[tokio::test]
async fn an_exec_whose_reply_never_came_is_unknown_and_settles_as_placed() {
    let proxy = Arc::new(redis_proxy().await);
    let (redis, store, pool) = item_behind(&proxy).await;
    let mut strategy = lock_strategy(pool, Keyspace::new(redis.prefix.clone()));
    let delaying = proxy.clone();
    strategy.after_watch = Some(Arc::new(move || {
        delaying.delay_replies(Duration::from_millis(800));
        Box::pin(async {})
    }));
    let outcome = strategy.attempt(&attempt("exec-late-1", 4), 1).await;
    proxy.delay_replies(Duration::ZERO);
    assert!(
        matches!(outcome, Err(AttemptError::Unknown(_))),
        "{outcome:?}"
    );
    assert_eq!(
        store.rule_out(1, "exec-late-1").await.unwrap(),
        Settled::InOutbox
    );
    assert_eq!(stock_and_outbox(&redis, &store).await, (6, 1));
}

#[tokio::test]
async fn an_exec_that_reaches_redis_after_its_order_was_ruled_out_is_aborted() {
    let proxy = Arc::new(redis_proxy().await);
    let (redis, store, pool) = item_behind(&proxy).await;
    let mut strategy = lock_strategy(pool, Keyspace::new(redis.prefix.clone()));
    let delaying = proxy.clone();
    strategy.after_watch = Some(Arc::new(move || {
        delaying.delay_requests(Duration::from_millis(800));
        Box::pin(async {})
    }));
    let outcome = strategy.attempt(&attempt("exec-void-1", 4), 1).await;
    proxy.delay_requests(Duration::ZERO);
    assert!(
        matches!(outcome, Err(AttemptError::Unknown(_))),
        "{outcome:?}"
    );
    assert_eq!(
        store.rule_out(1, "exec-void-1").await.unwrap(),
        Settled::RuledOut
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        stock_and_outbox(&redis, &store).await,
        (10, 0),
        "the watched void marker aborted the late EXEC"
    );
}
