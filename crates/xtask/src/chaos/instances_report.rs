//! The instances drill's report: per fault, the answers in its window and its failures
//! by kind, judged by what that fault may cost; then every order's fate against MySQL
//! and the stock of both items. As JSON and as Markdown with the timeline chart.

use super::report::Timeline;
use super::seconds::PerSecond;
use devstack::{OrderAudit, StockAccount};
use loadgen::lifecycle::{LifecycleOutcome, is_failure};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// The faults of the drill, each with what it may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Every instance replaced one at a time: nothing may fail.
    RollingRestart,
    /// One purchase-service instance killed: only what was in flight on it may fail,
    /// at most one request per buyer.
    KillPurchase,
    /// One stock-writer killed: buyers never see it.
    KillWriter,
    /// One purchase-service instance paused beyond the gateway's read timeout: what
    /// waited on it is answered by the gateway, never left hanging or cut.
    Pause,
}

/// One fault's window: what was answered in it, and whether that was within its cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultWindow {
    pub fault: Fault,
    pub what: String,
    /// The window on the load's clock: from the fault to a few seconds after it ended.
    pub from_s: f64,
    pub to_s: f64,
    pub answered: u64,
    pub failed: u64,
    /// Every answer in the window by `"<operation> <outcome>"`.
    pub answers: BTreeMap<String, u64>,
    /// The most failures this fault may cost (0: none).
    pub allowed_failures: u64,
    pub passed: bool,
}

impl FaultWindow {
    pub fn new(
        fault: Fault,
        what: String,
        from_s: f64,
        to_s: f64,
        answers: BTreeMap<String, u64>,
        buyers: u64,
    ) -> Self {
        let answered = answers.values().sum();
        let failed = answers
            .iter()
            .filter(|(kind, _)| is_failure(kind))
            .map(|(_, n)| n)
            .sum();
        let untrue = answers
            .iter()
            .filter(|(kind, _)| is_failure(kind) && !is_true_failure(kind))
            .map(|(_, n)| n)
            .sum::<u64>();
        let allowed_failures = match fault {
            Fault::RollingRestart | Fault::KillWriter => 0,
            Fault::KillPurchase => buyers,
            Fault::Pause => u64::MAX,
        };
        let passed = failed <= allowed_failures && untrue == 0;
        FaultWindow {
            fault,
            what,
            from_s: round1(from_s),
            to_s: round1(to_s),
            answered,
            failed,
            answers,
            allowed_failures,
            passed,
        }
    }

    fn allowance(&self) -> String {
        match self.fault {
            Fault::RollingRestart | Fault::KillWriter => "none".into(),
            Fault::KillPurchase => format!(
                "what was in flight on the killed instance, each write answered OUTCOME_UNKNOWN: at most {} (one per buyer)",
                self.allowed_failures
            ),
            Fault::Pause => {
                "any number, each write answered OUTCOME_UNKNOWN, no client timeout".into()
            }
        }
    }
}

/// Whether a failed answer still told the truth: a write that reached an instance may
/// have happened, so only `OUTCOME_UNKNOWN` is true for it (never "try again", never
/// silence); a lookup may fail any way, since retrying it is always safe.
fn is_true_failure(kind: &str) -> bool {
    kind.starts_with("lookup ") && !kind.ends_with(" timeout")
        || kind.ends_with(" 503 OUTCOME_UNKNOWN")
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// What became of every reservation answered 200, against its status in MySQL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReservationFates {
    /// Paid (webhook answered 200) and `paid` in MySQL; paid but something else there.
    pub paid: u64,
    pub paid_wrong: u64,
    pub cancelled: u64,
    pub cancelled_wrong: u64,
    /// Neither paid nor cancelled (or refused for having expired): `expired` in MySQL.
    pub expired: u64,
    pub expired_wrong: u64,
    /// Pay or cancel without a clear answer: any ended status is right.
    pub undecided: u64,
    /// Still `reserved` in MySQL after the drain: never ended.
    pub never_ended: u64,
}

impl ReservationFates {
    /// Each reservation of `outcome` against `statuses` (order id → MySQL status).
    pub fn audit(outcome: &LifecycleOutcome, statuses: &BTreeMap<String, String>) -> Self {
        let paid: HashSet<&str> = outcome.paid.iter().map(String::as_str).collect();
        let cancelled: HashSet<&str> = outcome.cancelled.iter().map(String::as_str).collect();
        let undecided: HashSet<&str> = outcome.undecided.iter().map(String::as_str).collect();
        let mut fates = ReservationFates::default();
        let reserved: HashSet<&str> = outcome.reserved.iter().map(String::as_str).collect();
        for id in reserved {
            let Some(status) = statuses.get(id).map(String::as_str) else {
                continue;
            };
            if status == "reserved" {
                fates.never_ended += 1;
            } else if undecided.contains(id) {
                fates.undecided += 1;
            } else if paid.contains(id) {
                count(status == "paid", &mut fates.paid, &mut fates.paid_wrong);
            } else if cancelled.contains(id) {
                count(
                    status == "cancelled",
                    &mut fates.cancelled,
                    &mut fates.cancelled_wrong,
                );
            } else {
                count(
                    status == "expired",
                    &mut fates.expired,
                    &mut fates.expired_wrong,
                );
            }
        }
        fates
    }

    pub fn passed(&self) -> bool {
        self.paid_wrong == 0
            && self.cancelled_wrong == 0
            && self.expired_wrong == 0
            && self.never_ended == 0
    }
}

fn count(right: bool, rights: &mut u64, wrongs: &mut u64) {
    if right {
        *rights += 1;
    } else {
        *wrongs += 1;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstancesReport {
    pub cpus: usize,
    pub instances: usize,
    pub buyers: usize,
    pub timeline: Timeline,
    pub faults: Vec<FaultWindow>,
    /// The hot item's purchases answered 200 against MySQL, and its stock.
    pub purchases: OrderAudit,
    pub hot_stock: StockAccount,
    /// The scarce item's reservations answered 200 against MySQL, their fates, its stock.
    pub reservations: OrderAudit,
    pub fates: ReservationFates,
    pub scarce_stock: StockAccount,
    /// The admin's restocks of the scarce item through the gateway, by answer.
    pub restocks: BTreeMap<String, u64>,
    /// Purchases whose answer was unknown, asked again with their key after the load.
    pub unknown_happened: u64,
    pub unknown_not_happened: u64,
    pub unknown_unresolved: u64,
    pub per_second: PerSecond,
    #[serde(skip)]
    pub chart: Option<String>,
}

impl InstancesReport {
    /// Every fault within its cost; nothing lost, doubled or unconserved; every
    /// reservation ended once as its buyer was told; every unknown answer resolved.
    pub fn passed(&self) -> bool {
        self.faults.iter().all(|f| f.passed)
            && self.purchases.missing == 0
            && self.reservations.missing == 0
            && self.hot_stock.duplicated() == 0
            && self.scarce_stock.duplicated() == 0
            && self.hot_stock.conserved()
            && self.scarce_stock.conserved()
            && self.fates.passed()
            && self.unknown_unresolved == 0
            && self.restocks.keys().all(|answer| answer == "200")
    }

    pub fn markdown(&self) -> String {
        let verdict = |ok: bool| if ok { "yes" } else { "**NO**" };
        let mut lines = vec![
            "# Instances drill".to_owned(),
            String::new(),
            format!(
                "Machine: {} CPUs. {} instances of every service behind the gateway; {} buyers. Passed: **{}**.",
                self.cpus,
                self.instances,
                self.buyers,
                if self.passed() { "yes" } else { "no" }
            ),
            String::new(),
            "## Faults".into(),
            String::new(),
            "| fault | window (s) | answered | failed | may fail | within | failures by kind |"
                .into(),
            "|---|---|---|---|---|---|---|".into(),
        ];
        for fault in &self.faults {
            let kinds: Vec<String> = fault
                .answers
                .iter()
                .filter(|(kind, _)| is_failure(kind))
                .map(|(kind, n)| format!("{kind}: {n}"))
                .collect();
            lines.push(format!(
                "| {} | {:.1}–{:.1} | {} | {} | {} | {} | {} |",
                fault.what,
                fault.from_s,
                fault.to_s,
                fault.answered,
                fault.failed,
                fault.allowance(),
                verdict(fault.passed),
                if kinds.is_empty() {
                    "–".to_owned()
                } else {
                    kinds.join(", ")
                }
            ));
        }
        lines.extend([String::new(), "## What was done".into()]);
        lines.extend(self.timeline.markdown());
        if let Some(chart) = &self.chart {
            lines.extend([String::new(), chart.clone()]);
        }
        let (hot, scarce, fates) = (&self.hot_stock, &self.scarce_stock, &self.fates);
        lines.extend([
            String::new(),
            "## What was found".into(),
            format!(
                "- purchases answered 200: {}; missing from MySQL: **{}**; duplicated rows: **{}**; persisted but never answered 200 (cut): {}",
                self.purchases.confirmed,
                self.purchases.missing,
                hot.duplicated(),
                self.purchases.unconfirmed
            ),
            format!(
                "- hot item: MySQL {} + sold {} = {} (initial {}); conserved: {}",
                hot.mysql_stock,
                hot.sold,
                hot.mysql_stock + hot.sold,
                hot.initial,
                verdict(hot.conserved())
            ),
            format!(
                "- reservations answered 200: {}; missing from MySQL: **{}**; duplicated rows: **{}**",
                self.reservations.confirmed,
                self.reservations.missing,
                scarce.duplicated()
            ),
            format!(
                "- their fates: paid {} (wrong {}), cancelled {} (wrong {}), expired {} (wrong {}), pay or cancel unanswered {}, never ended **{}**",
                fates.paid,
                fates.paid_wrong,
                fates.cancelled,
                fates.cancelled_wrong,
                fates.expired,
                fates.expired_wrong,
                fates.undecided,
                fates.never_ended
            ),
            format!(
                "- scarce item: MySQL {} + paid {} = {} (initial and restocked {}), units given back {}; conserved: {}",
                scarce.mysql_stock,
                scarce.sold,
                scarce.mysql_stock + scarce.sold,
                scarce.initial,
                scarce.released,
                verdict(scarce.conserved())
            ),
            format!(
                "- restocks of the scarce item through the gateway, by answer: {:?}",
                self.restocks
            ),
            format!(
                "- purchases whose answer was unknown, asked again with their Idempotency-Key: {} had happened, {} had not, {} still unknown",
                self.unknown_happened, self.unknown_not_happened, self.unknown_unresolved
            ),
        ]);
        lines.join("\n") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
    }

    #[test]
    fn a_rolling_restart_may_not_fail_a_single_request() {
        let clean = FaultWindow::new(
            Fault::RollingRestart,
            "rolling".into(),
            5.0,
            40.0,
            answers(&[
                ("purchase 200", 900),
                ("reserve 409 INSUFFICIENT_STOCK", 50),
            ]),
            24,
        );
        assert!(clean.passed);
        assert_eq!((clean.answered, clean.failed), (950, 0));
        let one_cut = FaultWindow::new(
            Fault::RollingRestart,
            "rolling".into(),
            5.0,
            40.0,
            answers(&[("purchase 200", 900), ("lookup connection error", 1)]),
            24,
        );
        assert!(!one_cut.passed);
    }

    #[test]
    fn a_killed_instance_may_cost_what_was_in_flight_and_a_pause_only_gateway_answers() {
        let within = |failed| {
            FaultWindow::new(
                Fault::KillPurchase,
                "kill".into(),
                0.0,
                6.0,
                answers(&[("purchase 503 OUTCOME_UNKNOWN", failed)]),
                24,
            )
            .passed
        };
        assert!(within(12));
        assert!(!within(25));
        let told_to_retry = FaultWindow::new(
            Fault::KillPurchase,
            "kill".into(),
            0.0,
            6.0,
            answers(&[("purchase 502 BAD_GATEWAY", 1)]),
            24,
        );
        assert!(
            !told_to_retry.passed,
            "a purchase that reached the instance was told to retry"
        );
        let pause = |kind: &str| {
            FaultWindow::new(
                Fault::Pause,
                "pause".into(),
                0.0,
                38.0,
                answers(&[(kind, 3)]),
                24,
            )
            .passed
        };
        assert!(pause("purchase 503 OUTCOME_UNKNOWN"));
        assert!(pause("lookup 504 GATEWAY_TIMEOUT"));
        assert!(!pause("purchase 504 GATEWAY_TIMEOUT"));
        assert!(!pause("purchase timeout"));
        assert!(!pause("reserve connection error"));
        assert!(!pause("lookup timeout"));
    }

    #[test]
    fn each_reservation_must_end_as_its_buyer_was_told() {
        let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let mut outcome = LifecycleOutcome::default();
        outcome.reserved = ids(&["p", "c", "e", "u", "w"]);
        outcome.paid = ids(&["p"]);
        outcome.cancelled = ids(&["c"]);
        outcome.undecided = ids(&["u"]);
        let statuses = |w: &str| -> BTreeMap<String, String> {
            [
                ("p", "paid"),
                ("c", "cancelled"),
                ("e", "expired"),
                ("u", "cancelled"),
                ("w", w),
            ]
            .iter()
            .map(|(id, s)| ((*id).to_owned(), (*s).to_owned()))
            .collect()
        };
        let right = ReservationFates::audit(&outcome, &statuses("expired"));
        assert!(right.passed());
        assert_eq!(
            (right.paid, right.cancelled, right.expired, right.undecided),
            (1, 1, 2, 1)
        );
        let paid_unasked = ReservationFates::audit(&outcome, &statuses("paid"));
        assert_eq!(paid_unasked.expired_wrong, 1);
        assert!(!paid_unasked.passed());
        let stuck = ReservationFates::audit(&outcome, &statuses("reserved"));
        assert_eq!(stuck.never_ended, 1);
        assert!(!stuck.passed());
    }
}
