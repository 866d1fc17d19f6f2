//! Capacity sweeps: each step (one open-loop rate) is judged on the
//! scenario's service levels — its latency, error-rate and goodput checks —
//! and on whether the load generator itself kept up; the knee is the highest
//! rate that held below the first one that broke.
//!
//! A step *holds* when every SLO check passes and no arrival was dropped at
//! the in-flight cap (a router that cannot keep up makes requests pile up
//! until the cap sheds them: that is the router breaking, not the
//! generator). The generator *kept up* when it sent at least
//! [`super::MIN_RATE_SHARE`] of the asked rate with a dispatch delay p99 of
//! at most [`super::MAX_DISPATCH_P99_US`]; a step where it did not says
//! nothing trustworthy about the router, and the report says so.

use super::{CheckResult, Verdict, validity};
use crate::load::engine::{PhaseStats, RunStats};
use crate::metrics::{Metric, MetricsSummary, Percentiles};
use crate::scenario::Scenario;

/// One step of a sweep, judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 1-based, in the order the steps ran.
    pub number: usize,
    /// The rate asked for, requests per second.
    pub rate: f64,
    /// A bisection step between the last rate that held and the first that broke.
    pub refined: bool,
    pub phase: PhaseStats,
    pub sent: u64,
    pub errors: u64,
    pub error_rate: Option<f64>,
    pub dropped: u64,
    pub e2e: Percentiles,
    pub ttft: Percentiles,
    pub overhead: Percentiles,
    pub dispatch_p99_us: u64,
    /// Sent requests per second of the step.
    pub achieved_rate: Option<f64>,
    /// Every SLO check passed and nothing was dropped.
    pub held: bool,
    /// The SLO checks, evaluated on this step alone.
    pub checks: Vec<CheckResult>,
    /// Why it did not hold, one sentence each.
    pub broke_because: Vec<String>,
    /// The load generator kept up (rate and dispatch delay).
    pub generator_kept_up: bool,
    /// What the generator missed, one sentence each.
    pub generator_problems: Vec<String>,
}

impl Step {
    /// Judges a step from its summary, engine statistics and the scenario's
    /// checks evaluated on it (`checks` holds only what [`Rule::is_slo`]
    /// says; others are ignored).
    ///
    /// [`Rule::is_slo`]: crate::scenario::Rule::is_slo
    pub fn judge(
        number: usize,
        rate: f64,
        refined: bool,
        step: &Scenario,
        summary: &MetricsSummary,
        stats: &RunStats,
        checks: Vec<CheckResult>,
    ) -> Step {
        let phase = stats.phases.first().cloned().unwrap_or_else(|| PhaseStats {
            name: format!("step-{number}"),
            started_us: 0,
            ended_us: 0,
            requested: 0,
            expected_rate: rate,
            sent: 0,
            dropped: 0,
            completed: 0,
            schedule_done: false,
        });
        let valid = validity(step, summary, stats);
        let mut broke_because: Vec<String> = checks
            .iter()
            .filter(|c| !c.passed())
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        if valid.dropped > 0 {
            broke_because.push(format!(
                "{} arrivals were dropped at the in-flight cap (requests piled up)",
                valid.dropped
            ));
        }
        if stats.stopped {
            broke_because.push("the run was stopped during this step".into());
        }
        // Dropped arrivals are the router's doing; the rest is the generator's.
        let dropped = super::dropped_problem(valid.dropped);
        let generator_problems: Vec<String> = valid.problems.into_iter().filter(|p| *p != dropped).collect();
        Step {
            number,
            rate,
            refined,
            achieved_rate: super::achieved_rate(&phase),
            phase,
            sent: summary.sent,
            errors: summary.errors,
            error_rate: summary.error_rate(),
            dropped: valid.dropped,
            e2e: *summary.metric(Metric::E2e),
            ttft: *summary.metric(Metric::Ttft),
            overhead: *summary.metric(Metric::Overhead),
            dispatch_p99_us: valid.dispatch_p99_us,
            held: broke_because.is_empty(),
            checks,
            broke_because,
            generator_kept_up: generator_problems.is_empty(),
            generator_problems,
        }
    }
}

/// A sweep's outcome.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepOutcome {
    /// In the order they ran (planned steps, then bisection steps).
    pub steps: Vec<Step>,
    /// The highest rate that held below the first rate that broke (or the
    /// highest that held, when none broke).
    pub knee: Option<f64>,
    /// The lowest rate that broke.
    pub broke_at: Option<f64>,
    /// Required of the knee, from the scenario.
    pub min_knee: Option<f64>,
}

impl SweepOutcome {
    /// Steps sorted by rate, for the curve.
    pub fn by_rate(&self) -> Vec<&Step> {
        let mut steps: Vec<&Step> = self.steps.iter().collect();
        steps.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        steps
    }

    /// Recomputes [`SweepOutcome::knee`] and [`SweepOutcome::broke_at`] from the steps.
    pub fn settle(&mut self) {
        self.broke_at = self
            .steps
            .iter()
            .filter(|s| !s.held)
            .map(|s| s.rate)
            .min_by(f64::total_cmp);
        self.knee = self
            .steps
            .iter()
            .filter(|s| s.held && self.broke_at.is_none_or(|b| s.rate < b))
            .map(|s| s.rate)
            .max_by(f64::total_cmp);
    }

    /// The next bisection rate: halfway between the knee and the first
    /// break, unless they are within 2% (or 1 req/s) of each other, or
    /// there is nothing to bisect.
    pub fn next_bisection(&self) -> Option<f64> {
        let (lo, hi) = (self.knee?, self.broke_at?);
        let gap = hi - lo;
        (gap > (hi * 0.02).max(1.0)).then(|| ((lo + hi) / 2.0).round())
    }

    /// Whether the generator kept up at every step that decided the knee
    /// (every step up to and including the first break).
    pub fn generator_kept_up(&self) -> bool {
        self.steps
            .iter()
            .filter(|s| self.broke_at.is_none_or(|b| s.rate <= b))
            .all(|s| s.generator_kept_up)
    }

    /// The sweep's verdict as check results: the knee (against `min-knee`,
    /// if set) and the generator keeping up.
    pub fn results(&self) -> Vec<CheckResult> {
        let mut knee = super::result(
            "sweep-knee",
            "rate",
            false,
            self.knee.unwrap_or(0.0),
            self.min_knee.unwrap_or(0.0),
        );
        knee.name = "knee".into();
        let first_break = self
            .steps
            .iter()
            .filter(|s| Some(s.rate) == self.broke_at)
            .find_map(|s| s.broke_because.first());
        knee.verdict =
            Verdict::of(self.knee.is_some() && self.min_knee.is_none_or(|min| self.knee.unwrap_or(0.0) >= min));
        knee.detail = match (self.knee, self.broke_at, first_break) {
            (Some(k), Some(b), Some(why)) => format!("held at {k:.0} req/s; broke at {b:.0} req/s ({why})"),
            (Some(k), _, _) => format!("held at every rate up to {k:.0} req/s; the SLO never broke"),
            (None, Some(b), Some(why)) => format!("broke at the first rate, {b:.0} req/s ({why})"),
            (None, _, _) => "no step ran".into(),
        };
        if let (Some(min), Some(k)) = (self.min_knee, self.knee)
            && k < min
        {
            knee.detail = format!("{}; below the {min:.0} req/s asked", knee.detail);
        }
        let missed: Vec<String> = self
            .steps
            .iter()
            .filter(|s| !s.generator_kept_up && self.broke_at.is_none_or(|b| s.rate <= b))
            .map(|s| format!("{:.0} req/s: {}", s.rate, s.generator_problems.join("; ")))
            .collect();
        let mut kept_up = super::result("run-valid", "count", self.generator_kept_up(), missed.len() as f64, 0.0);
        kept_up.name = "generator kept up".into();
        kept_up.detail = if missed.is_empty() {
            "at every step up to the first break".into()
        } else {
            format!("not at {}", missed.join(" | "))
        };
        vec![knee, kept_up]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(rate: f64, held: bool, kept_up: bool) -> Step {
        Step {
            number: 1,
            rate,
            refined: false,
            phase: PhaseStats {
                name: "s".into(),
                started_us: 0,
                ended_us: 1_000_000,
                requested: rate as u64,
                expected_rate: rate,
                sent: rate as u64,
                dropped: 0,
                completed: rate as u64,
                schedule_done: false,
            },
            sent: rate as u64,
            errors: 0,
            error_rate: Some(0.0),
            dropped: 0,
            e2e: Percentiles::default(),
            ttft: Percentiles::default(),
            overhead: Percentiles::default(),
            dispatch_p99_us: 100,
            achieved_rate: Some(rate),
            held,
            checks: Vec::new(),
            broke_because: if held {
                Vec::new()
            } else {
                vec!["latency e2e p99: too slow".into()]
            },
            generator_kept_up: kept_up,
            generator_problems: if kept_up { Vec::new() } else { vec!["dispatch".into()] },
        }
    }

    fn sweep(steps: Vec<Step>) -> SweepOutcome {
        let mut s = SweepOutcome {
            steps,
            ..SweepOutcome::default()
        };
        s.settle();
        s
    }

    #[test]
    fn the_knee_is_the_highest_rate_held_below_the_first_break() {
        let s = sweep(vec![
            step(500.0, true, true),
            step(1000.0, true, true),
            step(2000.0, false, true),
            // Past the break, a lucky step must not raise the knee.
            step(4000.0, true, true),
        ]);
        assert_eq!((s.knee, s.broke_at), (Some(1000.0), Some(2000.0)));
        assert_eq!(s.next_bisection(), Some(1500.0));
        let results = s.results();
        assert!(results[0].passed(), "{:?}", results[0]);
        assert!(
            results[0].detail.contains("broke at 2000 req/s"),
            "{}",
            results[0].detail
        );
    }

    #[test]
    fn bisection_stops_when_the_gap_is_small_and_a_refined_break_moves_the_edge() {
        let mut s = sweep(vec![step(1000.0, true, true), step(1010.0, false, true)]);
        assert_eq!(s.next_bisection(), None);
        s.steps.push(step(1005.0, false, true));
        s.settle();
        assert_eq!((s.knee, s.broke_at), (Some(1000.0), Some(1005.0)));
    }

    #[test]
    fn no_break_means_the_knee_is_the_top_rate_and_min_knee_can_fail_it() {
        let mut s = sweep(vec![step(500.0, true, true), step(1000.0, true, true)]);
        assert_eq!((s.knee, s.broke_at, s.next_bisection()), (Some(1000.0), None, None));
        s.min_knee = Some(2000.0);
        let knee = &s.results()[0];
        assert!(!knee.passed() && knee.detail.contains("below the 2000"), "{knee:?}");
    }

    #[test]
    fn breaking_at_the_first_rate_has_no_knee_and_fails() {
        let s = sweep(vec![step(500.0, false, true)]);
        assert_eq!(s.knee, None);
        assert!(!s.results()[0].passed());
    }

    #[test]
    fn a_generator_that_fell_behind_before_the_break_is_reported() {
        let s = sweep(vec![
            step(500.0, true, false),
            step(1000.0, false, true),
            step(2000.0, false, false),
        ]);
        assert!(!s.generator_kept_up());
        let kept = &s.results()[1];
        assert!(!kept.passed() && kept.measured == 1.0, "{kept:?}");
        // A generator falling behind past the break does not matter.
        let s = sweep(vec![
            step(500.0, true, true),
            step(1000.0, false, true),
            step(2000.0, false, false),
        ]);
        assert!(s.generator_kept_up());
    }
}
