//! gauntlet: a load-testing and conformance harness for LLM API routers.
//!
//! The map (docs/architecture.md tells the whole story):
//! - [`run`]: one run of one scenario, as a pipeline a program can call
//!   (plan, start, drive, collect, judge, report).
//! - [`target`]: the one boundary to the router under test (starting it,
//!   what the scenario expects of it, reading its accounts).
//! - [`scenario`]: scenario scripts, raw and validated.
//! - [`load`]: the load generator (plans, arrival schedules, the HTTP client).
//! - [`metrics`]: HDR histograms, outcome counts, time series and goodput of a run.
//! - [`checks`]: the scenario's checks judged against the metrics and the evidence.
//! - [`report`]: the report files of a run (JSON, CSV, JUnit, Markdown, HTML, HdrHistogram logs).
//! - [`regression`]: baselines and comparisons of runs' `summary.json`.
//! - [`router`]: the reference router.
//! - [`cli`]: the command line (clap structs only).
//! - [`command`]: the subcommands, each a thin translation from arguments
//!   to a library call and an exit code.
//!
//! Exit codes, for every command: 0 all checks pass, 1 a check failed,
//! 2 bad scenario or usage, 3 the run itself failed, 130 `gauntlet run`
//! was stopped (Ctrl-C or SIGTERM) before it finished.

pub mod checks;
pub mod cli;
pub mod command;
pub mod load;
pub mod metrics;
pub mod regression;
pub mod report;
pub mod router;
pub mod run;
pub mod scenario;
pub mod target;

use std::process::ExitCode;

/// How a command ended, as the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything passed.
    Success = 0,
    /// A check failed.
    CheckFailed = 1,
    /// Bad scenario, config or usage.
    Usage = 2,
    /// The run itself failed (a port taken, a target unreachable).
    RunFailed = 3,
    /// The run was stopped (Ctrl-C or SIGTERM) before it finished: its
    /// verdict is incomplete. 128 + SIGINT, as shells report a command
    /// Ctrl-C ended.
    Stopped = 130,
}

impl Exit {
    /// The worse of two exits: a stop over a failed run over a usage error
    /// over a failed check over success.
    pub fn worse(self, other: Exit) -> Exit {
        if (other as u8) > (self as u8) { other } else { self }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// Runs a parsed command line to its end.
pub async fn run(cli: cli::Cli) -> Exit {
    match cli.command {
        cli::Command::Mock(args) => command::mock::run(args, command::until_ctrl_c()).await,
        cli::Command::Router(args) => command::router::run(args, command::until_ctrl_c()).await,
        cli::Command::Validate(args) => command::validate::run(&args),
        cli::Command::ExportConfig(args) => command::export_config::run(&args),
        cli::Command::Compare(args) => command::compare::run(&args),
        cli::Command::Baseline(args) => command::baseline::run(&args),
        cli::Command::Run(args) => command::run::run(args, command::until_ctrl_c()).await,
    }
}
