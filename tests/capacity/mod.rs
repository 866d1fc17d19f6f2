//! Bench and capacity runs end to end, in-process through the command line:
//! a `[floor]` measured in the same run and reported as ratios, and a
//! `[sweep]` that steps the rate up until a known limit breaks its SLO.

use std::path::{Path, PathBuf};

use clap::Parser;
use gauntlet::Exit;
use gauntlet::cli::Cli;
use serde_json::Value;

use crate::support::{CAPACITY, TempDir, TempFile, edit, report_schema};

/// The [`CAPACITY`] scenario named `name`, its mock answering after
/// `ttft_ms`, key `sk` with `key_extra` (limits), then `tail` (phases or a
/// sweep, and checks).
fn scenario(name: &str, ttft_ms: u32, key_extra: &str, tail: &str) -> String {
    let toml = edit(CAPACITY, "name = \"capacity\"", &format!("name = \"{name}\""));
    let toml = edit(&toml, "ttft-ms = 20", &format!("ttft-ms = {ttft_ms}"));
    edit(
        &toml,
        "credits = \"100\"\n",
        &format!("credits = \"100\"\n{key_extra}\n"),
    ) + tail
}

async fn run(file: &TempFile, out: &Path) -> Exit {
    let cli = Cli::try_parse_from(["gauntlet", "run", file.path(), "--out", out.to_str().unwrap()]).unwrap();
    gauntlet::run(cli).await
}

/// The one run folder under `out`, and its summary.json checked against the schema.
fn only_run(out: &Path) -> (PathBuf, Value) {
    let runs: Vec<PathBuf> = std::fs::read_dir(out).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = runs[0].clone();
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let problems: Vec<String> = report_schema().iter_errors(&summary).map(|e| e.to_string()).collect();
    assert!(problems.is_empty(), "summary.json breaks the schema: {problems:#?}");
    (run, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_floor_is_measured_in_the_same_run_and_the_router_is_reported_against_it() {
    let tail = r#"
[floor]
provider = "up"
[[phases]]
duration-s = 1
arrival = { kind = "constant", rate = 50 }
[[checks]]
kind = "error-rate"
max = 0.0
"#;
    let file = TempFile::new("floor", &scenario("floor-run", 20, "", tail));
    let out = TempDir::new("capacity-floor");
    assert_eq!(run(&file, out.path()).await, Exit::Success);
    let (dir, summary) = only_run(out.path());

    let floor = &summary["floor"];
    assert_eq!(floor["provider"], "up");
    assert_eq!(floor["requests"]["sent"], 50, "{floor}");
    assert_eq!(floor["requests"]["errors"], 0, "{floor}");
    assert_eq!(summary["requests"]["sent"], 50);
    // The mock takes 20 ms either way: both e2e medians are at least that,
    // and the router's is not far from the floor's.
    let floor_p50 = floor["metrics"]["e2e"]["p50_us"].as_u64().unwrap();
    let router_p50 = summary["metrics"]["e2e"]["p50_us"].as_u64().unwrap();
    assert!(floor_p50 >= 20_000 && router_p50 >= 20_000, "{floor_p50} {router_p50}");
    let ratio = floor["ratios"]["e2e"]["p50"].as_f64().unwrap();
    assert!((ratio - router_p50 as f64 / floor_p50 as f64).abs() < 1e-3, "{ratio}");
    assert!((0.8..3.0).contains(&ratio), "router/floor e2e p50 = {ratio}");
    let added = floor["added_us"]["e2e"]["p50"].as_i64().unwrap();
    assert_eq!(added, router_p50 as i64 - floor_p50 as i64);
    // The overhead join works at the floor too (client time − mock time).
    assert_eq!(floor["metrics"]["overhead"]["count"], 50, "{floor}");
    assert!(floor["ratios"]["overhead"]["p50"].as_f64().unwrap() > 0.0);
    assert!(floor["ratios"].get("dispatch").is_none());

    // requests.csv and attempts.csv hold the router's pass only, with ids
    // the floor did not use.
    let requests = std::fs::read_to_string(dir.join("requests.csv")).unwrap();
    assert_eq!(requests.lines().count() - 1, 50);
    assert!(requests.lines().skip(1).all(|l| l.starts_with("r0-")), "{requests}");
    let attempts = std::fs::read_to_string(dir.join("attempts.csv")).unwrap();
    assert!(
        !attempts.contains("r1000-"),
        "the floor's attempts leaked into attempts.csv"
    );
    for (file, needle) in [
        ("report.html", "Router against the floor"),
        ("summary.md", "Against the floor"),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(text.contains(needle), "{file} lacks `{needle}`");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_finds_the_knee_below_the_rate_where_a_key_limit_breaks_the_slo() {
    // Each answer takes 100 ms and the key allows 8 at once: about 80 req/s.
    // 20 and 40 req/s (2 and 4 in flight) hold; 160 req/s (16) answers 429s,
    // and so does the bisection step at 100 req/s (10).
    let tail = r#"
[sweep]
rates = [20, 40, 160]
step-duration-s = 1
refine = 1
min-knee = 30
[[checks]]
kind = "error-rate"
max = 0.01
"#;
    let file = TempFile::new("sweep", &scenario("sweep-run", 100, "concurrency = 8", tail));
    let out = TempDir::new("capacity-sweep");
    // On a busy machine the generator may fall behind at a step (its own
    // check then fails, exit 1); the knee is judged below either way.
    let exit = run(&file, out.path()).await;
    assert!(matches!(exit, Exit::Success | Exit::CheckFailed), "{exit:?}");
    let (dir, summary) = only_run(out.path());

    let sweep = &summary["sweep"];
    assert_eq!(sweep["knee_rate"], 40.0, "{sweep:#}");
    assert_eq!(sweep["broke_at_rate"], 100.0, "{sweep:#}");
    let steps = sweep["steps"].as_array().unwrap();
    let rates: Vec<f64> = steps.iter().map(|s| s["rate"].as_f64().unwrap()).collect();
    assert_eq!(rates, [20.0, 40.0, 100.0, 160.0]);
    let held: Vec<bool> = steps.iter().map(|s| s["held"].as_bool().unwrap()).collect();
    assert_eq!(held, [true, true, false, false]);
    assert_eq!(steps[2]["refined"], true);
    assert!(
        steps[3]["broke_because"][0].as_str().unwrap().contains("error rate"),
        "{:#}",
        steps[3]
    );
    let knee = summary["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "knee")
        .unwrap();
    assert_eq!(
        (knee["passed"].as_bool(), knee["measured"].as_f64()),
        (Some(true), Some(40.0))
    );

    // sweep.csv: a row per step by rate; requests.csv numbers the steps apart.
    let csv = std::fs::read_to_string(dir.join("sweep.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 5, "{csv}");
    assert!(rows[0].starts_with("step,rate,"), "{csv}");
    let requests = std::fs::read_to_string(dir.join("requests.csv")).unwrap();
    for phase in ["r0-", "r1-", "r2-", "r3-"] {
        assert!(requests.contains(phase), "no {phase} ids in requests.csv");
    }
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("Capacity: latency against offered rate"));
    assert!(html.contains("Knee: 40 req/s"), "the knee is not in report.html");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knee_below_min_knee_fails_the_run() {
    let tail = r#"
[sweep]
rates = [20, 160]
step-duration-s = 1
min-knee = 100
[[checks]]
kind = "error-rate"
max = 0.01
"#;
    let file = TempFile::new("sweep-min", &scenario("sweep-min", 100, "concurrency = 8", tail));
    let out = TempDir::new("capacity-sweep-min");
    assert_eq!(run(&file, out.path()).await, Exit::CheckFailed);
    let (_, summary) = only_run(out.path());
    assert_eq!(summary["sweep"]["knee_rate"], 20.0);
    assert_eq!(summary["passed"], false);
}
