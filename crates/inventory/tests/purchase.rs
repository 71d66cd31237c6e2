//! Both ways of taking a purchase against the real Redis: the reference's cases for the
//! lock strategy (the test holds the lock or touches a watched key itself), and what
//! each way does when its reply never comes, staged with a chaos proxy that delays one
//! direction: the outcome is unknown, and settling it is final.

use common::config::{LockSettings, RedisSettings};
use common::redis::{Keyspace, RedisClient};
use inventory::purchase::{AttemptError, Outcome, Purchase, WatchHook};
use inventory::settle::Settled;
use inventory::stock::ItemState;
use inventory::{DistributedLock, Inventory};
use redis::AsyncCommands;
use std::sync::Arc;
use std::time::Duration;
use testkit::{ChaosProxy, TestRedis};

/// The test Redis under this test's prefix, giving up on a reply after 300 ms.
fn settings(redis: &TestRedis) -> RedisSettings {
    RedisSettings {
        response_timeout_ms: 300,
        ..redis.settings()
    }
}

/// Item 1 on sale with `stock`; the store goes straight to Redis.
async fn item(stock: u32) -> (TestRedis, Inventory) {
    let redis = TestRedis::new();
    let store = Inventory::new(
        common::redis::client(&settings(&redis)).unwrap(),
        Keyspace::new(redis.prefix.clone()),
    );
    store
        .stock
        .put(&ItemState::on_sale(1, stock))
        .await
        .unwrap();
    (redis, store)
}

/// The test's keys seen through the Redis at `port`: a proxy in front of the test
/// Redis, or a server of the test's own (300 ms reply timeout).
fn through(redis: &TestRedis, port: u16) -> Inventory {
    Inventory::new(
        common::redis::client(&RedisSettings {
            port,
            ..settings(redis)
        })
        .unwrap(),
        Keyspace::new(redis.prefix.clone()),
    )
}

/// Why the tests through a proxy skip themselves on a Redis Cluster.
const BEHIND_A_PROXY: &str = "a chaos proxy in front of it delays one direction \
     (a cluster client learns the nodes' own addresses and goes around a proxy)";

async fn redis_proxy() -> Arc<ChaosProxy> {
    Arc::new(ChaosProxy::to_redis().await)
}

fn lock(redis: RedisClient) -> DistributedLock {
    DistributedLock::new(
        redis,
        LockSettings {
            max_retries: 5,
            retry_delay_min_us: 1_000,
            retry_delay_max_us: 3_000,
            ttl_ms: 5_000,
        },
    )
}

fn purchase(order_id: &str, quantity: u32) -> Purchase<'_> {
    Purchase {
        item_id: 1,
        user_id: 1,
        quantity,
        order_id,
        event_json: "{}",
        now_ms: 1,
        idempotency: None,
    }
}

/// The purchase under the lock (the reference design), with no hook.
async fn under_lock(store: &Inventory, purchase: &Purchase<'_>) -> Outcome {
    store
        .stock
        .purchase_under_lock(purchase, &lock(store.redis().clone()), None)
        .await
        .unwrap()
}

async fn stock_and_outbox(redis: &TestRedis, store: &Inventory) -> (i64, u64) {
    let stock: i64 = redis
        .connection()
        .await
        .get(store.keys(1).stock())
        .await
        .unwrap();
    (stock, store.outbox.len(1).await.unwrap())
}

#[tokio::test]
async fn under_lock_the_success_path_writes_stock_outbox_and_count() {
    let (redis, store) = item(10).await;
    let outcome = under_lock(&store, &purchase("o-1", 4)).await;
    assert_eq!(outcome, Outcome::Placed);
    assert_eq!(stock_and_outbox(&redis, &store).await, (6, 1));
    let mut conn = redis.connection().await;
    let bought: i64 = conn.hget(store.keys(1).bought(), 1).await.unwrap();
    assert_eq!(bought, 4);
    let lock_left: bool = conn.exists(store.keys(1).lock()).await.unwrap();
    assert!(!lock_left, "the lock is released");
}

#[tokio::test]
async fn under_lock_insufficient_stock_writes_nothing() {
    let (redis, store) = item(3).await;
    let outcome = under_lock(&store, &purchase("o-1", 4)).await;
    assert_eq!(outcome, Outcome::InsufficientStock { current_stock: 3 });
    assert_eq!(stock_and_outbox(&redis, &store).await, (3, 0));
}

#[tokio::test]
async fn a_change_to_a_watched_key_aborts_exec_and_decrements_nothing() {
    let (redis, store) = item(10).await;
    let stock_key = store.keys(1).stock();
    let other_client = redis.connection().await;
    let hook: WatchHook = Arc::new(move || {
        let (mut conn, key) = (other_client.clone(), stock_key.clone());
        Box::pin(async move {
            conn.set::<_, _, ()>(&key, 9).await.unwrap();
        })
    });
    let outcome = store
        .stock
        .purchase_under_lock(
            &purchase("o-1", 4),
            &lock(store.redis().clone()),
            Some(&hook),
        )
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Busy);
    assert_eq!(
        stock_and_outbox(&redis, &store).await,
        (9, 0),
        "only the concurrent change; nothing decremented"
    );
}

#[tokio::test]
async fn a_lock_never_acquired_is_busy_and_changes_nothing() {
    let (redis, store) = item(10).await;
    let mut conn = redis.connection().await;
    conn.set::<_, _, ()>(store.keys(1).lock(), "someone-else")
        .await
        .unwrap();
    // The number of attempts (1 + LOCK_MAX_RETRIES) is checked in the lock's own tests.
    let outcome = under_lock(&store, &purchase("o-1", 1)).await;
    assert_eq!(outcome, Outcome::Busy);
    assert_eq!(stock_and_outbox(&redis, &store).await, (10, 0));
    let holder: String = conn.get(store.keys(1).lock()).await.unwrap();
    assert_eq!(holder, "someone-else");
}

/// The outcome of a purchase under the lock is what EXEC answered: a Redis that refuses
/// UNWATCH changes nothing.
#[tokio::test]
async fn under_lock_the_outcome_never_depends_on_unwatch() {
    if testkit::redis_mode() == common::config::RedisMode::Cluster {
        eprintln!("note: skipped on a Redis Cluster: the test starts a server of its own");
        return;
    }
    let server = testkit::RedisServer::start(&["--rename-command", "UNWATCH", ""]);
    let redis = TestRedis::new();
    let store = through(&redis, server.port);
    let terms = inventory::stock::SaleTerms {
        price: 100,
        payment_window_secs: Some(60),
        ..Default::default()
    };
    store
        .stock
        .put(&ItemState {
            terms,
            ..ItemState::on_sale(1, 3)
        })
        .await
        .unwrap();
    let reserved = under_lock(&store, &purchase("o-1", 2)).await;
    assert!(
        matches!(reserved, Outcome::Reserved { amount: 200, .. }),
        "{reserved:?}"
    );
    let refused = under_lock(&store, &purchase("o-2", 2)).await;
    assert_eq!(refused, Outcome::InsufficientStock { current_stock: 1 });
    assert_eq!(store.outbox.len(1).await.unwrap(), 1);
}

/// The script runs inside MULTI, where a NOSCRIPT would come only at EXEC: a Redis that
/// does not hold it (a new server, a flushed script cache) still takes the purchase.
#[tokio::test]
async fn under_lock_the_script_runs_on_a_redis_that_has_not_got_it() {
    if testkit::needs_single_redis("the test starts a server of its own and flushes its scripts") {
        return;
    }
    let server = testkit::RedisServer::start(&[]);
    let redis = TestRedis::new();
    let store = through(&redis, server.port);
    store.stock.put(&ItemState::on_sale(1, 10)).await.unwrap();
    assert_eq!(
        under_lock(&store, &purchase("o-1", 4)).await,
        Outcome::Placed
    );
    let mut conn = store.redis().get().await.unwrap();
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        under_lock(&store, &purchase("o-2", 4)).await,
        Outcome::Placed
    );
    assert_eq!(
        under_lock(&store, &purchase("o-3", 4)).await,
        Outcome::InsufficientStock { current_stock: 2 }
    );
    assert_eq!(store.outbox.len(1).await.unwrap(), 2);
}

#[tokio::test]
async fn a_purchase_script_arriving_after_its_order_was_ruled_out_does_nothing() {
    if testkit::needs_single_redis(BEHIND_A_PROXY) {
        return;
    }
    let proxy = redis_proxy().await;
    let (redis, store) = item(10).await;
    let slow = through(&redis, proxy.port);
    slow.stock.preload_purchase_script().await.unwrap();
    proxy.delay_requests(Duration::from_millis(800));
    let outcome = slow
        .stock
        .purchase_by_script(&purchase("ruled-out-1", 2))
        .await;
    assert!(
        matches!(outcome, Err(AttemptError::Unknown(_))),
        "{outcome:?}"
    );
    // Settled straight at Redis, before the delayed script gets there.
    assert_eq!(
        store.outbox.rule_out(1, "ruled-out-1").await.unwrap(),
        Settled::RuledOut
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(stock_and_outbox(&redis, &store).await, (10, 0));
    assert_eq!(
        store
            .stock
            .purchase_by_script(&purchase("ruled-out-1", 2))
            .await
            .unwrap(),
        Outcome::Void
    );
    assert_eq!(stock_and_outbox(&redis, &store).await, (10, 0));
}

/// A hook that sets one of the proxy's delays between the lock strategy's WATCH and its
/// EXEC.
fn delay_before_exec(proxy: &Arc<ChaosProxy>, replies: bool) -> WatchHook {
    let proxy = proxy.clone();
    Arc::new(move || {
        if replies {
            proxy.delay_replies(Duration::from_millis(800));
        } else {
            proxy.delay_requests(Duration::from_millis(800));
        }
        Box::pin(async {})
    })
}

/// A purchase of 4 of item 1's 10 units under the lock through a proxy that holds the
/// EXEC's reply (`replies`) or the EXEC itself back for 800 ms, past the 300 ms reply
/// timeout: its outcome is unknown, and settling it at Redis finds `settled`. The proxy
/// is returned with the test Redis and a store straight at it, since a held-back EXEC may
/// still be on its way.
async fn exec_held_back(
    order_id: &str,
    replies: bool,
    settled: Settled,
) -> (Arc<ChaosProxy>, TestRedis, Inventory) {
    let proxy = redis_proxy().await;
    let (redis, store) = item(10).await;
    let slow = through(&redis, proxy.port);
    let outcome = slow
        .stock
        .purchase_under_lock(
            &purchase(order_id, 4),
            &lock(slow.redis().clone()),
            Some(&delay_before_exec(&proxy, replies)),
        )
        .await;
    if replies {
        proxy.delay_replies(Duration::ZERO);
    } else {
        proxy.delay_requests(Duration::ZERO);
    }
    assert!(
        matches!(outcome, Err(AttemptError::Unknown(_))),
        "{outcome:?}"
    );
    assert_eq!(store.outbox.rule_out(1, order_id).await.unwrap(), settled);
    (proxy, redis, store)
}

#[tokio::test]
async fn an_exec_whose_reply_never_came_is_unknown_and_settles_as_placed() {
    if testkit::needs_single_redis(BEHIND_A_PROXY) {
        return;
    }
    let (_proxy, redis, store) = exec_held_back("exec-late-1", true, Settled::InOutbox).await;
    assert_eq!(stock_and_outbox(&redis, &store).await, (6, 1));
}

#[tokio::test]
async fn an_exec_that_reaches_redis_after_its_order_was_ruled_out_is_aborted() {
    if testkit::needs_single_redis(BEHIND_A_PROXY) {
        return;
    }
    let (_proxy, redis, store) = exec_held_back("exec-void-1", false, Settled::RuledOut).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        stock_and_outbox(&redis, &store).await,
        (10, 0),
        "the watched void marker aborted the late EXEC"
    );
}
