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

/// No evidence is never a pass: with nothing sent a check is skipped
/// (the scenario did not exercise it); with every request failed by the
/// router it fails, saying how they failed.
#[test]
fn a_check_with_nothing_to_judge_is_skipped_or_failed_never_passed() {
    let case = Case::new(Vec::new(), Vec::new());
    let failed = Case::new(
        vec![
            error_answer("e1", MINI, 500),
            error_answer("e2", MINI, 500),
            error_answer("e3", MINI, 429),
        ],
        Vec::new(),
    );
    for check in every_check() {
        let result = case.judge(check.clone());
        assert!(!result.passed(), "{}: {}", check.kind(), result.detail);
        if matches!(check, Conformance::NoOverdraft { .. }) {
            // It judges the keys it was given, whose accounts are unknown.
            assert_fails(&result, &["sk-small"], "GET /key gave no account for it");
            continue;
        }
        assert_eq!(
            result.verdict,
            crate::checks::Verdict::Skip,
            "{}: {}",
            check.kind(),
            result.detail
        );
        assert!(
            result.detail.contains("to judge: the scenario did not exercise this"),
            "{}: {}",
            check.kind(),
            result.detail
        );
        // Every request failed: nothing-to-judge is the router's failure,
        // and an answer-judging check cannot pass on failures alone.
        let result = failed.judge(check.clone());
        assert_ne!(
            result.verdict,
            crate::checks::Verdict::Skip,
            "{}: {}",
            check.kind(),
            result.detail
        );
        if result.detail.contains("to judge") {
            assert_eq!(result.verdict, crate::checks::Verdict::Fail, "{}", check.kind());
            assert!(
                result
                    .detail
                    .contains("3 of 3 requests failed: HTTP 429 ×1, HTTP 500 ×2"),
                "{}: {}",
                check.kind(),
                result.detail
            );
        }
        if super::judges_answers(&check) {
            assert_eq!(
                result.verdict,
                crate::checks::Verdict::Fail,
                "{}: {}",
                check.kind(),
                result.detail
            );
        }
    }
}

/// A router whose profile says it lacks a feature has that feature's checks
/// skipped, with the reason.
#[test]
fn a_feature_the_profile_lacks_is_skipped() {
    let litellm = FIXTURE.replacen(
        "[meta]",
        "[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:4000/v1\"\nprofile = \"litellm\"\n[meta]",
        1,
    );
    let case = Case::of(
        &litellm,
        vec![answer("a", MINI, MINI_MODEL, Some("0.00015"))],
        vec![served("a", "oa", "gpt-4o-mini", usage(1000, 400, 0, 50))],
    );
    for (check, feature) in [
        (Conformance::GenerationAgrees, "a per-generation cost lookup"),
        (Conformance::NoOverdraft { keys: Vec::new() }, "prepaid credit balances"),
    ] {
        let result = case.judge(check);
        assert_eq!(result.verdict, crate::checks::Verdict::Skip, "{}", result.detail);
        assert_eq!(result.detail, format!("the litellm profile's routers lack {feature}"));
    }
    assert_passes(&case.judge(Conformance::BillingExact));

    // Any OpenAI-compatible router: no cost, no spend to read back.
    let openai = litellm.replacen("profile = \"litellm\"", "profile = \"openai\"", 1);
    let case = Case::of(
        &openai,
        vec![answer("a", MINI, MINI_MODEL, None)],
        vec![served("a", "oa", "gpt-4o-mini", usage(1000, 400, 0, 50))],
    );
    for (check, feature) in [
        (Conformance::BillingExact, "cost reported with each answer"),
        (Conformance::BalanceDelta, "a readable spend or balance per key"),
        (Conformance::GenerationAgrees, "a per-generation cost lookup"),
    ] {
        let result = case.judge(check);
        assert_eq!(result.verdict, crate::checks::Verdict::Skip, "{}", result.detail);
        assert_eq!(result.detail, format!("the openai profile's routers lack {feature}"));
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
