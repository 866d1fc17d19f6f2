//! Checks: the scenario's `[[checks]]` evaluated against the metrics
//! summary and the load engine's phase counts, each with its measured value,
//! its bound and the first offending request ids.
//!
//! One check judges the harness rather than the router: a run is **valid**
//! when, in every open-loop phase, the achieved rate (sent / phase duration)
//! is at least [`MIN_RATE_SHARE`] of the expected one, the dispatch delay's
//! p99 is at most [`MAX_DISPATCH_P99_US`], and no arrival was dropped at an
//! in-flight cap. A run that is not valid says the load generator fell
//! behind, so its latencies do not blame the router. Validity is computed
//! for every run ([`validity`]) and reported whether or not a `run-valid`
//! check asks for it. Warm-up phases are left out of it, as of every check:
//! the metrics never see their requests, and their rates and drops are not
//! judged.

pub mod conformance;
pub mod stopped;
pub mod sweep;

use std::fmt::Write as _;

use crate::load::engine::{PhaseStats, RunStats};
use crate::load::record::Outcome;
use crate::metrics::{Metric, MetricsSummary};
use crate::scenario::{Load, Rule, Scenario};

/// The share of the expected rate an open-loop phase must achieve.
pub const MIN_RATE_SHARE: f64 = 0.9;
/// The highest dispatch-delay p99 of a valid run, µs.
pub const MAX_DISPATCH_P99_US: u64 = 10_000;

/// Requests sent per second of a phase; `None` for an empty phase.
pub fn achieved_rate(phase: &PhaseStats) -> Option<f64> {
    let seconds = phase.ended_us.saturating_sub(phase.started_us) as f64 / 1e6;
    (seconds > 0.0).then(|| phase.sent as f64 / seconds)
}

/// What a check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The evidence meets the bound.
    Pass,
    /// The evidence breaks the bound, or is missing because the router
    /// failed the requests that would have given it.
    Fail,
    /// Not judged, for a reason in the detail: the router lacks the feature
    /// (its profile says so), or the scenario did not exercise it.
    Skip,
}

impl Verdict {
    /// `pass`, `fail` or `skip`, as reports write it.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Skip => "skip",
        }
    }

    /// Pass for true, fail for false.
    pub fn of(passed: bool) -> Verdict {
        if passed { Verdict::Pass } else { Verdict::Fail }
    }
}

/// The verdict on one check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub name: String,
    /// The rule: `latency`, `error-rate`, `goodput` or `run-valid`.
    pub kind: &'static str,
    pub verdict: Verdict,
    pub measured: f64,
    pub bound: f64,
    /// The unit of `measured` and `bound`: `ms` or `share` (0 to 1).
    pub unit: &'static str,
    /// What was measured, in a sentence.
    pub detail: String,
    /// The first offending request ids.
    pub offenders: Vec<String>,
}

/// Whether a run with these verdicts passes: none failed, and, when
/// `strict`, none was skipped.
pub fn run_passed(results: &[CheckResult], strict: bool) -> bool {
    results
        .iter()
        .all(|c| c.verdict == Verdict::Pass || (c.verdict == Verdict::Skip && !strict))
}

/// The verdicts in a few words: `all 5 checks passed`, `2 of 5 checks
/// failed`, with `, 1 skipped` when some were.
pub fn verdicts_line(results: &[CheckResult]) -> String {
    let failed = results.iter().filter(|c| c.failed()).count();
    let skipped = results.iter().filter(|c| c.verdict == Verdict::Skip).count();
    let total = results.len();
    let head = match (failed, skipped) {
        (0, 0) => format!("all {total} checks passed"),
        (0, _) => format!("all {} judged checks passed", total - skipped),
        _ => format!("{failed} of {total} checks failed"),
    };
    if skipped == 0 {
        head
    } else {
        format!("{head}, {skipped} skipped")
    }
}

/// The mark reports put beside a check.
pub fn mark(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "✅",
        Verdict::Fail => "❌",
        Verdict::Skip => "⏭️ skip",
    }
}

impl CheckResult {
    /// Whether it passed (a skip did not).
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }

    /// Whether it failed (a skip did not).
    pub fn failed(&self) -> bool {
        self.verdict == Verdict::Fail
    }
}

/// Whether the load generator kept up.
#[derive(Debug, Clone, PartialEq)]
pub struct Validity {
    pub valid: bool,
    /// What went wrong, one sentence each.
    pub problems: Vec<String>,
    /// The lowest achieved/expected rate share over open-loop phases
    /// (1 when there are none).
    pub worst_rate_share: f64,
    pub dispatch_p99_us: u64,
    pub dropped: u64,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Whether the scenario's phase `index` is open loop (phases the scenario
/// does not know are judged by whether they have an expected rate).
fn open_loop(scenario: &Scenario, index: usize, phase: &PhaseStats) -> bool {
    scenario
        .phases
        .get(index)
        .map_or(phase.expected_rate > 0.0, |p| matches!(p.load, Load::Open(_)))
}

/// Whether the scenario's phase `index` is a warm-up phase (one the
/// scenario does not know is not).
pub fn warm_up(scenario: &Scenario, index: usize) -> bool {
    scenario.phases.get(index).is_some_and(|p| p.warm_up)
}

/// The phases of `stats` that are measured (not warm-up), with their index.
fn measured<'a>(scenario: &'a Scenario, stats: &'a RunStats) -> impl Iterator<Item = (usize, &'a PhaseStats)> + 'a {
    stats.phases.iter().enumerate().filter(|(i, _)| !warm_up(scenario, *i))
}

/// The problem [`validity`] reports for arrivals dropped at an in-flight
/// cap: the one that may be the target's doing rather than the generator's
/// (see [`sweep`]).
pub fn dropped_problem(dropped: u64) -> String {
    format!("{dropped} arrivals were dropped at the in-flight cap")
}

/// Judges the load generator: see the module documentation.
pub fn validity(scenario: &Scenario, summary: &MetricsSummary, stats: &RunStats) -> Validity {
    let mut problems = Vec::new();
    let mut worst_rate_share = 1.0_f64;
    for (i, phase) in measured(scenario, stats) {
        let expected = phase.expected_rate;
        if !open_loop(scenario, i, phase) || expected <= 0.0 {
            continue;
        }
        let Some(achieved) = achieved_rate(phase) else { continue };
        if phase.schedule_done && phase.dropped == 0 {
            // Every arrival the schedule drew was sent on time or late (the
            // dispatch delay judges late): a random schedule may draw fewer
            // than the mean rate, and that is not the generator's fault.
            continue;
        }
        let share = achieved / expected;
        worst_rate_share = worst_rate_share.min(share);
        if share < MIN_RATE_SHARE {
            problems.push(format!(
                "phase `{}` sent {achieved:.1}/s of the {expected:.1}/s asked ({:.0}%, below {:.0}%)",
                phase.name,
                share * 100.0,
                MIN_RATE_SHARE * 100.0
            ));
        }
    }
    let dispatch_p99_us = summary.metric(Metric::Dispatch).p99;
    if dispatch_p99_us > MAX_DISPATCH_P99_US {
        problems.push(format!(
            "dispatch delay p99 {:.1} ms is above {:.0} ms",
            ms(dispatch_p99_us),
            ms(MAX_DISPATCH_P99_US)
        ));
    }
    let dropped = measured(scenario, stats)
        .map(|(_, p)| p.dropped)
        .sum::<u64>()
        .max(summary.outcome(Outcome::Dropped));
    if dropped > 0 {
        problems.push(dropped_problem(dropped));
    }
    Validity {
        valid: problems.is_empty(),
        problems,
        worst_rate_share,
        dispatch_p99_us,
        dropped,
    }
}

/// Evaluates every check of `scenario`, in order. Conformance checks are
/// judged from `evidence` (the run keeps it when the scenario has any); without
/// it they fail, saying so.
pub fn evaluate(
    scenario: &Scenario,
    summary: &MetricsSummary,
    stats: &RunStats,
    evidence: Option<&conformance::Index<'_>>,
) -> Vec<CheckResult> {
    scenario
        .checks
        .iter()
        .map(|check| {
            let mut result = match check.rule {
                Rule::Latency {
                    metric,
                    percentile,
                    max,
                } => latency(
                    summary,
                    metric.into(),
                    percentile,
                    u64::try_from(max.as_micros()).unwrap_or(u64::MAX),
                ),
                Rule::ErrorRate { max } => error_rate(summary, max),
                Rule::Goodput { min } => goodput(summary, min),
                Rule::RunValid => run_valid(&validity(scenario, summary, stats)),
                Rule::Conformance(ref c) => match evidence {
                    Some(index) => conformance::judge(c, index),
                    None => conformance::Judging::new(c.kind())
                        .fail_because("the run kept no evidence (records and journals) to judge it"),
                },
            };
            result.name.clone_from(&check.name);
            result
        })
        .collect()
}

/// A result without a name (the caller's check gives it), detail or offenders.
pub(crate) fn result(kind: &'static str, unit: &'static str, passed: bool, measured: f64, bound: f64) -> CheckResult {
    CheckResult {
        name: String::new(),
        kind,
        verdict: Verdict::of(passed),
        measured,
        bound,
        unit,
        detail: String::new(),
        offenders: Vec::new(),
    }
}

fn latency(summary: &MetricsSummary, metric: Metric, percentile: f64, bound_us: u64) -> CheckResult {
    let bound = ms(bound_us);
    let Some(probe) = summary.probe(metric, percentile, bound_us) else {
        let mut r = result("latency", "ms", false, 0.0, bound);
        r.detail = format!(
            "{} was not watched for this bound (the collector was built for another scenario)",
            metric.name()
        );
        return r;
    };
    let Some(value_us) = probe.value_us else {
        let mut r = result("latency", "ms", false, 0.0, bound);
        r.detail = format!("no {} samples: nothing to judge", metric.name());
        return r;
    };
    let mut r = result("latency", "ms", value_us <= bound_us, ms(value_us), bound);
    r.detail = format!(
        "p{percentile} {} = {:.3} ms over {} samples; {} requests above {bound} ms",
        metric.name(),
        ms(value_us),
        probe.samples,
        probe.over
    );
    r.offenders.clone_from(&probe.offenders);
    r
}

fn error_rate(summary: &MetricsSummary, max: f64) -> CheckResult {
    let Some(rate) = summary.error_rate() else {
        let mut r = result("error-rate", "share", false, 0.0, max);
        r.detail = "no request was sent: nothing to judge".into();
        return r;
    };
    let mut r = result("error-rate", "share", rate <= max, rate, max);
    r.detail = format!("{} of {} sent requests failed", summary.errors, summary.sent);
    let mut sep = " (";
    for outcome in Outcome::ALL.iter().filter(|o| o.is_error()) {
        let n = summary.outcome(*outcome);
        if n > 0 {
            let _ = write!(r.detail, "{sep}{} {n}", outcome.name());
            sep = ", ";
        }
    }
    if sep == ", " {
        r.detail.push(')');
    }
    r.offenders.clone_from(&summary.error_offenders);
    r
}

fn goodput(summary: &MetricsSummary, min: f64) -> CheckResult {
    let g = &summary.goodput;
    let Some(ratio) = g.ratio() else {
        let mut r = result("goodput", "share", false, 0.0, min);
        r.detail = "no request was sent: nothing to judge".into();
        return r;
    };
    let mut r = result("goodput", "share", ratio >= min, ratio, min);
    r.detail = format!("{} of {} sent requests met every SLO", g.good, g.sent);
    r
}

fn run_valid(v: &Validity) -> CheckResult {
    let mut r = result("run-valid", "share", v.valid, v.worst_rate_share, MIN_RATE_SHARE);
    r.detail = if v.valid {
        format!(
            "the load generator kept up (worst phase at {:.0}% of its rate, dispatch p99 {:.1} ms, nothing dropped)",
            v.worst_rate_share * 100.0,
            ms(v.dispatch_p99_us)
        )
    } else {
        format!(
            "the load generator fell behind, not the router: {}",
            v.problems.join("; ")
        )
    };
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Collector;
    use crate::metrics::fixtures::{failed, record, scenario, stream};

    fn phase(sent: u64, dropped: u64, expected_rate: f64) -> PhaseStats {
        PhaseStats {
            name: "steady".into(),
            started_us: 0,
            ended_us: 1_000_000,
            requested: sent + dropped,
            expected_rate,
            sent,
            dropped,
            completed: sent,
            schedule_done: false,
        }
    }

    fn stats(phases: &[PhaseStats]) -> RunStats {
        RunStats {
            phases: phases.to_vec(),
            stopped: false,
        }
    }

    fn run(extra: &str, records: &[crate::load::record::RequestRecord], phases: &[PhaseStats]) -> Vec<CheckResult> {
        let s = scenario(extra);
        let mut c = Collector::new(&s);
        for r in records {
            c.record(r);
        }
        evaluate(&s, &c.summary(), &stats(phases), None)
    }

    #[test]
    fn latency_passes_and_fails_with_offenders() {
        let checks = "[[checks]]\nname = \"fast\"\nkind = \"latency\"\nmetric = \"ttft\"\npercentile = 50\nmax-ms = 21\n\
                      [[checks]]\nkind = \"latency\"\nmetric = \"ttft\"\npercentile = 99\nmax-ms = 20\n";
        let records: Vec<_> = (0..10u32)
            .map(|i| stream(&format!("r{i}"), 0, 0, &[(i + 1) * 4_000, 100_000], 2))
            .collect();
        let results = run(checks, &records, &[]);
        assert_eq!(results.len(), 2);
        let (p50, p99) = (&results[0], &results[1]);
        assert_eq!(p50.name, "fast");
        assert!(p50.passed(), "{p50:?}");
        // HDR reports the top of a value's bucket: within 0.1 %.
        assert!((p50.measured - 20.0).abs() < 0.02, "{}", p50.measured);
        assert_eq!((p50.bound, p50.unit), (21.0, "ms"));
        assert!(!p99.passed());
        assert!((p99.measured - 40.0).abs() < 0.04, "{}", p99.measured);
        assert_eq!(p99.offenders, ["r5", "r6", "r7", "r8", "r9"]);
        assert!(p99.detail.contains("5 requests above 20 ms"), "{}", p99.detail);
    }

    #[test]
    fn latency_without_samples_fails() {
        let results = run(
            "[[checks]]\nkind = \"latency\"\nmetric = \"itl\"\nmax-ms = 20\n",
            &[record("whole", 0, 0)],
            &[],
        );
        assert!(!results[0].passed());
        assert!(results[0].detail.contains("no itl samples"), "{}", results[0].detail);
    }

    #[test]
    fn error_rate_counts_failures_over_sent() {
        let checks = "[[checks]]\nkind = \"error-rate\"\nmax = 0.25\n";
        let mut records = vec![
            record("a", 0, 0),
            record("b", 0, 0),
            record("c", 0, 0),
            failed("x", 0, Outcome::RateLimited),
        ];
        // A dropped request was never sent: it does not count.
        records.push(failed("d", 0, Outcome::Dropped));
        let r = &run(checks, &records, &[])[0];
        assert!(r.passed(), "{r:?}");
        assert_eq!(r.measured, 0.25);
        assert_eq!(r.detail, "1 of 4 sent requests failed (rate_limited 1)");

        records.push(failed("y", 0, Outcome::ServerError));
        let r = &run(checks, &records, &[])[0];
        assert!(!r.passed());
        assert_eq!(r.measured, 0.4);
        assert_eq!(r.offenders, ["x", "y"]);

        let r = &run(checks, &[], &[])[0];
        assert!(!r.passed(), "nothing sent is not a pass");
    }

    #[test]
    fn goodput_against_its_minimum() {
        let checks = "[slo]\ne2e-ms = 10\n[[checks]]\nkind = \"goodput\"\nmin = 0.5\n";
        let mut slow = record("slow", 0, 0);
        slow.last_byte_us = Some(50_000);
        let r = &run(checks, &[record("a", 0, 0), slow.clone()], &[])[0];
        assert!(r.passed(), "{r:?}");
        assert_eq!(r.measured, 0.5);
        let r = &run(checks, &[record("a", 0, 0), slow.clone(), slow], &[])[0];
        assert!(!r.passed());
        assert_eq!(r.detail, "1 of 3 sent requests met every SLO");
    }

    #[test]
    fn run_valid_blames_the_generator() {
        let checks = "[[checks]]\nkind = \"run-valid\"\n";
        let on_time = [record("a", 0, 1_000)];
        let r = &run(checks, &on_time, &[phase(5, 0, 5.0)])[0];
        assert!(r.passed(), "{r:?}");
        assert_eq!(r.measured, 1.0);

        // Too slow: 4/s of 5/s.
        let r = &run(checks, &on_time, &[phase(4, 0, 5.0)])[0];
        assert!(!r.passed());
        assert!((r.measured - 0.8).abs() < 1e-9);
        assert!(r.detail.starts_with("the load generator fell behind"), "{}", r.detail);

        // Dispatch p99 of 20 ms.
        let late = [record("a", 0, 20_000)];
        let r = &run(checks, &late, &[phase(5, 0, 5.0)])[0];
        assert!(!r.passed());
        assert!(r.detail.contains("dispatch delay p99 20.0 ms"), "{}", r.detail);

        // Drops.
        let r = &run(checks, &on_time, &[phase(5, 1, 5.0)])[0];
        assert!(!r.passed());
        assert!(r.detail.contains("1 arrivals were dropped"), "{}", r.detail);
    }

    /// A random schedule that drew 4 arrivals where 5 were expected, and
    /// sent them all before the phase ended, kept pace; the same count with
    /// the schedule unfinished fell behind.
    #[test]
    fn a_schedule_sent_in_full_kept_pace_whatever_it_drew() {
        let checks = "[[checks]]\nkind = \"run-valid\"\n";
        let on_time = [record("a", 0, 1_000)];
        let drew_few = PhaseStats {
            schedule_done: true,
            ..phase(4, 0, 5.0)
        };
        let r = &run(checks, &on_time, &[drew_few])[0];
        assert!(r.passed(), "{r:?}");
        let r = &run(checks, &on_time, &[phase(4, 0, 5.0)])[0];
        assert!(!r.passed(), "{r:?}");
        // A finished schedule with drops is still behind.
        let dropped = PhaseStats {
            schedule_done: true,
            ..phase(4, 1, 5.0)
        };
        assert!(!run(checks, &on_time, &[dropped])[0].passed());
    }

    /// A warm-up phase that fell behind and dropped arrivals does not make
    /// the run invalid: it is judged by nothing.
    #[test]
    fn warm_up_phases_are_not_judged_for_validity() {
        let s = scenario(
            "[[phases]]\nname = \"warm\"\nwarm-up = true\nduration-s = 1\narrival = { kind = \"constant\", rate = 100 }\n",
        );
        let summary = Collector::new(&s).summary();
        let v = validity(&s, &summary, &stats(&[phase(5, 0, 5.0), phase(10, 40, 100.0)]));
        assert!(v.valid, "{v:?}");
        assert_eq!((v.dropped, v.worst_rate_share), (0, 1.0));
        assert!(warm_up(&s, 1) && !warm_up(&s, 0) && !warm_up(&s, 2));
    }

    #[test]
    fn closed_loop_phases_have_no_rate_to_meet() {
        let s = scenario("");
        let summary = Collector::new(&s).summary();
        let mut p = phase(1, 0, 100.0);
        p.name = "extra".into();
        // Phase 0 of the fixture is open loop; a phase beyond the scenario
        // without an expected rate is closed loop.
        let v = validity(&s, &summary, &stats(&[phase(5, 0, 5.0), phase(0, 0, 0.0)]));
        assert!(v.valid, "{v:?}");
        let v = validity(&s, &summary, &stats(&[phase(5, 0, 5.0), p]));
        assert!(!v.valid);
        assert!((v.worst_rate_share - 0.01).abs() < 1e-9);
    }
}
