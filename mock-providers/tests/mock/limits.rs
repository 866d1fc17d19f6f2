//! Limits per upstream key: requests per minute, tokens per minute and
//! concurrency, answered with 429, `retry-after` and `x-ratelimit-*`.

use http::{Method, StatusCode};
use http_body_util::BodyExt;
use mock_providers::Outcome;
use serde_json::Value;

use crate::support::{Mock, Reply, chat, chat_stream, http_client, post, request, within};

const LIMITED: &str = r#"
[[providers]]
name = "limited"
dialect = "openai"
[providers.defaults]
ttft-ms = 1
itl-ms = 1
output-tokens = 2

[[providers.keys]]
key = "rpm3"
rpm = 3

[[providers.keys]]
key = "tpm100"
tpm = 100

[[providers.keys]]
key = "conc2"
concurrency = 2

[[providers.keys]]
key = "free"
"#;

fn number(reply: &Reply, header: &str) -> u64 {
    reply
        .header(header)
        .unwrap_or_else(|| panic!("no {header} header"))
        .parse()
        .unwrap_or_else(|_| panic!("{header} is not a number"))
}

fn rate_limited(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.text());
    let v: Value = reply.json();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert!(number(reply, "retry-after") >= 1);
    v["error"]["message"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpm_refuses_the_request_after_the_burst() {
    let mock = Mock::start(LIMITED).await;
    let client = http_client();
    let url = mock.url("/v1/chat/completions");
    let auth = [("authorization", "Bearer rpm3")];
    for remaining in [2, 1, 0] {
        let reply = post(&client, &url, &auth, &chat("m", "x")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(number(&reply, "x-ratelimit-limit-requests"), 3);
        assert_eq!(number(&reply, "x-ratelimit-remaining-requests"), remaining);
        assert!(reply.header("x-ratelimit-reset-requests").is_some());
    }
    let refused = post(&client, &url, &auth, &chat("m", "x")).await;
    let message = rate_limited(&refused);
    assert!(message.contains("requests per minute"), "{message}");
    assert_eq!(number(&refused, "x-ratelimit-limit-requests"), 3);
    assert_eq!(number(&refused, "x-ratelimit-remaining-requests"), 0);
    // A minute's allowance of 3 refills one request in 20 s.
    let seconds = number(&refused, "retry-after");
    assert!((1..=20).contains(&seconds), "retry-after {seconds}");
    let ms = number(&refused, "retry-after-ms");
    assert_eq!(seconds, ms.div_ceil(1000));

    // Another key is not affected, and an unlimited key gets no rate headers.
    let free = post(&client, &url, &[("authorization", "Bearer free")], &chat("m", "x")).await;
    assert_eq!(free.status, StatusCode::OK);
    assert!(free.header("x-ratelimit-limit-requests").is_none());

    let records = mock.records(5).await;
    assert_eq!(records[3].outcome, Outcome::RateLimited);
    assert_eq!(records[3].status, 429);
    assert_eq!(records[3].retry_after_ms, Some(ms));
    assert_eq!(records[3].upstream_key.as_deref(), Some("rpm3"));
    assert_eq!(records[4].outcome, Outcome::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpm_refuses_a_request_whose_prompt_and_max_tokens_exceed_what_is_left() {
    let mock = Mock::start(LIMITED).await;
    let client = http_client();
    let url = mock.url("/v1/chat/completions");
    let auth = [("authorization", "Bearer tpm100")];
    // "abcd" costs 3 + 4 + 1 = 8 prompt tokens; with max_tokens 52 a request costs 60.
    let ask = |max_tokens: u32| {
        let mut body = chat("m", "abcd");
        body["max_tokens"] = max_tokens.into();
        body
    };
    let first = post(&client, &url, &auth, &ask(52)).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(number(&first, "x-ratelimit-limit-tokens"), 100);
    assert_eq!(number(&first, "x-ratelimit-remaining-tokens"), 40);

    let refused = post(&client, &url, &auth, &ask(52)).await;
    let message = rate_limited(&refused);
    assert!(message.contains("tokens per minute"), "{message}");
    assert!(number(&refused, "x-ratelimit-remaining-tokens") < 60);

    // 8 + 30 = 38 still fits in what is left.
    assert_eq!(post(&client, &url, &auth, &ask(30)).await.status, StatusCode::OK);

    // More than the whole minute's allowance can never pass.
    let too_large = post(&client, &url, &auth, &ask(500)).await;
    assert!(rate_limited(&too_large).contains("too large"));

    let records = mock.records(4).await;
    let outcomes: Vec<Outcome> = records.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Ok, Outcome::RateLimited, Outcome::Ok, Outcome::RateLimited]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_refuses_while_streams_are_open_and_admits_after() {
    let mock = Mock::start(
        &LIMITED
            .replace("output-tokens = 2", "output-tokens = 40")
            .replace("itl-ms = 1", "itl-ms = 10"),
    )
    .await;
    let client = http_client();
    let url = mock.url("/v1/chat/completions");
    let auth = [("authorization", "Bearer conc2")];

    // Two streams, admitted (their heads are in) and held open.
    let mut open = Vec::new();
    for _ in 0..2 {
        let req = request(Method::POST, &url, &auth, Some(chat_stream("m", "x", None).to_string()));
        let response = within("a stream head", client.request(req)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        open.push(response);
    }
    let refused = post(&client, &url, &auth, &chat("m", "x")).await;
    let message = rate_limited(&refused);
    assert!(message.contains("concurrent"), "{message}");
    assert_eq!(refused.header("retry-after"), Some("1"));

    // Once both streams are read to their end, a new request is admitted.
    for response in open {
        let body = within("a stream body", response.into_body().collect())
            .await
            .unwrap()
            .to_bytes();
        assert!(body.ends_with(b"data: [DONE]\n\n"));
    }
    let admitted = post(&client, &url, &auth, &chat("m", "x")).await;
    assert_eq!(admitted.status, StatusCode::OK);

    let records = mock.records(4).await;
    let outcomes: Vec<Outcome> = records.iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == Outcome::RateLimited).count(), 1);
    assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Ok).count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_limits_answer_with_anthropic_errors() {
    let mock = Mock::start(
        r#"
[[providers]]
name = "limited-anthropic"
dialect = "anthropic"
[providers.defaults]
ttft-ms = 1
itl-ms = 1
output-tokens = 2
[[providers.keys]]
key = "one-a-minute"
rpm = 1
"#,
    )
    .await;
    let client = http_client();
    let url = mock.url("/v1/messages");
    let key = [("x-api-key", "one-a-minute")];
    let body = crate::support::message("claude", "x", 10);
    assert_eq!(post(&client, &url, &key, &body).await.status, StatusCode::OK);
    let refused = post(&client, &url, &key, &body).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let v = refused.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert!(number(&refused, "retry-after") >= 1);
    assert_eq!(number(&refused, "x-ratelimit-remaining-requests"), 0);
    let unknown = post(&client, &url, &[("x-api-key", "nope")], &body).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.json()["error"]["type"], "authentication_error");
}
