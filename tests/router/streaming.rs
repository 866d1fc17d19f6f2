//! Streaming through the router: chunks relayed as the mock sends them,
//! Anthropic events transcoded to OpenAI chunks (tool calls included), usage
//! exactly once, keep-alive comments, failures before the first byte
//! (retried) and after it (an error chunk, not retried), clients that go
//! away, and the system prefix the mocks' journals saw.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use mock_providers::{Journal, Outcome, Record};
use serde_json::{Value, json};
use tokio::time::Instant;

use gauntlet::router::transcode::SYSTEM_PREFIX_SEPARATOR;

use crate::support::{STREAMING_MODELS, Stack, Streamed, patiently};

const REQUEST_ID: &str = "x-gauntlet-request-id";

const MODELS: [&str; 11] = [
    "plain",
    "paced",
    "slow-start",
    "long",
    "tools",
    "failing",
    "cut",
    "reset",
    "late",
    "flaky-status",
    "flaky-reset",
];

/// One OpenAI-dialect mock (`oai`) and one Anthropic-dialect mock (`ant`)
/// serving [`STREAMING_MODELS`], and a router with a model `P/M` for each
/// provider P and mock model M, plus `P/prefixed` (the mock's `plain` with a
/// system prefix). Keep-alive comments every 20 ms.
fn config() -> String {
    let mut toml = String::new();
    for (name, dialect) in [("oai", "openai"), ("ant", "anthropic")] {
        toml += &format!(
            "[[providers]]\nname = \"{name}\"\ndialect = \"{dialect}\"\n[providers.defaults]\nttft-ms = 5\nitl-ms = 2\noutput-tokens = 12\n{STREAMING_MODELS}\n"
        );
    }
    toml += "[router]\nkeep-alive-ms = 20\n";
    for (name, dialect) in [("oai", "openai"), ("ant", "anthropic")] {
        toml += &format!(
            "[[router.providers]]\nname = \"{name}\"\ndialect = \"{dialect}\"\nbase-url = \"mock:{name}\"\napi-key = \"sk-up-{name}\"\n"
        );
    }
    for name in ["oai", "ant"] {
        for model in MODELS {
            toml += &format!(
                "[[router.models]]\nid = \"{name}/{model}\"\nproviders = [\"{name}\"]\nprompt = \"1\"\ncompletion = \"2\"\n"
            );
        }
        toml += &format!(
            "[[router.models]]\nid = \"{name}/prefixed\"\nproviders = [\"{name}\"]\nupstream-model = \"plain\"\nprompt = \"1\"\ncompletion = \"2\"\nsystem-prefix = \"PREFIX.\"\n"
        );
    }
    toml += "[[router.keys]]\nkey = \"sk-a\"\ncredits = \"10\"\n[[router.keys]]\nkey = \"sk-b\"\ncredits = \"10\"\n";
    toml
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Tell me something."}]})
}

const TOOLS: &str = r#"[{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}}}}]"#;

/// The journal record of the (only) attempt with correlation id `id`,
/// waiting for it to be written.
async fn record_of(journal: &Journal, id: &str) -> Record {
    patiently(&format!("the journal record of `{id}`"), async {
        let mut want = 1;
        loop {
            journal.wait_for(want).await;
            let records = journal.snapshot();
            if let Some(record) = records.iter().find(|r| r.correlation_id.as_deref() == Some(id)) {
                return record.clone();
            }
            want = records.len() + 1;
        }
    })
    .await
}

/// The journal record of attempt `n` with correlation id `id`.
async fn record_of_attempt(journal: &Journal, id: &str, n: u32) -> Record {
    patiently(&format!("attempt {n} of `{id}` in the journal"), async {
        let mut want = 1;
        loop {
            journal.wait_for(want).await;
            let records = journal.snapshot();
            if let Some(record) = records
                .iter()
                .find(|r| r.correlation_id.as_deref() == Some(id) && r.attempt == n)
            {
                return record.clone();
            }
            want = records.len() + 1;
        }
    })
    .await
}

fn attempts_of(journal: &Journal, id: &str) -> usize {
    journal
        .snapshot()
        .iter()
        .filter(|r| r.correlation_id.as_deref() == Some(id))
        .count()
}

/// What a chunk of the router's stream is, for checking their order.
fn kind(chunk: &Value) -> &'static str {
    let choices = chunk["choices"].as_array();
    if choices.is_some_and(Vec::is_empty) {
        return "usage";
    }
    let choice = &chunk["choices"][0];
    if chunk.get("error").is_some() {
        "error"
    } else if !choice["finish_reason"].is_null() {
        "finish"
    } else if choice["delta"]["role"].is_string() {
        "role"
    } else if choice["delta"]["content"].as_str().is_some_and(|c| !c.is_empty()) {
        "content"
    } else if choice["delta"]["tool_calls"].is_array() {
        "tool"
    } else {
        "other"
    }
}

/// The chunk kinds in order, consecutive repeats folded.
fn shape(streamed: &Streamed) -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = streamed.chunks.iter().map(|(_, c)| kind(c)).collect();
    kinds.dedup();
    kinds
}

/// Arrival times of the chunks with text.
fn content_arrivals(streamed: &Streamed) -> Vec<Instant> {
    streamed
        .chunks
        .iter()
        .filter(|(_, c)| kind(c) == "content")
        .map(|(at, _)| *at)
        .collect()
}

fn usage_cost(streamed: &Streamed) -> f64 {
    let usage = streamed.usage_chunks();
    assert_eq!(usage.len(), 1, "exactly one usage chunk: {streamed:?}");
    usage[0]["usage"]["cost"]
        .as_f64()
        .unwrap_or_else(|| panic!("no usage.cost: {}", usage[0]))
}

fn key_usage(info: &Value) -> f64 {
    info["usage"].as_f64().unwrap_or_else(|| panic!("no usage in {info}"))
}

/// A healthy stream: every chunk parsed, nothing left over, `[DONE]`.
fn assert_well_formed(streamed: &Streamed) {
    assert_eq!(streamed.status, 200, "{streamed:?}");
    assert!(streamed.done && !streamed.broken, "{streamed:?}");
    assert!(
        streamed.leftover.is_empty(),
        "unterminated data: {:?}",
        streamed.leftover
    );
    assert!(
        streamed.chunks.iter().all(|(_, c)| c.is_object()),
        "an unparsable chunk: {streamed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_are_relayed_as_the_mock_sends_them() {
    let stack = Stack::start(&config()).await;
    let journal = stack.journal("oai");
    let id = "relay-paced";
    let streamed = stack
        .stream_with_headers("sk-a", &chat("oai/paced", true), &[(REQUEST_ID, id)])
        .await;
    assert_well_formed(&streamed);
    let record = record_of(journal, id).await;
    assert_eq!(record.tokens_sent, 10, "{record:?}");

    // One chunk per token, each at the client no sooner than the mock sent it.
    let arrivals = content_arrivals(&streamed);
    assert_eq!(arrivals.len(), record.token_offsets_us.len(), "{streamed:?}");
    let clock = journal.clock();
    for (i, (at, offset)) in arrivals.iter().zip(&record.token_offsets_us).enumerate() {
        let sent_us = record.received_us + u64::from(*offset);
        assert!(clock.at_us(*at) >= sent_us, "token {i} arrived before the mock sent it");
    }
    // Spread out as the mock spread them, not all at the end.
    let offsets = &record.token_offsets_us;
    let mock_spread = Duration::from_micros(u64::from(offsets[offsets.len() - 1] - offsets[0]));
    let client_spread = arrivals[arrivals.len() - 1] - arrivals[0];
    // Nine gaps of 40 ms, on absolute deadlines: only a late first token shortens it.
    assert!(
        mock_spread >= Duration::from_millis(100),
        "the mock's own spread: {mock_spread:?}"
    );
    assert!(
        client_spread >= mock_spread.mul_f64(0.8),
        "content chunks reached the client within {client_spread:?}; the mock spread them over {mock_spread:?}"
    );

    // Intact: the same request id answered whole says the same text.
    let whole = stack
        .send(
            "POST",
            "/api/v1/chat/completions",
            Some("sk-a"),
            Some(&chat("oai/paced", false)),
            &[(REQUEST_ID, id)],
        )
        .await;
    assert_eq!(whole.status, 200, "{}", whole.text);
    let text = streamed.text();
    assert!(!text.is_empty());
    assert_eq!(whole.json["choices"][0]["message"]["content"], text.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_events_become_openai_chunks_in_order() {
    let stack = Stack::start(&config()).await;
    let id = "ant-order";
    let streamed = stack
        .stream_with_headers("sk-a", &chat("ant/plain", true), &[(REQUEST_ID, id)])
        .await;
    assert_well_formed(&streamed);
    assert_eq!(shape(&streamed), ["role", "content", "finish", "usage"], "{streamed:?}");
    let generation = streamed
        .headers
        .get("x-generation-id")
        .expect("X-Generation-Id")
        .to_str()
        .unwrap();
    for (_, chunk) in &streamed.chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk", "{chunk}");
        assert_eq!(chunk["id"], generation, "{chunk}");
        assert_eq!(chunk["model"], "ant/plain", "{chunk}");
    }
    let (_, role) = &streamed.chunks[0];
    assert_eq!(role["choices"][0]["delta"]["role"], "assistant");
    let (_, finish) = &streamed.chunks[streamed.chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let (_, last) = &streamed.chunks[streamed.chunks.len() - 1];
    assert_eq!(last["choices"], json!([]));
    assert!(usage_cost(&streamed) > 0.0);

    // One content chunk per token the mock sent, and the mock's own text.
    let record = record_of(stack.journal("ant"), id).await;
    assert_eq!(content_arrivals(&streamed).len(), record.tokens_sent as usize);
    assert_eq!(last["usage"]["completion_tokens"], record.tokens_sent);
    let whole = stack
        .send(
            "POST",
            "/api/v1/chat/completions",
            Some("sk-a"),
            Some(&chat("ant/plain", false)),
            &[(REQUEST_ID, id)],
        )
        .await;
    assert_eq!(whole.status, 200, "{}", whole.text);
    assert_eq!(whole.json["choices"][0]["message"]["content"], streamed.text().as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_call_deltas_reassemble_through_both_dialects() {
    let stack = Stack::start(&config()).await;
    let tools: Value = serde_json::from_str(TOOLS).unwrap();
    for provider in ["oai", "ant"] {
        let mut body = chat(&format!("{provider}/tools"), true);
        body["tools"] = tools.clone();
        let streamed = stack.stream("sk-a", &body).await;
        assert_well_formed(&streamed);
        assert_eq!(shape(&streamed).last(), Some(&"usage"), "{provider}: {streamed:?}");
        // Accumulate by tool-call index, as the SDKs do.
        let mut calls: Vec<(String, String, String)> = Vec::new();
        let mut finish = Vec::new();
        for (_, chunk) in &streamed.chunks {
            let Some(choice) = chunk["choices"].get(0) else {
                continue;
            };
            if let Some(reason) = choice["finish_reason"].as_str() {
                finish.push(reason.to_string());
            }
            for delta in choice["delta"]["tool_calls"].as_array().into_iter().flatten() {
                let index = delta["index"].as_u64().unwrap_or_else(|| panic!("no index: {delta}")) as usize;
                if calls.len() <= index {
                    calls.resize(index + 1, Default::default());
                }
                let call = &mut calls[index];
                if let Some(id) = delta["id"].as_str() {
                    call.0 = id.to_string();
                }
                call.1 += delta["function"]["name"].as_str().unwrap_or("");
                call.2 += delta["function"]["arguments"].as_str().unwrap_or("");
            }
        }
        assert_eq!(finish, ["tool_calls"], "{provider}: {streamed:?}");
        assert_eq!(calls.len(), 1, "{provider}: {calls:?}");
        let (id, name, arguments) = &calls[0];
        assert!(!id.is_empty(), "{provider}: the tool call has no id");
        assert_eq!(name, "get_weather", "{provider}");
        let arguments: Value =
            serde_json::from_str(arguments).unwrap_or_else(|e| panic!("{provider}: {arguments:?}: {e}"));
        assert_eq!(arguments, json!({"city": "Paris", "unit": "celsius"}), "{provider}");
        assert!(usage_cost(&streamed) > 0.0, "{provider}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_arrives_exactly_once_whatever_stream_options_say() {
    let stack = Stack::start(&config()).await;
    for provider in ["oai", "ant"] {
        for options in [
            None,
            Some(json!({"include_usage": false})),
            Some(json!({"include_usage": true})),
        ] {
            let mut body = chat(&format!("{provider}/plain"), true);
            if let Some(options) = &options {
                body["stream_options"] = options.clone();
            }
            let streamed = stack.stream("sk-a", &body).await;
            assert_well_formed(&streamed);
            let with_usage: Vec<usize> = (streamed.chunks.iter().enumerate())
                .filter(|(_, (_, c))| !c["usage"].is_null())
                .map(|(i, _)| i)
                .collect();
            assert_eq!(
                with_usage,
                [streamed.chunks.len() - 1],
                "{provider} {options:?}: {streamed:?}"
            );
            assert!(usage_cost(&streamed) > 0.0, "{provider} {options:?}");
        }
    }
}

/// A zero keep-alive period (validation refuses it; set here in code, as
/// defence in depth) once answered every stream 200 with an empty body:
/// the period is taken as the shortest one instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_keep_alive_period_still_streams() {
    let stack = Stack::start_with(&config(), |c| c.keep_alive = Duration::ZERO).await;
    for provider in ["oai", "ant"] {
        let streamed = tokio::time::timeout(
            Duration::from_secs(10),
            stack.stream("sk-a", &chat(&format!("{provider}/plain"), true)),
        )
        .await
        .expect("the stream ends");
        assert_well_formed(&streamed);
        assert_eq!(
            shape(&streamed),
            ["role", "content", "finish", "usage"],
            "{provider}: {streamed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_comments_fill_the_wait_for_the_first_token() {
    let stack = Stack::start(&config()).await;
    for provider in ["oai", "ant"] {
        let streamed = stack
            .stream("sk-a", &chat(&format!("{provider}/slow-start"), true))
            .await;
        assert_well_formed(&streamed);
        let first_content = content_arrivals(&streamed)[0];
        assert!(
            first_content - streamed.sent >= Duration::from_millis(200),
            "{provider}: before the mock's TTFT"
        );
        let keep_alives: Vec<Instant> = streamed
            .comments
            .iter()
            .filter(|(_, c)| c == "PROCESSING")
            .map(|(at, _)| *at)
            .collect();
        assert_eq!(
            keep_alives.len(),
            streamed.comments.len(),
            "{provider}: {:?}",
            streamed.comments
        );
        assert!(
            keep_alives.len() >= 3,
            "{provider}: {} keep-alives in a 200 ms wait, every 20 ms",
            keep_alives.len()
        );
        assert!(
            keep_alives.iter().all(|at| *at <= first_content),
            "{provider}: a keep-alive after the first token"
        );
        // The chunks around them are whole and in order.
        assert_eq!(
            shape(&streamed),
            ["role", "content", "finish", "usage"],
            "{provider}: {streamed:?}"
        );
        assert!(!streamed.text().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// The router answers a stream only once the upstream's first bytes are in
/// (so that failures before them still reach the client as 429/502/503 and
/// are retried); keep-alives fill the wait from then to the first token.
async fn a_slow_first_byte_holds_the_answer_until_the_upstream_starts() {
    let stack = Stack::start(&config()).await;
    for provider in ["oai", "ant"] {
        let streamed = stack.stream("sk-a", &chat(&format!("{provider}/late"), true)).await;
        assert_well_formed(&streamed);
        let first_content = content_arrivals(&streamed)[0];
        assert!(
            first_content - streamed.sent >= Duration::from_millis(200),
            "{provider}: before the mock's delay"
        );
        assert!(
            streamed
                .comments
                .iter()
                .all(|(at, _)| *at - streamed.sent >= Duration::from_millis(200)),
            "{provider}: nothing is sent before the upstream's first byte: {:?}",
            streamed.comments
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_fails_before_its_first_byte_is_retried() {
    let stack = Stack::start(&config()).await;
    for provider in ["oai", "ant"] {
        for model in ["flaky-status", "flaky-reset"] {
            let case = format!("{provider}/{model}");
            let id = format!("retried-{provider}-{model}");
            let streamed = stack
                .stream_with_headers("sk-a", &chat(&case, true), &[(REQUEST_ID, &id)])
                .await;
            assert_well_formed(&streamed);
            assert_eq!(
                shape(&streamed),
                ["role", "content", "finish", "usage"],
                "{case}: {streamed:?}"
            );
            let journal = stack.journal(provider);
            let second = record_of_attempt(journal, &id, 2).await;
            assert_eq!(second.outcome, Outcome::Ok, "{case}: {second:?}");
            assert_eq!(attempts_of(journal, &id), 2, "{case}");
            assert_eq!(content_arrivals(&streamed).len(), second.tokens_sent as usize, "{case}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mid_stream_failure_ends_with_an_error_chunk_and_is_not_retried() {
    let stack = Stack::start(&config()).await;
    for provider in ["oai", "ant"] {
        for (model, outcome) in [
            ("failing", Outcome::FaultStreamError),
            ("cut", Outcome::Cut),
            ("reset", Outcome::Reset),
        ] {
            let case = format!("{provider}/{model}");
            let id = format!("midstream-{provider}-{model}");
            let streamed = stack
                .stream_with_headers("sk-a", &chat(&case, true), &[(REQUEST_ID, &id)])
                .await;
            assert_well_formed(&streamed);
            assert_eq!(
                content_arrivals(&streamed).len(),
                3,
                "{case}: the tokens before the failure: {streamed:?}"
            );
            let n = streamed.chunks.len();
            let (_, error) = &streamed.chunks[n - 2];
            assert!(
                error["error"].is_object(),
                "{case}: no top-level error before the usage chunk: {streamed:?}"
            );
            assert!(
                error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{case}: {error}"
            );
            assert_eq!(error["choices"][0]["finish_reason"], "error", "{case}: {error}");
            assert_eq!(
                streamed.chunks.iter().filter(|(_, c)| c.get("error").is_some()).count(),
                1,
                "{case}"
            );
            assert_eq!(usage_cost(&streamed), 0.0, "{case}: a failed stream is not charged");
            assert_eq!(
                streamed.chunks[n - 1].1["choices"],
                json!([]),
                "{case}: the usage chunk is last"
            );

            let journal = stack.journal(provider);
            let record = record_of(journal, &id).await;
            assert_eq!(record.outcome, outcome, "{case}: {record:?}");
            assert_eq!(attempts_of(journal, &id), 1, "{case}: retried after the first byte");
        }
    }
    assert_eq!(
        key_usage(&stack.key_info("sk-a").await),
        0.0,
        "failed streams are not charged"
    );
}

/// Reads a stream of `model` until two content chunks came, then drops it;
/// the upstream attempt must stop and the key pay for what was generated.
async fn client_goes_away(provider: &str) {
    let stack = Stack::start(&config()).await;
    let journal = stack.journal(provider);
    let model = format!("{provider}/long");
    let id = format!("gone-{provider}");
    let req = Request::post(stack.url("/api/v1/chat/completions"))
        .header("authorization", "Bearer sk-a")
        .header(REQUEST_ID, &id)
        .body(Full::new(Bytes::from(chat(&model, true).to_string())))
        .unwrap();
    let response = stack.client.request(req).await.expect("the router answers");
    assert_eq!(response.status(), 200);
    let generation = response.headers()["x-generation-id"].to_str().unwrap().to_string();
    let mut body = response.into_body();
    let (mut buffer, mut contents) = (String::new(), 0);
    while contents < 2 {
        let frame = patiently("two content chunks", body.frame())
            .await
            .expect("more chunks")
            .expect("a frame");
        buffer += &String::from_utf8_lossy(&frame.into_data().unwrap_or_default());
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let data = event.trim().strip_prefix("data:").unwrap_or("null").trim();
            if kind(&serde_json::from_str(data).unwrap_or(Value::Null)) == "content" {
                contents += 1;
            }
        }
    }
    drop(body);

    let record = record_of(journal, &id).await;
    assert_eq!(record.outcome, Outcome::ClientClosed, "{record:?}");
    assert!(record.tokens_sent < 40, "the upstream went on to the end: {record:?}");

    // Settled (nothing reserved any more) once the router noticed the cut.
    let deadline = Instant::now() + Duration::from_secs(2);
    let charged = loop {
        let info = stack.key_info("sk-a").await;
        let usage = key_usage(&info);
        if info["reserved"].as_f64() == Some(0.0) || Instant::now() >= deadline {
            break usage;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let full = stack
        .stream_with_headers("sk-b", &chat(&model, true), &[(REQUEST_ID, &id)])
        .await;
    assert_well_formed(&full);
    let full_cost = usage_cost(&full);
    assert!(
        charged > 0.0,
        "{provider}: nothing charged for {} generated tokens",
        record.tokens_sent
    );
    assert!(
        charged < full_cost,
        "{provider}: charged {charged}, the whole answer costs {full_cost}"
    );
    let generation = stack
        .send(
            "GET",
            &format!("/api/v1/generation?id={generation}"),
            Some("sk-a"),
            None,
            &[],
        )
        .await;
    assert_eq!(generation.status, 200, "{}", generation.text);
    let tokens = generation.json["data"]["tokens_completion"].as_u64().unwrap();
    assert!(
        (1..=u64::from(record.tokens_sent)).contains(&tokens),
        "{provider}: {} vs {record:?}",
        generation.text
    );
    assert_eq!(generation.json["data"]["total_cost"].as_f64(), Some(charged));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_stops_an_anthropic_upstream_and_pays_for_what_was_generated() {
    client_goes_away("ant").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_stops_an_openai_upstream_and_pays_for_what_was_generated() {
    client_goes_away("oai").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_prefix_goes_before_the_callers_system_prompt() {
    let stack = Stack::start(&config()).await;
    for provider in ["oai", "ant"] {
        let journal = stack.journal(provider);
        let cases = [
            (
                "prefixed",
                Some("Be brief."),
                format!("PREFIX.{SYSTEM_PREFIX_SEPARATOR}Be brief."),
            ),
            ("prefixed", None, "PREFIX.".to_string()),
            ("plain", Some("Be brief."), "Be brief.".to_string()),
        ];
        for (i, (model, system, expected)) in cases.into_iter().enumerate() {
            let mut messages = vec![json!({"role": "user", "content": "hi"})];
            if let Some(system) = system {
                messages.insert(0, json!({"role": "system", "content": system}));
            }
            let body = json!({"model": format!("{provider}/{model}"), "messages": messages});
            let id = format!("prefix-{provider}-{i}");
            let answer = stack
                .send(
                    "POST",
                    "/api/v1/chat/completions",
                    Some("sk-a"),
                    Some(&body),
                    &[(REQUEST_ID, &id)],
                )
                .await;
            assert_eq!(answer.status, 200, "{}", answer.text);
            let record = record_of(journal, &id).await;
            assert_eq!(
                record.system_prompt.as_deref(),
                Some(expected.as_str()),
                "{provider}/{model} with {system:?}"
            );
        }
    }
}
