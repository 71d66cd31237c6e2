//! The ceiling: `redis-benchmark` running the very purchase script the service runs
//! (`inventory::purchase::PURCHASE_LUA`) at the same concurrency, against Redis
//! alone. Its keys are an item's keys (`inventory::ItemKeys`) under the stack's key
//! prefix plus `bench:`, deleted afterwards.

use anyhow::{Context, bail};
use common::config::RedisSettings;
use common::redis::Keyspace;
use inventory::ItemKeys;
use inventory::keys::{LIMIT, ON_SALE};
use inventory::purchase::PURCHASE_LUA;
use redis::AsyncCommands;
use redis::aio::ConnectionLike;
use std::process::Command;

/// What the ceiling run measured.
pub struct Ceiling {
    pub requests_per_s: f64,
    /// redis-benchmark's own CSV output.
    pub csv: String,
}

pub async fn measure(
    redis: &mut (impl ConnectionLike + Send + Sync),
    settings: &RedisSettings,
    concurrency: usize,
    requests: u64,
) -> anyhow::Result<Ceiling> {
    let keyspace = Keyspace::new(format!("{}bench:", settings.key_prefix));
    let keys = ItemKeys::new(&keyspace, 0);
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(PURCHASE_LUA)
        .query_async(redis)
        .await?;
    let _: () = redis.set(keys.stock(), 1_000_000_000u64).await?;
    let _: () = redis
        .hset_multiple(keys.meta(), &[(ON_SALE, 1), (LIMIT, 0)])
        .await?;
    // The script's KEYS and ARGV (see purchase.lua); redis-benchmark replaces
    // __rand_int__ in each call, so every purchase is another user and order.
    let script_keys =
        inventory::purchase::purchase_keys(&keys, 0, keys.idempotency(0, "-"), keys.void("-"));
    let event =
        r#"{"version":1,"order_id":"x","user_id":1,"item_id":0,"quantity":1,"purchased_at_ms":0}"#;
    let mut command = Command::new("redis-benchmark");
    command.args(["-h", &settings.host, "-p", &settings.port.to_string()]);
    if settings.db != 0 {
        command.args(["--dbnum", &settings.db.to_string()]);
    }
    if !settings.password.is_empty() {
        command.args(["-a", &settings.password]);
    }
    command
        .args([
            "-q",
            "-c",
            &concurrency.to_string(),
            "-n",
            &requests.to_string(),
        ])
        .args(["-r", "100000000", "--csv", "evalsha", &sha])
        .arg(script_keys.len().to_string())
        .args(&script_keys)
        .args(["__rand_int__", "1", "order-__rand_int__", event, "0", "0"]);
    let output = command
        .output()
        .context("running redis-benchmark (apt-get install -y redis-tools)");
    // UNLINK: a million-entry outbox takes DEL most of a second, past the reply timeout.
    redis::cmd("UNLINK")
        .arg(&script_keys)
        .query_async::<()>(redis)
        .await?;
    let output = output?;
    if !output.status.success() {
        bail!(
            "redis-benchmark failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let csv = String::from_utf8_lossy(&output.stdout).into_owned();
    let requests_per_s = requests_per_s(&csv)
        .with_context(|| format!("no requests/s in redis-benchmark's output: {csv}"))?;
    Ok(Ceiling {
        requests_per_s,
        csv,
    })
}

/// The requests/s of the last CSV row. The test name holds the script's arguments,
/// commas and quotes included, so the columns are counted from the end:
/// rps, then six latency columns.
pub fn requests_per_s(csv: &str) -> Option<f64> {
    let row = csv.lines().rev().find(|line| !line.trim().is_empty())?;
    let fields: Vec<&str> = row.split(',').collect();
    let rps = fields.len().checked_sub(7).map(|i| fields[i])?;
    rps.trim().trim_matches('"').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_the_seventh_column_from_the_end() {
        let csv = concat!(
            "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n",
            "\"evalsha abc 7 k1 k2 __rand_int__ 1 {\"\"version\"\":1,\"\"order_id\"\":\"\"x\"\"} 0 0\",\"27843.00\",\"8.9\",\"0.5\",\"8.5\",\"12.1\",\"14.0\",\"30.2\"\n",
        );
        assert_eq!(requests_per_s(csv), Some(27843.0));
        assert_eq!(requests_per_s(""), None);
    }
}
