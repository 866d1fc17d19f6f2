//! The model lifecycle on the router's calendar clock: a deprecated model is
//! served by its replacement (at the replacement's price) during the grace
//! period, and answered 404 `model_deprecated` with no upstream attempt and
//! no charge once removed, including when the warped clock crosses the
//! removal date while the router runs.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};

use gauntlet::router::config::RawRouterFile;

use crate::support::{
    Answer, LIFECYCLE_MOCKS, LIFECYCLE_ROUTES, Price, Stack, assert_error_shape, picos_at, served_record,
};

const MINI: Price = Price {
    prompt: 150_000,
    completion: 600_000,
    cache_read: 75_000,
    cache_write: 150_000,
};
const LEGACY: Price = Price {
    prompt: 30_000_000,
    completion: 60_000_000,
    cache_read: 30_000_000,
    cache_write: 30_000_000,
};
const FUTURE: Price = Price {
    prompt: 10_000_000,
    completion: 20_000_000,
    cache_read: 10_000_000,
    cache_write: 10_000_000,
};

async fn stack(clock: &str) -> Stack {
    Stack::start(&format!(
        "{LIFECYCLE_MOCKS}\n[router]\nclock = {clock}\n{LIFECYCLE_ROUTES}"
    ))
    .await
}

fn body(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream,
        "messages": [{"role": "user", "content": "Which model are you, and who pays for you today?"}]})
}

async fn whole(stack: &Stack, model: &str, id: &str) -> Answer {
    stack
        .send(
            "POST",
            "/api/v1/chat/completions",
            Some("sk-a"),
            Some(&body(model, false)),
            &[("x-gauntlet-request-id", id)],
        )
        .await
}

/// Asserts the 404 of a removed model: `model_deprecated` naming the replacement.
fn assert_removed(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text);
    let error = assert_error_shape(answer.status, &answer.json, &answer.text);
    assert_eq!(error["availability"]["code"], "model_deprecated", "{}", answer.text);
    assert_eq!(
        error["availability"]["fallback_models"],
        json!(["openai/gpt-4o-mini"]),
        "{}",
        answer.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_serves_the_replacement_at_its_price() {
    let stack = stack("{ start = \"2026-01-20\" }").await;
    let answer = whole(&stack, "openai/gpt-4-legacy", "grace-1").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["model"], "openai/gpt-4o-mini", "the model that served");
    assert_eq!(answer.header("x-original-model"), Some("openai/gpt-4-legacy"));
    let record = served_record(stack.journal("oai"), "grace-1").await;
    assert_eq!(
        record.model.as_deref(),
        Some("gpt-4o-mini"),
        "the replacement's upstream model"
    );
    let usage = record.usage.unwrap();
    let cost = picos_at(&answer.text, &["usage", "cost"]);
    assert_eq!(cost, MINI.cost(&usage), "the replacement's price");
    assert_ne!(cost, LEGACY.cost(&usage));
    let generation = stack
        .generation("sk-a", answer.header("x-generation-id").unwrap())
        .await;
    assert_eq!(
        generation.json["data"]["model"], "openai/gpt-4o-mini",
        "{}",
        generation.text
    );
    assert_eq!(generation.json["data"]["requested_model"], "openai/gpt-4-legacy");
    assert_eq!(picos_at(&generation.text, &["data", "total_cost"]), cost);

    let streamed = stack
        .stream_raw(
            "sk-a",
            &body("openai/gpt-4-legacy", true),
            &[("x-gauntlet-request-id", "grace-2")],
        )
        .await;
    assert_eq!(streamed.status, StatusCode::OK);
    assert_eq!(streamed.header("x-original-model"), Some("openai/gpt-4-legacy"));
    for data in &streamed.data {
        let chunk: Value = serde_json::from_str(data).unwrap();
        assert_eq!(chunk["model"], "openai/gpt-4o-mini", "{data}");
    }
    let record = served_record(stack.journal("oai"), "grace-2").await;
    assert_eq!(record.model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(streamed.cost(), MINI.cost(&record.usage.unwrap()));

    // The replacement asked for by name names no original model.
    let direct = whole(&stack, "openai/gpt-4o-mini", "grace-3").await;
    assert_eq!(direct.status, StatusCode::OK);
    assert_eq!(direct.header("x-original-model"), None);
    // Before its announcement a model is served as itself, at its own price.
    let future = whole(&stack, "openai/gpt-4-future", "grace-4").await;
    assert_eq!(future.status, StatusCode::OK, "{}", future.text);
    assert_eq!(future.json["model"], "openai/gpt-4-future");
    assert_eq!(future.header("x-original-model"), None);
    let record = served_record(stack.journal("oai"), "grace-4").await;
    assert_eq!(record.model.as_deref(), Some("gpt-4-future"));
    assert_eq!(
        picos_at(&future.text, &["usage", "cost"]),
        FUTURE.cost(&record.usage.unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_model_is_404_without_upstream_attempt_or_charge() {
    let stack = stack("{ start = \"2026-01-20\" }").await;
    let before = stack.money("sk-a").await;
    assert_removed(&whole(&stack, "openai/gpt-3.5-old", "removed-1").await);
    assert_removed(&stack.chat("sk-a", &body("openai/gpt-3.5-old", true)).await);
    let v1 = stack
        .send(
            "POST",
            "/v1/chat/completions",
            Some("sk-a"),
            Some(&body("openai/gpt-3.5-old", false)),
            &[],
        )
        .await;
    assert_removed(&v1);
    assert!(
        stack.journal("oai").is_empty(),
        "no upstream attempt: {:?}",
        stack.journal("oai").snapshot()
    );
    assert_eq!(stack.money("sk-a").await, before, "nothing charged or held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_list_shows_deprecation_dates_and_omits_removed_models() {
    let stack = stack("{ start = \"2026-01-20\" }").await;
    for prefix in ["/api/v1", "/v1"] {
        let answer = stack.send("GET", &format!("{prefix}/models"), None, None, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let models = answer.json["data"].as_array().unwrap();
        let ids: Vec<&str> = models.iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(
            ids,
            ["openai/gpt-4o-mini", "openai/gpt-4-legacy", "openai/gpt-4-future"],
            "{}",
            answer.text
        );
        let legacy = &models[1]["deprecation"];
        assert!(
            legacy["announced"].as_str().unwrap().starts_with("2026-01-10"),
            "{legacy}"
        );
        assert!(
            legacy["removed"].as_str().unwrap().starts_with("2026-02-01"),
            "{legacy}"
        );
        assert_eq!(legacy["replacement"], "openai/gpt-4o-mini");
        assert!(
            models[2]["deprecation"]["removed"]
                .as_str()
                .unwrap()
                .starts_with("2026-04-01")
        );
        assert!(models[0]["deprecation"].is_null());
        // USD per token, exact: 30 $/M = 0.00003 $/token.
        assert_eq!(
            picos_at(&answer.text, &["data", "1", "pricing", "prompt"]),
            LEGACY.prompt
        );
        assert_eq!(
            picos_at(&answer.text, &["data", "0", "pricing", "input_cache_read"]),
            MINI.cache_read
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warped_clock_crossing_the_removal_date_turns_the_grace_period_into_404() {
    // Two calendar days a second: the legacy model's removal (2026-02-01) is
    // reached half a second after a start on 2026-01-31.
    let stack = stack("{ start = \"2026-01-31\", speed = 172800 }").await;
    let removed: jiff::Timestamp = "2026-02-01T00:00:00Z".parse().unwrap();
    let first = whole(&stack, "openai/gpt-4-legacy", "warp-0").await;
    assert!(
        stack.router.clock().now() < removed,
        "the first request came before the removal (is the machine slow?)"
    );
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.json["model"], "openai/gpt-4o-mini");
    let listed = stack.send("GET", "/api/v1/models", None, None, &[]).await;
    assert!(
        listed.text.contains("\"openai/gpt-4-legacy\""),
        "listed during the grace period"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut n = 0;
    let gone = loop {
        n += 1;
        let answer = whole(&stack, "openai/gpt-4-legacy", &format!("warp-{n}")).await;
        match answer.status {
            StatusCode::OK => assert_eq!(answer.json["model"], "openai/gpt-4o-mini"),
            StatusCode::NOT_FOUND => break answer,
            _ => panic!("only 200 or 404, never a 5xx: {}", answer.text),
        }
        assert!(tokio::time::Instant::now() < deadline, "the model was never removed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_removed(&gone);
    assert!(stack.router.clock().now() >= removed);

    let attempts = stack.journal("oai").len();
    let money = stack.money("sk-a").await;
    for stream in [false, true] {
        assert_removed(&stack.chat("sk-a", &body("openai/gpt-4-legacy", stream)).await);
    }
    assert_eq!(
        stack.journal("oai").len(),
        attempts,
        "no upstream attempt after removal"
    );
    assert_eq!(stack.money("sk-a").await, money, "no charge after removal");
    let listed = stack.send("GET", "/api/v1/models", None, None, &[]).await;
    assert!(
        !listed.text.contains("\"openai/gpt-4-legacy\""),
        "omitted once removed: {}",
        listed.text
    );
    // The replacement itself is still served.
    let replacement = whole(&stack, "openai/gpt-4o-mini", "warp-replacement").await;
    assert_eq!(replacement.status, StatusCode::OK);
}

#[test]
fn validation_refuses_a_grace_period_under_14_days() {
    let config = |removed: &str| {
        let text = format!(
            r#"
[router]
[[router.providers]]
name = "oai"
dialect = "openai"
base-url = "http://127.0.0.1:1"
api-key = "k"
[[router.models]]
id = "new"
providers = ["oai"]
prompt = "1"
completion = "1"
[[router.models]]
id = "old"
providers = ["oai"]
prompt = "1"
completion = "1"
deprecation = {{ announced = "2026-01-01", removed = "{removed}", replacement = "new" }}
"#
        );
        let file: RawRouterFile = toml::from_str(&text).unwrap();
        file.router.unwrap().validate("router")
    };
    let error = config("2026-01-14T23:59:59Z").unwrap_err();
    assert_eq!(error.path, "router.models[1].deprecation.removed");
    assert!(error.message.contains("14 days"), "{error}");
    assert!(config("2026-01-15").is_ok(), "exactly 14 days is enough");
}
