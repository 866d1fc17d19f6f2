//! One run compared with another: absolute latencies, request rates and the
//! error rate, each judged by a relative bound (see the module map in
//! [`super`] for the rules).

use std::path::Path;

use super::RegressionError;
use super::rule::{Verdict, Worse, error_rate, relative};
use super::summary::{RunSummary, load_summary};
use crate::metrics::Metric;

/// `--max-regression` when not given.
pub const DEFAULT_MAX_REGRESSION_PCT: f64 = 10.0;

/// How a row's values read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Microseconds, shown as milliseconds.
    Micros,
    /// Requests per second.
    PerSecond,
    /// A share 0 to 1, shown in percent; its change in percentage points.
    Share,
}

/// One compared quantity.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub metric: String,
    pub unit: Unit,
    pub base: f64,
    pub current: f64,
    pub verdict: Verdict,
}

/// The comparison of two runs: rows in report order, and the metrics that
/// could not be compared because one run has no samples of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub rows: Vec<Row>,
    pub skipped: Vec<String>,
}

impl Comparison {
    pub fn regressed(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.verdict == Verdict::Regressed)
    }
}

/// Where a metric name sorts: [`Metric::ALL`] order, unknown names after.
fn metric_rank(name: &str) -> usize {
    Metric::ALL
        .iter()
        .position(|m| m.name() == name)
        .unwrap_or(Metric::ALL.len())
}

/// Compares every quantity present in both runs with a bound of `max_pct` percent.
pub fn compare(base: &RunSummary, current: &RunSummary, max_pct: f64) -> Comparison {
    let mut rows = Vec::new();
    let mut names: Vec<&String> = base.latencies.keys().chain(current.latencies.keys()).collect();
    names.sort_by_key(|n| (metric_rank(n), n.as_str()));
    names.dedup();
    let mut skipped = Vec::new();
    for name in names {
        let (Some(b), Some(c)) = (base.latencies.get(name), current.latencies.get(name)) else {
            skipped.push(name.clone());
            continue;
        };
        for ((q, b), (_, c)) in b.quantiles().into_iter().zip(c.quantiles()) {
            let (b, c) = (b as f64, c as f64);
            rows.push(Row {
                metric: format!("{name} {q}"),
                unit: Unit::Micros,
                base: b,
                current: c,
                verdict: relative(b, c, Worse::Higher, max_pct),
            });
        }
    }
    if let (Some(b), Some(c)) = (base.request_rate, current.request_rate) {
        rows.push(Row {
            metric: "request rate".to_owned(),
            unit: Unit::PerSecond,
            base: b,
            current: c,
            verdict: relative(b, c, Worse::Lower, max_pct),
        });
    }
    for ((bn, b), (cn, c)) in base.phase_rates.iter().zip(&current.phase_rates) {
        if bn != cn {
            break;
        }
        if let (Some(b), Some(c)) = (*b, *c) {
            rows.push(Row {
                metric: format!("rate [{bn}]"),
                unit: Unit::PerSecond,
                base: b,
                current: c,
                verdict: relative(b, c, Worse::Lower, max_pct),
            });
        }
    }
    if let (Some(b), Some(c)) = (base.error_rate, current.error_rate) {
        rows.push(Row {
            metric: "error rate".to_owned(),
            unit: Unit::Share,
            base: b,
            current: c,
            verdict: error_rate(b, c, max_pct),
        });
    }
    Comparison { rows, skipped }
}

/// Reads two runs (`summary.json` files or run folders) and compares them
/// with a bound of `max_pct` percent; all the problems, or the comparison.
pub fn compare_files(base: &Path, current: &Path, max_pct: f64) -> Result<Comparison, Vec<RegressionError>> {
    let (base_summary, current_summary) = match (load_summary(base), load_summary(current)) {
        (Ok(b), Ok(c)) => (b, c),
        (b, c) => return Err([b.err(), c.err()].into_iter().flatten().collect()),
    };
    let comparison = compare(&base_summary, &current_summary, max_pct);
    if comparison.rows.is_empty() {
        return Err(vec![RegressionError::NothingToCompare {
            base: base.to_owned(),
            current: current.to_owned(),
        }]);
    }
    Ok(comparison)
}

#[cfg(test)]
mod tests {
    // A test reports failure by panicking.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeMap;

    use super::*;
    use crate::regression::render::render_table;
    use crate::regression::summary::LatencyUs;

    fn latency(p50: u64, p90: u64, p99: u64, p999: u64) -> LatencyUs {
        LatencyUs { p50, p90, p99, p999 }
    }

    fn summary(e2e: LatencyUs) -> RunSummary {
        RunSummary {
            latencies: BTreeMap::from([("e2e".to_owned(), e2e)]),
            request_rate: Some(100.0),
            error_rate: Some(0.01),
            phase_rates: vec![("steady".to_owned(), Some(50.0))],
        }
    }

    fn verdict_of(c: &Comparison, metric: &str) -> Verdict {
        c.rows
            .iter()
            .find(|r| r.metric == metric)
            .unwrap_or_else(|| panic!("no row {metric} in {c:?}"))
            .verdict
    }

    #[test]
    fn identical_runs_do_not_regress() {
        let s = summary(latency(1000, 2000, 5000, 9000));
        let c = compare(&s, &s, 10.0);
        // 4 quantiles, the request rate, one phase rate, the error rate.
        assert_eq!(c.rows.len(), 7);
        assert!(c.rows.iter().all(|r| r.verdict == Verdict::Ok), "{c:?}");
        assert!(c.skipped.is_empty());
    }

    #[test]
    fn a_slower_p99_is_named() {
        let base = summary(latency(1000, 2000, 5000, 9000));
        let current = summary(latency(1000, 2000, 7500, 9000));
        let c = compare(&base, &current, 10.0);
        let regressed: Vec<&str> = c.regressed().map(|r| r.metric.as_str()).collect();
        assert_eq!(regressed, ["e2e p99"]);
        assert!(render_table(&c).contains("e2e p99"));
        assert!(render_table(&c).contains("+50.0 %"));
    }

    #[test]
    fn lower_rates_and_more_errors_regress() {
        let base = summary(latency(1000, 2000, 5000, 9000));
        let mut current = base.clone();
        current.request_rate = Some(80.0);
        current.error_rate = Some(0.03);
        current.phase_rates = vec![("steady".to_owned(), Some(40.0))];
        let c = compare(&base, &current, 10.0);
        assert_eq!(verdict_of(&c, "request rate"), Verdict::Regressed);
        assert_eq!(verdict_of(&c, "rate [steady]"), Verdict::Regressed);
        assert_eq!(verdict_of(&c, "error rate"), Verdict::Regressed);
    }

    #[test]
    fn metrics_missing_from_one_run_are_skipped() {
        let base = summary(latency(1000, 2000, 5000, 9000));
        let mut current = base.clone();
        current.latencies.insert("ttft".to_owned(), latency(100, 200, 300, 400));
        current.phase_rates = vec![("other".to_owned(), Some(1.0))];
        let c = compare(&base, &current, 10.0);
        assert_eq!(c.skipped, ["ttft"]);
        assert!(c.rows.iter().all(|r| !r.metric.starts_with("ttft")));
        assert!(c.rows.iter().all(|r| !r.metric.starts_with("rate [")));
    }

    #[test]
    fn metrics_sort_in_report_order() {
        let mut s = summary(latency(1, 1, 1, 1));
        s.latencies.insert("ttft".to_owned(), latency(1, 1, 1, 1));
        s.latencies.insert("custom".to_owned(), latency(1, 1, 1, 1));
        let c = compare(&s, &s, 10.0);
        let firsts: Vec<&str> = c
            .rows
            .iter()
            .filter(|r| r.metric.ends_with(" p50"))
            .map(|r| r.metric.as_str())
            .collect();
        assert_eq!(firsts, ["e2e p50", "ttft p50", "custom p50"]);
    }
}
