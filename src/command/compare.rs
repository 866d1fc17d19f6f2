//! `gauntlet compare BASE CURRENT...`: compares runs for regressions (see
//! [`crate::regression`] for the rules); exits 1 if anything got worse than
//! the bound allows, 2 if an input cannot be read or used. BASE decides the
//! mode: against a baseline (a document with a `baseline_version`, or a folder
//! of them) or against one other run (a `summary.json`).

use std::fmt::Display;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::Exit;
use crate::cli::{CompareArgs, PercentileArg, RatioMetricArg};
use crate::metrics::Metric;
use crate::regression::pairing::pair;
use crate::regression::render::{
    noise_warnings, render_comparison, render_judgment, render_pairing_header, render_tally, render_unmatched,
};
use crate::regression::{Base, Baselines, DEFAULT_MAX_REGRESSION_PCT, Rule, Tally, compare_files, judge, load_runs};

/// Flags that do not fit the mode BASE asks for, or values out of range.
#[derive(Debug, Error)]
enum FlagError {
    #[error("{flags} judge(s) runs against a baseline, and BASE {} is a run (its bound is --max-regression)", base.display())]
    BaselineFlags { flags: String, base: PathBuf },
    #[error(
        "BASE {} is a run, so CURRENT is one run (got {got}); to judge several runs, \
         compare them with a baseline (`gauntlet baseline`)",
        base.display()
    )]
    SeveralRuns { base: PathBuf, got: usize },
    #[error("{0} {1} is not a percentage of 0 or more")]
    NotAPercentage(&'static str, f64),
    #[error(
        "--max-regression bounds a comparison of two runs, and BASE {} is a baseline (its bound is --tolerance)",
        .0.display()
    )]
    RunFlag(PathBuf),
}

/// Says what is wrong, and exits with the usage code.
fn usage<E: Display>(errors: impl IntoIterator<Item = E>) -> Exit {
    for e in errors {
        eprintln!("error: {e}");
    }
    Exit::Usage
}

pub fn run(args: &CompareArgs) -> Exit {
    match Base::of(&args.base) {
        Ok(Base::Run) => against_a_run(args),
        Ok(Base::Baselines(baselines)) => against_baselines(args, &baselines),
        Err(e) => usage([e]),
    }
}

/// The one CURRENT run and the bound, when the flags fit a comparison of two runs.
fn run_flags(args: &CompareArgs) -> Result<(&Path, f64), FlagError> {
    let baseline_flags = [
        ("--tolerance", args.tolerance.is_some()),
        ("--metrics", !args.metrics.is_empty()),
        ("--percentiles", !args.percentiles.is_empty()),
        ("--min-runs", args.min_runs.is_some()),
    ];
    let given: Vec<&str> = baseline_flags.iter().filter(|(_, on)| *on).map(|(f, _)| *f).collect();
    let base = args.base.clone();
    if !given.is_empty() {
        return Err(FlagError::BaselineFlags {
            flags: given.join(", "),
            base,
        });
    }
    let [current] = args.current.as_slice() else {
        return Err(FlagError::SeveralRuns {
            base,
            got: args.current.len(),
        });
    };
    let max_pct = args.max_regression.unwrap_or(DEFAULT_MAX_REGRESSION_PCT);
    if !(max_pct.is_finite() && max_pct >= 0.0) {
        return Err(FlagError::NotAPercentage("--max-regression", max_pct));
    }
    Ok((current, max_pct))
}

/// Two summaries, absolute latencies and rates.
fn against_a_run(args: &CompareArgs) -> Exit {
    let (current, max_pct) = match run_flags(args) {
        Ok(flags) => flags,
        Err(e) => return usage([e]),
    };
    let comparison = match compare_files(&args.base, current, max_pct) {
        Ok(comparison) => comparison,
        Err(errors) => return usage(errors),
    };
    // A table that cannot be written to stdout (a closed pipe) is dropped: the exit code still tells.
    let _ = std::io::stdout()
        .lock()
        .write_all(render_comparison(&comparison, max_pct).as_bytes());
    if comparison.regressed().next().is_none() {
        Exit::Success
    } else {
        Exit::CheckFailed
    }
}

fn ratio_metric(m: RatioMetricArg) -> Metric {
    match m {
        RatioMetricArg::E2e => Metric::E2e,
        RatioMetricArg::E2eFromSend => Metric::E2eFromSend,
        RatioMetricArg::Ttft => Metric::Ttft,
        RatioMetricArg::TtftFromSend => Metric::TtftFromSend,
        RatioMetricArg::Itl => Metric::Itl,
        RatioMetricArg::Tpot => Metric::Tpot,
        RatioMetricArg::Overhead => Metric::Overhead,
    }
}

fn percentile_key(p: PercentileArg) -> &'static str {
    match p {
        PercentileArg::P50 => "p50",
        PercentileArg::P90 => "p90",
        PercentileArg::P99 => "p99",
        PercentileArg::P999 => "p999",
    }
}

/// The rule the flags ask for against a baseline, defaults where they are silent.
fn rule(args: &CompareArgs) -> Result<Rule, FlagError> {
    if args.max_regression.is_some() {
        return Err(FlagError::RunFlag(args.base.clone()));
    }
    if let Some(pct) = args.tolerance
        && !(pct.is_finite() && pct >= 0.0)
    {
        return Err(FlagError::NotAPercentage("--tolerance", pct));
    }
    let metrics: Vec<Metric> = args.metrics.iter().map(|m| ratio_metric(*m)).collect();
    let percentiles: Vec<&str> = args.percentiles.iter().map(|p| percentile_key(*p)).collect();
    Ok(Rule::new(args.tolerance, &metrics, &percentiles))
}

/// One or more runs judged by their ratios against a baseline or a folder of them.
fn against_baselines(args: &CompareArgs, baselines: &Baselines) -> Exit {
    let rule = match rule(args) {
        Ok(rule) => rule,
        Err(e) => return usage([e]),
    };
    let min_runs = args.min_runs.map_or(1, |n| n.get());
    let pairings = match load_runs(&args.current).and_then(|runs| pair(baselines, runs, min_runs)) {
        Ok(pairings) => pairings,
        Err(errors) => return usage(errors),
    };
    // Lines that cannot be written to stdout (a closed pipe) are dropped: the exit code still tells.
    let mut out = std::io::stdout().lock();
    for u in &pairings.unmatched {
        let _ = out.write_all(render_unmatched(u).as_bytes());
    }
    let mut tally = Tally::default();
    for p in &pairings.paired {
        let _ = out.write_all(render_pairing_header(p, &rule).as_bytes());
        for warning in noise_warnings(p) {
            eprintln!("warning: {warning}");
        }
        let judgment = judge(&p.baseline, &p.runs, &rule);
        let _ = out.write_all(render_judgment(p, &judgment).as_bytes());
        tally.add(&p.baseline.scenario, &judgment);
    }
    if tally.compared == 0 {
        let base = args.base.display();
        return usage([format!(
            "nothing compared: no CURRENT run has a baseline in {base} with a ratio the rule looks at"
        )]);
    }
    let _ = out.write_all(render_tally(&tally, &rule).as_bytes());
    if tally.regressed.is_empty() {
        Exit::Success
    } else {
        Exit::CheckFailed
    }
}

#[cfg(test)]
mod tests;
