//! The Anthropic dialect over real HTTP: messages, the streaming event
//! sequence, tool use, required fields and overload errors.

use http::StatusCode;
use mock_providers::Outcome;
use serde_json::{Value, json};

use crate::support::{Mock, SseEvent, call, get, http_client, message, post, stream};

const TOOL_ARGS: &str = r#"{"city": "Tokyo", "days": [1, 2]}"#;

fn config() -> String {
    format!(
        r#"
[[providers]]
name = "an"
dialect = "anthropic"
seed = 3

[providers.defaults]
ttft-ms = 1
itl-ms = 1
output-tokens = 6

[[providers.models]]
id = "claude-cache"
cache-read-share = 0.5
cache-write-share = 0.25

[[providers.models]]
id = "claude-tools"
tool-call = {{ name = "get_weather", arguments = '{TOOL_ARGS}' }}

[[providers.models]]
id = "claude-retired"
removed = true
"#
    )
}

/// system "abcde" (4 + 2) and user "hello world" (4 + 3): 3 + 6 + 7 = 16.
fn cached_request(stream: bool) -> Value {
    json!({
        "model": "claude-cache",
        "max_tokens": 100,
        "system": "abcde",
        "stream": stream,
        "messages": [{"role": "user", "content": "hello world"}]
    })
}

fn anthropic_error(body: &Value, kind: &str) -> String {
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    body["error"]["message"].as_str().expect("an error message").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_message_reports_uncached_input_tokens() {
    let mock = Mock::start(&config()).await;
    let client = http_client();
    let reply = post(
        &client,
        &mock.url("/v1/messages"),
        &[("x-api-key", "k")],
        &cached_request(false),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let v = reply.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-cache");
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["content"][0]["type"], "text");
    assert!(!v["content"][0]["text"].as_str().unwrap().is_empty());
    // 16 prompt tokens: floor(16 * 0.5) = 8 read, floor(16 * 0.25) = 4 written, 4 uncached.
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 4, "cache_read_input_tokens": 8, "cache_creation_input_tokens": 4, "output_tokens": 6})
    );

    let record = &mock.records(1).await[0];
    assert_eq!(record.system_prompt.as_deref(), Some("abcde"));
    assert_eq!(record.upstream_key.as_deref(), Some("k"));
    let usage = record.usage.unwrap();
    assert_eq!(usage.prompt_tokens, 16, "the journal counts every prompt token");
    assert_eq!((usage.cache_read_tokens, usage.cache_write_tokens), (8, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_events_come_in_the_documented_order() {
    let mock = Mock::start(&config()).await;
    let client = http_client();
    let url = mock.url("/v1/messages");
    let s = stream(
        &client,
        &url,
        &[("x-gauntlet-request-id", "a-1")],
        &cached_request(true),
    )
    .await;
    assert_eq!(s.status, StatusCode::OK);
    assert!(s.header("content-type").unwrap().starts_with("text/event-stream"));
    assert!(s.error.is_none());
    let events = s.events();
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(std::iter::repeat_n("content_block_delta", 6));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);

    let data: Vec<Value> = events.iter().map(|e| e.json().unwrap()).collect();
    for (event, v) in events.iter().zip(&data) {
        assert_eq!(
            v["type"],
            event.event.as_str(),
            "the data's type repeats the event name"
        );
    }
    let start = &data[0]["message"];
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["usage"]["input_tokens"], 4);
    assert_eq!(data[1]["content_block"], json!({"type": "text", "text": ""}));

    let text: String = data[3..9]
        .iter()
        .map(|d| {
            assert_eq!(d["index"], 0);
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_string()
        })
        .collect();

    let delta = &data[10];
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(
        delta["usage"]["input_tokens"], 4,
        "input_tokens excludes cache reads and writes"
    );
    assert_eq!(delta["usage"]["cache_read_input_tokens"], 8);
    assert_eq!(delta["usage"]["cache_creation_input_tokens"], 4);
    assert_eq!(delta["usage"]["output_tokens"], 6, "cumulative output tokens");

    // The same request id, not streamed: the same seeded text.
    let whole = post(
        &client,
        &url,
        &[("x-gauntlet-request-id", "a-1")],
        &cached_request(false),
    )
    .await
    .json();
    assert_eq!(whole["content"][0]["text"], text.as_str());

    let records = mock.records(2).await;
    assert_eq!(records[0].tokens_sent, 6);
    assert!(records[0].stream);
    assert_eq!(records[0].usage.map(|u| u.completion_tokens), Some(6));
    assert_eq!((records[0].attempt, records[1].attempt), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_use_streams_input_json_deltas() {
    let mock = Mock::start(&config()).await;
    let client = http_client();
    let url = mock.url("/v1/messages");
    let mut body = message("claude-tools", "weather?", 200);
    body["tools"] = json!([{"name": "get_weather", "input_schema": {"type": "object"}}]);
    body["stream"] = true.into();
    let events = stream(&client, &url, &[], &body).await.events();
    let data: Vec<Value> = events.iter().map(|e| e.json().unwrap()).collect();
    let block = &data[1]["content_block"];
    assert_eq!(block["type"], "tool_use");
    assert_eq!(block["name"], "get_weather");
    assert!(block["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(block["input"], json!({}));

    let deltas: Vec<&Value> = data.iter().filter(|d| d["type"] == "content_block_delta").collect();
    assert!(deltas.len() > 1);
    let partial: String = deltas
        .iter()
        .map(|d| {
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"].as_str().unwrap()
        })
        .collect();
    assert_eq!(partial, TOOL_ARGS);
    let message_delta = data.iter().find(|d| d["type"] == "message_delta").unwrap();
    assert_eq!(message_delta["delta"]["stop_reason"], "tool_use");

    // Not streamed: the input as a JSON object.
    body["stream"] = false.into();
    let v = post(&client, &url, &[], &body).await.json();
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["content"][0]["type"], "tool_use");
    assert_eq!(
        v["content"][0]["input"],
        serde_json::from_str::<Value>(TOOL_ARGS).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_validated_anthropic_style() {
    let mock = Mock::start(&config()).await;
    let client = http_client();
    let url = mock.url("/v1/messages");

    let no_max = json!({"model": "claude-cache", "messages": [{"role": "user", "content": "x"}]});
    let reply = post(&client, &url, &[], &no_max).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        anthropic_error(&reply.json(), "invalid_request_error"),
        "max_tokens: Field required"
    );

    let system_role = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]});
    let reply = post(&client, &url, &[], &system_role).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(anthropic_error(&reply.json(), "invalid_request_error").contains("messages.0.role"));

    let reply = call(&client, http::Method::POST, &url, &[], Some("[1, 2".into())).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    anthropic_error(&reply.json(), "invalid_request_error");

    let reply = post(&client, &url, &[], &message("claude-retired", "x", 5)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(anthropic_error(&reply.json(), "not_found_error").contains("claude-retired"));

    let models = get(&client, &mock.url("/v1/models")).await.json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["claude-cache", "claude-tools"]);
    assert_eq!(models["has_more"], false);

    let records = mock.records(4).await;
    let outcomes: Vec<Outcome> = records.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::BadRequest,
            Outcome::BadRequest,
            Outcome::BadRequest,
            Outcome::ModelNotFound
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_a_529_before_the_stream_and_an_error_event_within_it() {
    let mock = Mock::start(&format!(
        "{}\n{}",
        config(),
        r#"
[[providers.faults]]
name = "overloaded"
kind = "status"
status = 529
model = "claude-cache"

[[providers.faults]]
name = "overloaded-midway"
kind = "status"
status = 529
after-tokens = 2
"#
    ))
    .await;
    let client = http_client();
    let url = mock.url("/v1/messages");

    // Before any token: a plain 529 answer.
    let reply = post(&client, &url, &[], &cached_request(true)).await;
    assert_eq!(reply.status.as_u16(), 529);
    assert_eq!(anthropic_error(&reply.json(), "overloaded_error"), "Overloaded");

    // After two tokens: `event: error` in the stream, and the stream ends.
    let mut body = message("claude-tools", "hi", 50);
    body["stream"] = true.into();
    let s = stream(&client, &url, &[], &body).await;
    assert_eq!(s.status, StatusCode::OK, "the stream had started");
    assert!(s.error.is_none(), "the body ends properly after the error event");
    let events: Vec<SseEvent> = s.events();
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "error"
        ]
    );
    anthropic_error(&events[5].json().unwrap(), "overloaded_error");

    let records = mock.records(2).await;
    assert_eq!((records[0].status, records[0].outcome), (529, Outcome::FaultStatus));
    assert_eq!(records[0].fault.as_deref(), Some("overloaded"));
    assert_eq!(
        (records[1].status, records[1].outcome),
        (529, Outcome::FaultStreamError)
    );
    assert_eq!(records[1].fault.as_deref(), Some("overloaded-midway"));
    assert_eq!(records[1].tokens_sent, 2);
}
