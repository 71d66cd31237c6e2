//! Purchases while the item's slot moves between masters of the local Redis Cluster
//! (the one `scripts/test` starts): the migration is done by hand, as `redis-cli
//! --cluster reshard` does it, so each redirect the client must follow is staged: ASK
//! while the keys have moved and the slot has not, MOVED once it has.

use common::config::RedisMode;
use common::redis::{Keyspace, slot_of};
use inventory::Inventory;
use inventory::purchase::{Outcome, Purchase};
use inventory::stock::ItemState;
use redis::AsyncCommands;
use testkit::TestRedis;

struct Node {
    id: String,
    address: String,
}

impl Node {
    async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(format!("redis://{}", self.address))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    async fn set_slot(&self, slot: u16, state: &str, node: &Node) {
        let mut conn = self.connection().await;
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(state)
            .arg(&node.id)
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }
}

/// The masters, as `CLUSTER NODES` on the first configured node lists them.
async fn masters(first: &str) -> Vec<Node> {
    let mut conn = redis::Client::open(format!("redis://{first}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn)
        .await
        .unwrap();
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let serving =
                fields.get(2)?.split(',').any(|f| f == "master") && !fields[2].contains("fail");
            let address = fields.get(1)?.split('@').next()?.to_owned();
            serving.then(|| Node {
                id: fields[0].to_owned(),
                address,
            })
        })
        .collect()
}

/// Starts moving `slot` from `from` to `to` and moves the keys it holds there, as
/// `redis-cli --cluster reshard` does; stops (so a purchase can be tried) before the
/// slot itself has moved.
async fn migrate_keys(slot: u16, from: &Node, to: &Node) {
    to.set_slot(slot, "IMPORTING", from).await;
    from.set_slot(slot, "MIGRATING", to).await;
    move_keys_left(slot, from, to).await;
}

async fn move_keys_left(slot: u16, from: &Node, to: &Node) {
    let (host, port) = to.address.rsplit_once(':').unwrap();
    let mut conn = from.connection().await;
    loop {
        let keys: Vec<String> = redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(slot)
            .arg(100)
            .query_async(&mut conn)
            .await
            .unwrap();
        if keys.is_empty() {
            return;
        }
        redis::cmd("MIGRATE")
            .arg(host)
            .arg(port)
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(&keys)
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }
}

async fn finish_migration(slot: u16, from: &Node, to: &Node, all: &[Node]) {
    move_keys_left(slot, from, to).await;
    for node in std::iter::once(to).chain(all.iter().filter(|n| n.id != to.id)) {
        node.set_slot(slot, "NODE", to).await;
    }
}

/// An item id whose slot no other test's keys use: tests name items and users by small
/// ids (`{42}`, `{u42}`), and moving a slot that holds another test's keys would strand
/// them on the old master.
fn items_of_unused_slots() -> impl Iterator<Item = u64> {
    let used: std::collections::HashSet<u16> = (0..=20_000u64)
        .flat_map(|n| [slot_of(&format!("{{{n}}}")), slot_of(&format!("{{u{n}}}"))])
        .collect();
    (1_000_000_000_000u64..).filter(move |id| !used.contains(&slot_of(&format!("{{{id}}}"))))
}

async fn buy(store: &Inventory, item_id: u64, order_id: &str) -> Result<Outcome, String> {
    store
        .stock
        .purchase_by_script(&Purchase {
            user_id: 7,
            item_id,
            quantity: 1,
            order_id,
            event_json: "{}",
            now_ms: 1,
            idempotency: None,
        })
        .await
        .map_err(|error| error.to_string())
}

#[tokio::test]
async fn purchases_follow_ask_and_moved_while_the_items_slot_changes_master() {
    let redis = TestRedis::new();
    let mut settings = redis.settings();
    settings.mode = RedisMode::Cluster;
    let first = settings.cluster_nodes.split(',').next().unwrap().to_owned();
    let store = Inventory::new(
        common::redis::client(&settings).unwrap(),
        Keyspace::new(redis.prefix.clone()),
    );
    let mut unused = items_of_unused_slots();
    let item = unused.next().unwrap();
    store
        .stock
        .put(&ItemState::on_sale(item, 10))
        .await
        .unwrap();
    let keys = store.keys(item);
    let slot = slot_of(&keys.stock());
    let masters = masters(&first).await;
    let mut conn = store.redis().get().await.unwrap();
    let topology = store.redis().topology().unwrap();
    let owner_address = topology.master_of(&conn, slot, true).await.unwrap();
    let owner = masters.iter().find(|n| n.address == owner_address).unwrap();
    let other = masters.iter().find(|n| n.address != owner_address).unwrap();
    // An item that stays on the owner while the first one's slot moves away.
    let mut neighbour = None;
    for id in unused {
        let candidate = slot_of(&store.keys(id).stock());
        if candidate != slot
            && topology.master_of(&conn, candidate, false).await.unwrap() == owner_address
        {
            neighbour = Some(id);
            break;
        }
    }
    let neighbour = neighbour.unwrap();
    store
        .stock
        .put(&ItemState::on_sale(neighbour, 10))
        .await
        .unwrap();

    // The owner's first acknowledged write is of the item whose slot then moves.
    let before = buy(&store, item, "before").await;
    let before_acked = store.redis().replicated(&keys.outbox()).await;
    migrate_keys(slot, owner, other).await;
    let asked: Result<Option<i64>, _> = conn.get(keys.stock()).await;
    // A script's keys include some that do not exist (the void marker), which neither
    // master serves while the slot is half moved (ASK on one, TRYAGAIN on the other):
    // the purchase waits the migration out.
    let during = tokio::spawn({
        let store = store.clone();
        async move { buy(&store, item, "during").await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    finish_migration(slot, owner, other, &masters).await;
    let during = during.await.unwrap();
    let moved = buy(&store, item, "moved").await;
    let moved_acked = store.redis().replicated(&keys.outbox()).await;
    let stayed = buy(&store, neighbour, "stayed").await;
    let stayed_acked = store
        .redis()
        .replicated(&store.keys(neighbour).outbox())
        .await;
    let stock: i64 = conn.get(keys.stock()).await.unwrap();
    let outbox: Vec<String> = conn.hkeys(keys.outbox()).await.unwrap();
    // Put the slot back where it was, the same way, before asserting anything.
    migrate_keys(slot, other, owner).await;
    finish_migration(slot, other, owner, &masters).await;

    assert_eq!(before, Ok(Outcome::Placed));
    assert_eq!(
        asked.map_err(|e| e.to_string()),
        Ok(Some(9)),
        "the old master answers ASK: the client follows it to the new one"
    );
    assert_eq!(during, Ok(Outcome::Placed));
    assert_eq!(
        moved,
        Ok(Outcome::Placed),
        "the old master answers MOVED: the client re-reads the slots"
    );
    assert_eq!(stayed, Ok(Outcome::Placed));
    for (acked, what) in [
        (before_acked, "before the move"),
        (moved_acked, "on the new master"),
        (stayed_acked, "of an unmoved item on the old master"),
    ] {
        assert!(
            acked.is_ok(),
            "replicas acknowledge a purchase {what}: {acked:?}"
        );
    }
    assert_eq!(stock, 7, "three units sold, each once");
    assert_eq!(outbox.len(), 3, "{outbox:?}");
    let stock: i64 = conn.get(keys.stock()).await.unwrap();
    assert_eq!(stock, 7, "and still there once the slot is back");
}
