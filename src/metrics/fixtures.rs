//! Records, journal attempts and scenarios for the tests of metrics, checks
//! and reports.

use std::path::Path;
use std::sync::Arc;

use mock_providers::journal::{CorrelationSource, Outcome as AttemptOutcome};
use mock_providers::{Dialect, Record};

use crate::load::record::{Facts, Outcome, RequestRecord};
use crate::scenario::Scenario;

/// A successful non-streamed request answered 2 ms after it was sent.
pub fn record(id: &str, intended_us: u64, sent_us: u64) -> RequestRecord {
    RequestRecord {
        id: Arc::from(id),
        phase: 0,
        mix: 0,
        stream: false,
        intended_us,
        sent_us,
        head_us: Some(sent_us + 1_000),
        first_content_us: Some(sent_us + 2_000),
        last_byte_us: Some(sent_us + 2_000),
        status: 200,
        outcome: Outcome::Ok,
        chunks: 0,
        content_chunks: 1,
        content_offsets_us: vec![2_000],
        prompt_tokens: Some(10),
        completion_tokens: Some(5),
        cached_tokens: None,
        cost: Some("0.000001".into()),
        generation_id: Some(format!("gen-{id}")),
        model: Some("m/one".into()),
        error: None,
        conformance: Facts::default(),
    }
}

/// A successful stream whose content chunks arrived at `offsets_us` after
/// the send and whose last byte is the last chunk; usage says `tokens`.
pub fn stream(id: &str, intended_us: u64, sent_us: u64, offsets_us: &[u32], tokens: u64) -> RequestRecord {
    let first = offsets_us.first().map(|&o| sent_us + u64::from(o));
    let last = offsets_us.last().map_or(sent_us + 1_000, |&o| sent_us + u64::from(o));
    RequestRecord {
        stream: true,
        first_content_us: first,
        last_byte_us: Some(last),
        chunks: offsets_us.len() as u32 + 3,
        content_chunks: offsets_us.len() as u32,
        content_offsets_us: offsets_us.to_vec(),
        completion_tokens: Some(tokens),
        ..record(id, intended_us, sent_us)
    }
}

/// A request that failed with `outcome` and no body.
pub fn failed(id: &str, at_us: u64, outcome: Outcome) -> RequestRecord {
    RequestRecord {
        head_us: None,
        first_content_us: None,
        last_byte_us: None,
        status: 0,
        outcome,
        content_chunks: 0,
        content_offsets_us: Vec::new(),
        completion_tokens: None,
        ..record(id, at_us, at_us)
    }
}

/// A journal attempt for correlation id `id`.
pub fn attempt(id: &str, status: u16, received_us: u64, finished_us: u64) -> Record {
    Record {
        seq: 0,
        correlation_id: Some(id.into()),
        correlation_source: CorrelationSource::Header,
        attempt: 1,
        provider: "p".into(),
        dialect: Dialect::OpenAi,
        model: Some("m/one".into()),
        upstream_key: None,
        system_prompt: None,
        stream: false,
        max_tokens: None,
        received_us,
        first_token_us: Some(received_us),
        last_token_us: Some(finished_us),
        finished_us,
        tokens_sent: 5,
        token_offsets_us: Vec::new(),
        usage: None,
        status,
        outcome: if status == 200 {
            AttemptOutcome::Ok
        } else {
            AttemptOutcome::FaultStatus
        },
        retry_after_ms: None,
        fault: None,
    }
}

const BASE: &str = r#"
schema = 1
[meta]
name = "fixture"
seed = 7
[[providers]]
name = "p"
dialect = "openai"
[router]
[[router.providers]]
name = "p"
dialect = "openai"
base-url = "mock:p"
api-key = "k"
[[router.models]]
id = "m/one"
providers = ["p"]
prompt = "1"
completion = "2"
[[router.keys]]
key = "sk"
credits = "1"
[[mix]]
name = "a"
model = "m/one"
key = "sk"
[[phases]]
name = "steady"
duration-s = 1
arrival = { kind = "constant", rate = 5 }
"#;

/// The fixture scenario with `extra` TOML appended (`[slo]`, `[[checks]]`...).
pub fn scenario(extra: &str) -> Scenario {
    match Scenario::parse(&format!("{BASE}{extra}"), Path::new("scenarios/fixture.toml")) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}
