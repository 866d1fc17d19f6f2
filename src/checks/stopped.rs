//! A run cut short by a stop (Ctrl-C or SIGTERM): what it did not run, and
//! its checks **skipped** rather than judged. Every check judges the whole
//! run, so a stop before the load ended cuts every one of them short: an
//! error rate or a latency over part of a phase, or a balance read before
//! the last charges, would pass or fail for no reason of the router's.

use super::{CheckResult, Verdict};
use crate::load::engine::RunStats;
use crate::scenario::Scenario;

/// What a stop left undone of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// Why the checks were skipped, a clause: `the run was stopped before
    /// phase `steady` finished`.
    pub reason: String,
    /// What was running when the stop came, if anything: a phase's name,
    /// `floor: NAME` for a phase at the floor, `step N (R req/s)` for a
    /// sweep step.
    pub cut_short: Option<String>,
    /// What did not start, in order: phase names (a floor's remaining
    /// phases as `floor: NAME`), or a sweep's rates as `R req/s`.
    pub not_started: Vec<String>,
    /// Whether the load at the target had started: then what a check
    /// measured so far is shown beside its skip.
    pub measured: bool,
}

/// The check kinds judged from the metrics alone: their result so far is
/// worth showing beside the skip. Conformance checks are judged from
/// evidence a stopped run does not collect.
const FROM_METRICS: [&str; 5] = ["latency", "error-rate", "goodput", "run-valid", "sweep-knee"];

impl Cut {
    /// Stopped before any load was sent (while the target was started, or
    /// between the floor and the load): every phase did not start.
    pub fn before_load(scenario: &Scenario) -> Cut {
        Cut {
            reason: "the run was stopped before its load started".into(),
            cut_short: None,
            not_started: planned(scenario),
            measured: false,
        }
    }

    /// Stopped while the engine ran the scenario's phases (`stats`); `None`
    /// when the engine ran them all (`stats.stopped` is false).
    pub fn in_phases(scenario: &Scenario, stats: &RunStats) -> Option<Cut> {
        if !stats.stopped {
            return None;
        }
        let Some(last) = stats.phases.last() else {
            return Some(Cut::before_load(scenario));
        };
        Some(Cut {
            reason: format!("the run was stopped before phase `{}` finished", last.name),
            cut_short: Some(last.name.clone()),
            not_started: (scenario.phases.iter().skip(stats.phases.len()))
                .map(|p| p.name.clone())
                .collect(),
            measured: true,
        })
    }

    /// Stopped while the floor ran (`stats`): the router was not measured.
    pub fn in_floor(scenario: &Scenario, stats: &RunStats) -> Cut {
        let floor = |name: &str| format!("floor: {name}");
        let mut not_started: Vec<String> = (scenario.phases.iter().skip(stats.phases.len()))
            .map(|p| floor(&p.name))
            .collect();
        not_started.extend(planned(scenario));
        Cut {
            reason: "the run was stopped during the floor, before the router was measured".into(),
            cut_short: stats.phases.last().map(|p| floor(&p.name)),
            not_started,
            measured: false,
        }
    }

    /// Stopped during a capacity sweep: in `step` (its number and rate;
    /// `None` between two steps), with `left` the rates not yet stepped.
    pub fn in_sweep(step: Option<(usize, f64)>, left: &[f64]) -> Cut {
        let step = step.map(|(number, rate)| format!("step {number} ({rate:.0} req/s)"));
        Cut {
            reason: match &step {
                Some(step) => format!("the run was stopped before sweep {step} finished"),
                None => "the run was stopped between two sweep steps".into(),
            },
            cut_short: step,
            not_started: left.iter().map(|r| format!("{r:.0} req/s")).collect(),
            measured: true,
        }
    }

    /// `results`, every one skipped for [`Cut::reason`]; a check judged from
    /// the metrics keeps, after the reason, what it measured so far.
    pub fn skip(&self, results: Vec<CheckResult>) -> Vec<CheckResult> {
        results
            .into_iter()
            .map(|mut c| {
                c.detail = if self.measured && FROM_METRICS.contains(&c.kind) && !c.detail.is_empty() {
                    format!("{}; so far: {}", self.reason, c.detail)
                } else {
                    self.reason.clone()
                };
                c.verdict = Verdict::Skip;
                c
            })
            .collect()
    }

    /// The reason and what did not start, a sentence for people:
    /// ``the run was stopped before phase `steady` finished; not started: `closed` ``.
    pub fn sentence(&self) -> String {
        if self.not_started.is_empty() {
            return self.reason.clone();
        }
        let names: Vec<String> = self.not_started.iter().map(|n| format!("`{n}`")).collect();
        format!("{}; not started: {}", self.reason, names.join(", "))
    }
}

/// The scenario's load as it would have run: its phases, or its sweep's
/// planned rates.
fn planned(scenario: &Scenario) -> Vec<String> {
    match &scenario.sweep {
        Some(sweep) => sweep.rates.iter().map(|r| format!("{r:.0} req/s")).collect(),
        None => scenario.phases.iter().map(|p| p.name.clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::engine::PhaseStats;
    use crate::metrics::fixtures::scenario;

    fn started(name: &str) -> PhaseStats {
        PhaseStats {
            name: name.into(),
            started_us: 0,
            ended_us: 1_000_000,
            requested: 5,
            expected_rate: 5.0,
            sent: 5,
            dropped: 0,
            completed: 5,
            schedule_done: false,
        }
    }

    fn two_phases() -> Scenario {
        scenario("[[phases]]\nname = \"closed\"\nduration-s = 1\nusers = { count = 1 }\n")
    }

    #[test]
    fn a_stop_in_a_phase_names_it_and_the_phases_after() {
        let s = two_phases();
        let first = s.phases[0].name.clone();
        let stats = RunStats {
            phases: vec![started(&first)],
            stopped: true,
        };
        let cut = Cut::in_phases(&s, &stats).unwrap();
        assert_eq!(
            cut.reason,
            format!("the run was stopped before phase `{first}` finished")
        );
        assert_eq!(cut.cut_short.as_deref(), Some(first.as_str()));
        assert_eq!(cut.not_started, ["closed"]);
        assert_eq!(cut.sentence(), format!("{}; not started: `closed`", cut.reason));
        let finished = RunStats {
            stopped: false,
            ..stats
        };
        assert_eq!(
            Cut::in_phases(&s, &finished),
            None,
            "a run that ran every phase was not cut"
        );
        let nothing = RunStats {
            phases: Vec::new(),
            stopped: true,
        };
        assert_eq!(Cut::in_phases(&s, &nothing), Some(Cut::before_load(&s)));
        assert_eq!(Cut::before_load(&s).not_started, [first.as_str(), "closed"]);
    }

    #[test]
    fn a_stop_at_the_floor_leaves_the_router_unmeasured() {
        let s = two_phases();
        let first = s.phases[0].name.clone();
        let stats = RunStats {
            phases: vec![started(&first)],
            stopped: true,
        };
        let cut = Cut::in_floor(&s, &stats);
        assert_eq!(cut.cut_short, Some(format!("floor: {first}")));
        assert_eq!(cut.not_started, ["floor: closed".to_string(), first, "closed".into()]);
        let mut rate = super::super::result("error-rate", "share", false, 0.0, 0.0);
        rate.detail = "no request was sent: nothing to judge".into();
        assert_eq!(
            cut.skip(vec![rate])[0].detail,
            cut.reason,
            "nothing was measured through the router"
        );
        let sweep = Cut::in_sweep(Some((2, 400.0)), &[800.0, 1600.0]);
        assert_eq!(
            sweep.reason,
            "the run was stopped before sweep step 2 (400 req/s) finished"
        );
        assert_eq!(sweep.not_started, ["800 req/s", "1600 req/s"]);
    }

    /// Every check is skipped; one judged from the metrics keeps what it
    /// measured so far, a conformance check only the reason.
    #[test]
    fn the_checks_are_skipped_with_the_reason() {
        let s = two_phases();
        let stats = RunStats {
            phases: vec![started(&s.phases[0].name)],
            stopped: true,
        };
        let cut = Cut::in_phases(&s, &stats).unwrap();
        let mut rate = super::super::result("error-rate", "share", false, 0.5, 0.0);
        rate.detail = "1 of 2 sent requests failed".into();
        let mut billing = super::super::result("billing-exact", "count", false, 3.0, 0.0);
        billing.detail = "the run kept no evidence".into();
        let skipped = cut.skip(vec![rate, billing]);
        assert!(skipped.iter().all(|c| c.verdict == Verdict::Skip), "{skipped:?}");
        assert_eq!(
            skipped[0].detail,
            format!("{}; so far: 1 of 2 sent requests failed", cut.reason)
        );
        assert_eq!(skipped[1].detail, cut.reason);
        assert_eq!(skipped[0].measured, 0.5, "the measured value stays");
        // Before the load, nothing was measured: the reason alone.
        let mut rate = super::super::result("error-rate", "share", false, 0.0, 0.0);
        rate.detail = "no request was sent: nothing to judge".into();
        let before = Cut::before_load(&s).skip(vec![rate]);
        assert_eq!(before[0].detail, "the run was stopped before its load started");
    }
}
