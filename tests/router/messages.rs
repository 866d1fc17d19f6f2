//! Anthropic's Messages API on loopback: `POST /v1/messages` (and under
//! `/api/v1`) against both mock dialects, whole and streamed, with tools, the
//! system prefix, billing equal to the same request as a chat completion,
//! Anthropic-shaped errors and `count_tokens`.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::support::{
    Answer, BASIC, LIFECYCLE_MOCKS, LIFECYCLE_ROUTES, LIMITS_MOCKS, LIMITS_ROUTES, Price, Stack, edit, patiently,
    picos, picos_at, served_record,
};

/// [`BASIC`] with an Anthropic tool-calling model and an OpenAI model with
/// a system prefix.
fn config() -> String {
    let toml = edit(
        BASIC,
        "[[providers.models]]\nid = \"claude-sonnet-4\"",
        "[[providers.models]]\nid = \"claude-tools\"\ntool-call = { name = \"get_weather\", arguments = '{\"city\": \"Paris\"}' }\n[[providers.models]]\nid = \"claude-sonnet-4\"",
    );
    format!(
        "{toml}\n[[router.models]]\nid = \"anthropic/claude-tools\"\nproviders = [{{ name = \"ant\", model = \"claude-tools\" }}]\nprompt = \"3\"\ncompletion = \"15\"\n\n[[router.models]]\nid = \"openai/gpt-4o-mini-prefixed\"\nproviders = [{{ name = \"oai\", model = \"gpt-4o-mini\" }}]\nprompt = \"0.15\"\ncompletion = \"0.60\"\ncache-read = \"0.075\"\nsystem-prefix = \"PREFIX.\"\n"
    )
}

const SONNET: Price = Price {
    prompt: 3_000_000,
    completion: 15_000_000,
    cache_read: 300_000,
    cache_write: 3_750_000,
};

const MINI: Price = Price {
    prompt: 150_000,
    completion: 600_000,
    cache_read: 75_000,
    cache_write: 0,
};

fn body(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 64, "stream": stream,
        "messages": [{"role": "user", "content": "Say hello, please."}]})
}

/// POSTs a Messages request to `path` with the bearer `key` and headers.
async fn post(stack: &Stack, path: &str, key: Option<&str>, body: &Value, headers: &[(&str, &str)]) -> Answer {
    stack.send("POST", path, key, Some(body), headers).await
}

/// A streamed Messages answer: its head and its (event name, data) pairs.
struct Events {
    status: StatusCode,
    headers: http::HeaderMap,
    events: Vec<(String, Value)>,
}

impl Events {
    fn names(&self) -> Vec<&str> {
        self.events.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn of(&self, name: &str) -> Vec<&Value> {
        self.events.iter().filter(|(n, _)| n == name).map(|(_, d)| d).collect()
    }

    /// The concatenated text deltas.
    fn text(&self) -> String {
        self.of("content_block_delta")
            .iter()
            .filter_map(|d| d["delta"]["text"].as_str())
            .collect()
    }

    /// Asserts Anthropic's event order and returns the final `message_delta`.
    fn assert_well_formed(&self) -> &Value {
        let names = self.names();
        assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
        assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"], "{names:?}");
        assert!(names.contains(&"ping"), "{names:?}");
        let starts = self.of("content_block_start");
        assert!(!starts.is_empty(), "{names:?}");
        for (i, start) in starts.iter().enumerate() {
            assert_eq!(start["index"], i, "contiguous block indexes: {names:?}");
        }
        assert_eq!(self.of("content_block_stop").len(), starts.len(), "{names:?}");
        for (name, data) in &self.events {
            assert_eq!(data["type"], name.as_str(), "each event's type is its name");
        }
        self.of("message_delta")[0]
    }
}

async fn stream(stack: &Stack, path: &str, key: &str, body: &Value, headers: &[(&str, &str)]) -> Events {
    let mut req = Request::post(stack.url(path))
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let response = stack
        .client
        .request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap())
        .await
        .expect("the router answers");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("the whole stream").to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let mut events = Vec::new();
    // An error before the stream began is a whole JSON answer.
    let blocks = if parts.status == StatusCode::OK {
        text.split("\n\n")
    } else {
        "".split("\n\n")
    };
    for block in blocks.filter(|b| !b.trim().is_empty()) {
        let mut name = None;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                name = Some(n.to_string());
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            }
        }
        let name = name.unwrap_or_else(|| panic!("an event without a name: {block:?}"));
        let data = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data}"));
        events.push((name, data));
    }
    Events {
        status: parts.status,
        headers: parts.headers,
        events,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_and_streamed_messages_from_both_dialects() {
    let stack = Stack::start(&config()).await;
    for (model, path) in [
        ("anthropic/claude-sonnet-4", "/v1/messages"),
        ("openai/gpt-4o-mini", "/api/v1/messages"),
    ] {
        let answer = post(&stack, path, Some("sk-a"), &body(model, false), &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{model}: {}", answer.text);
        let m = &answer.json;
        assert_eq!(
            (m["type"].as_str(), m["role"].as_str()),
            (Some("message"), Some("assistant"))
        );
        assert_eq!(m["model"], model);
        assert_eq!(m["content"][0]["type"], "text", "{}", answer.text);
        assert!(!m["content"][0]["text"].as_str().unwrap().is_empty());
        assert_eq!(m["stop_reason"], "end_turn");
        assert_eq!(m["stop_sequence"], Value::Null);
        assert_eq!(m["usage"]["output_tokens"], 12, "{}", answer.text);
        for field in ["input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"] {
            assert!(m["usage"][field].is_u64(), "{field}: {}", answer.text);
        }
        // The charge rides in usage as a chat completion's does, and in a header.
        let id = answer.header("x-generation-id").unwrap();
        assert_eq!(m["id"], id);
        let cost = picos(answer.header("x-gauntlet-cost").unwrap());
        assert!(cost > 0);
        assert_eq!(picos_at(&answer.text, &["usage", "cost"]), cost);
        let generation = stack.generation("sk-a", id).await;
        assert_eq!(picos_at(&generation.text, &["data", "total_cost"]), cost);

        let streamed = stream(&stack, path, "sk-a", &body(model, true), &[]).await;
        assert_eq!(streamed.status, StatusCode::OK);
        assert_eq!(streamed.headers["content-type"], "text/event-stream");
        let delta = streamed.assert_well_formed();
        assert_eq!(delta["delta"]["stop_reason"], "end_turn");
        assert_eq!(delta["usage"]["output_tokens"], 12);
        // The stream was settled before its message_delta, which carries the charge.
        let charged = delta["usage"]["cost"].as_f64().unwrap();
        assert!(charged > 0.0, "{delta}");
        let id = streamed.headers["x-generation-id"].to_str().unwrap();
        let generation = stack.generation("sk-a", id).await;
        let charged_there = picos_at(&generation.text, &["data", "total_cost"]);
        assert_eq!((charged * 1e12).round() as i64, charged_there, "{delta}");
        assert!(!streamed.text().is_empty());
        let start = &streamed.of("message_start")[0]["message"];
        assert_eq!(start["model"], model);
        assert!(start["usage"]["input_tokens"].is_u64());
        assert_eq!(start["id"], streamed.headers["x-generation-id"].to_str().unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_round_trip_through_both_dialects() {
    let stack = Stack::start(&config()).await;
    let tools = json!([{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    // A conversation with an earlier tool use and its result, as Claude Code sends.
    let history = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_0", "name": "get_weather", "input": {"city": "Lyon"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_0", "content": "sunny"},
            {"type": "text", "text": "And Paris?", "cache_control": {"type": "ephemeral"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
        ]}
    ]);
    for model in ["anthropic/claude-tools", "openai/gpt-4o-mini-tools"] {
        let request = json!({"model": model, "max_tokens": 64, "tools": tools, "tool_choice": {"type": "auto"},
            "stop_sequences": ["END"], "messages": history});
        let answer = post(&stack, "/v1/messages", Some("sk-a"), &request, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{model}: {}", answer.text);
        assert_eq!(answer.json["stop_reason"], "tool_use", "{}", answer.text);
        let tool = answer.json["content"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "tool_use")
            .unwrap_or_else(|| panic!("no tool_use: {}", answer.text));
        assert_eq!(tool["name"], "get_weather");
        assert_eq!(tool["input"], json!({"city": "Paris"}));
        assert!(tool["id"].as_str().is_some_and(|id| !id.is_empty()));

        let mut streamed_request = request.clone();
        streamed_request["stream"] = true.into();
        let streamed = stream(&stack, "/v1/messages", "sk-a", &streamed_request, &[]).await;
        assert_eq!(streamed.status, StatusCode::OK);
        let delta = streamed.assert_well_formed();
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        let start = streamed
            .of("content_block_start")
            .into_iter()
            .find(|s| s["content_block"]["type"] == "tool_use")
            .unwrap_or_else(|| panic!("no tool_use block: {:?}", streamed.names()))
            .clone();
        assert_eq!(start["content_block"]["name"], "get_weather");
        assert_eq!(start["content_block"]["input"], json!({}));
        let json: String = streamed
            .of("content_block_delta")
            .iter()
            .filter(|d| d["index"] == start["index"] && d["delta"]["type"] == "input_json_delta")
            .filter_map(|d| d["delta"]["partial_json"].as_str())
            .collect();
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), json!({"city": "Paris"}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_prefix_comes_before_the_callers_system_at_the_upstream() {
    let stack = Stack::start(&config()).await;
    let systems = [
        json!("Be brief."),
        json!([{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]),
    ];
    for (provider, model) in [
        ("ant", "anthropic/claude-sonnet-4"),
        ("oai", "openai/gpt-4o-mini-prefixed"),
    ] {
        for (i, system) in systems.iter().enumerate() {
            let id = format!("prefix-{provider}-{i}");
            let mut request = body(model, i == 1);
            request["system"] = system.clone();
            let headers = [("x-gauntlet-request-id", id.as_str())];
            if i == 1 {
                let streamed = stream(&stack, "/v1/messages", "sk-a", &request, &headers).await;
                streamed.assert_well_formed();
            } else {
                let answer = post(&stack, "/v1/messages", Some("sk-a"), &request, &headers).await;
                assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
            }
            let record = served_record(stack.journal(provider), &id).await;
            assert_eq!(
                record.system_prompt.as_deref(),
                Some("PREFIX.\n\nBe brief."),
                "{model} {system}"
            );
        }
        let id = format!("prefix-{provider}-none");
        let answer = post(
            &stack,
            "/v1/messages",
            Some("sk-a"),
            &body(model, false),
            &[("x-gauntlet-request-id", &id)],
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let record = served_record(stack.journal(provider), &id).await;
        assert_eq!(record.system_prompt.as_deref(), Some("PREFIX."));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_equals_the_same_request_as_a_chat_completion() {
    let stack = Stack::start(&config()).await;
    for (provider, model, price) in [
        ("ant", "anthropic/claude-sonnet-4", SONNET),
        ("oai", "openai/gpt-4o-mini", MINI),
    ] {
        for stream_it in [false, true] {
            let (_, spent_before, _) = stack.money("sk-a").await;
            let chat_id = format!("bill-chat-{provider}-{stream_it}");
            let chat = stack
                .send(
                    "POST",
                    "/api/v1/chat/completions",
                    Some("sk-a"),
                    Some(&json!({"model": model, "max_tokens": 64,
                        "messages": [{"role": "user", "content": "Say hello, please."}]})),
                    &[("x-gauntlet-request-id", &chat_id)],
                )
                .await;
            assert_eq!(chat.status, StatusCode::OK, "{}", chat.text);
            let chat_cost = picos_at(&chat.text, &["usage", "cost"]);
            let msg_id = format!("bill-msg-{provider}-{stream_it}");
            let headers = [("x-gauntlet-request-id", msg_id.as_str())];
            let generation = if stream_it {
                let streamed = stream(&stack, "/v1/messages", "sk-a", &body(model, true), &headers).await;
                streamed.assert_well_formed();
                streamed.headers["x-generation-id"].to_str().unwrap().to_string()
            } else {
                let answer = post(&stack, "/v1/messages", Some("sk-a"), &body(model, false), &headers).await;
                assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
                assert_eq!(picos(answer.header("x-gauntlet-cost").unwrap()), chat_cost);
                answer.header("x-generation-id").unwrap().to_string()
            };
            // Settled before the stream's last events: the charge is there now.
            let info = stack.generation("sk-a", &generation).await;
            let cost = picos_at(&info.text, &["data", "total_cost"]);
            assert_eq!(cost, chat_cost, "{model}, streamed: {stream_it}");
            let record = served_record(stack.journal(provider), &msg_id).await;
            assert_eq!(
                cost,
                price.cost(&record.usage.unwrap()),
                "{model}: the served usage at the model's price"
            );
            let chat_record = served_record(stack.journal(provider), &chat_id).await;
            assert_eq!(record.usage, chat_record.usage, "the same prompt, the same usage");
            let (_, spent_after, _) = stack.money("sk-a").await;
            assert_eq!(spent_after - spent_before, chat_cost + cost, "exact settlement");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_validation_and_count_tokens() {
    let stack = Stack::start(&config()).await;
    let request = body("anthropic/claude-sonnet-4", false);
    // x-api-key and the query, as Claude Code sends them with ANTHROPIC_API_KEY.
    let answer = post(
        &stack,
        "/v1/messages?beta=true",
        None,
        &request,
        &[
            ("x-api-key", "sk-a"),
            ("anthropic-version", "2026-10-21"),
            ("anthropic-beta", "x-1,y-2"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    for (key, headers) in [
        (None, vec![]),
        (None, vec![("x-api-key", "sk-nope")]),
        (Some("sk-nope"), vec![]),
    ] {
        let refused = post(&stack, "/v1/messages", key, &request, &headers).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);
        assert_eq!(refused.json["type"], "error");
        assert_eq!(refused.json["error"]["type"], "authentication_error");
        assert!(refused.json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let mut no_max = request.clone();
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let refused = post(&stack, "/v1/messages", Some("sk-a"), &no_max, &[]).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    assert_eq!(refused.json["error"]["type"], "invalid_request_error");
    assert!(refused.text.contains("max_tokens"), "{}", refused.text);
    let unknown = post(&stack, "/api/v1/messages", Some("sk-a"), &body("nope/nope", false), &[]).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json["error"]["type"], "not_found_error");

    // count_tokens: the router's count is the mock's, system prefix included.
    let systems = [
        None,
        Some(json!("Be brief.")),
        Some(json!([{"type": "text", "text": "Be brief."}])),
    ];
    for (path, system) in ["/v1/messages/count_tokens", "/api/v1/messages/count_tokens"]
        .into_iter()
        .flat_map(|p| systems.iter().map(move |s| (p, s)))
    {
        let mut counted = no_max.clone();
        if let Some(system) = system {
            counted["system"] = system.clone();
        }
        let answer = post(&stack, path, Some("sk-a"), &counted, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let tokens = answer.json["input_tokens"].as_u64().unwrap();
        counted["max_tokens"] = 8.into();
        let id = format!("count-{path}-{system:?}");
        let served = post(
            &stack,
            "/v1/messages",
            Some("sk-a"),
            &counted,
            &[("x-gauntlet-request-id", &id)],
        )
        .await;
        assert_eq!(served.status, StatusCode::OK, "{}", served.text);
        let record = served_record(stack.journal("ant"), &id).await;
        assert_eq!(tokens, u64::from(record.usage.unwrap().prompt_tokens));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_gets_anthropics_429() {
    let stack = Stack::start(&format!(
        "{LIMITS_MOCKS}\n[router]\noperator-key = \"sk-admin\"\n{LIMITS_ROUTES}\n[[router.keys]]\nkey = \"sk-rpm\"\ncredits = \"10\"\nrpm = 1\n"
    ))
    .await;
    let request = body("openai/gpt-4o-mini", false);
    let first = post(&stack, "/v1/messages", Some("sk-rpm"), &request, &[]).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let refused = post(&stack, "/v1/messages", Some("sk-rpm"), &request, &[]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{}", refused.text);
    assert_eq!(refused.json["type"], "error", "{}", refused.text);
    assert_eq!(refused.json["error"]["type"], "rate_limit_error");
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(refused.header("anthropic-ratelimit-requests-limit"), Some("1"));
    assert_eq!(refused.header("anthropic-ratelimit-requests-remaining"), Some("0"));
    let reset = refused.header("anthropic-ratelimit-requests-reset").unwrap();
    assert!(reset.parse::<jiff::Timestamp>().is_ok(), "RFC 3339: {reset}");
    assert_eq!(
        refused.header("x-ratelimit-limit"),
        Some("1"),
        "the chat route's headers too"
    );
    // Streamed requests are refused the same way, before any event.
    let streamed = stream(&stack, "/v1/messages", "sk-rpm", &body("openai/gpt-4o-mini", true), &[]).await;
    assert_eq!(streamed.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_models_are_anthropics_404_and_deprecated_ones_are_rerouted() {
    let stack = Stack::start(&format!(
        "{LIFECYCLE_MOCKS}\n[router]\nclock = {{ start = \"2026-01-20\" }}\n{LIFECYCLE_ROUTES}"
    ))
    .await;
    let before = stack.money("sk-a").await;
    for stream_it in [false, true] {
        let removed = post(
            &stack,
            "/v1/messages",
            Some("sk-a"),
            &body("openai/gpt-3.5-old", stream_it),
            &[],
        )
        .await;
        assert_eq!(removed.status, StatusCode::NOT_FOUND, "{}", removed.text);
        assert_eq!(removed.json["type"], "error");
        assert_eq!(removed.json["error"]["type"], "not_found_error");
        let message = removed.json["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("openai/gpt-4o-mini"),
            "names the replacement: {message}"
        );
    }
    assert_eq!(stack.money("sk-a").await, before, "no charge");
    assert_eq!(stack.journal("oai").len(), 0, "no upstream attempt");
    let grace = post(
        &stack,
        "/v1/messages",
        Some("sk-a"),
        &body("openai/gpt-4-legacy", false),
        &[],
    )
    .await;
    assert_eq!(grace.status, StatusCode::OK, "{}", grace.text);
    assert_eq!(grace.json["model"], "openai/gpt-4o-mini");
    assert_eq!(grace.header("x-original-model"), Some("openai/gpt-4-legacy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byok_key_pays_the_same_fee_as_for_a_chat_completion() {
    let toml = format!(
        "{}\n[[router.keys]]\nkey = \"sk-byok\"\ncredits = \"10\"\nbyok = {{ provider = \"oai\", api-key = \"sk-own\" }}\n",
        config()
    );
    let stack = Stack::start(&toml).await;
    let chat = stack
        .send(
            "POST",
            "/api/v1/chat/completions",
            Some("sk-byok"),
            Some(&json!({"model": "openai/gpt-4o-mini", "max_tokens": 64,
                "messages": [{"role": "user", "content": "Say hello, please."}]})),
            &[],
        )
        .await;
    assert_eq!(chat.status, StatusCode::OK, "{}", chat.text);
    assert_eq!(chat.json["usage"]["is_byok"], true);
    let answer = post(
        &stack,
        "/v1/messages",
        Some("sk-byok"),
        &body("openai/gpt-4o-mini", false),
        &[("x-gauntlet-request-id", "byok-1")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let record = served_record(stack.journal("oai"), "byok-1").await;
    assert_eq!(
        record.upstream_key.as_deref(),
        Some("sk-own"),
        "the key's own provider key"
    );
    let cost = picos(answer.header("x-gauntlet-cost").unwrap());
    assert_eq!(
        cost,
        picos_at(&chat.text, &["usage", "cost"]),
        "the BYOK fee, as for chat"
    );
    assert!(cost < MINI.cost(&record.usage.unwrap()), "a fee, not the price");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_refusals_are_retried_then_fall_back_across_dialects() {
    let hot = "[[providers.faults]]\nkind = \"status\"\nstatus = 429\nretry-after-ms = 10\n";
    let toml = format!(
        "[[providers]]\nname = \"hot\"\ndialect = \"anthropic\"\n[providers.defaults]\nttft-ms = 1\nitl-ms = 1\noutput-tokens = 4\n{hot}\n\
         [[providers]]\nname = \"cold\"\ndialect = \"openai\"\n[providers.defaults]\nttft-ms = 1\nitl-ms = 1\noutput-tokens = 4\n\
         [router]\n[router.retry]\nbase-ms = 5\ncap-ms = 20\nattempts-per-provider = 2\ndeadline-ms = 5000\ncooldown-after = 100\n\
         [[router.providers]]\nname = \"hot\"\ndialect = \"anthropic\"\nbase-url = \"mock:hot\"\napi-key = \"sk-up\"\n\
         [[router.providers]]\nname = \"cold\"\ndialect = \"openai\"\nbase-url = \"mock:cold\"\napi-key = \"sk-up\"\n\
         [[router.models]]\nid = \"test/m\"\nproviders = [\"hot\", \"cold\"]\nprompt = \"1\"\ncompletion = \"2\"\n\
         [[router.models]]\nid = \"test/hot\"\nproviders = [{{ name = \"hot\", model = \"m\" }}]\nprompt = \"1\"\ncompletion = \"2\"\n\
         [[router.keys]]\nkey = \"sk-a\"\ncredits = \"100\"\n"
    );
    let stack = Stack::start(&toml).await;
    for stream_it in [false, true] {
        let request = body("test/m", stream_it);
        if stream_it {
            stream(&stack, "/v1/messages", "sk-a", &request, &[])
                .await
                .assert_well_formed();
        } else {
            let answer = post(&stack, "/v1/messages", Some("sk-a"), &request, &[]).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
            assert_eq!(answer.json["content"][0]["type"], "text", "{}", answer.text);
        }
    }
    patiently("the refusals in the journal", stack.journal("hot").wait_for(4)).await;
    assert_eq!(
        stack.journal("hot").len(),
        4,
        "two attempts a request at the refusing provider"
    );
    assert_eq!(stack.journal("cold").len(), 2, "the fallback served both");
    // With no fallback, the router's own 429 after its retries, Anthropic-shaped.
    let refused = post(&stack, "/api/v1/messages", Some("sk-a"), &body("test/hot", false), &[]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{}", refused.text);
    assert_eq!(refused.json["error"]["type"], "rate_limit_error", "{}", refused.text);
    assert!(refused.header("retry-after").is_some(), "{:?}", refused.headers);
    let (_, spent, _) = stack.money("sk-a").await;
    assert!(spent > 0, "the two served requests are charged, the refused one is not");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_upstream_gets_the_beta_flags_and_its_own_key() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    let message = json!({"id": "msg_up", "type": "message", "role": "assistant", "model": "claude-up",
        "content": [{"type": "text", "text": "Hello."}], "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0, "output_tokens": 5}});
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(message))
        .mount(&server)
        .await;
    let toml = format!(
        "[router]\n[[router.providers]]\nname = \"a\"\ndialect = \"anthropic\"\nbase-url = \"{}\"\napi-key = \"sk-up-a\"\n\
         [[router.models]]\nid = \"test/claude\"\nproviders = [\"a\"]\nupstream-model = \"claude-up\"\nprompt = \"1\"\ncompletion = \"2\"\n\
         [[router.keys]]\nkey = \"sk-a\"\ncredits = \"10\"\n",
        server.uri()
    );
    let stack = Stack::serve_router_toml(mock_providers::MockSet::spawn(Vec::new()).await.unwrap(), &toml).await;
    let mut request = body("test/claude", false);
    request["top_k"] = 5.into();
    request["metadata"] = json!({"user_id": "u-1"});
    let answer = post(
        &stack,
        "/v1/messages",
        None,
        &request,
        &[
            ("x-api-key", "sk-a"),
            ("anthropic-beta", "prompt-caching-2024-07-31,x-2"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["content"][0]["text"], "Hello.");
    assert_eq!(answer.json["model"], "test/claude");
    // 10 × 1 + 5 × 2 USD per million tokens.
    assert_eq!(answer.header("x-gauntlet-cost"), Some("0.00002"));
    let received = server.received_requests().await.unwrap();
    let sent = &received[0];
    assert_eq!(sent.headers["anthropic-beta"], "prompt-caching-2024-07-31,x-2");
    assert_eq!(
        sent.headers["x-api-key"], "sk-up-a",
        "the upstream's key, not the caller's"
    );
    let upstream_body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(upstream_body["model"], "claude-up");
    assert_eq!(
        upstream_body["top_k"], 5,
        "fields the router does not read pass through"
    );
    assert_eq!(upstream_body["metadata"], json!({"user_id": "u-1"}));
    assert_eq!(upstream_body["messages"], request["messages"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_failing_mid_way_ends_with_an_error_event_and_is_not_charged() {
    let toml = edit(
        &config(),
        "[[router.keys]]",
        "[[router.models]]\nid = \"anthropic/claude-flaky\"\nproviders = [{ name = \"ant\", model = \"claude-flaky\" }]\nprompt = \"3\"\ncompletion = \"15\"\n\n\
         [[router.models]]\nid = \"openai/gpt-cut\"\nproviders = [{ name = \"oai\", model = \"gpt-cut\" }]\nprompt = \"1\"\ncompletion = \"2\"\n\n\
         [[router.keys]]",
    );
    let toml = edit(
        &toml,
        "[[providers.models]]\nid = \"claude-tools\"",
        "[[providers.models]]\nid = \"claude-flaky\"\n[[providers.faults]]\nkind = \"status\"\nstatus = 529\nafter-tokens = 3\nmodel = \"claude-flaky\"\n[[providers.models]]\nid = \"claude-tools\"",
    );
    let toml = edit(
        &toml,
        "[[providers.models]]\nid = \"gpt-4o-mini-tools\"",
        "[[providers.models]]\nid = \"gpt-cut\"\n[[providers.faults]]\nkind = \"cut\"\nafter-tokens = 3\nmodel = \"gpt-cut\"\n[[providers.models]]\nid = \"gpt-4o-mini-tools\"",
    );
    let stack = Stack::start(&toml).await;
    let (_, spent_before, _) = stack.money("sk-a").await;
    for (model, error_type) in [
        ("anthropic/claude-flaky", "overloaded_error"),
        ("openai/gpt-cut", "api_error"),
    ] {
        let streamed = stream(&stack, "/v1/messages", "sk-a", &body(model, true), &[]).await;
        assert_eq!(streamed.status, StatusCode::OK);
        let names = streamed.names();
        assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
        assert_eq!(names.last(), Some(&"error"), "{model}: {names:?}");
        assert!(!names.contains(&"message_stop"), "{names:?}");
        assert!(!streamed.text().is_empty(), "the text before the failure was relayed");
        let error = streamed.of("error")[0];
        assert_eq!(error["error"]["type"], error_type, "{error}");
        assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (_, spent_after, _) = stack.money("sk-a").await;
    assert_eq!(spent_after, spent_before, "failed streams are free, as for chat");
}
