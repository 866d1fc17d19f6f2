//! `gauntlet export-config --for litellm|portkey SCENARIO [--mock-ports
//! BASE] [--out FILE]`: loads the scenario, places its mocks as
//! `--mock-ports` says, and writes the router's configuration
//! ([`crate::target::export`]) to stdout or a file. Exits 2 when the
//! scenario, BASE or the mocks' ports cannot make one, 3 when the file
//! cannot be written.

use std::io::Write;

use crate::Exit;
use crate::cli::{ExportConfigArgs, ExportRouterArg};
use crate::scenario::Scenario;
use crate::target::export::{ExportFor, Source, export};

pub fn run(args: &ExportConfigArgs) -> Exit {
    let text = match configuration(args) {
        Ok(text) => text,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::Usage;
        }
    };
    match &args.out {
        None => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            Exit::Success
        }
        Some(file) => match std::fs::write(file, text) {
            Ok(()) => {
                eprintln!("wrote {}", file.display());
                Exit::Success
            }
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", file.display());
                Exit::RunFailed
            }
        },
    }
}

/// The configuration's text, or what stands in the way.
fn configuration(args: &ExportConfigArgs) -> Result<String, String> {
    let mut scenario = Scenario::load(&args.scenario).map_err(|e| e.to_string())?;
    let file = scenario.file.display().to_string();
    if let Some(base) = args.mock_ports {
        scenario.pin_mock_ports(base).map_err(|e| format!("{file}: {e}"))?;
    }
    let Some(expect) = &scenario.expect else {
        return Err(format!(
            "{file}: the scenario has no [router] table to write a configuration from"
        ));
    };
    let mocks: Vec<(&str, std::net::SocketAddr)> = (scenario.mocks.iter())
        .map(|m| (m.config.name.as_str(), m.config.listen))
        .collect();
    let source = Source {
        file: &scenario.file,
        expect,
        mocks: &mocks,
        mock_ports: args.mock_ports,
    };
    let router = match args.router {
        ExportRouterArg::Litellm => ExportFor::Litellm,
        ExportRouterArg::Portkey => ExportFor::Portkey,
    };
    export(router, &source).map_err(|e| format!("{file}: {e}"))
}
