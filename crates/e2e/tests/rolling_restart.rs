//! A rolling restart during a sale, through the real gateway: two purchase-service
//! instances, each replaced on its own port (as `scripts/stack restart` does) while
//! buyers purchase outright, reserve and then pay, cancel or let expire, and look their
//! orders up over kept-alive connections. Not one request may fail, and every order
//! answered 200 must be persisted exactly once with the stock conserved. Needs a stack
//! of its own: skipped under `E2E_BASE_URL`.

use diesel_async::{AsyncConnection, AsyncMysqlConnection};
use e2e::{LocalStack, api};
use loadgen::lifecycle::{Lifecycle, LifecycleOutcome, is_failure};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const HOT_STOCK: u64 = 1_000_000;
const SCARCE_STOCK: u64 = 200;
const PRICE: u64 = 100;

async fn admin_token(stack: &LocalStack) -> String {
    let (email, password) = ("rolling-admin@example.com", "rolling-admin-password");
    stack.create_admin(email, password);
    api::token_of(&api::login(&stack.gateway, email, password).await)
}

async fn create_item(stack: &LocalStack, admin: &str, stock: u64, window: Option<u32>) -> u64 {
    let item = json!({"name": format!("rolling {stock}"), "price": PRICE, "stock": stock,
        "payment_window_secs": window});
    api::create_item(&stack.gateway, admin, &item).await
}

/// Every answer of the run, summed over its seconds.
fn all_answers(outcome: &LifecycleOutcome) -> BTreeMap<String, u64> {
    outcome.between(0.0, outcome.per_second.len() as f64)
}

#[actix_web::test]
async fn replacing_each_purchase_instance_during_a_sale_fails_no_request_and_loses_no_order() {
    if e2e::needs_own_stack("the rolling restart under load") {
        return;
    }
    let mut stack = LocalStack::start_with_instances(
        &[
            ("SHUTDOWN_DRAIN_SECS", "1"),
            ("SHUTDOWN_TIMEOUT_SECS", "10"),
        ],
        &[("purchase-service", 2)],
    )
    .await;
    let admin = admin_token(&stack).await;
    let hot = create_item(&stack, &admin, HOT_STOCK, None).await;
    let scarce = create_item(&stack, &admin, SCARCE_STOCK, Some(2)).await;
    let load = Lifecycle {
        url: stack.gateway.base.clone(),
        hot_item: hot,
        hot_buyers: 8,
        reservable_item: scarce,
        price: PRICE,
        reserving_buyers: 8,
        private_key: testkit::keys().private_path.clone(),
        webhook_secret: e2e::LOCAL_WEBHOOK_SECRET.to_owned(),
        users: 500,
        longest: Duration::from_secs(120),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let running = {
        let (load, stop) = (load.clone(), stop.clone());
        std::thread::spawn(move || load.execute(stop))
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    for instance in 0..2 {
        stack
            .replace_instance("purchase-service", instance, Duration::from_secs(20))
            .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcome = running
        .join()
        .expect("the load thread")
        .expect("the load ran");
    let outcome = std::thread::spawn(move || {
        load.settle_unknown(&mut outcome);
        outcome
    })
    .join()
    .expect("asking the unknown purchases again");

    let answers = all_answers(&outcome);
    let failures: BTreeMap<&String, &u64> = answers
        .iter()
        .filter(|(kind, _)| is_failure(kind))
        .collect();
    assert!(
        failures.is_empty(),
        "requests failed during the rolling restart: {failures:?} (all answers: {answers:?})"
    );
    assert!(
        outcome.purchased.len() > 100 && !outcome.reserved.is_empty(),
        "the load barely ran: {answers:?}"
    );
    for kind in ["pay 200", "cancel 200", "lookup 200"] {
        assert!(answers.contains_key(kind), "no {kind} in {answers:?}");
    }

    let mut mysql = AsyncMysqlConnection::establish(&stack.database.url())
        .await
        .expect("connect to the test database");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let hot_account = stack.stock_account(hot, HOT_STOCK).await;
        let scarce_statuses = devstack::stock::order_statuses(&mut mysql, scarce)
            .await
            .expect("statuses");
        let settled = hot_account.conserved()
            && hot_account.order_rows >= outcome.purchased.len() as u64
            && scarce_statuses.len() >= outcome.reserved.len()
            && !scarce_statuses.values().any(|s| s == "reserved");
        if settled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the orders never settled: {hot_account:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let persisted = devstack::stock::persisted_order_ids(&mut mysql, hot)
        .await
        .expect("persisted orders");
    let audit = devstack::OrderAudit::new(&outcome.purchased, &persisted);
    assert_eq!(audit.missing, 0, "orders answered 200 but lost: {audit:?}");
    let hot_account = stack.stock_account(hot, HOT_STOCK).await;
    assert_eq!(hot_account.duplicated(), 0, "{hot_account:?}");
    let statuses = devstack::stock::order_statuses(&mut mysql, scarce)
        .await
        .expect("statuses");
    for id in &outcome.paid {
        assert_eq!(statuses.get(id).map(String::as_str), Some("paid"), "{id}");
    }
    for id in &outcome.cancelled {
        assert_eq!(
            statuses.get(id).map(String::as_str),
            Some("cancelled"),
            "{id}"
        );
    }
    let scarce_account = stack.stock_account(scarce, SCARCE_STOCK).await;
    assert!(scarce_account.conserved(), "{scarce_account:?}");
    assert_eq!(scarce_account.duplicated(), 0, "{scarce_account:?}");
}
