//! One run of one scenario, as a library: a test or another program calls
//! [`Run::execute`] in-process, the `gauntlet run` command only loops over
//! files. The stages, in order:
//!
//! 1. **plan**: the report folder, and what the checks will need to read;
//! 2. **start** ([`start`]): the mocks, then the target;
//! 3. **drive** ([`drive`]): the floor (if any), the fault timeline and the
//!    load (phases or a capacity sweep), records and journals streamed to
//!    `requests.csv` and `attempts.csv` as they come;
//! 4. **collect** ([`evidence`]): the router's accounts after the load, and
//!    what the conformance checks judge;
//! 5. **judge**: every check against the metrics and the evidence;
//! 6. **report**: the report files and the console summary.
//!
//! A run cut short (the stop signal) still judges and reports what it saw.

mod console;
mod drive;
mod evidence;
mod progress;
mod start;
mod sweep;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;

use crate::Exit;
use crate::checks::{self, CheckResult};
use crate::report::{self, ReportError, RunReport};
use crate::scenario::Scenario;
use crate::target::{Defects, TargetError};
use console::Console;
use drive::{Driven, Files, Pass};
use start::Started;

/// How long a request may take before it is recorded as a timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What the command line may change about how a scenario runs.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Deliberate defects of the built-in router (proving checks can fail).
    pub defects: Defects,
    /// The folder run folders go under, instead of the scenario's `[report] dir`.
    pub out: Option<PathBuf>,
    /// A skipped check fails the run.
    pub strict: bool,
}

/// One run of one scenario.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    scenario: &'a Scenario,
    options: RunOptions,
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// The exit class: success, a check failed, or the run itself failed.
    pub exit: Exit,
    /// The run's report folder, once it was made.
    pub dir: Option<PathBuf>,
    /// Every check's verdict (none when the run failed before judging).
    pub results: Vec<CheckResult>,
    /// Why the run failed, when it did (exit class 3).
    pub error: Option<RunError>,
}

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start the mocks: {0}")]
    StartMocks(String),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("cannot create {}: {source}", dir.display())]
    ReportDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the floor at mock `{provider}` is unusable: {why}")]
    Floor { provider: String, why: String },
    #[error("the record writer failed: {0}")]
    Sink(String),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("cannot write to standard output: {0}")]
    Console(#[source] std::io::Error),
}

impl RunError {
    /// The exit class of a run that failed this way: the scenario was
    /// validated, so it is the run's, never a usage error.
    pub fn exit(&self) -> Exit {
        Exit::RunFailed
    }
}

impl<'a> Run<'a> {
    pub fn new(scenario: &'a Scenario, options: RunOptions) -> Self {
        Run { scenario, options }
    }

    /// Runs the scenario to its end, or until `stop` turns true.
    pub async fn execute(&self, stop: watch::Receiver<bool>) -> Outcome {
        let mut dir = None;
        match self.stages(stop, &mut dir).await {
            Ok(results) => Outcome {
                exit: if checks::run_passed(&results, self.options.strict) {
                    Exit::Success
                } else {
                    Exit::CheckFailed
                },
                dir,
                results,
                error: None,
            },
            Err(e) => Outcome {
                exit: e.exit(),
                dir,
                results: Vec::new(),
                error: Some(e),
            },
        }
    }

    /// plan → start → drive → collect → judge → report.
    async fn stages(
        &self,
        stop: watch::Receiver<bool>,
        dir_out: &mut Option<PathBuf>,
    ) -> Result<Vec<CheckResult>, RunError> {
        let scenario = self.scenario;
        let plan = evidence::Plan::of(scenario);
        let dir = make_run_dir(scenario, self.options.out.as_deref())?;
        *dir_out = Some(dir.clone());
        let console = Console::default();
        let started = Started::start(scenario, self.options.defects, &dir).await?;
        console::starting(&console, scenario, &started);
        let result = self.measure(&plan, &started, &dir, stop, &console).await;
        started.stop().await;
        // The console failed (a full disk, a closed pipe) once the rest is reported.
        let results = result?;
        console.finish().map_err(RunError::Console)?;
        Ok(results)
    }

    /// The stages between start and stop, on the started mocks and target.
    async fn measure(
        &self,
        plan: &evidence::Plan,
        started: &Started,
        dir: &Path,
        stop: watch::Receiver<bool>,
        console: &Console,
    ) -> Result<Vec<CheckResult>, RunError> {
        let scenario = self.scenario;
        let probe = started.probe(scenario);
        let before = plan.accounts_before(&probe).await;
        let pass = Pass::new(started, stop, console.clone());
        let floor = pass.floor(scenario, started).await?;
        let mut files = Files::create(dir);
        let timeline = started.play_faults(scenario);
        let driven = pass.main(scenario, &started.target.base_url, &mut files).await;
        timeline.abort();
        // A file that could not be written fails the run, once the rest is reported.
        let written = files.finish();
        let (driven, sweep) = driven?;
        let accounts = match &driven.retained {
            Some(kept) => plan.accounts_after(&probe, before, &kept.requests).await,
            None => before,
        };
        let index = (driven.retained.as_ref())
            .map(|kept| evidence::index(scenario, kept, &accounts, started.router_started_us));
        let Driven { collector, stats, .. } = &driven;
        let summary = collector.summary();
        let results = match &sweep {
            // A sweep's verdict is its knee; each step's checks are in its row.
            Some(sweep) => sweep.results(),
            None => checks::evaluate(scenario, &summary, stats, index.as_ref()),
        };
        let mut run = RunReport::new(scenario, &summary, &results, stats, collector);
        run.floor = floor.as_ref();
        run.sweep = sweep.as_ref();
        run.strict = self.options.strict;
        report::write_reports(dir, &run)?;
        if let Some(floor) = &floor {
            console::floor(console, floor, &summary);
        }
        console::checks(console, &results, dir);
        written?;
        Ok(results)
    }
}

/// The report folder of a run, created: `<dir>/<scenario>-<UTC time>`, with
/// `-2`, `-3`... appended when a run of the same second already has that name.
fn make_run_dir(scenario: &Scenario, out: Option<&Path>) -> Result<PathBuf, RunError> {
    let dir = run_dir(scenario, out);
    std::fs::create_dir_all(&dir).map_err(|source| RunError::ReportDir {
        dir: dir.clone(),
        source,
    })?;
    Ok(dir)
}

/// The first free name of `<dir>/<scenario>-<UTC time>[-N]`.
fn run_dir(scenario: &Scenario, out: Option<&Path>) -> PathBuf {
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    let parent = out.map_or_else(|| scenario.report_dir.clone(), Path::to_path_buf);
    let first = parent.join(format!("{}-{stamp}", scenario.meta.name));
    std::iter::once(first.clone())
        .chain((2..1000).map(|n| parent.join(format!("{}-{stamp}-{n}", scenario.meta.name))))
        .find(|dir| !dir.exists())
        .unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_in_the_same_second_gets_its_own_folder() {
        let out = std::env::temp_dir().join(format!("gauntlet-run-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let scenario = crate::metrics::fixtures::scenario("");
        let first = run_dir(&scenario, Some(&out));
        std::fs::create_dir_all(&first).unwrap();
        let second = run_dir(&scenario, Some(&out));
        // Unless the clock turned a second in between.
        if second.file_name().unwrap().to_str().unwrap().len() > first.file_name().unwrap().to_str().unwrap().len() {
            assert_eq!(second.to_str().unwrap(), format!("{}-2", first.display()));
        }
        assert!(!second.exists());
        let _ = std::fs::remove_dir_all(&out);
    }
}
