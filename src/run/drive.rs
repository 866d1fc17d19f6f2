//! The drive stage: the load engine run against a URL, its records and the
//! mock journals streamed through one sink (counted into the metrics,
//! written to `requests.csv` and `attempts.csv`, joined for the router's
//! overhead) so memory does not grow with the run's length; first at the
//! floor when the scenario has one, then at the target, as phases or as a
//! capacity sweep.
//!
//! The sink is where warm-up phases are set aside: their records are
//! written to `requests.csv`, marked, and their journal attempts (found by
//! the phase in the request id) to `attempts.csv`, and neither goes any
//! further — not into the metrics, the overhead join or the evidence the
//! checks judge.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use mock_providers::{Clock, Journal, Record};
use tokio::sync::{mpsc, watch};

use super::console::Console;
use super::evidence::{Retained, keep_everything};
use super::progress::{PROGRESS_EVERY, Tally, Window, show_progress};
use super::start::Started;
use super::{REQUEST_TIMEOUT, RunError};
use crate::checks;
use crate::checks::stopped::Cut;
use crate::checks::sweep::SweepOutcome;
use crate::load::engine::{self, Endpoint, EngineConfig, RunStats, phase_of_request_id};
use crate::load::record::{Outcome, RequestRecord};
use crate::metrics::Collector;
use crate::report::{AttemptsCsv, FloorRun, ReportError, RequestsCsv};
use crate::scenario::Scenario;

/// The phase number the floor's requests start from (`r1000-…`), apart from
/// the router's.
const FLOOR_FIRST_PHASE: u16 = 1000;
/// How often the record sink drains the mock journals.
const DRAIN_EVERY: Duration = Duration::from_millis(250);
/// How long after the last request record the journals are drained a last time.
const FINAL_DRAIN_GRACE: Duration = Duration::from_millis(50);

/// What one engine run of a scenario's phases leaves.
pub struct Driven {
    pub collector: Collector,
    pub stats: RunStats,
    /// `Some` when asked to keep everything.
    pub retained: Option<Retained>,
    /// What a stop cut short of the scenario's load, if one did.
    pub cut: Option<Cut>,
}

impl Driven {
    /// Nothing ran (stopped before it started).
    pub fn empty(scenario: &Scenario) -> Driven {
        Driven {
            collector: Collector::new(scenario),
            stats: RunStats {
                phases: Vec::new(),
                stopped: true,
            },
            retained: None,
            cut: Some(Cut::before_load(scenario)),
        }
    }

    /// Folds a later engine run in (a sweep's next step).
    pub fn absorb(&mut self, later: Driven) {
        self.collector.merge(later.collector);
        self.stats.phases.extend(later.stats.phases);
        self.stats.stopped |= later.stats.stopped;
    }
}

/// A file written as the run goes, with the first error met writing it.
struct Written<T> {
    file: T,
    path: PathBuf,
    error: Option<std::io::Error>,
}

impl<T> Written<T> {
    fn new(created: std::io::Result<T>, path: PathBuf) -> Result<Written<T>, ReportError> {
        match created {
            Ok(file) => Ok(Written {
                file,
                path,
                error: None,
            }),
            Err(e) => Err(ReportError::new(path, e)),
        }
    }

    /// Writes with `write` unless an earlier write failed: the first error
    /// is the one reported.
    fn write(&mut self, write: impl FnOnce(&mut T) -> std::io::Result<()>) {
        if self.error.is_none()
            && let Err(e) = write(&mut self.file)
        {
            self.error = Some(e);
        }
    }

    fn finish(self, finish: impl FnOnce(T) -> std::io::Result<PathBuf>) -> Result<(), ReportError> {
        match self.error {
            Some(e) => Err(ReportError::new(self.path, e)),
            None => finish(self.file)
                .map(|_| ())
                .map_err(|e| ReportError::new(self.path, e)),
        }
    }
}

/// The files written as the run goes (`requests.csv`, `attempts.csv`); the
/// floor writes none.
#[derive(Default)]
pub struct Files {
    requests: Option<Written<RequestsCsv>>,
    attempts: Option<Written<AttemptsCsv>>,
    /// A file that could not be created.
    failed: Option<ReportError>,
}

impl Files {
    /// Creates both files in `dir`.
    pub fn create(dir: &Path) -> Files {
        let mut files = Files::default();
        let requests = Written::new(RequestsCsv::create(dir), dir.join(crate::report::tables::REQUESTS_CSV));
        let attempts = Written::new(
            AttemptsCsv::create(dir),
            dir.join(crate::report::attempts::ATTEMPTS_CSV),
        );
        match requests {
            Ok(w) => files.requests = Some(w),
            Err(e) => files.failed = Some(e),
        }
        match attempts {
            Ok(w) => files.attempts = Some(w),
            Err(e) => files.failed = files.failed.take().or(Some(e)),
        }
        files
    }

    /// Flushes both files; the first file that could not be created or
    /// written, if any.
    pub fn finish(self) -> Result<(), ReportError> {
        let requests = self.requests.map_or(Ok(()), |w| w.finish(RequestsCsv::finish));
        let attempts = self.attempts.map_or(Ok(()), |w| w.finish(AttemptsCsv::finish));
        match self.failed {
            Some(e) => Err(e),
            None => requests.and(attempts),
        }
    }
}

/// What every engine run of one scenario run shares.
pub struct Pass {
    clock: Clock,
    /// (provider name, journal); every journal shares one clock.
    journals: Vec<(String, Journal)>,
    stop: watch::Receiver<bool>,
    pub console: Console,
}

impl Pass {
    pub fn new(started: &Started, stop: watch::Receiver<bool>, console: Console) -> Pass {
        Pass {
            clock: started.clock,
            journals: started.journals.clone(),
            stop,
            console,
        }
    }

    /// Whether the run was told to stop.
    pub fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// The floor: the scenario's phases straight at its `[floor]` mock,
    /// before the router; `None` without a floor.
    pub async fn floor(&self, scenario: &Scenario, started: &Started) -> Result<Option<FloorRun>, RunError> {
        let Some(f) = &scenario.floor else { return Ok(None) };
        let Some(mock) = started.mocks.get(&f.provider) else {
            return Ok(None);
        };
        let url = format!("{}/v1", mock.base_url());
        (self.console).line(&format!("  floor: the same phases straight at {} ({url})", f.provider));
        let floor = Endpoint {
            base_url: url.clone(),
            headers: Vec::new(),
            cost_header: None,
        };
        let out = self
            .drive(scenario, &floor, FLOOR_FIRST_PHASE, &mut Files::default(), false)
            .await?;
        if !out.stats.stopped {
            (self.console).line(&format!("  router: {}", started.target.base_url));
        }
        let summary = out.collector.summary();
        // A floor the stop cut short (its last answers cut off) is reported
        // as stopped, not judged unusable.
        if !out.stats.stopped && summary.sent > 0 && summary.errors == summary.sent {
            // A floor of failures is no floor: the ratios would compare the
            // router with error answers.
            let outcomes: Vec<String> = Outcome::ALL
                .iter()
                .filter(|o| summary.outcome(**o) > 0 && o.is_error())
                .map(|o| format!("{} ×{}", o.name(), summary.outcome(*o)))
                .collect();
            return Err(RunError::Floor {
                provider: f.provider.clone(),
                why: format!("all {} requests failed: {}", summary.sent, outcomes.join(", ")),
            });
        }
        Ok(Some(FloorRun {
            provider: f.provider.clone(),
            url,
            validity: checks::validity(scenario, &summary, &out.stats),
            summary,
            stats: out.stats,
        }))
    }

    /// The load at the target: the scenario's phases, or its sweep.
    pub async fn main(
        &self,
        scenario: &Scenario,
        base_url: &str,
        files: &mut Files,
    ) -> Result<(Driven, Option<SweepOutcome>), RunError> {
        let target = Endpoint {
            base_url: base_url.to_string(),
            headers: scenario.target.headers(),
            cost_header: scenario.target.profile().cost_header().map(str::to_string),
        };
        match &scenario.sweep {
            None if self.stopped() => Ok((Driven::empty(scenario), None)),
            None => {
                let mut out = (self.drive(scenario, &target, 0, files, keep_everything(scenario))).await?;
                out.cut = Cut::in_phases(scenario, &out.stats);
                Ok((out, None))
            }
            Some(plan) => self
                .sweep(scenario, plan, &target, files)
                .await
                .map(|(out, sweep)| (out, Some(sweep))),
        }
    }

    /// Runs `scenario`'s phases against `endpoint`, numbering them from
    /// `first_phase`, every record through one [`Sink`] (keeping them all
    /// when `keep`).
    pub async fn drive(
        &self,
        scenario: &Scenario,
        endpoint: &Endpoint,
        first_phase: u16,
        files: &mut Files,
        keep: bool,
    ) -> Result<Driven, RunError> {
        let (tx, rx) = mpsc::channel::<RequestRecord>(4096);
        let (tally_tx, tally_rx) = watch::channel(Tally::default());
        let sent = Arc::new(AtomicU64::new(0));
        let warm_up = WarmUp::of(scenario, first_phase);
        let sink = Sink {
            collector: Collector::numbered_from(scenario, first_phase),
            retained: keep.then(Retained::default),
            requests: files.requests.take(),
            warm_up: warm_up.clone(),
            drain: Drain {
                journals: self.journals.clone(),
                csv: files.attempts.take(),
                warm_up,
            },
        };
        let sink = tokio::spawn(sink.run(rx, tally_tx));
        // Ends, clearing its line, when the sink drops the tally's sender.
        let progress = tokio::spawn(show_progress(
            tally_rx,
            Arc::clone(&sent),
            scenario.phases.iter().map(|p| (p.name.clone(), p.duration)).collect(),
            std::io::stderr().is_terminal(),
        ));
        let mut stop = self.stop.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let config = EngineConfig {
            request_timeout: REQUEST_TIMEOUT,
            first_phase,
            ..EngineConfig::new(scenario.meta.seed)
        };
        let stats = engine::run_counting(scenario.plan(), endpoint, self.clock, config, tx, stopped, sent).await;
        let sink = sink.await;
        let _ = progress.await;
        let sink = sink.map_err(|e| RunError::Sink(e.to_string()))?;
        files.requests = sink.requests;
        files.attempts = sink.drain.csv;
        Ok(Driven {
            collector: sink.collector,
            stats,
            retained: sink.retained,
            cut: None,
        })
    }
}

/// The phase numbers of one engine run that are warm-up phases.
#[derive(Debug, Clone, Default)]
struct WarmUp {
    phases: HashSet<u16>,
}

impl WarmUp {
    /// The warm-up phases of `scenario`, numbered from `first_phase` as the
    /// engine numbers them.
    fn of(scenario: &Scenario, first_phase: u16) -> WarmUp {
        let phases = (scenario.phases.iter().enumerate())
            .filter(|(_, p)| p.warm_up)
            .filter_map(|(i, _)| u16::try_from(i).ok()?.checked_add(first_phase))
            .collect();
        WarmUp { phases }
    }

    fn record(&self, r: &RequestRecord) -> bool {
        self.phases.contains(&r.phase)
    }

    /// Whether a journal attempt was made for a warm-up request (an attempt
    /// without a request id of the engine's is not).
    fn attempt(&self, a: &Record) -> bool {
        !self.phases.is_empty()
            && (a.correlation_id.as_deref())
                .and_then(phase_of_request_id)
                .is_some_and(|phase| self.phases.contains(&phase))
    }
}

/// Where every request record goes as it arrives: counted, written,
/// joined with the mock journals (drained every [`DRAIN_EVERY`]), and kept
/// only when the checks need them all; a warm-up phase's record is only
/// written.
struct Sink {
    collector: Collector,
    retained: Option<Retained>,
    requests: Option<Written<RequestsCsv>>,
    warm_up: WarmUp,
    drain: Drain,
}

impl Sink {
    /// Takes records until the engine drops its sender; publishes a tally
    /// for the progress line once a second.
    async fn run(mut self, mut rx: mpsc::Receiver<RequestRecord>, tally: watch::Sender<Tally>) -> Sink {
        let mut window = Window::new();
        let start = tokio::time::Instant::now();
        let mut tick = tokio::time::interval_at(start + PROGRESS_EVERY, PROGRESS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut drain_tick = tokio::time::interval_at(start + DRAIN_EVERY, DRAIN_EVERY);
        drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                record = rx.recv() => {
                    let Some(record) = record else { break };
                    window.fold(&record);
                    self.take(record);
                }
                _ = drain_tick.tick() => {
                    self.drain.run(&mut self.collector, self.retained.as_mut());
                }
                _ = tick.tick() => {
                    tally.send_replace(window.roll());
                }
            }
        }
        // The last attempts are journaled as the mocks finish sending, which
        // may be a moment after the client's last byte.
        tokio::time::sleep(FINAL_DRAIN_GRACE).await;
        self.drain.run(&mut self.collector, self.retained.as_mut());
        self.collector.finish_join();
        self
    }

    fn take(&mut self, record: RequestRecord) {
        let warm_up = self.warm_up.record(&record);
        if let Some(csv) = self.requests.as_mut() {
            csv.write(|f| f.write(&record, warm_up));
        }
        if warm_up {
            return;
        }
        self.collector.record(&record);
        self.collector.remember_for_join(&record);
        if let Some(kept) = self.retained.as_mut() {
            kept.requests.push(record);
        }
    }
}

/// Drains the mock journals: each attempt is written to `attempts.csv`,
/// joined with the requests (see [`crate::metrics::join`]), and forgotten
/// unless retained; a warm-up request's attempt is only written.
struct Drain {
    /// (provider name, journal); every journal shares one clock.
    journals: Vec<(String, Journal)>,
    csv: Option<Written<AttemptsCsv>>,
    warm_up: WarmUp,
}

impl Drain {
    fn run(&mut self, collector: &mut Collector, mut retained: Option<&mut Retained>) {
        let Some(watermark_us) = self.journals.first().map(|(_, j)| j.clock().now_us()) else {
            return;
        };
        // Everything journaled before `watermark_us` is in these drains.
        for (name, journal) in &self.journals {
            let mut records = journal.drain();
            if records.is_empty() {
                continue;
            }
            if let Some(csv) = self.csv.as_mut() {
                csv.write(|f| f.write(name, &records));
            }
            records.retain(|a| !self.warm_up.attempt(a));
            collector.absorb_attempts(&records);
            if let Some(kept) = retained.as_deref_mut() {
                kept.attempts.extend(records);
            }
        }
        collector.settle_join(watermark_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::fixtures::{attempt, record, scenario};

    /// `requests.csv` on a full disk (a link to `/dev/full`): the run's
    /// files end with an error naming it.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_under_requests_csv_is_an_error_naming_it() {
        let dir = crate::report::tests::TempDir::new("drive-full-disk");
        let requests = dir.path().join(crate::report::tables::REQUESTS_CSV);
        std::os::unix::fs::symlink("/dev/full", &requests).unwrap();
        let mut files = Files::create(dir.path());
        let csv = files.requests.as_mut().expect("created: /dev/full opens");
        for i in 0..200 {
            csv.write(|f| f.write(&record(&format!("r0-{i}"), 0, 0), false));
        }
        let e = files.finish().unwrap_err();
        assert_eq!(e.path, requests);
        assert!(e.to_string().contains("No space left on device"), "{e}");
    }

    /// Phase 1 of the fixture is warm-up: numbered 1 in the run, 1001 at the
    /// floor; its records and its requests' attempts are set aside.
    #[test]
    fn warm_up_is_found_by_phase_number_and_request_id() {
        let s = scenario(
            "[[phases]]\nname = \"warm\"\nwarm-up = true\nduration-s = 1\narrival = { kind = \"constant\", rate = 5 }\n",
        );
        let run = WarmUp::of(&s, 0);
        let floor = WarmUp::of(&s, FLOOR_FIRST_PHASE);
        let mut r = record("r1-0", 0, 0);
        r.phase = 1;
        assert!(run.record(&r) && !floor.record(&r));
        r.phase = 0;
        assert!(!run.record(&r));
        assert!(run.attempt(&attempt("r1-7", 503, 0, 1)));
        assert!(!run.attempt(&attempt("r0-7", 200, 0, 1)));
        assert!(floor.attempt(&attempt("r1001-7", 200, 0, 1)));
        let mut anonymous = attempt("r1-7", 200, 0, 1);
        anonymous.correlation_id = None;
        assert!(!run.attempt(&anonymous), "an attempt of no known request counts");
        assert!(!WarmUp::of(&scenario(""), 0).attempt(&attempt("r0-1", 200, 0, 1)));
    }
}
