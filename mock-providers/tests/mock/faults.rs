//! Every fault kind, their windows, probability, filters and hit limits,
//! and the control route that replaces them at run time.

use std::collections::BTreeSet;
use std::time::Duration;

use http::{Method, StatusCode};
use http_body_util::BodyExt;
use mock_providers::Outcome;
use mock_providers::plan::{attempt_seed, fault_roll};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{
    HttpClient, Mock, RawEnd, Reply, SseParser, call, chat, chat_stream, get, http_client, openai_content, post,
    raw_post, stream, within,
};

/// A fast OpenAI provider: 8 tokens, 1 ms apart.
const FAST: &str = r#"
[[providers]]
name = "faulty"
dialect = "openai"
seed = 11
[providers.defaults]
ttft-ms = 1
itl-ms = 1
output-tokens = 8
"#;

async fn put_faults(client: &HttpClient, mock: &Mock, faults: &Value) -> Reply {
    call(
        client,
        Method::PUT,
        &mock.url("/__gauntlet/faults"),
        &[],
        Some(faults.to_string()),
    )
    .await
}

async fn install(client: &HttpClient, mock: &Mock, faults: Value) {
    let reply = put_faults(client, mock, &faults).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["installed"], faults.as_array().unwrap().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_faults_answer_with_their_status_and_retry_after() {
    let mock = Mock::start(FAST).await;
    let client = http_client();
    let url = mock.url("/v1/chat/completions");
    let cases = [
        (429, Some(1500), "requests", Some("2")),
        (500, None, "server_error", None),
        (502, Some(1000), "server_error", Some("1")),
        (503, Some(1), "server_error", Some("1")),
        (529, Some(2001), "overloaded_error", Some("3")),
    ];
    for (i, (status, retry_after_ms, kind, seconds)) in cases.into_iter().enumerate() {
        let mut fault = json!({"kind": "status", "status": status});
        if let Some(ms) = retry_after_ms {
            fault["retry-after-ms"] = ms.into();
        }
        install(&client, &mock, json!([fault])).await;
        // Streamed or not, a status fault answers before any token.
        let body = if i % 2 == 0 {
            chat("m", "hi")
        } else {
            chat_stream("m", "hi", Some(true))
        };
        let reply = post(&client, &url, &[], &body).await;
        assert_eq!(reply.status.as_u16(), status);
        let v = reply.json();
        assert_eq!(v["error"]["type"], kind, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(if status == 529 {
            "Overloaded"
        } else {
            "gauntlet"
        }));
        assert_eq!(reply.header("retry-after"), seconds, "whole seconds, rounded up");
        assert_eq!(
            reply.header("retry-after-ms").map(|v| v.parse::<u64>().unwrap()),
            retry_after_ms
        );
    }
    let records = mock.records(cases.len()).await;
    for (record, (status, retry_after_ms, _, _)) in records.iter().zip(cases) {
        assert_eq!(record.status, status);
        assert_eq!(record.outcome, Outcome::FaultStatus);
        assert_eq!(record.retry_after_ms, retry_after_ms);
        assert_eq!(record.fault.as_deref(), Some("faults[0]:status"));
        assert_eq!(record.tokens_sent, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_drops_the_connection_without_an_answer_after_its_delay() {
    let mock = Mock::start(FAST).await;
    let client = http_client();
    install(&client, &mock, json!([{"kind": "hang", "delay-ms": 60}])).await;
    let exchange = raw_post(mock.addr(), "/v1/chat/completions", &[], &chat_stream("m", "hi", None)).await;
    assert!(
        exchange.bytes.is_empty(),
        "no response at all: {:?}",
        String::from_utf8_lossy(&exchange.bytes)
    );
    assert_eq!(exchange.end, RawEnd::Eof, "closed, not reset");
    assert!(exchange.ended - exchange.sent >= Duration::from_millis(60));

    let record = &mock.records(1).await[0];
    assert_eq!(record.outcome, Outcome::Hang);
    assert_eq!(record.status, 0);
    assert_eq!(record.tokens_sent, 0);
    assert!(record.finished_us - record.received_us >= 60_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_gives_up_on_a_hang_is_journaled_as_hang() {
    let mock = Mock::start(FAST).await;
    let client = http_client();
    // The default hang holds for 30 s; the client gives up long before.
    install(&client, &mock, json!([{"kind": "hang"}])).await;
    let req = crate::support::request(
        Method::POST,
        &mock.url("/v1/chat/completions"),
        &[],
        Some(chat("m", "x").to_string()),
    );
    let gave_up = tokio::time::timeout(Duration::from_millis(100), client.request(req)).await;
    assert!(gave_up.is_err(), "no answer within 100 ms");
    drop(gave_up); // closes the connection

    let record = &mock.records(1).await[0];
    assert_eq!(record.outcome, Outcome::Hang);
    assert_eq!(record.status, 0);
    assert!(
        record.finished_us - record.received_us < 30_000_000,
        "recorded when the client left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_fault_after_k_tokens_is_an_error_in_the_stream() {
    let mock = Mock::start(FAST).await;
    let client = http_client();
    install(
        &client,
        &mock,
        json!([{"kind": "status", "status": 503, "after-tokens": 3}]),
    )
    .await;
    let s = stream(
        &client,
        &mock.url("/v1/chat/completions"),
        &[],
        &chat_stream("m", "hi", Some(true)),
    )
    .await;
    assert_eq!(s.status, StatusCode::OK);
    assert!(s.error.is_none(), "the body ends properly after the error");
    let events = s.events();
    assert!(events.iter().all(|e| !e.is_done()), "no [DONE] after an error");
    let chunks: Vec<Value> = events.iter().map(|e| e.json().unwrap()).collect();
    assert_eq!(chunks.len(), 1 + 3 + 1, "role, 3 tokens, the error");
    assert_eq!(chunks.iter().filter_map(openai_content).count(), 3);
    let error = &chunks[4]["error"];
    assert_eq!(error["type"], "server_error");
    assert!(error["message"].as_str().unwrap().contains("overloaded"));

    // Not streamed, the error status comes after the time of 3 tokens.
    let reply = post(&client, &mock.url("/v1/chat/completions"), &[], &chat("m", "hi")).await;
    assert_eq!(reply.status.as_u16(), 503);

    let records = mock.records(2).await;
    assert_eq!(
        (records[0].outcome, records[0].status, records[0].tokens_sent),
        (Outcome::FaultStreamError, 503, 3)
    );
    assert_eq!(records[0].usage, None);
    assert_eq!((records[1].outcome, records[1].status), (Outcome::FaultStatus, 503));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_first_byte_delays_the_response_head() {
    let mock = Mock::start(FAST).await;
    let client = http_client();
    install(&client, &mock, json!([{"kind": "slow-first-byte", "delay-ms": 80}])).await;
    let s = stream(
        &client,
        &mock.url("/v1/chat/completions"),
        &[],
        &chat_stream("m", "hi", None),
    )
    .await;
    assert_eq!(s.status, StatusCode::OK);
    assert!(
        s.head_at - s.sent >= Duration::from_millis(80),
        "head after {:?}",
        s.head_at - s.sent
    );
    assert_eq!(
        s.events()
            .iter()
            .filter_map(|e| e.json())
            .filter_map(|c| openai_content(&c))
            .count(),
        8
    );

    let sent = Instant::now();
    let reply = post(&client, &mock.url("/v1/chat/completions"), &[], &chat("m", "hi")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.head_at - sent >= Duration::from_millis(80));

    let records = mock.records(2).await;
    assert!(records.iter().all(|r| r.outcome == Outcome::Ok));
    assert!(
        records[0].token_offsets_us[0] >= 80_000,
        "the first token after the delay"
    );
    assert_eq!(records[0].fault.as_deref(), Some("faults[0]:slow-first-byte"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_ends_the_body_unfinished_after_k_tokens_on_the_journal() {
    let mock = Mock::start(FAST).await;
    let client = http_client();
    install(&client, &mock, json!([{"kind": "cut", "after-tokens": 3}])).await;
    let exchange = raw_post(mock.addr(), "/v1/chat/completions", &[], &chat_stream("m", "hi", None)).await;
    assert_eq!(exchange.end, RawEnd::Eof, "closed, not reset");
    // Whatever arrived is unfinished. (On a loaded machine even the head can
    // be lost: see `cut_delivers_exactly_k_content_chunks`.)
    let mut seen = 0;
    if let Some(response) = exchange.try_response() {
        assert_eq!(response.status, 200);
        assert!(
            response
                .header("content-type")
                .unwrap()
                .starts_with("text/event-stream")
        );
        assert_eq!(response.header("transfer-encoding"), Some("chunked"));
        assert!(!response.complete, "the chunked body has no terminating chunk");
        let events = SseParser::default().feed(&response.body);
        assert!(events.iter().all(|e| !e.is_done()), "no [DONE]");
        let chunks: Vec<Value> = events.iter().map(|e| e.json().unwrap()).collect();
        assert!(
            chunks.iter().all(|c| c["choices"][0]["finish_reason"].is_null()),
            "no finish chunk"
        );
        seen = chunks.iter().filter_map(openai_content).count();
    }
    assert!(seen <= 3, "never more than k content chunks, saw {seen}");

    let record = &mock.records(1).await[0];
    assert_eq!(record.outcome, Outcome::Cut);
    assert_eq!(record.status, 200);
    assert_eq!(record.tokens_sent, 3);
    assert_eq!(record.token_offsets_us.len(), 3);
    assert_eq!(record.usage, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_delivers_exactly_k_content_chunks() {
    let mock = Mock::start(FAST).await;
    let client = http_client();
    install(&client, &mock, json!([{"kind": "cut", "after-tokens": 3}])).await;
    for path in ["raw TCP", "hyper client"] {
        let seen = if path == "raw TCP" {
            let exchange = raw_post(mock.addr(), "/v1/chat/completions", &[], &chat_stream("m", "hi", None)).await;
            let response = exchange.response();
            assert!(!response.complete);
            SseParser::default()
                .feed(&response.body)
                .iter()
                .filter_map(|e| e.json())
                .filter_map(|c| openai_content(&c))
                .count()
        } else {
            let s = stream(
                &client,
                &mock.url("/v1/chat/completions"),
                &[],
                &chat_stream("m", "hi", None),
            )
            .await;
            assert!(s.error.is_some(), "the body ends with an error");
            s.events()
                .iter()
                .filter_map(|e| e.json())
                .filter_map(|c| openai_content(&c))
                .count()
        };
        assert_eq!(seen, 3, "{path}: exactly k content chunks before the cut");
    }
    let records = mock.records(2).await;
    assert!(records.iter().all(|r| r.tokens_sent == 3 && r.outcome == Outcome::Cut));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_that_does_not_act_is_not_recorded_as_acting() {
    let mock = Mock::start(FAST).await;
    let client = http_client();
    // The answer has 8 tokens: a cut after 9 never happens.
    install(&client, &mock, json!([{"kind": "cut", "after-tokens": 9}])).await;
    let s = stream(
        &client,
        &mock.url("/v1/chat/completions"),
        &[],
        &chat_stream("m", "hi", None),
    )
    .await;
    assert!(
        s.error.is_none() && s.events().last().unwrap().is_done(),
        "the stream is complete"
    );
    let record = &mock.records(1).await[0];
    assert_eq!(record.outcome, Outcome::Ok);
    assert_eq!(record.fault, None, "an attempt the fault did not touch names no fault");
    let listed = get(&client, &mock.url("/__gauntlet/faults")).await.json();
    assert_eq!(listed[0]["hits"], 0, "no hit counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_is_an_error_for_an_http_client() {
    let mock = Mock::start(FAST).await;
    let client = http_client();
    install(&client, &mock, json!([{"kind": "cut", "after-tokens": 5}])).await;
    let req = crate::support::request(
        Method::POST,
        &mock.url("/v1/chat/completions"),
        &[],
        Some(chat_stream("m", "hi", None).to_string()),
    );
    match within("a response", client.request(req)).await {
        // The head itself was lost (see `cut_delivers_exactly_k_content_chunks`).
        Err(e) => assert!(!e.is_connect(), "{e:?}"),
        Ok(response) => {
            assert_eq!(response.status(), StatusCode::OK);
            let body = within("the body", response.into_body().collect()).await;
            assert!(body.is_err(), "the body ends with an error, not a clean end");
        }
    }
    let record = &mock.records(1).await[0];
    assert_eq!((record.outcome, record.tokens_sent), (Outcome::Cut, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_chunk_is_one_bad_chunk_and_the_rest_follows() {
    let mock = Mock::start(FAST).await;
    let client = http_client();
    install(&client, &mock, json!([{"kind": "malformed-chunk", "after-tokens": 2}])).await;
    let s = stream(
        &client,
        &mock.url("/v1/chat/completions"),
        &[],
        &chat_stream("m", "hi", None),
    )
    .await;
    assert!(s.error.is_none());
    let events = s.events();
    assert!(events.last().unwrap().is_done(), "the rest of the answer follows");
    let bad: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.is_done() && e.json().is_none())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(bad.len(), 1, "exactly one chunk is not JSON");
    // role chunk, two content chunks, then the malformed one.
    assert_eq!(bad[0], 3);
    let contents = events
        .iter()
        .filter_map(|e| e.json())
        .filter_map(|c| openai_content(&c))
        .count();

    let record = &mock.records(1).await[0];
    assert_eq!(record.outcome, Outcome::Malformed);
    assert_eq!(record.status, 200);
    assert_eq!(record.tokens_sent as usize, contents);
    assert_eq!(contents, 8, "every token is still sent");

    // Not streamed: the whole body is not JSON.
    let reply = post(&client, &mock.url("/v1/chat/completions"), &[], &chat("m", "hi")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(serde_json::from_slice::<Value>(&reply.body).is_err());
    assert_eq!(mock.records(2).await[1].outcome, Outcome::Malformed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_before_the_answer_and_after_k_tokens() {
    let mock = Mock::start(FAST).await;
    let client = http_client();

    install(&client, &mock, json!([{"kind": "reset"}])).await;
    let exchange = raw_post(mock.addr(), "/v1/chat/completions", &[], &chat_stream("m", "hi", None)).await;
    assert_eq!(exchange.end, RawEnd::Reset, "the connection is reset");
    assert!(exchange.bytes.is_empty(), "before any answer");

    install(&client, &mock, json!([{"kind": "reset", "after-tokens": 3}])).await;
    let exchange = raw_post(mock.addr(), "/v1/chat/completions", &[], &chat_stream("m", "hi", None)).await;
    assert_eq!(exchange.end, RawEnd::Reset, "the connection is reset mid-stream");

    // A hyper client sees an error either way.
    let request = crate::support::request(
        Method::POST,
        &mock.url("/v1/chat/completions"),
        &[],
        Some(chat("m", "hi").to_string()),
    );
    install(&client, &mock, json!([{"kind": "reset"}])).await;
    assert!(client.request(request).await.is_err());

    let records = mock.records(3).await;
    assert_eq!(
        (records[0].outcome, records[0].status, records[0].tokens_sent),
        (Outcome::Reset, 0, 0)
    );
    assert_eq!((records[1].outcome, records[1].tokens_sent), (Outcome::Reset, 3));
    assert_eq!(records[1].fault.as_deref(), Some("faults[0]:reset"));
    assert_eq!(records[2].outcome, Outcome::Reset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_windows_open_and_close() {
    let mock = Mock::start(FAST).await;
    let client = http_client();
    let url = mock.url("/v1/chat/completions");
    // Window arithmetic is the subject here, so this test waits on the clock.
    install(
        &client,
        &mock,
        json!([
            {"kind": "status", "status": 503, "until-ms": 400, "model": "early"},
            {"kind": "status", "status": 502, "from-ms": 400, "model": "late"}
        ]),
    )
    .await;
    let installed_by = Instant::now();
    assert_eq!(post(&client, &url, &[], &chat("early", "x")).await.status.as_u16(), 503);
    assert_eq!(post(&client, &url, &[], &chat("late", "x")).await.status.as_u16(), 200);

    tokio::time::sleep_until(installed_by + Duration::from_millis(450)).await;
    assert_eq!(post(&client, &url, &[], &chat("early", "x")).await.status.as_u16(), 200);
    assert_eq!(post(&client, &url, &[], &chat("late", "x")).await.status.as_u16(), 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_and_key_filters_and_first_match_wins() {
    let mock = Mock::start(&format!(
        "{FAST}{}",
        r#"
[[providers.keys]]
key = "k1"
[[providers.keys]]
key = "k2"
[[providers.faults]]
kind = "status"
status = 500
model = "m1"
[[providers.faults]]
kind = "status"
status = 502
key = "k2"
"#
    ))
    .await;
    let client = http_client();
    let url = mock.url("/v1/chat/completions");
    let cases = [
        ("m1", "k1", 500),
        ("m2", "k1", 200),
        ("m2", "k2", 502),
        ("m1", "k2", 500),
    ];
    for (model, key, status) in cases {
        let auth = format!("Bearer {key}");
        let reply = post(&client, &url, &[("authorization", &auth)], &chat(model, "x")).await;
        assert_eq!(reply.status.as_u16(), status, "{model} with {key}");
    }
    let listed = get(&client, &mock.url("/__gauntlet/faults")).await.json();
    assert_eq!(listed[0]["hits"], 2);
    assert_eq!(listed[1]["hits"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_hits_stops_a_fault() {
    let mock = Mock::start(FAST).await;
    let client = http_client();
    install(
        &client,
        &mock,
        json!([{"kind": "status", "status": 503, "max-hits": 2}]),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            post(&client, &mock.url("/v1/chat/completions"), &[], &chat("m", "x"))
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(statuses, [503, 503, 200, 200]);
    let listed = get(&client, &mock.url("/__gauntlet/faults")).await.json();
    assert_eq!(listed[0]["hits"], 2);
    assert_eq!(listed[0]["max-hits"], 2);
}

/// Sends `n` requests with ids `p-0`..`p-{n-1}` and returns the ids that failed.
async fn failed_ids(mock: &Mock, n: usize) -> BTreeSet<String> {
    let client = http_client();
    let url = mock.url("/v1/chat/completions");
    let mut failed = BTreeSet::new();
    for i in 0..n {
        let id = format!("p-{i}");
        let reply = post(&client, &url, &[("x-gauntlet-request-id", &id)], &chat("m", "x")).await;
        match reply.status.as_u16() {
            200 => {}
            503 => {
                failed.insert(id);
            }
            other => panic!("unexpected status {other}"),
        }
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probability_is_seeded_by_request_id() {
    let config = format!(
        "{}{}",
        FAST.replace("output-tokens = 8", "output-tokens = 1")
            .replace("ttft-ms = 1", "ttft-ms = 0"),
        "[[providers.faults]]\nkind = \"status\"\nstatus = 503\nprobability = 0.5\n"
    );
    let n = 200;
    let first = Mock::start(&config).await;
    let failed = failed_ids(&first, n).await;
    let share = failed.len() as f64 / n as f64;
    assert!((0.4..=0.6).contains(&share), "share {share}");

    // Each decision is the documented seeded roll of the attempt.
    for i in 0..n {
        let id = format!("p-{i}");
        let roll = fault_roll(attempt_seed(11, "faulty", "m", &id), 1);
        assert_eq!(failed.contains(&id), roll < 0.5, "{id}: roll {roll}");
    }

    // Another mock with the same seed fails exactly the same ids.
    let second = Mock::start(&config).await;
    assert_eq!(failed_ids(&second, n).await, failed);

    // Another seed fails a different set.
    let other = Mock::start(&config.replace("seed = 11", "seed = 12")).await;
    assert_ne!(failed_ids(&other, n).await, failed);

    // A retry of the same id rolls again (attempt 2), as documented.
    let client = http_client();
    let url = first.url("/v1/chat/completions");
    let mut changed = 0;
    for id in failed.iter().take(40) {
        let reply = post(&client, &url, &[("x-gauntlet-request-id", id)], &chat("m", "x")).await;
        let roll = fault_roll(attempt_seed(11, "faulty", "m", id), 2);
        assert_eq!(reply.status.as_u16() == 503, roll < 0.5, "{id} attempt 2: roll {roll}");
        changed += usize::from(reply.status == StatusCode::OK);
    }
    assert!(changed > 0, "some retries succeed");

    let records = first.records(n).await;
    let journal_failed: BTreeSet<String> = records[..n]
        .iter()
        .filter(|r| r.outcome == Outcome::FaultStatus)
        .map(|r| r.correlation_id.clone().unwrap())
        .collect();
    assert_eq!(journal_failed, failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_route_replaces_lists_and_clears_faults() {
    let mock = Mock::start(FAST).await;
    let client = http_client();
    let faults_url = mock.url("/__gauntlet/faults");
    let url = mock.url("/v1/chat/completions");
    assert_eq!(get(&client, &faults_url).await.json(), json!([]));

    install(
        &client,
        &mock,
        json!([
            {"name": "only-m1", "kind": "status", "status": 500, "model": "m1"},
            {"kind": "cut", "after-tokens": 4, "probability": 0.25}
        ]),
    )
    .await;
    assert_eq!(post(&client, &url, &[], &chat("m1", "x")).await.status.as_u16(), 500);
    let listed = get(&client, &faults_url).await.json();
    assert_eq!(
        listed,
        json!([
            {"name": "only-m1", "kind": "status", "status": 500, "model": "m1", "hits": 1},
            {"kind": "cut", "after-tokens": 4, "probability": 0.25, "hits": 0}
        ])
    );

    // Bad bodies get a 400 naming the field, and leave the faults as they were.
    let bad = [
        (json!({"kind": "status"}), "sequence"),
        (json!([{"kind": "status"}]), "faults[0].status"),
        (json!([{"kind": "status", "status": 200}]), "faults[0].status"),
        (json!([{"kind": "hang"}, {"kind": "cut"}]), "faults[1].after-tokens"),
        (
            json!([{"kind": "status", "status": 500, "probabilty": 0.5}]),
            "probabilty",
        ),
        (json!([{"kind": "explode"}]), "explode"),
        (json!([{"kind": "reset", "probability": 2.0}]), "faults[0].probability"),
    ];
    for (body, needle) in bad {
        let reply = put_faults(&client, &mock, &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        let message = reply.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(needle), "{body}: {message:?} should name {needle}");
    }
    assert_eq!(get(&client, &faults_url).await.json(), listed);

    let reply = call(&client, Method::DELETE, &faults_url, &[], None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(get(&client, &faults_url).await.json(), json!([]));
    assert_eq!(post(&client, &url, &[], &chat("m1", "x")).await.status, StatusCode::OK);
}
