//! Tests of the money and key-limit checks: `billing-exact`,
//! `balance-delta`, `generation-agrees`, `no-overdraft`, `key-limits`,
//! `free-quota`.

use super::fixtures::*;
use crate::checks::conformance::usable_retry_after;
use crate::checks::conformance::*;

// ---------------------------------------------------------------------------
// Retry-After values
// ---------------------------------------------------------------------------

#[test]
fn retry_after_values() {
    assert!(usable_retry_after("1"));
    assert!(usable_retry_after(" 30 "));
    assert!(usable_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"));
    assert!(!usable_retry_after("0"));
    assert!(!usable_retry_after("-1"));
    assert!(!usable_retry_after("1.5"));
    assert!(!usable_retry_after("soon"));
    assert!(!usable_retry_after("xxxxxxxxxxxxxxxxxxxxxxxxx GMT"));
    assert!(!usable_retry_after("Wed, 32 Oct 2015 07:28:00 GMT"));
}

// ---------------------------------------------------------------------------
// billing-exact
// ---------------------------------------------------------------------------

#[test]
fn billing_exact_prices_openai_cache_reads_to_the_picodollar() {
    // 600 uncached × 0.15 + 400 cached × 0.075 + 50 × 0.60, per million.
    let case = Case::new(
        vec![answer("a", MINI, MINI_MODEL, Some("0.00015"))],
        vec![served("a", "oa", "gpt-4o-mini", usage(1000, 400, 0, 50))],
    );
    assert_passes(&case.judge(Conformance::BillingExact));
}

#[test]
fn billing_exact_reads_a_cost_written_with_an_exponent() {
    let case = Case::new(
        vec![answer("a", MINI, MINI_MODEL, Some("1.5e-4"))],
        vec![served("a", "oa", "gpt-4o-mini", usage(1000, 400, 0, 50))],
    );
    assert_passes(&case.judge(Conformance::BillingExact));
}

#[test]
fn billing_exact_fails_a_charge_one_picodollar_off() {
    let case = Case::new(
        vec![answer("a", MINI, MINI_MODEL, Some("0.000150000001"))],
        vec![served("a", "oa", "gpt-4o-mini", usage(1000, 400, 0, 50))],
    );
    assert_fails(
        &case.judge(Conformance::BillingExact),
        &["a"],
        "charged 0.000150000001, expected 0.00015 for `openai/gpt-4o-mini`",
    );
}

#[test]
fn billing_exact_fails_cache_reads_billed_as_prompt_tokens() {
    // 1000 × 0.15 + 50 × 0.60: the cached 400 at the full prompt price.
    let case = Case::new(
        vec![answer("a", MINI, MINI_MODEL, Some("0.00018"))],
        vec![served("a", "oa", "gpt-4o-mini", usage(1000, 400, 0, 50))],
    );
    assert_fails(&case.judge(Conformance::BillingExact), &["a"], "expected 0.00015");
}

#[test]
fn billing_exact_prices_anthropic_cache_reads_and_writes() {
    // 400 uncached × 3 + 500 read × 0.30 + 100 written × 3.75 + 20 × 15.
    let case = Case::new(
        vec![answer("c", CLAUDE, CLAUDE_MODEL, Some("0.002025"))],
        vec![served("c", "an", "claude", usage(1000, 500, 100, 20))],
    );
    assert_passes(&case.judge(Conformance::BillingExact));
}

#[test]
fn billing_exact_fails_cache_writes_billed_at_the_prompt_price() {
    let case = Case::new(
        vec![answer("c", CLAUDE, CLAUDE_MODEL, Some("0.00195"))],
        vec![served("c", "an", "claude", usage(1000, 500, 100, 20))],
    );
    assert_fails(
        &case.judge(Conformance::BillingExact),
        &["c"],
        "charged 0.00195, expected 0.002025 for `anthropic/claude`",
    );
}

#[test]
fn billing_exact_expects_nothing_for_zero_completion_tokens() {
    let free = Case::new(
        vec![answer("z", MINI, MINI_MODEL, Some("0"))],
        vec![served("z", "oa", "gpt-4o-mini", usage(1000, 0, 0, 0))],
    );
    assert_passes(&free.judge(Conformance::BillingExact));

    let charged = Case::new(
        vec![answer("z", MINI, MINI_MODEL, Some("0.00015"))],
        vec![served("z", "oa", "gpt-4o-mini", usage(1000, 0, 0, 0))],
    );
    assert_fails(
        &charged.judge(Conformance::BillingExact),
        &["z"],
        "charged 0.00015, expected 0 for",
    );
}

#[test]
fn billing_exact_charges_the_byok_fee_when_the_keys_own_provider_served() {
    // 5 % of 0.00015.
    let case = Case::new(
        vec![answer("b", BYOK, MINI_MODEL, Some("0.0000075"))],
        vec![served("b", "oa", "gpt-4o-mini", usage(1000, 400, 0, 50))],
    );
    assert_passes(&case.judge(Conformance::BillingExact));
}

#[test]
fn billing_exact_fails_a_byok_answer_charged_the_full_price() {
    let case = Case::new(
        vec![answer("b", BYOK, MINI_MODEL, Some("0.00015"))],
        vec![served("b", "oa", "gpt-4o-mini", usage(1000, 400, 0, 50))],
    );
    assert_fails(
        &case.judge(Conformance::BillingExact),
        &["b"],
        "charged 0.00015, expected 0.0000075",
    );
}

#[test]
fn billing_exact_charges_a_byok_key_the_full_price_on_another_provider() {
    let case = Case::new(
        vec![answer("b", BYOK_REDUNDANT, REDUNDANT_MODEL, Some("0.00015"))],
        vec![served("b", "backup", "gpt-4o-mini", usage(1000, 400, 0, 50))],
    );
    assert_passes(&case.judge(Conformance::BillingExact));
}

#[test]
fn no_charge_on_failure_fails_a_failed_request_that_reports_a_charge() {
    let mut failed = error_answer("f", MINI, 502);
    failed.cost = Some("0.0001".into());
    let mut free_failure = error_answer("g", MINI, 502);
    free_failure.cost = Some("0".into());
    let case = Case::new(
        vec![free_failure, failed],
        vec![failure("f", 500, T0, T0 + MS), failure("g", 500, T0, T0 + MS)],
    );
    assert_fails(
        &case.judge(Conformance::NoChargeOnFailure),
        &["f"],
        "a failed request (status 502) reports a charge of 0.0001",
    );
    // Failures are not billing-exact's evidence: with no answer, it has none.
    let result = case.judge(Conformance::BillingExact);
    assert!(!result.passed(), "{result:?}");
    assert!(
        result.detail.contains("2 of 2 requests failed: HTTP 502 ×2"),
        "{}",
        result.detail
    );
}

#[test]
fn billing_exact_fails_an_answer_naming_a_model_whose_route_did_not_serve_it() {
    let case = Case::new(
        vec![answer("m", CLAUDE, CLAUDE_MODEL, Some("0.00015"))],
        vec![served("m", "oa", "gpt-4o-mini", usage(1000, 400, 0, 50))],
    );
    assert_fails(
        &case.judge(Conformance::BillingExact),
        &["m"],
        "the answer names `anthropic/claude`, but `oa` served `gpt-4o-mini`, not one of its routes",
    );
}

#[test]
fn billing_exact_fails_an_answer_without_a_cost() {
    let case = Case::new(
        vec![answer("n", MINI, MINI_MODEL, None)],
        vec![served("n", "oa", "gpt-4o-mini", usage(1000, 400, 0, 50))],
    );
    assert_fails(&case.judge(Conformance::BillingExact), &["n"], "reports no cost");
}

#[test]
fn billing_exact_bills_a_grace_period_answer_at_the_replacements_price() {
    let attempts = vec![served("l", "oa", "gpt-4o-mini", usage(1000, 400, 0, 50))];
    let right = Case::new(vec![answer("l", LEGACY, MINI_MODEL, Some("0.00015"))], attempts.clone());
    assert_passes(&right.judge(Conformance::BillingExact));

    // 1000 × 30 + 50 × 60: the deprecated model's price.
    let wrong = Case::new(vec![answer("l", LEGACY, MINI_MODEL, Some("0.033"))], attempts);
    assert_fails(
        &wrong.judge(Conformance::BillingExact),
        &["l"],
        "charged 0.033, expected 0.00015",
    );
}

// ---------------------------------------------------------------------------
// balance-delta, generation-agrees, no-overdraft
// ---------------------------------------------------------------------------

/// Two keys' answers and a failure: sk-a reported 0.00017, sk-byok 0.0000075.
fn charged_answers() -> Case {
    let mut case = Case::new(
        vec![
            answer("a1", MINI, MINI_MODEL, Some("0.00015")),
            answer("a2", MINI, MINI_MODEL, Some("0.00002")),
            error_answer("a3", MINI, 502),
            answer("b1", BYOK, MINI_MODEL, Some("0.0000075")),
        ],
        Vec::new(),
    );
    case.accounts.before.insert("sk-a".into(), account("1", Some("99")));
    case.accounts
        .after
        .insert("sk-a".into(), account("1.00017", Some("98.99983")));
    case.accounts.before.insert("sk-byok".into(), account("0", Some("5")));
    case.accounts
        .after
        .insert("sk-byok".into(), account("0.0000075", Some("4.9999925")));
    case
}

#[test]
fn balance_delta_passes_when_spend_moved_by_the_reported_charges() {
    assert_passes(&charged_answers().judge(Conformance::BalanceDelta));
}

#[test]
fn balance_delta_fails_when_a_failure_was_charged() {
    let mut case = charged_answers();
    case.accounts.after.insert("sk-a".into(), account("1.00022", None));
    assert_fails(
        &case.judge(Conformance::BalanceDelta),
        &["sk-a"],
        "its spend moved by 0.00022 but its answers reported charges of 0.00017",
    );
}

#[test]
fn balance_delta_fails_a_key_without_an_account() {
    let mut case = charged_answers();
    case.accounts.after.remove("sk-byok");
    case.accounts
        .problems
        .push("GET /key for sk-byok: connection refused".into());
    assert_fails(
        &case.judge(Conformance::BalanceDelta),
        &["sk-byok"],
        "GET /key gave no account for it (GET /key for sk-byok: connection refused)",
    );
}

fn generation(model: &str, cost: &str) -> Generation {
    Generation {
        model: model.into(),
        total_cost: picos(cost),
    }
}

#[test]
fn generation_agrees_passes_when_model_and_cost_match() {
    let mut case = Case::new(vec![answer("g", MINI, MINI_MODEL, Some("0.00015"))], Vec::new());
    case.accounts
        .generations
        .insert("gen-g".into(), generation(MINI_MODEL, "0.00015"));
    assert_passes(&case.judge(Conformance::GenerationAgrees));
}

#[test]
fn generation_agrees_fails_on_another_cost() {
    let mut case = Case::new(vec![answer("g", MINI, MINI_MODEL, Some("0.00015"))], Vec::new());
    case.accounts
        .generations
        .insert("gen-g".into(), generation(MINI_MODEL, "0.000150000001"));
    assert_fails(
        &case.judge(Conformance::GenerationAgrees),
        &["g"],
        "the answer's cost is 0.00015 but the generation says 0.000150000001",
    );
}

#[test]
fn generation_agrees_fails_on_another_model() {
    let mut case = Case::new(vec![answer("g", MINI, MINI_MODEL, Some("0.00015"))], Vec::new());
    case.accounts
        .generations
        .insert("gen-g".into(), generation(LEGACY_MODEL, "0.00015"));
    assert_fails(
        &case.judge(Conformance::GenerationAgrees),
        &["g"],
        "the answer names `openai/gpt-4o-mini` but the generation says `openai/legacy`",
    );
}

#[test]
fn generation_agrees_fails_on_an_unknown_generation() {
    let case = Case::new(vec![answer("g", MINI, MINI_MODEL, Some("0.00015"))], Vec::new());
    assert_fails(
        &case.judge(Conformance::GenerationAgrees),
        &["g"],
        "GET /generation?id=gen-g gave nothing",
    );
}

fn no_overdraft() -> Conformance {
    Conformance::NoOverdraft {
        keys: vec!["sk-small".into()],
    }
}

/// A burst on `sk-small` (0.05 of credit): four answers at 0.01 each, then
/// a 402; `left` is what `GET /key` said after.
fn burst(left: &str, refused: bool) -> Case {
    let mut records: Vec<_> = (0..4)
        .map(|i| answer(&format!("s{i}"), SMALL, MINI_MODEL, Some("0.01")))
        .collect();
    if refused {
        records.push(error_answer("s4", SMALL, 402));
    }
    let mut case = Case::new(records, Vec::new());
    case.accounts
        .before
        .insert("sk-small".into(), account("0", Some("0.05")));
    case.accounts
        .after
        .insert("sk-small".into(), account("0.04", Some(left)));
    case
}

#[test]
fn no_overdraft_passes_when_credits_last_and_402_follows() {
    assert_passes(&burst("0.01", true).judge(no_overdraft()));
}

#[test]
fn no_overdraft_fails_on_negative_credits_left() {
    assert_fails(
        &burst("-0.001", true).judge(no_overdraft()),
        &["sk-small"],
        "overdrawn: -0.001 left",
    );
}

#[test]
fn no_overdraft_fails_when_no_402_was_seen() {
    assert_fails(
        &burst("0.01", false).judge(no_overdraft()),
        &["sk-small"],
        "no request was refused with 402",
    );
}

#[test]
fn no_overdraft_fails_when_charges_exceed_the_credit() {
    let mut case = burst("0", true);
    case.records.push(answer("s5", SMALL, MINI_MODEL, Some("0.02")));
    assert_fails(
        &case.judge(no_overdraft()),
        &["sk-small"],
        "charged 0.06 with only 0.05 of credit",
    );
}

// ---------------------------------------------------------------------------
// key-limits (sk-rpm: 5 a minute)
// ---------------------------------------------------------------------------

/// `n` answers of `sk-rpm`, a millisecond apart from T0.
fn admitted(n: u64) -> Vec<RequestRecord> {
    (0..n)
        .map(|i| sent_at(answer(&format!("ok{i}"), LIMITED, MINI_MODEL, Some("0")), T0 + i * MS))
        .collect()
}

#[test]
fn key_limits_passes_a_refusal_past_the_limit_with_retry_after() {
    let mut records = admitted(5);
    records.push(rate_limited("r", LIMITED, T0 + 10 * MS, Some("12")));
    assert_passes(&Case::new(records, Vec::new()).judge(Conformance::KeyLimits));
}

#[test]
fn key_limits_spares_one_request_that_crossed_on_the_way() {
    let mut records = admitted(4);
    records.push(rate_limited("r", LIMITED, T0 + 10 * MS, Some("12")));
    assert_passes(&Case::new(records, Vec::new()).judge(Conformance::KeyLimits));
}

#[test]
fn key_limits_fails_a_refusal_without_retry_after() {
    let mut records = admitted(5);
    records.push(rate_limited("r", LIMITED, T0 + 10 * MS, None));
    assert_fails(
        &Case::new(records, Vec::new()).judge(Conformance::KeyLimits),
        &["r"],
        "r: a 429 without Retry-After",
    );
}

#[test]
fn key_limits_fails_an_unusable_retry_after() {
    let mut records = admitted(5);
    records.push(rate_limited("r", LIMITED, T0 + 10 * MS, Some("0")));
    assert_fails(
        &Case::new(records, Vec::new()).judge(Conformance::KeyLimits),
        &["r"],
        "a 429 with an unusable Retry-After `0`",
    );
}

#[test]
fn key_limits_fails_a_402_refusal_without_retry_after() {
    let records = vec![sent_at(error_answer("p", MINI, 402), T0)];
    assert_fails(
        &Case::new(records, Vec::new()).judge(Conformance::KeyLimits),
        &["p"],
        "a 402 without Retry-After",
    );
}

#[test]
fn key_limits_fails_a_refusal_below_the_limit() {
    let mut records = admitted(2);
    records.push(rate_limited("r", LIMITED, T0 + 10 * MS, Some("12")));
    assert_fails(
        &Case::new(records, Vec::new()).judge(Conformance::KeyLimits),
        &["r"],
        "refused with 429 after only 2 admitted requests in the last minute (limit 5/min)",
    );
}

#[test]
fn key_limits_forgets_admissions_older_than_a_minute() {
    let mut records = admitted(5);
    records.push(rate_limited("r", LIMITED, T0 + 61 * S, Some("12")));
    assert_fails(
        &Case::new(records, Vec::new()).judge(Conformance::KeyLimits),
        &["r"],
        "after only 0 admitted requests",
    );
}

#[test]
fn key_limits_does_not_judge_a_429_with_an_upstream_attempt_behind_it() {
    let mut records = admitted(5);
    records.push(rate_limited("upstream", MINI, T0 + 5 * MS, None));
    records.push(rate_limited("r", LIMITED, T0 + 10 * MS, Some("12")));
    let case = Case::new(records, vec![failure("upstream", 429, T0 + 6 * MS, T0 + 7 * MS)]);
    let result = case.judge(Conformance::KeyLimits);
    assert_passes(&result);
    assert!(result.detail.contains("all 1 refusals conform"), "{}", result.detail);
}

#[test]
fn key_limits_counts_an_upstream_429_as_admitted() {
    // Five requests passed the router's rate limiter (two were then refused
    // by the upstream, which the client saw as 429): the sixth is refused
    // at the limit, rightly.
    let mut records = admitted(3);
    for i in 0..2 {
        let id = format!("upstream{i}");
        records.push(rate_limited(&id, LIMITED, T0 + (5 + i) * MS, None));
    }
    records.push(rate_limited("r", LIMITED, T0 + 10 * MS, Some("12")));
    let attempts = vec![
        failure("upstream0", 429, T0 + 5 * MS, T0 + 6 * MS),
        failure("upstream1", 429, T0 + 6 * MS, T0 + 7 * MS),
    ];
    assert_passes(&Case::new(records, attempts).judge(Conformance::KeyLimits));
}

// ---------------------------------------------------------------------------
// free-quota
// ---------------------------------------------------------------------------

/// A key with a quota of 2 free-model requests a day, on a clock at real
/// speed that reaches midnight 10 s after the router starts (at `T0`).
const FREE: &str = r#"
schema = 1
[meta]
name = "free-unit"
[[providers]]
name = "oa"
dialect = "openai"
[router]
clock = { start = "2027-03-01T23:59:50Z", speed = 1 }
free = { per-minute = 1000, per-day = 2, per-day-after-purchase = 100, purchase-threshold = "10" }
[[router.providers]]
name = "oa"
dialect = "openai"
base-url = "mock:oa"
api-key = "k"
[[router.models]]
id = "meta/llama:free"
providers = [{ name = "oa", model = "llama" }]
[[router.keys]]
key = "sk-free"
credits = "0"
[[mix]]
model = "meta/llama:free"
key = "sk-free"
[[phases]]
duration-s = 20
arrival = { kind = "constant", rate = 1 }
"#;

/// A free-model answer (`ok`) or a quota refusal, `s` seconds after `T0`.
fn free_request(id: &str, s: u64, ok: bool) -> RequestRecord {
    if ok {
        sent_at(answer(id, 0, "meta/llama:free", Some("0")), T0 + s * S)
    } else {
        rate_limited(id, 0, T0 + s * S, Some("10"))
    }
}

#[test]
fn free_quota_holds_each_day_and_renews_at_midnight() {
    let records = vec![
        free_request("a", 1, true),
        free_request("b", 2, true),
        free_request("c", 3, false),
        // Midnight at 10 s: a new day, a new quota.
        free_request("d", 11, true),
        free_request("e", 12, true),
        free_request("f", 13, false),
    ];
    assert_passes(&Case::of(FREE, records, Vec::new()).judge(Conformance::FreeQuota));
}

#[test]
fn free_quota_fails_a_request_admitted_past_the_quota() {
    let records = vec![
        free_request("a", 1, true),
        free_request("b", 2, true),
        free_request("c", 3, true),
    ];
    assert_fails(
        &Case::of(FREE, records, Vec::new()).judge(Conformance::FreeQuota),
        &["c"],
        "free-model request number 3 of the day was admitted (quota 2)",
    );
}

#[test]
fn free_quota_fails_a_quota_that_does_not_renew() {
    let records = vec![
        free_request("a", 1, true),
        free_request("b", 2, true),
        free_request("d", 11, false),
    ];
    assert_fails(
        &Case::of(FREE, records, Vec::new()).judge(Conformance::FreeQuota),
        &["d"],
        "refused with 429 after only 0 free-model requests that day",
    );
}

/// A router that keeps money in binary floats (the litellm profile) is
/// judged on its cost rounded to the picodollar; one that writes exact
/// decimals (openrouter) is held to them.
#[test]
fn billing_exact_rounds_a_float_cost_only_where_the_profile_says_floats() {
    let records = || vec![answer("a", MINI, MINI_MODEL, Some("1.4999999999999999e-04"))];
    let attempts = || vec![served("a", "oa", "gpt-4o-mini", usage(1000, 400, 0, 50))];
    let litellm = FIXTURE.replacen(
        "[meta]",
        "[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:4000/v1\"\nprofile = \"litellm\"\n[meta]",
        1,
    );
    assert_passes(&Case::of(&litellm, records(), attempts()).judge(Conformance::BillingExact));
    assert_fails(
        &Case::new(records(), attempts()).judge(Conformance::BillingExact),
        &["a"],
        "is not a USD amount",
    );
    // Rounded and still wrong: both amounts, what was written, and the difference.
    let off = vec![answer("a", MINI, MINI_MODEL, Some("1.5099999999999999e-04"))];
    assert_fails(
        &Case::of(&litellm, off, attempts()).judge(Conformance::BillingExact),
        &["a"],
        "charged 0.000151, expected 0.00015 for `openai/gpt-4o-mini` (written `1.5099999999999999e-04`), 0.000001 off",
    );
}

/// LiteLLM names the upstream's id (`gpt-4o-mini`), or its own fallback
/// group, after a fallback: priced by the model asked for when one of its
/// routes served, an offence otherwise.
#[test]
fn billing_exact_prices_an_unknown_name_by_the_model_asked_for() {
    let attempts = || vec![served("a", "oa", "gpt-4o-mini", usage(1000, 400, 0, 50))];
    for named in ["gpt-4o-mini", "openai/gpt-4o-mini@second"] {
        let records = vec![answer("a", MINI, named, Some("0.00015"))];
        assert_passes(&Case::new(records, attempts()).judge(Conformance::BillingExact));
    }
    // Served by a mock model no route of the model asked for goes to.
    let records = vec![answer("a", MINI, "gpt-4", Some("0.00015"))];
    let attempts = vec![served("a", "oa", "gpt-4", usage(1000, 400, 0, 50))];
    assert_fails(
        &Case::new(records, attempts).judge(Conformance::BillingExact),
        &["a"],
        "the answer names `gpt-4`, which is not in the catalog",
    );
}

// ---------------------------------------------------------------------------
// usage-agrees
// ---------------------------------------------------------------------------

/// An answer telling `prompt` prompt tokens (of which `cached` read from
/// the cache) and `completion` completion tokens.
fn told(id: &str, prompt: u64, cached: Option<u64>, completion: u64) -> RequestRecord {
    RequestRecord {
        prompt_tokens: Some(prompt),
        cached_tokens: cached,
        completion_tokens: Some(completion),
        ..answer(id, MINI, MINI_MODEL, None)
    }
}

#[test]
fn usage_agrees_passes_the_upstreams_counts() {
    let mut written = told("w", 1000, Some(400), 50);
    written.conformance.cache_write_tokens = Some(100);
    let case = Case::new(
        vec![told("a", 1000, Some(400), 50), told("b", 1000, None, 50), written],
        vec![
            served("a", "oa", "gpt-4o-mini", usage(1000, 400, 0, 50)),
            served("b", "oa", "gpt-4o-mini", usage(1000, 0, 0, 50)),
            served("w", "oa", "gpt-4o-mini", usage(1000, 400, 100, 50)),
        ],
    );
    let result = case.judge(Conformance::UsageAgrees);
    assert_passes(&result);
    assert!(result.detail.contains("all 3 answers conform"), "{}", result.detail);
}

/// A router that tells only the uncached prompt tokens, drops the cache
/// reads, or tells no usage at all.
#[test]
fn usage_agrees_fails_counts_the_upstream_did_not_report() {
    let case = Case::new(
        vec![
            told("u", 600, Some(400), 50),
            told("n", 1000, None, 50),
            answer("x", MINI, MINI_MODEL, None),
        ],
        vec![
            served("u", "oa", "gpt-4o-mini", usage(1000, 400, 0, 50)),
            served("n", "oa", "gpt-4o-mini", usage(1000, 400, 0, 50)),
            served("x", "oa", "gpt-4o-mini", usage(1000, 0, 0, 50)),
        ],
    );
    let result = case.judge(Conformance::UsageAgrees);
    assert_fails(
        &result,
        &["u", "n", "x"],
        "prompt_tokens 600, the upstream reported 1000 (cache reads and writes included)",
    );
    let mut reasoning = told("r", 1000, None, 50);
    reasoning.conformance.reasoning_tokens = Some(2);
    let mut thought = usage(1000, 0, 0, 50);
    thought.reasoning_tokens = 8;
    let case = Case::new(vec![reasoning], vec![served("r", "oa", "gpt-4o-mini", thought)]);
    assert_fails(
        &case.judge(Conformance::UsageAgrees),
        &["r"],
        "reasoning_tokens 2, the upstream reported 8 (reasoning)",
    );
}

/// Whether the router reports cost or not, the counts are judged: a
/// profile without cost still has this check.
#[test]
fn usage_agrees_applies_to_a_router_that_reports_no_cost() {
    let openai = FIXTURE.replacen(
        "[meta]",
        "[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:4000/v1\"\nprofile = \"openai\"\n[meta]",
        1,
    );
    let case = Case::of(
        &openai,
        vec![told("a", 1000, Some(400), 49)],
        vec![served("a", "oa", "gpt-4o-mini", usage(1000, 400, 0, 50))],
    );
    assert_fails(
        &case.judge(Conformance::UsageAgrees),
        &["a"],
        "completion_tokens 49, the upstream reported 50",
    );
    let skipped = case.judge(Conformance::BillingExact);
    assert_eq!(skipped.verdict, crate::checks::Verdict::Skip, "{}", skipped.detail);
}

// ---------------------------------------------------------------------------
// credit-expiry
// ---------------------------------------------------------------------------

/// A key given 10 USD as the router starts (at `T0`), on a clock at real
/// speed, under purchases that last a day.
const EXPIRY: &str = r#"
schema = 1
[meta]
name = "expiry-unit"
[[providers]]
name = "oa"
dialect = "openai"
[router]
credit-expiry-days = 1
clock = { start = "2027-03-01T00:00:00Z", speed = 1 }
[[router.providers]]
name = "oa"
dialect = "openai"
base-url = "mock:oa"
api-key = "k"
[[router.models]]
id = "openai/mini"
providers = [{ name = "oa", model = "mini" }]
prompt = "1"
completion = "1"
[[router.keys]]
key = "sk-expiring"
credits = "10"
[[mix]]
model = "openai/mini"
key = "sk-expiring"
[[phases]]
duration-s = 20
arrival = { kind = "constant", rate = 1 }
"#;

/// A day, in microseconds.
const DAY_US: u64 = 86_400 * S;

#[test]
fn credit_expiry_passes_402s_after_the_expiry_and_ignores_answers_before() {
    let records = vec![
        sent_at(answer("a", 0, "openai/mini", Some("0.001")), T0 + 10 * S),
        sent_at(error_answer("b", 0, 402), T0 + DAY_US + S),
        sent_at(error_answer("c", 0, 402), T0 + DAY_US + 5 * S),
    ];
    let result = Case::of(EXPIRY, records, Vec::new()).judge(Conformance::CreditExpiry);
    assert_passes(&result);
    assert!(result.detail.contains("all 2 requests"), "{}", result.detail);
}

#[test]
fn credit_expiry_fails_an_answer_after_the_expiry() {
    let records = vec![
        sent_at(error_answer("b", 0, 402), T0 + DAY_US + S),
        sent_at(answer("c", 0, "openai/mini", Some("0.001")), T0 + DAY_US + 2 * S),
    ];
    assert_fails(
        &Case::of(EXPIRY, records, Vec::new()).judge(Conformance::CreditExpiry),
        &["c"],
        "status 200 for key `sk-expiring` 0.00 days after its credits expired, not 402",
    );
}
