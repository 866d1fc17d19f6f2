//! `gauntlet run` end to end: a small scenario run in-process through the
//! command line, its reports, the built binary's exit code when a check
//! fails, and the `http` target path against a separate router process.

// A test reports failure by panicking; unwrap, expect and panic! are how.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;

use clap::Parser;
use gauntlet::Exit;
use gauntlet::cli::Cli;
use support::{RouterProcess, TempFile, free_ports};

/// A two-second scenario: both dialects, streamed and whole, through the
/// built-in router, with checks that pass on any machine.
fn scenario(ttft_bound_ms: &str) -> String {
    format!(
        r#"
schema = 1
[meta]
name = "run-e2e"
seed = 3
[[providers]]
name = "oai"
dialect = "openai"
[providers.defaults]
ttft-ms = 5
itl-ms = 2
output-tokens = 8
[[providers]]
name = "ant"
dialect = "anthropic"
[providers.defaults]
ttft-ms = 5
itl-ms = 2
output-tokens = 8
[router]
[[router.providers]]
name = "oai"
dialect = "openai"
base-url = "mock:oai"
api-key = "k1"
[[router.providers]]
name = "ant"
dialect = "anthropic"
base-url = "mock:ant"
api-key = "k2"
[[router.models]]
id = "o/m"
providers = ["oai"]
prompt = "0.15"
completion = "0.60"
[[router.models]]
id = "a/m"
providers = ["ant"]
prompt = "3"
completion = "15"
[[router.keys]]
key = "sk"
credits = "10"
[[mix]]
model = "o/m"
key = "sk"
stream = true
[[mix]]
model = "a/m"
key = "sk"
[[phases]]
duration-s = 1
arrival = {{ kind = "constant", rate = 20 }}
[[phases]]
duration-s = 1
users = {{ count = 2, think-ms = 50 }}
[[faults]]
at-ms = 500
provider = "oai"
set = []
[slo]
e2e-ms = 10000
[[checks]]
kind = "latency"
metric = "ttft"
max-ms = {ttft_bound_ms}
[[checks]]
kind = "error-rate"
max = 0.0
[[checks]]
kind = "goodput"
min = 0.9
"#
    )
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gauntlet-run-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_runs_in_process_and_leaves_its_reports() {
    let file = TempFile::new("run-e2e", &scenario("5000"));
    let out = out_dir("pass");
    let cli = Cli::try_parse_from(["gauntlet", "run", file.path(), "--out", out.to_str().unwrap()]).unwrap();
    let exit = gauntlet::run(cli).await;
    assert_eq!(exit, Exit::Success);

    let runs: Vec<PathBuf> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()).collect();
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
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_failing_check_exits_1_and_a_bad_scenario_exits_2() {
    let file = TempFile::new("run-fail", &scenario("0.001"));
    let out = out_dir("fail");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(["run", file.path(), "--out", out.to_str().unwrap()])
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
    let junit = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("junit.xml");
    assert!(std::fs::read_to_string(junit).unwrap().contains("<failure"));
    let _ = std::fs::remove_dir_all(&out);

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

/// A scenario whose mock provider listens on `provider_port` and whose
/// `[router]` (for a separate `gauntlet router --config` process) listens on
/// `router_port` and sends upstream to that mock; `target` is its `[target]`
/// table, if any.
fn http_scenario(provider_port: u16, router_port: u16, target: &str) -> String {
    format!(
        r#"
schema = 1
[meta]
name = "run-http"
seed = 5
{target}
[[providers]]
name = "oai"
dialect = "openai"
listen = "127.0.0.1:{provider_port}"
[providers.defaults]
ttft-ms = 5
itl-ms = 2
output-tokens = 8
[router]
listen = "127.0.0.1:{router_port}"
[[router.providers]]
name = "oai"
dialect = "openai"
base-url = "http://127.0.0.1:{provider_port}"
api-key = "k1"
[[router.models]]
id = "o/m"
providers = ["oai"]
prompt = "0.15"
completion = "0.60"
[[router.keys]]
key = "sk"
credits = "10"
[[mix]]
model = "o/m"
key = "sk"
stream = true
[[mix]]
model = "o/m"
key = "sk"
[[phases]]
duration-s = 1
arrival = {{ kind = "constant", rate = 15 }}
[[checks]]
kind = "error-rate"
max = 0.0
"#
    )
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
    let out = out_dir("http");
    let target = format!("{}/api/v1", router.url());
    let output = run_binary(&[file.path(), "--target", &target, "--out", out.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains(&target), "{stdout}");

    let runs: Vec<PathBuf> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()).collect();
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
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn an_http_target_that_never_answers_exits_3() {
    let ports = free_ports(3);
    let (provider_port, router_port, closed) = (ports[0], ports[1], ports[2]);
    let url = format!("http://127.0.0.1:{closed}/api/v1");
    let target = format!("[target]\nkind = \"http\"\nurl = \"{url}\"\nready-timeout-ms = 500\n");
    let file = TempFile::new("run-closed", &http_scenario(provider_port, router_port, &target));
    let out = out_dir("closed");
    let started = std::time::Instant::now();
    let output = run_binary(&[file.path(), "--target", &url, "--out", out.to_str().unwrap()]);
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
    let _ = std::fs::remove_dir_all(&out);
}
