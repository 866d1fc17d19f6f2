//! `gauntlet compare` on the built binary: exit codes and the table, over
//! hand-written `summary.json` files shaped like `src/report/json.rs` writes.

// A test reports failure by panicking; unwrap, expect and panic! are how.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

const BIN: &str = env!("CARGO_BIN_EXE_gauntlet");

/// A folder in the temp dir no other test or run uses; removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(stem: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("gauntlet-compare-{stem}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("cannot create the temp dir");
        TempDir(path)
    }

    /// Writes `text` to `name` inside the folder and returns its path.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("cannot create a run folder");
        }
        std::fs::write(&path, text).expect("cannot write a summary");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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
    let missing = dir.0.join("nowhere.json");
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

/// The hand-written fixture is a real `summary.json`: it passes the checked-in schema.
#[test]
fn the_fixture_matches_the_report_schema() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/reports/schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&summary(10_000, 20_000, 40_000)).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}
