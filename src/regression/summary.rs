//! The one reader of a run's `summary.json`, and its two validated views: a
//! [`RunSummary`] (absolute latencies and rates, to compare two runs) and a
//! [`FloorRun`] (ratios to the run's floor, for baselines).
//!
//! The raw structs read the part of the document either view needs; other
//! fields are ignored. A field only one view needs is optional here, and that
//! view refuses a summary without it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::RegressionError;
use crate::metrics::Metric;
use crate::report::json::{SCHEMA_VERSION, SUMMARY_JSON};

/// Ratios of one run, by metric and then percentile key; `None` where the
/// floor's value is 0.
pub type Ratios = BTreeMap<String, BTreeMap<String, Option<f64>>>;

/// The part of a `summary.json` the views read.
#[derive(Debug, Deserialize)]
struct RawSummary {
    schema_version: u32,
    #[serde(default)]
    scenario: Option<RawScenario>,
    #[serde(default)]
    passed: Option<bool>,
    #[serde(default)]
    valid: Option<bool>,
    #[serde(default)]
    stopped: bool,
    #[serde(default)]
    validity: Option<RawValidity>,
    #[serde(default)]
    duration_s: Option<f64>,
    #[serde(default)]
    requests: Option<RawRequests>,
    #[serde(default)]
    phases: Vec<RawPhase>,
    metrics: BTreeMap<String, RawPercentiles>,
    #[serde(default)]
    floor: Option<RawFloor>,
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
struct RawRequests {
    #[serde(default)]
    sent: Option<u64>,
    #[serde(default)]
    errors: Option<u64>,
    #[serde(default)]
    error_rate: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct RawPhase {
    name: String,
    #[serde(default)]
    achieved_rate: Option<f64>,
    #[serde(default)]
    duration_s: Option<f64>,
    /// A warm-up phase: no count of the document has its requests.
    #[serde(default)]
    warm_up: bool,
}

#[derive(Debug, Deserialize)]
struct RawPercentiles {
    count: u64,
    p50_us: u64,
    #[serde(default)]
    p90_us: Option<u64>,
    p99_us: u64,
    #[serde(default)]
    p999_us: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct RawFloor {
    #[serde(default)]
    valid: Option<bool>,
    #[serde(default)]
    validity: Option<RawValidity>,
    #[serde(default)]
    metrics: Option<BTreeMap<String, RawPercentiles>>,
    #[serde(default)]
    ratios: Option<Ratios>,
}

impl RawSummary {
    /// Parses a document of the supported schema version.
    fn parse(text: &str, file: &Path) -> Result<RawSummary, RegressionError> {
        let raw: RawSummary = serde_json::from_str(text).map_err(|source| RegressionError::ParseSummary {
            file: file.to_owned(),
            source,
        })?;
        if raw.schema_version != SCHEMA_VERSION {
            return Err(RegressionError::SummaryVersion {
                file: file.to_owned(),
                found: raw.schema_version,
            });
        }
        Ok(raw)
    }
}

/// A field a view needs, or the error naming it.
fn needed<T>(value: Option<T>, file: &Path, field: &str) -> Result<T, RegressionError> {
    value.ok_or_else(|| RegressionError::Missing {
        file: file.to_owned(),
        field: field.to_owned(),
    })
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
    /// The percentiles by their names in a comparison.
    pub fn quantiles(self) -> [(&'static str, u64); 4] {
        [
            ("p50", self.p50),
            ("p90", self.p90),
            ("p99", self.p99),
            ("p99.9", self.p999),
        ]
    }
}

/// What a comparison of two runs needs of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// Metrics with at least one sample, by name.
    pub latencies: BTreeMap<String, LatencyUs>,
    /// Requests sent per second of the run, its warm-up phases left out.
    pub request_rate: Option<f64>,
    /// Errors over sent requests, 0 to 1.
    pub error_rate: Option<f64>,
    /// Each measured (not warm-up) phase's name and achieved rate
    /// (requests per second), in order.
    pub phase_rates: Vec<(String, Option<f64>)>,
}

impl RunSummary {
    /// Parses a `summary.json` document; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<RunSummary, RegressionError> {
        let raw = RawSummary::parse(text, file)?;
        let invalid = |problem: String| RegressionError::Invalid {
            file: file.to_owned(),
            problem,
        };
        let sent = match &raw.requests {
            Some(r) => Some(needed(r.sent, file, "requests.sent")?),
            None => None,
        };
        let error_rate = raw.requests.as_ref().and_then(|r| r.error_rate);
        if let Some(share) = error_rate
            && !(0.0..=1.0).contains(&share)
        {
            return Err(invalid(format!("requests.error_rate {share} is not between 0 and 1")));
        }
        // `requests.sent` leaves warm-up phases out: so does its time.
        let warm_up_s: f64 = (raw.phases.iter())
            .filter(|p| p.warm_up)
            .filter_map(|p| p.duration_s)
            .sum();
        let request_rate = match (sent, raw.duration_s.map(|d| d - warm_up_s)) {
            (Some(sent), Some(d)) if d.is_finite() && d > 0.0 => Some(sent as f64 / d),
            _ => None,
        };
        let mut phase_rates = Vec::with_capacity(raw.phases.len());
        for p in raw.phases.into_iter().filter(|p| !p.warm_up) {
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
        let mut latencies = BTreeMap::new();
        for (name, p) in raw.metrics {
            let latency = LatencyUs {
                p50: p.p50_us,
                p90: needed(p.p90_us, file, &format!("metrics.{name}.p90_us"))?,
                p99: p.p99_us,
                p999: needed(p.p999_us, file, &format!("metrics.{name}.p999_us"))?,
            };
            if p.count > 0 {
                latencies.insert(name, latency);
            }
        }
        Ok(RunSummary {
            latencies,
            request_rate,
            error_rate,
            phase_rates,
        })
    }
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
    pub fn parse(text: &str, file: &Path) -> Result<FloorRun, RegressionError> {
        let raw = RawSummary::parse(text, file)?;
        let scenario = needed(raw.scenario, file, "scenario")?.name;
        let passed = needed(raw.passed, file, "passed")?;
        let valid = needed(raw.valid, file, "valid")?;
        let errors = match raw.requests {
            Some(r) => needed(r.errors, file, "requests.errors")?,
            None => 0,
        };
        let invalid = |problem: String| RegressionError::Invalid {
            file: file.to_owned(),
            problem,
        };
        if raw.stopped {
            return Err(invalid("the run was stopped before its end".to_owned()));
        }
        if !valid {
            return Err(invalid(format!(
                "the run is not valid ({}): the load generator fell behind, so its ratios cannot be trusted",
                problems(raw.validity.as_ref())
            )));
        }
        let Some(floor) = raw.floor else {
            return Err(RegressionError::NoFloor { file: file.to_owned() });
        };
        let floor_metrics = needed(floor.metrics, file, "floor.metrics")?;
        let ratios = needed(floor.ratios, file, "floor.ratios")?;
        if !needed(floor.valid, file, "floor.valid")? {
            return Err(invalid(format!(
                "the floor is not valid ({}): the load generator fell behind, so its ratios cannot be trusted",
                problems(floor.validity.as_ref())
            )));
        }
        for (metric, by_percentile) in &ratios {
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
            scenario,
            passed,
            errors,
            ratios,
            overhead_p50_us: overhead.map(|(p50, _)| p50),
            overhead_p99_us: overhead.map(|(_, p99)| p99),
            floor_e2e_p50_us: sampled(&floor_metrics, Metric::E2e.name()).map(|(p50, _)| p50),
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
    pub fn ratio(&self, metric: &str, percentile: &str) -> Option<f64> {
        self.ratios.get(metric)?.get(percentile).copied().flatten()
    }
}

fn problems(validity: Option<&RawValidity>) -> String {
    match validity {
        Some(v) if !v.problems.is_empty() => v.problems.join("; "),
        _ => "no problem listed".to_owned(),
    }
}

/// The `summary.json` files that paths name: files as they are, run folders'
/// own summary, and for other folders the summaries of the folders directly
/// under them (in name order). Each file once.
pub fn summary_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, RegressionError> {
    let mut files: Vec<PathBuf> = Vec::new();
    for path in paths {
        let mut found = if !path.is_dir() {
            // A missing file is reported when it is read.
            vec![path.clone()]
        } else if path.join(SUMMARY_JSON).is_file() {
            vec![path.join(SUMMARY_JSON)]
        } else {
            let entries = std::fs::read_dir(path).map_err(|source| RegressionError::List {
                path: path.clone(),
                source,
            })?;
            let mut inner: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path().join(SUMMARY_JSON))
                .filter(|f| f.is_file())
                .collect();
            if inner.is_empty() {
                return Err(RegressionError::NoRuns { path: path.clone() });
            }
            inner.sort();
            inner
        };
        found.retain(|f| !files.contains(f));
        files.append(&mut found);
    }
    Ok(files)
}

fn read(file: &Path) -> Result<String, RegressionError> {
    std::fs::read_to_string(file).map_err(|source| RegressionError::Read {
        file: file.to_owned(),
        source,
    })
}

/// Reads a `summary.json` file, or the one in a run folder, for a comparison
/// of two runs.
pub fn load_summary(path: &Path) -> Result<RunSummary, RegressionError> {
    let file = if path.is_dir() {
        path.join(SUMMARY_JSON)
    } else {
        path.to_owned()
    };
    RunSummary::parse(&read(&file)?, &file)
}

/// Reads a run's `summary.json` for its floor ratios.
pub fn load_run(file: &Path) -> Result<FloorRun, RegressionError> {
    FloorRun::parse(&read(file)?, file)
}

/// Reads every run the paths name; all the problems, or the runs.
pub fn load_runs(paths: &[PathBuf]) -> Result<Vec<FloorRun>, Vec<RegressionError>> {
    let files = summary_files(paths).map_err(|e| vec![e])?;
    let (runs, errors): (Vec<_>, Vec<_>) = files.iter().map(|f| load_run(f)).partition(Result::is_ok);
    if errors.is_empty() {
        Ok(runs.into_iter().filter_map(Result::ok).collect())
    } else {
        Err(errors.into_iter().filter_map(Result::err).collect())
    }
}

/// A run of `scenario` whose only ratios are `e2e` at p50 and p99, for tests.
#[cfg(test)]
pub(crate) fn run_with(file: &str, scenario: &str, p50: Option<f64>, p99: Option<f64>) -> FloorRun {
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

#[cfg(test)]
mod tests {
    // A test reports failure by panicking.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::regression::baseline::is_baseline;

    fn latency(p50: u64, p90: u64, p99: u64, p999: u64) -> LatencyUs {
        LatencyUs { p50, p90, p99, p999 }
    }

    #[test]
    fn parse_reads_the_summary_shape() {
        let text = r#"{
            "schema_version": 1, "duration_s": 10.0, "passed": true,
            "requests": {"total": 1000, "sent": 1000, "errors": 5, "error_rate": 0.005},
            "phases": [{"name": "steady", "achieved_rate": 99.5}],
            "metrics": {
                "e2e": {"count": 1000, "min_us": 1, "mean_us": 2.0, "p50_us": 10,
                        "p90_us": 20, "p99_us": 30, "p999_us": 40, "max_us": 50},
                "ttft": {"count": 0, "min_us": 0, "mean_us": 0.0, "p50_us": 0,
                         "p90_us": 0, "p99_us": 0, "p999_us": 0, "max_us": 0}
            }
        }"#;
        let s = RunSummary::parse(text, Path::new("s.json")).unwrap();
        assert_eq!(s.latencies.len(), 1, "metrics without samples are dropped");
        assert_eq!(s.latencies["e2e"], latency(10, 20, 30, 40));
        assert_eq!(s.request_rate, Some(100.0));
        assert_eq!(s.error_rate, Some(0.005));
        assert_eq!(s.phase_rates, [("steady".to_owned(), Some(99.5))]);
    }

    /// A warm-up phase's requests are in no count: its time is left out of
    /// the request rate, and it has no phase rate to compare.
    #[test]
    fn warm_up_phases_are_left_out_of_the_rates() {
        let text = r#"{
            "schema_version": 1, "duration_s": 12.0,
            "requests": {"total": 1000, "sent": 1000, "errors": 0, "error_rate": 0.0},
            "phases": [{"name": "warm", "warm_up": true, "duration_s": 2.0, "achieved_rate": 5.0},
                       {"name": "steady", "warm_up": false, "duration_s": 10.0, "achieved_rate": 100.0}],
            "metrics": {}
        }"#;
        let s = RunSummary::parse(text, Path::new("s.json")).unwrap();
        assert_eq!(s.request_rate, Some(100.0));
        assert_eq!(s.phase_rates, [("steady".to_owned(), Some(100.0))]);
    }

    #[test]
    fn parse_errors_name_the_file() {
        let e = RunSummary::parse("{", Path::new("base/summary.json")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("base/summary.json: not a gauntlet summary.json"),
            "{e}"
        );
        let e = RunSummary::parse(r#"{"schema_version": 2, "metrics": {}}"#, Path::new("x.json")).unwrap_err();
        assert!(matches!(e, RegressionError::SummaryVersion { found: 2, .. }), "{e}");
        let e = RunSummary::parse(
            r#"{"schema_version": 1, "metrics": {}, "requests": {"sent": 1, "error_rate": 3.0}}"#,
            Path::new("x.json"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("error_rate"), "{e}");
    }

    #[test]
    fn each_view_names_the_field_it_misses() {
        let e = RunSummary::parse(
            r#"{"schema_version": 1, "metrics": {"e2e": {"count": 0, "p50_us": 0, "p99_us": 0}}}"#,
            Path::new("x.json"),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.json: not a gauntlet summary.json: missing field `metrics.e2e.p90_us`"
        );
        let e = FloorRun::parse(r#"{"schema_version": 1, "metrics": {}}"#, Path::new("y.json")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "y.json: not a gauntlet summary.json: missing field `scenario`"
        );
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
            Err(RegressionError::NoFloor { .. })
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
}
