//! `gauntlet compare BASE CURRENT...`: compares runs for regressions; exits 1
//! if anything got worse than the bound allows, 2 if an input cannot be read
//! or used. BASE decides the mode.
//!
//! Against a baseline (a document with a `baseline_version`, or a folder of
//! them): the router/floor ratios of one or more CURRENT runs are judged by the
//! noise-aware rule in [`super::baseline`].
//!
//! Against one other run (BASE a `summary.json`), the rules, for a bound of
//! PCT percent:
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
//! Reading and printing are in [`run`]; everything else is pure.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use super::baseline::{self, Baseline, BaselineError, FloorRun, Judgment, MachineDependent, RECOMMENDED_RUNS, Rule};
use crate::Exit;
use crate::cli::{CompareArgs, PercentileArg, RatioMetricArg};
use crate::metrics::Metric;
use crate::report::json::{SCHEMA_VERSION, SUMMARY_JSON};

/// Slack for floating-point noise, so a change of exactly PCT is not a regression.
const EPSILON: f64 = 1e-9;
/// `--max-regression` when not given.
pub const DEFAULT_MAX_REGRESSION_PCT: f64 = 10.0;

/// Why a summary could not be read.
#[derive(Debug, Error)]
pub enum CompareError {
    #[error("{}: cannot read the file: {source}", file.display())]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{}: not a gauntlet summary.json: {source}", file.display())]
    Parse { file: PathBuf, source: serde_json::Error },
    #[error("{}: schema_version {found} is not supported (this gauntlet reads {SCHEMA_VERSION})", file.display())]
    Version { file: PathBuf, found: u32 },
    #[error("{}: {problem}", file.display())]
    Invalid { file: PathBuf, problem: String },
}

/// The part of `summary.json` a comparison reads; other fields are ignored.
#[derive(Debug, Deserialize)]
struct RawSummary {
    schema_version: u32,
    #[serde(default)]
    duration_s: Option<f64>,
    #[serde(default)]
    requests: Option<RawRequests>,
    #[serde(default)]
    phases: Vec<RawPhase>,
    metrics: BTreeMap<String, RawPercentiles>,
}

#[derive(Debug, Deserialize)]
struct RawRequests {
    sent: u64,
    error_rate: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct RawPhase {
    name: String,
    #[serde(default)]
    achieved_rate: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct RawPercentiles {
    count: u64,
    p50_us: u64,
    p90_us: u64,
    p99_us: u64,
    p999_us: u64,
}

/// Latency percentiles of one metric, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyUs {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
}

impl LatencyUs {
    fn quantiles(self) -> [(&'static str, u64); 4] {
        [
            ("p50", self.p50),
            ("p90", self.p90),
            ("p99", self.p99),
            ("p99.9", self.p999),
        ]
    }
}

/// What a comparison needs of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// Metrics with at least one sample, by name.
    pub latencies: BTreeMap<String, LatencyUs>,
    /// Requests sent per second of the whole run.
    pub request_rate: Option<f64>,
    /// Errors over sent requests, 0 to 1.
    pub error_rate: Option<f64>,
    /// Each phase's name and achieved rate (requests per second), in order.
    pub phase_rates: Vec<(String, Option<f64>)>,
}

impl RunSummary {
    /// Parses a `summary.json` document; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<RunSummary, CompareError> {
        let raw: RawSummary = serde_json::from_str(text).map_err(|source| CompareError::Parse {
            file: file.to_owned(),
            source,
        })?;
        if raw.schema_version != SCHEMA_VERSION {
            return Err(CompareError::Version {
                file: file.to_owned(),
                found: raw.schema_version,
            });
        }
        let invalid = |problem: String| CompareError::Invalid {
            file: file.to_owned(),
            problem,
        };
        let error_rate = raw.requests.as_ref().and_then(|r| r.error_rate);
        if let Some(share) = error_rate
            && !(0.0..=1.0).contains(&share)
        {
            return Err(invalid(format!("requests.error_rate {share} is not between 0 and 1")));
        }
        let request_rate = match (&raw.requests, raw.duration_s) {
            (Some(r), Some(d)) if d.is_finite() && d > 0.0 => Some(r.sent as f64 / d),
            _ => None,
        };
        let mut phase_rates = Vec::with_capacity(raw.phases.len());
        for p in raw.phases {
            if let Some(rate) = p.achieved_rate
                && !(rate.is_finite() && rate >= 0.0)
            {
                return Err(invalid(format!(
                    "phases[{}].achieved_rate {rate} is not a rate",
                    p.name
                )));
            }
            phase_rates.push((p.name, p.achieved_rate));
        }
        let latencies = raw
            .metrics
            .into_iter()
            .filter(|(_, p)| p.count > 0)
            .map(|(name, p)| {
                let latency = LatencyUs {
                    p50: p.p50_us,
                    p90: p.p90_us,
                    p99: p.p99_us,
                    p999: p.p999_us,
                };
                (name, latency)
            })
            .collect();
        Ok(RunSummary {
            latencies,
            request_rate,
            error_rate,
            phase_rates,
        })
    }
}

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

fn value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Micros => format!("{:.3} ms", v / 1000.0),
        Unit::PerSecond => format!("{v:.2} /s"),
        Unit::Share => format!("{:.3} %", v * 100.0),
    }
}

fn change(row: &Row) -> String {
    match row.unit {
        Unit::Share => format!("{:+.3} pp", (row.current - row.base) * 100.0),
        Unit::Micros | Unit::PerSecond => match change_pct(row.base, row.current) {
            Some(pct) => format!("{pct:+.1} %"),
            None => "n/a".to_owned(),
        },
    }
}

/// Lines of aligned columns: the first column left-aligned, the middle ones
/// right-aligned, the last unpadded.
fn columns<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |row: [&str; N]| {
        let last = N.saturating_sub(1);
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            let _ = match i {
                0 => write!(out, "{cell:<w$}"),
                i if i == last => write!(out, "  {cell}"),
                _ => write!(out, "  {cell:>w$}"),
            };
        }
        out.push('\n');
    };
    line(header);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}

/// The comparison as a plain-text table (metric, base, current, change, verdict).
pub fn render_table(comparison: &Comparison) -> String {
    let cells: Vec<[String; 5]> = comparison
        .rows
        .iter()
        .map(|r| {
            [
                r.metric.clone(),
                value(r.unit, r.base),
                value(r.unit, r.current),
                change(r),
                r.verdict.name().to_owned(),
            ]
        })
        .collect();
    columns(["metric", "base", "current", "change", "verdict"], &cells)
}

/// A judgment against a baseline as a plain-text table (metric, percentile,
/// baseline and current ratios, change of the medians, verdict).
pub fn render_ratio_table(judgment: &Judgment) -> String {
    let cells: Vec<[String; 7]> = judgment
        .rows
        .iter()
        .map(|r| {
            [
                r.metric.to_owned(),
                r.percentile.to_owned(),
                baseline::spread_text(r.baseline),
                baseline::spread_text(r.current),
                r.current_runs.to_string(),
                ratio_change(r.baseline.median, r.current.median),
                r.verdict.name().to_owned(),
            ]
        })
        .collect();
    let header = [
        "metric",
        "pct",
        "baseline median [min–max]",
        "current median [min–max]",
        "runs",
        "change",
        "verdict",
    ];
    columns(header, &cells)
}

/// The change of a median ratio in percent, with no `-0.0` for a change
/// smaller than its last digit.
fn ratio_change(base: f64, current: f64) -> String {
    match change_pct(base, current) {
        Some(pct) if pct.abs() < 0.05 => "+0.0 %".to_owned(),
        Some(pct) => format!("{pct:+.1} %"),
        None => "n/a".to_owned(),
    }
}

/// The machine-dependent figures of the current runs beside the baseline's.
pub fn render_machine_dependent(baseline: &MachineDependent, current: &MachineDependent) -> String {
    let us = |v: Option<f64>| match v {
        None => "n/a".to_owned(),
        Some(us) if us >= 1000.0 => format!("{:.2} ms", us / 1000.0),
        Some(us) => format!("{us:.0} µs"),
    };
    let pair = |name: &str, b: Option<f64>, c: Option<f64>| format!("{name} {} (baseline {})", us(c), us(b));
    format!(
        "machine-dependent, not judged: {}, {}; {}\n",
        pair(
            "router overhead p50",
            baseline.router_overhead_p50_us,
            current.router_overhead_p50_us
        ),
        pair("p99", baseline.router_overhead_p99_us, current.router_overhead_p99_us),
        pair("floor e2e p50", baseline.floor_e2e_p50_us, current.floor_e2e_p50_us),
    )
}

/// The summary file of a path: the path itself, or `summary.json` inside a folder.
fn summary_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(SUMMARY_JSON)
    } else {
        path.to_owned()
    }
}

/// Reads a `summary.json` file or the one in a run folder.
pub fn load(path: &Path) -> Result<RunSummary, CompareError> {
    let file = summary_file(path);
    let text = std::fs::read_to_string(&file).map_err(|source| CompareError::Read {
        file: file.clone(),
        source,
    })?;
    RunSummary::parse(&text, &file)
}

/// What BASE is, which decides the mode.
enum Base {
    /// A `summary.json`, or a run folder holding one.
    Run,
    Baselines(Baselines),
}

/// The baselines runs are judged against.
enum Baselines {
    /// One baseline file, for runs of its scenario only.
    One { file: PathBuf, baseline: Box<Baseline> },
    /// A folder of baselines, each named `<scenario>.json`.
    Folder(PathBuf),
}

impl Base {
    /// Tells a baseline (a document with `baseline_version`) from a summary;
    /// a folder without a `summary.json` is a folder of baselines.
    fn of(path: &Path) -> Result<Base, BaselineError> {
        if path.is_dir() {
            return Ok(if path.join(SUMMARY_JSON).is_file() {
                Base::Run
            } else {
                Base::Baselines(Baselines::Folder(path.to_owned()))
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Read {
            file: path.to_owned(),
            source,
        })?;
        if !baseline::is_baseline(&text) {
            return Ok(Base::Run);
        }
        Ok(Base::Baselines(Baselines::One {
            file: path.to_owned(),
            baseline: Box::new(Baseline::parse(&text, path)?),
        }))
    }
}

pub fn run(args: &CompareArgs) -> Exit {
    match Base::of(&args.base) {
        Ok(Base::Run) => against_a_run(args),
        Ok(Base::Baselines(baselines)) => against_baselines(args, &baselines),
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Usage
        }
    }
}

/// Two summaries, absolute latencies and rates.
fn against_a_run(args: &CompareArgs) -> Exit {
    let baseline_flags = [
        ("--tolerance", args.tolerance.is_some()),
        ("--metrics", !args.metrics.is_empty()),
        ("--percentiles", !args.percentiles.is_empty()),
        ("--min-runs", args.min_runs.is_some()),
    ];
    let given: Vec<&str> = baseline_flags.iter().filter(|(_, on)| *on).map(|(f, _)| *f).collect();
    if !given.is_empty() {
        eprintln!(
            "error: {} judge(s) runs against a baseline, and BASE {} is a run (its bound is --max-regression)",
            given.join(", "),
            args.base.display()
        );
        return Exit::Usage;
    }
    let [current] = args.current.as_slice() else {
        eprintln!(
            "error: BASE {} is a run, so CURRENT is one run (got {}); to judge several runs, \
             compare them with a baseline (`gauntlet baseline`)",
            args.base.display(),
            args.current.len()
        );
        return Exit::Usage;
    };
    let max_pct = args.max_regression.unwrap_or(DEFAULT_MAX_REGRESSION_PCT);
    if !(max_pct.is_finite() && max_pct >= 0.0) {
        eprintln!("error: --max-regression {max_pct} is not a percentage of 0 or more");
        return Exit::Usage;
    }
    let (base, current_summary) = match (load(&args.base), load(current)) {
        (Ok(base), Ok(current)) => (base, current),
        (base, current) => {
            for e in [base.err(), current.err()].into_iter().flatten() {
                eprintln!("error: {e}");
            }
            return Exit::Usage;
        }
    };
    let comparison = compare(&base, &current_summary, max_pct);
    if comparison.rows.is_empty() {
        eprintln!(
            "error: nothing to compare: {} and {} share no metric with samples",
            args.base.display(),
            current.display()
        );
        return Exit::Usage;
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(render_table(&comparison).as_bytes());
    if !comparison.skipped.is_empty() {
        let _ = writeln!(
            out,
            "not compared (no samples in one run): {}",
            comparison.skipped.join(", ")
        );
    }
    let regressed: Vec<&str> = comparison.regressed().map(|r| r.metric.as_str()).collect();
    if regressed.is_empty() {
        let _ = writeln!(out, "no regression beyond {max_pct} %");
        Exit::Success
    } else {
        let _ = writeln!(
            out,
            "{} metric(s) regressed beyond {max_pct} %: {}",
            regressed.len(),
            regressed.join(", ")
        );
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

/// Each item once, in first-seen order.
fn distinct<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut seen = Vec::new();
    for item in items {
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    seen
}

/// The rule the flags ask for, defaults where they are silent.
fn rule(args: &CompareArgs) -> Result<Rule, String> {
    let mut rule = Rule::default();
    if let Some(pct) = args.tolerance {
        if !(pct.is_finite() && pct >= 0.0) {
            return Err(format!("--tolerance {pct} is not a percentage of 0 or more"));
        }
        rule.tolerance_pct = pct;
    }
    if !args.metrics.is_empty() {
        rule.metrics = distinct(args.metrics.iter().map(|m| ratio_metric(*m)));
    }
    if !args.percentiles.is_empty() {
        rule.percentiles = distinct(args.percentiles.iter().map(|p| percentile_key(*p)));
    }
    Ok(rule)
}

/// The baseline file of a scenario in a folder of baselines; `None` for a
/// name that is not a plain file name.
fn baseline_file(dir: &Path, scenario: &str) -> Option<PathBuf> {
    let plain = !scenario.is_empty() && !scenario.starts_with('.') && !scenario.contains(['/', '\\']);
    plain.then(|| dir.join(format!("{scenario}.json")))
}

/// Runs of one scenario and the baseline they are judged against.
struct Pairing {
    file: PathBuf,
    baseline: Baseline,
    runs: Vec<FloorRun>,
}

/// One or more runs judged by their ratios against a baseline or a folder of them.
fn against_baselines(args: &CompareArgs, baselines: &Baselines) -> Exit {
    if args.max_regression.is_some() {
        eprintln!(
            "error: --max-regression bounds a comparison of two runs, and BASE {} is a baseline \
             (its bound is --tolerance)",
            args.base.display()
        );
        return Exit::Usage;
    }
    let rule = match rule(args) {
        Ok(rule) => rule,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let runs = match baseline::load_runs(&args.current) {
        Ok(runs) => runs,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return Exit::Usage;
        }
    };
    let mut by_scenario: BTreeMap<String, Vec<FloorRun>> = BTreeMap::new();
    for run in runs {
        by_scenario.entry(run.scenario.clone()).or_default().push(run);
    }
    let min_runs = args.min_runs.map_or(1, |n| n.get());
    let mut pairings = Vec::new();
    let mut unmatched = Vec::new();
    let mut errors = Vec::new();
    for (scenario, runs) in by_scenario {
        let (file, baseline) = match baselines {
            Baselines::One { file, baseline } if baseline.scenario == scenario => {
                (file.clone(), Baseline::clone(baseline))
            }
            Baselines::One { file, baseline } => {
                let files: Vec<String> = runs.iter().map(|r| r.file.display().to_string()).collect();
                errors.push(format!(
                    "{}: runs of scenario {scenario}, but {} is a baseline of {}",
                    files.join(", "),
                    file.display(),
                    baseline.scenario
                ));
                continue;
            }
            Baselines::Folder(dir) => match baseline_file(dir, &scenario) {
                Some(file) if file.is_file() => match baseline::load_baseline(&file) {
                    Ok(b) if b.scenario == scenario => (file, b),
                    Ok(b) => {
                        errors.push(format!(
                            "{}: a baseline of scenario {}, not {scenario} as its name says",
                            file.display(),
                            b.scenario
                        ));
                        continue;
                    }
                    Err(e) => {
                        errors.push(e.to_string());
                        continue;
                    }
                },
                _ => {
                    unmatched.push(format!(
                        "skipped {scenario} ({} run(s)): no baseline {}",
                        runs.len(),
                        dir.join(format!("{scenario}.json")).display()
                    ));
                    continue;
                }
            },
        };
        if runs.len() < min_runs {
            errors.push(format!(
                "{scenario}: {} CURRENT run(s), fewer than --min-runs {min_runs}",
                runs.len()
            ));
            continue;
        }
        pairings.push(Pairing { file, baseline, runs });
    }
    if !errors.is_empty() {
        for e in errors {
            eprintln!("error: {e}");
        }
        return Exit::Usage;
    }
    let mut out = std::io::stdout().lock();
    for line in &unmatched {
        let _ = writeln!(out, "{line}");
    }
    let mut compared = 0;
    let mut regressed = Vec::new();
    let mut improved = Vec::new();
    for Pairing { file, baseline, runs } in &pairings {
        let scenario = &baseline.scenario;
        let _ = writeln!(
            out,
            "\n{scenario}: {} run(s) against {} ({} run(s), made {}), tolerance {} %",
            runs.len(),
            file.display(),
            baseline.runs,
            baseline.created_at,
            rule.tolerance_pct
        );
        if runs.len() < RECOMMENDED_RUNS {
            eprintln!(
                "warning: {scenario}: {} run(s) judged, and the median of fewer than {RECOMMENDED_RUNS} is noisy; \
                 judge {RECOMMENDED_RUNS} or more (`gauntlet run --repeat {RECOMMENDED_RUNS}`; \
                 --min-runs {RECOMMENDED_RUNS} makes this an error)",
                runs.len()
            );
        }
        if baseline.runs < RECOMMENDED_RUNS {
            eprintln!(
                "warning: {}: a baseline of {} run(s) is noisy; refresh it from {RECOMMENDED_RUNS} or more",
                file.display(),
                baseline.runs
            );
        }
        for run in runs.iter().filter(|r| !r.passed) {
            let _ = writeln!(
                out,
                "note: {}: a check failed in this run (passed: false); its ratios are judged all the same",
                run.file.display()
            );
        }
        let judgment = baseline::judge(baseline, runs, &rule);
        let _ = out.write_all(render_ratio_table(&judgment).as_bytes());
        if !judgment.skipped.is_empty() {
            let _ = writeln!(out, "not compared: {}", judgment.skipped.join(", "));
        }
        let _ = out.write_all(
            render_machine_dependent(&baseline.machine_dependent, &MachineDependent::median_of(runs)).as_bytes(),
        );
        compared += judgment.rows.len();
        let named = |r: &baseline::RatioRow| format!("{scenario} {} {}", r.metric, r.percentile);
        regressed.extend(judgment.with(Verdict::Regressed).map(named));
        improved.extend(judgment.with(Verdict::Improved).map(named));
    }
    if compared == 0 {
        eprintln!(
            "error: nothing compared: no CURRENT run has a baseline in {} with a ratio the rule looks at",
            args.base.display()
        );
        return Exit::Usage;
    }
    let _ = writeln!(out);
    if !improved.is_empty() {
        let _ = writeln!(
            out,
            "{} ratio(s) improved beyond the band: {} (refresh the baseline to keep the gain)",
            improved.len(),
            improved.join(", ")
        );
    }
    if regressed.is_empty() {
        let _ = writeln!(
            out,
            "no regression: every median ratio within {} % of its baseline or its baseline's range",
            rule.tolerance_pct
        );
        Exit::Success
    } else {
        let _ = writeln!(
            out,
            "{} ratio(s) regressed beyond {} % and the baseline's range: {}",
            regressed.len(),
            rule.tolerance_pct,
            regressed.join(", ")
        );
        Exit::CheckFailed
    }
}

#[cfg(test)]
mod tests;
