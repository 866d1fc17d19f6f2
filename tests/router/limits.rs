//! Per-key limits on loopback: request rate, concurrency per key and model,
//! the in-flight budget, and the `:free` model quotas (per minute, and per
//! calendar day across a warped midnight).

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::support::{LIMITS_MOCKS, LIMITS_ROUTES, Stack, assert_error_shape, picos_at, read_raw_stream};

/// A stack whose `[router]` table holds `router` (plain keys, then its own
/// sub-tables) and whose keys are `keys`.
async fn stack(router: &str, keys: &str) -> Stack {
    Stack::start(&format!(
        "{LIMITS_MOCKS}\n[router]\noperator-key = \"sk-admin\"\n{router}\n{LIMITS_ROUTES}\n{keys}"
    ))
    .await
}

fn body(model: &str, stream: bool, max_tokens: u32) -> Value {
    json!({"model": model, "stream": stream, "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "hello"}]})
}

fn header_u64(headers: &http::HeaderMap, name: &str) -> u64 {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no `{name}` header in {headers:?}"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("`{name}` is not an integer: {headers:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_rate_refuses_with_429_retry_after_and_rate_headers() {
    let stack = Arc::new(stack("", "[[router.keys]]\nkey = \"sk-rpm\"\ncredits = \"10\"\nrpm = 5\n[[router.keys]]\nkey = \"sk-other\"\ncredits = \"10\"\n").await);
    let mut within = JoinSet::new();
    for _ in 0..5 {
        let stack = Arc::clone(&stack);
        within.spawn(async move { stack.chat("sk-rpm", &body("openai/gpt-4o-mini", false, 8)).await });
    }
    let mut charged = 0;
    while let Some(answer) = within.join_next().await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "within the limit: {}", answer.text);
        charged += picos_at(&answer.text, &["usage", "cost"]);
    }
    let refused = stack.chat("sk-rpm", &body("openai/gpt-4o-mini", false, 8)).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{}", refused.text);
    let error = assert_error_shape(refused.status, &refused.json, &refused.text);
    assert_eq!(error["type"], "rate_limit_error");
    // 5 a minute: the next request fits 12 s after the first.
    let retry_after = header_u64(&refused.headers, "retry-after");
    assert!((1..=12).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(header_u64(&refused.headers, "x-ratelimit-limit"), 5);
    assert_eq!(header_u64(&refused.headers, "x-ratelimit-remaining"), 0);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let reset = header_u64(&refused.headers, "x-ratelimit-reset");
    assert!(
        reset > now_ms && reset <= now_ms + 13_000,
        "reset {reset} (Unix ms), now {now_ms}"
    );
    assert_eq!(
        stack.journal("oai").len(),
        5,
        "a refused request makes no upstream attempt"
    );
    let (_, spent, _) = stack.money("sk-rpm").await;
    assert_eq!(spent, charged, "a refused request is not charged");
    // The limit is the key's own.
    let other = stack.chat("sk-other", &body("openai/gpt-4o-mini", false, 8)).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_limited_per_key_and_model() {
    let stack = stack(
        "",
        "[[router.keys]]\nkey = \"sk-conc\"\ncredits = \"10\"\nconcurrency = 2\n[[router.keys]]\nkey = \"sk-other\"\ncredits = \"10\"\n",
    )
    .await;
    // Two slow streams (20 tokens, 20 ms apart) hold both slots.
    let first = stack.open("sk-conc", &body("openai/slow", true, 100), &[]).await;
    let second = stack.open("sk-conc", &body("openai/slow", true, 100), &[]).await;
    assert_eq!((first.status(), second.status()), (StatusCode::OK, StatusCode::OK));
    let refused = stack.chat("sk-conc", &body("openai/slow", false, 2)).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{}", refused.text);
    assert_error_shape(refused.status, &refused.json, &refused.text);
    assert!(header_u64(&refused.headers, "retry-after") >= 1);
    // Another model of the same key, and the same model for another key, are not blocked.
    let other_model = stack.chat("sk-conc", &body("openai/gpt-4o-mini", false, 2)).await;
    assert_eq!(other_model.status, StatusCode::OK, "{}", other_model.text);
    let other_key = stack.chat("sk-other", &body("openai/slow", false, 2)).await;
    assert_eq!(other_key.status, StatusCode::OK, "{}", other_key.text);
    // A finished stream frees its slot.
    let first = read_raw_stream(first).await;
    assert!(first.done, "{first:?}");
    let again = stack.chat("sk-conc", &body("openai/slow", false, 2)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert!(read_raw_stream(second).await.done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_budget_refuses_with_402_and_retry_after() {
    // A request with max_tokens 1000 may cost 1000 × 0.60 $/M = 0.0006 $ plus
    // its prompt: one fits the budget of 0.001 $, two do not.
    let stack = stack(
        "",
        "[[router.keys]]\nkey = \"sk-budget\"\ncredits = \"10\"\nin-flight-budget = \"0.001\"\n",
    )
    .await;
    let held = stack.open("sk-budget", &body("openai/slow", true, 1000), &[]).await;
    assert_eq!(held.status(), StatusCode::OK);
    let refused = stack.chat("sk-budget", &body("openai/gpt-4o-mini", false, 1000)).await;
    assert_eq!(refused.status, StatusCode::PAYMENT_REQUIRED, "{}", refused.text);
    let error = assert_error_shape(refused.status, &refused.json, &refused.text);
    assert_eq!(error["type"], "insufficient_quota");
    assert!(header_u64(&refused.headers, "retry-after") >= 1);
    // What still fits in the budget is served.
    let small = stack.chat("sk-budget", &body("openai/gpt-4o-mini", false, 10)).await;
    assert_eq!(small.status, StatusCode::OK, "{}", small.text);
    assert!(read_raw_stream(held).await.done);
    let after = stack.chat("sk-budget", &body("openai/gpt-4o-mini", false, 1000)).await;
    assert_eq!(after.status, StatusCode::OK, "once the stream is over: {}", after.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_models_allow_20_requests_a_minute() {
    let stack = stack(
        "",
        "[[router.keys]]\nkey = \"sk-free\"\ncredits = \"0\"\n[[router.keys]]\nkey = \"sk-free-2\"\ncredits = \"0\"\n",
    )
    .await;
    for i in 0..20 {
        let answer = stack.chat("sk-free", &body("meta/llama:free", false, 4)).await;
        assert_eq!(answer.status, StatusCode::OK, "request {i}: {}", answer.text);
        assert_eq!(picos_at(&answer.text, &["usage", "cost"]), 0);
    }
    let refused = stack.chat("sk-free", &body("meta/llama:free", false, 4)).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{}", refused.text);
    assert_error_shape(refused.status, &refused.json, &refused.text);
    // 20 a minute: one more fits 3 s after the first.
    let retry_after = header_u64(&refused.headers, "retry-after");
    assert!((1..=3).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(header_u64(&refused.headers, "x-ratelimit-limit"), 20);
    assert_eq!(stack.journal("oai").len(), 20);
    // The quota is the key's own.
    let other = stack.chat("sk-free-2", &body("meta/llama:free", false, 4)).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_free_daily_quota_renews_at_midnight_on_the_warped_clock() {
    // 10 calendar minutes before midnight at 600x: midnight comes 1 s after the start.
    let stack = stack(
        "clock = { start = \"2026-01-01T23:50:00Z\", speed = 600 }\n[router.free]\nper-minute = 1000\nper-day = 5\n",
        "[[router.keys]]\nkey = \"sk-free\"\ncredits = \"0\"\n",
    )
    .await;
    let midnight: jiff::Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
    for i in 0..5 {
        let answer = stack.chat("sk-free", &body("meta/llama:free", false, 4)).await;
        assert_eq!(answer.status, StatusCode::OK, "request {i}: {}", answer.text);
    }
    let refused = stack.chat("sk-free", &body("meta/llama:free", false, 4)).await;
    assert!(
        stack.router.clock().now() < midnight,
        "the quota was used up before midnight (is the machine slow?)"
    );
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{}", refused.text);
    assert_error_shape(refused.status, &refused.json, &refused.text);
    assert_eq!(header_u64(&refused.headers, "x-ratelimit-limit"), 5);
    assert_eq!(header_u64(&refused.headers, "x-ratelimit-remaining"), 0);
    // Less than 1 s of real time is left until midnight.
    assert!(
        (1..=2).contains(&header_u64(&refused.headers, "retry-after")),
        "{:?}",
        refused.headers
    );
    assert_eq!(stack.journal("oai").len(), 5);

    // Wait for the router's own clock to reach midnight.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while stack.router.clock().now() < midnight {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the warped clock never reached midnight"
        );
        tokio::time::sleep(stack.router.clock().real_until(midnight) + Duration::from_millis(2)).await;
    }
    for i in 0..5 {
        let answer = stack.chat("sk-free", &body("meta/llama:free", false, 4)).await;
        assert_eq!(answer.status, StatusCode::OK, "a new day, request {i}: {}", answer.text);
    }
    let refused = stack.chat("sk-free", &body("meta/llama:free", false, 4)).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the new day's quota is 5 too: {}",
        refused.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_bought_10_usd_gets_the_higher_daily_quota() {
    let stack = stack(
        "clock = { start = \"2026-01-01T12:00:00Z\" }\npurchase-min = \"0.01\"\n[router.free]\nper-minute = 1000\nper-day = 2\nper-day-after-purchase = 4\n",
        "[[router.keys]]\nkey = \"sk-rich\"\ncredits = \"10\"\n[[router.keys]]\nkey = \"sk-almost\"\ncredits = \"9.99\"\n",
    )
    .await;
    let served = |key: &'static str| {
        let stack = &stack;
        async move {
            let mut n = 0;
            loop {
                let answer = stack.chat(key, &body("meta/llama:free", false, 4)).await;
                match answer.status {
                    StatusCode::OK => n += 1,
                    StatusCode::TOO_MANY_REQUESTS => return (n, header_u64(&answer.headers, "x-ratelimit-limit")),
                    other => panic!("{other}: {}", answer.text),
                }
                assert!(n <= 10, "{key} was never refused");
            }
        }
    };
    assert_eq!(served("sk-rich").await, (4, 4));
    assert_eq!(served("sk-almost").await, (2, 2));
    // One more cent bought makes 10 USD: the rest of the higher quota opens up.
    let topped = stack
        .send(
            "POST",
            "/api/v1/admin/keys/sk-almost/credits",
            Some("sk-admin"),
            Some(&json!({"amount": "0.01"})),
            &[],
        )
        .await;
    assert_eq!(topped.status, StatusCode::OK, "{}", topped.text);
    assert_eq!(served("sk-almost").await, (2, 4));
}
