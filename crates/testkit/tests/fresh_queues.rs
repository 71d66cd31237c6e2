//! Fresh quorum queues used at once: a test that declares its queues and reads them in
//! the same breath must not fail because a queue's Raft member has not started yet.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_quorum_queues_are_read_right_after_they_are_declared() {
    let rabbits: Vec<testkit::TestRabbit> = (0..20).map(|_| testkit::TestRabbit::new()).collect();
    let drains = rabbits.iter().map(|rabbit| async move {
        let topology = rabbit.topology();
        (
            rabbit.drain(&topology.refund_queue).await.len(),
            rabbit.drain_dead_letters().await.len(),
        )
    });
    for drained in futures_util::future::join_all(drains).await {
        assert_eq!(drained, (0, 0));
    }
}

/// The error RabbitMQ gives for a queue whose process has not started.
fn not_running() -> lapin::Error {
    use lapin::protocol::{AMQPError, AMQPErrorKind, AMQPHardError};
    lapin::ErrorKind::ProtocolError(AMQPError::new(
        AMQPErrorKind::Hard(AMQPHardError::INTERNALERROR),
        "INTERNAL_ERROR - Cannot get a message from queue 'q' in vhost '/': noproc".into(),
    ))
    .into()
}

#[tokio::test]
async fn a_queue_not_running_yet_is_used_again_on_a_fresh_connection_and_nothing_else_is() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    assert!(events::topology::queue_not_running(&not_running()));
    let attempts = AtomicUsize::new(0);
    let (_connection, channel, used) = events::topology::on_running_queues(
        &testkit::rabbit_url(),
        std::time::Duration::from_secs(5),
        |channel| {
            let attempt = attempts.fetch_add(1, Ordering::SeqCst);
            async move {
                if attempt < 2 {
                    Err(not_running())
                } else {
                    Ok(channel.status().connected())
                }
            }
        },
    )
    .await
    .expect("used once the queue runs");
    assert!(used && channel.status().connected());
    assert_eq!(attempts.load(Ordering::SeqCst), 3);

    let refused = lapin::Error::from(lapin::ErrorKind::InvalidChannel(7));
    assert!(!events::topology::queue_not_running(&refused));
    let attempts = AtomicUsize::new(0);
    let outcome = events::topology::on_running_queues(
        &testkit::rabbit_url(),
        std::time::Duration::from_secs(5),
        |_| {
            attempts.fetch_add(1, Ordering::SeqCst);
            let refused = refused.clone();
            async move { Err::<(), _>(refused) }
        },
    )
    .await;
    assert!(outcome.is_err());
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        1,
        "only a queue not running is waited for"
    );
}
