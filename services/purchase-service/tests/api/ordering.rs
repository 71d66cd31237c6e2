//! Events of one item reach stock-writer in any order: two purchase-service instances
//! publish on their own channels, a release whose publish failed is sent later by the
//! relay, and two stock-writers reorder even one channel's messages. A resale that
//! arrives before the release that freed its unit is persisted all the same, never
//! parked, and the stock adds up once both have arrived.

use crate::helpers::{Stack, spawn_stack, start_writer, token};
use crate::lifecycle::{mysql_statuses, reservable};
use purchase_service::configuration::Strategy;
use purchase_service::startup::Application;
use serde_json::json;
use std::collections::BTreeMap;
use testkit::ChaosProxy;

/// Waits until MySQL holds `wanted` (order id → status) for the item and no order of it
/// is left in the outbox; the failure shows what MySQL, the outbox and the parked set held.
async fn settled_as(stack: &Stack, item: u64, wanted: &BTreeMap<String, String>) {
    let mut seen = None;
    for _ in 0..300 {
        let statuses = mysql_statuses(stack, item).await;
        let outbox = stack.store.outbox.len(item).await.unwrap();
        let parked = stack.store.outbox.parked_orders(&[item]).await.unwrap();
        if &statuses == wanted && outbox == 0 && parked.is_empty() {
            return;
        }
        seen = Some((statuses, outbox, parked));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "after 30 s MySQL, the outbox's length and the parked orders were {seen:?}, wanted {wanted:?}"
    );
}

#[actix_web::test]
async fn a_resale_that_reaches_stock_writer_before_its_release_is_persisted_not_parked() {
    let stack = spawn_stack(Strategy::Lua).await;
    let _second_writer = start_writer(&stack.env).await;
    // Instance B reaches the broker through a proxy the test breaks.
    let broker = ChaosProxy::to_rabbitmq().await;
    let mut settings_b = stack.settings.clone();
    settings_b.rabbitmq.port = broker.port;
    let (instance_b, _) = testkit::serve::<Application>(settings_b).await;
    let item = stack.item_on_terms(1, None, reservable(600)).await;

    let first = stack.reserve(1, item).await;
    settled_as(
        &stack,
        item,
        &BTreeMap::from([(first.clone(), "reserved".into())]),
    )
    .await;
    assert_eq!(stack.mysql_stock(item).await, 0);

    // The buyer cancels through B, which cannot publish: the release waits in the outbox
    // until a relay sends it, while the unit sells again through A at once.
    broker.break_all();
    let cancelled = instance_b
        .post(
            &format!("/api/v1/orders/{first}/cancel"),
            Some(&token(1)),
            &json!({}),
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    let resale = stack.reserve(2, item).await;

    settled_as(
        &stack,
        item,
        &BTreeMap::from([(first, "cancelled".into()), (resale, "reserved".into())]),
    )
    .await;
    broker.restore();
    assert_eq!(stack.mysql_stock(item).await, 0, "MySQL stock");
    assert_eq!(stack.redis_stock(item).await, 0, "Redis stock");
}

#[actix_web::test]
async fn two_instances_and_two_writers_persist_expiries_and_resales_in_any_order() {
    const UNITS: u64 = 120;
    let stack = spawn_stack(Strategy::Lua).await;
    let _second_writer = start_writer(&stack.env).await;
    let (instance_b, _) = testkit::serve::<Application>(stack.settings.clone()).await;
    let instances = [&stack.client, &instance_b];
    let item = stack.item_on_terms(UNITS as u32, None, reservable(1)).await;
    let purchase = |user: u64| {
        let client = instances[(user % 2) as usize];
        async move {
            let path = format!("/api/v1/items/{item}/purchase");
            client
                .post(&path, Some(&token(user)), &json!({"quantity": 1}))
                .await
        }
    };
    let expiring = futures_util::future::join_all((1..=UNITS).map(|user| async move {
        let answer = purchase(user).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body["order"]["id"].as_str().unwrap().to_owned()
    }))
    .await;
    // A second wave, on a long window, takes each unit the moment its reservation
    // expires, through both instances: releases and resales race to the two writers.
    stack.set_terms(item, reservable(600)).await;
    let resold = futures_util::future::join_all((1001..1001 + UNITS).map(|user| async move {
        for _ in 0..1000 {
            let answer = purchase(user).await;
            if answer.status == 200 {
                return answer.body["order"]["id"].as_str().unwrap().to_owned();
            }
            assert_eq!(
                answer.body["error_code"], "INSUFFICIENT_STOCK",
                "{}",
                answer.body
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("buyer {user} found no unit back in 20 s");
    }))
    .await;

    let wanted: BTreeMap<String, String> = expiring
        .into_iter()
        .map(|order| (order, "expired".to_owned()))
        .chain(
            resold
                .into_iter()
                .map(|order| (order, "reserved".to_owned())),
        )
        .collect();
    settled_as(&stack, item, &wanted).await;
    assert_eq!(stack.mysql_stock(item).await, 0, "MySQL stock");
    assert_eq!(stack.env.database.stock_owed(item).await, 0, "MySQL owes");
    assert_eq!(stack.redis_stock(item).await, 0, "Redis stock");
}
