//! Reading stock-writer's Prometheus text, for the bench and the drills: a counter's
//! value, a histogram's sum and count, and the p99 of the `writer_lag_seconds`
//! histogram from its cumulative buckets.

use serde::{Deserialize, Serialize};

/// The histogram's p99: the upper bound of the first bucket holding 99 % of the events.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum LagP99 {
    /// No events were measured.
    Unknown,
    Millis(f64),
    /// Beyond the top finite bucket (10 s).
    OverTopBucket,
}

impl LagP99 {
    /// Milliseconds, `None` when unknown or beyond the buckets (JSON has no infinity).
    pub fn millis(self) -> Option<f64> {
        match self {
            LagP99::Millis(ms) => Some(ms),
            _ => None,
        }
    }

    pub fn text(self) -> String {
        match self {
            LagP99::Unknown => "n/a".into(),
            LagP99::Millis(ms) => format!("{ms:.0} ms"),
            LagP99::OverTopBucket => "over 10 s".into(),
        }
    }
}

/// The p99 of the histogram `name` (e.g. `writer_lag_seconds`) in `text`.
pub fn histogram_p99(text: &str, name: &str) -> LagP99 {
    let bucket_prefix = format!("{name}_bucket");
    let count_prefix = format!("{name}_count");
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    let mut count = 0.0;
    for line in text.lines() {
        let value = || line.split_whitespace().last()?.parse::<f64>().ok();
        if line.starts_with(&bucket_prefix) {
            let Some(le) = line.split("le=\"").nth(1).and_then(|s| s.split('"').next()) else {
                continue;
            };
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            if let Some(cumulative) = value() {
                buckets.push((le, cumulative));
            }
        } else if line.starts_with(&count_prefix) {
            count = value().unwrap_or(0.0);
        }
    }
    if count <= 0.0 {
        return LagP99::Unknown;
    }
    match buckets
        .iter()
        .find(|(_, cumulative)| *cumulative >= 0.99 * count)
    {
        Some((le, _)) if le.is_finite() => LagP99::Millis(le * 1000.0),
        Some(_) => LagP99::OverTopBucket,
        None => LagP99::Unknown,
    }
}

/// A counter's value (`<name> <value>`), as `awk '/^name/ {print $2}'` reads it.
pub fn counter(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The sum of a labelled counter's series (`<name>{...} <value>`) whose labels contain
/// `label` (e.g. `outcome="sold_out_mark"`); 0 when there is none.
pub fn counter_sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') && rest.contains(label))
        })
        .filter_map(|line| line.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

/// A histogram's `_sum` and `_count` (e.g. `writer_lag_seconds`: seconds of lag in
/// all, events measured).
pub fn histogram_totals(text: &str, name: &str) -> Option<(f64, f64)> {
    let sum = sample(text, &format!("{name}_sum"))?;
    let count = sample(text, &format!("{name}_count"))?;
    Some((sum, count))
}

/// The value of the series named exactly `name`, with or without labels.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = r#"# HELP writer_events_applied Events applied to MySQL.
# TYPE writer_events_applied counter
writer_events_applied_total 38130
# HELP writer_lag_seconds From purchase to MySQL commit.
# TYPE writer_lag_seconds histogram
writer_lag_seconds_sum 512.5
writer_lag_seconds_count 1000
writer_lag_seconds_bucket{le="0.001"} 0
writer_lag_seconds_bucket{le="0.005"} 10
writer_lag_seconds_bucket{le="0.5"} 900
writer_lag_seconds_bucket{le="1.0"} 995
writer_lag_seconds_bucket{le="10.0"} 1000
writer_lag_seconds_bucket{le="+Inf"} 1000
# EOF
"#;

    #[test]
    fn p99_is_the_first_bucket_holding_99_percent() {
        assert_eq!(
            histogram_p99(METRICS, "writer_lag_seconds"),
            LagP99::Millis(1000.0)
        );
        assert_eq!(LagP99::Millis(1000.0).text(), "1000 ms");
    }

    #[test]
    fn p99_beyond_the_buckets_and_without_events() {
        let slow = METRICS.replace(r#"{le="10.0"} 1000"#, r#"{le="10.0"} 980"#);
        let slow = slow.replace(r#"{le="1.0"} 995"#, r#"{le="1.0"} 950"#);
        let p99 = histogram_p99(&slow, "writer_lag_seconds");
        assert_eq!(p99, LagP99::OverTopBucket);
        assert_eq!((p99.millis(), p99.text().as_str()), (None, "over 10 s"));
        let idle = "writer_lag_seconds_count 0\nwriter_lag_seconds_bucket{le=\"+Inf\"} 0\n";
        assert_eq!(histogram_p99(idle, "writer_lag_seconds"), LagP99::Unknown);
        assert_eq!(LagP99::Unknown.text(), "n/a");
    }

    #[test]
    fn a_counter_reads_its_total() {
        assert_eq!(
            counter(METRICS, "writer_events_applied_total"),
            Some(38130.0)
        );
        assert_eq!(counter(METRICS, "writer_events_parked_total"), None);
    }

    #[test]
    fn a_labelled_counter_sums_the_series_with_the_label() {
        let text = r#"purchase_outcomes_total{strategy="lua",outcome="sold_out_mark"} 12
purchase_outcomes_total{strategy="lock",outcome="sold_out_mark"} 3
purchase_outcomes_total{strategy="lua",outcome="ok"} 99
purchase_outcomes_totally{outcome="sold_out_mark"} 1000
"#;
        let marks = counter_sum(
            text,
            "purchase_outcomes_total",
            r#"outcome="sold_out_mark""#,
        );
        assert_eq!(marks, 15.0);
        assert_eq!(counter_sum(text, "purchase_outcomes_total", "nothing"), 0.0);
    }

    #[test]
    fn a_histogram_has_a_sum_and_a_count() {
        assert_eq!(
            histogram_totals(METRICS, "writer_lag_seconds"),
            Some((512.5, 1000.0))
        );
        assert_eq!(histogram_totals(METRICS, "writer_batch_size"), None);
        let labelled = "writer_lag_seconds_sum{service=\"stock-writer\"} 2.5\n\
                        writer_lag_seconds_count{service=\"stock-writer\"} 10\n";
        assert_eq!(
            histogram_totals(labelled, "writer_lag_seconds"),
            Some((2.5, 10.0)),
            "as stock-writer exports it, with its service label"
        );
    }
}
