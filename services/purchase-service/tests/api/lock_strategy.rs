//! The reference's service cases for the lock strategy, against real Redis: the test
//! holds the lock or touches the watched key itself.

use common::config::LockSettings;
use common::redis::Keyspace;
use events::StockEvent;
use inventory::store::ItemState;
use inventory::{DistributedLock, ItemStore};
use purchase_service::purchase::lock::LockStrategy;
use purchase_service::purchase::{Attempt, Outcome};
use redis::AsyncCommands;
use std::sync::Arc;
use testkit::TestRedis;

fn attempt(quantity: u32) -> Attempt {
    Attempt {
        event: StockEvent {
            version: 1,
            order_id: uuid::Uuid::now_v7().to_string(),
            user_id: 1,
            item_id: 1,
            quantity,
            purchased_at_ms: 0,
            request_id: None,
        },
        idempotency_key: None,
        idempotency_ttl_secs: 60,
    }
}

async fn setup(stock: u32) -> (TestRedis, LockStrategy, ItemStore) {
    let redis = TestRedis::new();
    let mut settings = purchase_service::configuration::Settings::load().unwrap();
    redis.apply(&mut settings.redis);
    let pool = common::redis::pool(&settings.redis).unwrap();
    let keys = Keyspace::new(redis.prefix.clone());
    let store = ItemStore::new(pool.clone(), keys.clone());
    store
        .put(&ItemState {
            id: 1,
            stock,
            max_per_user: None,
            on_sale: true,
        })
        .await
        .unwrap();
    let lock = DistributedLock::new(
        pool.clone(),
        LockSettings {
            max_retries: 5,
            retry_delay_min_us: 1_000,
            retry_delay_max_us: 3_000,
            ttl_ms: 5_000,
        },
    );
    (
        redis,
        LockStrategy {
            redis: pool,
            keys,
            lock,
            after_watch: None,
        },
        store,
    )
}

#[tokio::test]
async fn the_success_path_writes_stock_outbox_and_count() {
    let (redis, strategy, store) = setup(10).await;
    let outcome = strategy.attempt(&attempt(4), 1).await.unwrap();
    assert_eq!(outcome, Outcome::Placed);
    let mut conn = redis.connection().await;
    let stock: i64 = conn.get(store.keys(1).stock()).await.unwrap();
    assert_eq!(stock, 6);
    assert_eq!(store.outbox_len(1).await.unwrap(), 1);
    let bought: i64 = conn.hget(store.keys(1).bought(), 1).await.unwrap();
    assert_eq!(bought, 4);
    let lock_left: bool = conn.exists(store.keys(1).lock()).await.unwrap();
    assert!(!lock_left, "the lock is released");
}

#[tokio::test]
async fn insufficient_stock_writes_nothing() {
    let (redis, strategy, store) = setup(3).await;
    let outcome = strategy.attempt(&attempt(4), 1).await.unwrap();
    assert_eq!(outcome, Outcome::InsufficientStock { current_stock: 3 });
    let stock: i64 = redis
        .connection()
        .await
        .get(store.keys(1).stock())
        .await
        .unwrap();
    assert_eq!(stock, 3);
    assert_eq!(store.outbox_len(1).await.unwrap(), 0);
}

#[tokio::test]
async fn a_change_to_a_watched_key_aborts_exec_and_decrements_nothing() {
    let (redis, mut strategy, store) = setup(10).await;
    let stock_key = store.keys(1).stock();
    let client = redis::Client::open(testkit::redis_url()).unwrap();
    strategy.after_watch = Some(Arc::new(move || {
        let (client, key) = (client.clone(), stock_key.clone());
        Box::pin(async move {
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            conn.set::<_, _, ()>(&key, 9).await.unwrap();
        })
    }));
    let outcome = strategy.attempt(&attempt(4), 1).await.unwrap();
    assert_eq!(outcome, Outcome::Busy);
    let stock: i64 = redis
        .connection()
        .await
        .get(store.keys(1).stock())
        .await
        .unwrap();
    assert_eq!(stock, 9, "only the concurrent change; nothing decremented");
    assert_eq!(store.outbox_len(1).await.unwrap(), 0);
}

#[tokio::test]
async fn a_lock_never_acquired_is_busy_after_one_plus_five_tries() {
    let (redis, strategy, store) = setup(10).await;
    let mut conn = redis.connection().await;
    conn.set::<_, _, ()>(store.keys(1).lock(), "someone-else")
        .await
        .unwrap();
    // The number of attempts (1 + LOCK_MAX_RETRIES) is checked in inventory's lock tests.
    let outcome = strategy.attempt(&attempt(1), 1).await.unwrap();
    assert_eq!(outcome, Outcome::Busy);
    let stock: i64 = conn.get(store.keys(1).stock()).await.unwrap();
    assert_eq!(stock, 10);
    let holder: String = conn.get(store.keys(1).lock()).await.unwrap();
    assert_eq!(holder, "someone-else");
}
