//! Which purchase-service instances are alive, so that the work every instance would
//! otherwise repeat (the outbox relay, the expiry worker) is split among them, and a
//! buyer's admission bucket is split the same way.
//!
//! The registry is one Redis sorted set (`<prefix>instances:purchase`): each instance's
//! random id, scored by when its last heartbeat runs out on the Redis clock. Every
//! `INSTANCE_HEARTBEAT_MS` an instance runs one script that drops the members whose
//! heartbeat ran out, renews its own for [`MISSED_BEATS_TO_LEAVE`] heartbeats and returns
//! every live id: one round trip a heartbeat, none on the request path. From that list the
//! instance takes its [`Share`]: its rank among the ids in byte order and how many there
//! are. Every instance sorts the same list the same way, so the ranks are 0..N once each.
//! An instance leaves the set when it shuts down; one that dies or freezes drops out once
//! its heartbeat runs out, and the others take its share at their next heartbeat.
//!
//! An instance whose own heartbeats have failed for as long as a heartbeat lasts no longer
//! knows the set (and the others have dropped it): it acts as if alone, doing every item
//! (work the others do too, which is harmless) rather than leaving its share undone.

use common::redis::{Keyspace, RedisClient};
use common::shutdown::Shutdown;
use prometheus_client::metrics::gauge::Gauge;
use redis::{AsyncCommands, Script};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

static HEARTBEAT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/heartbeat.lua")));

/// A member is dropped once it has missed this many heartbeats in a row.
pub const MISSED_BEATS_TO_LEAVE: u32 = 3;

/// This instance's place among the live ones: rank `rank` of `instances` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub rank: u32,
    pub instances: u32,
}

impl Share {
    /// The share of an instance that knows of no other.
    pub const ALONE: Share = Share {
        rank: 0,
        instances: 1,
    };

    /// `member`'s share among the live `members` (itself included, or counted in if
    /// missing): its rank in byte order and their number.
    pub fn among(member: &str, members: &[String]) -> Share {
        let below = members.iter().filter(|m| m.as_str() < member).count();
        let listed = members.iter().any(|m| m == member);
        let instances = members.len() + usize::from(!listed);
        Share {
            rank: u32::try_from(below).unwrap_or(u32::MAX),
            instances: u32::try_from(instances).unwrap_or(u32::MAX),
        }
    }

    /// Whether this instance does the background work of `item_id` (its outbox, its
    /// expiries): item ids are dense, so `id mod N` spreads the items evenly.
    pub fn owns(self, item_id: u64) -> bool {
        item_id % u64::from(self.instances.max(1)) == u64::from(self.rank)
    }

    fn packed(self) -> u64 {
        (u64::from(self.rank) << 32) | u64::from(self.instances)
    }

    fn unpacked(packed: u64) -> Share {
        Share {
            rank: (packed >> 32) as u32,
            instances: (packed & u64::from(u32::MAX)) as u32,
        }
    }
}

/// This instance's latest share, read lock-free by the request path and the workers.
#[derive(Clone, Debug)]
pub struct Membership {
    view: Arc<View>,
}

#[derive(Debug)]
struct View {
    epoch: Instant,
    share: AtomicU64,
    /// Milliseconds after `epoch` until which `share` holds; 0: never known.
    valid_until_ms: AtomicU64,
}

impl Membership {
    /// A membership never told of another instance: always [`Share::ALONE`].
    pub fn alone() -> Self {
        Membership {
            view: Arc::new(View {
                epoch: Instant::now(),
                share: AtomicU64::new(Share::ALONE.packed()),
                valid_until_ms: AtomicU64::new(0),
            }),
        }
    }

    pub fn share(&self) -> Share {
        self.share_at(Instant::now())
    }

    fn share_at(&self, now: Instant) -> Share {
        let valid_until = self.view.valid_until_ms.load(Ordering::Acquire);
        if self.millis_since_epoch(now) >= valid_until {
            return Share::ALONE;
        }
        Share::unpacked(self.view.share.load(Ordering::Acquire))
    }

    /// A heartbeat sent at `sent_at` saw `share`; it holds for `lasts` from then.
    fn record(&self, share: Share, sent_at: Instant, lasts: Duration) {
        self.view.share.store(share.packed(), Ordering::Release);
        let until = self.millis_since_epoch(sent_at + lasts);
        self.view.valid_until_ms.store(until, Ordering::Release);
    }

    fn millis_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.view.epoch).as_millis()).unwrap_or(u64::MAX)
    }
}

/// This instance's entry in the registry, and the task that keeps it alive.
pub struct Registry {
    redis: RedisClient,
    key: String,
    member: String,
    heartbeat: Duration,
    membership: Membership,
    /// Live instances as this one last saw them (`purchase_instances_live`).
    live: Gauge,
}

impl Registry {
    pub fn new(redis: RedisClient, keys: &Keyspace, heartbeat: Duration, live: Gauge) -> Self {
        Registry {
            redis,
            key: keys.key("instances:purchase"),
            member: uuid::Uuid::now_v7().to_string(),
            heartbeat: heartbeat.max(Duration::from_millis(10)),
            membership: Membership::alone(),
            live,
        }
    }

    /// The view the request path and the workers read.
    pub fn membership(&self) -> Membership {
        self.membership.clone()
    }

    /// How long one heartbeat keeps this instance in the set.
    pub fn lasts(&self) -> Duration {
        self.heartbeat * MISSED_BEATS_TO_LEAVE
    }

    /// Renews this instance's entry and reads the live set: one round trip.
    pub async fn beat(&self) -> Result<Share, redis::RedisError> {
        let sent_at = Instant::now();
        let lasts_ms = u64::try_from(self.lasts().as_millis()).unwrap_or(u64::MAX);
        let members: Vec<String> = HEARTBEAT
            .key(&self.key)
            .arg(&self.member)
            .arg(lasts_ms)
            .invoke_async(&mut self.redis.get().await?)
            .await?;
        let share = Share::among(&self.member, &members);
        self.membership.record(share, sent_at, self.lasts());
        self.live.set(i64::from(share.instances));
        Ok(share)
    }

    /// Takes this instance out of the set, so the others take its share at once.
    pub async fn leave(&self) -> Result<(), redis::RedisError> {
        let mut conn = self.redis.get().await?;
        conn.zrem::<_, _, ()>(&self.key, &self.member).await
    }

    /// Heartbeats until shutdown, then leaves.
    pub async fn run(self, mut shutdown: Shutdown) {
        let mut last = self.membership.share();
        while shutdown.sleep(self.heartbeat).await {
            match self.beat().await {
                Ok(share) => {
                    if share != last {
                        tracing::info!(
                            rank = share.rank,
                            instances = share.instances,
                            "purchase-service instances changed"
                        );
                    }
                    last = share;
                }
                Err(error) => {
                    let share = self.membership.share();
                    self.live.set(i64::from(share.instances));
                    tracing::warn!(%error, rank = share.rank, instances = share.instances, "heartbeat failed");
                }
            }
        }
        match self.leave().await {
            Ok(()) => tracing::info!("left the purchase-service instances"),
            Err(error) => {
                tracing::warn!(%error, "could not leave the instance registry; the others drop this instance when its heartbeat runs out")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn each_live_instance_gets_its_own_rank() {
        let members = ids(&["c", "a", "b"]);
        let ranks: Vec<Share> = ["a", "b", "c"]
            .iter()
            .map(|m| Share::among(m, &members))
            .collect();
        assert_eq!(
            ranks,
            vec![
                Share {
                    rank: 0,
                    instances: 3
                },
                Share {
                    rank: 1,
                    instances: 3
                },
                Share {
                    rank: 2,
                    instances: 3
                },
            ]
        );
        assert_eq!(
            Share::among("b", &ids(&["a"])),
            Share {
                rank: 1,
                instances: 2
            },
            "an instance missing from the list counts itself in"
        );
        assert_eq!(Share::among("a", &[]), Share::ALONE);
    }

    #[test]
    fn every_item_has_exactly_one_owner_among_the_live_instances() {
        for instances in 1..=5 {
            let shares: Vec<Share> = (0..instances)
                .map(|rank| Share { rank, instances })
                .collect();
            let mut per_instance = vec![0; instances as usize];
            for item in 1..=1000u64 {
                let owners: Vec<&Share> = shares.iter().filter(|s| s.owns(item)).collect();
                assert_eq!(owners.len(), 1, "item {item} among {instances}");
                per_instance[owners[0].rank as usize] += 1;
            }
            let (least, most) = (
                per_instance.iter().min().unwrap(),
                per_instance.iter().max().unwrap(),
            );
            assert!(most - least <= 1, "{per_instance:?}: spread evenly");
        }
    }

    #[test]
    fn a_share_holds_as_long_as_a_heartbeat_lasts_then_the_instance_acts_alone() {
        let membership = Membership::alone();
        let start = Instant::now();
        assert_eq!(membership.share_at(start), Share::ALONE, "never known");
        let share = Share {
            rank: 1,
            instances: 2,
        };
        membership.record(share, start, Duration::from_millis(300));
        assert_eq!(membership.share_at(start), share);
        assert_eq!(
            membership.share_at(start + Duration::from_millis(299)),
            share
        );
        assert_eq!(
            membership.share_at(start + Duration::from_millis(300)),
            Share::ALONE
        );
        assert_eq!(Share::unpacked(share.packed()), share);
    }
}
