//! The terms' billing rules: purchases between a minimum and a maximum,
//! credits that expire a while after they were bought (oldest spent first),
//! and prices that change on a schedule announced ahead.

use std::time::Duration;

use http::StatusCode;
use serde_json::json;

use crate::support::{API, RouterProcess, Stack, TempDir, assert_error_shape, picos, picos_at};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchases_outside_the_bounds_are_refused_with_the_bounds_and_the_amount() {
    let stack = Stack::start(API).await;
    let admin =
        async |path: &str, body: serde_json::Value| stack.send("POST", path, Some("sk-admin"), Some(&body), &[]).await;
    // OpenRouter's terms by default: $5 minimum, $25,000 maximum per transaction.
    for (amount, shown) in [("4.99", "$4.99"), ("25000.01", "$25000.01"), ("0.000001", "$0.000001")] {
        let answer = admin("/api/v1/admin/keys/sk-a/credits", json!({"amount": amount})).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{amount}: {}", answer.text);
        assert_error_shape(answer.status, &answer.json, &answer.text);
        let message = answer.json["error"]["message"].as_str().unwrap();
        assert_eq!(
            message,
            format!("`amount`: a purchase of {shown} is outside the bounds: it must be from $5 to $25000"),
        );
        let answer = admin("/api/v1/admin/keys", json!({"key": "sk-out", "credits": amount})).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{amount}: {}", answer.text);
        let message = answer.json["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("`credits`: a purchase of"), "{message}");
        assert!(
            message.contains(shown) && message.contains("$5") && message.contains("$25000"),
            "{message}"
        );
    }
    assert_eq!(stack.money("sk-a").await.0, picos("10"), "nothing was added");
    let unknown = stack.send("GET", "/api/v1/key", Some("sk-out"), None, &[]).await;
    assert_eq!(
        unknown.status,
        StatusCode::UNAUTHORIZED,
        "no key was created: {}",
        unknown.text
    );

    // The bounds themselves are purchases; a key created without credits buys later.
    for amount in ["5", "25000"] {
        let answer = admin("/api/v1/admin/keys/sk-a/credits", json!({"amount": amount})).await;
        assert_eq!(answer.status, StatusCode::OK, "{amount}: {}", answer.text);
    }
    assert_eq!(stack.money("sk-a").await.0, picos("25015"));
    for (key, credits) in [
        ("sk-new-none", json!(null)),
        ("sk-new-zero", json!("0")),
        ("sk-five", json!("5")),
    ] {
        let answer = admin("/api/v1/admin/keys", json!({"key": key, "credits": credits})).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{key}: {}", answer.text);
    }
    assert_eq!(stack.money("sk-five").await.0, picos("5"));
}

/// The API router with `fields` in its `[router]` table.
fn api_with(fields: &str) -> String {
    API.replacen("[router]\n", &format!("[router]\n{fields}\n"), 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_purchase_takes_its_unspent_rest_and_charges_draw_from_the_oldest() {
    // A day a purchase lasts, and half a day a real second.
    let stack = Stack::start(&api_with(
        "credit-expiry-days = 1\nclock = { start = \"2026-03-01T00:00:00Z\", speed = 43200 }",
    ))
    .await;
    let clock = *stack.router.clock();
    let started: jiff::Timestamp = "2026-03-01T00:00:00Z".parse().unwrap();
    // sk-a's 10 USD of the config file were bought at the start; 5 more half a day later.
    tokio::time::sleep(clock.real_until(started + jiff::SignedDuration::from_hours(12))).await;
    let topped = stack
        .send(
            "POST",
            "/api/v1/admin/keys/sk-a/credits",
            Some("sk-admin"),
            Some(&json!({"amount": "5"})),
            &[],
        )
        .await;
    assert_eq!(topped.status, StatusCode::OK, "{}", topped.text);
    let chat = json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]});
    let answer = stack.chat("sk-a", &chat).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let cost = picos_at(&answer.text, &["usage", "cost"]);
    assert!(cost > 0);

    let info = stack.send("GET", "/api/v1/key", Some("sk-a"), None, &[]).await;
    let text = &info.text;
    // Oldest first: the charge came out of the first purchase.
    assert_eq!(
        picos_at(text, &["data", "purchases", "0", "amount"]),
        picos("10"),
        "{text}"
    );
    assert_eq!(
        picos_at(text, &["data", "purchases", "0", "remaining"]),
        picos("10") - cost,
        "{text}"
    );
    assert_eq!(
        picos_at(text, &["data", "purchases", "1", "remaining"]),
        picos("5"),
        "{text}"
    );
    let at = |field: &str| -> jiff::Timestamp {
        info.json["data"]["purchases"][0][field]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    // Bought as the router started (its clock runs fast: within a minute of its start).
    let first_bought = at("purchased_at");
    assert!(first_bought - started < jiff::SignedDuration::from_mins(1), "{text}");
    let first_expires = at("expires_at");
    assert_eq!(
        first_expires,
        first_bought + jiff::SignedDuration::from_hours(24),
        "{text}"
    );
    assert_eq!(info.json["data"]["purchases"][0]["expired"], false, "{text}");
    let before = picos_at(text, &["data", "limit_remaining"]);
    assert_eq!(before, picos("15") - cost);

    // Past the first purchase's expiry (the second lasts half a day more).
    tokio::time::sleep(clock.real_until(first_expires) + Duration::from_millis(50)).await;
    let info = stack.send("GET", "/api/v1/key", Some("sk-a"), None, &[]).await;
    let text = &info.text;
    assert_eq!(info.json["data"]["purchases"][0]["expired"], true, "{text}");
    assert_eq!(info.json["data"]["purchases"][1]["expired"], false, "{text}");
    let after = picos_at(text, &["data", "limit_remaining"]);
    assert_eq!(
        before - after,
        picos("10") - cost,
        "the drop is the first purchase's unspent rest"
    );
    assert_eq!(picos_at(text, &["data", "expired"]), picos("10") - cost, "{text}");
    assert_eq!(
        picos_at(text, &["data", "limit"]),
        picos("15"),
        "credits bought are still shown"
    );
    // The next charge draws from the second purchase, and the admin route agrees.
    let answer = stack.chat("sk-a", &chat).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let second = picos_at(&answer.text, &["usage", "cost"]);
    let admin = stack
        .send("GET", "/api/v1/admin/keys/sk-a", Some("sk-admin"), None, &[])
        .await;
    let text = &admin.text;
    assert_eq!(
        picos_at(text, &["data", "purchases", "0", "remaining"]),
        picos("10") - cost,
        "{text}"
    );
    assert_eq!(
        picos_at(text, &["data", "purchases", "1", "remaining"]),
        picos("5") - second,
        "{text}"
    );
    assert_eq!(
        picos_at(text, &["data", "limit_remaining"]),
        picos("5") - second,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_expiry_purchases_never_expire() {
    let stack = Stack::start(&api_with(
        "clock = { start = \"2026-03-01T00:00:00Z\", speed = 10000000 }",
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A million seconds of calendar a real second: years have passed.
    assert!(stack.router.clock().now() > "2026-03-10T00:00:00Z".parse().unwrap());
    let info = stack.send("GET", "/api/v1/key", Some("sk-a"), None, &[]).await;
    assert_eq!(
        info.json["data"]["purchases"][0]["expires_at"],
        json!(null),
        "{}",
        info.text
    );
    assert_eq!(
        picos_at(&info.text, &["data", "limit_remaining"]),
        picos("10"),
        "{}",
        info.text
    );
}

/// Two mocks, one fast and one streaming slowly (40 tokens 100 ms apart),
/// and a router whose clock runs an hour a real second, with a model on
/// each whose price changes at +2h (announced 8 days before, 7 required).
const SCHEDULE: &str = r#"
[[providers]]
name = "fast"
dialect = "openai"
[providers.defaults]
ttft-ms = 2
itl-ms = 1
output-tokens = 6
[[providers.models]]
id = "fast"

[[providers]]
name = "slow"
dialect = "openai"
[providers.defaults]
ttft-ms = 2
itl-ms = 100
output-tokens = 40
[[providers.models]]
id = "slow"

[router]
price-notice-days = 7
clock = { start = "2027-01-01T00:00:00Z", speed = 3600 }

[[router.providers]]
name = "fast"
dialect = "openai"
base-url = "mock:fast"
api-key = "sk-up"

[[router.providers]]
name = "slow"
dialect = "openai"
base-url = "mock:slow"
api-key = "sk-up"

[[router.models]]
id = "openai/fast"
providers = ["fast"]
prompt = "1"
completion = "2"
[[router.models.price-changes]]
at = "+2h"
announced = "-8d"
prompt = "10"
completion = "20"

[[router.models]]
id = "openai/slow"
providers = ["slow"]
prompt = "1"
completion = "2"
[[router.models.price-changes]]
at = "+2h"
announced = "-8d"
prompt = "10"
completion = "20"

[[router.keys]]
key = "sk-a"
credits = "10"
"#;

/// What the generation of `id` cost, and its (prompt, completion) tokens.
async fn billed(stack: &Stack, id: &str) -> (i64, i64, i64) {
    let answer = stack
        .send("GET", &format!("/api/v1/generation?id={id}"), Some("sk-a"), None, &[])
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let data = &answer.json["data"];
    (
        picos_at(&answer.text, &["data", "total_cost"]),
        data["tokens_prompt"].as_i64().unwrap(),
        data["tokens_completion"].as_i64().unwrap(),
    )
}

fn generation_id(headers: &http::HeaderMap) -> String {
    headers["x-generation-id"].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_billed_at_the_price_in_force_when_it_started() {
    let stack = Stack::start(SCHEDULE).await;
    let clock = *stack.router.clock();
    let change: jiff::Timestamp = "2027-01-01T02:00:00Z".parse().unwrap();
    // Per token: 1 and 2 USD per million before, 10 and 20 after.
    let old = |prompt: i64, completion: i64| prompt * 1_000_000 + completion * 2_000_000;
    let new = |prompt: i64, completion: i64| prompt * 10_000_000 + completion * 20_000_000;
    let chat = |model: &str, stream: bool| json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello"}]});

    // Before the change, /models lists it as coming, at the old price now.
    let models = stack.send("GET", "/api/v1/models", None, None, &[]).await;
    let fast = &models.json["data"][0];
    assert_eq!(fast["id"], "openai/fast");
    assert_eq!(fast["price_changes"][0]["at"], "2027-01-01T02:00:00Z", "{fast}");
    assert_eq!(fast["price_changes"][0]["announced"], "2026-12-24T00:00:00Z", "{fast}");
    let usd_at = |path: &[&str]| picos_at(&models.text, path);
    assert_eq!(usd_at(&["data", "0", "pricing", "prompt"]), 1_000_000, "{fast}");
    assert_eq!(
        usd_at(&["data", "0", "price_changes", "0", "pricing", "prompt"]),
        10_000_000,
        "{fast}"
    );
    assert_eq!(
        usd_at(&["data", "0", "price_changes", "0", "pricing", "completion"]),
        20_000_000,
        "{fast}"
    );

    // A stream that starts now (40 tokens, 4 real seconds) ends after the change.
    let streamed = {
        let stack = &stack;
        async move { stack.stream("sk-a", &chat("openai/slow", true)).await }
    };
    let whole_before = async {
        let answer = stack.chat("sk-a", &chat("openai/fast", false)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        answer
    };
    let (streamed, before) = tokio::join!(streamed, whole_before);
    assert!(streamed.done, "{streamed:?}");
    assert!(clock.now() > change, "the stream ended after the change");
    let (cost, prompt, completion) = billed(&stack, &generation_id(&before.headers)).await;
    assert_eq!(cost, old(prompt, completion), "before the change: the old price");
    let (cost, prompt, completion) = billed(&stack, &generation_id(&streamed.headers)).await;
    assert_eq!(completion, 40);
    assert_eq!(
        cost,
        old(prompt, completion),
        "started before the change: the old price"
    );

    // After it, the new price, and /models lists it as the price.
    tokio::time::sleep(clock.real_until(change)).await;
    let after = stack.chat("sk-a", &chat("openai/fast", false)).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.text);
    let (cost, prompt, completion) = billed(&stack, &generation_id(&after.headers)).await;
    assert_eq!(cost, new(prompt, completion), "after the change: the new price");
    let models = stack.send("GET", "/api/v1/models", None, None, &[]).await;
    let fast = &models.json["data"][0];
    assert_eq!(
        picos_at(&models.text, &["data", "0", "pricing", "prompt"]),
        10_000_000,
        "{fast}"
    );
    assert_eq!(fast["price_changes"], json!([]), "{fast}");
}

#[test]
fn the_example_routers_start() {
    for name in ["openrouter", "derouter"] {
        let dir = TempDir::new(&format!("example-{name}"));
        let text = std::fs::read_to_string(format!("{}/examples/{name}.toml", env!("CARGO_MANIFEST_DIR"))).unwrap();
        // The same file, its ledger in a scratch folder.
        let ledger = format!("target/{name}-ledger.redb");
        assert!(text.contains(&ledger), "{name}");
        let config = dir.write(
            "router.toml",
            &text.replace(&ledger, &dir.join("ledger.redb").display().to_string()),
        );
        let mut router = RouterProcess::start(&["--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
        assert!(router.url().starts_with("http://127.0.0.1:"), "{name}");
        assert_eq!(router.interrupt(), Some(0), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bill_at_end_price_defect_bills_a_stream_crossing_a_change_at_the_new_price() {
    let stack = Stack::start_with(SCHEDULE, |config| config.defects.bill_at_end_price = true).await;
    let chat = json!({"model": "openai/slow", "stream": true, "messages": [{"role": "user", "content": "hello"}]});
    let streamed = stack.stream("sk-a", &chat).await;
    assert!(streamed.done, "{streamed:?}");
    let (cost, prompt, completion) = billed(&stack, &generation_id(&streamed.headers)).await;
    assert_eq!(
        cost,
        prompt * 10_000_000 + completion * 20_000_000,
        "the price at its end"
    );
}
