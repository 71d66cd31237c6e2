//! The client address as the services see it behind the real gateway: headers a client
//! forges (`X-Forwarded-For`, `X-Real-IP`, `Forwarded`) must neither spread its failed
//! logins over invented addresses nor charge them to someone else's address. Each test
//! needs a stack of its own (its Redis counters, a service's port), so under
//! `E2E_BASE_URL` they are skipped with a note.

use e2e::LocalStack;
use redis::AsyncCommands;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use testkit::Response;

const VICTIM: &str = "203.0.113.66";

async fn failed_login(stack: &LocalStack, attempt: usize, forged: &[(&str, &str)]) -> Response {
    let body =
        json!({ "email": format!("guess{attempt}@example.com"), "password": "wrong-password" });
    stack
        .gateway
        .send(
            "POST",
            "/api/v1/auth/login",
            None,
            forged,
            Some(body.to_string().into_bytes()),
        )
        .await
}

/// The per-address login counters under the stack's prefix, with their counts.
async fn address_counters(stack: &LocalStack) -> Vec<(String, u64)> {
    let mut conn = stack.redis.connection().await;
    let keys: Vec<String> = conn
        .keys(format!("{}login:addr:*", stack.redis.prefix))
        .await
        .expect("KEYS");
    let mut counters = Vec::new();
    for key in keys {
        let count: u64 = conn.get(&key).await.expect("GET");
        counters.push((key, count));
    }
    counters
}

async fn all_keys(stack: &LocalStack) -> Vec<String> {
    let mut conn = stack.redis.connection().await;
    conn.keys(format!("{}*", stack.redis.prefix))
        .await
        .expect("KEYS")
}

#[actix_web::test]
async fn forged_forwarding_headers_neither_dodge_nor_aim_the_per_address_limit() {
    if e2e::needs_own_stack("the per-address login limit under forged headers") {
        return;
    }
    let stack = LocalStack::start_with(&[("LOGIN_MAX_ATTEMPTS_PER_ADDRESS", "20")]).await;

    let aimed_at_the_victim: [&[(&str, &str)]; 4] = [
        &[("X-Forwarded-For", VICTIM)],
        &[("X-Forwarded-For", "10.1.2.3, 203.0.113.66")],
        &[("X-Real-IP", VICTIM)],
        &[("Forwarded", "for=203.0.113.66;proto=https")],
    ];
    for (attempt, forged) in aimed_at_the_victim.iter().enumerate() {
        let response = failed_login(&stack, attempt, forged).await;
        assert_eq!(response.status, 401, "{}", response.body);
    }
    let keys = all_keys(&stack).await;
    assert!(
        keys.iter().all(|k| !k.contains(VICTIM)),
        "a forged header charged the victim's address: {keys:?}"
    );
    let counters = address_counters(&stack).await;
    assert_eq!(counters.len(), 1, "{counters:?}");
    assert!(counters[0].0.contains("127.0.0.1"), "{counters:?}");
    assert_eq!(
        counters[0].1, 4,
        "every attempt counts against the real peer"
    );

    let mut statuses = Vec::new();
    for attempt in aimed_at_the_victim.len()..30 {
        let invented = format!("198.51.100.{attempt}");
        let forged = [("X-Forwarded-For", invented.as_str())];
        statuses.push(failed_login(&stack, attempt, &forged).await.status);
    }
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        (unauthorized, limited),
        (16, 10),
        "20 attempts per address, whatever the client claims: {statuses:?}"
    );
    let counters = address_counters(&stack).await;
    assert_eq!(counters.len(), 1, "{counters:?}");
    assert_eq!(counters[0].1, 20);
}

#[actix_web::test]
async fn a_forwarded_header_sent_straight_to_a_service_is_not_taken_at_its_word() {
    if e2e::needs_own_stack("a forwarded header sent to a service's own port") {
        return;
    }
    let stack = LocalStack::start_with(&[("LOGIN_MAX_ATTEMPTS_PER_ADDRESS", "5")]).await;
    // A local process on the service's loopback port, not the gateway: its peer is
    // 127.0.0.1, and only the gateway's 127.0.0.2 is a trusted proxy.
    let direct = testkit::Client::new(format!("http://127.0.0.1:{}", stack.port("auth-service")));
    let mut statuses = Vec::new();
    for attempt in 0..8 {
        let invented = format!("198.51.100.{attempt}");
        let body = json!({ "email": format!("guess{attempt}@example.com"), "password": "wrong" });
        let response = direct
            .send(
                "POST",
                "/api/v1/auth/login",
                None,
                &[("X-Forwarded-For", invented.as_str())],
                Some(body.to_string().into_bytes()),
            )
            .await;
        statuses.push(response.status);
    }
    assert_eq!(
        statuses,
        [401, 401, 401, 401, 401, 429, 429, 429],
        "every attempt counts against the real peer, whatever it claims"
    );
    let keys = all_keys(&stack).await;
    assert!(
        keys.iter().all(|k| !k.contains("198.51.100.")),
        "an invented address was taken at its word: {keys:?}"
    );
    let counters = address_counters(&stack).await;
    assert_eq!(counters.len(), 1, "{counters:?}");
    assert!(counters[0].0.contains("127.0.0.1"), "{counters:?}");
    assert_eq!(counters[0].1, 5);
}

/// Stands where auth-service stood and answers each request with the header lines the
/// gateway sent it, so the test sees exactly what a service behind the gateway sees.
fn serve_received_headers(port: u16, requests: usize) {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("take over the port");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.expect("accept");
            let mut head = String::new();
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).expect("read") == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line.to_ascii_lowercase());
            }
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
                head.len()
            );
            stream.write_all(reply.as_bytes()).expect("write");
        }
    });
}

#[actix_web::test]
async fn the_gateway_forwards_the_address_it_saw_and_nothing_the_client_wrote() {
    if e2e::needs_own_stack("the headers the gateway forwards (it takes over a service's port)") {
        return;
    }
    let mut stack = LocalStack::start().await;
    let port = stack.port("auth-service");
    stack.kill_service("auth-service");
    serve_received_headers(port, 1);
    let forged = [
        ("X-Forwarded-For", "203.0.113.66, 10.1.2.3"),
        ("X-Real-IP", VICTIM),
        ("Forwarded", "for=203.0.113.66"),
    ];
    let response = stack
        .gateway
        .send("GET", "/api/v1/auth/me", None, &forged, None)
        .await;
    assert_eq!(response.status, 200);
    let seen = String::from_utf8(response.raw).expect("text");
    let lines: Vec<&str> = seen.lines().collect();
    assert!(lines.contains(&"x-forwarded-for: 127.0.0.1"), "{seen}");
    assert!(lines.contains(&"x-real-ip: 127.0.0.1"), "{seen}");
    assert!(!seen.contains("forwarded: for"), "{seen}");
    assert!(
        !seen.contains(VICTIM) && !seen.contains("10.1.2.3"),
        "{seen}"
    );
}
