//! `gauntlet run SCENARIO|DIR...`: for each scenario, start its mocks and
//! its target (the built-in router in-process, or an external router), play
//! its fault timeline, drive its load, join what the client saw with the mock
//! journal, evaluate its checks and write its reports. A run cut short
//! (Ctrl-C) still writes reports for what it saw.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mock_providers::config::validate_providers;
use mock_providers::{Clock, MockSet};
use tokio::sync::{mpsc, watch};

use crate::Exit;
use crate::checks::{self, CheckResult};
use crate::cli::RunArgs;
use crate::load::engine::{self, EngineConfig, Target as EngineTarget};
use crate::load::record::RequestRecord;
use crate::metrics::Collector;
use crate::report::{self, RequestsCsv};
use crate::router::{Connector, Router, serve};
use crate::scenario::{Scenario, Target, scenario_files};

/// How long a request may take before it is recorded as a timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs every scenario the arguments name; the exit code is the worst one.
pub async fn run(args: RunArgs, stop: impl Future<Output = ()>) -> Exit {
    let files = match scenario_files(&args.paths) {
        Ok(files) if !files.is_empty() => files,
        Ok(_) => {
            eprintln!("error: no scenario files (*.toml) under {:?}", args.paths);
            return Exit::Usage;
        }
        Err(e) => {
            eprintln!("error: cannot list the scenarios: {e}");
            return Exit::Usage;
        }
    };
    let mut scenarios = Vec::with_capacity(files.len());
    for file in &files {
        match Scenario::load(file) {
            Ok(mut s) => {
                if let Some(seed) = args.seed {
                    s.meta.seed = seed;
                }
                if let Some(url) = &args.target {
                    s.target = Target::Http {
                        url: url.trim_end_matches('/').to_string(),
                        profile: crate::scenario::raw::Profile::Openrouter,
                        command: None,
                        ready_url: format!("{}/models", url.trim_end_matches('/')),
                        ready_timeout: crate::scenario::DEFAULT_READY_TIMEOUT,
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
    // One Ctrl-C stops the whole batch.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopper = async move {
        stop.await;
        let _ = stop_tx.send(true);
    };
    let batch = async {
        let mut worst = Exit::Success;
        for scenario in &scenarios {
            let exit = run_one(scenario, args.out.as_deref(), stop_rx.clone()).await;
            worst = worse(worst, exit);
            if *stop_rx.borrow() {
                break;
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

async fn start_target(scenario: &Scenario, mocks: &MockSet) -> Result<Running, String> {
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

/// The report folder of a run: `<dir>/<scenario>-<UTC time>`.
fn run_dir(scenario: &Scenario, out: Option<&Path>) -> PathBuf {
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    out.map_or_else(|| scenario.report_dir.clone(), Path::to_path_buf)
        .join(format!("{}-{stamp}", scenario.meta.name))
}

async fn run_one(scenario: &Scenario, out: Option<&Path>, mut stop: watch::Receiver<bool>) -> Exit {
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
    let running = match start_target(scenario, &mocks).await {
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

    // Records are counted and written as they arrive: memory does not grow.
    let (tx, mut rx) = mpsc::channel::<RequestRecord>(4096);
    let collector_dir = dir.clone();
    let mut collector = Collector::new(scenario);
    let sink = tokio::spawn(async move {
        let mut csv = RequestsCsv::create(&collector_dir).ok();
        while let Some(record) = rx.recv().await {
            collector.record(&record);
            collector.remember_for_join(&record);
            if let Some(csv) = csv.as_mut() {
                let _ = csv.write(&record);
            }
        }
        if let Some(csv) = csv {
            let _ = csv.finish();
        }
        collector
    });

    let clock = *mocks.providers().first().map_or(&Clock::new(), |p| p.journal().clock());
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let target = EngineTarget {
        base_url: running.base_url.clone(),
    };
    let stats = engine::run(
        scenario,
        &target,
        clock,
        EngineConfig {
            request_timeout: REQUEST_TIMEOUT,
            ..EngineConfig::new(scenario.meta.seed)
        },
        tx,
        stopped,
    )
    .await;
    timeline.abort();
    let mut collector = match sink.await {
        Ok(collector) => collector,
        Err(e) => {
            eprintln!("error: the record writer failed: {e}");
            return Exit::RunFailed;
        }
    };

    let journals: Vec<(String, Vec<mock_providers::Record>)> = mocks
        .providers()
        .iter()
        .map(|p| (p.name().to_string(), p.journal().snapshot()))
        .collect();
    for (_, records) in &journals {
        collector.join_journal(records);
    }
    let journal_refs: Vec<(&str, Vec<mock_providers::Record>)> =
        journals.iter().map(|(n, r)| (n.as_str(), r.clone())).collect();
    let _ = report::write_attempts(&dir, &journal_refs);

    let summary = collector.summary();
    let results: Vec<CheckResult> = checks::evaluate(scenario, &summary, &stats);
    let exit = if results.iter().all(|c| c.passed) {
        Exit::Success
    } else {
        Exit::CheckFailed
    };
    match report::write_reports(&dir, scenario, &summary, &results, &stats, &collector) {
        Ok(_) => {}
        Err(e) => eprintln!("error: writing reports to {}: {e}", dir.display()),
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
