//! The regression rule, in one place: the verdict of a relative bound, of an
//! error rate's percentage points, and of a median ratio against a baseline's
//! spread; and runs judged against their baseline by a [`Rule`].

use super::baseline::{Baseline, Spread};
use super::summary::FloorRun;
use crate::metrics::Metric;

/// Slack for floating-point noise, so a change of exactly PCT is not a regression.
const EPSILON: f64 = 1e-9;

/// How one metric fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the bound either way.
    Ok,
    /// Better than BASE by more than the bound.
    Improved,
    /// Worse than BASE by more than the bound.
    Regressed,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Improved => "improved",
            Verdict::Regressed => "REGRESSED",
        }
    }
}

/// Which way is worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Worse {
    /// A latency: higher is worse.
    Higher,
    /// A rate: lower is worse.
    Lower,
}

/// The change from `base` to `current` in percent of `base` (None when `base` is 0).
pub fn change_pct(base: f64, current: f64) -> Option<f64> {
    (base != 0.0).then(|| (current - base) / base * 100.0)
}

/// The verdict of a relative bound of `max_pct` percent.
pub fn relative(base: f64, current: f64, worse: Worse, max_pct: f64) -> Verdict {
    let Some(change) = change_pct(base, current) else {
        // Any increase from 0 is beyond every relative bound; a rate of 0 cannot drop.
        return match worse {
            Worse::Higher if current > 0.0 => Verdict::Regressed,
            Worse::Lower if current > 0.0 => Verdict::Improved,
            _ => Verdict::Ok,
        };
    };
    let worsened = match worse {
        Worse::Higher => change,
        Worse::Lower => -change,
    };
    if worsened > max_pct + EPSILON {
        Verdict::Regressed
    } else if worsened < -(max_pct + EPSILON) {
        Verdict::Improved
    } else {
        Verdict::Ok
    }
}

/// The verdict on an error rate (shares 0 to 1): a tolerance of `max_pct / 100`
/// percentage points either way.
pub fn error_rate(base: f64, current: f64, max_pct: f64) -> Verdict {
    let tolerance = max_pct / 100.0 / 100.0;
    let delta = current - base;
    if delta > tolerance + EPSILON {
        Verdict::Regressed
    } else if delta < -(tolerance + EPSILON) {
        Verdict::Improved
    } else {
        Verdict::Ok
    }
}

/// What a baseline comparison looks at, and how much change it lets pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// How far, in percent of the baseline median, the current median may move.
    pub tolerance_pct: f64,
    pub metrics: Vec<Metric>,
    /// Percentile keys, from [`PERCENTILES`](super::baseline::PERCENTILES).
    pub percentiles: Vec<&'static str>,
}

impl Rule {
    pub const DEFAULT_TOLERANCE_PCT: f64 = 10.0;
    pub const DEFAULT_METRICS: [Metric; 3] = [Metric::E2e, Metric::Ttft, Metric::Overhead];
    pub const DEFAULT_PERCENTILES: [&'static str; 3] = ["p50", "p90", "p99"];

    /// A rule of `tolerance_pct` percent over `metrics` and `percentiles`,
    /// each taken once, in order; `None` or an empty list takes the default.
    pub fn new(tolerance_pct: Option<f64>, metrics: &[Metric], percentiles: &[&'static str]) -> Rule {
        let default = Rule::default();
        Rule {
            tolerance_pct: tolerance_pct.unwrap_or(default.tolerance_pct),
            metrics: if metrics.is_empty() {
                default.metrics
            } else {
                distinct(metrics)
            },
            percentiles: if percentiles.is_empty() {
                default.percentiles
            } else {
                distinct(percentiles)
            },
        }
    }
}

/// Each item once, in first-seen order.
fn distinct<T: PartialEq + Copy>(items: &[T]) -> Vec<T> {
    let mut seen = Vec::new();
    for item in items {
        if !seen.contains(item) {
            seen.push(*item);
        }
    }
    seen
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            tolerance_pct: Rule::DEFAULT_TOLERANCE_PCT,
            metrics: Rule::DEFAULT_METRICS.to_vec(),
            percentiles: Rule::DEFAULT_PERCENTILES.to_vec(),
        }
    }
}

/// The verdict on a current median against a baseline's spread, for a
/// tolerance of `tolerance_pct` percent of the baseline median.
pub fn verdict(baseline: Spread, current: f64, tolerance_pct: f64) -> Verdict {
    let band = baseline.median.abs() * tolerance_pct / 100.0;
    if current > baseline.median + band + EPSILON && current > baseline.max + EPSILON {
        Verdict::Regressed
    } else if current < baseline.median - band - EPSILON && current < baseline.min - EPSILON {
        Verdict::Improved
    } else {
        Verdict::Ok
    }
}

/// One judged ratio.
#[derive(Debug, Clone, PartialEq)]
pub struct RatioRow {
    pub metric: &'static str,
    pub percentile: &'static str,
    pub baseline: Spread,
    /// Over the current runs that have this ratio.
    pub current: Spread,
    /// How many current runs have it.
    pub current_runs: usize,
    pub verdict: Verdict,
}

/// The runs of one scenario judged against its baseline: rows in the rule's
/// order, and what could not be compared and why.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Judgment {
    pub rows: Vec<RatioRow>,
    pub skipped: Vec<String>,
}

impl Judgment {
    pub fn with(&self, verdict: Verdict) -> impl Iterator<Item = &RatioRow> {
        self.rows.iter().filter(move |r| r.verdict == verdict)
    }
}

/// Judges `runs` (of the baseline's scenario) against `baseline` by `rule`.
pub fn judge(baseline: &Baseline, runs: &[FloorRun], rule: &Rule) -> Judgment {
    let mut judgment = Judgment::default();
    for metric in &rule.metrics {
        let name = metric.name();
        let Some(base) = baseline.ratios.get(name) else {
            judgment.skipped.push(format!("{name} (not in the baseline)"));
            continue;
        };
        if !runs.iter().any(|r| r.ratios.contains_key(name)) {
            judgment.skipped.push(format!("{name} (not in the current runs)"));
            continue;
        }
        for &percentile in &rule.percentiles {
            let Some(&base) = base.get(percentile) else {
                judgment.skipped.push(format!(
                    "{name} {percentile} (no ratio in the baseline: its floor was 0)"
                ));
                continue;
            };
            let values: Vec<f64> = runs.iter().filter_map(|r| r.ratio(name, percentile)).collect();
            let Some(current) = Spread::of(&values) else {
                judgment.skipped.push(format!(
                    "{name} {percentile} (no ratio in the current runs: their floor was 0)"
                ));
                continue;
            };
            judgment.rows.push(RatioRow {
                metric: name,
                percentile,
                baseline: base,
                current,
                current_runs: values.len(),
                verdict: verdict(base, current.median, rule.tolerance_pct),
            });
        }
    }
    judgment
}

/// The judgments of several scenarios added up: how many ratios were
/// judged, and which regressed or improved (`<scenario> <metric> <pct>`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tally {
    pub compared: usize,
    pub regressed: Vec<String>,
    pub improved: Vec<String>,
}

impl Tally {
    /// Adds the judgment of the runs of `scenario`.
    pub fn add(&mut self, scenario: &str, judgment: &Judgment) {
        self.compared += judgment.rows.len();
        let named = |r: &RatioRow| format!("{scenario} {} {}", r.metric, r.percentile);
        self.regressed.extend(judgment.with(Verdict::Regressed).map(named));
        self.improved.extend(judgment.with(Verdict::Improved).map(named));
    }
}

#[cfg(test)]
mod tests {
    // A test reports failure by panicking.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeMap;

    use super::*;
    use crate::regression::summary::run_with;

    fn spread(median: f64, min: f64, max: f64) -> Spread {
        Spread { median, min, max }
    }

    fn e2e_rule(tolerance_pct: f64) -> Rule {
        Rule {
            tolerance_pct,
            metrics: vec![Metric::E2e],
            percentiles: vec!["p50", "p99"],
        }
    }

    fn baseline_of(runs: &[FloorRun]) -> Baseline {
        Baseline::build(runs, "2026-01-01T00:00:00Z".to_owned()).unwrap()
    }

    #[test]
    fn latency_regresses_only_beyond_the_bound() {
        assert_eq!(relative(1000.0, 1100.0, Worse::Higher, 10.0), Verdict::Ok);
        assert_eq!(relative(1000.0, 1101.0, Worse::Higher, 10.0), Verdict::Regressed);
        assert_eq!(relative(1000.0, 899.0, Worse::Higher, 10.0), Verdict::Improved);
        assert_eq!(relative(1000.0, 1000.0, Worse::Higher, 0.0), Verdict::Ok);
        assert_eq!(relative(1000.0, 1001.0, Worse::Higher, 0.0), Verdict::Regressed);
    }

    #[test]
    fn rate_regresses_when_it_drops() {
        assert_eq!(relative(100.0, 89.0, Worse::Lower, 10.0), Verdict::Regressed);
        assert_eq!(relative(100.0, 90.0, Worse::Lower, 10.0), Verdict::Ok);
        assert_eq!(relative(100.0, 150.0, Worse::Lower, 10.0), Verdict::Improved);
    }

    #[test]
    fn a_zero_base_has_no_relative_change() {
        assert_eq!(change_pct(0.0, 5.0), None);
        assert_eq!(relative(0.0, 5.0, Worse::Higher, 10.0), Verdict::Regressed);
        assert_eq!(relative(0.0, 0.0, Worse::Higher, 10.0), Verdict::Ok);
        assert_eq!(relative(0.0, 5.0, Worse::Lower, 10.0), Verdict::Improved);
    }

    #[test]
    fn error_rate_uses_absolute_percentage_points() {
        // 10 % allows 0.1 percentage points = 0.001 of a share.
        assert_eq!(error_rate(0.0, 0.001, 10.0), Verdict::Ok);
        assert_eq!(error_rate(0.0, 0.0011, 10.0), Verdict::Regressed);
        assert_eq!(error_rate(0.05, 0.0511, 10.0), Verdict::Regressed);
        assert_eq!(error_rate(0.05, 0.04, 10.0), Verdict::Improved);
    }

    #[test]
    fn the_band_is_the_tolerance_widened_by_the_baselines_spread() {
        let tight = spread(1.0, 0.98, 1.02);
        assert_eq!(verdict(tight, 1.10, 10.0), Verdict::Ok, "exactly the tolerance");
        assert_eq!(verdict(tight, 1.11, 10.0), Verdict::Regressed);
        // A repetition at 1.3 in the baseline: 1.25 is within its own noise.
        let noisy = spread(1.0, 0.95, 1.3);
        assert_eq!(verdict(noisy, 1.25, 10.0), Verdict::Ok);
        assert_eq!(verdict(noisy, 1.31, 10.0), Verdict::Regressed);
        assert_eq!(
            verdict(tight, 1.05, 0.0),
            Verdict::Regressed,
            "above the max with no tolerance"
        );
        assert_eq!(
            verdict(tight, 1.01, 0.0),
            Verdict::Ok,
            "within the baseline's own range"
        );
    }

    #[test]
    fn improvement_is_symmetric() {
        let tight = spread(1.0, 0.98, 1.02);
        assert_eq!(verdict(tight, 0.90, 10.0), Verdict::Ok);
        assert_eq!(verdict(tight, 0.89, 10.0), Verdict::Improved);
        let noisy = spread(1.0, 0.7, 1.05);
        assert_eq!(verdict(noisy, 0.8, 10.0), Verdict::Ok, "above the baseline's min");
        assert_eq!(verdict(noisy, 0.69, 10.0), Verdict::Improved);
    }

    #[test]
    fn judging_takes_the_median_of_the_current_runs() {
        let base = baseline_of(&[
            run_with("a/summary.json", "bench", Some(1.3), Some(2.0)),
            run_with("b/summary.json", "bench", Some(1.3), Some(2.0)),
        ]);
        // One slow outlier among three does not move the median.
        let current = [
            run_with("x/summary.json", "bench", Some(1.3), Some(2.0)),
            run_with("y/summary.json", "bench", Some(1.9), Some(2.1)),
            run_with("z/summary.json", "bench", Some(1.32), Some(3.0)),
        ];
        let j = judge(&base, &current, &e2e_rule(10.0));
        assert_eq!(j.rows.len(), 2);
        assert_eq!(j.rows[0].percentile, "p50");
        assert_eq!(j.rows[0].current, spread(1.32, 1.3, 1.9));
        assert_eq!(j.rows[0].current_runs, 3);
        assert_eq!(j.rows[0].verdict, Verdict::Ok);
        // p99: median 2.1 is within 10 % of 2.0.
        assert_eq!(j.rows[1].verdict, Verdict::Ok);
        let slower = [
            run_with("x/summary.json", "bench", Some(1.3), Some(2.5)),
            run_with("y/summary.json", "bench", Some(1.3), Some(2.6)),
        ];
        let j = judge(&base, &slower, &e2e_rule(10.0));
        let regressed: Vec<_> = j.with(Verdict::Regressed).map(|r| (r.metric, r.percentile)).collect();
        assert_eq!(regressed, [("e2e", "p99")]);
        let faster = [run_with("x/summary.json", "bench", Some(1.0), Some(2.0))];
        let j = judge(&base, &faster, &e2e_rule(10.0));
        assert_eq!(j.with(Verdict::Improved).count(), 1);
    }

    #[test]
    fn missing_metrics_and_null_ratios_are_skipped_with_a_reason() {
        let base = baseline_of(&[run_with("a/summary.json", "bench", Some(1.3), None)]);
        let current = [run_with("x/summary.json", "bench", None, Some(2.0))];
        let rule = Rule {
            metrics: vec![Metric::E2e, Metric::Ttft],
            ..e2e_rule(10.0)
        };
        let j = judge(&base, &current, &rule);
        assert!(j.rows.is_empty(), "{j:?}");
        assert_eq!(
            j.skipped,
            [
                "e2e p50 (no ratio in the current runs: their floor was 0)",
                "e2e p99 (no ratio in the baseline: its floor was 0)",
                "ttft (not in the baseline)",
            ]
        );
        let mut with_ttft = base.clone();
        with_ttft.ratios.insert(
            "ttft".to_owned(),
            BTreeMap::from([("p50".to_owned(), spread(1.0, 1.0, 1.0))]),
        );
        let j = judge(&with_ttft, &current, &rule);
        assert_eq!(j.skipped.last().unwrap(), "ttft (not in the current runs)");
    }

    #[test]
    fn a_tally_names_each_scenarios_regressions_and_improvements() {
        let base = baseline_of(&[run_with("a/summary.json", "bench", Some(1.3), Some(2.0))]);
        let current = [run_with("x/summary.json", "bench", Some(1.0), Some(2.6))];
        let mut tally = Tally::default();
        tally.add("bench", &judge(&base, &current, &e2e_rule(10.0)));
        assert_eq!(tally.compared, 2);
        assert_eq!(tally.regressed, ["bench e2e p99"]);
        assert_eq!(tally.improved, ["bench e2e p50"]);
    }
}
