//! The gateway's own edge, through the real nginx a test starts: the request id it
//! accepts from a client, the answers it makes itself (JSON in the envelope, with the
//! request id and `nosniff`), `Cache-Control: no-store` on token responses, per-address
//! limits, slow clients cut off while others are served, and a write that reached a
//! service which died answered as of unknown outcome. Raw sockets where a client
//! must misbehave in ways an HTTP library refuses to (bytes a header may not hold, a
//! malformed request line, a source address other than 127.0.0.1, which the gateway
//! exempts from its limits). Each test needs a stack of its own: skipped under
//! `E2E_BASE_URL`.

use e2e::{LocalStack, api};
use serde_json::Value;
use socket2::{Domain, Socket, Type};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One answer read off a socket.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A connection to the gateway from `source` (any 127/8 address is this machine's).
fn connect(stack: &LocalStack, source: &str) -> TcpStream {
    connect_to(stack.gateway_port, source)
}

fn connect_to(gateway_port: u16, source: &str) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let source: SocketAddr = format!("{source}:0").parse().expect("source address");
    socket
        .bind(&source.into())
        .expect("bind the source address");
    let gateway: SocketAddr = format!("127.0.0.1:{gateway_port}")
        .parse()
        .expect("gateway address");
    socket
        .connect(&gateway.into())
        .expect("connect to the gateway");
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream
}

/// Sends `request` verbatim from `source` and reads one answer (its body by
/// Content-Length, or to the end).
fn exchange(stack: &LocalStack, source: &str, request: &[u8]) -> Raw {
    exchange_at(stack.gateway_port, source, request)
}

fn exchange_at(gateway_port: u16, source: &str, request: &[u8]) -> Raw {
    let mut stream = connect_to(gateway_port, source);
    stream.write_all(request).expect("send");
    let mut received = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let read = stream.read(&mut buffer).unwrap_or(0);
        received.extend_from_slice(&buffer[..read]);
        if let Some(parsed) = parse(&received) {
            return parsed;
        }
        assert!(
            read > 0,
            "the connection closed mid-answer: {}",
            String::from_utf8_lossy(&received)
        );
    }
}

/// A whole answer, once `received` holds one.
fn parse(received: &[u8]) -> Option<Raw> {
    let end = received.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&received[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body = &received[end + 4..];
    (body.len() >= length).then(|| Raw {
        status,
        headers,
        body: body[..length].to_vec(),
    })
}

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: gateway\r\n{extra}Connection: close\r\n\r\n").into_bytes()
}

/// The gateway's access log line of the request with this id, waiting out its 1 s
/// buffer.
async fn gateway_log_line(stack: &LocalStack, request_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(stack.dir.join("gateway.log")).unwrap_or_default();
        let line = log
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| line["request_id"] == request_id);
        if let Some(line) = line {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no gateway log line for {request_id}: {log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn is_minted(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[actix_web::test]
async fn the_gateway_takes_only_a_bounded_safe_request_id_and_the_service_keeps_it() {
    if e2e::needs_own_stack("the gateway's request id") {
        return;
    }
    let stack = LocalStack::start().await;

    let kept = "edge-Request_1.2";
    let answer = exchange(
        &stack,
        "127.0.0.1",
        &get("/api/v1/items", &format!("X-Request-Id: {kept}\r\n")),
    );
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("x-request-id"),
        [kept],
        "one id, the client's"
    );
    assert_eq!(gateway_log_line(&stack, kept).await["status"], 200);
    assert!(stack.log("catalog-service").contains(kept));

    let huge = "a".repeat(6000);
    let refused: [&[u8]; 4] = [
        huge.as_bytes(),
        &[b'x'; 65],
        b"has space",
        b"bad\xff\xfebytes",
    ];
    for sent in refused {
        let mut request = b"GET /api/v1/items HTTP/1.1\r\nHost: gateway\r\nX-Request-Id: ".to_vec();
        request.extend_from_slice(sent);
        request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        let answer = exchange(&stack, "127.0.0.1", &request);
        assert_eq!(answer.status, 200);
        let ids = answer.header("x-request-id");
        assert_eq!(ids.len(), 1, "{ids:?}");
        let minted = ids[0].to_owned();
        assert!(
            is_minted(&minted),
            "{:?} was replaced by the gateway's own id, not {minted:?}",
            String::from_utf8_lossy(&sent[..sent.len().min(40)])
        );
        let line = gateway_log_line(&stack, &minted).await;
        assert_eq!(line["uri"], "/api/v1/items");
        let service_log = stack.log("catalog-service");
        assert!(
            service_log.contains(&minted),
            "the service keeps the gateway's id {minted}"
        );
        let log = std::fs::read_to_string(stack.dir.join("gateway.log")).unwrap_or_default();
        assert!(
            !log.contains(&huge[..100]),
            "the client's id is never logged"
        );
    }
}

/// Asserts `answer` is one the gateway made itself, in the envelope with `error_code`.
fn assert_gateway_envelope(what: &str, answer: &Raw, status: u16, error_code: &str) {
    assert_eq!(answer.status, status, "{what}: {answer:?}");
    assert_eq!(
        answer.header("content-type"),
        ["application/json"],
        "{what}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    let body = answer.json();
    assert_eq!(body["error_code"], error_code, "{what}: {body}");
    assert!(body["message"].is_string(), "{what}: {body}");
    let ids = answer.header("x-request-id");
    assert!(
        ids.len() == 1 && is_minted(ids[0]),
        "{what}: X-Request-Id {ids:?}"
    );
    assert_eq!(
        answer.header("x-content-type-options"),
        ["nosniff"],
        "{what}"
    );
}

#[actix_web::test]
async fn every_answer_the_gateway_makes_itself_is_json_in_the_envelope() {
    if e2e::needs_own_stack("the gateway's own answers") {
        return;
    }
    let stack = LocalStack::start().await;
    let long_uri = format!("/api/v1/items?q={}", "a".repeat(9000));
    let big_header = format!("X-Big: {}\r\n", "a".repeat(9000));
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "no Host",
            b"GET /api/v1/items HTTP/1.1\r\n\r\n".to_vec(),
            400,
            "BAD_REQUEST",
        ),
        (
            "a garbage request line",
            b"GARBAGE\r\n\r\n".to_vec(),
            400,
            "BAD_REQUEST",
        ),
        ("an unknown path", get("/nowhere", ""), 404, "NOT_FOUND"),
        (
            "TRACE",
            b"TRACE /api/v1/items HTTP/1.1\r\nHost: g\r\n\r\n".to_vec(),
            405,
            "METHOD_NOT_ALLOWED",
        ),
        (
            "an oversize body",
            b"POST /api/v1/items HTTP/1.1\r\nHost: g\r\nContent-Length: 20000\r\n\r\n".to_vec(),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        ("a long URI", get(&long_uri, ""), 414, "URI_TOO_LONG"),
        (
            "a huge header",
            get("/api/v1/items", &big_header),
            431,
            "REQUEST_HEADER_FIELDS_TOO_LARGE",
        ),
        (
            "an unknown transfer coding",
            b"POST /api/v1/items HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
            501,
            "NOT_IMPLEMENTED",
        ),
        (
            "HTTP/2.0 in plain text",
            b"GET / HTTP/2.0\r\nHost: g\r\n\r\n".to_vec(),
            505,
            "HTTP_VERSION_NOT_SUPPORTED",
        ),
    ];
    for (what, request, status, error_code) in &cases {
        let answer = exchange(&stack, "127.0.0.1", request);
        assert_gateway_envelope(what, &answer, *status, error_code);
    }

    // Many headers: the service is never asked with more than it takes (no empty 431).
    let many: String = (0..100).map(|i| format!("X-Filler-{i}: {i}\r\n")).collect();
    let answer = exchange(&stack, "127.0.0.1", &get("/api/v1/items", &many));
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.json()["data"].is_array(), "{answer:?}");

    // Every proxied answer: one request id, nosniff.
    let items = exchange(&stack, "127.0.0.1", &get("/api/v1/items", ""));
    assert_eq!(items.header("x-request-id").len(), 1, "{items:?}");
    assert_eq!(items.header("x-content-type-options"), ["nosniff"]);

    // Token responses are never cached.
    let email = format!("edge-{}@example.com", uuid::Uuid::new_v4().simple());
    let registered = stack
        .gateway
        .post(
            "/api/v1/auth/register",
            None,
            &serde_json::json!({"name": "Edge", "email": email, "password": "password123"}),
        )
        .await;
    let login = api::login(&stack.gateway, &email, "password123").await;
    let token = login.body["access_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let refreshed = stack
        .gateway
        .post("/api/v1/auth/refresh", Some(&token), &Value::Null)
        .await;
    for (what, response, status) in [
        ("register", &registered, 201),
        ("login", &login, 200),
        ("refresh", &refreshed, 200),
    ] {
        assert_eq!(response.status, status, "{what}: {}", response.body);
        assert_eq!(response.header("cache-control"), Some("no-store"), "{what}");
        assert_eq!(
            response.headers.get_all("x-request-id").count(),
            1,
            "{what}: one request id"
        );
        assert_eq!(
            response.header("x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
    }
    let wrong = api::login(&stack.gateway, &email, "wrong-password").await;
    assert_eq!(wrong.header("cache-control"), Some("no-store"));
}

#[actix_web::test]
async fn an_address_over_its_limits_gets_429_in_the_envelope_and_loopback_is_exempt() {
    if e2e::needs_own_stack("the gateway's per-address limits") {
        return;
    }
    let stack = LocalStack::start().await;
    // /api/v1/auth/: 5 a second, a burst of 10, per address.
    let statuses: Vec<Raw> = (0..30)
        .map(|_| exchange(&stack, "127.0.0.3", &get("/api/v1/auth/me", "")))
        .collect();
    let limited: Vec<&Raw> = statuses.iter().filter(|a| a.status == 429).collect();
    assert!(
        limited.len() >= 15,
        "{:?}",
        statuses.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert_gateway_envelope("over the auth rate", limited[0], 429, "TOO_MANY_REQUESTS");
    assert_eq!(limited[0].header("retry-after"), ["1"]);
    // Another address is not held back by it, and loopback (the tests, benchmarks) is
    // not limited at all.
    assert_eq!(
        exchange(&stack, "127.0.0.5", &get("/api/v1/auth/me", "")).status,
        401
    );
    for _ in 0..30 {
        let answer = exchange(&stack, "127.0.0.1", &get("/api/v1/auth/me", ""));
        assert_eq!(answer.status, 401, "{answer:?}");
    }
}

#[actix_web::test]
async fn a_slow_client_is_cut_off_within_the_header_timeout_while_another_is_served() {
    if e2e::needs_own_stack("slow clients at the gateway") {
        return;
    }
    let stack = LocalStack::start().await;
    let mut slow = connect(&stack, "127.0.0.4");
    slow.write_all(b"GET /api/v1/items HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
        .expect("start the header");
    let started = Instant::now();
    let bound = Duration::from_secs(13);
    let trickle = std::thread::spawn(move || {
        // A byte every 300 ms, never ending the header; writing fails once cut off.
        loop {
            std::thread::sleep(Duration::from_millis(300));
            if slow.write_all(b"a").is_err() || started.elapsed() > Duration::from_secs(40) {
                return started.elapsed();
            }
        }
    });
    // Meanwhile others are served.
    while !trickle.is_finished() && started.elapsed() < Duration::from_secs(8) {
        let served = exchange(&stack, "127.0.0.5", &get("/api/v1/items", ""));
        assert_eq!(served.status, 200, "{served:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let held = tokio::task::spawn_blocking(move || trickle.join().expect("the trickle"))
        .await
        .expect("join");
    assert!(
        held <= bound,
        "a client sending its header a byte at a time was held for {held:?} (bound {bound:?})"
    );
}

/// How many connections from the gateway (`proxy_bind`, 127.0.0.2) to `port` hold bytes
/// their owner has not read (`/proc/net/tcp`'s rx_queue): requests that reached a
/// stopped process.
fn unread_requests_at(port: u16) -> usize {
    let gateway = "0200007F"; // 127.0.0.2, as /proc/net/tcp writes it
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)
                .and_then(|address| address.split_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            let from_gateway = fields
                .get(2)
                .is_some_and(|address| address.starts_with(gateway));
            let unread = fields
                .get(4)
                .and_then(|queues| queues.split_once(':'))
                .and_then(|(_, rx)| u64::from_str_radix(rx, 16).ok());
            local_port == Some(port) && from_gateway && unread.is_some_and(|n| n > 0)
        })
        .count()
}

/// Every line of `/proc/net/tcp` with `port` on either side, for failure messages.
fn connections_at(port: u16) -> String {
    let port = format!(":{port:04X} ");
    std::fs::read_to_string("/proc/net/tcp")
        .expect("/proc/net/tcp")
        .lines()
        .filter(|line| line.contains(&port))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The purchase-service requests of the test below: the three that change state, and a
/// read.
const PURCHASE_SERVICE_REQUESTS: [(&str, &str, &str); 4] = [
    (
        "POST",
        "/api/v1/items/1/purchase",
        "Idempotency-Key: edge-key-1\r\n",
    ),
    ("POST", "/api/v1/orders/edge-order/cancel", ""),
    (
        "POST",
        "/api/v1/payments/webhook",
        "Payment-Signature: t=1,v1=00\r\n",
    ),
    ("GET", "/api/v1/orders", ""),
];

fn purchase_service_request(method: &str, path: &str, headers: &str) -> Vec<u8> {
    let body = if method == "POST" {
        r#"{"quantity":1}"#
    } else {
        ""
    };
    format!(
        "{method} {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer edge\r\n\
         Content-Type: application/json\r\n{headers}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A write the gateway sent to a service that then never answered may have happened:
/// the gateway says so (503 `OUTCOME_UNKNOWN`, no `Retry-After`, no order id, which it
/// does not know) rather than "try again". One it could not send at all is safe to
/// retry: 502 with `Retry-After`. A read keeps 502 with `Retry-After` either way.
/// Staged deterministically: purchase-service is stopped (SIGSTOP), so the kernel takes
/// the gateway's requests and holds them unread; once all four are there, it is killed,
/// which resets those connections, as a crash mid-request does.
#[actix_web::test]
async fn a_write_sent_to_a_service_that_died_is_outcome_unknown_and_one_never_sent_is_retryable() {
    if e2e::needs_own_stack("the gateway's answers when purchase-service dies") {
        return;
    }
    let mut stack = LocalStack::start().await;
    let port = stack.port("purchase-service");
    let gateway_port = stack.gateway_port;

    stack.pause_service("purchase-service").await;
    let in_flight: Vec<_> = PURCHASE_SERVICE_REQUESTS
        .iter()
        .map(|(method, path, headers)| {
            let request = purchase_service_request(method, path, headers);
            std::thread::spawn(move || exchange_at(gateway_port, "127.0.0.1", &request))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while unread_requests_at(port) < in_flight.len() {
        if Instant::now() >= deadline {
            // The access log is flushed once a second: an answer nginx made itself shows.
            std::thread::sleep(Duration::from_millis(1500));
            let answered: Vec<bool> = in_flight.iter().map(|t| t.is_finished()).collect();
            panic!(
                "the gateway's {} requests never all reached the stopped purchase-service \
                 ({} did; answered to the client: {answered:?})\n\
                 /proc/net/tcp at port {port}:\n{}\n{}",
                in_flight.len(),
                unread_requests_at(port),
                connections_at(port),
                stack.gateway_logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.kill_service("purchase-service");
    for ((method, path, _), answer) in PURCHASE_SERVICE_REQUESTS.iter().zip(in_flight) {
        let answer = tokio::task::spawn_blocking(move || answer.join().expect("the exchange"))
            .await
            .expect("join");
        let what = format!("{method} {path}, sent, then the service died");
        if *method == "POST" {
            assert_gateway_envelope(&what, &answer, 503, "OUTCOME_UNKNOWN");
            assert!(
                answer.header("retry-after").is_empty(),
                "{what}: {answer:?}"
            );
            let body = answer.json();
            assert!(body.get("order_id").is_none(), "{what}: {body}");
            let message = body["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("GET /api/v1/orders") && message.contains("Idempotency-Key"),
                "{what}: {message}"
            );
        } else {
            assert_gateway_envelope(&what, &answer, 502, "BAD_GATEWAY");
            assert_eq!(answer.header("retry-after"), ["1"], "{what}");
        }
    }

    // Not running: nothing is sent, every request may be retried.
    for (method, path, headers) in PURCHASE_SERVICE_REQUESTS {
        let request = purchase_service_request(method, path, headers);
        let answer = exchange(&stack, "127.0.0.1", &request);
        let what = format!("{method} {path}, purchase-service not running");
        assert_gateway_envelope(&what, &answer, 502, "BAD_GATEWAY");
        assert_eq!(answer.header("retry-after"), ["1"], "{what}");
    }
}
