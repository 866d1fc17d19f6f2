//! Regression baselines: the document `gauntlet baseline` makes of several
//! runs of one bench scenario (the spread of each ratio to the floor, and
//! machine-dependent times for information), read back and written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::RegressionError;
use super::summary::FloorRun;

/// The version of the baseline document's shape (`baseline_version`).
pub const BASELINE_VERSION: u32 = 1;
/// Fewer runs than this, on either side, draw a warning: one run is noisy.
pub const RECOMMENDED_RUNS: usize = 3;
/// The percentiles a ratio is kept for, by their key in `summary.json`.
pub const PERCENTILES: [&str; 4] = ["p50", "p90", "p99", "p999"];
/// Decimal places a baseline keeps of a ratio: far below any run-to-run noise.
const RATIO_DECIMALS: i32 = 4;
const MACHINE_NOTE: &str = "medians of absolute times on the machine that made this baseline: \
                            machine-dependent, for information, never compared";

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
    pub fn build(runs: &[FloorRun], created_at: String) -> Result<Baseline, RegressionError> {
        let first = runs.first().ok_or(RegressionError::Empty)?;
        let failed: Vec<String> = runs
            .iter()
            .filter(|r| r.errors > 0)
            .map(|r| r.file.display().to_string())
            .collect();
        if !failed.is_empty() {
            return Err(RegressionError::Failed {
                files: failed.join(", "),
            });
        }
        if runs.iter().any(|r| r.scenario != first.scenario) {
            return Err(RegressionError::MixedScenarios {
                listing: by_scenario(runs),
            });
        }
        Ok(Baseline {
            baseline_version: BASELINE_VERSION,
            scenario: first.scenario.clone(),
            gauntlet_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at,
            runs: runs.len(),
            sources: runs.iter().map(FloorRun::source_name).collect(),
            ratios: spreads(runs),
            machine_dependent: MachineDependent::median_of(runs),
        })
    }

    /// Parses a baseline document; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Baseline, RegressionError> {
        let parse_error = |source| RegressionError::ParseBaseline {
            file: file.to_owned(),
            source,
        };
        let probe: Probe = serde_json::from_str(text).map_err(parse_error)?;
        match probe.baseline_version {
            None => {
                return Err(RegressionError::Invalid {
                    file: file.to_owned(),
                    problem: "no baseline_version: not a baseline made by `gauntlet baseline`".to_owned(),
                });
            }
            Some(found) if found != BASELINE_VERSION => {
                return Err(RegressionError::BaselineVersion {
                    file: file.to_owned(),
                    found,
                });
            }
            Some(_) => {}
        }
        let baseline: Baseline = serde_json::from_str(text).map_err(parse_error)?;
        let invalid = |problem: String| RegressionError::Invalid {
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

    /// Writes the baseline as pretty JSON to `file`, making its folder.
    pub fn write(&self, file: &Path) -> Result<(), RegressionError> {
        let mut json = serde_json::to_string_pretty(self).map_err(|source| RegressionError::Serialize { source })?;
        json.push('\n');
        let written = match file.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) => std::fs::create_dir_all(dir).and_then(|()| std::fs::write(file, &json)),
            None => std::fs::write(file, &json),
        };
        written.map_err(|source| RegressionError::Write {
            file: file.to_owned(),
            source,
        })
    }
}

/// The files of `runs` by scenario: `one: a, b; two: c`.
fn by_scenario(runs: &[FloorRun]) -> String {
    let mut by_scenario: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in runs {
        by_scenario
            .entry(&r.scenario)
            .or_default()
            .push(r.file.display().to_string());
    }
    by_scenario
        .iter()
        .map(|(scenario, files)| format!("{scenario}: {}", files.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The spread, rounded, of every ratio some run has, over the runs that have it.
fn spreads(runs: &[FloorRun]) -> BTreeMap<String, BTreeMap<String, Spread>> {
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
    ratios
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

/// Reads a baseline file.
pub fn load_baseline(file: &Path) -> Result<Baseline, RegressionError> {
    let text = std::fs::read_to_string(file).map_err(|source| RegressionError::Read {
        file: file.to_owned(),
        source,
    })?;
    Baseline::parse(&text, file)
}

#[cfg(test)]
mod tests {
    // A test reports failure by panicking.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::regression::summary::run_with;

    fn spread(median: f64, min: f64, max: f64) -> Spread {
        Spread { median, min, max }
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
        assert!(matches!(
            Baseline::build(&[], String::new()),
            Err(RegressionError::Empty)
        ));
    }

    #[test]
    fn parse_baseline_checks_the_version_and_the_spreads() {
        let file = Path::new("b.json");
        let e = Baseline::parse(r#"{"baseline_version": 9}"#, file).unwrap_err();
        assert!(matches!(e, RegressionError::BaselineVersion { found: 9, .. }), "{e}");
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
