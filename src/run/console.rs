//! What a run prints on stdout: what it runs against, the router against
//! the floor, each sweep step, and the checks' verdicts.

use std::io::Write;
use std::path::Path;

use super::start::Started;
use crate::checks::sweep::Step;
use crate::checks::{CheckResult, Verdict};
use crate::metrics::{Metric, MetricsSummary};
use crate::report::FloorRun;
use crate::report::markdown::{duration, percent};
use crate::scenario::Scenario;
use crate::target::Target;

/// The lines a run starts with: what runs against what, and where each
/// mock listens (to point an external router at them).
pub fn starting(scenario: &Scenario, started: &Started) {
    println!(
        "running {} ({:.1} s) against {}",
        scenario.meta.name,
        scenario.duration().as_secs_f64(),
        started.target.base_url,
    );
    for p in scenario.phases.iter().filter(|p| p.warm_up) {
        println!(
            "  warm-up: phase {} ({:.1} s), written to requests.csv but left out of the metrics and checks",
            p.name,
            p.duration.as_secs_f64()
        );
    }
    if scenario.target != Target::Builtin {
        for p in started.mocks.providers() {
            println!("  mock {} ({}): {}", p.name(), p.provider.dialect(), p.base_url());
        }
        if let Some(clock) = scenario.expect.as_ref().map(|e| &e.config.clock)
            && (clock.start.is_some() || clock.speed != 1.0)
        {
            let start = clock.start.map_or_else(|| "now".to_string(), |s| s.to_string());
            println!(
                "  note: the [router] clock (starting {start}, {}× real time) is assumed of the router \
                 under test: set its clock so, or its lifecycle and daily-quota dates are judged wrong",
                clock.speed
            );
        }
    }
}

/// A sweep step before it runs.
pub fn step_starting(number: usize, rate: f64, seconds: f64) {
    println!("  step {number}: {rate:.0} req/s for {seconds:.0} s");
}

/// A sweep step once judged.
pub fn step_judged(step: &Step) {
    println!(
        "          {} — e2e p99 {}, errors {}, dispatch p99 {}{}",
        match step.broke_because.first() {
            None => "held".to_string(),
            Some(why) => format!("BROKE ({why})"),
        },
        duration(step.e2e.p99 as f64),
        step.error_rate.map_or_else(|| "—".into(), percent),
        duration(step.dispatch_p99_us as f64),
        if step.generator_kept_up {
            ""
        } else {
            " (the generator fell behind)"
        },
    );
}

/// The router against the floor, for the metrics a reader looks at first.
pub fn floor(floor: &FloorRun, summary: &MetricsSummary) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\n  router against the floor ({}, same run):", floor.provider);
    if !floor.validity.valid {
        let _ = writeln!(
            out,
            "    the generator fell behind at the floor: {}",
            floor.validity.problems.join("; ")
        );
    }
    for a in floor.against(summary) {
        if !matches!(a.metric, Metric::E2e | Metric::Ttft | Metric::Itl | Metric::Overhead) {
            continue;
        }
        let [p50, _, p99, _] = a.quantiles();
        let _ = writeln!(
            out,
            "    {:<9} p50 {:>9} vs {:>9} = {:>6} ({:>9})   p99 {:>9} vs {:>9} = {:>6} ({:>9})",
            a.metric.name(),
            duration(p50.router_us as f64),
            duration(p50.floor_us as f64),
            p50.ratio_text(),
            crate::report::markdown::signed_duration(p50.added_us()),
            duration(p99.router_us as f64),
            duration(p99.floor_us as f64),
            p99.ratio_text(),
            crate::report::markdown::signed_duration(p99.added_us()),
        );
    }
}

pub fn checks(results: &[CheckResult], dir: &Path) {
    let mut out = std::io::stdout().lock();
    let width = results.iter().map(|c| c.name.len()).max().unwrap_or(5).max(5);
    let _ = writeln!(
        out,
        "\n  {:<width$}  {:>12}  {:>12}  result",
        "check", "measured", "bound"
    );
    for c in results {
        let mark = match c.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "skip",
        };
        let _ = writeln!(
            out,
            "  {:<width$}  {:>12.3}  {:>12.3}  {mark}  {}",
            c.name, c.measured, c.bound, c.detail
        );
    }
    let _ = writeln!(out, "\nreports: {}", dir.display());
}
