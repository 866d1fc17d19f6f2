//! The evidence the conformance tests share: the fixture scenario (its mocks,
//! router providers, keys and mix entries), the case that judges one check
//! on hand-built witnesses, and builders of records, attempts and accounts.

use std::path::Path;
use std::time::Duration;

use mock_providers::{Outcome as MockOutcome, Record, Usage};

use crate::checks::conformance::*;
use crate::load::record::{ErrorShape, Facts, Outcome};
use crate::metrics::fixtures;

// ---------------------------------------------------------------------------
// The fixture scenario
// ---------------------------------------------------------------------------

/// Mocks `oa` (OpenAI), `an` (Anthropic) and `backup`, reached through router
/// providers with other names (`openai-like`, `anthropic-like`, `second`), so
/// that every check must map router providers to mocks. The router's clock
/// starts on 2027-01-29 at one day per second: `openai/legacy` is in its grace
/// period at the start and removed two seconds in.
pub(super) const FIXTURE: &str = r#"
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
pub(super) const MINI: u16 = 0;
pub(super) const MINI_STREAM: u16 = 1;
pub(super) const CLAUDE: u16 = 2;
pub(super) const BYOK: u16 = 3;
pub(super) const TOOLS: u16 = 4;
pub(super) const REDUNDANT: u16 = 5;
pub(super) const BYOK_REDUNDANT: u16 = 6;
pub(super) const LEGACY: u16 = 7;
pub(super) const LIMITED: u16 = 8;
pub(super) const SMALL: u16 = 9;

pub(super) const MINI_MODEL: &str = "openai/gpt-4o-mini";
pub(super) const CLAUDE_MODEL: &str = "anthropic/claude";
pub(super) const TOOLS_MODEL: &str = "openai/tools";
pub(super) const REDUNDANT_MODEL: &str = "openai/redundant";
pub(super) const LEGACY_MODEL: &str = "openai/legacy";

/// When the run (and the router's clock) started, Unix µs.
pub(super) const T0: u64 = 1_800_000_000_000_000;
pub(super) const MS: u64 = 1_000;
pub(super) const S: u64 = 1_000_000;

// ---------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------

/// The evidence of one test.
pub(super) struct Case {
    pub(super) scenario: Scenario,
    pub(super) router: Option<RouterConfig>,
    pub(super) records: Vec<RequestRecord>,
    pub(super) attempts: Vec<Record>,
    pub(super) accounts: Accounts,
    pub(super) started_us: u64,
}

impl Case {
    /// The fixture scenario with these witnesses.
    pub(super) fn new(records: Vec<RequestRecord>, attempts: Vec<Record>) -> Case {
        Case::of(FIXTURE, records, attempts)
    }

    pub(super) fn of(toml: &str, records: Vec<RequestRecord>, attempts: Vec<Record>) -> Case {
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

    pub(super) fn judge(&self, check: Conformance) -> CheckResult {
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

/// The fixture scenario with these client records and their attempts.
pub(super) fn case_of(streams: Vec<(RequestRecord, Record)>) -> Case {
    let (records, attempts) = streams.into_iter().unzip();
    Case::new(records, attempts)
}

#[track_caller]
pub(super) fn assert_passes(result: &CheckResult) {
    assert!(result.passed(), "expected a pass: {}", result.detail);
    assert!(result.offenders.is_empty(), "{:?}", result.offenders);
}

#[track_caller]
pub(super) fn assert_fails(result: &CheckResult, offenders: &[&str], phrase: &str) {
    assert!(!result.passed(), "expected a failure: {}", result.detail);
    assert_eq!(result.offenders, offenders, "offenders of: {}", result.detail);
    assert!(
        result.detail.contains(phrase),
        "the detail {:?} does not say {phrase:?}",
        result.detail
    );
}

pub(super) fn picos(text: &str) -> Picodollars {
    crate::target::usd(text, crate::target::Precision::Decimal).unwrap()
}

/// `r`, sent at `sent_us`.
pub(super) fn sent_at(r: RequestRecord, sent_us: u64) -> RequestRecord {
    RequestRecord {
        intended_us: sent_us,
        sent_us,
        ..r
    }
}

/// A whole answer to mix entry `mix`, naming `model`, charged `cost`.
pub(super) fn answer(id: &str, mix: u16, model: &str, cost: Option<&str>) -> RequestRecord {
    RequestRecord {
        mix,
        model: Some(model.into()),
        cost: cost.map(Into::into),
        ..fixtures::record(id, T0, T0)
    }
}

/// A non-2xx answer with an OpenAI-shaped error body and no charge.
pub(super) fn error_answer(id: &str, mix: u16, status: u16) -> RequestRecord {
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
pub(super) fn rate_limited(id: &str, mix: u16, sent_us: u64, retry_after: Option<&str>) -> RequestRecord {
    let mut r = sent_at(error_answer(id, mix, 429), sent_us);
    r.conformance.retry_after = retry_after.map(Into::into);
    r
}

/// A stream that ended well (usage once, last, then `[DONE]`), its content
/// chunks at `offsets_us` after the send, one completion token each.
pub(super) fn streamed(id: &str, mix: u16, model: &str, offsets_us: &[u32]) -> RequestRecord {
    RequestRecord {
        mix,
        model: Some(model.into()),
        conformance: Facts {
            usage_chunks: 1,
            usage_last: true,
            usage_choices: Some(0),
            done: true,
            finish_reason: Some("stop".into()),
            ..Facts::default()
        },
        ..fixtures::stream(id, T0, T0, offsets_us, offsets_us.len() as u64)
    }
}

pub(super) fn usage(prompt: u32, cache_read: u32, cache_write: u32, completion: u32) -> Usage {
    Usage {
        prompt_tokens: prompt,
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
        completion_tokens: completion,
        reasoning_tokens: 0,
    }
}

/// An attempt for request `id` at mock `provider` for upstream `model`.
pub(super) fn attempt(
    id: &str,
    provider: &str,
    model: &str,
    status: u16,
    received_us: u64,
    finished_us: u64,
) -> Record {
    Record {
        provider: provider.into(),
        model: Some(model.into()),
        tokens_sent: if status == 200 { 5 } else { 0 },
        ..fixtures::attempt(id, status, received_us, finished_us)
    }
}

/// A whole answer the mock served, reporting `usage`.
pub(super) fn served(id: &str, provider: &str, model: &str, usage: Usage) -> Record {
    Record {
        usage: Some(usage),
        tokens_sent: usage.completion_tokens,
        ..attempt(id, provider, model, 200, T0, T0 + MS)
    }
}

/// A failed attempt on `oa` for `gpt-4o-mini`, between the two times.
pub(super) fn failure(id: &str, status: u16, received_us: u64, finished_us: u64) -> Record {
    attempt(id, "oa", "gpt-4o-mini", status, received_us, finished_us)
}

/// A stream the mock served, its tokens leaving at `offsets_us` after `received_us`.
pub(super) fn served_stream(id: &str, model: &str, received_us: u64, offsets_us: &[u32]) -> Record {
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
pub(super) fn broken_stream(id: &str, tokens: u32, received_us: u64) -> Record {
    Record {
        stream: true,
        tokens_sent: tokens,
        outcome: MockOutcome::FaultStreamError,
        ..attempt(id, "oa", "gpt-4o-mini", 200, received_us, received_us + 10 * MS)
    }
}

pub(super) fn account(usage: &str, left: Option<&str>) -> KeyAccount {
    KeyAccount {
        usage: picos(usage),
        limit_remaining: left.map(picos),
    }
}

pub(super) fn stream_chunk_delay() -> Conformance {
    Conformance::StreamChunkDelay {
        percentile: 99.0,
        max: Duration::from_millis(25),
    }
}

pub(super) fn stream_ttft_overhead() -> Conformance {
    Conformance::StreamTtftOverhead {
        percentile: 99.0,
        max: Duration::from_millis(25),
    }
}

pub(super) fn every_check() -> Vec<Conformance> {
    vec![
        Conformance::BillingExact,
        Conformance::BalanceDelta,
        Conformance::GenerationAgrees,
        Conformance::NoOverdraft {
            keys: vec!["sk-small".into()],
        },
        Conformance::KeyLimits,
        Conformance::FreeQuota,
        Conformance::CreditExpiry,
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
        Conformance::MessagesEvents,
        Conformance::LifecycleGrace,
        Conformance::LifecycleRemoved,
        Conformance::SystemPrefix,
        Conformance::ErrorShape,
        Conformance::ClientRetryAfter,
    ]
}
