//! A capacity sweep at the target: a step per planned rate until one breaks
//! (all of them with `keep-going`), then bisection steps between the knee
//! and the first break.

use super::RunError;
use super::console;
use super::drive::{Driven, Files, Pass};
use crate::checks::stopped::Cut;
use crate::checks::sweep::{Step, SweepOutcome};
use crate::checks::{self, CheckResult};
use crate::load::engine::Endpoint;
use crate::scenario::{Scenario, Sweep};

impl Pass {
    /// Runs the sweep `plan` of `scenario` against `target`; a stop ends it
    /// after the step it cuts short, saying so in the [`Driven::cut`].
    pub async fn sweep(
        &self,
        scenario: &Scenario,
        plan: &Sweep,
        target: &Endpoint,
        files: &mut Files,
    ) -> Result<(Driven, SweepOutcome), RunError> {
        let mut outcome = SweepOutcome {
            min_knee: plan.min_knee,
            ..SweepOutcome::default()
        };
        let mut all: Option<Driven> = None;
        let mut rates: Vec<(f64, bool)> = plan.rates.iter().map(|&r| (r, false)).collect();
        rates.reverse();
        // The rates not yet stepped, in order, when `rates` has just been popped.
        let left = |rates: &[(f64, bool)]| rates.iter().rev().map(|(r, _)| *r).collect::<Vec<f64>>();
        let mut cut = None;
        while let Some((rate, refined)) = rates.pop() {
            if self.stopped() {
                if !outcome.steps.is_empty() {
                    let mut not_run = vec![rate];
                    not_run.extend(left(&rates));
                    cut = Some(Cut::in_sweep(None, &not_run));
                }
                break;
            }
            let number = outcome.steps.len() + 1;
            let (driven, judged) = self
                .step(scenario, plan, (number, rate, refined), target, files)
                .await?;
            let broke = !judged.held;
            let stopped = driven.stats.stopped;
            outcome.steps.push(judged);
            outcome.settle();
            match all.as_mut() {
                Some(all) => all.absorb(driven),
                None => all = Some(driven),
            }
            if stopped {
                cut = Some(Cut::in_sweep(Some((number, rate)), &left(&rates)));
                break;
            }
            if broke && !refined && !plan.keep_going {
                rates.clear();
            }
            // Bisect once the planned steps are done (or cut short).
            if rates.is_empty()
                && outcome.steps.iter().filter(|s| s.refined).count() < plan.refine as usize
                && let Some(mid) = outcome.next_bisection()
            {
                rates.push((mid, true));
            }
        }
        let mut driven = all.unwrap_or_else(|| Driven::empty(scenario));
        if cut.is_some() {
            driven.cut = cut;
        }
        Ok((driven, outcome))
    }

    /// Step `number` at `rate` (a bisection step when `refined`), driven and
    /// judged by the scenario's SLO checks.
    async fn step(
        &self,
        scenario: &Scenario,
        plan: &Sweep,
        (number, rate, refined): (usize, f64, bool),
        target: &Endpoint,
        files: &mut Files,
    ) -> Result<(Driven, Step), RunError> {
        let mut step = scenario.clone();
        step.phases = vec![plan.phase(number - 1, rate, scenario.mix.len())];
        let first_phase = u16::try_from(number - 1).unwrap_or(u16::MAX);
        console::step_starting(&self.console, number, rate, plan.step_duration.as_secs_f64());
        let driven = self.drive(&step, target, first_phase, files, false).await?;
        let summary = driven.collector.summary();
        let slo: Vec<CheckResult> = checks::evaluate(&step, &summary, &driven.stats, None)
            .into_iter()
            .zip(&step.checks)
            .filter(|(_, c)| c.rule.is_slo())
            .map(|(r, _)| r)
            .collect();
        let judged = Step::judge(number, rate, refined, &step, &summary, &driven.stats, slo);
        console::step_judged(&self.console, &judged);
        Ok((driven, judged))
    }
}
