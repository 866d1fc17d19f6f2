//! The command line: clap derive structs whose doc comments are the help text.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Load-testing and conformance harness for LLM API routers.
#[derive(Debug, Parser)]
#[command(name = "gauntlet", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve mock upstream providers (OpenAI or Anthropic dialect) until Ctrl-C.
    Mock(MockArgs),
    /// Serve the reference router from the [router] table of a file until Ctrl-C.
    Router(RouterArgs),
    /// Run scenarios: start the mocks and the target, drive the load, check, report.
    ///
    /// Exit codes: 0 no check failed, 1 a check failed, 2 a bad scenario or
    /// usage, 3 the run itself failed (the error says why), 130 stopped by
    /// Ctrl-C or SIGTERM (the run in progress reports what it saw, its
    /// checks skipped; stderr names what was not run).
    Run(RunArgs),
    /// Check scenario files (or every *.toml under folders) without running them.
    Validate(ValidateArgs),
    /// Write a router's own configuration from a scenario's [router] table:
    /// its models, prices, upstreams (pointed at the scenario's mocks),
    /// retries, cooldown and keys, with a comment for what it cannot express.
    ///
    /// `--for litellm` writes a LiteLLM proxy config.yaml (`litellm --config
    /// FILE`); `--for portkey` writes the [target] table (an x-portkey-config
    /// header) to put in the scenario, as Portkey's gateway is configured per
    /// request. With the mocks on fixed ports (their `listen`, or
    /// --mock-ports BASE here and in `gauntlet mock`/`gauntlet run`), the
    /// router finds them.
    ExportConfig(ExportConfigArgs),
    /// Compare runs for regressions, against a baseline or another run; exit 1 if anything regressed.
    ///
    /// Against a baseline (BASE made by `gauntlet baseline`, or a folder of them
    /// such as reports/baselines/, where each CURRENT run is matched to
    /// <scenario>.json): for each metric and percentile, the median over the
    /// CURRENT runs of the router/floor ratio regresses when it is more than
    /// --tolerance percent above the baseline's median and above the baseline's
    /// largest repetition; it improves when symmetrically below. The runs need a
    /// "floor" section and `valid: true`.
    ///
    /// Against one other run (BASE a summary.json or run folder, one CURRENT):
    /// latency percentiles (p50, p90, p99, p99.9 of every metric with samples in
    /// both) regress when CURRENT is more than --max-regression PCT percent
    /// higher; request rates when more than PCT percent lower; the error rate
    /// when more than PCT/100 percentage points higher. These are absolute
    /// times: only meaningful on one machine.
    ///
    /// Exit codes: 0 nothing regressed, 1 something did, 2 an input cannot be
    /// read or used (or nothing could be compared).
    Compare(CompareArgs),
    /// Make a regression baseline of several runs of one bench scenario.
    ///
    /// The runs need a "floor" section (the bench scenarios in scenarios/bench/),
    /// one scenario name, `valid: true` (the generator kept up) and no failed
    /// request; a run that missed an absolute speed goal is taken with a warning.
    /// The baseline keeps, for every metric and percentile of the floor ratios,
    /// their median, min and max over the runs. To refresh one: `gauntlet run scenarios/bench/X.toml
    /// --repeat 3`, then `gauntlet baseline --out reports/baselines/X.json
    /// reports/runs/X-*`.
    Baseline(BaselineArgs),
}

/// Scenarios to run, and what to override.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario files, or folders searched for *.toml (run in name order).
    #[arg(required = true, value_name = "SCENARIO|DIR")]
    pub paths: Vec<PathBuf>,

    /// Send the load to this router (its API base URL, e.g. http://127.0.0.1:8080/api/v1)
    /// instead of the scenario's target; the mocks still start on their declared ports.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,

    /// The target's kind of router: how to read its costs and balances,
    /// ask whether it is ready, and which features it has (with --target,
    /// or to override an HTTP target's profile): openrouter, litellm,
    /// portkey, openai, or one the scenario declares in [profiles.NAME].
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// Poll this URL until it answers 2xx before the load starts (an HTTP
    /// target's; e.g. LiteLLM's http://127.0.0.1:4000/health/liveliness),
    /// instead of the scenario's ready-url or `{target}/models`.
    #[arg(long, value_name = "URL")]
    pub ready_url: Option<String>,

    /// A header to send with every request to an HTTP target, readiness
    /// checks and account probes included, e.g. 'x-portkey-provider: openai'
    /// (repeatable; replaces the scenario's header of the same name).
    #[arg(long = "header", value_name = "'NAME: VALUE'")]
    pub headers: Vec<String>,

    /// Fail the run when a check is skipped (the router lacks the feature,
    /// or the scenario did not exercise it), not only when one fails.
    #[arg(long)]
    pub strict: bool,

    /// Write reports under this folder instead of the scenario's [report] dir.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Use this seed instead of the scenario's.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Start the scenario's mocks on 127.0.0.1:BASE, BASE+1, … (in the
    /// order they are declared) instead of their `listen` addresses, so an
    /// external router configured for those ports finds them.
    #[arg(long, value_name = "BASE")]
    pub mock_ports: Option<u16>,

    /// Run each scenario this many times in a row, each in its own report
    /// folder (repetitions for `gauntlet compare` and `gauntlet baseline`).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,

    /// Make the built-in router misbehave on purpose (repeatable), to prove
    /// that the conformance checks catch it; see scenarios/conformance/README.md
    /// for the names and the checks each one breaks.
    #[arg(long, value_name = "NAME", hide = true)]
    pub builtin_defect: Vec<String>,
}

/// The router to write a configuration for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportRouterArg {
    /// LiteLLM proxy: a config.yaml for `litellm --config`.
    Litellm,
    /// Portkey's gateway: the x-portkey-config header, as a scenario [target] table.
    Portkey,
}

/// A scenario, and which router's configuration to write from it.
#[derive(Debug, Args)]
pub struct ExportConfigArgs {
    /// The router whose configuration to write.
    #[arg(long = "for", value_enum, value_name = "ROUTER")]
    pub router: ExportRouterArg,

    /// The scenario file whose [router] table (and [[providers]] mocks) it comes from.
    #[arg(value_name = "SCENARIO")]
    pub scenario: PathBuf,

    /// Point the router at the mocks on 127.0.0.1:BASE, BASE+1, … (as
    /// `gauntlet mock`/`gauntlet run --mock-ports BASE` start them) instead
    /// of their `listen` addresses.
    #[arg(long, value_name = "BASE")]
    pub mock_ports: Option<u16>,

    /// Write it to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Scenario files or folders to check.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files, or folders searched for *.toml.
    #[arg(required = true, value_name = "SCENARIO|DIR")]
    pub paths: Vec<PathBuf>,
}

/// What to compare with what, and how much change passes. Each mode's flags
/// are refused in the other.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// A baseline file, a folder of baselines (reports/baselines/), or a
    /// summary.json or run folder to compare one run with.
    #[arg(value_name = "BASE")]
    pub base: PathBuf,

    /// The runs under test: summary.json files, run folders, or folders of run
    /// folders (exactly one run when BASE is a run).
    #[arg(value_name = "CURRENT", required = true)]
    pub current: Vec<PathBuf>,

    /// How many percent worse than BASE a metric may get before it counts as a
    /// regression [default: 10].
    #[arg(long, value_name = "PCT", help_heading = "Against one other run")]
    pub max_regression: Option<f64>,

    /// How many percent above the baseline's median ratio the current median
    /// may get (and it must also pass the baseline's largest run) before it
    /// counts as a regression [default: 10].
    #[arg(long, value_name = "PCT", help_heading = "Against a baseline")]
    pub tolerance: Option<f64>,

    /// The metrics whose ratios are judged, comma-separated; those a run or the
    /// baseline lacks are skipped with a note [default: e2e,ttft,overhead].
    #[arg(
        long,
        value_name = "LIST",
        value_enum,
        value_delimiter = ',',
        help_heading = "Against a baseline"
    )]
    pub metrics: Vec<RatioMetricArg>,

    /// The percentiles judged, comma-separated [default: p50,p90,p99].
    #[arg(
        long,
        value_name = "LIST",
        value_enum,
        value_delimiter = ',',
        help_heading = "Against a baseline"
    )]
    pub percentiles: Vec<PercentileArg>,

    /// Refuse (exit 2) to judge a scenario with fewer CURRENT runs than this;
    /// whatever N, fewer than 3 runs draw a warning, as one run is noisy [default: 1].
    #[arg(long, value_name = "N", help_heading = "Against a baseline")]
    pub min_runs: Option<NonZeroUsize>,
}

/// A metric with a router/floor ratio (all but `dispatch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum RatioMetricArg {
    E2e,
    E2eFromSend,
    Ttft,
    TtftFromSend,
    Itl,
    Tpot,
    Overhead,
}

/// A percentile of a ratio, by its key in summary.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PercentileArg {
    P50,
    P90,
    P99,
    P999,
}

/// Runs of one bench scenario, and where their baseline goes.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// Write the baseline here (conventionally reports/baselines/<scenario>.json);
    /// an existing file is replaced.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// The runs: summary.json files, run folders, or folders of run folders.
    #[arg(value_name = "RUN", required = true)]
    pub runs: Vec<PathBuf>,
}

/// The reference router, from a scenario or router config file.
#[derive(Debug, Args)]
pub struct RouterArgs {
    /// A TOML file with a [router] table (scenarios/demo.toml has one).
    #[arg(long, value_name = "FILE", required_unless_present = "check_ledger")]
    pub config: Option<PathBuf>,

    /// Check the ledger FILE offline instead of serving, without changing
    /// it: every row, every account's spent against its generations, the
    /// write-ahead log. Prints each account; exits 0 if it adds up, 3 if not.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["config", "listen"])]
    pub check_ledger: Option<PathBuf>,

    /// Listen here instead of the file's `listen` (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

/// Either one provider from flags, or every `[[providers]]` table of a file.
#[derive(Debug, Args)]
pub struct MockArgs {
    /// Serve every [[providers]] table of this TOML file (a scenario file works).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["dialect", "listen", "seed"])]
    pub config: Option<PathBuf>,

    /// Serve one provider speaking this dialect, answering any model name.
    #[arg(long, value_enum, required_unless_present = "config")]
    pub dialect: Option<DialectArg>,

    /// Address for the one provider; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// Seed of the provider's delays and answers.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Serve the --config file's providers on 127.0.0.1:BASE, BASE+1, …
    /// (in the order they are declared) instead of their `listen` addresses.
    #[arg(long, value_name = "BASE")]
    pub mock_ports: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DialectArg {
    Openai,
    Anthropic,
}
