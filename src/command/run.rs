//! `gauntlet run SCENARIO|DIR...`: loads every scenario the arguments name,
//! applies the command line's overrides, and runs each (`--repeat` times)
//! with [`crate::run::Run`]; the exit code is the worst run's. One Ctrl-C
//! (or SIGTERM) stops the whole batch: the run in progress reports what it
//! saw, its checks skipped, stderr says what was cut short and which runs
//! were not run, and the exit code is 130.

use std::future::Future;
use std::io::IsTerminal;

use tokio::sync::watch;

use crate::Exit;
use crate::cli::RunArgs;
use crate::command::scenario_files;
use crate::run::{Outcome, Run, RunOptions};
use crate::scenario::Scenario;
use crate::target::{self, Defects, Profile, Target};

/// Runs every scenario the arguments name; the exit code is the worst one.
pub async fn run(args: RunArgs, stop: impl Future<Output = ()>) -> Exit {
    let (scenarios, options) = match prepare(&args) {
        Ok(prepared) => prepared,
        Err(exit) => return exit,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopper = async move {
        stop.await;
        // After a progress line a terminal shows without a newline.
        let lead = if std::io::stderr().is_terminal() { "\n" } else { "" };
        eprintln!(
            "{lead}stopping: requests in flight get up to {} s, then the reports are written",
            crate::load::engine::DEFAULT_STOP_GRACE.as_secs()
        );
        let _ = stop_tx.send(true);
    };
    let batch = async {
        let mut worst = Exit::Success;
        for (i, scenario) in scenarios.iter().enumerate() {
            for repeat in 1..=args.repeat {
                let outcome = Run::new(scenario, options.clone()).execute(stop_rx.clone()).await;
                if let Some(e) = &outcome.error {
                    eprintln!("error: {e}");
                }
                worst = worst.worse(outcome.exit);
                if *stop_rx.borrow() {
                    let later = scenarios.get(i + 1..).unwrap_or_default();
                    say_stopped(scenario, &outcome, args.repeat - repeat, later);
                    return Exit::Stopped;
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

/// Says on stderr what a stop left undone: of the run it came during
/// (`outcome`, of `scenario`, with `repeats_left` more repeats to go), and
/// the `later` scenarios not run.
fn say_stopped(scenario: &Scenario, outcome: &Outcome, repeats_left: u32, later: &[Scenario]) {
    let name = &scenario.meta.name;
    match (&outcome.cut, &outcome.error) {
        (Some(cut), _) => eprintln!(
            "stopped: {name}: {}; {} checks skipped",
            cut.sentence(),
            outcome.results.len()
        ),
        // Its error is above.
        (None, Some(_)) => {}
        (None, None) => eprintln!("stopped: {name}: its load had ended when the stop came; its checks were judged"),
    }
    let mut not_run = Vec::new();
    if repeats_left > 0 {
        let s = if repeats_left == 1 { "" } else { "s" };
        not_run.push(format!("{name} ({repeats_left} more repeat{s})"));
    }
    not_run.extend(later.iter().map(|s| s.meta.name.clone()));
    if !not_run.is_empty() {
        eprintln!("stopped: not run: {}", not_run.join(", "));
    }
}

/// The scenarios with the command line's overrides, and the run options;
/// or, having said what is wrong, the usage exit code.
fn prepare(args: &RunArgs) -> Result<(Vec<Scenario>, RunOptions), Exit> {
    let files = scenario_files(&args.paths)?;
    let usage = |message: String| {
        eprintln!("error: {message}");
        Exit::Usage
    };
    let headers = (args.headers.iter())
        .map(|line| target::header_line(line).map_err(|e| usage(format!("--header: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut scenarios = Vec::with_capacity(files.len());
    for file in &files {
        let mut s = Scenario::load(file).map_err(|e| {
            eprintln!("error: {e}");
            Exit::Usage
        })?;
        if let Some(seed) = args.seed {
            s.reseed(seed);
        }
        if let Some(base) = args.mock_ports {
            s.pin_mock_ports(base)
                .map_err(|e| usage(format!("{}: {e}", s.file.display())))?;
        }
        if let Some(url) = &args.target {
            s.target = s.target.moved_to(url);
        }
        let profile = match &args.profile {
            Some(name) => Some(s.profile_named(name).ok_or_else(|| {
                usage(format!(
                    "--profile: no profile `{name}` for {} (known: {})",
                    s.file.display(),
                    Profile::known_names(&s.profiles)
                ))
            })?),
            None => None,
        };
        if let Some(url) = &args.ready_url {
            if !url.starts_with("http://") {
                return Err(usage(format!("--ready-url: `{url}` must be an http:// URL")));
            }
            s.target = s.target.ready_at(url).ok_or_else(|| {
                usage(format!(
                    "--ready-url applies to an HTTP target; {} targets the built-in router (add --target URL)",
                    s.file.display()
                ))
            })?;
        }
        if !headers.is_empty() || profile.is_some() {
            s.target = s.target.amended(&headers, profile.as_ref()).ok_or_else(|| {
                usage(format!(
                    "--header and --profile apply to an HTTP target; {} targets the built-in router (add --target URL)",
                    s.file.display()
                ))
            })?;
        }
        scenarios.push(s);
    }
    let mut defects = Defects::default();
    for name in &args.builtin_defect {
        defects.enable(name).map_err(|e| {
            eprintln!("error: --builtin-defect: {e}");
            Exit::Usage
        })?;
    }
    if defects.any()
        && let Some(s) = scenarios.iter().find(|s| s.target != Target::Builtin)
    {
        eprintln!(
            "error: --builtin-defect applies to the built-in router only; {} targets an external router",
            s.file.display()
        );
        return Err(Exit::Usage);
    }
    let options = RunOptions {
        defects,
        out: args.out.clone(),
        strict: args.strict,
    };
    Ok((scenarios, options))
}
