//! The `gauntlet` binary: parse the command line, build the runtime, dispatch.

use std::process::ExitCode;

use clap::Parser;
use gauntlet::{Exit, cli::Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::RunFailed.into();
        }
    };
    runtime.block_on(gauntlet::run(cli)).into()
}
