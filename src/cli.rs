//! The command line: clap derive structs whose doc comments are the help text.

use std::net::SocketAddr;
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
    Run(RunArgs),
    /// Check scenario files (or every *.toml under folders) without running them.
    Validate(ValidateArgs),
    /// Compare two runs' summary.json for regressions; exit 1 if any metric regressed.
    ///
    /// Latency percentiles (p50, p90, p99, p99.9 of every metric with samples in
    /// both) regress when CURRENT is more than PCT percent higher; request rates
    /// when more than PCT percent lower; the error rate when more than PCT/100
    /// percentage points higher.
    Compare(CompareArgs),
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

    /// Write reports under this folder instead of the scenario's [report] dir.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Use this seed instead of the scenario's.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Make the built-in router misbehave on purpose (repeatable), to prove
    /// that the conformance checks catch it; see scenarios/conformance/README.md
    /// for the names and the checks each one breaks.
    #[arg(long, value_name = "NAME", hide = true)]
    pub builtin_defect: Vec<String>,
}

/// Scenario files or folders to check.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files, or folders searched for *.toml.
    #[arg(required = true, value_name = "SCENARIO|DIR")]
    pub paths: Vec<PathBuf>,
}

/// Two runs to compare, and how much worse CURRENT may be.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a summary.json, or a run folder holding one.
    #[arg(value_name = "BASE")]
    pub base: PathBuf,

    /// The run under test: a summary.json, or a run folder holding one.
    #[arg(value_name = "CURRENT")]
    pub current: PathBuf,

    /// How many percent worse than BASE a metric may get before it counts as a regression.
    #[arg(long, value_name = "PCT", default_value_t = 10.0)]
    pub max_regression: f64,
}

/// The reference router, from a scenario or router config file.
#[derive(Debug, Args)]
pub struct RouterArgs {
    /// A TOML file with a [router] table (scenarios/demo.toml has one).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DialectArg {
    Openai,
    Anthropic,
}
