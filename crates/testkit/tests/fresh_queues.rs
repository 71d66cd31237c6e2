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
