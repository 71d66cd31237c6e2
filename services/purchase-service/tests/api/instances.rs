//! The registry of live purchase-service instances: each instance gets its own rank, a
//! member that stops beating drops out once its heartbeat runs out, and one that leaves
//! is gone at once.

use crate::helpers::purchase_settings;
use common::redis::Keyspace;
use prometheus_client::metrics::gauge::Gauge;
use purchase_service::configuration::Strategy;
use purchase_service::membership::{Registry, Share};
use std::time::Duration;
use testkit::TestEnv;

/// Heartbeats this often in these tests, so a membership change shows within 300 ms.
const HEARTBEAT_MS: u64 = 100;

#[actix_web::test]
async fn an_instance_that_stops_beating_drops_out_once_its_heartbeat_runs_out() {
    let env = TestEnv::new().await;
    let settings = purchase_settings(&env, Strategy::Lua);
    let redis = common::redis::pool(&settings.redis).unwrap();
    let keys = Keyspace::new(env.redis.prefix.clone());
    let heartbeat = Duration::from_millis(HEARTBEAT_MS);
    let registry = || Registry::new(redis.clone(), &keys, heartbeat, Gauge::default());
    let (first, second) = (registry(), registry());
    assert_eq!(first.beat().await.unwrap(), Share::ALONE);
    let seen_by_second = second.beat().await.unwrap();
    let seen_by_first = first.beat().await.unwrap();
    assert_eq!(seen_by_first.instances, 2);
    assert_eq!(seen_by_second.instances, 2);
    assert_ne!(seen_by_first.rank, seen_by_second.rank, "one rank each");

    // The second stops beating (as a killed process would): once its heartbeat has run
    // out, the first is alone.
    testkit::eventually(10, "the silent instance dropped", || async {
        first.beat().await.unwrap() == Share::ALONE
    })
    .await;

    // One that leaves is gone at once.
    second.beat().await.unwrap();
    assert_eq!(first.beat().await.unwrap().instances, 2);
    second.leave().await.unwrap();
    assert_eq!(first.beat().await.unwrap(), Share::ALONE);
}
