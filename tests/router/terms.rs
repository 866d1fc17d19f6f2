//! The terms' billing rules: purchases between a minimum and a maximum,
//! credits that expire a while after they were bought (oldest spent first),
//! and prices that change on a schedule announced ahead.

use std::time::Duration;

use http::StatusCode;
use serde_json::json;

use crate::support::{API, Stack, assert_error_shape, picos, picos_at};

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
