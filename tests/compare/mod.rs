//! `gauntlet compare` and `gauntlet baseline` on the built binary: exit codes
//! and the tables, over hand-written `summary.json` files shaped like
//! `src/report/json.rs` writes (bench runs with their `floor` section).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::support::{TempDir, report_schema};

const BIN: &str = env!("CARGO_BIN_EXE_gauntlet");

fn percentiles(p50: u64, p90: u64, p99: u64) -> String {
    format!(
        r#"{{"count": 1000, "min_us": 100, "mean_us": {p50}.0, "p50_us": {p50}, "p90_us": {p90},
            "p99_us": {p99}, "p999_us": {p99}, "max_us": {p99}}}"#
    )
}

/// A `summary.json` of schema version 1 with the given e2e percentiles.
fn summary(e2e_p50: u64, e2e_p90: u64, e2e_p99: u64) -> String {
    let e2e = percentiles(e2e_p50, e2e_p90, e2e_p99);
    let empty = r#"{"count": 0, "min_us": 0, "mean_us": 0.0, "p50_us": 0, "p90_us": 0,
                    "p99_us": 0, "p999_us": 0, "max_us": 0}"#;
    let dispatch = percentiles(50, 80, 120);
    format!(
        r#"{{
  "schema_version": 1,
  "gauntlet_version": "0.1.0",
  "scenario": {{"name": "demo", "file": "scenarios/demo.toml", "description": "", "seed": 7, "tags": []}},
  "target": {{"kind": "builtin", "url": null}},
  "started_us": 1700000000000000,
  "ended_us": 1700000010000000,
  "started_at": "2023-11-14T22:13:20Z",
  "ended_at": "2023-11-14T22:13:30Z",
  "duration_s": 10.0,
  "stopped": false,
  "passed": true,
  "valid": true,
  "validity": {{"problems": [], "worst_rate_share": 1.0, "dispatch_p99_us": 120, "dropped": 0}},
  "phases": [{{"name": "steady", "kind": "open", "started_us": 1700000000000000,
               "ended_us": 1700000010000000, "duration_s": 10.0, "requested": 1000, "sent": 1000,
               "dropped": 0, "completed": 1000, "expected_rate": 100.0, "achieved_rate": 100.0}}],
  "requests": {{"total": 1000, "sent": 1000, "errors": 2, "error_rate": 0.002}},
  "outcomes": {{"ok": 998, "rate_limited": 0, "payment_required": 0, "not_found": 0,
                "client_error": 0, "server_error": 2, "stream_error": 0, "timeout": 0,
                "connect_error": 0, "reset": 0, "dropped": 0}},
  "metrics": {{"e2e": {e2e}, "e2e_from_send": {e2e}, "ttft": {empty}, "ttft_from_send": {empty},
               "itl": {empty}, "tpot": {empty}, "dispatch": {dispatch}, "overhead": {empty}}},
  "tokens": {{"streams_with_usage": 0, "streams_without_usage": 0, "content_chunks": 0,
              "completion_tokens": 0, "mismatched": 0, "mismatch_examples": []}},
  "goodput": {{"slo": {{"ttft_ms": null, "e2e_ms": 500.0, "tpot_ms": null}}, "good": 998,
               "sent": 1000, "ratio": 0.998}},
  "overhead_join": {{"remembered": 0, "matched": 0, "unmatched": 0, "negative": 0}},
  "unrecorded_samples": 0,
  "checks": []
}}"#
    )
}

fn gauntlet(args: &[&Path]) -> Output {
    Command::new(BIN)
        .arg("compare")
        .args(args)
        .output()
        .expect("cannot run the gauntlet binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn identical_runs_pass() {
    let dir = TempDir::new("same");
    let base = dir.write("base/summary.json", &summary(10_000, 20_000, 40_000));
    let current = dir.write("current.json", &summary(10_000, 20_000, 40_000));
    // BASE as a run folder, CURRENT as a file.
    let out = gauntlet(&[base.parent().unwrap(), &current]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("e2e p99"), "{stdout}");
    assert!(stdout.contains("error rate"), "{stdout}");
    assert!(!stdout.contains("REGRESSED"), "{stdout}");
}

#[test]
fn a_slower_p99_fails_and_is_named() {
    let dir = TempDir::new("slower");
    let base = dir.write("base.json", &summary(10_000, 20_000, 40_000));
    let current = dir.write("current.json", &summary(10_000, 20_000, 60_000));
    let out = Command::new(BIN)
        .arg("compare")
        .arg(&base)
        .arg(&current)
        .args(["--max-regression", "10"])
        .output()
        .expect("cannot run the gauntlet binary");
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("e2e p99 "))
        .unwrap_or_else(|| panic!("no e2e p99 row in:\n{stdout}"));
    assert!(row.contains("+50.0 %") && row.contains("REGRESSED"), "{row}");
    let p50 = stdout.lines().find(|l| l.starts_with("e2e p50 ")).unwrap();
    assert!(!p50.contains("REGRESSED"), "{p50}");
}

#[test]
fn a_missing_file_is_a_usage_error() {
    let dir = TempDir::new("missing");
    let base = dir.write("base.json", &summary(10_000, 20_000, 40_000));
    let missing = dir.join("nowhere.json");
    let out = gauntlet(&[&base, &missing]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("nowhere.json") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

#[test]
fn a_malformed_file_is_a_usage_error() {
    let dir = TempDir::new("malformed");
    let base = dir.write("base.json", &summary(10_000, 20_000, 40_000));
    let bad = dir.write("bad.json", r#"{"schema_version": 1}"#);
    let out = gauntlet(&[&base, &bad]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains("bad.json") && stderr.contains("metrics"), "{stderr}");
}

/// The hand-written fixtures are real `summary.json`s: they pass the checked-in schema.
#[test]
fn the_fixtures_match_the_report_schema() {
    let validator = report_schema();
    let plain: serde_json::Value = serde_json::from_str(&summary(10_000, 20_000, 40_000)).unwrap();
    for doc in [plain, bench_summary("bench", 1.3, 2.0)] {
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
    }
}

/// A bench run's `summary.json`: the fixture above, of scenario `scenario`,
/// with latency and overhead samples and a `floor` section whose `e2e`
/// ratios are `p50` and `p99` (p90 between them; p99.9 null, a floor of 0).
fn bench_summary(scenario: &str, p50: f64, p99: f64) -> Value {
    let mut doc: Value = serde_json::from_str(&summary(13_000, 15_000, 30_000)).unwrap();
    doc["scenario"]["name"] = json!(scenario);
    // A baseline is made of runs where every request succeeded.
    doc["requests"] = json!({"total": 1000, "sent": 1000, "errors": 0, "error_rate": 0.0});
    doc["metrics"]["overhead"] = serde_json::from_str(&percentiles(45, 60, 300)).unwrap();
    let mut floor_metrics = doc["metrics"].clone();
    floor_metrics["e2e"] = serde_json::from_str(&percentiles(10_000, 11_000, 20_000)).unwrap();
    floor_metrics["e2e_from_send"] = floor_metrics["e2e"].clone();
    floor_metrics["overhead"] = serde_json::from_str(&percentiles(30, 40, 150)).unwrap();
    let e2e = json!({"p50": p50, "p90": (p50 + p99) / 2.0, "p99": p99, "p999": null});
    doc["floor"] = json!({
        "provider": "bench-mock",
        "url": "http://127.0.0.1:18201/v1",
        "duration_s": 10.2,
        "valid": true,
        "validity": {"problems": [], "worst_rate_share": 0.999, "dispatch_p99_us": 310, "dropped": 0},
        "requests": {"total": 1000, "sent": 1000, "errors": 0, "error_rate": 0.0},
        "metrics": floor_metrics,
        "ratios": {
            "e2e": e2e,
            "e2e_from_send": e2e,
            "overhead": {"p50": 1.5, "p90": 1.5, "p99": 2.0, "p999": 2.0},
        },
        "added_us": {
            "e2e": {"p50": 3000, "p90": 4000, "p99": 10000, "p999": 10000},
            "e2e_from_send": {"p50": 3000, "p90": 4000, "p99": 10000, "p999": 10000},
            "overhead": {"p50": 15, "p90": 20, "p99": 150, "p999": 150},
        },
    });
    doc
}

fn run_bin(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("cannot run the gauntlet binary")
}

fn report(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr))
}

/// Three runs of `bench` under `runs/` with e2e p50 ratios around 1.3 and
/// p99 around 2.0, and the baseline made of them at `baselines/bench.json`.
fn baselined(stem: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(stem);
    for (i, (p50, p99)) in [(1.30, 2.0), (1.35, 2.2), (1.32, 1.9)].into_iter().enumerate() {
        dir.write_json(
            &format!("runs/bench-{i}/summary.json"),
            &bench_summary("bench", p50, p99),
        );
    }
    let file = dir.join("baselines/bench.json");
    let out = run_bin(&[&"baseline", &"--out", &file, &dir.join("runs")]);
    assert_eq!(out.status.code(), Some(0), "{}", report(&out));
    (dir, file)
}

#[test]
fn a_baseline_keeps_the_median_and_range_of_each_ratio() {
    let (_dir, file) = baselined("baseline");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(doc["baseline_version"], 1);
    assert_eq!(doc["scenario"], "bench");
    assert_eq!(doc["runs"], 3);
    assert_eq!(doc["sources"], json!(["bench-0", "bench-1", "bench-2"]));
    assert_eq!(
        doc["ratios"]["e2e"]["p50"],
        json!({"median": 1.32, "min": 1.3, "max": 1.35})
    );
    assert_eq!(
        doc["ratios"]["e2e"]["p99"],
        json!({"median": 2.0, "min": 1.9, "max": 2.2})
    );
    assert!(doc["ratios"]["e2e"].get("p999").is_none(), "a null ratio has no spread");
    assert!(doc["ratios"].get("dispatch").is_none());
    assert_eq!(doc["machine_dependent"]["router_overhead_p50_us"], 45.0);
    assert_eq!(doc["machine_dependent"]["floor_e2e_p50_us"], 10_000.0);
    let created = doc["created_at"].as_str().unwrap();
    assert!(created.parse::<jiff::Timestamp>().is_ok(), "{created}");
}

#[test]
fn runs_within_the_band_pass() {
    let (dir, _) = baselined("pass");
    for (i, (p50, p99)) in [(1.36, 2.1), (1.31, 2.25), (1.34, 2.0)].into_iter().enumerate() {
        dir.write_json(
            &format!("new/bench-{i}/summary.json"),
            &bench_summary("bench", p50, p99),
        );
    }
    // BASE as the folder of baselines, CURRENT as run folders.
    let out = run_bin(&[
        &"compare",
        &dir.join("baselines"),
        &dir.join("new/bench-0"),
        &dir.join("new/bench-1"),
        &dir.join("new/bench-2"),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", report(&out));
    let row = stdout
        .lines()
        .find(|l| l.starts_with("e2e ") && l.contains(" p99 "))
        .unwrap_or_else(|| panic!("no e2e p99 row in:\n{stdout}"));
    // Median 2.1 against 2.0 [1.9–2.2], three runs.
    assert!(
        row.contains("2.000 [1.900–2.200]") && row.contains("2.100 [2.000–2.250]"),
        "{row}"
    );
    assert!(row.contains("+5.0 %") && row.ends_with("ok"), "{row}");
    assert!(stdout.contains("not compared: ttft (not in the baseline)"), "{stdout}");
    assert!(!stdout.contains("REGRESSED"), "{stdout}");
    assert!(!text(&out.stderr).contains("warning"), "{}", report(&out));
}

#[test]
fn a_slower_median_ratio_regresses() {
    let (dir, file) = baselined("regress");
    // p99 ratio 2.6: 30 % above the median, above the baseline's worst 2.2.
    for i in 0..3 {
        dir.write_json(
            &format!("new/bench-{i}/summary.json"),
            &bench_summary("bench", 1.32, 2.6),
        );
    }
    let out = run_bin(&[&"compare", &file, &dir.join("new"), &"--tolerance", &"10"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", report(&out));
    let p99 = stdout
        .lines()
        .find(|l| l.starts_with("e2e ") && l.contains(" p99 "))
        .unwrap();
    assert!(p99.contains("+30.0 %") && p99.ends_with("REGRESSED"), "{p99}");
    let p50 = stdout
        .lines()
        .find(|l| l.starts_with("e2e ") && l.contains(" p50 "))
        .unwrap();
    assert!(p50.ends_with("ok"), "{p50}");
    assert!(
        stdout.contains("regressed") && stdout.contains("bench e2e p99"),
        "{stdout}"
    );
    // A wider tolerance lets it pass; a single run draws a warning.
    let out = run_bin(&[&"compare", &file, &dir.join("new/bench-0"), &"--tolerance", &"40"]);
    assert_eq!(out.status.code(), Some(0), "{}", report(&out));
    assert!(text(&out.stderr).contains("is noisy"), "{}", report(&out));
    let out = run_bin(&[&"compare", &file, &dir.join("new/bench-0"), &"--min-runs", &"3"]);
    assert_eq!(out.status.code(), Some(2), "{}", report(&out));
}

#[test]
fn an_invalid_run_is_refused() {
    let (dir, file) = baselined("invalid");
    let mut invalid = bench_summary("bench", 1.3, 2.0);
    invalid["valid"] = json!(false);
    invalid["validity"]["problems"] = json!(["phase steady reached 80 % of its rate"]);
    let bad = dir.write_json("new/slow/summary.json", &invalid);
    let out = run_bin(&[&"compare", &file, &bad]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", report(&out));
    assert!(
        stderr.contains("slow/summary.json: the run is not valid (phase steady reached 80 % of its rate)"),
        "{stderr}"
    );
    // Nor does a baseline take it, or a run without a floor.
    let no_floor = dir.write("new/plain/summary.json", &summary(10_000, 20_000, 40_000));
    let out = run_bin(&[&"baseline", &"--out", &dir.join("b.json"), &bad, &no_floor]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", report(&out));
    assert!(stderr.contains("slow/summary.json: the run is not valid"), "{stderr}");
    assert!(stderr.contains("plain/summary.json: no \"floor\" section"), "{stderr}");
    assert!(!dir.join("b.json").exists());
}

#[test]
fn mismatched_scenarios_are_refused() {
    let (dir, file) = baselined("mismatch");
    let other = dir.write_json("new/other/summary.json", &bench_summary("other", 1.3, 2.0));
    let same = dir.write_json("new/same/summary.json", &bench_summary("bench", 1.3, 2.0));
    // A baseline is of one scenario.
    let out = run_bin(&[&"baseline", &"--out", &dir.join("b.json"), &other, &same]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", report(&out));
    assert!(
        stderr.contains("different scenarios")
            && stderr.contains("other/summary.json")
            && stderr.contains("same/summary.json"),
        "{stderr}"
    );
    // A baseline file judges runs of its own scenario only.
    let out = run_bin(&[&"compare", &file, &other]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", report(&out));
    assert!(
        stderr.contains("other/summary.json") && stderr.contains("a baseline of bench"),
        "{stderr}"
    );
    // A folder of baselines skips scenarios it has none for...
    let out = run_bin(&[&"compare", &dir.join("baselines"), &other, &same]);
    assert_eq!(out.status.code(), Some(0), "{}", report(&out));
    assert!(
        text(&out.stdout).contains("skipped other (1 run(s)): no baseline"),
        "{}",
        report(&out)
    );
    // ...and with nothing compared at all, fails.
    let out = run_bin(&[&"compare", &dir.join("baselines"), &other]);
    assert_eq!(out.status.code(), Some(2), "{}", report(&out));
    assert!(text(&out.stderr).contains("nothing compared"), "{}", report(&out));
}

#[test]
fn each_mode_refuses_the_others_flags() {
    let (dir, file) = baselined("flags");
    let base = dir.write("base.json", &summary(10_000, 20_000, 40_000));
    let current = dir.write("current.json", &summary(10_000, 20_000, 40_000));
    let out = run_bin(&[&"compare", &base, &current, &"--tolerance", &"5"]);
    assert_eq!(out.status.code(), Some(2), "{}", report(&out));
    assert!(text(&out.stderr).contains("--tolerance"), "{}", report(&out));
    let out = run_bin(&[&"compare", &base, &current, &current]);
    assert_eq!(out.status.code(), Some(2), "{}", report(&out));
    let out = run_bin(&[&"compare", &file, &dir.join("runs"), &"--max-regression", &"5"]);
    assert_eq!(out.status.code(), Some(2), "{}", report(&out));
    assert!(text(&out.stderr).contains("--max-regression"), "{}", report(&out));
}

/// The committed baselines are readable, one per bench scenario that has a
/// floor, each named after its scenario.
#[test]
fn every_committed_baseline_reads_and_matches_a_bench_scenario() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = 0;
    for entry in std::fs::read_dir(root.join("reports/baselines")).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let baseline = gauntlet::regression::load_baseline(&file).unwrap();
        let stem = file.file_stem().unwrap().to_str().unwrap();
        assert_eq!(baseline.scenario, stem, "{}", file.display());
        let scenario = root.join("scenarios/bench").join(format!("{stem}.toml"));
        let text = std::fs::read_to_string(&scenario).unwrap();
        assert!(text.contains("[floor]"), "{} has no [floor]", scenario.display());
        assert!(!baseline.ratios.is_empty(), "{}", file.display());
        found += 1;
    }
    assert!(found >= 6, "{found} baselines");
}
