//! Unit tests of `gauntlet compare`'s flags: the rule they ask for, and the
//! help stating the defaults the library applies.
// A test reports failure by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clap::{CommandFactory, Parser};

use super::*;
use crate::regression::RECOMMENDED_RUNS;

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
