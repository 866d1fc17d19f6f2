//! Regressions: runs judged against a baseline made of earlier runs, or one
//! run against another.
//!
//! Against a baseline, every figure is a ratio to the same run's floor (the
//! same phases sent straight at a mock, by the same engine, in the same
//! process), so a faster or slower machine moves both sides and the ratio
//! stays put. A baseline keeps, for each metric and percentile, the median,
//! min and max of that ratio over its runs; the absolute times it also keeps
//! are for information. The rule, for a tolerance of PCT percent: take the
//! median of the CURRENT runs' ratios; it regresses when it is more than PCT
//! percent above the baseline's median *and* above the baseline's largest
//! repetition (so a noisy baseline widens its own band), and improves when,
//! symmetrically, it is more than PCT percent below the median and below the
//! smallest repetition.
//!
//! Against one other run, for a bound of PCT percent:
//! - latency percentiles (p50, p90, p99, p99.9 of every metric with samples in
//!   both runs) regress when CURRENT is more than PCT percent above BASE; a
//!   BASE of 0 µs regresses on any CURRENT above 0;
//! - request rates (overall `requests.sent / duration_s`, and each phase's
//!   `achieved_rate` when both runs have that phase at the same position)
//!   regress when CURRENT is more than PCT percent below BASE;
//! - the error rate regresses when CURRENT is more than PCT/100 percentage
//!   points above BASE (an absolute tolerance: 10 allows 0.1 points), since a
//!   relative bound on a base of 0 errors would forbid a single one.
//!
//! The files, each using only those before it:
//! - [`summary`]: the one reader of `summary.json`, with its two views (a
//!   [`RunSummary`] for two runs, a [`FloorRun`] for baselines).
//! - [`baseline`]: a baseline made of runs ([`Baseline`], [`Spread`],
//!   [`MachineDependent`]), read and written.
//! - [`rule`]: the verdicts ([`Verdict`], [`Rule`], [`judge`]).
//! - [`comparison`]: one run against another.
//! - [`pairing`]: what BASE is, and which baseline judges which runs.
//! - [`render`]: the text tables.

pub mod baseline;
pub mod comparison;
pub mod pairing;
pub mod render;
pub mod rule;
pub mod summary;

use std::path::PathBuf;

use thiserror::Error;

pub use baseline::{Baseline, MachineDependent, RECOMMENDED_RUNS, Spread, load_baseline};
pub use comparison::{Comparison, DEFAULT_MAX_REGRESSION_PCT, compare, compare_files};
pub use pairing::{Base, Baselines, Pairing, Pairings};
pub use rule::{Judgment, Rule, Tally, Verdict, judge};
pub use summary::{FloorRun, RunSummary, load_runs, load_summary};

use crate::report::json::SCHEMA_VERSION;

/// Why runs or a baseline could not be read or used.
#[derive(Debug, Error)]
pub enum RegressionError {
    #[error("{}: cannot read the file: {source}", file.display())]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{}: not a gauntlet summary.json: {source}", file.display())]
    ParseSummary { file: PathBuf, source: serde_json::Error },
    /// A field one view of a summary needs, and the summary lacks.
    #[error("{}: not a gauntlet summary.json: missing field `{field}`", file.display())]
    Missing { file: PathBuf, field: String },
    #[error("{}: schema_version {found} is not supported (this gauntlet reads {SCHEMA_VERSION})", file.display())]
    SummaryVersion { file: PathBuf, found: u32 },
    /// A run or baseline that cannot be trusted or makes no sense.
    #[error("{}: {problem}", file.display())]
    Invalid { file: PathBuf, problem: String },
    #[error(
        "{}: no \"floor\" section, so no ratios to a floor (runs of the bench scenarios in scenarios/bench/ have one)",
        file.display()
    )]
    NoFloor { file: PathBuf },
    #[error("{}: no summary.json in it or in the folders directly under it", path.display())]
    NoRuns { path: PathBuf },
    #[error("{}: cannot list the folder: {source}", path.display())]
    List { path: PathBuf, source: std::io::Error },
    #[error("{files}: requests failed; a baseline is made from runs where every request succeeded")]
    Failed { files: String },
    #[error("no runs to make a baseline of")]
    Empty,
    #[error("the runs are of different scenarios ({listing}); a baseline is made from runs of one")]
    MixedScenarios { listing: String },
    #[error("{}: not a gauntlet baseline: {source}", file.display())]
    ParseBaseline { file: PathBuf, source: serde_json::Error },
    #[error("{}: baseline_version {found} is not supported (this gauntlet reads {})", file.display(), baseline::BASELINE_VERSION)]
    BaselineVersion { file: PathBuf, found: u32 },
    #[error("cannot write the baseline as JSON: {source}")]
    Serialize { source: serde_json::Error },
    #[error("{}: cannot write the baseline: {source}", file.display())]
    Write { file: PathBuf, source: std::io::Error },
    /// Runs given with one baseline file that is of another scenario.
    #[error("{files}: runs of scenario {scenario}, but {} is a baseline of {found}", file.display())]
    OtherScenario {
        files: String,
        scenario: String,
        file: PathBuf,
        found: String,
    },
    /// A baseline in a folder whose name says another scenario than its content.
    #[error("{}: a baseline of scenario {found}, not {scenario} as its name says", file.display())]
    Misnamed {
        file: PathBuf,
        found: String,
        scenario: String,
    },
    /// Two runs with no metric with samples in both.
    #[error("nothing to compare: {} and {} share no metric with samples", base.display(), current.display())]
    NothingToCompare { base: PathBuf, current: PathBuf },
    #[error("{scenario}: {runs} CURRENT run(s), fewer than --min-runs {min_runs}")]
    TooFewRuns {
        scenario: String,
        runs: usize,
        min_runs: usize,
    },
}
