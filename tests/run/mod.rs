//! `gauntlet run` end to end: a small scenario run in-process through the
//! command line, its reports, the built binary's exit code when a check
//! fails, and the `http` target path against a separate router process;
//! `faults` has the run under faults of its surroundings (an unwritable
//! report folder, a full disk, a refused target), `stop` the run stopped by
//! a signal.

use std::path::PathBuf;

use clap::Parser;
use gauntlet::Exit;
use gauntlet::cli::Cli;

use crate::support::{RUN, RUN_HTTP, RouterProcess, TempDir, TempFile, WARM_UP, edit, free_ports};

#[cfg(unix)]
mod faults;
#[cfg(unix)]
mod stop;

/// The [`RUN`] scenario with its ttft check bound to `ttft_bound_ms`.
fn scenario(ttft_bound_ms: &str) -> String {
    edit(RUN, "max-ms = 5000", &format!("max-ms = {ttft_bound_ms}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_runs_in_process_and_leaves_its_reports() {
    let file = TempFile::new("run-e2e", &scenario("5000"));
    let out = TempDir::new("run-pass");
    let cli = Cli::try_parse_from(["gauntlet", "run", file.path(), "--out", out.path().to_str().unwrap()]).unwrap();
    let exit = gauntlet::run(cli).await;
    assert_eq!(exit, Exit::Success);

    let runs: Vec<PathBuf> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert!(run.file_name().unwrap().to_str().unwrap().starts_with("run-e2e-"));
    for name in [
        "summary.json",
        "requests.csv",
        "attempts.csv",
        "timeseries.csv",
        "latency.hlog",
        "report.html",
        "junit.xml",
        "summary.md",
    ] {
        assert!(run.join(name).is_file(), "{name} missing in {}", run.display());
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let text = summary.to_string();
    assert!(text.contains("run-e2e"), "{text}");
    // Every request the client recorded is a row of requests.csv, and the
    // mocks journaled an attempt for each served one.
    let rows = std::fs::read_to_string(run.join("requests.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    let attempts = std::fs::read_to_string(run.join("attempts.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    assert!(rows >= 20, "{rows} requests");
    assert!(attempts >= rows, "{attempts} attempts for {rows} requests");
    let junit = std::fs::read_to_string(run.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase").count(), 3, "{junit}");
    assert!(!junit.contains("<failure"), "{junit}");
}

#[test]
fn a_failing_check_exits_1_and_a_bad_scenario_exits_2() {
    let file = TempFile::new("run-fail", &scenario("0.001"));
    let out = TempDir::new("run-fail");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(["run", file.path(), "--out", out.path().to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("FAIL"), "{stdout}");
    let junit = std::fs::read_dir(out.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("junit.xml");
    assert!(std::fs::read_to_string(junit).unwrap().contains("<failure"));

    let bad = TempFile::new("run-bad", "schema = 1\n[meta]\nname = \"x\"\n");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(["run", bad.path()])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The [`RUN_HTTP`] scenario: its mock provider listens on `provider_port`
/// and its `[router]` (for a separate `gauntlet router --config` process)
/// listens on `router_port` and sends upstream to that mock; `target` is its
/// `[target]` table, if any.
fn http_scenario(provider_port: u16, router_port: u16, target: &str) -> String {
    let toml = edit(RUN_HTTP, "{provider_port}", &provider_port.to_string());
    edit(&toml, "{router_port}", &router_port.to_string()) + target
}

fn run_binary(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .arg("run")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn an_http_target_is_a_separate_router_process_in_front_of_the_runs_mocks() {
    let ports = free_ports(2);
    let (provider_port, router_port) = (ports[0], ports[1]);
    let file = TempFile::new("run-http", &http_scenario(provider_port, router_port, ""));
    // The router connects upstream only when requests come: it can start
    // before `gauntlet run` serves the scenario's mock on its declared port.
    let router = RouterProcess::start(&["--config", file.path()]);
    assert_eq!(router.url(), format!("http://127.0.0.1:{router_port}"));
    let out = TempDir::new("run-http");
    let target = format!("{}/api/v1", router.url());
    let output = run_binary(&[file.path(), "--target", &target, "--out", out.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains(&target), "{stdout}");

    let runs: Vec<PathBuf> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    for name in ["summary.json", "requests.csv", "attempts.csv", "junit.xml"] {
        assert!(run.join(name).is_file(), "{name} missing in {}", run.display());
    }
    let requests = std::fs::read_to_string(run.join("requests.csv")).unwrap();
    let rows = requests.lines().count() - 1;
    assert!(rows >= 10, "{rows} requests:\n{requests}");
    // The mock `gauntlet run` served journaled the router's upstream
    // attempts, each carrying the id of the request it served.
    let attempts = std::fs::read_to_string(run.join("attempts.csv")).unwrap();
    let attempt_rows = attempts
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("oai,") && l.contains(",r0-"))
        .count();
    assert!(
        attempt_rows >= rows,
        "{attempt_rows} attempts for {rows} requests:\n{attempts}"
    );
    drop(router);
}

#[test]
fn an_http_target_that_never_answers_exits_3() {
    let ports = free_ports(3);
    let (provider_port, router_port, closed) = (ports[0], ports[1], ports[2]);
    let url = format!("http://127.0.0.1:{closed}/api/v1");
    let target = format!("[target]\nkind = \"http\"\nurl = \"{url}\"\nready-timeout-ms = 500\n");
    let file = TempFile::new("run-closed", &http_scenario(provider_port, router_port, &target));
    let out = TempDir::new("run-closed");
    let started = std::time::Instant::now();
    let output = run_binary(&[file.path(), "--target", &url, "--out", out.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}\n{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(stderr.contains("did not become ready"), "{stderr}");
    assert!(stderr.contains(&url), "{stderr}");
    // The scenario's ready timeout held, not the 30 s default.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// `--profile` names a built-in profile or one the scenario declares; an
/// unknown one is a usage error that lists those known.
#[test]
fn an_unknown_profile_is_a_usage_error_naming_the_known_ones() {
    let ports = free_ports(2);
    let profiles = "[profiles.my-gateway]\nbase = \"openai\"\n";
    let file = TempFile::new("run-profile", &(http_scenario(ports[0], ports[1], "") + profiles));
    let output = run_binary(&[file.path(), "--target", "http://127.0.0.1:9/v1", "--profile", "vllm"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--profile: no profile `vllm`"), "{stderr}");
    assert!(
        stderr.contains("openrouter, litellm, portkey, openai, my-gateway"),
        "{stderr}"
    );
}

/// The pipeline without the command line: a program loads a scenario and
/// calls `Run::execute`, and the outcome carries the exit class, the report
/// folder and every verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_a_library_call() {
    use gauntlet::run::{Run, RunOptions};
    let file = TempFile::new("run-library", &scenario("5000"));
    let scenario = gauntlet::scenario::Scenario::load(std::path::Path::new(file.path())).unwrap();
    let out = TempDir::new("run-library");
    let options = RunOptions {
        out: Some(out.path().to_path_buf()),
        ..RunOptions::default()
    };
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let outcome = Run::new(&scenario, options).execute(stop).await;
    assert_eq!(outcome.exit, Exit::Success);
    let dir = outcome.dir.expect("a report folder");
    assert!(
        dir.starts_with(out.path()) && dir.join("summary.json").is_file(),
        "{}",
        dir.display()
    );
    assert_eq!(outcome.results.len(), 3);
    assert!(outcome.results.iter().all(|c| c.passed()));
}

/// A report folder that cannot be made is the run's failure (exit 3), not
/// a silent loss: `--out` names a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_that_cannot_be_written_end_the_run_with_exit_3() {
    use gauntlet::run::{Run, RunOptions};
    let file = TempFile::new("run-unwritable", &scenario("5000"));
    let scenario = gauntlet::scenario::Scenario::load(std::path::Path::new(file.path())).unwrap();
    let not_a_folder = TempFile::new("run-unwritable-out", "a file, not a folder");
    let options = RunOptions {
        out: Some(PathBuf::from(not_a_folder.path())),
        ..RunOptions::default()
    };
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let outcome = Run::new(&scenario, options).execute(stop).await;
    assert_eq!(outcome.exit, Exit::RunFailed);
    assert!(outcome.results.is_empty());
    let error = outcome.error.expect("why the run failed").to_string();
    assert!(error.contains(not_a_folder.path()), "{error}");
}

/// A check the scenario did not exercise is skipped, with its reason, in
/// every report; it fails the run only under `--strict`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unexercised_check_is_skipped_and_fails_only_when_strict() {
    use gauntlet::checks::Verdict;
    use gauntlet::run::{Run, RunOptions};
    // The scenario's models have no deprecation: nothing is ever removed.
    let text = format!("{}\n[[checks]]\nkind = \"lifecycle-removed\"\n", scenario("5000"));
    let file = TempFile::new("run-skip", &text);
    let scenario = gauntlet::scenario::Scenario::load(std::path::Path::new(file.path())).unwrap();
    let out = TempDir::new("run-skip");
    for strict in [false, true] {
        let options = RunOptions {
            out: Some(out.path().to_path_buf()),
            strict,
            ..RunOptions::default()
        };
        let (_stop, stop) = tokio::sync::watch::channel(false);
        let outcome = Run::new(&scenario, options).execute(stop).await;
        let skipped: Vec<_> = outcome.results.iter().filter(|c| c.verdict == Verdict::Skip).collect();
        assert_eq!(skipped.len(), 1, "{:?}", outcome.results);
        assert!(skipped[0].detail.contains("did not exercise"), "{}", skipped[0].detail);
        assert_eq!(outcome.exit, if strict { Exit::CheckFailed } else { Exit::Success });
        let dir = outcome.dir.unwrap();
        let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
        assert!(
            junit.contains("skipped=\"1\"") && junit.contains("<skipped message="),
            "{junit}"
        );
        let summary = std::fs::read_to_string(dir.join("summary.json")).unwrap();
        assert!(summary.contains("\"verdict\": \"skip\""), "{summary}");
        let doc: serde_json::Value = serde_json::from_str(&summary).unwrap();
        assert_eq!(doc["passed"], serde_json::Value::Bool(!strict), "{summary}");
        let markdown = std::fs::read_to_string(dir.join("summary.md")).unwrap();
        assert!(markdown.contains("1 skipped"), "{markdown}");
    }
}

/// A floor whose requests all fail is no floor: the run fails (exit 3) and
/// says why, instead of reporting ratios against error answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_floor_of_failures_is_an_error_that_says_why() {
    use gauntlet::run::{Run, RunOptions};
    // The mock takes only the router's upstream key; the floor sends the
    // mix's key straight to it and gets 401s.
    let text = edit(
        &scenario("5000"),
        "[[providers]]\nname = \"ant\"",
        "[[providers.keys]]\nkey = \"k1\"\n[[providers]]\nname = \"ant\"",
    );
    let text = format!("{text}\n[floor]\nprovider = \"oai\"\n");
    let file = TempFile::new("run-bad-floor", &text);
    let scenario = gauntlet::scenario::Scenario::load(std::path::Path::new(file.path())).unwrap();
    let out = TempDir::new("run-bad-floor");
    let options = RunOptions {
        out: Some(out.path().to_path_buf()),
        ..RunOptions::default()
    };
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let outcome = Run::new(&scenario, options).execute(stop).await;
    assert_eq!(outcome.exit, Exit::RunFailed);
    let error = outcome.error.expect("why").to_string();
    assert!(
        error.contains("floor at mock `oai`") && error.contains("requests failed"),
        "{error}"
    );
}

/// The rows of a CSV report, each as (column name → value).
fn csv_rows(path: &std::path::Path) -> Vec<std::collections::HashMap<String, String>> {
    csv::Reader::from_path(path)
        .unwrap()
        .deserialize()
        .map(Result::unwrap)
        .collect()
}

/// A warm-up phase whose every request fails, after two retries each,
/// leaves the checks passing: its requests are in `requests.csv` marked
/// `warm_up`, its attempts in `attempts.csv`, and neither is in any count of
/// `summary.json` or in the evidence the checks judge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_up_phase_is_written_down_and_judged_by_nothing() {
    use gauntlet::run::{Run, RunOptions};
    let file = TempFile::new("run-warm-up", WARM_UP);
    let scenario = gauntlet::scenario::Scenario::load(std::path::Path::new(file.path())).unwrap();
    let out = TempDir::new("run-warm-up");
    let options = RunOptions {
        out: Some(out.path().to_path_buf()),
        ..RunOptions::default()
    };
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let outcome = Run::new(&scenario, options).execute(stop).await;
    assert_eq!(outcome.exit, Exit::Success, "{:#?}", outcome.results);
    let dir = outcome.dir.unwrap();

    let requests = csv_rows(&dir.join("requests.csv"));
    let (warm, measured): (Vec<_>, Vec<_>) = requests.iter().partition(|r| r["warm_up"] == "true");
    assert_eq!(warm.len(), 5, "the warm-up phase's five requests: {requests:#?}");
    assert!(
        warm.iter().all(|r| r["phase"] == "0" && r["outcome"] == "server_error"),
        "{warm:#?}"
    );
    assert!(measured.len() >= 15, "{} measured", measured.len());
    assert!(
        measured
            .iter()
            .all(|r| r["warm_up"] == "false" && r["phase"] == "1" && r["outcome"] == "ok")
    );
    // Their upstream attempts are written down too: three each.
    let attempts = csv_rows(&dir.join("attempts.csv"));
    let warm_attempts = attempts
        .iter()
        .filter(|a| a["correlation_id"].starts_with("r0-"))
        .count();
    assert_eq!(warm_attempts, 15, "{attempts:#?}");

    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let n = measured.len() as u64;
    assert_eq!(doc["requests"]["total"], n, "{doc:#}");
    assert_eq!(doc["requests"]["errors"], 0);
    assert_eq!(doc["outcomes"]["server_error"], 0);
    assert_eq!(doc["outcomes"]["ok"], n);
    assert_eq!(doc["metrics"]["e2e"]["count"], n);
    assert_eq!(doc["overhead_join"]["remembered"], n);
    assert_eq!(doc["phases"][0]["warm_up"], true);
    assert_eq!(doc["phases"][0]["sent"], 5);
    assert_eq!(doc["phases"][1]["warm_up"], false);
    let errors: Vec<String> = crate::support::report_schema()
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // The retries of the warm-up are not the router's storm.
    let storm = &doc["checks"][1];
    assert_eq!(storm["kind"], "retry-storm");
    let detail = storm["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!("{n} upstream attempts for {n} requests")),
        "{detail}"
    );
    let markdown = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(markdown.contains("Warm-up: phase `cold`"), "{markdown}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains(r#"<tr class="warm-up"><td>cold <span class="tag">warm-up</span>"#),
        "{html}"
    );
}
