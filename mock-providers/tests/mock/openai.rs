//! The OpenAI dialect over real HTTP: completions, streaming chunks, tool
//! calls, model listing and error answers.

use http::{Method, StatusCode};
use mock_providers::Outcome;
use mock_providers::tokens::VOCABULARY;
use serde_json::{Value, json};

use crate::support::{Mock, call, chat, chat_stream, get, http_client, openai_content, post, stream};

const TOOL_ARGS: &str = r#"{"city": "Paris", "unit": "celsius"}"#;

fn config() -> String {
    format!(
        r#"
[[providers]]
name = "oa"
dialect = "openai"
seed = 7

[providers.defaults]
ttft-ms = 1
itl-ms = 1
output-tokens = 8

[[providers.models]]
id = "gpt-cache"
cache-read-share = 0.5
reasoning-tokens = 3

[[providers.models]]
id = "gpt-long"
output-tokens = 20

[[providers.models]]
id = "gpt-tools"
tool-call = {{ name = "get_weather", arguments = '{TOOL_ARGS}' }}

[[providers.models]]
id = "gpt-old"
removed = true

[[providers.models]]
id = "gpt-plain"
"#
    )
}

/// Asserts the OpenAI error shape and returns the error object.
fn openai_error(body: &Value) -> &Value {
    let error = &body["error"];
    let keys: Vec<&str> = error
        .as_object()
        .expect("an error object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 4, "error has exactly message, type, param, code: {body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(error["type"].is_string(), "{body}");
    assert!(error["param"].is_null(), "{body}");
    assert!(error["code"].is_string(), "{body}");
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_completion_reports_usage_by_the_documented_prompt_rule() {
    let mock = Mock::start(&config()).await;
    let client = http_client();
    // The documented rule: 3 + per message (4 + ceil(chars / 4)).
    //   system "abcde": 5 chars -> 4 + 2
    //   user "hello world": 11 chars -> 4 + 3
    //   user parts "東京東京東" + " ok" (the image part has no text): 8 chars -> 4 + 2
    //   = 3 + 6 + 7 + 6 = 22
    let body = json!({
        "model": "gpt-cache",
        "messages": [
            {"role": "system", "content": "abcde"},
            {"role": "user", "content": "hello world"},
            {"role": "user", "content": [
                {"type": "text", "text": "東京東京東"},
                {"type": "image_url", "image_url": {"url": "data:,"}},
                {"type": "text", "text": " ok"}
            ]}
        ]
    });
    let reply = post(&client, &mock.url("/v1/chat/completions"), &[], &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(reply.header("content-type").unwrap().starts_with("application/json"));
    let v = reply.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-cache");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["message"]["role"], "assistant");
    let text = choice["message"]["content"].as_str().unwrap();
    assert!(!text.is_empty());

    let usage = &v["usage"];
    assert_eq!(usage["prompt_tokens"], 22);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 11, "floor(22 * 0.5)");
    assert_eq!(
        usage["completion_tokens"],
        8 + 3,
        "8 output tokens + 3 reasoning tokens"
    );
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 3);
    assert_eq!(usage["total_tokens"], 22 + 11);

    let record = &mock.records(1).await[0];
    assert_eq!(record.tokens_sent, 8);
    assert_eq!(record.outcome, Outcome::Ok);
    let journal_usage = record.usage.unwrap();
    assert_eq!(
        (
            journal_usage.prompt_tokens,
            journal_usage.cache_read_tokens,
            journal_usage.completion_tokens
        ),
        (22, 11, 11)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offered_tools_count_toward_prompt_tokens() {
    let mock = Mock::start(&config()).await;
    let client = http_client();
    let tools = json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]);
    let serialized = tools.to_string().len() as u64;
    let body = json!({"model": "gpt-plain", "messages": [{"role": "user", "content": "abcd"}], "tools": tools});
    let v = post(&client, &mock.url("/v1/chat/completions"), &[], &body)
        .await
        .json();
    // 3 + (4 + 1) + ceil(bytes(tools) / 4); gpt-plain has no tool call, so it answers in text.
    assert_eq!(v["usage"]["prompt_tokens"], 3 + 5 + serialized.div_ceil(4));
    assert!(v["choices"][0]["message"]["content"].is_string());
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_tokens_caps_the_output_with_finish_reason_length() {
    let mock = Mock::start(&config()).await;
    let client = http_client();
    let url = mock.url("/v1/chat/completions");

    let mut body = chat("gpt-long", "hi");
    body["max_tokens"] = 5.into();
    let v = post(&client, &url, &[], &body).await.json();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 5);

    // max_completion_tokens counts reasoning tokens: 5 - 3 reasoning = 2 visible tokens.
    let mut body = chat("gpt-cache", "hi");
    body["max_completion_tokens"] = 5.into();
    let v = post(&client, &url, &[], &body).await.json();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(v["usage"]["completion_tokens_details"]["reasoning_tokens"], 3);

    // Streaming: exactly 5 content chunks, then a finish chunk saying "length".
    let mut body = chat_stream("gpt-long", "hi", None);
    body["max_tokens"] = 5.into();
    let s = stream(&client, &url, &[], &body).await;
    let chunks: Vec<Value> = s.events().iter().filter_map(|e| e.json()).collect();
    assert_eq!(chunks.iter().filter_map(openai_content).count(), 5);
    let finish: Vec<&Value> = chunks
        .iter()
        .filter(|c| !c["choices"][0]["finish_reason"].is_null() && c["choices"][0].is_object())
        .collect();
    assert_eq!(finish.len(), 1);
    assert_eq!(finish[0]["choices"][0]["finish_reason"], "length");

    let records = mock.records(3).await;
    assert_eq!(
        records.iter().map(|r| r.tokens_sent).collect::<Vec<_>>(),
        [5, 2, 5],
        "tokens actually sent"
    );
    assert!(records.iter().all(|r| r.max_tokens == Some(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_tokens_never_exceed_max_tokens() {
    let mock = Mock::start(&config()).await;
    let client = http_client();
    // gpt-cache reports 3 reasoning tokens; a budget of 2 cannot hold them.
    let mut body = chat("gpt-cache", "hi");
    body["max_tokens"] = 2.into();
    let v = post(&client, &mock.url("/v1/chat/completions"), &[], &body)
        .await
        .json();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let completion = v["usage"]["completion_tokens"].as_u64().unwrap();
    let reasoning = v["usage"]["completion_tokens_details"]["reasoning_tokens"]
        .as_u64()
        .unwrap();
    assert!(completion <= 2, "completion_tokens {completion} > max_tokens 2");
    assert!(
        reasoning <= completion,
        "reasoning {reasoning} is a part of completion {completion}"
    );
}

/// Checks the framing of an OpenAI text stream and returns the content.
fn check_text_stream(events: &[crate::support::SseEvent], include_usage: bool, n: usize) -> String {
    assert!(
        events.iter().all(|e| e.event == "message"),
        "OpenAI uses unnamed events"
    );
    assert!(events.last().unwrap().is_done(), "the stream ends with data: [DONE]");
    assert_eq!(events.iter().filter(|e| e.is_done()).count(), 1);
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| e.json().unwrap_or_else(|| panic!("not JSON: {}", e.data)))
        .collect();
    let expected = 1 + n + 1 + usize::from(include_usage);
    assert_eq!(chunks.len(), expected, "role + {n} content + finish (+ usage)");
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], chunks[0]["id"], "one id for the whole stream");
        if include_usage {
            assert!(
                c.get("usage").is_some(),
                "with include_usage every chunk has a usage field"
            );
        } else {
            assert!(
                c.get("usage").is_none(),
                "without include_usage no chunk has usage: {c}"
            );
        }
    }
    let role = &chunks[0]["choices"][0];
    assert_eq!(role["delta"]["role"], "assistant");
    assert_eq!(role["delta"]["content"], "");
    assert!(role["finish_reason"].is_null());

    let mut text = String::new();
    for c in &chunks[1..=n] {
        let choice = &c["choices"][0];
        assert!(choice["finish_reason"].is_null());
        let piece = choice["delta"]["content"].as_str().expect("a content delta");
        assert!(
            VOCABULARY.contains(&piece),
            "one vocabulary token per chunk, got {piece:?}"
        );
        text.push_str(piece);
    }
    let finish = &chunks[n + 1];
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    if include_usage {
        assert!(finish["usage"].is_null());
        let last = &chunks[n + 2];
        assert_eq!(last["choices"], json!([]), "the usage chunk has no choices");
        assert!(last["usage"].is_object());
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_sends_role_tokens_finish_optional_usage_and_done() {
    let mock = Mock::start(&config()).await;
    let client = http_client();
    let url = mock.url("/v1/chat/completions");

    // include_usage = true: a final chunk with `choices: []` and the usage.
    let id = [("x-gauntlet-request-id", "stream-usage")];
    let s = stream(&client, &url, &id, &chat_stream("gpt-cache", "hello", Some(true))).await;
    assert_eq!(s.status, StatusCode::OK);
    assert!(s.header("content-type").unwrap().starts_with("text/event-stream"));
    assert!(s.error.is_none(), "{:?}", s.error);
    let events = s.events();
    let streamed_text = check_text_stream(&events, true, 8);
    let usage = &events[events.len() - 2].json().unwrap()["usage"];
    // "hello": 3 + 4 + 2 = 9 prompt tokens, 4 cached; 8 + 3 completion tokens.
    assert_eq!(usage["prompt_tokens"], 9);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 4);
    assert_eq!(usage["completion_tokens"], 11);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 3);

    // The same request id again, not streamed: the same seeded text.
    let whole = post(&client, &url, &id, &chat("gpt-cache", "hello")).await.json();
    assert_eq!(whole["choices"][0]["message"]["content"], streamed_text.as_str());

    // include_usage = false and absent: no usage anywhere.
    for usage in [Some(false), None] {
        let s = stream(&client, &url, &[], &chat_stream("gpt-plain", "hello", usage)).await;
        check_text_stream(&s.events(), false, 8);
    }

    let records = mock.records(4).await;
    assert_eq!(records[0].tokens_sent, 8, "the journal counts the chunks sent");
    assert_eq!(records[0].usage.map(|u| u.completion_tokens), Some(11));
    assert!(records[0].stream && !records[1].stream && records[2].stream);
    assert_eq!(records[2].usage, None, "no usage reported without include_usage");
    assert_eq!(records[3].usage, None);
    assert!(records.iter().all(|r| r.outcome == Outcome::Ok && r.status == 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_stream_as_deltas_when_tools_are_offered() {
    let mock = Mock::start(&config()).await;
    let client = http_client();
    let url = mock.url("/v1/chat/completions");
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);

    let mut body = chat_stream("gpt-tools", "weather?", None);
    body["tools"] = tools.clone();
    let s = stream(&client, &url, &[], &body).await;
    let events = s.events();
    assert!(events.last().unwrap().is_done());
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| e.json().unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks[0]["choices"][0]["delta"]["content"].is_null());

    let deltas: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("tool_calls"))
        .collect();
    assert!(deltas.len() > 1, "arguments come in several pieces");
    let first = &deltas[0][0];
    assert_eq!(first["index"], 0);
    assert!(first["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(first["type"], "function");
    assert_eq!(first["function"]["name"], "get_weather");
    for later in &deltas[1..] {
        assert_eq!(later[0]["index"], 0);
        assert!(later[0].get("id").is_none() && later[0]["function"].get("name").is_none());
    }
    let arguments: String = deltas
        .iter()
        .map(|d| d[0]["function"]["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(arguments, TOOL_ARGS);
    assert!(chunks.iter().all(|c| openai_content(c).is_none()), "no text content");
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");

    // Not streamed: the whole call in the message.
    let mut body = chat("gpt-tools", "weather?");
    body["tools"] = tools;
    let v = post(&client, &url, &[], &body).await.json();
    let message = &v["choices"][0]["message"];
    assert!(message["content"].is_null());
    assert_eq!(message["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(message["tool_calls"][0]["function"]["arguments"], TOOL_ARGS);
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");

    // Without tools on offer the same model answers in text.
    let s = stream(&client, &url, &[], &chat_stream("gpt-tools", "weather?", None)).await;
    let chunks: Vec<Value> = s.events().iter().filter_map(|e| e.json()).collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["choices"][0]["delta"].get("tool_calls").is_none())
    );
    assert_eq!(chunks.iter().filter_map(openai_content).count(), 8);
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "stop");

    let records = mock.records(3).await;
    assert_eq!(records[0].tokens_sent as usize, deltas.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_lists_the_configured_models_that_are_not_removed() {
    let mock = Mock::start(&config()).await;
    let client = http_client();
    let reply = get(&client, &mock.url("/v1/models")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let v = reply.json();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt-cache", "gpt-long", "gpt-tools", "gpt-plain"]);
    assert!(v["data"].as_array().unwrap().iter().all(|m| m["object"] == "model"));
    assert!(mock.journal().is_empty(), "listing models is not an attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_and_unlisted_models_answer_404_model_not_found() {
    let mock = Mock::start(&config()).await;
    let client = http_client();
    for model in ["gpt-old", "gpt-unknown"] {
        for body in [chat(model, "hi"), chat_stream(model, "hi", Some(true))] {
            let reply = post(&client, &mock.url("/v1/chat/completions"), &[], &body).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{model}");
            assert!(reply.header("content-type").unwrap().starts_with("application/json"));
            let v = reply.json();
            let error = openai_error(&v);
            assert_eq!(error["code"], "model_not_found");
            assert_eq!(error["type"], "invalid_request_error");
            assert!(error["message"].as_str().unwrap().contains(model));
        }
    }
    let records = mock.records(4).await;
    assert!(
        records
            .iter()
            .all(|r| r.status == 404 && r.outcome == Outcome::ModelNotFound)
    );
    assert_eq!(records[0].model.as_deref(), Some("gpt-old"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_answer_400_with_a_message() {
    let mock = Mock::start(&config()).await;
    let client = http_client();
    let url = mock.url("/v1/chat/completions");
    let cases = [
        ("{not json", "not valid JSON"),
        (r#"{"messages": [{"role": "user", "content": "x"}]}"#, "model"),
        (r#"{"model": "gpt-plain"}"#, "messages"),
        (r#"{"model": "gpt-plain", "messages": []}"#, "messages"),
        (
            r#"{"model": "gpt-plain", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}"#,
            "max_tokens",
        ),
        (
            r#"{"model": "gpt-plain", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}"#,
            "stream",
        ),
    ];
    for (body, needle) in cases {
        let reply = call(&client, Method::POST, &url, &[], Some(body.to_string())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        let v = reply.json();
        let error = openai_error(&v);
        assert_eq!(error["type"], "invalid_request_error");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains(needle),
            "{body}: message {message:?} should mention {needle}"
        );
    }
    let records = mock.records(cases.len()).await;
    assert!(
        records
            .iter()
            .all(|r| r.status == 400 && r.outcome == Outcome::BadRequest)
    );

    // An unknown route is a 404 with the same error shape, and not an attempt.
    let reply = call(&client, Method::POST, &mock.url("/v1/messages"), &[], Some("{}".into())).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(openai_error(&reply.json())["code"], "not_found");
    assert_eq!(mock.journal().len(), cases.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_key_answers_401_when_keys_are_configured() {
    let mock = Mock::start(
        r#"
[[providers]]
name = "keyed"
dialect = "openai"
[providers.defaults]
ttft-ms = 1
itl-ms = 1
output-tokens = 2
[[providers.keys]]
key = "sk-good"
"#,
    )
    .await;
    let client = http_client();
    let url = mock.url("/v1/chat/completions");
    let body = chat("any-model", "hi");

    for headers in [&[("authorization", "Bearer sk-bad")][..], &[][..]] {
        let reply = post(&client, &url, headers, &body).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        let v = reply.json();
        assert_eq!(openai_error(&v)["code"], "invalid_api_key");
    }
    let ok = post(&client, &url, &[("authorization", "Bearer sk-good")], &body).await;
    assert_eq!(ok.status, StatusCode::OK);

    let records = mock.records(3).await;
    assert_eq!(records[0].outcome, Outcome::Unauthorized);
    assert_eq!(records[0].upstream_key.as_deref(), Some("sk-bad"));
    assert_eq!(records[1].outcome, Outcome::Unauthorized);
    assert_eq!(records[1].upstream_key, None);
    assert_eq!(records[2].outcome, Outcome::Ok);
    assert_eq!(records[2].upstream_key.as_deref(), Some("sk-good"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_model_provider_serves_any_model_name() {
    let config = mock_providers::ProviderConfig::any_model(
        "anything",
        mock_providers::Dialect::OpenAi,
        "127.0.0.1:0".parse().unwrap(),
    );
    let set = mock_providers::MockSet::spawn(vec![config]).await.unwrap();
    let provider = &set.providers()[0];
    assert_ne!(provider.addr.port(), 0);
    let client = http_client();
    let url = format!("{}/v1/chat/completions", provider.base_url());
    let v = post(&client, &url, &[], &chat("made-up-model-name", "hi")).await.json();
    assert_eq!(v["model"], "made-up-model-name");
    assert_eq!(
        v["usage"]["completion_tokens"], 16,
        "the documented default output length"
    );
    let models = get(&client, &format!("{}/v1/models", provider.base_url())).await.json();
    assert_eq!(models["data"], json!([]));
    let health = get(&client, &format!("{}/__gauntlet/health", provider.base_url()))
        .await
        .json();
    assert_eq!(health, json!({"ok": true, "provider": "anything"}));
}
