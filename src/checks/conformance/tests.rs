//! The conformance checks on synthetic evidence: a small scenario, the
//! client's records, the mocks' journal attempts and the router's accounts,
//! built by hand so that each test shows one behaviour of one check.

use std::path::Path;
use std::time::Duration;

use mock_providers::{Outcome as MockOutcome, Record, Usage};

use super::billing::usable_retry_after;
use super::*;
use crate::load::record::{ErrorShape, Facts, Outcome, ToolCall};
use crate::metrics::fixtures;

// ---------------------------------------------------------------------------
// The fixture scenario
// ---------------------------------------------------------------------------

/// Mocks `oa` (OpenAI), `an` (Anthropic) and `backup`, reached through router
/// providers with other names (`openai-like`, `anthropic-like`, `second`), so
/// that every check must map router providers to mocks. The router's clock
/// starts on 2027-01-29 at one day per second: `openai/legacy` is in its grace
/// period at the start and removed two seconds in.
const FIXTURE: &str = r#"
schema = 1
[meta]
name = "conformance-unit"

[[providers]]
name = "oa"
dialect = "openai"
[[providers.models]]
id = "gpt-4o-mini"
[[providers.models]]
id = "gpt-4"
[[providers.models]]
id = "gpt-tools"
tool-call = { name = "get_weather", arguments = '{"city": "Paris"}' }

[[providers]]
name = "an"
dialect = "anthropic"
[[providers.models]]
id = "claude"

[[providers]]
name = "backup"
dialect = "openai"
[[providers.models]]
id = "gpt-4o-mini"

[router]
byok-fee-bps = 500
clock = { start = "2027-01-29T00:00:00Z", speed = 86400 }
[router.retry]
base-ms = 10
cap-ms = 40
attempts-per-provider = 2

[[router.providers]]
name = "openai-like"
dialect = "openai"
base-url = "mock:oa"
api-key = "sk-up-openai"

[[router.providers]]
name = "anthropic-like"
dialect = "anthropic"
base-url = "mock:an"
api-key = "sk-up-anthropic"

[[router.providers]]
name = "second"
dialect = "openai"
base-url = "mock:backup"
api-key = "sk-up-backup"

[[router.models]]
id = "openai/gpt-4o-mini"
providers = [{ name = "openai-like", model = "gpt-4o-mini" }]
prompt = "0.15"
completion = "0.60"
cache-read = "0.075"

[[router.models]]
id = "anthropic/claude"
providers = [{ name = "anthropic-like", model = "claude" }]
prompt = "3"
completion = "15"
cache-read = "0.30"
cache-write = "3.75"
system-prefix = "You are Claude."

[[router.models]]
id = "openai/tools"
providers = [{ name = "openai-like", model = "gpt-tools" }]
prompt = "0.15"
completion = "0.60"

[[router.models]]
id = "openai/redundant"
providers = [{ name = "openai-like", model = "gpt-4o-mini" }, { name = "second", model = "gpt-4o-mini" }]
prompt = "0.15"
completion = "0.60"
cache-read = "0.075"

[[router.models]]
id = "openai/legacy"
providers = [{ name = "openai-like", model = "gpt-4" }]
prompt = "30"
completion = "60"
deprecation = { announced = "2027-01-01", removed = "2027-01-31", replacement = "openai/gpt-4o-mini" }

[[router.keys]]
key = "sk-a"
credits = "100"

[[router.keys]]
key = "sk-byok"
credits = "5"
byok = { provider = "openai-like", api-key = "sk-byok-user" }

[[router.keys]]
key = "sk-rpm"
credits = "10"
rpm = 5

[[router.keys]]
key = "sk-small"
credits = "0.05"

[[mix]]
name = "mini"
model = "openai/gpt-4o-mini"
key = "sk-a"

[[mix]]
name = "mini-stream"
model = "openai/gpt-4o-mini"
key = "sk-a"
stream = true

[[mix]]
name = "claude"
model = "anthropic/claude"
key = "sk-a"
system = "Be brief."

[[mix]]
name = "byok"
model = "openai/gpt-4o-mini"
key = "sk-byok"

[[mix]]
name = "tools"
model = "openai/tools"
key = "sk-a"
stream = true
tools = true

[[mix]]
name = "redundant"
model = "openai/redundant"
key = "sk-a"

[[mix]]
name = "byok-redundant"
model = "openai/redundant"
key = "sk-byok"

[[mix]]
name = "legacy"
model = "openai/legacy"
key = "sk-a"

[[mix]]
name = "limited"
model = "openai/gpt-4o-mini"
key = "sk-rpm"

[[mix]]
name = "small"
model = "openai/gpt-4o-mini"
key = "sk-small"

[[phases]]
name = "steady"
duration-s = 1
arrival = { kind = "constant", rate = 5 }
"#;

/// The fixture's mix entries, by index.
const MINI: u16 = 0;
const MINI_STREAM: u16 = 1;
const CLAUDE: u16 = 2;
const BYOK: u16 = 3;
const TOOLS: u16 = 4;
const REDUNDANT: u16 = 5;
const BYOK_REDUNDANT: u16 = 6;
const LEGACY: u16 = 7;
const LIMITED: u16 = 8;
const SMALL: u16 = 9;

const MINI_MODEL: &str = "openai/gpt-4o-mini";
const CLAUDE_MODEL: &str = "anthropic/claude";
const TOOLS_MODEL: &str = "openai/tools";
const REDUNDANT_MODEL: &str = "openai/redundant";
const LEGACY_MODEL: &str = "openai/legacy";

/// When the run (and the router's clock) started, Unix µs.
const T0: u64 = 1_800_000_000_000_000;
const MS: u64 = 1_000;
const S: u64 = 1_000_000;

// ---------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------

/// The evidence of one test.
struct Case {
    scenario: Scenario,
    router: Option<RouterConfig>,
    records: Vec<RequestRecord>,
    attempts: Vec<Record>,
    accounts: Accounts,
    started_us: u64,
}

impl Case {
    /// The fixture scenario with these witnesses.
    fn new(records: Vec<RequestRecord>, attempts: Vec<Record>) -> Case {
        Case::of(FIXTURE, records, attempts)
    }

    fn of(toml: &str, records: Vec<RequestRecord>, attempts: Vec<Record>) -> Case {
        let scenario = match Scenario::parse(toml, Path::new("scenarios/conformance-unit.toml")) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let router = scenario.expect.as_ref().map(|e| e.config.clone());
        Case {
            scenario,
            router,
            records,
            attempts,
            accounts: Accounts::default(),
            started_us: T0,
        }
    }

    fn judge(&self, check: Conformance) -> CheckResult {
        let index = Index::new(Evidence {
            scenario: &self.scenario,
            router: self.router.as_ref(),
            records: &self.records,
            attempts: &self.attempts,
            accounts: &self.accounts,
            router_started_us: self.started_us,
        });
        let result = judge(&check, &index);
        assert_eq!(result.kind, check.kind());
        result
    }
}

#[track_caller]
fn assert_passes(result: &CheckResult) {
    assert!(result.passed, "expected a pass: {}", result.detail);
    assert!(result.offenders.is_empty(), "{:?}", result.offenders);
}

#[track_caller]
fn assert_fails(result: &CheckResult, offenders: &[&str], phrase: &str) {
    assert!(!result.passed, "expected a failure: {}", result.detail);
    assert_eq!(result.offenders, offenders, "offenders of: {}", result.detail);
    assert!(
        result.detail.contains(phrase),
        "the detail {:?} does not say {phrase:?}",
        result.detail
    );
}

fn picos(text: &str) -> Picodollars {
    usd(text).unwrap()
}

/// `r`, sent at `sent_us`.
fn sent_at(r: RequestRecord, sent_us: u64) -> RequestRecord {
    RequestRecord {
        intended_us: sent_us,
        sent_us,
        ..r
    }
}

/// A whole answer to mix entry `mix`, naming `model`, charged `cost`.
fn answer(id: &str, mix: u16, model: &str, cost: Option<&str>) -> RequestRecord {
    RequestRecord {
        mix,
        model: Some(model.into()),
        cost: cost.map(Into::into),
        ..fixtures::record(id, T0, T0)
    }
}

/// A non-2xx answer with an OpenAI-shaped error body and no charge.
fn error_answer(id: &str, mix: u16, status: u16) -> RequestRecord {
    RequestRecord {
        mix,
        status,
        outcome: Outcome::of_status(status),
        content_chunks: 0,
        content_offsets_us: Vec::new(),
        prompt_tokens: None,
        completion_tokens: None,
        cost: None,
        generation_id: None,
        model: None,
        error: Some("refused".into()),
        conformance: Facts {
            error_shape: Some(ErrorShape {
                ok: true,
                ..ErrorShape::default()
            }),
            ..Facts::default()
        },
        ..fixtures::record(id, T0, T0)
    }
}

/// A 429 for mix entry `mix`, at `sent_us`: one the router made itself,
/// unless the journal holds an attempt for `id`.
fn rate_limited(id: &str, mix: u16, sent_us: u64, retry_after: Option<&str>) -> RequestRecord {
    let mut r = sent_at(error_answer(id, mix, 429), sent_us);
    r.conformance.retry_after = retry_after.map(Into::into);
    r
}

/// A stream that ended well (usage once, last, then `[DONE]`), its content
/// chunks at `offsets_us` after the send, one completion token each.
fn streamed(id: &str, mix: u16, model: &str, offsets_us: &[u32]) -> RequestRecord {
    RequestRecord {
        mix,
        model: Some(model.into()),
        conformance: Facts {
            usage_chunks: 1,
            usage_last: true,
            done: true,
            finish_reason: Some("stop".into()),
            ..Facts::default()
        },
        ..fixtures::stream(id, T0, T0, offsets_us, offsets_us.len() as u64)
    }
}

fn usage(prompt: u32, cache_read: u32, cache_write: u32, completion: u32) -> Usage {
    Usage {
        prompt_tokens: prompt,
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
        completion_tokens: completion,
        reasoning_tokens: 0,
    }
}

/// An attempt for request `id` at mock `provider` for upstream `model`.
fn attempt(id: &str, provider: &str, model: &str, status: u16, received_us: u64, finished_us: u64) -> Record {
    Record {
        provider: provider.into(),
        model: Some(model.into()),
        tokens_sent: if status == 200 { 5 } else { 0 },
        ..fixtures::attempt(id, status, received_us, finished_us)
    }
}

/// A whole answer the mock served, reporting `usage`.
fn served(id: &str, provider: &str, model: &str, usage: Usage) -> Record {
    Record {
        usage: Some(usage),
        tokens_sent: usage.completion_tokens,
        ..attempt(id, provider, model, 200, T0, T0 + MS)
    }
}

/// A failed attempt on `oa` for `gpt-4o-mini`, between the two times.
fn failure(id: &str, status: u16, received_us: u64, finished_us: u64) -> Record {
    attempt(id, "oa", "gpt-4o-mini", status, received_us, finished_us)
}

/// A stream the mock served, its tokens leaving at `offsets_us` after `received_us`.
fn served_stream(id: &str, model: &str, received_us: u64, offsets_us: &[u32]) -> Record {
    let tokens = offsets_us.len() as u32;
    let first = received_us + u64::from(offsets_us[0]);
    let last = received_us + u64::from(offsets_us[offsets_us.len() - 1]);
    Record {
        stream: true,
        first_token_us: Some(first),
        last_token_us: Some(last),
        tokens_sent: tokens,
        token_offsets_us: offsets_us.to_vec(),
        usage: Some(usage(10, 0, 0, tokens)),
        ..attempt(id, "oa", model, 200, received_us, last + 100)
    }
}

/// A stream attempt on `oa` that broke after sending `tokens` tokens.
fn broken_stream(id: &str, tokens: u32, received_us: u64) -> Record {
    Record {
        stream: true,
        tokens_sent: tokens,
        outcome: MockOutcome::FaultStreamError,
        ..attempt(id, "oa", "gpt-4o-mini", 200, received_us, received_us + 10 * MS)
    }
}

fn account(usage: &str, left: Option<&str>) -> KeyAccount {
    KeyAccount {
        usage: picos(usage),
        limit_remaining: left.map(picos),
    }
}

fn stream_chunk_delay() -> Conformance {
    Conformance::StreamChunkDelay {
        percentile: 99.0,
        max: Duration::from_millis(25),
    }
}

fn stream_ttft_overhead() -> Conformance {
    Conformance::StreamTtftOverhead {
        percentile: 99.0,
        max: Duration::from_millis(25),
    }
}

fn every_check() -> Vec<Conformance> {
    vec![
        Conformance::BillingExact,
        Conformance::BalanceDelta,
        Conformance::GenerationAgrees,
        Conformance::NoOverdraft {
            keys: vec!["sk-small".into()],
        },
        Conformance::KeyLimits,
        Conformance::FreeQuota,
        Conformance::RetryAfterRespected,
        Conformance::BackoffJitter,
        Conformance::RetryLimit,
        Conformance::Cooldown,
        Conformance::RetryStorm { max: 1.5 },
        Conformance::Fallback,
        Conformance::NoRetryAfterFirstByte,
        stream_chunk_delay(),
        stream_ttft_overhead(),
        Conformance::StreamUsage,
        Conformance::StreamIntegrity,
        Conformance::StreamErrorChunk,
        Conformance::LifecycleGrace,
        Conformance::LifecycleRemoved,
        Conformance::SystemPrefix,
        Conformance::ErrorShape,
    ]
}

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
fn retry_after_values() {
    assert!(usable_retry_after("1"));
    assert!(usable_retry_after(" 30 "));
    assert!(usable_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"));
    assert!(!usable_retry_after("0"));
    assert!(!usable_retry_after("-1"));
    assert!(!usable_retry_after("1.5"));
    assert!(!usable_retry_after("soon"));
}

#[test]
fn usd_amounts_are_read_exactly() {
    assert_eq!(usd("0.000015"), Some(Picodollars(15_000_000)));
    assert_eq!(usd("1.5e-05"), Some(Picodollars(15_000_000)));
    assert_eq!(usd("1.425E-5"), Some(Picodollars(14_250_000)));
    assert_eq!(usd("2e3"), Some(Picodollars(2_000 * 1_000_000_000_000)));
    assert_eq!(usd("-0.25"), Some(Picodollars(-250_000_000_000)));
    assert_eq!(usd("1e-13"), None, "below a picodollar");
    assert_eq!(usd("abc"), None);
    assert_eq!(usd("1e"), None);
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
fn billing_exact_fails_a_failed_request_that_reports_a_charge() {
    let mut failed = error_answer("f", MINI, 502);
    failed.cost = Some("0.0001".into());
    let mut free_failure = error_answer("g", MINI, 502);
    free_failure.cost = Some("0".into());
    let case = Case::new(
        vec![free_failure, failed],
        vec![failure("f", 500, T0, T0 + MS), failure("g", 500, T0, T0 + MS)],
    );
    assert_fails(
        &case.judge(Conformance::BillingExact),
        &["f"],
        "a failed request (status 502) reports a charge of 0.0001",
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
    assert_fails(&case.judge(Conformance::BillingExact), &["n"], "reports no usage.cost");
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
    assert!(!result.passed);
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
// no-retry-after-first-byte, stream-error-chunk
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

/// A stream that ended with an error chunk whose `finish_reason` is `finish`.
fn errored_stream(id: &str, error_chunk: bool, finish: Option<&str>) -> RequestRecord {
    let mut r = streamed(id, MINI_STREAM, MINI_MODEL, &[6_000, 7_000, 8_000]);
    r.outcome = Outcome::StreamError;
    r.conformance = Facts {
        error_chunk,
        finish_reason: finish.map(Into::into),
        ..Facts::default()
    };
    r
}

#[test]
fn stream_error_chunk_passes_an_error_chunk_ending() {
    let case = Case::new(
        vec![errored_stream("s", true, Some("error"))],
        vec![broken_stream("s", 3, T0)],
    );
    assert_passes(&case.judge(Conformance::StreamErrorChunk));
}

#[test]
fn stream_error_chunk_fails_a_stream_without_one() {
    let case = Case::new(vec![errored_stream("s", false, None)], vec![broken_stream("s", 3, T0)]);
    assert_fails(
        &case.judge(Conformance::StreamErrorChunk),
        &["s"],
        "the upstream failed mid-stream (FaultStreamError) but the stream carried no error chunk (outcome stream_error)",
    );
}

#[test]
fn stream_error_chunk_fails_another_finish_reason() {
    let case = Case::new(
        vec![errored_stream("s", true, Some("stop"))],
        vec![broken_stream("s", 3, T0)],
    );
    assert_fails(
        &case.judge(Conformance::StreamErrorChunk),
        &["s"],
        "the error chunk's finish_reason is Some(\"stop\"), not \"error\"",
    );
}

#[test]
fn stream_error_chunk_does_not_judge_a_failure_before_the_first_token() {
    let case = Case::new(vec![errored_stream("s", false, None)], vec![broken_stream("s", 0, T0)]);
    assert_fails(
        &case.judge(Conformance::StreamErrorChunk),
        &[],
        "no streams whose upstream failed",
    );
}

// ---------------------------------------------------------------------------
// stream-chunk-delay, stream-ttft-overhead
// ---------------------------------------------------------------------------

/// The mock received the request 1 ms after the client sent it and sent
/// four tokens 5, 6, 7 and 8 ms later.
const MOCK_TOKENS: [u32; 4] = [5_000, 6_000, 7_000, 8_000];
/// Each token reached the client 0.5 ms after the mock sent it.
const RELAYED: [u32; 4] = [6_500, 7_500, 8_500, 9_500];

fn relayed_stream(id: &str, client_offsets: &[u32]) -> (RequestRecord, Record) {
    (
        streamed(id, MINI_STREAM, MINI_MODEL, client_offsets),
        served_stream(id, "gpt-4o-mini", T0 + MS, &MOCK_TOKENS),
    )
}

/// A tool-call stream: the first content chunk is the call's opening delta
/// (its id and name), then one chunk per token.
fn tool_stream(id: &str, client_offsets: &[u32]) -> (RequestRecord, Record) {
    let mut r = streamed(id, TOOLS, TOOLS_MODEL, client_offsets);
    r.completion_tokens = Some(MOCK_TOKENS.len() as u64);
    r.conformance.tool_call = Some(ToolCall {
        name: "get_weather".into(),
        arguments: r#"{"city": "Paris"}"#.into(),
    });
    (r, served_stream(id, "gpt-tools", T0 + MS, &MOCK_TOKENS))
}

fn case_of(streams: Vec<(RequestRecord, Record)>) -> Case {
    let (records, attempts) = streams.into_iter().unzip();
    Case::new(records, attempts)
}

#[test]
fn stream_chunk_delay_passes_a_relay_without_buffering() {
    let result = case_of(vec![relayed_stream("s", &RELAYED)]).judge(stream_chunk_delay());
    assert_passes(&result);
    assert_eq!(result.measured, 0.5);
    assert!(result.detail.contains("over 3 samples"), "{}", result.detail);
}

#[test]
fn stream_chunk_delay_fails_a_buffered_stream() {
    // 15 ms between tokens, all relayed at once after the last.
    let tokens = [30_000, 45_000, 60_000, 75_000];
    let buffered = (
        streamed("late", MINI_STREAM, MINI_MODEL, &[76_500, 76_510, 76_520, 76_530]),
        served_stream("late", "gpt-4o-mini", T0 + MS, &tokens),
    );
    let result = case_of(vec![relayed_stream("s", &RELAYED), buffered]).judge(stream_chunk_delay());
    assert_fails(
        &result,
        &["late"],
        "p99 per-chunk delay = 30.510 ms over 6 samples; 1 streams above 25.000 ms",
    );
}

#[test]
fn stream_chunk_delay_skips_a_tool_calls_opening_delta() {
    let result = case_of(vec![tool_stream("t", &[6_200, 6_500, 7_500, 8_500, 9_500])]).judge(stream_chunk_delay());
    assert_passes(&result);
    assert_eq!(result.measured, 0.5, "aligned on the tokens: {}", result.detail);
}

#[test]
fn stream_chunk_delay_fails_a_delayed_tool_call() {
    let result = case_of(vec![tool_stream("t", &[6_200, 6_500, 37_500, 38_500, 39_500])]).judge(stream_chunk_delay());
    assert_fails(&result, &["t"], "p99 per-chunk delay = 30.500 ms");
}

#[test]
fn stream_ttft_overhead_passes_a_prompt_first_chunk() {
    let result = case_of(vec![relayed_stream("s", &RELAYED)]).judge(stream_ttft_overhead());
    assert_passes(&result);
    assert_eq!(result.measured, 0.5);
}

#[test]
fn stream_ttft_overhead_fails_a_late_first_chunk() {
    let result = case_of(vec![
        relayed_stream("s", &RELAYED),
        relayed_stream("late", &[46_000, 47_000, 48_000, 49_000]),
    ])
    .judge(stream_ttft_overhead());
    assert_fails(&result, &["late"], "p99 TTFT overhead = 40.000 ms over 2 samples");
}

#[test]
fn stream_ttft_overhead_times_the_first_token_not_a_tool_calls_opening_delta() {
    let prompt = case_of(vec![tool_stream("t", &[6_200, 6_500, 7_500, 8_500, 9_500])]);
    let result = prompt.judge(stream_ttft_overhead());
    assert_passes(&result);
    assert_eq!(result.measured, 0.5);

    // The opening delta goes out at once; the first token 40 ms late.
    let late = case_of(vec![tool_stream("t", &[1_500, 46_000, 47_000, 48_000, 49_000])]);
    assert_fails(
        &late.judge(stream_ttft_overhead()),
        &["t"],
        "p99 TTFT overhead = 40.000 ms",
    );
}

// ---------------------------------------------------------------------------
// stream-usage, stream-integrity
// ---------------------------------------------------------------------------

#[test]
fn stream_usage_passes_usage_once_in_the_last_chunk() {
    let whole = answer("w", MINI, MINI_MODEL, Some("0"));
    let result = Case::new(
        vec![streamed("s", MINI_STREAM, MINI_MODEL, &RELAYED), whole],
        Vec::new(),
    )
    .judge(Conformance::StreamUsage);
    assert_passes(&result);
    assert!(result.detail.starts_with("all 1 "), "{}", result.detail);
}

#[test]
fn stream_usage_fails_a_stream_without_usage() {
    let mut r = streamed("s", MINI_STREAM, MINI_MODEL, &RELAYED);
    r.conformance.usage_chunks = 0;
    r.conformance.usage_last = false;
    assert_fails(
        &Case::new(vec![r], Vec::new()).judge(Conformance::StreamUsage),
        &["s"],
        "usage came in 0 chunks, not exactly one",
    );
}

#[test]
fn stream_usage_fails_usage_twice() {
    let mut r = streamed("s", MINI_STREAM, MINI_MODEL, &RELAYED);
    r.conformance.usage_chunks = 2;
    assert_fails(
        &Case::new(vec![r], Vec::new()).judge(Conformance::StreamUsage),
        &["s"],
        "usage came in 2 chunks",
    );
}

#[test]
fn stream_usage_fails_usage_before_the_last_chunk() {
    let mut r = streamed("s", MINI_STREAM, MINI_MODEL, &RELAYED);
    r.conformance.usage_last = false;
    assert_fails(
        &Case::new(vec![r], Vec::new()).judge(Conformance::StreamUsage),
        &["s"],
        "the usage chunk was not the last one before [DONE], with choices: []",
    );
}

#[test]
fn stream_usage_fails_a_stream_without_done() {
    let mut r = streamed("s", MINI_STREAM, MINI_MODEL, &RELAYED);
    r.conformance.done = false;
    assert_fails(
        &Case::new(vec![r], Vec::new()).judge(Conformance::StreamUsage),
        &["s"],
        "the stream did not end with data: [DONE]",
    );
}

#[test]
fn stream_integrity_passes_one_chunk_per_token() {
    let result = case_of(vec![relayed_stream("s", &RELAYED)]).judge(Conformance::StreamIntegrity);
    assert_passes(&result);
}

#[test]
fn stream_integrity_fails_a_lost_chunk() {
    let result = case_of(vec![relayed_stream("s", &RELAYED[..3])]).judge(Conformance::StreamIntegrity);
    assert_fails(&result, &["s"], "3 content chunks for the 4 tokens the mock sent");
}

#[test]
fn stream_integrity_fails_an_extra_chunk_without_a_tool_call() {
    let result =
        case_of(vec![relayed_stream("s", &[6_200, 6_500, 7_500, 8_500, 9_500])]).judge(Conformance::StreamIntegrity);
    assert_fails(&result, &["s"], "5 content chunks for the 4 tokens the mock sent");
}

#[test]
fn stream_integrity_fails_other_completion_tokens_than_the_mock_reported() {
    let (mut r, a) = relayed_stream("s", &RELAYED);
    r.completion_tokens = Some(3);
    assert_fails(
        &case_of(vec![(r, a)]).judge(Conformance::StreamIntegrity),
        &["s"],
        "usage says 3 completion tokens, the mock reported 4",
    );
}

#[test]
fn stream_integrity_passes_a_tool_call_with_its_opening_delta() {
    let result =
        case_of(vec![tool_stream("t", &[6_200, 6_500, 7_500, 8_500, 9_500])]).judge(Conformance::StreamIntegrity);
    assert_passes(&result);
}

#[test]
fn stream_integrity_fails_a_tool_call_reassembled_wrong() {
    let (mut r, a) = tool_stream("t", &[6_200, 6_500, 7_500, 8_500, 9_500]);
    if let Some(call) = r.conformance.tool_call.as_mut() {
        call.arguments = r#"{"city": "Lyon"}"#.into();
    }
    assert_fails(
        &case_of(vec![(r, a)]).judge(Conformance::StreamIntegrity),
        &["t"],
        r#"tool call `get_weather({"city": "Lyon"})` reassembled, the mock sent `get_weather({"city": "Paris"})`"#,
    );
}

#[test]
fn stream_integrity_fails_a_lost_tool_call() {
    let (mut r, a) = tool_stream("t", &RELAYED);
    r.conformance.tool_call = None;
    assert_fails(
        &case_of(vec![(r, a)]).judge(Conformance::StreamIntegrity),
        &["t"],
        "the mock called `get_weather`; the answer has no tool call",
    );
}

// ---------------------------------------------------------------------------
// lifecycle-grace, lifecycle-removed (one day per real second from
// 2027-01-29; `openai/legacy` removed on 2027-01-31, two seconds in)
// ---------------------------------------------------------------------------

/// A request for `openai/legacy` served by the replacement, sent at `sent_us`.
fn rerouted(id: &str, sent_us: u64) -> (RequestRecord, Record) {
    let mut r = sent_at(answer(id, LEGACY, MINI_MODEL, Some("0.00015")), sent_us);
    r.conformance.original_model = Some(LEGACY_MODEL.into());
    let a = Record {
        received_us: sent_us + MS,
        finished_us: sent_us + 2 * MS,
        ..served(id, "oa", "gpt-4o-mini", usage(1000, 400, 0, 50))
    };
    (r, a)
}

/// A 404 for `openai/legacy` as removed, sent at `sent_us`.
fn deprecated(id: &str, sent_us: u64) -> RequestRecord {
    let mut r = sent_at(error_answer(id, LEGACY, 404), sent_us);
    r.conformance.error_shape = Some(ErrorShape {
        ok: true,
        availability_code: Some("model_deprecated".into()),
        fallback_models: vec![MINI_MODEL.into()],
    });
    r
}

#[test]
fn lifecycle_grace_passes_the_replacement_serving() {
    let result = case_of(vec![rerouted("g", T0 + S)]).judge(Conformance::LifecycleGrace);
    assert_passes(&result);
    assert!(result.detail.starts_with("all 1 "), "{}", result.detail);
}

#[test]
fn lifecycle_grace_fails_the_deprecated_model_serving() {
    let mut r = sent_at(answer("g", LEGACY, LEGACY_MODEL, Some("0.033")), T0 + S);
    r.conformance.original_model = Some(LEGACY_MODEL.into());
    let a = served("g", "oa", "gpt-4", usage(1000, 400, 0, 50));
    assert_fails(
        &Case::new(vec![r], vec![a]).judge(Conformance::LifecycleGrace),
        &["g"],
        "served as `openai/legacy`, not by the replacement `openai/gpt-4o-mini`",
    );
}

#[test]
fn lifecycle_grace_fails_a_refusal_during_grace() {
    let r = sent_at(error_answer("g", LEGACY, 404), T0 + S);
    assert_fails(
        &Case::new(vec![r], Vec::new()).judge(Conformance::LifecycleGrace),
        &["g"],
        "status 404 during the grace period of `openai/legacy`",
    );
}

#[test]
fn lifecycle_grace_fails_a_missing_original_model_header() {
    let (mut r, a) = rerouted("g", T0 + S);
    r.conformance.original_model = None;
    assert_fails(
        &case_of(vec![(r, a)]).judge(Conformance::LifecycleGrace),
        &["g"],
        "x-original-model is None, not `openai/legacy`",
    );
}

#[test]
fn lifecycle_grace_fails_an_answer_not_served_by_a_route_of_the_replacement() {
    let (r, a) = rerouted("g", T0 + S);
    let a = Record {
        model: Some("gpt-4".into()),
        ..a
    };
    assert_fails(
        &case_of(vec![(r, a)]).judge(Conformance::LifecycleGrace),
        &["g"],
        "no mock attempt on a route of the replacement served it",
    );
}

#[test]
fn lifecycle_grace_does_not_judge_requests_near_the_removal() {
    // 0.25 s of real time before the removal: either side.
    let near = sent_at(error_answer("near", LEGACY, 404), T0 + 1_750 * MS);
    let (good, a) = rerouted("g", T0 + S);
    let result = Case::new(vec![good, near], vec![a]).judge(Conformance::LifecycleGrace);
    assert_passes(&result);
    assert!(result.detail.starts_with("all 1 "), "{}", result.detail);

    // 0.35 s before it: judged.
    let judged = sent_at(error_answer("judged", LEGACY, 404), T0 + 1_650 * MS);
    let result = Case::new(vec![judged], Vec::new()).judge(Conformance::LifecycleGrace);
    assert_fails(&result, &["judged"], "status 404 during the grace period");
}

#[test]
fn lifecycle_removed_passes_a_404_model_deprecated() {
    let result = Case::new(vec![deprecated("x", T0 + 3 * S)], Vec::new()).judge(Conformance::LifecycleRemoved);
    assert_passes(&result);
    assert!(result.detail.starts_with("all 1 "), "{}", result.detail);
}

#[test]
fn lifecycle_removed_fails_another_status() {
    let r = sent_at(error_answer("x", LEGACY, 502), T0 + 3 * S);
    assert_fails(
        &Case::new(vec![r], Vec::new()).judge(Conformance::LifecycleRemoved),
        &["x"],
        "status 502 for `openai/legacy`, removed: expected 404",
    );
}

#[test]
fn lifecycle_removed_fails_a_removed_model_still_served() {
    let (r, a) = rerouted("x", T0 + 3 * S);
    assert_fails(
        &case_of(vec![(r, a)]).judge(Conformance::LifecycleRemoved),
        &["x"],
        "status 200 for `openai/legacy`, removed: expected 404",
    );
}

#[test]
fn lifecycle_removed_fails_a_404_without_the_availability_code() {
    let mut r = deprecated("x", T0 + 3 * S);
    r.conformance.error_shape = Some(ErrorShape {
        ok: true,
        ..ErrorShape::default()
    });
    assert_fails(
        &Case::new(vec![r], Vec::new()).judge(Conformance::LifecycleRemoved),
        &["x"],
        "the 404 has no error.availability.code = \"model_deprecated\"",
    );
}

#[test]
fn lifecycle_removed_fails_a_404_not_naming_the_replacement() {
    let mut r = deprecated("x", T0 + 3 * S);
    if let Some(shape) = r.conformance.error_shape.as_mut() {
        shape.fallback_models = vec![LEGACY_MODEL.into()];
    }
    assert_fails(
        &Case::new(vec![r], Vec::new()).judge(Conformance::LifecycleRemoved),
        &["x"],
        "error.availability.fallback_models does not name `openai/gpt-4o-mini`",
    );
}

#[test]
fn lifecycle_removed_fails_an_upstream_attempt() {
    let attempts = vec![attempt("x", "oa", "gpt-4", 404, T0 + 3 * S, T0 + 3 * S + MS)];
    assert_fails(
        &Case::new(vec![deprecated("x", T0 + 3 * S)], attempts).judge(Conformance::LifecycleRemoved),
        &["x"],
        "an upstream attempt was made for a removed model",
    );
}

#[test]
fn lifecycle_removed_fails_a_charge() {
    let mut r = deprecated("x", T0 + 3 * S);
    r.cost = Some("0.001".into());
    assert_fails(
        &Case::new(vec![r], Vec::new()).judge(Conformance::LifecycleRemoved),
        &["x"],
        "a removed model's request was charged",
    );
}

#[test]
fn lifecycle_removed_does_not_judge_requests_near_the_removal() {
    // 0.25 s of real time after the removal: the router may still serve it.
    let (near, a) = rerouted("near", T0 + 2_250 * MS);
    let result = Case::new(vec![deprecated("x", T0 + 3 * S), near], vec![a]).judge(Conformance::LifecycleRemoved);
    assert_passes(&result);
    assert!(result.detail.starts_with("all 1 "), "{}", result.detail);
}

#[test]
fn lifecycle_follows_a_warped_clock_without_a_start() {
    // The router starts at 2027-01-29 (real time) and runs a day per second,
    // so 3 s in it is 2027-02-01: `openai/legacy` is removed.
    let toml = FIXTURE.replace(
        r#"clock = { start = "2027-01-29T00:00:00Z", speed = 86400 }"#,
        "clock = { speed = 86400 }",
    );
    let started: jiff::Timestamp = "2027-01-29T00:00:00Z".parse().unwrap();
    let started_us = u64::try_from(started.as_microsecond()).unwrap();
    let mut case = Case::of(&toml, vec![deprecated("x", started_us + 3 * S)], Vec::new());
    case.started_us = started_us;
    assert_passes(&case.judge(Conformance::LifecycleRemoved));
}

// ---------------------------------------------------------------------------
// system-prefix, error-shape
// ---------------------------------------------------------------------------

fn claude_attempt(id: &str, system: &str, received_us: u64) -> Record {
    Record {
        system_prompt: Some(system.into()),
        received_us,
        finished_us: received_us + MS,
        ..served(id, "an", "claude", usage(100, 0, 0, 5))
    }
}

#[test]
fn system_prefix_passes_the_prefix_then_the_callers_prompt() {
    let case = Case::new(
        vec![
            answer("c", CLAUDE, CLAUDE_MODEL, Some("0")),
            answer("m", MINI, MINI_MODEL, Some("0")),
        ],
        vec![
            claude_attempt("c", "You are Claude.\nBe brief.", T0),
            served("m", "oa", "gpt-4o-mini", usage(10, 0, 0, 5)),
        ],
    );
    let result = case.judge(Conformance::SystemPrefix);
    assert_passes(&result);
    assert!(result.detail.starts_with("all 1 "), "{}", result.detail);
}

#[test]
fn system_prefix_fails_a_prompt_without_the_prefix() {
    let case = Case::new(
        vec![answer("c", CLAUDE, CLAUDE_MODEL, Some("0"))],
        vec![claude_attempt("c", "Be brief.", T0)],
    );
    assert_fails(
        &case.judge(Conformance::SystemPrefix),
        &["c"],
        "`an` received the system prompt \"Be brief.\", without the prefix \"You are Claude.\"",
    );
}

#[test]
fn system_prefix_fails_a_prompt_that_lost_the_callers_own() {
    let case = Case::new(
        vec![answer("c", CLAUDE, CLAUDE_MODEL, Some("0"))],
        vec![claude_attempt("c", "You are Claude.", T0)],
    );
    assert_fails(
        &case.judge(Conformance::SystemPrefix),
        &["c"],
        "the caller's system prompt \"Be brief.\" is missing after the prefix",
    );
}

#[test]
fn system_prefix_judges_every_attempt_of_a_failed_request() {
    let case = Case::new(
        vec![error_answer("c", CLAUDE, 502)],
        vec![
            claude_attempt("c", "You are Claude.\nBe brief.", T0),
            claude_attempt("c", "Be brief.", T0 + 10 * MS),
        ],
    );
    let result = case.judge(Conformance::SystemPrefix);
    assert_fails(&result, &["c"], "1 of 2 upstream attempts");
}

#[test]
fn error_shape_passes_openai_shaped_errors() {
    let case = Case::new(
        vec![answer("a", MINI, MINI_MODEL, Some("0")), error_answer("e", MINI, 429)],
        Vec::new(),
    );
    let result = case.judge(Conformance::ErrorShape);
    assert_passes(&result);
    assert!(result.detail.starts_with("all 1 "), "{}", result.detail);
}

#[test]
fn error_shape_fails_another_body() {
    let mut bad = error_answer("e", MINI, 500);
    bad.conformance.error_shape = None;
    bad.error = Some("upstream exploded".into());
    let case = Case::new(vec![error_answer("ok", MINI, 429), bad], Vec::new());
    assert_fails(
        &case.judge(Conformance::ErrorShape),
        &["e"],
        "1 of 2 error answers do not conform; first: e: the 500 body is not an OpenAI-shaped error (upstream exploded)",
    );
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
    assert!(!result.passed, "nothing to judge without a cooldown: {}", result.detail);
    assert!(result.offenders.is_empty(), "{:?}", result.offenders);
}
