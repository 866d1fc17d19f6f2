//! The API surface: both prefixes, authentication, validation messages,
//! body limits, the operator's admin routes, health, and a property test that
//! no input makes the router panic or answer 5xx.

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::support::{API, Stack, assert_error_shape, picos, picos_at};

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_prefixes_serve_the_same_api() {
    let stack = Stack::start(API).await;
    for prefix in ["/api/v1", "/v1"] {
        let answer = stack
            .send(
                "POST",
                &format!("{prefix}/chat/completions"),
                Some("sk-a"),
                Some(&hello("openai/gpt-4o-mini")),
                &[],
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{prefix}: {}", answer.text);
        let id = answer.header("x-generation-id").unwrap().to_string();
        let generation = stack
            .send("GET", &format!("{prefix}/generation?id={id}"), Some("sk-a"), None, &[])
            .await;
        assert_eq!(generation.status, StatusCode::OK, "{prefix}: {}", generation.text);
        assert_eq!(
            picos_at(&generation.text, &["data", "total_cost"]),
            picos_at(&answer.text, &["usage", "cost"])
        );
        let key = stack
            .send("GET", &format!("{prefix}/key"), Some("sk-a"), None, &[])
            .await;
        assert_eq!(key.status, StatusCode::OK, "{prefix}: {}", key.text);
        assert_eq!(key.json["data"]["label"], "key a");
        let models = stack.send("GET", &format!("{prefix}/models"), None, None, &[]).await;
        assert_eq!(
            models.json["data"].as_array().map(Vec::len),
            Some(2),
            "{prefix}: {}",
            models.text
        );
    }
    for path in ["/api/v1/nowhere", "/v2/chat/completions", "/"] {
        let answer = stack.send("GET", path, Some("sk-a"), None, &[]).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}: {}", answer.text);
        assert_error_shape(answer.status, &answer.json, &answer.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_malformed_and_unknown_keys_get_401() {
    let stack = Stack::start(API).await;
    let cases: [(&str, &[(&str, &str)]); 5] = [
        ("missing", &[]),
        ("not bearer", &[("authorization", "Basic c2stYTpzZWNyZXQ=")]),
        ("empty bearer", &[("authorization", "Bearer ")]),
        ("no space", &[("authorization", "Bearersk-a")]),
        ("unknown", &[("authorization", "Bearer sk-nobody")]),
    ];
    for (case, headers) in cases {
        for (method, path, body) in [
            ("POST", "/api/v1/chat/completions", Some(hello("openai/gpt-4o-mini"))),
            ("GET", "/api/v1/key", None),
            ("GET", "/v1/generation?id=gen-1", None),
        ] {
            let answer = stack.send(method, path, None, body.as_ref(), headers).await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{case} {path}: {}",
                answer.text
            );
            let error = assert_error_shape(answer.status, &answer.json, &answer.text);
            assert_eq!(error["type"], "authentication_error", "{case}");
        }
    }
    assert!(stack.journal("oai").is_empty(), "no upstream attempt without a key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_400_naming_what_is_wrong() {
    let stack = Stack::start(API).await;
    let cases: [(&str, Bytes, &str); 8] = [
        ("bad JSON", Bytes::from_static(b"{\"model\": \"openai/gpt-4o-mini\", "), "JSON"),
        ("not an object", Bytes::from_static(b"[1, 2]"), "object"),
        ("missing model", Bytes::from(json!({"messages": [{"role": "user", "content": "hi"}]}).to_string()), "`model`"),
        ("model not a string", Bytes::from(json!({"model": 7, "messages": []}).to_string()), "`model`"),
        (
            "messages not an array",
            Bytes::from(json!({"model": "openai/gpt-4o-mini", "messages": "hi"}).to_string()),
            "`messages`",
        ),
        ("messages empty", Bytes::from(json!({"model": "openai/gpt-4o-mini", "messages": []}).to_string()), "`messages`"),
        (
            "max_tokens 0",
            Bytes::from(
                json!({"model": "openai/gpt-4o-mini", "max_tokens": 0, "messages": [{"role": "user", "content": "hi"}]})
                    .to_string(),
            ),
            "`max_tokens`",
        ),
        (
            "stream not a boolean",
            Bytes::from(
                json!({"model": "openai/gpt-4o-mini", "stream": "yes", "messages": [{"role": "user", "content": "hi"}]})
                    .to_string(),
            ),
            "`stream`",
        ),
    ];
    for (case, body, names) in cases {
        let answer = stack
            .send_raw("POST", "/api/v1/chat/completions", Some("sk-a"), body, &[])
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{case}: {}", answer.text);
        let error = assert_error_shape(answer.status, &answer.json, &answer.text);
        assert_eq!(error["type"], "invalid_request_error", "{case}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains(names),
            "{case}: the message should name {names}: {message}"
        );
    }
    assert!(stack.journal("oai").is_empty());
    let (_, spent, available) = stack.money("sk-a").await;
    assert_eq!((spent, available), (0, picos("10")), "nothing charged or held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_model_is_404() {
    let stack = Stack::start(API).await;
    let answer = stack.chat("sk-a", &hello("openai/gpt-9-imaginary")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text);
    let error = assert_error_shape(answer.status, &answer.json, &answer.text);
    assert!(
        error["message"].as_str().unwrap().contains("openai/gpt-9-imaginary"),
        "{}",
        answer.text
    );
    assert_eq!(error["param"], "model");
    assert!(
        error.get("availability").is_none(),
        "not a deprecation: {}",
        answer.text
    );
    assert!(stack.journal("oai").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_gets_413() {
    let stack = Stack::start(API).await;
    let big = json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(4000)}]});
    let answer = stack.chat("sk-a", &big).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", answer.text);
    assert_error_shape(answer.status, &answer.json, &answer.text);
    let admin = stack
        .send(
            "POST",
            "/api/v1/admin/keys",
            Some("sk-admin"),
            Some(&json!({"label": "x".repeat(4000)})),
            &[],
        )
        .await;
    assert_eq!(admin.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", admin.text);
    // Just under the limit is fine, and the router still serves.
    let fits = json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(1900)}]});
    assert_eq!(stack.chat("sk-a", &fits).await.status, StatusCode::OK);
    assert_eq!(stack.journal("oai").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_creates_keys_and_adds_credits() {
    let stack = Stack::start(API).await;
    let created = stack
        .send(
            "POST",
            "/api/v1/admin/keys",
            Some("sk-admin"),
            Some(&json!({"label": "new", "credits": "6"})),
            &[],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let key = created.json["data"]["key"].as_str().unwrap().to_string();
    assert_eq!(picos_at(&created.text, &["data", "limit"]), picos("6"));
    let answer = stack.chat(&key, &hello("anthropic/claude-sonnet-4")).await;
    assert_eq!(answer.status, StatusCode::OK, "the new key works: {}", answer.text);
    let cost = picos_at(&answer.text, &["usage", "cost"]);
    assert!(cost > 0);

    let topped = stack
        .send(
            "POST",
            &format!("/api/v1/admin/keys/{key}/credits"),
            Some("sk-admin"),
            Some(&json!({"amount": "5"})),
            &[],
        )
        .await;
    assert_eq!(topped.status, StatusCode::OK, "{}", topped.text);
    let (credits, spent, available) = stack.money(&key).await;
    assert_eq!((credits, spent, available), (picos("11"), cost, picos("11") - cost));
    assert_eq!(stack.key_info(&key).await["label"], "new");

    // A chosen key, under the other prefix; the same key twice is a conflict.
    let chosen = stack
        .send(
            "POST",
            "/v1/admin/keys",
            Some("sk-admin"),
            Some(&json!({"key": "sk-chosen", "credits": "5.5"})),
            &[],
        )
        .await;
    assert_eq!(chosen.status, StatusCode::CREATED, "{}", chosen.text);
    assert_eq!(stack.money("sk-chosen").await, (picos("5.5"), 0, picos("5.5")));
    let again = stack
        .send(
            "POST",
            "/v1/admin/keys",
            Some("sk-admin"),
            Some(&json!({"key": "sk-chosen", "credits": "7"})),
            &[],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert_error_shape(again.status, &again.json, &again.text);
    assert_eq!(
        stack.money("sk-chosen").await,
        (picos("5.5"), 0, picos("5.5")),
        "unchanged by the conflict"
    );

    // Bad amounts are refused with a message naming the field.
    for amount in [json!("-1"), json!("ten"), json!("0.0000000000001")] {
        let bad = stack
            .send(
                "POST",
                "/api/v1/admin/keys/sk-a/credits",
                Some("sk-admin"),
                Some(&json!({"amount": amount})),
                &[],
            )
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{amount}: {}", bad.text);
        assert!(
            bad.json["error"]["message"].as_str().unwrap().contains("amount"),
            "{}",
            bad.text
        );
    }
    assert_eq!(stack.money("sk-a").await.0, picos("10"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_need_the_operator_key() {
    let stack = Stack::start(API).await;
    for (path, body) in [
        ("/api/v1/admin/keys", json!({"credits": "100"})),
        ("/api/v1/admin/keys/sk-a/credits", json!({"amount": "100"})),
    ] {
        let answer = stack.send("POST", path, Some("sk-a"), Some(&body), &[]).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}: {}", answer.text);
        let error = assert_error_shape(answer.status, &answer.json, &answer.text);
        assert_eq!(error["type"], "permission_error");
        let anonymous = stack.send("POST", path, None, Some(&body), &[]).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{path}: {}", anonymous.text);
    }
    assert_eq!(stack.money("sk-a").await.0, picos("10"), "no credits were added");
    // The operator key is not an API key.
    let answer = stack.chat("sk-admin", &hello("openai/gpt-4o-mini")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_ok() {
    let stack = Stack::start(API).await;
    let answer = stack.send("GET", "/health", None, None, &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json, json!({"ok": true}));
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z_]{0,10}", inner, 0..4)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// Bodies shaped like chat requests, each field usually plausible and
/// sometimes wrong, so that validation is explored past its first check.
fn chat_like() -> impl Strategy<Value = Value> {
    let model = prop_oneof![
        4 => Just(json!("openai/gpt-4o-mini")),
        4 => Just(json!("anthropic/claude-sonnet-4")),
        1 => Just(json!("nope/unknown")),
        1 => Just(json!("")),
        1 => any_json(),
    ];
    let role = prop_oneof![
        4 => Just(json!("user")),
        2 => Just(json!("system")),
        2 => Just(json!("assistant")),
        1 => Just(json!("tool")),
        1 => Just(json!("robot")),
        1 => any_json(),
    ];
    let content = prop_oneof![
        6 => ".{0,40}".prop_map(Value::from),
        1 => proptest::collection::vec(".{0,10}".prop_map(|text| json!({"type": "text", "text": text})), 0..3)
            .prop_map(Value::from),
        1 => any_json(),
    ];
    let message = (role, content, proptest::option::weighted(0.1, any_json())).prop_map(|(role, content, calls)| {
        let mut message = json!({"role": role, "content": content});
        if let Some(calls) = calls {
            message["tool_calls"] = calls;
        }
        message
    });
    let messages = prop_oneof![
        6 => proptest::collection::vec(message, 1..4).prop_map(Value::from),
        1 => Just(json!([])),
        1 => any_json(),
    ];
    let max_tokens = prop_oneof![
        4 => (0u64..2_000_000).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any_json(),
    ];
    let flag = prop_oneof![4 => any::<bool>().prop_map(Value::from), 1 => any_json()];
    (
        proptest::option::weighted(0.95, model),
        proptest::option::weighted(0.95, messages),
        proptest::option::weighted(0.5, max_tokens),
        proptest::option::weighted(0.5, flag),
        proptest::option::weighted(0.1, any_json()),
        proptest::option::weighted(0.1, any_json()),
    )
        .prop_map(|(model, messages, max_tokens, stream, tools, stream_options)| {
            let mut body = serde_json::Map::new();
            for (name, value) in [
                ("model", model),
                ("messages", messages),
                ("max_tokens", max_tokens),
                ("stream", stream),
                ("tools", tools),
                ("stream_options", stream_options),
            ] {
                if let Some(value) = value {
                    body.insert(name.into(), value);
                }
            }
            Value::Object(body)
        })
}

fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..512),
        1 => any_json().prop_map(|v| v.to_string().into_bytes()),
        4 => chat_like().prop_map(|v| v.to_string().into_bytes()),
    ]
}

/// Whatever a key without credits sends, the router answers 400, 404 or
/// 402 with an OpenAI-shaped error, in process, and never calls upstream.
#[test]
fn no_body_makes_the_router_panic_or_answer_5xx() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stack = runtime.block_on(Stack::start(API));
    proptest!(ProptestConfig::with_cases(128), |(body in any_body())| {
        let request = http::Request::post("/api/v1/chat/completions")
            .header("authorization", "Bearer sk-zero")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.clone())))
            .unwrap();
        let (status, bytes) = runtime.block_on(async {
            let response = stack.router.handle(request).await;
            let status = response.status();
            (status, response.into_body().collect().await.unwrap().to_bytes())
        });
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!(
            [StatusCode::BAD_REQUEST, StatusCode::NOT_FOUND, StatusCode::PAYMENT_REQUIRED].contains(&status),
            "{status} for {:?}: {text}", String::from_utf8_lossy(&body)
        );
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        prop_assert_eq!(json["error"]["code"].as_u64(), Some(u64::from(status.as_u16())), "{}", text);
        prop_assert!(json["error"]["type"].is_string(), "{}", text);
        prop_assert!(json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", text);
    });
    assert!(
        stack.journal("oai").is_empty() && stack.journal("ant").is_empty(),
        "no upstream attempt"
    );
}
