//! The waiting room through the real service: one ticket per buyer, a fair start (a
//! random shuffle of early joiners, arrival order after), passes in position order within
//! `max_admitted` and the units left, a lapse, a cancel or an expiry passing the place
//! on, sold out told at once, the room's keys kept a day past the sale, and the pass
//! checked and used by the purchase itself, with two instances racing.

use crate::helpers::{Stack, assert_envelope, spawn_stack, token};
use crate::instances::two_instances;
use crate::lifecycle::reservable;
use inventory::room::RoomTerms;
use inventory::stock::SaleTerms;
use purchase_service::configuration::Strategy;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use testkit::{Client, Response};

fn room(max_admitted: Option<u32>, pass_secs: u32) -> SaleTerms {
    SaleTerms {
        room: RoomTerms {
            enabled: true,
            max_admitted,
            pass_secs,
        },
        ..SaleTerms::default()
    }
}

fn queue_path(item: u64) -> String {
    format!("/api/v1/items/{item}/queue")
}

async fn join_at(client: &Client, user: u64, item: u64) -> Response {
    client
        .post(&queue_path(item), Some(&token(user)), &json!({}))
        .await
}

async fn ticket_at(client: &Client, user: u64, item: u64) -> Response {
    client.get(&queue_path(item), Some(&token(user))).await
}

async fn join(stack: &Stack, user: u64, item: u64) -> Value {
    let joined = join_at(&stack.client, user, item).await;
    assert_eq!(joined.status, 200, "{}", joined.body);
    joined.body
}

async fn ticket(stack: &Stack, user: u64, item: u64) -> Value {
    let read = ticket_at(&stack.client, user, item).await;
    assert_eq!(read.status, 200, "{}", read.body);
    read.body
}

async fn redis_now_ms(stack: &Stack) -> i64 {
    let mut conn = stack.env.redis.connection().await;
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    secs * 1000 + micros / 1000
}

#[actix_web::test]
async fn one_ticket_per_buyer_and_a_purchase_needs_an_open_pass() {
    let stack = spawn_stack(Strategy::Lua).await;
    let plain = stack.item(5, None).await;
    let item = stack.item_on_terms(5, None, room(Some(1), 60)).await;

    assert_envelope(
        &join_at(&stack.client, 1, plain).await,
        409,
        "NO_WAITING_ROOM",
    );
    assert_envelope(&join_at(&stack.client, 1, 999_999).await, 404, "NOT_FOUND");
    assert_envelope(&ticket_at(&stack.client, 1, item).await, 404, "NOT_FOUND");
    let anonymous = stack.client.get(&queue_path(item), None).await;
    assert_envelope(&anonymous, 401, "UNAUTHENTICATED");
    let unqueued = stack.buy(3, item, json!(1)).await;
    assert_envelope(&unqueued, 409, "NOT_ADMITTED");
    assert_eq!(unqueued.body["state"], Value::Null);

    let first = join(&stack, 1, item).await;
    assert_eq!(first["state"], "admitted", "{first}");
    assert!(first["admitted_until"].is_string(), "{first}");
    assert_eq!(join(&stack, 1, item).await["joined_at"], first["joined_at"]);

    let second = join(&stack, 2, item).await;
    assert_eq!(second["state"], "waiting", "{second}");
    assert_eq!(
        (second["position"].clone(), second["ahead"].clone()),
        (json!(1), json!(0))
    );
    let refused = stack.buy(2, item, json!(1)).await;
    assert_envelope(&refused, 409, "NOT_ADMITTED");
    assert_eq!(refused.body["state"], "waiting");

    let bought = stack.buy_with_key(1, item, 1, "room-1").await;
    assert_eq!(bought.status, 200, "{}", bought.body);
    assert_eq!(ticket(&stack, 1, item).await["state"], "used");
    let again = stack.buy(1, item, json!(1)).await;
    assert_envelope(&again, 409, "NOT_ADMITTED");
    assert_eq!(again.body["state"], "used");
    let replay = stack.buy_with_key(1, item, 1, "room-1").await;
    assert_eq!(replay.status, 200, "{}", replay.body);
    assert_eq!(replay.body["order"]["id"], bought.body["order"]["id"]);

    // The used pass freed the one place: the next buyer is let in.
    assert_eq!(ticket(&stack, 2, item).await["state"], "admitted");
    assert_eq!(stack.redis_stock(item).await, 4);
}

/// Spearman's rank correlation of two rankings of the same n items.
fn rank_correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let d2: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}

#[actix_web::test]
async fn early_joiners_are_shuffled_at_the_start_and_later_ones_queue_in_arrival_order() {
    const EARLY: u64 = 100;
    let stack = spawn_stack(Strategy::Lua).await;
    let starts = redis_now_ms(&stack).await + 2_500;
    let item = stack
        .item_on_terms(
            1,
            None,
            SaleTerms {
                starts_at_ms: Some(starts),
                ..room(None, 60)
            },
        )
        .await;
    for user in 1..=EARLY {
        let early = join(&stack, user, item).await;
        assert_eq!(early["state"], "pre_queue", "{early}");
        assert_eq!(early["position"], Value::Null, "{early}");
    }
    assert_eq!(ticket(&stack, EARLY, item).await["queue_length"], EARLY);
    let left = starts - redis_now_ms(&stack).await;
    assert!(left > 0, "the joins took past the start; make it later");
    tokio::time::sleep(Duration::from_millis(left as u64 + 50)).await;

    // One unit: the head of the shuffled queue is admitted, the rest wait in order.
    let mut places = Vec::new();
    for user in 1..=EARLY {
        let read = ticket(&stack, user, item).await;
        let place = match read["state"].as_str() {
            Some("admitted") => 0,
            Some("waiting") => read["position"].as_u64().expect("a position"),
            _ => panic!("{read}"),
        };
        places.push(place);
    }
    let distinct: BTreeSet<u64> = places.iter().copied().collect();
    assert_eq!(distinct, (0..EARLY).collect(), "a permutation: {places:?}");
    let joined: Vec<f64> = (0..EARLY).map(|i| i as f64).collect();
    let placed: Vec<f64> = places.iter().map(|p| *p as f64).collect();
    let rho = rank_correlation(&joined, &placed);
    // Uniform shuffle: rho has mean 0 and sd 1/sqrt(99) ≈ 0.1; join order would be 1.
    assert!(
        rho.abs() < 0.5,
        "positions follow the join order (rho {rho})"
    );

    for (late, expected) in [(EARLY + 1, EARLY), (EARLY + 2, EARLY + 1)] {
        let read = join(&stack, late, item).await;
        assert_eq!(read["state"], "waiting", "{read}");
        assert_eq!(read["position"], expected, "{read}");
    }
}

#[actix_web::test]
async fn passes_go_in_position_order_and_a_lapse_or_a_cancel_passes_the_place_on() {
    let stack = spawn_stack(Strategy::Lua).await;
    // Two units, one pass at a time, a second to buy, and reservations to cancel.
    let item = stack
        .item_on_terms(
            2,
            None,
            SaleTerms {
                room: room(Some(1), 1).room,
                ..reservable(600)
            },
        )
        .await;
    for user in [1, 2, 3] {
        join(&stack, user, item).await;
    }
    assert_eq!(ticket(&stack, 1, item).await["state"], "admitted");
    assert_eq!(ticket(&stack, 3, item).await["position"], 2);

    // Buyer 1 lets the pass lapse: buyer 2 is next, buyer 3 moves up.
    testkit::eventually(5, "the first pass lapses", || async {
        ticket(&stack, 1, item).await["state"] == "lapsed"
    })
    .await;
    assert_eq!(ticket(&stack, 2, item).await["state"], "admitted");
    assert_eq!(ticket(&stack, 3, item).await["position"], 1);
    let lapsed = stack.buy(1, item, json!(1)).await;
    assert_envelope(&lapsed, 409, "NOT_ADMITTED");
    assert_eq!(lapsed.body["state"], "lapsed");
    // Joining again goes to the back, behind buyer 3.
    assert_eq!(join(&stack, 1, item).await["position"], 2);

    let reserved = stack.reserve(2, item).await;
    assert_eq!(ticket(&stack, 3, item).await["state"], "admitted");
    stack.reserve(3, item).await;
    // Both units are held, none is left: buyer 1 waits for one to come back.
    let holding = ticket(&stack, 1, item).await;
    assert_eq!(
        (holding["state"].clone(), holding["position"].clone()),
        (json!("waiting"), json!(1))
    );

    let cancelled = stack.cancel(2, &reserved).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(ticket(&stack, 1, item).await["state"], "admitted");
    stack.reserve(1, item).await;
}

#[actix_web::test]
async fn an_expired_reservation_passes_the_place_on_and_the_room_is_kept_a_day_past_the_end() {
    let stack = spawn_stack(Strategy::Lua).await;
    let ends_at_ms = redis_now_ms(&stack).await + 3_600_000;
    let item = stack
        .item_on_terms(
            1,
            None,
            SaleTerms {
                room: room(None, 60).room,
                ends_at_ms: Some(ends_at_ms),
                ..reservable(1)
            },
        )
        .await;
    assert_eq!(join(&stack, 1, item).await["state"], "admitted");
    assert_eq!(join(&stack, 2, item).await["position"], 1);
    stack.reserve(1, item).await;
    // The unit is held, not sold: buyer 2 waits for it rather than reading sold out.
    assert_eq!(ticket(&stack, 2, item).await["state"], "waiting");
    testkit::eventually(
        10,
        "the reservation expires and buyer 2 is let in",
        || async { ticket(&stack, 2, item).await["state"] == "admitted" },
    )
    .await;

    // Every key the room wrote expires a day after the sale's end.
    let keys = stack.store.keys(item);
    let mut conn = stack.env.redis.connection().await;
    let day_ms = 24 * 3_600_000;
    for key in [keys.room(), keys.room_tickets(), keys.room_admitted()] {
        let expected = ends_at_ms + day_ms - redis_now_ms(&stack).await;
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        // (Within a second above: the clock read and the key may be on different nodes.)
        assert!(
            (expected - 60_000..=expected + 1_000).contains(&ttl),
            "{key}: PTTL {ttl}, expected about {expected}"
        );
    }
}

#[actix_web::test]
async fn everyone_waiting_reads_sold_out_once_the_last_unit_is_sold() {
    let stack = spawn_stack(Strategy::Lua).await;
    let item = stack.item_on_terms(1, None, room(None, 60)).await;
    for user in 1..=20 {
        join(&stack, user, item).await;
    }
    assert_eq!(ticket(&stack, 20, item).await["position"], 19);
    let sold = stack.buy(1, item, json!(1)).await;
    assert_eq!(sold.status, 200, "{}", sold.body);

    assert_eq!(ticket(&stack, 1, item).await["state"], "used");
    for user in 2..=20 {
        let read = ticket(&stack, user, item).await;
        assert_eq!(read["state"], "sold_out", "{read}");
        assert_eq!(read["position"], Value::Null, "{read}");
    }
    let latecomer = join(&stack, 21, item).await;
    assert_eq!(latecomer["state"], "sold_out", "{latecomer}");
    // Told, not queued: the latecomer holds no ticket.
    assert_envelope(&ticket_at(&stack.client, 21, item).await, 404, "NOT_FOUND");

    // The metrics count each answer by what it said.
    let metrics = stack.client.get("/metrics", None).await;
    let metrics = String::from_utf8_lossy(&metrics.raw);
    for (op, answer, count) in [
        ("join", "admitted", 1),
        ("join", "waiting", 19),
        ("join", "sold_out", 1),
        ("read", "waiting", 1),
        ("read", "used", 1),
        ("read", "sold_out", 19),
        ("read", "no_ticket", 1),
    ] {
        let sample = format!("op=\"{op}\",answer=\"{answer}\"");
        let line = metrics
            .lines()
            .find(|line| line.starts_with("waiting_room_answers_total") && line.contains(&sample));
        assert_eq!(
            line.and_then(|line| line.rsplit(' ').next()),
            Some(count.to_string().as_str()),
            "{op} {answer} in:\n{metrics}"
        );
    }
}

#[actix_web::test]
async fn buyers_racing_through_two_instances_get_one_place_each_and_never_oversell() {
    const BUYERS: u64 = 60;
    const UNITS: u32 = 8;
    let (stack, second) = two_instances(|_| {}).await;
    let item = stack.item_on_terms(UNITS, None, room(Some(3), 60)).await;
    let clients = [stack.client.clone(), second.client.clone()];

    // Each buyer joins twice, once through each instance, all at once.
    let joins = (1..=BUYERS).flat_map(|user| {
        clients
            .iter()
            .map(move |client| async move { join_at(client, user, item).await })
    });
    let tickets = futures_util::future::join_all(joins).await;
    assert!(tickets.iter().all(|t| t.status == 200));
    let waiting = tickets
        .iter()
        .filter(|t| t.body["state"] == "waiting")
        .count();
    assert!(waiting > 0, "with three passes most buyers wait");

    // Then each polls through one instance and buys once admitted.
    let buyers = (1..=BUYERS).map(|user| {
        let client = clients[(user % 2) as usize].clone();
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while std::time::Instant::now() < deadline {
                let read = ticket_at(&client, user, item).await;
                match read.body["state"].as_str() {
                    Some("admitted") => {
                        let bought = client
                            .post(
                                &format!("/api/v1/items/{item}/purchase"),
                                Some(&token(user)),
                                &json!({ "quantity": 1 }),
                            )
                            .await;
                        assert_eq!(bought.status, 200, "{}", bought.body);
                    }
                    Some("waiting") => tokio::time::sleep(Duration::from_millis(20)).await,
                    Some(end @ ("used" | "sold_out")) => return end.to_owned(),
                    _ => panic!("{}", read.body),
                }
            }
            panic!("buyer {user} still waiting after 30 s")
        }
    });
    let ends = futures_util::future::join_all(buyers).await;
    let used = ends.iter().filter(|end| *end == "used").count();
    assert_eq!(used, UNITS as usize, "{ends:?}");
    assert_eq!(stack.redis_stock(item).await, 0);
    second.stop().await;
}
