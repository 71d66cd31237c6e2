//! The revocation feed: every instance's own copy of the revocations that still matter,
//! so that checking a token costs no Redis call while the copy is known to be current.
//!
//! `revoked:<jti>` (see [`crate::auth`]) stays the truth. Beside it every revocation,
//! and every withdrawal of one, is appended to one Redis stream (`Keyspace::revocations`,
//! trimmed by time to what can still matter). Each process that authenticates runs one
//! follower task ([`follower`]) that reads the whole stream at start and then waits on
//! it (`XREAD BLOCK`) on a connection of its own, into a bounded in-memory [`Ledger`].
//!
//! The feed is *current* while the last read that completed was sent at most
//! `REVOCATION_FEED_MAX_LAG_MS` ago: a read sent at instant T returns every entry
//! appended before T, and a revocation is appended (and replicated) before its request
//! is answered, so a revocation answered at T is known to every current feed from
//! T + max lag on. While a feed is not current (starting, reconnecting, its ledger full)
//! every check looks the key up, as before the feed. A token the ledger flags is looked
//! up too, which makes a withdrawal exact at once everywhere and costs a Redis call only
//! for a revoked token presented again. `REVOCATION_FEED_MAX_LAG_MS=0` turns it off.

mod follower;
mod ledger;

use crate::config::JwtSettings;
use crate::metrics::Metrics;
use crate::redis::RedisClient;
use ledger::Ledger;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// A second past the last one a token is accepted in, for the time the revocation takes
/// to reach Redis and for the clocks of the services, which all read the same token:
/// added to a revocation key's life and to a stream entry's `until`.
pub(crate) const MARGIN_SECS: u64 = 1;

/// Kept beyond a token's lifetime before a stream entry is trimmed: the stream's ids
/// come from the Redis server's clock, the trim point from the appending service's.
const CLOCK_SLACK_SECS: u64 = 60;

/// How the feed runs, from the JWT settings.
#[derive(Debug, Clone)]
pub struct FeedSettings {
    /// `REVOCATION_FEED_MAX_LAG_MS`; zero turns the feed off.
    pub max_lag: Duration,
    /// `REVOCATION_FEED_MAX_ENTRIES`: the ledger's capacity.
    pub max_entries: usize,
    /// How long a stream entry may still matter: a token's lifetime (`JWT_TTL`), its
    /// leeway, the margin and some clock slack.
    pub retention_secs: u64,
}

impl FeedSettings {
    pub fn from_jwt(jwt: &JwtSettings) -> Self {
        FeedSettings {
            max_lag: Duration::from_millis(jwt.revocation_feed_max_lag_ms),
            max_entries: jwt.revocation_feed_max_entries,
            retention_secs: jwt.ttl_minutes * 60 + jwt.leeway_secs + MARGIN_SECS + CLOCK_SLACK_SECS,
        }
    }
}

/// What the feed says of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Current, and the token is not revoked: no lookup needed.
    Clear,
    /// The token was revoked (perhaps withdrawn since): look it up.
    Flagged,
    /// Not current: look it up.
    Unknown,
}

/// Where a revocation check got its answer, as `revocation_checks_total` counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// From the feed alone: no Redis call.
    Feed,
    /// From Redis (`EXISTS revoked:<jti>`).
    Lookup,
}

/// One process's revocation feed (a cheap handle; clones share it). Until
/// [`follow`](Self::follow) starts its follower it is never current.
#[derive(Clone)]
pub struct RevocationFeed {
    inner: Arc<Inner>,
}

struct Inner {
    settings: FeedSettings,
    ledger: RwLock<Ledger>,
    /// Mirrors the ledger's overflow, for the checks to read without its lock.
    overflowed: AtomicBool,
    /// When the last completed read was sent: microseconds since `epoch`, plus one; 0
    /// while no read completed since the follower (re)connected.
    known_at: AtomicU64,
    /// A while before the feed was made, so that any instant since can be expressed.
    epoch: Instant,
    /// Whether the feed was current when last looked at (for the log and the gauge).
    reported_current: AtomicBool,
    metrics: FeedMetrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    source: &'static str,
}

#[derive(Clone)]
struct FeedMetrics {
    checks: Family<CheckLabels, Counter>,
    by_feed: Counter,
    by_lookup: Counter,
    current: Gauge,
    lag_ms: Gauge,
    entries: Gauge,
}

impl FeedMetrics {
    fn new() -> Self {
        let checks = Family::<CheckLabels, Counter>::default();
        let by_feed = checks
            .get_or_create(&CheckLabels { source: "feed" })
            .clone();
        let by_lookup = checks
            .get_or_create(&CheckLabels { source: "lookup" })
            .clone();
        FeedMetrics {
            checks,
            by_feed,
            by_lookup,
            current: Gauge::default(),
            lag_ms: Gauge::default(),
            entries: Gauge::default(),
        }
    }
}

impl RevocationFeed {
    pub fn new(settings: FeedSettings) -> Self {
        let capacity = settings.max_entries;
        RevocationFeed {
            inner: Arc::new(Inner {
                settings,
                ledger: RwLock::new(Ledger::new(capacity)),
                overflowed: AtomicBool::new(false),
                known_at: AtomicU64::new(0),
                epoch: Instant::now()
                    .checked_sub(Duration::from_secs(3600))
                    .unwrap_or_else(Instant::now),
                reported_current: AtomicBool::new(false),
                metrics: FeedMetrics::new(),
            }),
        }
    }

    /// Whether the feed is on (`REVOCATION_FEED_MAX_LAG_MS` > 0).
    pub fn is_on(&self) -> bool {
        !self.inner.settings.max_lag.is_zero()
    }

    pub fn settings(&self) -> &FeedSettings {
        &self.inner.settings
    }

    /// Registers the feed's metrics with the service's: the checks always, the feed's
    /// own gauges only while it is on (off, `revocation_feed_current` would read 0 for
    /// good and keep the `RevocationFeedBehind` alert firing).
    pub fn register(&self, metrics: &mut Metrics) {
        let own = &self.inner.metrics;
        metrics.register(
            "revocation_checks",
            "Token revocation checks, by where the answer came from: feed (no Redis call) or lookup (EXISTS in Redis)",
            own.checks.clone(),
        );
        if !self.is_on() {
            return;
        }
        metrics.register(
            "revocation_feed_current",
            "Whether this instance's revocation feed is current (1), or revocations are looked up in Redis (0)",
            own.current.clone(),
        );
        metrics.register(
            "revocation_feed_lag_milliseconds",
            "How stale the revocation feed was just before its latest read completed (current while at most REVOCATION_FEED_MAX_LAG_MS)",
            own.lag_ms.clone(),
        );
        metrics.register(
            "revocation_feed_entries",
            "Revocations this instance's feed holds (at most REVOCATION_FEED_MAX_ENTRIES)",
            own.entries.clone(),
        );
    }

    /// Starts the follower task on `redis` (a connection of its own, to the node of
    /// `stream`), unless the feed is off. It ends soon after the last handle on the feed
    /// is dropped. Needs a Tokio runtime.
    pub fn follow(&self, redis: RedisClient, stream: String) {
        if self.is_on() {
            tokio::spawn(follower::run(Arc::downgrade(&self.inner), redis, stream));
        }
    }

    /// What the feed says of token `jti` at second `now`.
    pub fn answer(&self, jti: &str, now: u64) -> Answer {
        if !self.is_current() {
            return Answer::Unknown;
        }
        let flagged = self
            .inner
            .ledger
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .flags(jti, now);
        if flagged {
            Answer::Flagged
        } else {
            Answer::Clear
        }
    }

    /// Whether every revocation answered more than `REVOCATION_FEED_MAX_LAG_MS` ago is
    /// known here.
    pub fn is_current(&self) -> bool {
        let current = self.inner.is_current();
        self.inner.report(current);
        current
    }

    /// Counts a check by where its answer came from.
    pub fn count_check(&self, source: Source) {
        match source {
            Source::Feed => self.inner.metrics.by_feed.inc(),
            Source::Lookup => self.inner.metrics.by_lookup.inc(),
        };
    }

    /// How many checks were answered from `source` so far.
    pub fn checks(&self, source: Source) -> u64 {
        match source {
            Source::Feed => self.inner.metrics.by_feed.get(),
            Source::Lookup => self.inner.metrics.by_lookup.get(),
        }
    }

    /// This process's own revocation, known here at once (before the stream has it).
    pub fn record_revocation(&self, jti: &str, holder: &str, until: u64) {
        self.inner
            .apply(|ledger, now| ledger.revoke(jti, holder, until, now));
    }

    /// This process's own withdrawal, known here at once.
    pub fn record_withdrawal(&self, jti: &str, holder: &str) {
        self.inner.apply(|ledger, _| ledger.withdraw(jti, holder));
    }

    /// `XADD` of a revocation by `holder` of token `jti`, usable through second
    /// `until`, trimming what can no longer matter.
    pub fn revocation_entry(
        &self,
        stream: &str,
        jti: &str,
        holder: &str,
        until: u64,
    ) -> redis::Cmd {
        let mut cmd = self.entry(stream, "revoke", jti, holder);
        cmd.arg("until").arg(until);
        cmd
    }

    /// `XADD` of the withdrawal of `holder`'s revocation of `jti`.
    pub fn withdrawal_entry(&self, stream: &str, jti: &str, holder: &str) -> redis::Cmd {
        self.entry(stream, "withdraw", jti, holder)
    }

    fn entry(&self, stream: &str, op: &str, jti: &str, holder: &str) -> redis::Cmd {
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let oldest = now_ms.saturating_sub(self.inner.settings.retention_secs * 1000);
        let mut cmd = redis::cmd("XADD");
        cmd.arg(stream)
            .arg("MINID")
            .arg("~")
            .arg(oldest)
            .arg("*")
            .arg("op")
            .arg(op)
            .arg("jti")
            .arg(jti)
            .arg("holder")
            .arg(holder);
        cmd
    }
}

impl Inner {
    fn is_current(&self) -> bool {
        let known = self.known_at.load(Ordering::Acquire);
        if known == 0 || self.overflowed.load(Ordering::Acquire) {
            return false;
        }
        let age_us = self.micros_now().saturating_sub(known - 1);
        age_us <= self.settings.max_lag.as_micros() as u64
    }

    fn micros_now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Logs and shows a change of currency, once per change.
    fn report(&self, current: bool) {
        if self.reported_current.load(Ordering::Relaxed) == current
            || self.reported_current.swap(current, Ordering::AcqRel) == current
        {
            return;
        }
        self.metrics.current.set(i64::from(current));
        if current {
            tracing::info!(
                entries = self.metrics.entries.get(),
                "revocation feed is current: tokens are checked without a Redis call"
            );
        } else {
            tracing::warn!(
                overflowed = self.overflowed.load(Ordering::Acquire),
                "revocation feed is not current: revocations are looked up in Redis"
            );
        }
    }

    /// Changes the ledger, then brings the overflow mirror and the gauge in step.
    fn apply(&self, change: impl FnOnce(&mut Ledger, u64)) {
        let now = crate::jwt::now_secs();
        let mut ledger = self.ledger.write().unwrap_or_else(|e| e.into_inner());
        change(&mut ledger, now);
        ledger.prune(now);
        self.overflowed
            .store(ledger.overflowed(), Ordering::Release);
        self.metrics.entries.set(ledger.len() as i64);
    }

    /// Every entry appended before `sent` (a read's send instant) is in the ledger.
    fn known(&self, sent: Instant) {
        let sent_us = sent.duration_since(self.epoch).as_micros() as u64 + 1;
        let previous = self.known_at.swap(sent_us, Ordering::AcqRel);
        if previous != 0 {
            let stale_ms = self.micros_now().saturating_sub(previous - 1) / 1000;
            self.metrics.lag_ms.set(stale_ms as i64);
        }
        self.report(self.is_current());
    }

    /// The follower lost its connection (or starts a rebuild): nothing is known for
    /// sure until it has read again.
    fn unknown(&self) {
        self.known_at.store(0, Ordering::Release);
        self.report(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(max_entries: usize) -> RevocationFeed {
        RevocationFeed::new(FeedSettings {
            max_lag: Duration::from_millis(200),
            max_entries,
            retention_secs: 3600,
        })
    }

    #[test]
    fn a_feed_never_read_is_not_current() {
        let feed = feed(10);
        feed.record_revocation("a", "1", u64::MAX);
        assert_eq!(feed.answer("a", 1), Answer::Unknown);
        assert_eq!(feed.answer("b", 1), Answer::Unknown);
    }

    #[test]
    fn a_feed_is_current_for_its_max_lag_after_a_read_was_sent() {
        let feed = feed(10);
        feed.inner.known(Instant::now());
        feed.record_revocation("a", "1", u64::MAX);
        assert_eq!(feed.answer("a", 1), Answer::Flagged);
        assert_eq!(feed.answer("b", 1), Answer::Clear);
        let long_ago = Instant::now() - Duration::from_millis(250);
        feed.inner.known(long_ago);
        assert_eq!(feed.answer("b", 1), Answer::Unknown, "past the max lag");
        feed.inner.known(Instant::now());
        feed.inner.unknown();
        assert_eq!(feed.answer("b", 1), Answer::Unknown, "lost its connection");
    }

    #[test]
    fn a_full_feed_is_not_current() {
        let feed = feed(1);
        feed.inner.known(Instant::now());
        feed.record_revocation("a", "1", u64::MAX);
        assert!(feed.is_current());
        feed.record_revocation("b", "1", u64::MAX);
        assert!(!feed.is_current(), "b was refused: the feed misses it");
        assert_eq!(feed.answer("b", 1), Answer::Unknown);
    }

    #[test]
    fn a_zero_max_lag_turns_the_feed_off() {
        let mut settings = feed(1).inner.settings.clone();
        settings.max_lag = Duration::ZERO;
        assert!(!RevocationFeed::new(settings).is_on());
    }
}
