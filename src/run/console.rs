//! What a run prints on stdout: what it runs against, the router against
//! the floor, each sweep step, and the checks' verdicts. Every line goes
//! through a [`Console`], which remembers a write that failed (a full disk,
//! a closed pipe) where `println!` would panic: the run still writes its
//! reports, then fails with it (exit 3).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::start::Started;
use crate::checks::sweep::Step;
use crate::checks::{CheckResult, Verdict};
use crate::metrics::{Metric, MetricsSummary};
use crate::report::FloorRun;
use crate::report::markdown::{duration, percent};
use crate::scenario::Scenario;
use crate::target::Target;

/// A run's standard output: each text is written and flushed at once; the
/// first write that fails is kept for [`Console::finish`], and nothing more
/// is written. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct Console {
    failed: Arc<Mutex<Option<std::io::Error>>>,
}

impl Console {
    /// Writes `text` to stdout, unless an earlier write failed.
    pub fn print(&self, text: &str) {
        let Ok(mut failed) = self.failed.lock() else { return };
        if failed.is_some() {
            return;
        }
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            *failed = Some(e);
        }
    }

    /// Writes `line` and a newline.
    pub fn line(&self, line: &str) {
        self.print(&format!("{line}\n"));
    }

    /// The first write that failed, if any.
    pub fn finish(&self) -> std::io::Result<()> {
        match self.failed.lock().ok().and_then(|mut failed| failed.take()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The lines a run starts with: what runs against what, and where each
/// mock listens (to point an external router at them).
pub fn starting(console: &Console, scenario: &Scenario, started: &Started) {
    let mut out = format!(
        "running {} ({:.1} s) against {}\n",
        scenario.meta.name,
        scenario.duration().as_secs_f64(),
        started.target.base_url,
    );
    for p in scenario.phases.iter().filter(|p| p.warm_up) {
        let _ = writeln!(
            out,
            "  warm-up: phase {} ({:.1} s), written to requests.csv but left out of the metrics and checks",
            p.name,
            p.duration.as_secs_f64()
        );
    }
    if scenario.target != Target::Builtin {
        for p in started.mocks.providers() {
            let _ = writeln!(out, "  mock {} ({}): {}", p.name(), p.provider.dialect(), p.base_url());
        }
        if let Some(clock) = scenario.expect.as_ref().map(|e| &e.config.clock)
            && (clock.start.is_some() || clock.speed != 1.0)
        {
            let start = clock.start.map_or_else(|| "now".to_string(), |s| s.to_string());
            let _ = writeln!(
                out,
                "  note: the [router] clock (starting {start}, {}× real time) is assumed of the router \
                 under test: set its clock so, or its lifecycle and daily-quota dates are judged wrong",
                clock.speed
            );
        }
    }
    console.print(&out);
}

/// A sweep step before it runs.
pub fn step_starting(console: &Console, number: usize, rate: f64, seconds: f64) {
    console.line(&format!("  step {number}: {rate:.0} req/s for {seconds:.0} s"));
}

/// A sweep step once judged.
pub fn step_judged(console: &Console, step: &Step) {
    console.line(&format!(
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
    ));
}

/// The router against the floor, for the metrics a reader looks at first.
pub fn floor(console: &Console, floor: &FloorRun, summary: &MetricsSummary) {
    let mut out = String::new();
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
    console.print(&out);
}

/// The table of verdicts and where the reports are.
pub fn checks(console: &Console, results: &[CheckResult], dir: &Path) {
    let mut out = String::new();
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
    console.print(&out);
}
