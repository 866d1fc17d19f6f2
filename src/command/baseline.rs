//! `gauntlet baseline --out FILE RUN...`: makes a regression baseline of
//! several runs of one bench scenario (see [`crate::regression`]); exits 2 if
//! a run cannot be read or used, 3 if the baseline cannot be written.

use crate::Exit;
use crate::cli::BaselineArgs;
use crate::regression::render::render_baseline;
use crate::regression::{Baseline, RECOMMENDED_RUNS, load_runs};

pub fn run(args: &BaselineArgs) -> Exit {
    let runs = match load_runs(&args.runs) {
        Ok(runs) => runs,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return Exit::Usage;
        }
    };
    for r in runs.iter().filter(|r| !r.passed) {
        eprintln!(
            "warning: {}: a check failed (an absolute speed goal, on this machine?); its ratios are taken all the same",
            r.file.display()
        );
    }
    let created_at = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let baseline = match Baseline::build(&runs, created_at) {
        Ok(baseline) => baseline,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    if let Err(e) = baseline.write(&args.out) {
        eprintln!("error: {e}");
        return Exit::RunFailed;
    }
    print!("{}", render_baseline(&baseline, &args.out));
    if baseline.runs < RECOMMENDED_RUNS {
        eprintln!(
            "warning: a baseline of {} run(s) is noisy; make it of {RECOMMENDED_RUNS} or more (`gauntlet run --repeat {RECOMMENDED_RUNS}`)",
            baseline.runs
        );
    }
    Exit::Success
}
