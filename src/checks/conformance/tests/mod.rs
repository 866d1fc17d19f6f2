//! The conformance checks on synthetic evidence: a small scenario, the
//! client's records, the mocks' journal attempts and the router's accounts,
//! built by hand so that each test shows one behaviour of one check.
//!
//! One file per check family, mirroring the checks' own modules; the
//! fixture scenario and the builders are in `fixtures`.

mod billing;
mod fixtures;
mod lifecycle;
mod retries;
mod streaming;

use self::fixtures::*;
use super::*;

// ---------------------------------------------------------------------------
// Helpers of the module
// ---------------------------------------------------------------------------

#[test]
fn nearest_rank_percentiles() {
    let mut v = vec![5, 1, 4, 2, 3];
    assert_eq!(percentile(&mut v, 50.0), Some(3));
    assert_eq!(percentile(&mut v, 100.0), Some(5));
    assert_eq!(percentile(&mut v, 1.0), Some(1));
    assert_eq!(percentile(&mut [], 99.0), None);
}

#[test]
fn a_check_with_nothing_to_judge_fails() {
    let case = Case::new(Vec::new(), Vec::new());
    for check in every_check() {
        let result = case.judge(check.clone());
        assert!(!result.passed, "{}: {}", check.kind(), result.detail);
        if matches!(check, Conformance::NoOverdraft { .. }) {
            // It judges the keys it was given, whose accounts are unknown.
            assert_fails(&result, &["sk-small"], "GET /key gave no account for it");
        } else {
            assert!(
                result.detail.contains("to judge"),
                "{}: {}",
                check.kind(),
                result.detail
            );
        }
    }
}

#[test]
fn a_check_that_needs_the_router_table_fails_without_one() {
    let mut case = Case::new(
        vec![answer("a", MINI, MINI_MODEL, Some("0.00015"))],
        vec![served("a", "oa", "gpt-4o-mini", usage(1000, 400, 0, 50))],
    );
    case.records.push(error_answer("e", MINI, 429));
    case.router = None;
    for check in every_check().into_iter().filter(Conformance::needs_router) {
        let result = case.judge(check);
        assert_fails(&result, &[], "no [router] table stating what to expect");
    }
    // The others judge without it.
    assert_passes(&case.judge(Conformance::ErrorShape));
}
