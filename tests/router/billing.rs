//! Billing: every charge is the serving model's price times the usage the
//! mock journal says it reported, to the picodollar, in both dialects,
//! streamed or not; BYOK fees; nothing charged for failures; 402 before any
//! upstream attempt; no overdraft under concurrency.
//!
//! Expected amounts are computed here from the journal and the prices below
//! (USD per million × 10^6 = picodollars per token), and the router's USD
//! numbers are read from the raw JSON text, never through `f64`.

use std::sync::Arc;

use http::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::support::{BILLING, Price, Stack, assert_error_shape, picos_at, records_for, served_record};

/// `openai/gpt-4o-mini`: 0.15 / 0.60, cache reads 0.075 (writes default to the prompt price).
const MINI: Price = Price {
    prompt: 150_000,
    completion: 600_000,
    cache_read: 75_000,
    cache_write: 150_000,
};
/// `openai/o3-mini`: 1.1 / 4.4.
const O3: Price = Price {
    prompt: 1_100_000,
    completion: 4_400_000,
    cache_read: 1_100_000,
    cache_write: 1_100_000,
};
/// `anthropic/claude-sonnet-4`: 3 / 15, cache reads 0.30, cache writes 3.75.
const SONNET: Price = Price {
    prompt: 3_000_000,
    completion: 15_000_000,
    cache_read: 300_000,
    cache_write: 3_750_000,
};

/// A prompt long enough that a share of it is reported as cached.
const PROMPT: &str =
    "Tell me, in a few words, why integer picodollars are a better unit for money than floating point dollars are.";

fn body(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": PROMPT}]})
}

/// One whole request sent with `x-gauntlet-request-id: id`: its exact cost and the answer.
async fn whole(stack: &Stack, key: &str, model: &str, id: &str) -> (i64, crate::support::Answer) {
    let answer = stack
        .send(
            "POST",
            "/api/v1/chat/completions",
            Some(key),
            Some(&body(model, false)),
            &[("x-gauntlet-request-id", id)],
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    (picos_at(&answer.text, &["usage", "cost"]), answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_charge_is_the_price_of_the_reported_usage_with_cached_tokens() {
    let stack = Stack::start(BILLING).await;
    let (_, spent_before, _) = stack.money("sk-a").await;
    let (cost, answer) = whole(&stack, "sk-a", "openai/gpt-4o-mini", "oai-cached").await;
    let record = served_record(stack.journal("oai"), "oai-cached").await;
    let usage = record.usage.expect("the mock reported usage");
    assert!(usage.cache_read_tokens > 0 && usage.completion_tokens > 0, "{usage:?}");
    assert_eq!(cost, MINI.cost(&usage), "{}", answer.text);
    // OpenAI's prompt_tokens already includes the cached tokens: reported as is.
    assert_eq!(answer.json["usage"]["prompt_tokens"], usage.prompt_tokens);
    assert_eq!(
        answer.json["usage"]["prompt_tokens_details"]["cached_tokens"],
        usage.cache_read_tokens
    );
    assert_eq!(answer.json["usage"]["completion_tokens"], usage.completion_tokens);
    assert_eq!(answer.json["model"], "openai/gpt-4o-mini");
    let (_, spent_after, _) = stack.money("sk-a").await;
    assert_eq!(spent_after - spent_before, cost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_cache_reads_and_writes_are_not_billed_twice() {
    let stack = Stack::start(BILLING).await;
    let (cost, answer) = whole(&stack, "sk-a", "anthropic/claude-sonnet-4", "ant-cached").await;
    let record = served_record(stack.journal("ant"), "ant-cached").await;
    let usage = record.usage.expect("the mock reported usage");
    assert!(usage.cache_read_tokens > 0 && usage.cache_write_tokens > 0, "{usage:?}");
    assert_eq!(cost, SONNET.cost(&usage), "{}", answer.text);
    // Billing input_tokens and the cache counts as prompt again is the 11x overcharge.
    let double_counted =
        SONNET.cost(&usage) + i64::from(usage.cache_read_tokens + usage.cache_write_tokens) * SONNET.prompt;
    assert_ne!(cost, double_counted);
    assert_eq!(
        answer.json["usage"]["prompt_tokens"], usage.prompt_tokens,
        "all prompt tokens, counted once"
    );
    assert_eq!(
        answer.json["usage"]["prompt_tokens_details"]["cached_tokens"],
        usage.cache_read_tokens
    );
    assert_eq!(answer.json["usage"]["completion_tokens"], usage.completion_tokens);
    let (_, spent, _) = stack.money("sk-a").await;
    assert_eq!(spent, cost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reasoning_tokens_bill_as_completion() {
    let stack = Stack::start(BILLING).await;
    let (cost, answer) = whole(&stack, "sk-a", "openai/o3-mini", "reasoning").await;
    let usage = served_record(stack.journal("oai"), "reasoning").await.usage.unwrap();
    assert_eq!(usage.reasoning_tokens, 32, "{usage:?}");
    assert!(usage.completion_tokens > 32, "completion includes reasoning: {usage:?}");
    assert_eq!(cost, O3.cost(&usage), "{}", answer.text);
    assert_eq!(answer.json["usage"]["completion_tokens"], usage.completion_tokens);
    assert_eq!(
        answer.json["usage"]["completion_tokens_details"]["reasoning_tokens"],
        32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_completion_tokens_are_not_charged() {
    let stack = Stack::start(BILLING).await;
    let before = stack.money("sk-a").await;
    let (cost, answer) = whole(&stack, "sk-a", "openai/silent", "silent-whole").await;
    let usage = served_record(stack.journal("oai"), "silent-whole").await.usage.unwrap();
    assert_eq!(usage.completion_tokens, 0, "{usage:?}");
    assert!(usage.prompt_tokens > 0);
    assert_eq!(cost, 0, "{}", answer.text);
    let streamed = stack.stream_raw("sk-a", &body("openai/silent", true), &[]).await;
    assert_eq!(streamed.status, StatusCode::OK);
    assert!(streamed.done, "{streamed:?}");
    assert_eq!(streamed.cost(), 0);
    assert_eq!(stack.money("sk-a").await, before, "the balance is unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_and_whole_answers_with_the_same_usage_cost_the_same() {
    let stack = Stack::start(BILLING).await;
    for (model, provider, price) in [
        ("openai/gpt-4o-mini", "oai", MINI),
        ("anthropic/claude-sonnet-4", "ant", SONNET),
    ] {
        let id = format!("same-{provider}");
        let (whole_cost, answer) = whole(&stack, "sk-a", model, &id).await;
        let whole_usage = served_record(stack.journal(provider), &id).await.usage.unwrap();
        let streamed = stack
            .stream_raw("sk-a", &body(model, true), &[("x-gauntlet-request-id", &id)])
            .await;
        assert_eq!(streamed.status, StatusCode::OK);
        assert!(streamed.done && !streamed.broken, "{streamed:?}");
        let records = records_for(stack.journal(provider), &id, 2).await;
        let stream_record = records.iter().find(|r| r.stream).expect("the streamed attempt");
        assert!(stream_record.stream);
        assert_eq!(
            stream_record.usage,
            Some(whole_usage),
            "the same id gets the same answer"
        );
        assert_eq!(streamed.cost(), whole_cost, "{model}");
        assert_eq!(whole_cost, price.cost(&whole_usage), "{model}");
        let chunk = streamed.usage_chunk();
        for field in ["prompt_tokens", "completion_tokens"] {
            assert_eq!(chunk["usage"][field], answer.json["usage"][field], "{model} {field}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generation_route_agrees_with_the_answer_and_hides_other_keys_generations() {
    let stack = Stack::start(BILLING).await;
    let (cost, answer) = whole(&stack, "sk-a", "anthropic/claude-sonnet-4", "gen-whole").await;
    let streamed = stack.stream_raw("sk-a", &body("openai/gpt-4o-mini", true), &[]).await;
    let told = [
        (
            answer.header("x-generation-id").unwrap().to_string(),
            cost,
            answer.json["usage"].clone(),
            "anthropic/claude-sonnet-4",
        ),
        (
            streamed.header("x-generation-id").unwrap().to_string(),
            streamed.cost(),
            streamed.usage_chunk()["usage"].clone(),
            "openai/gpt-4o-mini",
        ),
    ];
    for (id, cost, usage, model) in told {
        let generation = stack.generation("sk-a", &id).await;
        assert_eq!(generation.status, StatusCode::OK, "{}", generation.text);
        let data = &generation.json["data"];
        assert_eq!(data["id"], id.as_str());
        assert_eq!(data["model"], model);
        assert_eq!(
            picos_at(&generation.text, &["data", "total_cost"]),
            cost,
            "{}",
            generation.text
        );
        assert_eq!(data["tokens_prompt"], usage["prompt_tokens"]);
        assert_eq!(data["tokens_completion"], usage["completion_tokens"]);
        assert_eq!(data["is_byok"], false);
        let other = stack.generation("sk-b", &id).await;
        assert_eq!(
            other.status,
            StatusCode::NOT_FOUND,
            "another key's generation: {}",
            other.text
        );
        assert_error_shape(other.status, &other.json, &other.text);
    }
    let unknown = stack.generation("sk-a", "gen-does-not-exist").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_usage_is_the_sum_of_the_charges() {
    let stack = Stack::start(BILLING).await;
    let mut charged = 0;
    for (i, model) in ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4", "openai/o3-mini"]
        .into_iter()
        .enumerate()
    {
        let (cost, _) = whole(&stack, "sk-b", model, &format!("sum-{i}")).await;
        let streamed = stack.stream_raw("sk-b", &body(model, true), &[]).await;
        assert_eq!(streamed.status, StatusCode::OK);
        assert!(cost > 0);
        charged += cost + streamed.cost();
    }
    let (credits, spent, available) = stack.money("sk-b").await;
    assert_eq!(credits, 10_000_000_000_000);
    assert_eq!(spent, charged);
    assert_eq!(available, credits - spent);
    let (_, untouched, _) = stack.money("sk-a").await;
    assert_eq!(untouched, 0, "another key is not charged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byok_calls_the_upstream_with_the_users_key_and_charges_the_fee() {
    let stack = Stack::start(BILLING).await;
    let (charge, answer) = whole(&stack, "sk-byok", "openai/gpt-4o-mini", "byok-1").await;
    let record = served_record(stack.journal("oai"), "byok-1").await;
    assert_eq!(
        record.upstream_key.as_deref(),
        Some("sk-byok"),
        "the user's own provider key"
    );
    let cost = MINI.cost(&record.usage.unwrap());
    assert!(cost > 0);
    assert_eq!(charge, cost * 500 / 10_000, "5 % of {cost}: {}", answer.text);
    assert_eq!(answer.json["usage"]["is_byok"], true);
    assert_eq!(
        picos_at(&answer.text, &["usage", "cost_details", "upstream_inference_cost"]),
        cost
    );
    assert_eq!(stack.money("sk-byok").await.1, charge);
    let info = stack.key_info("sk-byok").await;
    assert_eq!(info["is_byok"], true);
    let generation = stack
        .generation("sk-byok", answer.header("x-generation-id").unwrap())
        .await;
    assert_eq!(
        picos_at(&generation.text, &["data", "total_cost"]),
        charge,
        "{}",
        generation.text
    );
    assert_eq!(picos_at(&generation.text, &["data", "upstream_inference_cost"]), cost);
    assert_eq!(generation.json["data"]["is_byok"], true);

    // Streamed: the same fee, on the same usage.
    let streamed = stack
        .stream_raw(
            "sk-byok",
            &body("openai/gpt-4o-mini", true),
            &[("x-gauntlet-request-id", "byok-s")],
        )
        .await;
    let record = served_record(stack.journal("oai"), "byok-s").await;
    assert_eq!(record.upstream_key.as_deref(), Some("sk-byok"));
    let stream_cost = MINI.cost(&record.usage.unwrap());
    assert_eq!(streamed.cost(), stream_cost * 500 / 10_000);
    assert_eq!(streamed.usage_chunk()["usage"]["is_byok"], true);
    let (_, spent, _) = stack.money("sk-byok").await;
    assert_eq!(spent, charge + streamed.cost());
    let spent_by_byok = spent;

    // The same key on a provider it brought no key for pays the normal price.
    let (normal, answer) = whole(&stack, "sk-byok", "anthropic/claude-sonnet-4", "byok-2").await;
    let record = served_record(stack.journal("ant"), "byok-2").await;
    assert_eq!(record.upstream_key.as_deref(), Some("sk-up-ant"));
    assert_eq!(normal, SONNET.cost(&record.usage.unwrap()));
    assert_eq!(answer.json["usage"]["is_byok"], false);
    assert_eq!(stack.money("sk-byok").await.1, spent_by_byok + normal);

    // Another key on the same provider uses the router's key.
    let (full, answer) = whole(&stack, "sk-a", "openai/gpt-4o-mini", "byok-3").await;
    let record = served_record(stack.journal("oai"), "byok-3").await;
    assert_eq!(record.upstream_key.as_deref(), Some("sk-up-oai"));
    assert_eq!(full, MINI.cost(&record.usage.unwrap()));
    assert_eq!(answer.json["usage"]["is_byok"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_fails_upstream_is_not_charged() {
    let stack = Stack::start(BILLING).await;
    let before = stack.money("sk-a").await;
    let answer = stack
        .send(
            "POST",
            "/api/v1/chat/completions",
            Some("sk-a"),
            Some(&body("openai/broken", false)),
            &[("x-gauntlet-request-id", "broken-whole")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.text);
    assert_error_shape(answer.status, &answer.json, &answer.text);
    let streamed = stack
        .stream_raw(
            "sk-a",
            &body("openai/broken", true),
            &[("x-gauntlet-request-id", "broken-stream")],
        )
        .await;
    assert_eq!(streamed.status, StatusCode::BAD_GATEWAY, "{streamed:?}");
    for id in ["broken-whole", "broken-stream"] {
        let statuses: Vec<u16> = records_for(stack.journal("oai"), id, 2)
            .await
            .iter()
            .map(|r| r.status)
            .collect();
        assert_eq!(statuses, [500, 500], "two attempts per provider for {id}");
    }
    assert_eq!(
        stack.money("sk-a").await,
        before,
        "nothing charged, nothing left reserved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_fails_midway_is_not_charged() {
    let stack = Stack::start(BILLING).await;
    let before = stack.money("sk-a").await;
    let streamed = stack
        .stream_raw(
            "sk-a",
            &body("openai/midfail", true),
            &[("x-gauntlet-request-id", "midfail")],
        )
        .await;
    assert_eq!(streamed.status, StatusCode::OK);
    let record = served_record(stack.journal("oai"), "midfail").await;
    assert_eq!(record.tokens_sent, 3, "{record:?}");
    let ending: Vec<Value> = streamed.data.iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert!(
        ending
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "error" && c["error"].is_object()),
        "{streamed:?}"
    );
    assert_eq!(streamed.cost(), 0, "a finish_reason: error is not charged");
    assert_eq!(stack.money("sk-a").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_that_cannot_cover_the_worst_case_get_402_before_any_upstream_attempt() {
    let stack = Stack::start(BILLING).await;
    let before = stack.money("sk-poor").await;
    for stream in [false, true] {
        let answer = stack.chat("sk-poor", &body("openai/gpt-4o-mini", stream)).await;
        assert_eq!(answer.status, StatusCode::PAYMENT_REQUIRED, "{}", answer.text);
        let error = assert_error_shape(answer.status, &answer.json, &answer.text);
        assert_eq!(error["type"], "insufficient_quota");
    }
    assert!(stack.journal("oai").is_empty(), "no upstream attempt");
    assert_eq!(stack.money("sk-poor").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_never_overdraw_a_small_balance() {
    let stack = Arc::new(Stack::start(BILLING).await);
    let (credits, _, _) = stack.money("sk-small").await;
    let mut requests = JoinSet::new();
    for i in 0..50 {
        let stack = Arc::clone(&stack);
        requests.spawn(async move {
            let body = json!({"model": "openai/gpt-4o-mini", "max_tokens": 20, "stream": i % 2 == 1,
                "messages": [{"role": "user", "content": "hi"}]});
            if i % 2 == 1 {
                let streamed = stack.stream_raw("sk-small", &body, &[]).await;
                (
                    streamed.status,
                    (streamed.status == StatusCode::OK).then(|| streamed.cost()),
                )
            } else {
                let answer = stack.chat("sk-small", &body).await;
                let cost = (answer.status == StatusCode::OK).then(|| picos_at(&answer.text, &["usage", "cost"]));
                (answer.status, cost)
            }
        });
    }
    // Watch the balance while the requests run.
    let watcher = {
        let stack = Arc::clone(&stack);
        tokio::spawn(async move {
            let mut looks = 0;
            loop {
                let (credits, spent, available) = stack.money("sk-small").await;
                assert!(
                    available >= 0 && spent <= credits && spent + available <= credits,
                    "{spent} {available}"
                );
                looks += 1;
                if looks >= 20 {
                    return looks;
                }
            }
        })
    };
    let (mut served, mut refused, mut charged) = (0, 0, 0);
    while let Some(result) = requests.join_next().await {
        match result.unwrap() {
            (StatusCode::OK, Some(cost)) => {
                served += 1;
                charged += cost;
            }
            (StatusCode::PAYMENT_REQUIRED, _) => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    watcher.await.unwrap();
    assert!(served > 0 && refused > 0, "served {served}, refused {refused}");
    assert!(charged <= credits, "charged {charged} of {credits}");
    let (_, spent, available) = stack.money("sk-small").await;
    assert_eq!(spent, charged, "the balance moved by exactly the charges told");
    assert_eq!(available, credits - spent, "nothing left reserved");
    assert!(available >= 0);
}

/// A model whose `system-prefix` (added by the router) is long: about 1,000
/// prompt tokens that the client's own body does not show.
fn prefixed_toml() -> String {
    format!(
        r#"
[[providers]]
name = "ant"
dialect = "anthropic"
[providers.defaults]
ttft-ms = 2
itl-ms = 1
output-tokens = 10

[router]
[[router.providers]]
name = "ant"
dialect = "anthropic"
base-url = "mock:ant"
api-key = "sk-up-ant"

[[router.models]]
id = "anthropic/claude-sonnet-4"
providers = ["ant"]
prompt = "3"
completion = "15"
system-prefix = "{}"

[[router.keys]]
key = "sk-a"
credits = "0.0003"
"#,
        "x".repeat(4000)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worst_case_covers_the_system_prefix_the_router_adds() {
    // The client's body alone may cost up to about 0.00023 $ (26 prompt tokens
    // at 3 $/M and 10 completion tokens at 15 $/M), which 0.0003 $ covers; the
    // router's ~1,000-token prefix makes it cost about 0.0032 $, which it does not.
    let stack = Stack::start(&prefixed_toml()).await;
    let answer = stack
        .send(
            "POST",
            "/api/v1/chat/completions",
            Some("sk-a"),
            Some(&json!({"model": "anthropic/claude-sonnet-4", "max_tokens": 10,
                "messages": [{"role": "user", "content": "hi"}]})),
            &[("x-gauntlet-request-id", "prefixed")],
        )
        .await;
    if answer.status == StatusCode::OK {
        let usage = served_record(stack.journal("ant"), "prefixed").await.usage.unwrap();
        let price = Price {
            prompt: 3_000_000,
            completion: 15_000_000,
            cache_read: 3_000_000,
            cache_write: 3_000_000,
        };
        let told = picos_at(&answer.text, &["usage", "cost"]);
        let generation = stack
            .generation("sk-a", answer.header("x-generation-id").unwrap())
            .await;
        panic!(
            "served although the credits cannot cover it: the usage costs {} p$, the client was told {told} p$, \
             /generation says {} p$, the key has {:?} (credits, spent, available)",
            price.cost(&usage),
            picos_at(&generation.text, &["data", "total_cost"]),
            stack.money("sk-a").await
        );
    }
    assert_eq!(answer.status, StatusCode::PAYMENT_REQUIRED, "{}", answer.text);
    assert!(stack.journal("ant").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byok_key_is_held_only_what_it_can_be_charged() {
    // max_tokens 1000 at 0.60 $/M: about 0.0006 $ at the full price, 0.00003 $
    // as the BYOK fee; the key has 0.0001 $.
    let toml = BILLING.replace(
        "key = \"sk-byok\"\ncredits = \"1\"",
        "key = \"sk-byok\"\ncredits = \"0.0001\"",
    );
    let stack = Stack::start(&toml).await;
    let request =
        json!({"model": "openai/gpt-4o-mini", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]});
    let answer = stack.chat("sk-byok", &request).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "the fee fits the credits: {}",
        answer.text
    );
    assert_eq!(answer.json["usage"]["is_byok"], true);
}
