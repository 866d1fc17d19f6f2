//! `gauntlet validate FILE|DIR...`: reads and validates scenarios without
//! running them; exits 2 if any is invalid.

use std::io::Write;

use crate::Exit;
use crate::cli::ValidateArgs;
use crate::command::scenario_files;
use crate::scenario::Scenario;

pub fn run(args: &ValidateArgs) -> Exit {
    let files = match scenario_files(&args.paths) {
        Ok(files) => files,
        Err(exit) => return exit,
    };
    let mut failed = 0;
    let mut out = std::io::stdout().lock();
    for file in &files {
        match Scenario::load(file) {
            Ok(s) => {
                let _ = writeln!(
                    out,
                    "ok    {}  ({}: {} phase(s), {:.1} s, {} mix entr(ies), {} check(s))",
                    file.display(),
                    s.meta.name,
                    s.phases.len(),
                    s.duration().as_secs_f64(),
                    s.mix.len(),
                    s.checks.len()
                );
            }
            Err(e) => {
                failed += 1;
                let _ = out.flush();
                eprintln!("error: {e}");
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} scenario(s) invalid", files.len());
        Exit::Usage
    } else {
        Exit::Success
    }
}
