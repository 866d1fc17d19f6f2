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
