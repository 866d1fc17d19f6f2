//! The conformance suite proves itself: run against the clean built-in
//! router every check passes; run once per deliberate defect
//! (`--builtin-defect NAME`), it exits 1 and the checks that fail are exactly
//! the ones scenarios/conformance/README.md lists for that defect.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::Parser;
use gauntlet::Exit;
use gauntlet::cli::Cli;
use gauntlet::router::Defects;

use crate::support::{TempDir, report_schema};

const SUITE: &str = "scenarios/conformance";
/// Suite runs at once: each is light (tens of requests a second), and the
/// timing bounds leave room for a shared machine.
const PARALLEL_RUNS: usize = 2;

/// The README's defect table: defect → the names of the checks it breaks.
fn expected_failures() -> BTreeMap<String, BTreeSet<String>> {
    let readme = std::fs::read_to_string(Path::new(SUITE).join("README.md")).unwrap();
    let section = readme
        .split("## Proof that each check can fail")
        .nth(1)
        .expect("the README has the defect table")
        .split("\n## ")
        .next()
        .unwrap();
    let mut table = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let ticked = |cell: &str| -> Vec<String> { cell.split('`').skip(1).step_by(2).map(str::to_string).collect() };
        let defect = ticked(cells[0]).remove(0);
        let checks: BTreeSet<String> = ticked(cells.last().unwrap()).into_iter().collect();
        assert!(!checks.is_empty(), "{defect}: the README names no check that fails");
        table.insert(defect, checks);
    }
    table
}

/// Runs the suite (with `defect`, if any) into `out`; its exit code and the
/// names of the checks that failed, over every scenario's summary.json.
async fn run_suite(defect: Option<String>, out: PathBuf) -> (Exit, BTreeSet<String>) {
    let mut args = vec![
        "gauntlet".to_string(),
        "run".into(),
        SUITE.into(),
        "--out".into(),
        out.to_str().unwrap().into(),
    ];
    if let Some(d) = defect {
        args.extend(["--builtin-defect".to_string(), d]);
    }
    let exit = gauntlet::run(Cli::try_parse_from(args).unwrap()).await;
    let mut failed = BTreeSet::new();
    let mut summaries = 0;
    for run in std::fs::read_dir(&out).unwrap() {
        let path = run.unwrap().path().join("summary.json");
        let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let errors: Vec<String> = report_schema()
            .iter_errors(&summary)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{} does not match reports/schema.json: {errors:#?}",
            path.display()
        );
        summaries += 1;
        for check in summary["checks"].as_array().unwrap() {
            if check["passed"] == false {
                failed.insert(check["name"].as_str().unwrap().to_string());
            }
        }
    }
    let scenarios = std::fs::read_dir(SUITE)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "toml"))
        .count();
    assert_eq!(summaries, scenarios, "every scenario leaves its summary");
    (exit, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_clean_and_each_defect_breaks_exactly_its_checks() {
    let expected = expected_failures();
    let listed: BTreeSet<&str> = expected.keys().map(String::as_str).collect();
    let known: BTreeSet<&str> = Defects::NAMES.into_iter().collect();
    assert_eq!(listed, known, "the README lists every defect, and only those");

    let dir = TempDir::new("conformance");
    let runs: Vec<Option<String>> = std::iter::once(None)
        .chain(expected.keys().cloned().map(Some))
        .collect();
    let mut results = BTreeMap::new();
    let mut pending = runs.into_iter();
    let mut set = tokio::task::JoinSet::new();
    loop {
        while set.len() < PARALLEL_RUNS {
            let Some(defect) = pending.next() else { break };
            let out = dir.join(defect.as_deref().unwrap_or("clean"));
            set.spawn(async move { (defect.clone(), run_suite(defect, out).await) });
        }
        let Some(joined) = set.join_next().await else { break };
        let (defect, outcome) = joined.unwrap();
        results.insert(defect, outcome);
    }

    let mut problems = Vec::new();
    for (defect, (exit, failed)) in &results {
        match defect {
            None => {
                if *exit != Exit::Success || !failed.is_empty() {
                    problems.push(format!("clean router: exit {exit:?}, failed {failed:?}"));
                }
            }
            Some(d) => {
                let want = &expected[d];
                if *exit != Exit::CheckFailed || failed != want {
                    problems.push(format!(
                        "--builtin-defect {d}: exit {exit:?}\n    failed:   {failed:?}\n    expected: {want:?}"
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "reports under {}:\n{}",
        dir.path().display(),
        problems.join("\n")
    );
}

#[test]
fn an_unknown_defect_is_a_usage_error() {
    let cli = Cli::try_parse_from(["gauntlet", "run", SUITE, "--builtin-defect", "bill-twice"]).unwrap();
    let exit = tokio::runtime::Runtime::new().unwrap().block_on(gauntlet::run(cli));
    assert_eq!(exit, Exit::Usage);
}

#[test]
fn the_defect_flag_is_hidden_from_help() {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let help = cmd.find_subcommand_mut("run").unwrap().render_long_help().to_string();
    assert!(!help.contains("builtin-defect"), "{help}");
}
