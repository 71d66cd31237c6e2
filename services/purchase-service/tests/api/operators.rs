//! The operator commands (`sync-stock`, `rebuild-redis`) run while a sale goes on: raced
//! against the cancels, payments and expiries that end reservations, they never bring
//! an ended reservation back nor release a unit twice.

use crate::helpers::{Stack, spawn_stack, token};
use crate::lifecycle::{mysql_statuses, reservable};
use purchase_service::configuration::Strategy;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const UNITS: u32 = 150;
const WINDOW_SECS: u32 = 8;

/// Sets the item's MySQL row on the same terms as Redis's, since both commands read
/// the terms from MySQL.
async fn reservable_in_mysql(stack: &Stack, item: u64) {
    use diesel_async::RunQueryDsl;
    let terms = reservable(WINDOW_SECS);
    diesel::sql_query(format!(
        "UPDATE items SET price = {}, payment_window_secs = {WINDOW_SECS} WHERE id = {item}",
        terms.price
    ))
    .execute(&mut stack.env.database.connect().await)
    .await
    .unwrap();
}

/// Whether Redis holds no open reservation of the item.
async fn none_open(stack: &Stack, item: u64) -> bool {
    stack
        .store
        .reservations
        .open(item)
        .await
        .unwrap()
        .is_empty()
}

#[actix_web::test]
async fn rebuild_and_sync_racing_cancels_payments_and_expiries_release_each_unit_once() {
    let stack = spawn_stack(Strategy::Lua).await;
    let item = stack
        .item_on_terms(UNITS, None, reservable(WINDOW_SECS))
        .await;
    reservable_in_mysql(&stack, item).await;
    let orders = stack.reserve_each(item, 1..=u64::from(UNITS)).await;
    testkit::eventually(30, "MySQL has every reservation", || async {
        mysql_statuses(&stack, item).await.len() == UNITS as usize
    })
    .await;

    let settings: stock_writer::configuration::Settings = stack.env.settings();
    let rebuild = stock_writer::startup::redis_rebuild(&settings, Duration::from_secs(30)).unwrap();
    let sync = stock_writer::startup::stock_sync(&settings).unwrap();
    let done = AtomicBool::new(false);
    let operating = async {
        let mut runs = 0;
        while !done.load(Ordering::SeqCst) {
            rebuild.run(Some(item), |_| {}).await.unwrap();
            sync.run(Some(item)).await.unwrap();
            runs += 1;
        }
        runs
    };
    // A third of the buyers cancel, a third pay, the rest let the reservation expire
    // (after WINDOW_SECS, while the commands still run).
    let (cancelling, paying, expiring) = (
        &orders[..UNITS as usize / 3],
        &orders[UNITS as usize / 3..2 * UNITS as usize / 3],
        &orders[2 * UNITS as usize / 3..],
    );
    let ending = async {
        for ((canceller, cancelled), (_, paid)) in cancelling.iter().zip(paying) {
            let cancel = stack.cancel(*canceller, cancelled).await;
            assert_eq!(cancel.status, 200, "{}", cancel.body);
            let pay = stack
                .pay(paid, &format!("pay-{paid}"), reservable(1).price)
                .await;
            assert_eq!(pay.status, 200, "{}", pay.body);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        testkit::eventually(30, "every unpaid reservation expired in Redis", || {
            none_open(&stack, item)
        })
        .await;
        // A few more passes once everything has ended.
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        done.store(true, Ordering::SeqCst);
    };
    let (runs, ()) = tokio::join!(operating, ending);
    assert!(runs >= 2, "the commands ran {runs} time(s) only");

    let paid = paying.len() as u32;
    testkit::eventually(30, "MySQL has every order in its end status", || async {
        let statuses = mysql_statuses(&stack, item).await;
        statuses.values().all(|s| s != "reserved")
            && stack.store.outbox.len(item).await.unwrap() == 0
    })
    .await;
    let statuses = mysql_statuses(&stack, item).await;
    let count = |status: &str| statuses.values().filter(|s| *s == status).count();
    assert_eq!(
        (count("cancelled"), count("paid"), count("expired")),
        (cancelling.len(), paying.len(), expiring.len()),
        "each order ended once, the way its buyer ended it"
    );
    assert!(
        none_open(&stack, item).await,
        "no ended reservation came back"
    );
    // A reservation brought back after it ended would have ended a second time (expired),
    // releasing its units again: Redis's record of each end must be MySQL's.
    let ids: Vec<(u64, &str)> = orders.iter().map(|(_, id)| (item, id.as_str())).collect();
    let ends = stack.store.reservations.settled(&ids).await.unwrap();
    for ((_, id), end) in ids.iter().zip(ends) {
        let end = end.unwrap_or_default();
        let end = end.split(':').next().unwrap_or_default();
        assert_eq!(
            end, statuses[*id],
            "{id}: ended in Redis as {end}, in MySQL as {}",
            statuses[*id]
        );
    }
    for (canceller, cancelled) in cancelling {
        let again = stack.cancel(*canceller, cancelled).await;
        assert_eq!(again.status, 409, "{cancelled}: {}", again.body);
    }
    assert_eq!(stack.mysql_stock(item).await, UNITS - paid, "MySQL stock");
    assert_eq!(
        stack.redis_stock(item).await,
        i64::from(UNITS - paid),
        "Redis stock = MySQL stock"
    );

    // What is left sells exactly once, and nothing is parked.
    let mut sold = 0;
    for user in 1_000..1_000 + u64::from(UNITS) {
        let response = stack
            .post_purchase(item, Some(&token(user)), &json!({"quantity": 1}))
            .await;
        match response.status {
            200 => sold += 1,
            409 => break,
            _ => panic!("{}", response.body),
        }
    }
    assert_eq!(sold, UNITS - paid, "the units released, each once");
    testkit::eventually(30, "the resales persisted", || async {
        stack.mysql_stock(item).await == 0 && stack.store.outbox.len(item).await.unwrap() == 0
    })
    .await;
    assert_eq!(
        stack.store.outbox.parked_counts(&[item]).await.unwrap(),
        [0]
    );
}
