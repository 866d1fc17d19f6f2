//! Unit tests of `gauntlet compare`'s pure part: parsing, the rules, the tables.
// A test reports failure by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clap::{CommandFactory, Parser};

use super::*;
use crate::command::baseline::Spread;

fn latency(p50: u64, p90: u64, p99: u64, p999: u64) -> LatencyUs {
    LatencyUs { p50, p90, p99, p999 }
}

fn summary(e2e: LatencyUs) -> RunSummary {
    RunSummary {
        latencies: BTreeMap::from([("e2e".to_owned(), e2e)]),
        request_rate: Some(100.0),
        error_rate: Some(0.01),
        phase_rates: vec![("steady".to_owned(), Some(50.0))],
    }
}

fn verdict_of(c: &Comparison, metric: &str) -> Verdict {
    c.rows
        .iter()
        .find(|r| r.metric == metric)
        .unwrap_or_else(|| panic!("no row {metric} in {c:?}"))
        .verdict
}

#[test]
fn latency_regresses_only_beyond_the_bound() {
    assert_eq!(relative(1000.0, 1100.0, Worse::Higher, 10.0), Verdict::Ok);
    assert_eq!(relative(1000.0, 1101.0, Worse::Higher, 10.0), Verdict::Regressed);
    assert_eq!(relative(1000.0, 899.0, Worse::Higher, 10.0), Verdict::Improved);
    assert_eq!(relative(1000.0, 1000.0, Worse::Higher, 0.0), Verdict::Ok);
    assert_eq!(relative(1000.0, 1001.0, Worse::Higher, 0.0), Verdict::Regressed);
}

#[test]
fn rate_regresses_when_it_drops() {
    assert_eq!(relative(100.0, 89.0, Worse::Lower, 10.0), Verdict::Regressed);
    assert_eq!(relative(100.0, 90.0, Worse::Lower, 10.0), Verdict::Ok);
    assert_eq!(relative(100.0, 150.0, Worse::Lower, 10.0), Verdict::Improved);
}

#[test]
fn a_zero_base_has_no_relative_change() {
    assert_eq!(change_pct(0.0, 5.0), None);
    assert_eq!(relative(0.0, 5.0, Worse::Higher, 10.0), Verdict::Regressed);
    assert_eq!(relative(0.0, 0.0, Worse::Higher, 10.0), Verdict::Ok);
    assert_eq!(relative(0.0, 5.0, Worse::Lower, 10.0), Verdict::Improved);
}

#[test]
fn error_rate_uses_absolute_percentage_points() {
    // 10 % allows 0.1 percentage points = 0.001 of a share.
    assert_eq!(error_rate(0.0, 0.001, 10.0), Verdict::Ok);
    assert_eq!(error_rate(0.0, 0.0011, 10.0), Verdict::Regressed);
    assert_eq!(error_rate(0.05, 0.0511, 10.0), Verdict::Regressed);
    assert_eq!(error_rate(0.05, 0.04, 10.0), Verdict::Improved);
}

#[test]
fn identical_runs_do_not_regress() {
    let s = summary(latency(1000, 2000, 5000, 9000));
    let c = compare(&s, &s, 10.0);
    // 4 quantiles, the request rate, one phase rate, the error rate.
    assert_eq!(c.rows.len(), 7);
    assert!(c.rows.iter().all(|r| r.verdict == Verdict::Ok), "{c:?}");
    assert!(c.skipped.is_empty());
}

#[test]
fn a_slower_p99_is_named() {
    let base = summary(latency(1000, 2000, 5000, 9000));
    let current = summary(latency(1000, 2000, 7500, 9000));
    let c = compare(&base, &current, 10.0);
    let regressed: Vec<&str> = c.regressed().map(|r| r.metric.as_str()).collect();
    assert_eq!(regressed, ["e2e p99"]);
    assert!(render_table(&c).contains("e2e p99"));
    assert!(render_table(&c).contains("+50.0 %"));
}

#[test]
fn lower_rates_and_more_errors_regress() {
    let base = summary(latency(1000, 2000, 5000, 9000));
    let mut current = base.clone();
    current.request_rate = Some(80.0);
    current.error_rate = Some(0.03);
    current.phase_rates = vec![("steady".to_owned(), Some(40.0))];
    let c = compare(&base, &current, 10.0);
    assert_eq!(verdict_of(&c, "request rate"), Verdict::Regressed);
    assert_eq!(verdict_of(&c, "rate [steady]"), Verdict::Regressed);
    assert_eq!(verdict_of(&c, "error rate"), Verdict::Regressed);
}

#[test]
fn metrics_missing_from_one_run_are_skipped() {
    let base = summary(latency(1000, 2000, 5000, 9000));
    let mut current = base.clone();
    current.latencies.insert("ttft".to_owned(), latency(100, 200, 300, 400));
    current.phase_rates = vec![("other".to_owned(), Some(1.0))];
    let c = compare(&base, &current, 10.0);
    assert_eq!(c.skipped, ["ttft"]);
    assert!(c.rows.iter().all(|r| !r.metric.starts_with("ttft")));
    assert!(c.rows.iter().all(|r| !r.metric.starts_with("rate [")));
}

#[test]
fn metrics_sort_in_report_order() {
    let mut s = summary(latency(1, 1, 1, 1));
    s.latencies.insert("ttft".to_owned(), latency(1, 1, 1, 1));
    s.latencies.insert("custom".to_owned(), latency(1, 1, 1, 1));
    let c = compare(&s, &s, 10.0);
    let firsts: Vec<&str> = c
        .rows
        .iter()
        .filter(|r| r.metric.ends_with(" p50"))
        .map(|r| r.metric.as_str())
        .collect();
    assert_eq!(firsts, ["e2e p50", "ttft p50", "custom p50"]);
}

#[test]
fn parse_reads_the_summary_shape() {
    let text = r#"{
        "schema_version": 1, "duration_s": 10.0, "passed": true,
        "requests": {"total": 1000, "sent": 1000, "errors": 5, "error_rate": 0.005},
        "phases": [{"name": "steady", "achieved_rate": 99.5}],
        "metrics": {
            "e2e": {"count": 1000, "min_us": 1, "mean_us": 2.0, "p50_us": 10,
                    "p90_us": 20, "p99_us": 30, "p999_us": 40, "max_us": 50},
            "ttft": {"count": 0, "min_us": 0, "mean_us": 0.0, "p50_us": 0,
                     "p90_us": 0, "p99_us": 0, "p999_us": 0, "max_us": 0}
        }
    }"#;
    let s = RunSummary::parse(text, Path::new("s.json")).unwrap();
    assert_eq!(s.latencies.len(), 1, "metrics without samples are dropped");
    assert_eq!(s.latencies["e2e"], latency(10, 20, 30, 40));
    assert_eq!(s.request_rate, Some(100.0));
    assert_eq!(s.error_rate, Some(0.005));
    assert_eq!(s.phase_rates, [("steady".to_owned(), Some(99.5))]);
}

#[test]
fn parse_errors_name_the_file() {
    let e = RunSummary::parse("{", Path::new("base/summary.json")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("base/summary.json: not a gauntlet summary.json"),
        "{e}"
    );
    let e = RunSummary::parse(r#"{"schema_version": 2, "metrics": {}}"#, Path::new("x.json")).unwrap_err();
    assert!(matches!(e, CompareError::Version { found: 2, .. }), "{e}");
    let e = RunSummary::parse(
        r#"{"schema_version": 1, "metrics": {}, "requests": {"sent": 1, "error_rate": 3.0}}"#,
        Path::new("x.json"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("error_rate"), "{e}");
}

fn compare_args(args: &[&str]) -> CompareArgs {
    let cli = crate::cli::Cli::try_parse_from(["gauntlet", "compare"].iter().chain(args)).unwrap();
    match cli.command {
        crate::cli::Command::Compare(args) => args,
        other => panic!("not compare: {other:?}"),
    }
}

#[test]
fn the_rule_comes_from_the_flags_and_the_defaults() {
    assert_eq!(rule(&compare_args(&["b", "c"])).unwrap(), Rule::default());
    let r = rule(&compare_args(&[
        "b",
        "c",
        "--tolerance",
        "5",
        "--metrics",
        "ttft,e2e_from_send,ttft",
        "--percentiles",
        "p999",
    ]))
    .unwrap();
    assert_eq!(r.tolerance_pct, 5.0);
    assert_eq!(r.metrics, [Metric::Ttft, Metric::E2eFromSend]);
    assert_eq!(r.percentiles, ["p999"]);
    assert!(rule(&compare_args(&["b", "c", "--tolerance=-1"])).is_err());
    assert!(crate::cli::Cli::try_parse_from(["gauntlet", "compare", "b", "c", "--metrics", "dispatch"]).is_err());
}

/// The help states the defaults the code applies.
#[test]
fn the_help_states_the_defaults() {
    let mut cli = crate::cli::Cli::command();
    let help = cli
        .find_subcommand_mut("compare")
        .unwrap()
        .render_long_help()
        .to_string();
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let metrics: Vec<&str> = Rule::DEFAULT_METRICS.iter().map(|m| m.name()).collect();
    for expected in [
        format!("regression [default: {DEFAULT_MAX_REGRESSION_PCT}]"),
        format!("regression [default: {}]", Rule::DEFAULT_TOLERANCE_PCT),
        format!("[default: {}]", metrics.join(",")),
        format!("[default: {}]", Rule::DEFAULT_PERCENTILES.join(",")),
        format!("fewer than {RECOMMENDED_RUNS} runs"),
    ] {
        assert!(help.contains(&expected), "no {expected:?} in:\n{help}");
    }
}

#[test]
fn the_ratio_table_shows_both_spreads_and_the_change() {
    let judgment = Judgment {
        rows: vec![baseline::RatioRow {
            metric: "e2e",
            percentile: "p99",
            baseline: Spread {
                median: 2.0,
                min: 1.9,
                max: 2.2,
            },
            current: Spread {
                median: 2.6,
                min: 2.5,
                max: 2.7,
            },
            current_runs: 3,
            verdict: Verdict::Regressed,
        }],
        skipped: Vec::new(),
    };
    let table = render_ratio_table(&judgment);
    let row = table.lines().nth(1).unwrap();
    assert_eq!(
        row.split_whitespace().take(2).collect::<Vec<_>>(),
        ["e2e", "p99"],
        "{table}"
    );
    assert!(
        row.contains("2.000 [1.900–2.200]") && row.contains("2.600 [2.500–2.700]"),
        "{table}"
    );
    assert!(row.contains("+30.0 %") && row.ends_with("REGRESSED"), "{table}");
}
