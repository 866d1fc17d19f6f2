//! Tests of the upstream backoff checks: `retry-after-respected`,
//! `backoff-jitter`, `retry-limit`, `retry-storm`, `fallback`,
//! `no-retry-after-first-byte`, `cooldown`.

use mock_providers::Record;

use super::fixtures::*;
use crate::checks::conformance::*;

// ---------------------------------------------------------------------------
// retry-after-respected
// ---------------------------------------------------------------------------

/// A 429 on `oa` asking for 100 ms, then a retry on `oa` `gap_us` after it ended.
fn retry_after_429(id: &str, gap_us: u64) -> Vec<Record> {
    let retry_at = T0 + MS + gap_us;
    vec![
        Record {
            retry_after_ms: Some(100),
            ..failure(id, 429, T0, T0 + MS)
        },
        attempt(id, "oa", "gpt-4o-mini", 200, retry_at, retry_at + MS),
    ]
}

#[test]
fn retry_after_respected_passes_a_retry_after_the_wait() {
    let case = Case::new(Vec::new(), retry_after_429("r", 100 * MS));
    assert_passes(&case.judge(Conformance::RetryAfterRespected));
}

#[test]
fn retry_after_respected_allows_a_millisecond_of_rounding() {
    let case = Case::new(Vec::new(), retry_after_429("r", 99_500));
    assert_passes(&case.judge(Conformance::RetryAfterRespected));
}

#[test]
fn retry_after_respected_fails_a_retry_sooner_than_asked() {
    let case = Case::new(Vec::new(), retry_after_429("r", 50 * MS));
    assert_fails(
        &case.judge(Conformance::RetryAfterRespected),
        &["r"],
        "retried `oa` 50.0 ms after a 429 with Retry-After 100 ms",
    );
}

#[test]
fn retry_after_respected_lets_a_fallback_go_at_once() {
    let mut attempts = retry_after_429("r", 100 * MS);
    attempts.push(Record {
        retry_after_ms: Some(1_000),
        ..failure("f", 429, T0, T0 + MS)
    });
    attempts.push(attempt("f", "backup", "gpt-4o-mini", 200, T0 + 2 * MS, T0 + 3 * MS));
    let result = Case::new(Vec::new(), attempts).judge(Conformance::RetryAfterRespected);
    assert_passes(&result);
    assert!(result.detail.starts_with("all 1 "), "{}", result.detail);
}

// ---------------------------------------------------------------------------
// backoff-jitter (base 10 ms, cap 40 ms: the first retry's ceiling is 10 ms)
// ---------------------------------------------------------------------------

/// Request `id`, failing on `oa` with 503 and retried there after each of `gaps_us`.
fn retried(id: &str, start_us: u64, gaps_us: &[u64]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut at = start_us;
    for gap in gaps_us {
        out.push(failure(id, 503, at, at + MS));
        at += MS + gap;
    }
    out.push(attempt(id, "oa", "gpt-4o-mini", 200, at, at + MS));
    out
}

/// One first retry per gap, each its own request `j0`, `j1`...
fn first_retries(gaps_us: &[u64]) -> Vec<Record> {
    gaps_us
        .iter()
        .enumerate()
        .flat_map(|(i, gap)| retried(&format!("j{i}"), T0 + i as u64 * S, &[*gap]))
        .collect()
}

/// Twelve gaps spread evenly over the 10 ms ceiling: full jitter.
fn jittered_gaps(n: u64) -> Vec<u64> {
    (0..n).map(|i| i * 10 * MS / 11).collect()
}

#[test]
fn backoff_jitter_passes_full_jitter() {
    let result = Case::new(Vec::new(), first_retries(&jittered_gaps(12))).judge(Conformance::BackoffJitter);
    assert_passes(&result);
    assert!((result.measured - 0.5).abs() < 0.01, "{}", result.measured);
    assert!(
        result
            .detail
            .contains("12 retries, 0 above the backoff ceiling; mean wait 50% of the ceiling"),
        "{}",
        result.detail
    );
}

#[test]
fn backoff_jitter_fails_waits_at_the_ceiling_on_their_mean() {
    // Every wait the full 10 ms: within the band, but not spread at all.
    let result = Case::new(Vec::new(), first_retries(&[10 * MS; 12])).judge(Conformance::BackoffJitter);
    assert!(!result.passed());
    assert_eq!(result.measured, 1.0);
    assert!(
        result.detail.contains(
            "12 retries, 0 above the backoff ceiling; mean wait 100% of the ceiling (full jitter averages 50%): the \
             waits are not jittered"
        ),
        "{}",
        result.detail
    );
    // The first requests found at the ceiling, in no particular order.
    assert_eq!(result.offenders.len(), MAX_OFFENDERS.min(12));
    for id in &result.offenders {
        assert!(
            id.starts_with('j') && id[1..].parse::<u32>().is_ok_and(|n| n < 12),
            "{id}"
        );
    }
}

#[test]
fn backoff_jitter_names_only_the_waits_at_the_ceiling() {
    // Three at the ceiling and nine at 90 % of it: a mean above 80 %.
    let mut gaps = vec![10 * MS; 3];
    gaps.extend([9 * MS; 9]);
    let mut result = Case::new(Vec::new(), first_retries(&gaps)).judge(Conformance::BackoffJitter);
    result.offenders.sort();
    assert_fails(&result, &["j0", "j1", "j2"], "the waits are not jittered");
}

#[test]
fn backoff_jitter_fails_a_wait_above_the_ceiling() {
    // The first retry may wait 10 ms, plus 25 ms of slack.
    let mut gaps = jittered_gaps(11);
    gaps.push(36 * MS);
    let result = Case::new(Vec::new(), first_retries(&gaps)).judge(Conformance::BackoffJitter);
    assert_fails(&result, &["j11"], "12 retries, 1 above the backoff ceiling");
}

#[test]
fn backoff_jitter_doubles_the_ceiling_for_the_second_retry() {
    // 40 ms: within the second retry's 20 ms ceiling and 25 ms of slack, not the first's.
    let mut attempts = first_retries(&jittered_gaps(11));
    attempts.extend(retried("deep", T0 + 100 * S, &[5 * MS, 40 * MS]));
    assert_passes(&Case::new(Vec::new(), attempts).judge(Conformance::BackoffJitter));

    let mut attempts = first_retries(&jittered_gaps(11));
    attempts.extend(retried("deep", T0 + 100 * S, &[40 * MS, 5 * MS]));
    let result = Case::new(Vec::new(), attempts).judge(Conformance::BackoffJitter);
    assert_fails(&result, &["deep"], "1 above the backoff ceiling");
}

#[test]
fn backoff_jitter_needs_twelve_retries() {
    let result = Case::new(Vec::new(), first_retries(&jittered_gaps(11))).judge(Conformance::BackoffJitter);
    assert_fails(
        &result,
        &[],
        "only 11 jittered retries: at least 12 are needed to judge their spread",
    );
}

#[test]
fn backoff_jitter_leaves_retries_after_a_retry_after_out() {
    let mut attempts = first_retries(&jittered_gaps(12));
    attempts.push(Record {
        retry_after_ms: Some(1_000),
        ..failure("slow", 429, T0 + 200 * S, T0 + 200 * S + MS)
    });
    attempts.push(attempt(
        "slow",
        "oa",
        "gpt-4o-mini",
        200,
        T0 + 201 * S + MS,
        T0 + 201 * S + 2 * MS,
    ));
    let result = Case::new(Vec::new(), attempts).judge(Conformance::BackoffJitter);
    assert_passes(&result);
    assert!(result.detail.starts_with("12 retries"), "{}", result.detail);
}

// ---------------------------------------------------------------------------
// retry-limit (2 attempts per provider), retry-storm, fallback
// ---------------------------------------------------------------------------

#[test]
fn retry_limit_passes_two_attempts_per_provider() {
    let attempts = vec![
        failure("r", 503, T0, T0 + MS),
        failure("r", 503, T0 + 5 * MS, T0 + 6 * MS),
        attempt("r", "backup", "gpt-4o-mini", 200, T0 + 7 * MS, T0 + 8 * MS),
    ];
    assert_passes(&Case::new(Vec::new(), attempts).judge(Conformance::RetryLimit));
}

#[test]
fn retry_limit_fails_a_third_attempt_on_one_provider() {
    let attempts = vec![
        attempt("ok", "oa", "gpt-4o-mini", 200, T0, T0 + MS),
        failure("r", 503, T0, T0 + MS),
        failure("r", 503, T0 + 5 * MS, T0 + 6 * MS),
        failure("r", 503, T0 + 15 * MS, T0 + 16 * MS),
    ];
    assert_fails(
        &Case::new(Vec::new(), attempts).judge(Conformance::RetryLimit),
        &["r"],
        "r: 3 attempts on `oa`, the limit is 2",
    );
}

#[test]
fn retry_storm_passes_at_the_bound() {
    let attempts = vec![
        attempt("one", "oa", "gpt-4o-mini", 200, T0, T0 + MS),
        failure("two", 429, T0, T0 + MS),
        attempt("two", "oa", "gpt-4o-mini", 200, T0 + 5 * MS, T0 + 6 * MS),
    ];
    let result = Case::new(Vec::new(), attempts).judge(Conformance::RetryStorm { max: 1.5 });
    assert_passes(&result);
    assert!((result.measured - 1.5).abs() < 1e-9);
}

#[test]
fn retry_storm_fails_above_the_bound_naming_the_busiest_first() {
    let attempts = vec![
        attempt("one", "oa", "gpt-4o-mini", 200, T0, T0 + MS),
        failure("two", 429, T0, T0 + MS),
        failure("two", 429, T0 + 5 * MS, T0 + 6 * MS),
        failure("two", 429, T0 + 15 * MS, T0 + 16 * MS),
    ];
    assert_fails(
        &Case::new(Vec::new(), attempts).judge(Conformance::RetryStorm { max: 1.5 }),
        &["two", "one"],
        "4 upstream attempts for 2 requests (2.00 each)",
    );
}

#[test]
fn fallback_passes_when_every_provider_was_tried() {
    let records = vec![
        error_answer("all", REDUNDANT, 502),
        answer("saved", REDUNDANT, REDUNDANT_MODEL, Some("0")),
    ];
    let attempts = vec![
        failure("all", 503, T0, T0 + MS),
        failure("all", 503, T0 + 5 * MS, T0 + 6 * MS),
        attempt("all", "backup", "gpt-4o-mini", 503, T0 + 7 * MS, T0 + 8 * MS),
        failure("saved", 503, T0, T0 + MS),
        attempt("saved", "backup", "gpt-4o-mini", 200, T0 + 2 * MS, T0 + 3 * MS),
    ];
    let result = Case::new(records, attempts).judge(Conformance::Fallback);
    assert_passes(&result);
    assert!(result.detail.starts_with("all 2 "), "{}", result.detail);
}

#[test]
fn fallback_fails_a_request_that_gave_up_before_the_second_provider() {
    let records = vec![error_answer("r", REDUNDANT, 502)];
    let attempts = vec![
        failure("r", 503, T0, T0 + MS),
        failure("r", 503, T0 + 5 * MS, T0 + 6 * MS),
    ];
    assert_fails(
        &Case::new(records, attempts).judge(Conformance::Fallback),
        &["r"],
        "failed with 502 after 2 attempts without trying `backup`",
    );
}

#[test]
fn fallback_does_not_blame_the_router_for_the_requests_own_fault() {
    let records = vec![error_answer("bad", REDUNDANT, 400)];
    let attempts = vec![failure("bad", 400, T0, T0 + MS)];
    assert_passes(&Case::new(records, attempts).judge(Conformance::Fallback));
}

#[test]
fn fallback_does_not_judge_a_model_with_one_provider() {
    let records = vec![error_answer("r", MINI, 502)];
    let attempts = vec![failure("r", 503, T0, T0 + MS)];
    assert_fails(
        &Case::new(records, attempts).judge(Conformance::Fallback),
        &[],
        "no requests with a failed attempt on a model with several providers to judge",
    );
}

// ---------------------------------------------------------------------------
// no-retry-after-first-byte
// ---------------------------------------------------------------------------

#[test]
fn no_retry_after_first_byte_passes_a_broken_stream_left_alone() {
    let attempts = vec![
        failure("early", 503, T0, T0 + MS),
        attempt("early", "oa", "gpt-4o-mini", 200, T0 + 5 * MS, T0 + 6 * MS),
        broken_stream("s", 3, T0),
    ];
    let result = Case::new(Vec::new(), attempts).judge(Conformance::NoRetryAfterFirstByte);
    assert_passes(&result);
    assert!(result.detail.starts_with("all 1 "), "{}", result.detail);
}

#[test]
fn no_retry_after_first_byte_fails_another_attempt() {
    let attempts = vec![
        broken_stream("s", 3, T0),
        attempt("s", "oa", "gpt-4o-mini", 200, T0 + 20 * MS, T0 + 30 * MS),
    ];
    assert_fails(
        &Case::new(Vec::new(), attempts).judge(Conformance::NoRetryAfterFirstByte),
        &["s"],
        "1 more attempts after `oa` failed having streamed 3 tokens",
    );
}

// ---------------------------------------------------------------------------
// cooldown
// ---------------------------------------------------------------------------

/// A 429 from `oa` received at `at_ms` (relative to `T0`), 1 ms long, asking
/// for `retry_after_ms`.
fn rate_limited_attempt(id: &str, at_ms: u64, retry_after_ms: Option<u64>) -> Record {
    Record {
        retry_after_ms,
        ..failure(id, 429, T0 + at_ms * MS, T0 + (at_ms + 1) * MS)
    }
}

/// The fixture's policy cools a provider down after 3 429s in a row (the
/// default) for 10 s (the default), or for its longer Retry-After.
#[test]
fn cooldown_passes_a_provider_left_alone_until_its_retry_after() {
    let attempts = vec![
        rate_limited_attempt("a", 0, Some(12_000)),
        rate_limited_attempt("b", 10, Some(12_000)),
        rate_limited_attempt("c", 20, Some(12_000)),
        // The probe, after the 12 s Retry-After of the third.
        rate_limited_attempt("d", 12_030, Some(12_000)),
    ];
    assert_passes(&Case::new(Vec::new(), attempts).judge(Conformance::Cooldown));
}

#[test]
fn cooldown_fails_an_attempt_inside_the_retry_after() {
    let attempts = vec![
        rate_limited_attempt("a", 0, Some(12_000)),
        rate_limited_attempt("b", 10, Some(12_000)),
        rate_limited_attempt("c", 20, Some(12_000)),
        // After the 10 s cooldown, but inside the 12 s Retry-After.
        rate_limited_attempt("early", 11_000, Some(12_000)),
    ];
    assert_fails(
        &Case::new(Vec::new(), attempts).judge(Conformance::Cooldown),
        &["early"],
        "into a 12000 ms cooldown",
    );
}

#[test]
fn cooldown_counts_only_429s_in_a_row() {
    let mut ok = served("ok", "oa", "gpt-4o-mini", usage(10, 0, 0, 2));
    ok.received_us = T0 + 12 * MS;
    ok.finished_us = T0 + 15 * MS;
    let attempts = vec![
        rate_limited_attempt("a", 0, None),
        rate_limited_attempt("b", 10, None),
        ok,
        rate_limited_attempt("c", 20, None),
        // Only two 429s since the success: no cooldown, so this is fine.
        rate_limited_attempt("d", 30, None),
    ];
    let result = Case::new(Vec::new(), attempts).judge(Conformance::Cooldown);
    assert!(
        !result.passed(),
        "nothing to judge without a cooldown: {}",
        result.detail
    );
    assert!(result.offenders.is_empty(), "{:?}", result.offenders);
}
