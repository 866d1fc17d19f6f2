//! The terms' billing rules: purchases between a minimum and a maximum,
//! credits that expire a while after they were bought (oldest spent first),
//! and prices that change on a schedule announced ahead.

use http::StatusCode;
use serde_json::json;

use crate::support::{API, Stack, assert_error_shape, picos};

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
