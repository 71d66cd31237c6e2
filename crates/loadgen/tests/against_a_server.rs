//! The library against a real HTTP server on loopback: one item sells, the other is
//! sold out, so both the orders it collects and the error codes it counts are checked.

use actix_web::{App, HttpResponse, HttpServer, web};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static NEXT_ORDER: AtomicU64 = AtomicU64::new(1);

async fn purchase(item: web::Path<u64>) -> HttpResponse {
    if *item == 1 {
        let id = NEXT_ORDER.fetch_add(1, Ordering::Relaxed);
        HttpResponse::Ok().json(serde_json::json!({ "order": { "id": format!("order-{id}") } }))
    } else {
        HttpResponse::Conflict().json(serde_json::json!({
            "message": "sold out", "error_code": "INSUFFICIENT_STOCK", "current_stock": 0
        }))
    }
}

/// Serves on a port of its own in a thread of its own; returns the port.
fn serve() -> u16 {
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(|| {
                App::new().route("/api/v1/items/{id}/purchase", web::post().to(purchase))
            })
            .workers(1)
            .bind(("127.0.0.1", 0))
            .expect("bind");
            port_tx.send(server.addrs()[0].port()).expect("port");
            server.run().await.expect("serve");
        })
    });
    port_rx.recv().expect("server port")
}

#[test]
fn a_run_counts_every_answer_and_collects_the_orders_answered_200() {
    let port = serve();
    let keys = common::jwt::generate_key_pair().expect("keys");
    let key_path = std::env::temp_dir().join(format!("loadgen-test-{}.pem", std::process::id()));
    std::fs::write(&key_path, keys.private_pem).expect("write key");

    let run = loadgen::Run {
        concurrency: 4,
        threads: 2,
        users: 3,
        duration: Duration::from_millis(300),
        collect_orders: true,
        progress: false,
        label: "test".into(),
        ..loadgen::Run::new(format!("http://127.0.0.1:{port}"), vec![1, 2], &key_path)
    };
    let outcome = run.execute().expect("run");
    let _ = std::fs::remove_file(&key_path);
    let summary = &outcome.summary;

    assert_eq!(summary.label, "test");
    assert!(summary.ok > 0, "{summary:?}");
    assert_eq!(summary.requests, summary.statuses.values().sum::<u64>());
    assert_eq!(
        summary.requests,
        summary.ok + summary.error_count("INSUFFICIENT_STOCK"),
        "{summary:?}"
    );
    assert!(summary.error_count("INSUFFICIENT_STOCK") > 0, "{summary:?}");
    assert_eq!(outcome.order_ids.len() as u64, summary.ok);
    let mut distinct = outcome.order_ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), outcome.order_ids.len());
}
