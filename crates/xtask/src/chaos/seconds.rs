//! What a drill records each second, so that its report can show the faults as a
//! timeline: the loads' answers per second (200s, and 5xx or none) from loadgen, and,
//! sampled once a second by a [`Sampler`] from just before the load until the orders
//! drained, the orders waiting in the drill items' outboxes (Redis) and stock-writer's
//! mean lag (from its `/metrics`). The sampler has a thread and a runtime of its own:
//! the drill blocks its own while it restarts the broker, which is when the figures
//! matter.

use crate::charts::{self, Mark, TimePanel, TimeSeries, Timeline};
use crate::metrics;
use common::config::RedisSettings;
use common::redis::Keyspace;
use devstack::probe;
use devstack::stock::outbox_len;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long one reading may take before it counts as not read.
const READ_LIMIT: Duration = Duration::from_millis(800);

/// One load's answers per second; second `i` is `[i, i+1)` s after the load started,
/// which is `start_s` on the drill's time axis (its first load's clock).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadSeconds {
    pub name: String,
    pub start_s: f64,
    pub seconds: Vec<loadgen::Second>,
}

impl LoadSeconds {
    /// A finished load's seconds, on the clock of the load that started at `origin`.
    pub fn of(name: &str, outcome: &loadgen::Outcome, origin: Instant) -> Self {
        let start = outcome.started.checked_duration_since(origin);
        let early = origin.checked_duration_since(outcome.started);
        let start_s =
            start.map_or(0.0, |d| d.as_secs_f64()) - early.map_or(0.0, |d| d.as_secs_f64());
        LoadSeconds {
            name: name.into(),
            start_s,
            seconds: outcome.per_second.clone(),
        }
    }
}

/// One reading of the sampler.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the load started.
    pub t_s: f64,
    /// Orders in the outboxes of the drill's items: taken in Redis, not yet in MySQL.
    pub outbox: Option<u64>,
    /// The mean lag, purchase to MySQL commit, of the events stock-writer applied since
    /// the previous reading (none when it applied none, or did not answer).
    pub writer_lag_ms: Option<f64>,
}

/// Everything recorded each second during a drill.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PerSecond {
    pub loads: Vec<LoadSeconds>,
    pub samples: Vec<Sample>,
}

/// A reading at an instant, before the load's start is known.
struct Reading {
    at: Instant,
    outbox: Option<u64>,
    writer_lag_ms: Option<f64>,
}

impl PerSecond {
    /// The loads' seconds and the sampler's readings, on the time axis of the load that
    /// started at `started` (readings from before it are left out).
    fn new(loads: Vec<LoadSeconds>, readings: Vec<Reading>, started: Instant) -> Self {
        let samples = readings
            .into_iter()
            .filter_map(|r| {
                let t = r.at.checked_duration_since(started)?;
                Some(Sample {
                    t_s: (t.as_secs_f64() * 10.0).round() / 10.0,
                    outbox: r.outbox,
                    writer_lag_ms: r.writer_lag_ms,
                })
            })
            .collect();
        PerSecond { loads, samples }
    }

    /// Draws [`PerSecond::chart`] into `<dir>/<name>.svg`; its Markdown image, or
    /// `None` after a warning ([`charts::publish`]).
    pub fn publish(&self, title: &str, marks: Vec<Mark>, dir: &Path, name: &str) -> Option<String> {
        charts::publish(&self.chart(title, marks), dir, name)
    }

    /// The drill's timeline chart: a panel per measure, `marks` where the faults were.
    pub fn chart(&self, title: &str, marks: Vec<Mark>) -> Timeline {
        let per_load = |f: fn(&loadgen::Second) -> u64, color: usize| {
            self.loads
                .iter()
                .enumerate()
                .map(|(i, load)| TimeSeries {
                    name: load.name.clone(),
                    color: color + 2 * i,
                    // Each second is drawn at its middle.
                    points: (load.seconds.iter().enumerate())
                        .map(|(s, second)| (load.start_s + s as f64 + 0.5, Some(f(second) as f64)))
                        .collect(),
                })
                .collect()
        };
        let sampled = |name: &str, color, f: fn(&Sample) -> Option<f64>| TimeSeries {
            name: name.into(),
            color,
            points: self.samples.iter().map(|s| (s.t_s, f(s))).collect(),
        };
        Timeline {
            title: title.into(),
            x_label: "seconds since the load started".into(),
            panels: vec![
                TimePanel {
                    title: "purchases answered 200, each second".into(),
                    y_label: "per second".into(),
                    series: per_load(|s| s.ok, 0),
                },
                TimePanel {
                    title: "answered 5xx or not at all, each second".into(),
                    y_label: "per second".into(),
                    series: per_load(|s| s.server_errors, 1),
                },
                TimePanel {
                    title: "orders in the items' outboxes (in Redis, not yet in MySQL)".into(),
                    y_label: "orders".into(),
                    series: vec![sampled("outbox", 4, |s| s.outbox.map(|n| n as f64))],
                },
                TimePanel {
                    title: "stock-writer lag: mean of purchase → MySQL commit over the events applied since the previous second".into(),
                    y_label: "mean lag, ms".into(),
                    series: vec![sampled("lag", 5, |s| s.writer_lag_ms)],
                },
            ],
            marks,
        }
    }
}

/// Reads the outboxes and stock-writer's lag once a second until stopped (or dropped,
/// when the drill fails before it could stop it).
pub struct Sampler {
    running: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<Vec<Reading>>>>,
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
    }
}

impl Sampler {
    /// Starts reading the outboxes of `items` (through Redis as `redis` says) and the
    /// lag from stock-writer's `/metrics` on `writer_port`.
    pub fn start(redis: RedisSettings, items: Vec<u64>, writer_port: u16) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let still = running.clone();
        let thread = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(sample(redis, items, writer_port, still))
        });
        Sampler {
            running,
            thread: Some(thread),
        }
    }

    /// Stops it (within a second); what it recorded, aligned on the load that started at
    /// `started`, with the loads' own seconds.
    pub fn stop(mut self, started: Instant, loads: Vec<LoadSeconds>) -> PerSecond {
        self.running.store(false, Ordering::Relaxed);
        let readings = match self.thread.take().map(|thread| thread.join()) {
            Some(Ok(Ok(readings))) => readings,
            None => Vec::new(),
            Some(Ok(Err(error))) => {
                crate::step(format!("WARNING: the per-second sampler failed: {error:#}"));
                Vec::new()
            }
            Some(Err(_)) => {
                crate::step("WARNING: the per-second sampler panicked");
                Vec::new()
            }
        };
        PerSecond::new(loads, readings, started)
    }
}

async fn sample(
    redis: RedisSettings,
    items: Vec<u64>,
    writer_port: u16,
    running: Arc<AtomicBool>,
) -> anyhow::Result<Vec<Reading>> {
    let client = common::redis::client(&redis)?;
    let keyspace = Keyspace::new(redis.key_prefix.clone());
    let started = tokio::time::Instant::now();
    let mut readings = Vec::new();
    let mut totals = None;
    for n in 1u32.. {
        if !running.load(Ordering::Relaxed) {
            break;
        }
        let at = Instant::now();
        let outbox = async {
            let mut connection = client.get().await.ok()?;
            outbox_len(&mut connection, &keyspace, &items).await.ok()
        };
        let lag = async {
            let answer = probe::get(writer_port, "/metrics").await?;
            metrics::histogram_totals(&answer.body, "writer_lag_seconds")
        };
        let (outbox, lag) = tokio::join!(
            tokio::time::timeout(READ_LIMIT, outbox),
            tokio::time::timeout(READ_LIMIT, lag)
        );
        let now = lag.ok().flatten();
        readings.push(Reading {
            at,
            outbox: outbox.ok().flatten(),
            writer_lag_ms: now.and_then(|now| mean_lag_ms(totals, now)),
        });
        totals = now.or(totals);
        tokio::time::sleep_until(started + Duration::from_secs(n.into())).await;
    }
    Ok(readings)
}

/// The mean lag in ms of the events applied between two readings of the lag
/// histogram's (sum in seconds, count); a count that went down is a restarted writer,
/// whose totals are all since. None without a previous reading or a new event.
fn mean_lag_ms(previous: Option<(f64, f64)>, now: (f64, f64)) -> Option<f64> {
    let (sum, count) = match previous? {
        (_, count) if now.1 < count => now,
        (sum, count) => (now.0 - sum, now.1 - count),
    };
    (count > 0.0).then(|| sum / count * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_is_the_mean_of_the_events_applied_since_the_last_reading() {
        assert_eq!(mean_lag_ms(None, (5.0, 100.0)), None, "no baseline yet");
        assert_eq!(mean_lag_ms(Some((5.0, 100.0)), (5.0, 100.0)), None);
        assert_eq!(mean_lag_ms(Some((5.0, 100.0)), (7.0, 110.0)), Some(200.0));
        assert_eq!(
            mean_lag_ms(Some((5.0, 100.0)), (1.5, 3.0)),
            Some(500.0),
            "restarted: everything since"
        );
    }

    #[test]
    fn samples_are_placed_on_the_loads_time_axis() {
        let started = Instant::now();
        let reading = |ms: u64| Reading {
            at: started + Duration::from_millis(ms),
            outbox: Some(ms),
            writer_lag_ms: None,
        };
        let before = Reading {
            at: started - Duration::from_millis(300),
            ..reading(0)
        };
        let loads = vec![LoadSeconds {
            name: "purchases".into(),
            start_s: 0.0,
            seconds: vec![loadgen::Second {
                ok: 5,
                server_errors: 1,
            }],
        }];
        let recorded = PerSecond::new(loads, vec![before, reading(20), reading(1_040)], started);
        let times: Vec<f64> = recorded.samples.iter().map(|s| s.t_s).collect();
        assert_eq!(times, [0.0, 1.0], "the reading before the load is left out");

        let chart = recorded.chart("drill", vec![]);
        assert_eq!(chart.panels.len(), 4);
        assert_eq!(chart.panels[0].series[0].points, [(0.5, Some(5.0))]);
        assert_eq!(chart.panels[1].series[0].points, [(0.5, Some(1.0))]);
        assert_eq!(
            chart.panels[2].series[0].points,
            [(0.0, Some(20.0)), (1.0, Some(1040.0))]
        );
        assert_eq!(chart.panels[3].series[0].points, [(0.0, None), (1.0, None)]);
    }

    #[test]
    fn a_redis_drill_is_drawn_with_its_faults_close_together() {
        let dir = crate::charts::testing::scratch("redis-drill");
        let down = |s: usize| (7..10).contains(&s);
        let seconds = (0..25)
            .map(|s| loadgen::Second {
                ok: if down(s) { 40 } else { 2100 },
                server_errors: if down(s) { 700 } else { 0 },
            })
            .collect();
        let samples = (0..40)
            .map(|s| Sample {
                t_s: f64::from(s),
                outbox: Some(if s < 25 { 300 + 20 * s as u64 } else { 0 }),
                writer_lag_ms: (!(8..10).contains(&s)).then_some(30.0 + f64::from(s)),
            })
            .collect();
        let recorded = PerSecond {
            loads: vec![LoadSeconds {
                name: "purchases".into(),
                start_s: 0.0,
                seconds,
            }],
            samples,
        };
        let mark = |at_s, label: &str| Mark {
            at_s,
            label: label.into(),
        };
        let marks = vec![
            mark(5.0, "replica stalls"),
            mark(7.0, "kill -9 master"),
            mark(7.5, "replica resumes"),
            mark(9.8, "failover"),
            mark(11.8, "restart old master"),
            mark(12.9, "old master back"),
        ];
        let chart = recorded.chart("cluster, REDIS_MIN_REPLICAS_ACKED=1, hot item", marks);
        crate::charts::write(&chart, &dir, "redis").unwrap();
        crate::charts::testing::assert_drawn(
            &dir,
            "redis",
            &[
                "cluster, REDIS_MIN_REPLICAS_ACKED=1, hot item",
                "purchases answered 200, each second",
                "answered 5xx or not at all, each second",
                "orders in the items' outboxes (in Redis, not yet in MySQL)",
                "mean lag, ms",
                "kill -9 master",
                "old master back",
            ],
        );
    }
}
