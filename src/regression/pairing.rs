//! What BASE is (a run, one baseline, or a folder of baselines), and runs
//! paired with the baseline of their scenario.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::RegressionError;
use super::baseline::{self, Baseline, load_baseline};
use super::summary::FloorRun;
use crate::report::json::SUMMARY_JSON;

/// What BASE is, which decides the mode.
#[derive(Debug)]
pub enum Base {
    /// A `summary.json`, or a run folder holding one.
    Run,
    Baselines(Baselines),
}

/// The baselines runs are judged against.
#[derive(Debug)]
pub enum Baselines {
    /// One baseline file, for runs of its scenario only.
    One { file: PathBuf, baseline: Box<Baseline> },
    /// A folder of baselines, each named `<scenario>.json`.
    Folder(PathBuf),
}

impl Base {
    /// Tells a baseline (a document with `baseline_version`) from a summary;
    /// a folder without a `summary.json` is a folder of baselines.
    pub fn of(path: &Path) -> Result<Base, RegressionError> {
        if path.is_dir() {
            return Ok(if path.join(SUMMARY_JSON).is_file() {
                Base::Run
            } else {
                Base::Baselines(Baselines::Folder(path.to_owned()))
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| RegressionError::Read {
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

/// Runs of one scenario and the baseline they are judged against.
#[derive(Debug)]
pub struct Pairing {
    /// The baseline's file.
    pub file: PathBuf,
    pub baseline: Baseline,
    pub runs: Vec<FloorRun>,
}

/// Runs of a scenario a folder of baselines has no baseline for.
#[derive(Debug, Clone, PartialEq)]
pub struct Unmatched {
    pub scenario: String,
    /// How many runs of it.
    pub runs: usize,
    /// The baseline it would have had.
    pub expected: PathBuf,
}

/// Every scenario's runs, paired with their baseline or left unmatched, in
/// scenario order.
#[derive(Debug)]
pub struct Pairings {
    pub paired: Vec<Pairing>,
    pub unmatched: Vec<Unmatched>,
}

/// Where the runs of one scenario found their baseline.
enum Lookup {
    Found(PathBuf, Box<Baseline>),
    /// A folder of baselines without one for the scenario.
    Missing(PathBuf),
}

impl Baselines {
    /// The baseline of `scenario`, whose `runs` are given.
    fn lookup(&self, scenario: &str, runs: &[FloorRun]) -> Result<Lookup, RegressionError> {
        match self {
            Baselines::One { file, baseline } if baseline.scenario == scenario => {
                Ok(Lookup::Found(file.clone(), baseline.clone()))
            }
            Baselines::One { file, baseline } => {
                let files: Vec<String> = runs.iter().map(|r| r.file.display().to_string()).collect();
                Err(RegressionError::OtherScenario {
                    files: files.join(", "),
                    scenario: scenario.to_owned(),
                    file: file.clone(),
                    found: baseline.scenario.clone(),
                })
            }
            Baselines::Folder(dir) => match baseline_file(dir, scenario) {
                Some(file) if file.is_file() => {
                    let b = load_baseline(&file)?;
                    if b.scenario != scenario {
                        return Err(RegressionError::Misnamed {
                            file,
                            found: b.scenario,
                            scenario: scenario.to_owned(),
                        });
                    }
                    Ok(Lookup::Found(file, Box::new(b)))
                }
                _ => Ok(Lookup::Missing(dir.join(format!("{scenario}.json")))),
            },
        }
    }
}

/// The baseline file of a scenario in a folder of baselines; `None` for a
/// name that is not a plain file name.
fn baseline_file(dir: &Path, scenario: &str) -> Option<PathBuf> {
    let plain = !scenario.is_empty() && !scenario.starts_with('.') && !scenario.contains(['/', '\\']);
    plain.then(|| dir.join(format!("{scenario}.json")))
}

/// Pairs the runs of each scenario with its baseline; a scenario with a
/// baseline needs `min_runs` runs. All the problems, or the pairings.
pub fn pair(baselines: &Baselines, runs: Vec<FloorRun>, min_runs: usize) -> Result<Pairings, Vec<RegressionError>> {
    let mut by_scenario: BTreeMap<String, Vec<FloorRun>> = BTreeMap::new();
    for run in runs {
        by_scenario.entry(run.scenario.clone()).or_default().push(run);
    }
    let mut pairings = Pairings {
        paired: Vec::new(),
        unmatched: Vec::new(),
    };
    let mut errors = Vec::new();
    for (scenario, runs) in by_scenario {
        match baselines.lookup(&scenario, &runs) {
            Err(e) => errors.push(e),
            Ok(Lookup::Missing(expected)) => pairings.unmatched.push(Unmatched {
                scenario,
                runs: runs.len(),
                expected,
            }),
            Ok(Lookup::Found(..)) if runs.len() < min_runs => errors.push(RegressionError::TooFewRuns {
                scenario,
                runs: runs.len(),
                min_runs,
            }),
            Ok(Lookup::Found(file, baseline)) => pairings.paired.push(Pairing {
                file,
                baseline: *baseline,
                runs,
            }),
        }
    }
    if errors.is_empty() { Ok(pairings) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    // A test reports failure by panicking.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::regression::summary::run_with;

    fn one(scenario: &str) -> Baselines {
        let runs = [run_with("a/summary.json", scenario, Some(1.3), Some(2.0))];
        Baselines::One {
            file: PathBuf::from("b.json"),
            baseline: Box::new(Baseline::build(&runs, String::new()).unwrap()),
        }
    }

    #[test]
    fn one_baseline_pairs_runs_of_its_scenario_only() {
        let runs = vec![
            run_with("x/summary.json", "bench", Some(1.3), None),
            run_with("y/summary.json", "bench", Some(1.3), None),
        ];
        let p = pair(&one("bench"), runs.clone(), 2).unwrap();
        assert_eq!(p.paired.len(), 1);
        assert_eq!(p.paired[0].runs, runs);
        let e = pair(&one("bench"), runs.clone(), 3).unwrap_err();
        assert_eq!(e[0].to_string(), "bench: 2 CURRENT run(s), fewer than --min-runs 3");
        let e = pair(&one("other"), runs, 1).unwrap_err();
        assert_eq!(
            e[0].to_string(),
            "x/summary.json, y/summary.json: runs of scenario bench, but b.json is a baseline of other"
        );
    }

    #[test]
    fn a_folder_without_the_scenarios_baseline_leaves_its_runs_unmatched() {
        let dir = std::env::temp_dir().join(format!("gauntlet-pairing-{}", std::process::id()));
        let runs = vec![run_with("x/summary.json", "../up", Some(1.3), None)];
        let p = pair(&Baselines::Folder(dir.clone()), runs, 1).unwrap();
        assert!(p.paired.is_empty());
        assert_eq!(
            p.unmatched,
            [Unmatched {
                scenario: "../up".to_owned(),
                runs: 1,
                expected: dir.join("../up.json"),
            }]
        );
    }
}
