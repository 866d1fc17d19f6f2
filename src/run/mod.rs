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
//! A run cut short (the stop signal) still reports what it saw: its checks
//! are skipped, saying what the stop cut short ([`Cut`]), its reports are
//! marked stopped, and its exit class is [`Exit::Stopped`].

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
use crate::checks::stopped::Cut;
use crate::checks::sweep::SweepOutcome;
use crate::checks::{self, CheckResult};
use crate::report::{self, FloorRun, ReportError, RunReport};
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
    /// The exit class: success, a check failed, the run itself failed, or
    /// it was stopped.
    pub exit: Exit,
    /// The run's report folder, once it was made.
    pub dir: Option<PathBuf>,
    /// Every check's verdict (none when the run failed before judging).
    pub results: Vec<CheckResult>,
    /// Why the run failed, when it did (exit class 3).
    pub error: Option<RunError>,
    /// What a stop left undone, when one cut the run short (exit class
    /// [`Exit::Stopped`]; its checks are skipped).
    pub cut: Option<Cut>,
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

    /// Runs the scenario to its end, or until `stop` turns true: then it
    /// judges and reports what it saw, its checks skipped ([`Cut`]), and
    /// its exit class is [`Exit::Stopped`].
    pub async fn execute(&self, stop: watch::Receiver<bool>) -> Outcome {
        let mut dir = None;
        match self.stages(stop, &mut dir).await {
            Ok(Judged { results, cut }) => Outcome {
                exit: if cut.is_some() {
                    Exit::Stopped
                } else if checks::run_passed(&results, self.options.strict) {
                    Exit::Success
                } else {
                    Exit::CheckFailed
                },
                dir,
                results,
                error: None,
                cut,
            },
            Err(e) => Outcome {
                exit: e.exit(),
                dir,
                results: Vec::new(),
                error: Some(e),
                cut: None,
            },
        }
    }

    /// plan → start → drive → collect → judge → report.
    async fn stages(&self, stop: watch::Receiver<bool>, dir_out: &mut Option<PathBuf>) -> Result<Judged, RunError> {
        let scenario = self.scenario;
        let plan = evidence::Plan::of(scenario);
        let dir = make_run_dir(scenario, self.options.out.as_deref())?;
        *dir_out = Some(dir.clone());
        let console = Console::default();
        let judged = match Started::start(scenario, self.options.defects, &dir, stop.clone()).await? {
            // Stopped while the target started: nothing was sent.
            None => {
                let driven = Driven::empty(scenario);
                let sweep = (scenario.sweep.as_ref()).map(|plan| SweepOutcome {
                    min_knee: plan.min_knee,
                    ..SweepOutcome::default()
                });
                Files::create(&dir).finish()?;
                let reported = Reported {
                    driven: &driven,
                    sweep: sweep.as_ref(),
                    floor: None,
                    index: None,
                };
                self.report(&dir, &console, &reported)
            }
            Some(started) => {
                console::starting(&console, scenario, &started);
                let judged = self.measure(&plan, &started, &dir, stop, &console).await;
                started.stop().await;
                judged
            }
        };
        // The console failed (a full disk, a closed pipe) once the rest is reported.
        let judged = judged?;
        console.finish().map_err(RunError::Console)?;
        Ok(judged)
    }

    /// The stages between start and stop, on the started mocks and target.
    async fn measure(
        &self,
        plan: &evidence::Plan,
        started: &Started,
        dir: &Path,
        stop: watch::Receiver<bool>,
        console: &Console,
    ) -> Result<Judged, RunError> {
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
        let (mut driven, sweep) = driven?;
        if let Some(floor) = floor.as_ref().filter(|f| f.stats.stopped) {
            driven.cut = Some(Cut::in_floor(scenario, &floor.stats));
        }
        // A run cut short collects nothing more: its checks are skipped.
        let kept = driven.retained.as_ref().filter(|_| driven.cut.is_none());
        let accounts = match kept {
            Some(kept) => plan.accounts_after(&probe, before, &kept.requests).await,
            None => before,
        };
        let index = kept.map(|kept| evidence::index(scenario, kept, &accounts, started.router_started_us));
        let reported = Reported {
            driven: &driven,
            sweep: sweep.as_ref(),
            floor: floor.as_ref(),
            index: index.as_ref(),
        };
        let judged = self.report(dir, console, &reported)?;
        written?;
        Ok(judged)
    }

    /// The judge and report stages: every check (skipped, when a stop cut
    /// the run short), the report files, the console's table.
    fn report(&self, dir: &Path, console: &Console, reported: &Reported<'_>) -> Result<Judged, RunError> {
        let scenario = self.scenario;
        let Driven {
            collector, stats, cut, ..
        } = reported.driven;
        let summary = collector.summary();
        let results = match reported.sweep {
            // A sweep's verdict is its knee; each step's checks are in its row.
            Some(sweep) => sweep.results(),
            None => checks::evaluate(scenario, &summary, stats, reported.index),
        };
        let results = match cut {
            Some(cut) => cut.skip(results),
            None => results,
        };
        let mut run = RunReport::new(scenario, &summary, &results, stats, collector);
        run.floor = reported.floor;
        run.sweep = reported.sweep;
        run.cut = cut.as_ref();
        run.strict = self.options.strict;
        report::write_reports(dir, &run)?;
        // A floor the stop cut short has no router run to compare with.
        if let Some(floor) = reported.floor.filter(|f| !f.stats.stopped) {
            console::floor(console, floor, &summary);
        }
        console::checks(console, &results, dir);
        Ok(Judged {
            results,
            cut: cut.clone(),
        })
    }
}

/// What the judge and report stages work from.
struct Reported<'a> {
    driven: &'a Driven,
    sweep: Option<&'a SweepOutcome>,
    floor: Option<&'a FloorRun>,
    index: Option<&'a checks::conformance::Index<'a>>,
}

/// A run's verdicts, and what a stop cut short of it.
struct Judged {
    results: Vec<CheckResult>,
    cut: Option<Cut>,
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
