//! `gauntlet run SCENARIO|DIR...`: for each scenario, start its mocks and
//! its target (the built-in router in-process, or an external router), play
//! its fault timeline, drive its load, join what the client saw with the mock
//! journal, evaluate its checks and write its reports. A run cut short
//! (Ctrl-C) still writes reports for what it saw.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mock_providers::config::validate_providers;
use mock_providers::{Clock, Journal, MockSet};
use tokio::sync::{mpsc, watch};

use crate::Exit;
use crate::checks::conformance::{Accounts, Evidence, Index};
use crate::checks::sweep::{Step as SweepStep, Sweep as SweepOutcome};
use crate::checks::{self, CheckResult};
use crate::cli::RunArgs;
use crate::command::scenario_files;
use crate::load::engine::RunStats;
use crate::load::engine::{self, EngineConfig, Target as EngineTarget};
use crate::load::record::RequestRecord;
use crate::metrics::{Collector, Metric, Timings};
use crate::report::{self, AttemptsCsv, FloorRun, RequestsCsv, RunReport};
use crate::router::Defects;
use crate::router::{Connector, Router, serve};
use crate::scenario::{Conformance, Rule, Scenario, Target};
use crate::target::AccountProbe;

/// How long a request may take before it is recorded as a timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs every scenario the arguments name; the exit code is the worst one.
pub async fn run(args: RunArgs, stop: impl Future<Output = ()>) -> Exit {
    let files = match scenario_files(&args.paths) {
        Ok(files) => files,
        Err(exit) => return exit,
    };
    let mut scenarios = Vec::with_capacity(files.len());
    for file in &files {
        match Scenario::load(file) {
            Ok(mut s) => {
                if let Some(seed) = args.seed {
                    s.meta.seed = seed;
                }
                if let Some(url) = &args.target {
                    // An HTTP target's profile and ready timeout still hold
                    // when the command line moves it elsewhere.
                    let ready_timeout = match &s.target {
                        Target::Http { ready_timeout, .. } => *ready_timeout,
                        Target::Builtin => crate::scenario::DEFAULT_READY_TIMEOUT,
                    };
                    let url = url.trim_end_matches('/');
                    s.target = Target::Http {
                        url: url.to_string(),
                        profile: s.target.profile(),
                        command: None,
                        ready_url: format!("{url}/models"),
                        ready_timeout,
                    };
                }
                scenarios.push(s);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Usage;
            }
        }
    }
    let mut defects = Defects::default();
    for name in &args.builtin_defect {
        if let Err(e) = defects.enable(name) {
            eprintln!("error: --builtin-defect: {e}");
            return Exit::Usage;
        }
    }
    if defects.any()
        && let Some(s) = scenarios.iter().find(|s| !matches!(s.target, Target::Builtin))
    {
        eprintln!(
            "error: --builtin-defect applies to the built-in router only; {} targets an external router",
            s.file.display()
        );
        return Exit::Usage;
    }
    // One Ctrl-C stops the whole batch.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopper = async move {
        stop.await;
        let _ = stop_tx.send(true);
    };
    let batch = async {
        let mut worst = Exit::Success;
        'all: for scenario in &scenarios {
            for _ in 0..args.repeat {
                let exit = run_one(scenario, defects, args.out.as_deref(), stop_rx.clone()).await;
                worst = worse(worst, exit);
                if *stop_rx.borrow() {
                    break 'all;
                }
            }
        }
        worst
    };
    tokio::select! {
        exit = batch => exit,
        () = async { stopper.await; std::future::pending::<()>().await } => Exit::RunFailed,
    }
}

fn worse(a: Exit, b: Exit) -> Exit {
    let rank = |e: Exit| match e {
        Exit::Success => 0,
        Exit::CheckFailed => 1,
        Exit::Usage => 2,
        Exit::RunFailed => 3,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// The running target: where to send requests, and what to stop afterwards.
struct Running {
    base_url: String,
    router: Option<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
    child: Option<tokio::process::Child>,
}

async fn start_target(scenario: &Scenario, mocks: &MockSet, defects: Defects) -> Result<Running, String> {
    match &scenario.target {
        Target::Builtin => {
            let config = scenario
                .router_config(|name| mocks.get(name).map(|p| p.base_url()))
                .map_err(|e| format!("{}: {e}", scenario.file.display()))?
                .ok_or("the built-in target needs a [router] table")?;
            let mut config = config;
            // A run starts from the configured balances: its ledger lives in memory.
            config.ledger_path = None;
            config.listen = "127.0.0.1:0".parse().map_err(|_| "bad loopback address")?;
            config.defects = defects;
            let router = Router::new(config, Connector::tcp())
                .await
                .map_err(|e| format!("router: {e}"))?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| format!("router: {e}"))?;
            let addr = listener.local_addr().map_err(|e| format!("router: {e}"))?;
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(serve(listener, router, async move {
                let _ = rx.await;
            }));
            Ok(Running {
                base_url: format!("http://{addr}/api/v1"),
                router: Some((tx, task)),
                child: None,
            })
        }
        Target::Http {
            url,
            command,
            ready_url,
            ready_timeout,
            ..
        } => {
            let child = match command {
                None => None,
                Some(argv) => {
                    let (program, rest) = argv.split_first().ok_or("target.command is empty")?;
                    let child = tokio::process::Command::new(program)
                        .args(rest)
                        .kill_on_drop(true)
                        .spawn()
                        .map_err(|e| format!("cannot start `{program}`: {e}"))?;
                    Some(child)
                }
            };
            wait_ready(ready_url, *ready_timeout).await?;
            Ok(Running {
                base_url: url.clone(),
                router: None,
                child,
            })
        }
    }
}

/// Polls `url` until it answers 2xx, or gives up after `timeout`.
async fn wait_ready(url: &str, timeout: Duration) -> Result<(), String> {
    use http_body_util::Empty;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, Empty<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build(hyper_util::client::legacy::connect::HttpConnector::new());
    let uri: http::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::from("no answer");
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(2), client.get(uri.clone())).await {
            Ok(Ok(r)) if r.status().is_success() => return Ok(()),
            Ok(Ok(r)) => last = format!("status {}", r.status()),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "the target at {url} did not become ready within {timeout:?} ({last})"
    ))
}

/// The report folder of a run: `<dir>/<scenario>-<UTC time>`, with `-2`,
/// `-3`... appended when a run of the same second already has that name.
fn run_dir(scenario: &Scenario, out: Option<&Path>) -> PathBuf {
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    let parent = out.map_or_else(|| scenario.report_dir.clone(), Path::to_path_buf);
    let first = parent.join(format!("{}-{stamp}", scenario.meta.name));
    std::iter::once(first.clone())
        .chain((2..1000).map(|n| parent.join(format!("{}-{stamp}-{n}", scenario.meta.name))))
        .find(|dir| !dir.exists())
        .unwrap_or(first)
}

async fn run_one(scenario: &Scenario, defects: Defects, out: Option<&Path>, stop: watch::Receiver<bool>) -> Exit {
    let mut providers = scenario.providers.clone();
    for p in &mut providers {
        p.seed = p.seed.or(Some(scenario.meta.seed));
    }
    let configs = match validate_providers(&providers) {
        Ok(configs) => configs,
        Err(e) => {
            eprintln!("error: {}: {e}", scenario.file.display());
            return Exit::Usage;
        }
    };
    let mocks = match MockSet::spawn(configs).await {
        Ok(mocks) => mocks,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::RunFailed;
        }
    };
    // The router's calendar clock starts with it: lifecycle checks date
    // requests from here.
    let router_started_us = mocks
        .providers()
        .first()
        .map_or_else(|| Clock::new().now_us(), |p| p.journal().clock().now_us());
    let running = match start_target(scenario, &mocks, defects).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("error: {e}");
            mocks.shutdown().await;
            return Exit::RunFailed;
        }
    };
    let dir = run_dir(scenario, out);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        mocks.shutdown().await;
        return Exit::RunFailed;
    }
    println!(
        "running {} ({:.1} s) against {}",
        scenario.meta.name,
        scenario.duration().as_secs_f64(),
        running.base_url
    );

    // The router's own accounts, before the load, for the billing checks.
    let probe = AccountProbe::new(&running.base_url, scenario.target.profile());
    let account_keys = account_keys(scenario);
    let mut accounts = Accounts::default();
    if !account_keys.is_empty() {
        let (before, problems) = probe.keys(&account_keys).await;
        accounts.before = before;
        accounts.problems.extend(problems);
    }

    let journals: Vec<(String, Journal)> = mocks
        .providers()
        .iter()
        .map(|p| (p.name().to_string(), p.journal().clone()))
        .collect();
    let clock = *mocks.providers().first().map_or(&Clock::new(), |p| p.journal().clock());
    let pass = Pass {
        clock,
        journals: &journals,
        stop: stop.clone(),
    };

    // The floor: the same phases straight at a mock, before the router.
    let mut floor = None;
    if let Some(f) = &scenario.floor
        && let Some(mock) = mocks.get(&f.provider)
    {
        let url = format!("{}/v1", mock.base_url());
        println!("  floor: the same phases straight at {} ({url})", f.provider);
        let mut no_files = Files::default();
        match pass
            .drive(scenario, &url, FLOOR_FIRST_PHASE, &mut no_files, false)
            .await
        {
            Ok(out) => {
                let summary = out.collector.summary();
                floor = Some(FloorRun {
                    provider: f.provider.clone(),
                    url,
                    validity: checks::validity(scenario, &summary, &out.stats),
                    summary,
                    stats: out.stats,
                });
            }
            Err(e) => {
                eprintln!("error: {e}");
                mocks.shutdown().await;
                return Exit::RunFailed;
            }
        }
        if *stop.borrow() {
            eprintln!("stopped during the floor; the router was not measured");
        }
        println!("  router: {}", running.base_url);
    }

    // The fault timeline.
    let timeline = {
        let steps = scenario.faults.clone();
        let providers: Vec<_> = steps
            .iter()
            .map(|s| mocks.get(&s.provider).map(|p| Arc::clone(&p.provider)))
            .collect();
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            for (step, provider) in steps.iter().zip(providers) {
                tokio::time::sleep_until(start + step.at).await;
                if let Some(provider) = provider {
                    let _ = provider.set_faults(&step.set);
                }
            }
        })
    };

    let mut files = Files {
        requests: RequestsCsv::create(&dir).ok(),
        attempts: AttemptsCsv::create(&dir).ok(),
    };
    let driven = match &scenario.sweep {
        None if *stop.borrow() => Ok((Driven::empty(scenario), None)),
        None => pass
            .drive(scenario, &running.base_url, 0, &mut files, keep_everything(scenario))
            .await
            .map(|out| (out, None)),
        Some(plan) => pass
            .sweep(scenario, plan, &running.base_url, &mut files)
            .await
            .map(|(out, sweep)| (out, Some(sweep))),
    };
    timeline.abort();
    files.finish();
    let (
        Driven {
            collector,
            stats,
            retained,
        },
        sweep,
    ) = match driven {
        Ok(driven) => driven,
        Err(e) => {
            eprintln!("error: {e}");
            mocks.shutdown().await;
            return Exit::RunFailed;
        }
    };
    // Every request record and journal attempt of the run, when
    // `keep_everything(scenario)`: the conformance checks' evidence.
    if let Some(kept) = &retained {
        if !account_keys.is_empty() {
            let (after, problems) = probe.settled_keys(&account_keys).await;
            accounts.after = after;
            accounts.problems.extend(problems);
        }
        if wants_generations(scenario) {
            let (found, problems) = probe.generations(generation_lookups(scenario, &kept.requests)).await;
            accounts.generations = found;
            accounts.problems.extend(problems);
        }
    }
    let router_config = scenario
        .router_config(|name| mocks.get(name).map(|p| p.base_url()))
        .ok()
        .flatten();
    let index = retained.as_ref().map(|kept| {
        Index::new(Evidence {
            scenario,
            router: router_config.as_ref(),
            records: &kept.requests,
            attempts: &kept.attempts,
            accounts: &accounts,
            router_started_us,
        })
    });

    let summary = collector.summary();
    let results: Vec<CheckResult> = match &sweep {
        // A sweep's verdict is its knee; each step's checks are in its row.
        Some(sweep) => sweep.results(),
        None => checks::evaluate(scenario, &summary, &stats, index.as_ref()),
    };
    let exit = if results.iter().all(|c| c.passed) {
        Exit::Success
    } else {
        Exit::CheckFailed
    };
    let mut run = RunReport::new(scenario, &summary, &results, &stats, &collector);
    run.floor = floor.as_ref();
    run.sweep = sweep.as_ref();
    match report::write_reports(&dir, &run) {
        Ok(_) => {}
        Err(e) => eprintln!("error: writing reports to {}: {e}", dir.display()),
    }
    if let Some(floor) = &floor {
        print_floor(floor, &summary);
    }
    print_checks(&results, &dir);

    if let Some((tx, task)) = running.router {
        let _ = tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(6), task).await;
    }
    if let Some(mut child) = running.child {
        let _ = child.kill().await;
    }
    mocks.shutdown().await;
    exit
}

/// The phase number the floor's requests start from (`r1000-…`), apart from
/// the router's.
const FLOOR_FIRST_PHASE: u16 = 1000;

/// What one engine run of a scenario's phases leaves.
struct Driven {
    collector: Collector,
    stats: RunStats,
    /// `Some` when asked to keep everything.
    retained: Option<Retained>,
}

impl Driven {
    /// Nothing ran (stopped before it started).
    fn empty(scenario: &Scenario) -> Driven {
        Driven {
            collector: Collector::new(scenario),
            stats: RunStats {
                phases: Vec::new(),
                stopped: true,
            },
            retained: None,
        }
    }

    /// Folds a later engine run in (a sweep's next step).
    fn absorb(&mut self, later: Driven) {
        self.collector.merge(later.collector);
        self.stats.phases.extend(later.stats.phases);
        self.stats.stopped |= later.stats.stopped;
    }
}

/// The files written as a run goes; `None` where they could not be created
/// (or are not wanted, for the floor).
#[derive(Default)]
struct Files {
    requests: Option<RequestsCsv>,
    attempts: Option<AttemptsCsv>,
}

impl Files {
    fn finish(self) {
        if let Some(csv) = self.requests {
            let _ = csv.finish();
        }
        if let Some(csv) = self.attempts {
            let _ = csv.finish();
        }
    }
}

/// What every engine run of one scenario run shares.
struct Pass<'a> {
    clock: Clock,
    /// (provider name, journal); every journal shares one clock.
    journals: &'a [(String, Journal)],
    stop: watch::Receiver<bool>,
}

impl Pass<'_> {
    /// Runs `scenario`'s phases against `base_url`, numbering them from
    /// `first_phase`: records are counted and written as they arrive, and the
    /// mock journals drained into attempts.csv and the overhead join every
    /// [`DRAIN_EVERY`], so memory does not grow with the run's length (unless
    /// `keep`). Once a second the sink publishes a tally for the progress line.
    async fn drive(
        &self,
        scenario: &Scenario,
        base_url: &str,
        first_phase: u16,
        files: &mut Files,
        keep: bool,
    ) -> Result<Driven, String> {
        let (tx, mut rx) = mpsc::channel::<RequestRecord>(4096);
        let (tally_tx, tally_rx) = watch::channel(Tally::default());
        let sent = Arc::new(AtomicU64::new(0));
        let mut collector = Collector::numbered_from(scenario, first_phase);
        let mut retained = keep.then(Retained::default);
        let mut requests_csv = files.requests.take();
        let mut drain = Drain {
            journals: self.journals.to_vec(),
            csv: files.attempts.take(),
        };
        let sink = tokio::spawn(async move {
            let mut window = Window::new();
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut drain_tick = tokio::time::interval_at(tokio::time::Instant::now() + DRAIN_EVERY, DRAIN_EVERY);
            drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    record = rx.recv() => {
                        let Some(record) = record else { break };
                        window.fold(&record);
                        collector.record(&record);
                        collector.remember_for_join(&record);
                        if let Some(csv) = requests_csv.as_mut() {
                            let _ = csv.write(&record);
                        }
                        if let Some(kept) = retained.as_mut() {
                            kept.requests.push(record);
                        }
                    }
                    _ = drain_tick.tick() => {
                        drain.run(&mut collector, retained.as_mut());
                    }
                    _ = tick.tick() => {
                        tally_tx.send_replace(window.roll());
                    }
                }
            }
            // The last attempts are journaled as the mocks finish sending, which
            // may be a moment after the client's last byte.
            tokio::time::sleep(FINAL_DRAIN_GRACE).await;
            drain.run(&mut collector, retained.as_mut());
            collector.finish_join();
            let driven = Driven {
                collector,
                stats: RunStats {
                    phases: Vec::new(),
                    stopped: false,
                },
                retained,
            };
            (driven, requests_csv, drain.csv)
        });
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
        let target = EngineTarget {
            base_url: base_url.to_string(),
        };
        let stats = engine::run_counting(
            scenario,
            &target,
            self.clock,
            EngineConfig {
                request_timeout: REQUEST_TIMEOUT,
                first_phase,
                ..EngineConfig::new(scenario.meta.seed)
            },
            tx,
            stopped,
            sent,
        )
        .await;
        let sink = sink.await;
        let _ = progress.await;
        let (mut driven, requests, attempts) = sink.map_err(|e| format!("the record writer failed: {e}"))?;
        files.requests = requests;
        files.attempts = attempts;
        driven.stats = stats;
        Ok(driven)
    }

    /// Runs a capacity sweep: a step per planned rate until one breaks (all
    /// of them with `keep-going`), then bisection steps between the knee
    /// and the first break.
    async fn sweep(
        &self,
        scenario: &Scenario,
        plan: &crate::scenario::Sweep,
        base_url: &str,
        files: &mut Files,
    ) -> Result<(Driven, SweepOutcome), String> {
        let mut outcome = SweepOutcome {
            min_knee: plan.min_knee,
            ..SweepOutcome::default()
        };
        let mut all: Option<Driven> = None;
        let mut rates: Vec<(f64, bool)> = plan.rates.iter().map(|&r| (r, false)).collect();
        rates.reverse();
        while let Some((rate, refined)) = rates.pop() {
            if *self.stop.borrow() {
                break;
            }
            let number = outcome.steps.len() + 1;
            let mut step = scenario.clone();
            step.phases = vec![plan.phase(number - 1, rate, scenario.mix.len())];
            let first_phase = u16::try_from(number - 1).unwrap_or(u16::MAX);
            println!(
                "  step {number}: {rate:.0} req/s for {:.0} s",
                plan.step_duration.as_secs_f64()
            );
            let driven = self.drive(&step, base_url, first_phase, files, false).await?;
            let summary = driven.collector.summary();
            let slo: Vec<CheckResult> = checks::evaluate(&step, &summary, &driven.stats, None)
                .into_iter()
                .zip(&step.checks)
                .filter(|(_, c)| c.rule.is_slo())
                .map(|(r, _)| r)
                .collect();
            let judged = SweepStep::judge(number, rate, refined, &step, &summary, &driven.stats, slo);
            println!(
                "          {} — e2e p99 {}, errors {}, dispatch p99 {}{}",
                match judged.broke_because.first() {
                    None => "held".to_string(),
                    Some(why) => format!("BROKE ({why})"),
                },
                crate::report::markdown::duration(judged.e2e.p99 as f64),
                judged
                    .error_rate
                    .map_or_else(|| "—".into(), crate::report::markdown::percent),
                crate::report::markdown::duration(judged.dispatch_p99_us as f64),
                if judged.generator_kept_up {
                    ""
                } else {
                    " (the generator fell behind)"
                },
            );
            let broke = !judged.held;
            outcome.steps.push(judged);
            outcome.settle();
            match all.as_mut() {
                Some(all) => all.absorb(driven),
                None => all = Some(driven),
            }
            if broke && !refined && !plan.keep_going {
                rates.clear();
            }
            // Bisect once the planned steps are done (or cut short).
            if rates.is_empty()
                && outcome.steps.iter().filter(|s| s.refined).count() < plan.refine as usize
                && let Some(mid) = outcome.next_bisection()
            {
                rates.push((mid, true));
            }
        }
        let driven = all.unwrap_or_else(|| Driven::empty(scenario));
        Ok((driven, outcome))
    }
}

/// How often the record sink drains the mock journals.
const DRAIN_EVERY: Duration = Duration::from_millis(250);
/// How long after the last request record the journals are drained a last time.
const FINAL_DRAIN_GRACE: Duration = Duration::from_millis(50);

/// Whether a run keeps every request record and journal attempt in memory
/// until its end (see [`Retained`]), for checks that need them all; only
/// sensible for small scenarios.
fn keep_everything(scenario: &Scenario) -> bool {
    scenario.checks.iter().any(|c| matches!(c.rule, Rule::Conformance(_)))
}

/// The keys whose accounts the scenario's checks read, in mix order.
fn account_keys(scenario: &Scenario) -> Vec<String> {
    let wanted = scenario.checks.iter().any(|c| {
        matches!(
            c.rule,
            Rule::Conformance(Conformance::BalanceDelta | Conformance::NoOverdraft { .. })
        )
    });
    let mut keys: Vec<String> = Vec::new();
    if wanted {
        for m in &scenario.mix {
            if !keys.contains(&m.key) {
                keys.push(m.key.clone());
            }
        }
    }
    keys
}

fn wants_generations(scenario: &Scenario) -> bool {
    scenario
        .checks
        .iter()
        .any(|c| matches!(c.rule, Rule::Conformance(Conformance::GenerationAgrees)))
}

/// (generation id, key) of every successful answer.
fn generation_lookups(scenario: &Scenario, records: &[RequestRecord]) -> Vec<(String, String)> {
    records
        .iter()
        .filter(|r| r.outcome == crate::load::record::Outcome::Ok)
        .filter_map(|r| {
            let key = &scenario.mix.get(usize::from(r.mix))?.key;
            Some((r.generation_id.clone()?, key.clone()))
        })
        .collect()
}

/// Every request record and journal attempt of a run, in the order they
/// reached the record sink, kept when [`keep_everything`] says so.
#[derive(Debug, Default)]
pub struct Retained {
    pub requests: Vec<RequestRecord>,
    /// Drain by drain, provider by provider in journal (`seq`) order (each
    /// attempt names its provider).
    pub attempts: Vec<mock_providers::Record>,
}

/// Drains the mock journals: each attempt is written to `attempts.csv`,
/// joined with the requests (see [`crate::metrics::join`]), and forgotten
/// unless retained.
struct Drain {
    /// (provider name, journal); every journal shares one clock.
    journals: Vec<(String, Journal)>,
    csv: Option<AttemptsCsv>,
}

impl Drain {
    fn run(&mut self, collector: &mut Collector, mut retained: Option<&mut Retained>) {
        let Some(watermark_us) = self.journals.first().map(|(_, j)| j.clock().now_us()) else {
            return;
        };
        // Everything journaled before `watermark_us` is in these drains.
        for (name, journal) in &self.journals {
            let records = journal.drain();
            if records.is_empty() {
                continue;
            }
            if let Some(csv) = self.csv.as_mut() {
                let _ = csv.write(name, &records);
            }
            collector.absorb_attempts(&records);
            if let Some(kept) = retained.as_deref_mut() {
                kept.attempts.extend(records);
            }
        }
        collector.settle_join(watermark_us);
    }
}

/// The router against the floor, for the metrics a reader looks at first.
fn print_floor(floor: &FloorRun, summary: &crate::metrics::MetricsSummary) {
    use crate::report::markdown::{duration, signed_duration};
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\n  router against the floor ({}, same run):", floor.provider);
    if !floor.validity.valid {
        let _ = writeln!(
            out,
            "    the generator fell behind at the floor: {}",
            floor.validity.problems.join("; ")
        );
    }
    for a in floor.against(summary) {
        if !matches!(a.metric, Metric::E2e | Metric::Ttft | Metric::Itl | Metric::Overhead) {
            continue;
        }
        let [p50, _, p99, _] = a.quantiles();
        let _ = writeln!(
            out,
            "    {:<9} p50 {:>9} vs {:>9} = {:>6} ({:>9})   p99 {:>9} vs {:>9} = {:>6} ({:>9})",
            a.metric.name(),
            duration(p50.router_us as f64),
            duration(p50.floor_us as f64),
            p50.ratio_text(),
            signed_duration(p50.added_us()),
            duration(p99.router_us as f64),
            duration(p99.floor_us as f64),
            p99.ratio_text(),
            signed_duration(p99.added_us()),
        );
    }
}

fn print_checks(results: &[CheckResult], dir: &Path) {
    let mut out = std::io::stdout().lock();
    let width = results.iter().map(|c| c.name.len()).max().unwrap_or(5).max(5);
    let _ = writeln!(
        out,
        "\n  {:<width$}  {:>12}  {:>12}  result",
        "check", "measured", "bound"
    );
    for c in results {
        let mark = if c.passed { "pass" } else { "FAIL" };
        let _ = writeln!(
            out,
            "  {:<width$}  {:>12.3}  {:>12.3}  {mark}  {}",
            c.name, c.measured, c.bound, c.detail
        );
    }
    let _ = writeln!(out, "\nreports: {}", dir.display());
}

/// How often the progress line is refreshed on a terminal.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Every how many refreshes a plain progress line is printed when stderr is
/// not a terminal (a log or CI): every 5 s.
const PLAIN_PROGRESS_EVERY: u64 = 5;
/// The largest e2e latency the progress window tells apart (10 minutes).
const WINDOW_MAX_US: u64 = 600_000_000;

/// What the record sink publishes once a second for the progress line.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Tally {
    /// Sent requests whose record has arrived, over the run.
    completed: u64,
    /// Requests that failed, over the run.
    errors: u64,
    /// Arrivals dropped at the in-flight cap, over the run.
    dropped: u64,
    /// Sent requests completed per second over the last window.
    rate: f64,
    /// The 99th percentile e2e latency of the last window's successful requests.
    p99_e2e_us: Option<u64>,
}

/// The record sink's running counts and the current second's latencies:
/// fixed size, nothing allocated per request.
struct Window {
    totals: Tally,
    completed_in_window: u64,
    started: tokio::time::Instant,
    /// `None` only if the histogram could not be built (it always can).
    e2e: Option<hdrhistogram::Histogram<u64>>,
}

impl Window {
    fn new() -> Window {
        Window {
            totals: Tally::default(),
            completed_in_window: 0,
            started: tokio::time::Instant::now(),
            e2e: hdrhistogram::Histogram::new_with_bounds(1, WINDOW_MAX_US, 2).ok(),
        }
    }

    fn fold(&mut self, record: &RequestRecord) {
        if record.outcome == crate::load::record::Outcome::Dropped {
            self.totals.dropped += 1;
            return;
        }
        self.totals.completed += 1;
        self.completed_in_window += 1;
        self.totals.errors += u64::from(record.outcome.is_error());
        if let (Some(h), Some(e2e)) = (self.e2e.as_mut(), Timings::of(record).e2e_us) {
            h.saturating_record(e2e.clamp(1, WINDOW_MAX_US));
        }
    }

    /// The tally so far, with the window's rate and p99; starts a new window.
    fn roll(&mut self) -> Tally {
        let now = tokio::time::Instant::now();
        let seconds = now.duration_since(self.started).as_secs_f64();
        let mut tally = self.totals;
        tally.rate = if seconds > 0.0 {
            self.completed_in_window as f64 / seconds
        } else {
            0.0
        };
        tally.p99_e2e_us = self
            .e2e
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| h.value_at_quantile(0.99));
        if let Some(h) = self.e2e.as_mut() {
            h.reset();
        }
        self.completed_in_window = 0;
        self.started = now;
        tally
    }
}

/// Shows each tally the sink publishes: on a terminal one line rewritten in
/// place every second, else a plain line every 5 s. Returns, leaving the
/// terminal's line clear, once the sink is done (the run ended or was stopped).
async fn show_progress(
    mut tally: watch::Receiver<Tally>,
    sent: Arc<AtomicU64>,
    phases: Vec<(String, Duration)>,
    terminal: bool,
) {
    let start = tokio::time::Instant::now();
    let total: Duration = phases.iter().map(|(_, d)| *d).sum();
    let mut ticks = 0u64;
    let mut shown = false;
    while tally.changed().await.is_ok() {
        ticks += 1;
        if !terminal && !ticks.is_multiple_of(PLAIN_PROGRESS_EVERY) {
            continue;
        }
        let now = *tally.borrow_and_update();
        let line = progress_line(&now, sent.load(Ordering::Relaxed), start.elapsed(), total, &phases);
        let mut err = std::io::stderr().lock();
        if terminal {
            // Back to the line's start, write, erase what a longer line left.
            let _ = write!(err, "\r{line}\x1b[K");
            shown = true;
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }
    if shown {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
    }
}

/// One progress line, e.g.
/// `[ 3/10 s] ramp: 20.0 req/s, 4 in flight, p99 e2e 45.2 ms, 0 errors, 0 dropped`.
fn progress_line(
    tally: &Tally,
    sent: u64,
    elapsed: Duration,
    total: Duration,
    phases: &[(String, Duration)],
) -> String {
    let mut phase = "draining";
    let mut end = Duration::ZERO;
    for (name, duration) in phases {
        end += *duration;
        if elapsed < end {
            phase = name;
            break;
        }
    }
    let p99 = tally
        .p99_e2e_us
        .map_or_else(|| "-".to_string(), |us| format!("{:.1} ms", us as f64 / 1000.0));
    format!(
        "[{:>3.0}/{:.0} s] {phase}: {:.1} req/s, {} in flight, p99 e2e {p99}, {} errors, {} dropped",
        elapsed.as_secs_f64(),
        total.as_secs_f64(),
        tally.rate,
        sent.saturating_sub(tally.completed),
        tally.errors,
        tally.dropped,
    )
}

#[cfg(test)]
mod progress_tests {
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

    #[test]
    fn the_progress_line_names_the_phase_and_counts() {
        let phases = vec![
            ("warm".to_string(), Duration::from_secs(2)),
            ("ramp".to_string(), Duration::from_secs(8)),
        ];
        let tally = Tally {
            completed: 96,
            errors: 1,
            dropped: 2,
            rate: 20.0,
            p99_e2e_us: Some(45_230),
        };
        let line = progress_line(&tally, 100, Duration::from_secs(3), Duration::from_secs(10), &phases);
        assert_eq!(
            line,
            "[  3/10 s] ramp: 20.0 req/s, 4 in flight, p99 e2e 45.2 ms, 1 errors, 2 dropped"
        );
        let idle = progress_line(
            &Tally::default(),
            0,
            Duration::from_secs(11),
            Duration::from_secs(10),
            &phases,
        );
        assert!(idle.contains("draining") && idle.contains("p99 e2e -"), "{idle}");
    }
}
