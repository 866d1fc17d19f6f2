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
    let result = case.judge(Conformance::RetryAfterRespected);
    assert_passes(&result);
    assert_eq!(
        result.detail,
        "all 1 retries after a Retry-After conform (Retry-After 100 ms)"
    );
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
// backoff-jitter (base 10 ms, cap 40 ms: retry 1's ceiling is 10 ms, retry 2's 20 ms)
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

/// `n` gaps spread evenly over `from..=to` µs.
fn spread_over(n: u64, from: u64, to: u64) -> Vec<u64> {
    (0..n).map(|i| from + i * (to - from) / (n - 1)).collect()
}

/// `n` gaps evenly over the first retry's whole 10 ms ceiling: full jitter.
fn jittered_gaps(n: u64) -> Vec<u64> {
    spread_over(n, 0, 10 * MS)
}

/// `n` gaps within ±0.5 % of the 10 ms ceiling: one fixed wait and a
/// scheduler's noise.
fn fixed_gaps(n: u64) -> Vec<u64> {
    spread_over(n, 9_950, 10_050)
}

fn jitter(attempts: Vec<Record>) -> crate::checks::CheckResult {
    Case::new(Vec::new(), attempts).judge(Conformance::BackoffJitter)
}

#[test]
fn backoff_jitter_passes_full_jitter_and_reports_each_retry_number() {
    let result = jitter(first_retries(&jittered_gaps(12)));
    assert_passes(&result);
    assert_eq!(
        result.detail,
        "12 retries without Retry-After, under their ceilings and spread: retry 1 ×12: 0.0 to 10.0 ms, median 4.5 \
         ms, ceiling 10.0 ms, spread 160%"
    );
    assert_eq!((result.unit, result.bound), ("share", 0.05));
    assert!((result.measured - 1.6).abs() < 0.01, "{}", result.measured);
}

#[test]
fn backoff_jitter_passes_narrow_multiplicative_jitter() {
    // OpenAI's SDK: the ceiling × U[0.75, 1].
    assert_passes(&jitter(first_retries(&spread_over(8, 7_500, 10 * MS))));
}

#[test]
fn backoff_jitter_passes_litellms_additive_jitter() {
    // LiteLLM: 0.5 s × 2^n + U[0, 0.75 s], declared as a 1.25 s base.
    let toml = FIXTURE.replace("base-ms = 10\ncap-ms = 40", "base-ms = 1250\ncap-ms = 8750");
    let gaps = spread_over(12, 500 * MS, 1250 * MS);
    let result = Case::of(&toml, Vec::new(), first_retries(&gaps)).judge(Conformance::BackoffJitter);
    assert_passes(&result);
    assert!(result.detail.contains("ceiling 1250.0 ms, spread"), "{}", result.detail);
}

#[test]
fn backoff_jitter_holds_a_router_to_its_profiles_own_backoff() {
    // The scenario says 10 ms; LiteLLM's code waits 0.5 to 1.25 s whatever
    // it is told, and its profile says so: judged against 1.25 s.
    let gaps = spread_over(12, 500 * MS, 1250 * MS);
    for (profile, ceiling) in [("litellm", "1250.0"), ("portkey", "1000.0")] {
        let toml = FIXTURE.replacen(
            "[meta]",
            &format!("[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:4000/v1\"\nprofile = \"{profile}\"\n[meta]"),
            1,
        );
        let result = Case::of(&toml, Vec::new(), first_retries(&gaps)).judge(Conformance::BackoffJitter);
        assert_passes(&result);
        assert!(
            result.detail.contains(&format!("ceiling {ceiling} ms, spread")),
            "{}",
            result.detail
        );
    }
    // Without a profile of its own, the scenario's 10 ms ceiling holds.
    assert_fails(
        &jitter(first_retries(&gaps)),
        &["j0", "j1", "j10", "j11", "j2"],
        "above the 10.0 ms ceiling",
    );
}

#[test]
fn backoff_jitter_fails_one_fixed_wait_within_half_a_percent() {
    let result = jitter(first_retries(&fixed_gaps(8)));
    assert_fails(
        &result,
        &["j0", "j1", "j2", "j3", "j4"],
        "retry 1 is not jittered: the lowest three quarters of its waits span 0.7% of their median 10.0 ms (under 5% \
         is a fixed wait). retry 1 ×8: 9.9 to 10.1 ms",
    );
    assert_eq!(result.verdict, crate::checks::Verdict::Fail);
}

#[test]
fn backoff_jitter_sees_a_fixed_wait_through_a_tail_of_late_ones() {
    // Nine fixed waits and three the scheduler made late by 5 to 15 ms.
    let mut gaps = fixed_gaps(9);
    gaps.extend([15 * MS, 20 * MS, 25 * MS]);
    let result = jitter(first_retries(&gaps));
    // The first five requests behind it, in the order of their ids.
    assert_fails(&result, &["j0", "j1", "j10", "j11", "j2"], "retry 1 is not jittered");
}

#[test]
fn backoff_jitter_fails_retries_without_waiting() {
    let result = jitter(first_retries(&[100; 8]));
    assert_fails(
        &result,
        &["j0", "j1", "j2", "j3", "j4"],
        "retry 1 retried without waiting: median 0.1 ms, 1.0% of its 10.0 ms ceiling (under 5% is no wait)",
    );
}

#[test]
fn backoff_jitter_fails_waits_above_the_ceiling() {
    // The first retry may wait 10 ms, plus 25 ms of slack: a quarter of
    // the waits above that is a policy that overshoots.
    let mut gaps = jittered_gaps(9);
    gaps.extend([36 * MS, 37 * MS, 38 * MS]);
    let result = jitter(first_retries(&gaps));
    assert_fails(
        &result,
        &["j10", "j11", "j9"],
        "3 of 12 retries without Retry-After do not conform; first: j10: retry 1 on `oa` waited 37.0 ms, above \
         the 10.0 ms ceiling",
    );
}

#[test]
fn backoff_jitter_lets_a_late_tail_pass() {
    // One wait in twelve delayed past the slack (a busy router's event
    // loop, a busy machine): the policy still holds.
    let mut gaps = jittered_gaps(11);
    gaps.push(36 * MS);
    let result = jitter(first_retries(&gaps));
    assert_passes(&result);
    assert!(result.detail.contains("but for a late tail of 1"), "{}", result.detail);
}

#[test]
fn backoff_jitter_doubles_the_ceiling_for_the_second_retry() {
    // 40 ms: within the second retry's 20 ms ceiling and 25 ms of slack, not the first's.
    let mut attempts = first_retries(&jittered_gaps(11));
    attempts.extend(retried("deep", T0 + 100 * S, &[5 * MS, 40 * MS]));
    let result = jitter(attempts);
    assert_passes(&result);
    assert!(
        result
            .detail
            .contains("retry 2 ×1: 40.0 to 40.0 ms, median 40.0 ms, ceiling 20.0 ms, too few"),
        "{}",
        result.detail
    );

    // The one second retry, at 40 ms, is all of its kind: above its
    // ceiling and slack it offends.
    let mut attempts = first_retries(&jittered_gaps(11));
    attempts.extend(retried("deep", T0 + 100 * S, &[5 * MS, 50 * MS]));
    assert_fails(
        &jitter(attempts),
        &["deep"],
        "1 of 13 retries without Retry-After do not conform",
    );
}

#[test]
fn backoff_jitter_judges_each_retry_number_on_its_own() {
    // Retry 1 jittered, retry 2 always its full 20 ms ceiling.
    let attempts: Vec<Record> = (0..8)
        .flat_map(|i| retried(&format!("d{i}"), T0 + i * S, &[(i + 1) * MS, 20 * MS + i * 10]))
        .collect();
    let result = jitter(attempts);
    assert_fails(&result, &["d0", "d1", "d2", "d3", "d4"], "retry 2 is not jittered");
    assert!(!result.detail.contains("retry 1 is"), "{}", result.detail);
}

#[test]
fn backoff_jitter_skips_with_the_counts_when_too_few_waits() {
    let mut attempts = first_retries(&fixed_gaps(6));
    attempts.extend(retried("deep", T0 + 100 * S, &[5 * MS, 10 * MS]));
    let result = jitter(attempts);
    assert_eq!(result.verdict, crate::checks::Verdict::Skip, "{}", result.detail);
    assert!(
        result.detail.starts_with(
            "too few retries without Retry-After to judge their spread (8 of one retry number are needed): retry 1 \
             ×7"
        ),
        "{}",
        result.detail
    );
    assert!(result.detail.contains("retry 2 ×1"), "{}", result.detail);
}

#[test]
fn backoff_jitter_stays_skipped_when_every_request_failed() {
    // Too few waits to judge is not the router failing to answer.
    let records = (0..3).map(|i| error_answer(&format!("j{i}"), MINI, 429)).collect();
    let result = Case::new(records, first_retries(&jittered_gaps(3))).judge(Conformance::BackoffJitter);
    assert_eq!(result.verdict, crate::checks::Verdict::Skip, "{}", result.detail);
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
    let result = jitter(attempts);
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
        &Case::new(Vec::new(), attempts.clone()).judge(Conformance::RetryLimit),
        &["r"],
        "r: 3 attempts on `oa`, the limit is 2",
    );
    // Stated as retries, told as retries.
    let toml = FIXTURE.replace("attempts-per-provider = 2", "retries-per-provider = 1");
    assert_fails(
        &Case::of(&toml, Vec::new(), attempts).judge(Conformance::RetryLimit),
        &["r"],
        "r: 2 retries on `oa`, the limit is 1 retry",
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

// ---------------------------------------------------------------------------
// client-retry-after
// ---------------------------------------------------------------------------

/// A `status` answer with `retry_after` and an OpenAI-shaped body.
fn refusal(id: &str, status: u16, retry_after: Option<&str>) -> RequestRecord {
    let mut r = error_answer(id, MINI, status);
    r.conformance.retry_after = retry_after.map(Into::into);
    r
}

fn client_retry_after(records: Vec<RequestRecord>, attempts: Vec<Record>) -> crate::checks::CheckResult {
    Case::new(records, attempts).judge(Conformance::ClientRetryAfter)
}

#[test]
fn client_retry_after_passes_refusals_that_say_when() {
    let records = vec![
        refusal("a", 429, Some("1")),
        refusal("b", 503, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
        refusal("c", 529, Some("30")),
        error_answer("d", MINI, 502),
        answer("e", MINI, MINI_MODEL, Some("0")),
    ];
    let result = client_retry_after(records, Vec::new());
    assert_passes(&result);
    assert_eq!(result.detail, "all 3 refusals (429, 503, 529) conform");
}

#[test]
fn client_retry_after_fails_a_give_up_without_retry_after() {
    let records = vec![refusal("ok", 429, Some("2")), refusal("r", 429, None)];
    let attempts = vec![
        failure("r", 429, T0, T0 + MS),
        failure("r", 429, T0 + 5 * MS, T0 + 6 * MS),
    ];
    assert_fails(
        &client_retry_after(records, attempts),
        &["r"],
        "1 of 2 refusals (429, 503, 529) do not conform; first: r: a 429 without Retry-After, after 2 upstream \
         attempts",
    );
}

#[test]
fn client_retry_after_fails_an_unusable_value_and_a_bad_body() {
    let mut shapeless = refusal("s", 503, Some("1"));
    shapeless.conformance.error_shape = None;
    shapeless.error = Some("Service Unavailable".into());
    let result = client_retry_after(vec![refusal("z", 429, Some("0")), shapeless], Vec::new());
    assert_fails(
        &result,
        &["z", "s"],
        "first: z: a 429 with an unusable Retry-After `0`, with no upstream attempt (the router's own refusal)",
    );
    let result = client_retry_after(vec![refusal("n", 429, None).clone()], Vec::new());
    assert!(result.detail.contains("a 429 without Retry-After"), "{}", result.detail);
    let mut both = refusal("b", 529, None);
    both.conformance.error_shape = None;
    let result = client_retry_after(vec![both], vec![failure("b", 529, T0, T0 + MS)]);
    assert_fails(
        &result,
        &["b"],
        "b: a 529 without Retry-After; the 529 body is not an OpenAI-shaped error (refused), after 1 upstream attempt",
    );
}

#[test]
fn client_retry_after_skips_when_no_refusal_was_seen() {
    let result = client_retry_after(vec![answer("e", MINI, MINI_MODEL, Some("0"))], Vec::new());
    assert_eq!(result.verdict, crate::checks::Verdict::Skip);
    assert!(
        result.detail.contains("the scenario did not exercise this"),
        "{}",
        result.detail
    );
}
