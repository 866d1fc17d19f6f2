//! Regression baselines: the document `gauntlet baseline` makes of several
//! runs of one bench scenario, and the rule `gauntlet compare` judges new
//! runs by against it.
//!
//! Every figure is a ratio to the same run's floor (the same phases sent
//! straight at a mock, by the same engine, in the same process), so a faster
//! or slower machine moves both sides and the ratio stays put. A baseline
//! keeps, for each metric and percentile, the median, min and max of that
//! ratio over its runs; the absolute times it also keeps are for information.
//!
//! The rule, for a tolerance of PCT percent: take the median of the CURRENT
//! runs' ratios; it regresses when it is more than PCT percent above the
//! baseline's median *and* above the baseline's largest repetition (so a noisy
//! baseline widens its own band), and improves when, symmetrically, it is
//! more than PCT percent below the median and below the smallest repetition.
//!
//! Reading and writing are in [`load_run`], [`load_baseline`] and [`run`];
//! the rest is pure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::compare::{CompareError, Verdict};
use crate::Exit;
use crate::cli::BaselineArgs;
use crate::metrics::Metric;
use crate::report::json::{SCHEMA_VERSION, SUMMARY_JSON};

/// The version of the baseline document's shape (`baseline_version`).
pub const BASELINE_VERSION: u32 = 1;
/// Fewer runs than this, on either side, draw a warning: one run is noisy.
pub const RECOMMENDED_RUNS: usize = 3;
/// The percentiles a ratio is kept for, by their key in `summary.json`.
pub const PERCENTILES: [&str; 4] = ["p50", "p90", "p99", "p999"];
/// Decimal places a baseline keeps of a ratio: far below any run-to-run noise.
const RATIO_DECIMALS: i32 = 4;
/// Slack for floating-point noise, so a change of exactly PCT is not a regression.
const EPSILON: f64 = 1e-9;
const MACHINE_NOTE: &str = "medians of absolute times on the machine that made this baseline: \
                            machine-dependent, for information, never compared";

/// Why runs or a baseline could not be used.
#[derive(Debug, Error)]
pub enum BaselineError {
    /// A summary that cannot be read or parsed.
    #[error(transparent)]
    Summary(#[from] CompareError),
    #[error(
        "{}: no \"floor\" section, so no ratios to a floor (runs of the bench scenarios in scenarios/bench/ have one)",
        file.display()
    )]
    NoFloor { file: PathBuf },
    /// A run or baseline that cannot be trusted or makes no sense.
    #[error("{}: {problem}", file.display())]
    Invalid { file: PathBuf, problem: String },
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
    #[error("{}: cannot read the file: {source}", file.display())]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{}: not a gauntlet baseline: {source}", file.display())]
    Parse { file: PathBuf, source: serde_json::Error },
    #[error("{}: baseline_version {found} is not supported (this gauntlet reads {BASELINE_VERSION})", file.display())]
    Version { file: PathBuf, found: u32 },
}

/// Ratios of one run, by metric and then percentile key; `None` where the
/// floor's value is 0.
pub type Ratios = BTreeMap<String, BTreeMap<String, Option<f64>>>;

/// The part of a `summary.json` a baseline reads; other fields are ignored.
#[derive(Debug, Deserialize)]
struct RawRun {
    schema_version: u32,
    scenario: RawScenario,
    passed: bool,
    valid: bool,
    #[serde(default)]
    stopped: bool,
    #[serde(default)]
    validity: Option<RawValidity>,
    #[serde(default)]
    requests: Option<RawRequests>,
    metrics: BTreeMap<String, RawPercentiles>,
    #[serde(default)]
    floor: Option<RawFloor>,
}

#[derive(Debug, Deserialize)]
struct RawRequests {
    errors: u64,
}

#[derive(Debug, Deserialize)]
struct RawScenario {
    name: String,
}

#[derive(Debug, Deserialize)]
struct RawValidity {
    #[serde(default)]
    problems: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RawFloor {
    valid: bool,
    #[serde(default)]
    validity: Option<RawValidity>,
    metrics: BTreeMap<String, RawPercentiles>,
    ratios: Ratios,
}

#[derive(Debug, Deserialize)]
struct RawPercentiles {
    count: u64,
    p50_us: u64,
    p99_us: u64,
}

/// What a baseline or a baseline comparison needs of one run with a floor.
#[derive(Debug, Clone, PartialEq)]
pub struct FloorRun {
    /// The `summary.json` it was read from.
    pub file: PathBuf,
    pub scenario: String,
    /// Every check passed (a bench scenario's checks include absolute speed
    /// goals a slower machine may miss: a baseline warns, but takes it).
    pub passed: bool,
    /// Requests that failed through the router.
    pub errors: u64,
    pub ratios: Ratios,
    /// The router's `overhead` p50 and p99, when it has samples.
    pub overhead_p50_us: Option<u64>,
    pub overhead_p99_us: Option<u64>,
    /// The floor's `e2e` p50, when it has samples.
    pub floor_e2e_p50_us: Option<u64>,
}

impl FloorRun {
    /// Parses a `summary.json` with a trustworthy floor; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<FloorRun, BaselineError> {
        let raw: RawRun = serde_json::from_str(text).map_err(|source| CompareError::Parse {
            file: file.to_owned(),
            source,
        })?;
        if raw.schema_version != SCHEMA_VERSION {
            return Err(CompareError::Version {
                file: file.to_owned(),
                found: raw.schema_version,
            }
            .into());
        }
        let invalid = |problem: String| BaselineError::Invalid {
            file: file.to_owned(),
            problem,
        };
        if raw.stopped {
            return Err(invalid("the run was stopped before its end".to_owned()));
        }
        if !raw.valid {
            return Err(invalid(format!(
                "the run is not valid ({}): the load generator fell behind, so its ratios cannot be trusted",
                problems(raw.validity.as_ref())
            )));
        }
        let Some(floor) = raw.floor else {
            return Err(BaselineError::NoFloor { file: file.to_owned() });
        };
        if !floor.valid {
            return Err(invalid(format!(
                "the floor is not valid ({}): the load generator fell behind, so its ratios cannot be trusted",
                problems(floor.validity.as_ref())
            )));
        }
        for (metric, by_percentile) in &floor.ratios {
            for (percentile, ratio) in by_percentile {
                if let Some(r) = ratio
                    && !(r.is_finite() && *r >= 0.0)
                {
                    return Err(invalid(format!(
                        "floor.ratios.{metric}.{percentile} {r} is not a ratio"
                    )));
                }
            }
        }
        let sampled = |metrics: &BTreeMap<String, RawPercentiles>, name: &str| {
            metrics.get(name).filter(|p| p.count > 0).map(|p| (p.p50_us, p.p99_us))
        };
        let overhead = sampled(&raw.metrics, Metric::Overhead.name());
        Ok(FloorRun {
            file: file.to_owned(),
            scenario: raw.scenario.name,
            passed: raw.passed,
            errors: raw.requests.map_or(0, |r| r.errors),
            ratios: floor.ratios,
            overhead_p50_us: overhead.map(|(p50, _)| p50),
            overhead_p99_us: overhead.map(|(_, p99)| p99),
            floor_e2e_p50_us: sampled(&floor.metrics, Metric::E2e.name()).map(|(p50, _)| p50),
        })
    }

    /// The name a run goes by: its report folder, or the file's own name
    /// when it is not a `summary.json`.
    pub fn source_name(&self) -> String {
        let named = if self.file.file_name().is_some_and(|n| n == SUMMARY_JSON) {
            self.file.parent().and_then(Path::file_name)
        } else {
            self.file.file_name()
        };
        named.map_or_else(|| self.file.display().to_string(), |n| n.to_string_lossy().into_owned())
    }

    /// The run's ratio of `metric` at `percentile`, when it has one.
    fn ratio(&self, metric: &str, percentile: &str) -> Option<f64> {
        self.ratios.get(metric)?.get(percentile).copied().flatten()
    }
}

fn problems(validity: Option<&RawValidity>) -> String {
    match validity {
        Some(v) if !v.problems.is_empty() => v.problems.join("; "),
        _ => "no problem listed".to_owned(),
    }
}

/// The median of `values` (the mean of the middle two for an even count);
/// `None` for no values.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => sorted.get(mid).copied(),
        _ => Some((sorted.get(mid - 1)? + sorted.get(mid)?) / 2.0),
    }
}

/// The median and range of a figure over several runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` for no values.
    pub fn of(values: &[f64]) -> Option<Spread> {
        Some(Spread {
            median: median(values)?,
            min: values.iter().copied().reduce(f64::min)?,
            max: values.iter().copied().reduce(f64::max)?,
        })
    }

    /// Rounded to [`RATIO_DECIMALS`] places, as a baseline keeps it.
    fn rounded(self) -> Spread {
        let scale = 10f64.powi(RATIO_DECIMALS);
        let round = |v: f64| (v * scale).round() / scale;
        Spread {
            median: round(self.median),
            min: round(self.min),
            max: round(self.max),
        }
    }
}

/// Absolute times, medians over runs: they move with the machine, so they
/// are shown beside the ratios and never judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineDependent {
    #[serde(default)]
    pub note: String,
    /// The router run's `overhead` (client time − mock time) p50 and p99.
    pub router_overhead_p50_us: Option<f64>,
    pub router_overhead_p99_us: Option<f64>,
    /// The floor's `e2e` p50: how fast the machine was.
    pub floor_e2e_p50_us: Option<f64>,
}

impl MachineDependent {
    /// The medians over `runs` of the runs that have each figure.
    pub fn median_of(runs: &[FloorRun]) -> MachineDependent {
        let median_of = |get: fn(&FloorRun) -> Option<u64>| {
            let values: Vec<f64> = runs.iter().filter_map(get).map(|us| us as f64).collect();
            median(&values)
        };
        MachineDependent {
            note: MACHINE_NOTE.to_owned(),
            router_overhead_p50_us: median_of(|r| r.overhead_p50_us),
            router_overhead_p99_us: median_of(|r| r.overhead_p99_us),
            floor_e2e_p50_us: median_of(|r| r.floor_e2e_p50_us),
        }
    }
}

/// A regression baseline: the router/floor ratios of several runs of one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub baseline_version: u32,
    pub scenario: String,
    /// The gauntlet that made the baseline.
    pub gauntlet_version: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// How many runs it was made of.
    pub runs: usize,
    /// Their report folders (or file names).
    pub sources: Vec<String>,
    /// By metric and percentile key, the spread of the ratio over the runs
    /// that have one.
    pub ratios: BTreeMap<String, BTreeMap<String, Spread>>,
    pub machine_dependent: MachineDependent,
}

impl Baseline {
    /// A baseline of `runs`, which must all be of one scenario and free of
    /// failed requests.
    pub fn build(runs: &[FloorRun], created_at: String) -> Result<Baseline, BaselineError> {
        let first = runs.first().ok_or(BaselineError::Empty)?;
        let failed: Vec<String> = runs
            .iter()
            .filter(|r| r.errors > 0)
            .map(|r| r.file.display().to_string())
            .collect();
        if !failed.is_empty() {
            return Err(BaselineError::Failed {
                files: failed.join(", "),
            });
        }
        if runs.iter().any(|r| r.scenario != first.scenario) {
            let mut by_scenario: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for r in runs {
                by_scenario
                    .entry(&r.scenario)
                    .or_default()
                    .push(r.file.display().to_string());
            }
            let listing = by_scenario
                .iter()
                .map(|(scenario, files)| format!("{scenario}: {}", files.join(", ")))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(BaselineError::MixedScenarios { listing });
        }
        let keys: BTreeSet<(&str, &str)> = runs
            .iter()
            .flat_map(|r| &r.ratios)
            .flat_map(|(m, by_p)| by_p.keys().map(move |p| (m.as_str(), p.as_str())))
            .collect();
        let mut ratios: BTreeMap<String, BTreeMap<String, Spread>> = BTreeMap::new();
        for (metric, percentile) in keys {
            let values: Vec<f64> = runs.iter().filter_map(|r| r.ratio(metric, percentile)).collect();
            if let Some(spread) = Spread::of(&values) {
                ratios
                    .entry(metric.to_owned())
                    .or_default()
                    .insert(percentile.to_owned(), spread.rounded());
            }
        }
        Ok(Baseline {
            baseline_version: BASELINE_VERSION,
            scenario: first.scenario.clone(),
            gauntlet_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at,
            runs: runs.len(),
            sources: runs.iter().map(FloorRun::source_name).collect(),
            ratios,
            machine_dependent: MachineDependent::median_of(runs),
        })
    }

    /// Parses a baseline document; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Baseline, BaselineError> {
        let parse_error = |source| BaselineError::Parse {
            file: file.to_owned(),
            source,
        };
        let probe: Probe = serde_json::from_str(text).map_err(parse_error)?;
        match probe.baseline_version {
            None => {
                return Err(BaselineError::Invalid {
                    file: file.to_owned(),
                    problem: "no baseline_version: not a baseline made by `gauntlet baseline`".to_owned(),
                });
            }
            Some(found) if found != BASELINE_VERSION => {
                return Err(BaselineError::Version {
                    file: file.to_owned(),
                    found,
                });
            }
            Some(_) => {}
        }
        let baseline: Baseline = serde_json::from_str(text).map_err(parse_error)?;
        let invalid = |problem: String| BaselineError::Invalid {
            file: file.to_owned(),
            problem,
        };
        if baseline.runs == 0 {
            return Err(invalid("runs is 0".to_owned()));
        }
        for (metric, by_percentile) in &baseline.ratios {
            for (percentile, s) in by_percentile {
                let sane = [s.min, s.median, s.max].iter().all(|v| v.is_finite() && *v >= 0.0)
                    && s.min <= s.median
                    && s.median <= s.max;
                if !sane {
                    return Err(invalid(format!(
                        "ratios.{metric}.{percentile} is not a spread (min {} ≤ median {} ≤ max {}, none negative)",
                        s.min, s.median, s.max
                    )));
                }
            }
        }
        Ok(baseline)
    }
}

#[derive(Debug, Deserialize)]
struct Probe {
    #[serde(default)]
    baseline_version: Option<u32>,
}

/// Whether a JSON document is a baseline (has a `baseline_version`) rather than a summary.
pub fn is_baseline(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| v.get("baseline_version").is_some())
}

/// What a baseline comparison looks at, and how much change it lets pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// How far, in percent of the baseline median, the current median may move.
    pub tolerance_pct: f64,
    pub metrics: Vec<Metric>,
    /// Percentile keys, from [`PERCENTILES`].
    pub percentiles: Vec<&'static str>,
}

impl Rule {
    pub const DEFAULT_TOLERANCE_PCT: f64 = 10.0;
    pub const DEFAULT_METRICS: [Metric; 3] = [Metric::E2e, Metric::Ttft, Metric::Overhead];
    pub const DEFAULT_PERCENTILES: [&'static str; 3] = ["p50", "p90", "p99"];
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

/// The `summary.json` files that paths name: files as they are, run folders'
/// own summary, and for other folders the summaries of the folders directly
/// under them (in name order). Each file once.
pub fn summary_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, BaselineError> {
    let mut files: Vec<PathBuf> = Vec::new();
    for path in paths {
        let mut found = if !path.is_dir() {
            // A missing file is reported when it is read.
            vec![path.clone()]
        } else if path.join(SUMMARY_JSON).is_file() {
            vec![path.join(SUMMARY_JSON)]
        } else {
            let entries = std::fs::read_dir(path).map_err(|source| BaselineError::List {
                path: path.clone(),
                source,
            })?;
            let mut inner: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path().join(SUMMARY_JSON))
                .filter(|f| f.is_file())
                .collect();
            if inner.is_empty() {
                return Err(BaselineError::NoRuns { path: path.clone() });
            }
            inner.sort();
            inner
        };
        found.retain(|f| !files.contains(f));
        files.append(&mut found);
    }
    Ok(files)
}

/// Reads a run's `summary.json`.
pub fn load_run(file: &Path) -> Result<FloorRun, BaselineError> {
    let text = std::fs::read_to_string(file).map_err(|source| CompareError::Read {
        file: file.to_owned(),
        source,
    })?;
    FloorRun::parse(&text, file)
}

/// Reads a baseline file.
pub fn load_baseline(file: &Path) -> Result<Baseline, BaselineError> {
    let text = std::fs::read_to_string(file).map_err(|source| BaselineError::Read {
        file: file.to_owned(),
        source,
    })?;
    Baseline::parse(&text, file)
}

/// Reads every run the paths name; all the problems, or the runs.
pub fn load_runs(paths: &[PathBuf]) -> Result<Vec<FloorRun>, Vec<BaselineError>> {
    let files = summary_files(paths).map_err(|e| vec![e])?;
    let (runs, errors): (Vec<_>, Vec<_>) = files.iter().map(|f| load_run(f)).partition(Result::is_ok);
    if errors.is_empty() {
        Ok(runs.into_iter().filter_map(Result::ok).collect())
    } else {
        Err(errors.into_iter().filter_map(Result::err).collect())
    }
}

/// A ratio spread as `median [min–max]`.
pub fn spread_text(s: Spread) -> String {
    format!("{:.3} [{:.3}–{:.3}]", s.median, s.min, s.max)
}

pub fn run(args: &BaselineArgs) -> Exit {
    let runs = match load_runs(&args.runs) {
        Ok(runs) => runs,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return Exit::Usage;
        }
    };
    for r in runs.iter().filter(|r| !r.passed) {
        eprintln!(
            "warning: {}: a check failed (an absolute speed goal, on this machine?); its ratios are taken all the same",
            r.file.display()
        );
    }
    let created_at = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let baseline = match Baseline::build(&runs, created_at) {
        Ok(baseline) => baseline,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let mut json = match serde_json::to_string_pretty(&baseline) {
        Ok(json) => json,
        Err(e) => {
            eprintln!("error: cannot write the baseline as JSON: {e}");
            return Exit::RunFailed;
        }
    };
    json.push('\n');
    let written = match args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&args.out, &json)),
        None => std::fs::write(&args.out, &json),
    };
    if let Err(e) = written {
        eprintln!("error: {}: cannot write the baseline: {e}", args.out.display());
        return Exit::RunFailed;
    }
    println!(
        "wrote {}: scenario {}, {} run(s): {}",
        args.out.display(),
        baseline.scenario,
        baseline.runs,
        baseline.sources.join(", ")
    );
    for (metric, by_percentile) in &baseline.ratios {
        let cells: Vec<String> = PERCENTILES
            .iter()
            .filter_map(|p| by_percentile.get(*p).map(|s| format!("{p} {}", spread_text(*s))))
            .collect();
        println!("  {metric:<15} {}", cells.join("  "));
    }
    if baseline.runs < RECOMMENDED_RUNS {
        eprintln!(
            "warning: a baseline of {} run(s) is noisy; make it of {RECOMMENDED_RUNS} or more (`gauntlet run --repeat {RECOMMENDED_RUNS}`)",
            baseline.runs
        );
    }
    Exit::Success
}

#[cfg(test)]
mod tests {
    // A test reports failure by panicking.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn spread(median: f64, min: f64, max: f64) -> Spread {
        Spread { median, min, max }
    }

    /// A run with the given `e2e` ratios at p50 and p99.
    fn run_with(file: &str, scenario: &str, p50: Option<f64>, p99: Option<f64>) -> FloorRun {
        FloorRun {
            file: PathBuf::from(file),
            scenario: scenario.to_owned(),
            passed: true,
            errors: 0,
            ratios: BTreeMap::from([(
                "e2e".to_owned(),
                BTreeMap::from([("p50".to_owned(), p50), ("p99".to_owned(), p99)]),
            )]),
            overhead_p50_us: Some(40),
            overhead_p99_us: Some(300),
            floor_e2e_p50_us: Some(150),
        }
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
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[2.0]), Some(2.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(Spread::of(&[1.3, 1.1, 1.6, 1.2]), Some(spread(1.25, 1.1, 1.6)));
        assert_eq!(Spread::of(&[]), None);
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
    fn a_baseline_keeps_the_spread_of_every_ratio() {
        let runs = [
            run_with("a/summary.json", "bench", Some(1.2), Some(2.0)),
            run_with("b/summary.json", "bench", Some(1.4), None),
            run_with("c/summary.json", "bench", Some(1.3), Some(3.0)),
        ];
        let b = baseline_of(&runs);
        assert_eq!(b.baseline_version, BASELINE_VERSION);
        assert_eq!(b.scenario, "bench");
        assert_eq!(b.runs, 3);
        assert_eq!(b.sources, ["a", "b", "c"]);
        assert_eq!(b.ratios["e2e"]["p50"], spread(1.3, 1.2, 1.4));
        // A null ratio (floor of 0) is left out of the spread.
        assert_eq!(b.ratios["e2e"]["p99"], spread(2.5, 2.0, 3.0));
        assert_eq!(b.machine_dependent.router_overhead_p50_us, Some(40.0));
        assert_eq!(b.machine_dependent.floor_e2e_p50_us, Some(150.0));
        // And it reads back.
        let text = serde_json::to_string_pretty(&b).unwrap();
        assert_eq!(Baseline::parse(&text, Path::new("b.json")).unwrap(), b);
        assert!(is_baseline(&text));
    }

    #[test]
    fn a_baseline_is_of_one_scenario_and_passing_runs() {
        let mixed = [
            run_with("a/summary.json", "one", Some(1.0), None),
            run_with("b/summary.json", "two", Some(1.0), None),
        ];
        let e = Baseline::build(&mixed, String::new()).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("one: a/summary.json") && text.contains("two: b/summary.json"),
            "{text}"
        );
        let mut failed = run_with("c/summary.json", "one", Some(1.0), None);
        failed.errors = 3;
        let e = Baseline::build(&[failed], String::new()).unwrap_err();
        assert!(e.to_string().starts_with("c/summary.json: requests failed"), "{e}");
        let mut slow = run_with("d/summary.json", "one", Some(1.0), None);
        slow.passed = false;
        assert!(Baseline::build(&[slow], String::new()).is_ok());
        assert!(matches!(Baseline::build(&[], String::new()), Err(BaselineError::Empty)));
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

    const RUN: &str = r#"{
        "schema_version": 1, "scenario": {"name": "router-2000"}, "passed": true, "valid": true,
        "validity": {"problems": []},
        "metrics": {"overhead": {"count": 10, "p50_us": 45, "p99_us": 300},
                    "ttft": {"count": 0, "p50_us": 0, "p99_us": 0}},
        "floor": {"valid": true, "metrics": {"e2e": {"count": 10, "p50_us": 150, "p99_us": 400}},
                  "ratios": {"e2e": {"p50": 1.31, "p999": null}}}
    }"#;

    #[test]
    fn parse_reads_the_floor() {
        let r = FloorRun::parse(RUN, Path::new("runs/router-2000-x/summary.json")).unwrap();
        assert_eq!(r.scenario, "router-2000");
        assert_eq!(r.ratio("e2e", "p50"), Some(1.31));
        assert_eq!(r.ratio("e2e", "p999"), None);
        assert_eq!((r.overhead_p50_us, r.overhead_p99_us), (Some(45), Some(300)));
        assert_eq!(r.floor_e2e_p50_us, Some(150));
        assert_eq!(r.source_name(), "router-2000-x");
        assert!(!is_baseline(RUN));
    }

    #[test]
    fn parse_refuses_untrustworthy_runs() {
        let file = Path::new("r/summary.json");
        let no_floor = RUN.replace(r#""floor": {"#, r#""not_floor": {"#);
        assert!(matches!(
            FloorRun::parse(&no_floor, file),
            Err(BaselineError::NoFloor { .. })
        ));
        let invalid = RUN
            .replace(r#""valid": true,"#, r#""valid": false,"#)
            .replace(r#""problems": []"#, r#""problems": ["dispatch p99 12 ms"]"#);
        let e = FloorRun::parse(&invalid, file).unwrap_err().to_string();
        assert!(
            e.starts_with("r/summary.json: the run is not valid (dispatch p99 12 ms)"),
            "{e}"
        );
        let floor_invalid = RUN.replace(r#""floor": {"valid": true"#, r#""floor": {"valid": false"#);
        let e = FloorRun::parse(&floor_invalid, file).unwrap_err().to_string();
        assert!(e.contains("the floor is not valid"), "{e}");
        let negative = RUN.replace("1.31", "-1.0");
        let e = FloorRun::parse(&negative, file).unwrap_err().to_string();
        assert!(e.contains("floor.ratios.e2e.p50"), "{e}");
    }

    #[test]
    fn parse_baseline_checks_the_version_and_the_spreads() {
        let file = Path::new("b.json");
        let e = Baseline::parse(r#"{"baseline_version": 9}"#, file).unwrap_err();
        assert!(matches!(e, BaselineError::Version { found: 9, .. }), "{e}");
        let e = Baseline::parse(r#"{"schema_version": 1}"#, file).unwrap_err();
        assert!(e.to_string().contains("no baseline_version"), "{e}");
        let mut b = baseline_of(&[run_with("a/summary.json", "bench", Some(1.3), Some(2.0))]);
        b.ratios
            .get_mut("e2e")
            .unwrap()
            .insert("p90".to_owned(), spread(1.0, 1.2, 1.1));
        let e = Baseline::parse(&serde_json::to_string(&b).unwrap(), file).unwrap_err();
        assert!(e.to_string().contains("ratios.e2e.p90 is not a spread"), "{e}");
    }
}
