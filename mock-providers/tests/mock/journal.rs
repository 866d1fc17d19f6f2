//! The journal: one record per attempt, its correlation, attempt numbers,
//! times, tokens and outcome, and its NDJSON view over HTTP.

use http::{Method, StatusCode};
use http_body_util::BodyExt;
use mock_providers::journal::CorrelationSource;
use mock_providers::{Dialect, Outcome, Record};
use serde_json::json;

use crate::support::{
    Mock, SseParser, call, chat, chat_stream, get, http_client, openai_content, post, request, stream, unix_us, within,
};

const TWO: &str = r#"
[[providers]]
name = "jo"
dialect = "openai"
[providers.defaults]
ttft-ms = 2
itl-ms = 2
output-tokens = 6

[[providers]]
name = "ja"
dialect = "anthropic"
[providers.defaults]
ttft-ms = 2
itl-ms = 2
output-tokens = 5
"#;

/// Times are Unix microseconds, ordered, and within a second of the test's clock.
fn check_times(r: &Record, before: u64, after: u64) {
    let first = r.first_token_us.expect("a first token");
    let last = r.last_token_us.expect("a last token");
    assert!(
        r.received_us <= first && first <= last && last <= r.finished_us,
        "{r:?}"
    );
    assert!(
        r.received_us + 1_000_000 >= before,
        "received {} vs test clock {before}",
        r.received_us
    );
    assert!(
        r.finished_us <= after + 1_000_000,
        "finished {} vs test clock {after}",
        r.finished_us
    );
}

/// Streamed records: one offset per token, increasing, matching the token times.
fn check_offsets(r: &Record) {
    assert_eq!(r.token_offsets_us.len(), r.tokens_sent as usize, "{r:?}");
    assert!(
        r.token_offsets_us.windows(2).all(|w| w[0] < w[1]),
        "increasing: {:?}",
        r.token_offsets_us
    );
    let first = r.received_us + u64::from(r.token_offsets_us[0]);
    let last = r.received_us + u64::from(*r.token_offsets_us.last().unwrap());
    assert!(first.abs_diff(r.first_token_us.unwrap()) <= 1, "{r:?}");
    assert!(last.abs_diff(r.last_token_us.unwrap()) <= 1, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_carry_correlation_attempts_and_what_the_mock_saw() {
    let mock = Mock::start(TWO).await;
    let (oa, an) = (mock.named("jo"), mock.named("ja"));
    let client = http_client();
    let oa_url = format!("{}/v1/chat/completions", oa.base_url());
    let an_url = format!("{}/v1/messages", an.base_url());
    let before = unix_us();

    // The header wins over a nonce in the prompt; system messages are joined.
    let body = json!({
        "model": "gpt-x",
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": 50,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "be kind"}]},
            {"role": "user", "content": "hi [gauntlet:from-nonce]"}
        ]
    });
    let headers = [("x-gauntlet-request-id", "req-1"), ("authorization", "Bearer sk-1")];
    let s = stream(&client, &oa_url, &headers, &body).await;
    let streamed = s
        .events()
        .iter()
        .filter_map(|e| e.json())
        .filter_map(|c| openai_content(&c))
        .count();
    // Two retries of the same id, not streamed.
    for _ in 0..2 {
        assert_eq!(
            post(&client, &oa_url, &headers, &chat("gpt-x", "again")).await.status,
            StatusCode::OK
        );
    }
    // The nonce when there is no header, then no id at all.
    for _ in 0..2 {
        post(&client, &oa_url, &[], &chat("gpt-y", "x [gauntlet:nonce-7] y")).await;
    }
    post(&client, &oa_url, &[], &chat("gpt-y", "no id")).await;

    // Anthropic: the top-level system, a nonce in it, the x-api-key.
    let body = json!({
        "model": "claude-x",
        "max_tokens": 64,
        "stream": true,
        "system": [{"type": "text", "text": "sys "}, {"type": "text", "text": "[gauntlet:an-1]"}],
        "messages": [{"role": "user", "content": "hello"}]
    });
    stream(&client, &an_url, &[("x-api-key", "sk-ant")], &body).await;

    within("the openai journal", oa.journal().wait_for(6)).await;
    within("the anthropic journal", an.journal().wait_for(1)).await;
    let after = unix_us();
    let records = oa.journal().snapshot();
    assert_eq!(records.len(), 6, "one record per attempt");

    let r = &records[0];
    assert_eq!(r.seq, 0);
    assert_eq!(r.correlation_id.as_deref(), Some("req-1"));
    assert_eq!(r.correlation_source, CorrelationSource::Header);
    assert_eq!(r.attempt, 1);
    assert_eq!(r.provider, "jo");
    assert_eq!(r.dialect, Dialect::OpenAi);
    assert_eq!(r.model.as_deref(), Some("gpt-x"));
    assert_eq!(r.upstream_key.as_deref(), Some("sk-1"));
    assert_eq!(r.system_prompt.as_deref(), Some("be brief\nbe kind"));
    assert!(r.stream);
    assert_eq!(r.max_tokens, Some(50));
    assert_eq!((r.status, r.outcome), (200, Outcome::Ok));
    assert_eq!(r.tokens_sent as usize, streamed);
    assert_eq!(r.tokens_sent, 6);
    let usage = r.usage.unwrap();
    assert_eq!(usage.completion_tokens, 6);
    // 3 + (4 + 2) + (4 + 2) + (4 + ceil(24 / 4) = 6) = 25
    assert_eq!(usage.prompt_tokens, 25);
    assert_eq!(r.fault, None);
    check_times(r, before, after);
    check_offsets(r);

    let attempts: Vec<(Option<&str>, CorrelationSource, u32)> = records
        .iter()
        .map(|r| (r.correlation_id.as_deref(), r.correlation_source, r.attempt))
        .collect();
    assert_eq!(
        attempts,
        [
            (Some("req-1"), CorrelationSource::Header, 1),
            (Some("req-1"), CorrelationSource::Header, 2),
            (Some("req-1"), CorrelationSource::Header, 3),
            (Some("nonce-7"), CorrelationSource::Nonce, 1),
            (Some("nonce-7"), CorrelationSource::Nonce, 2),
            (None, CorrelationSource::None, 1),
        ]
    );
    for r in &records[1..] {
        assert!(!r.stream);
        assert_eq!(r.system_prompt, None);
        assert_eq!((r.status, r.outcome), (200, Outcome::Ok));
        check_times(r, before, after);
    }
    assert_eq!(records[3].upstream_key, None);
    assert!(records.windows(2).all(|w| w[0].received_us <= w[1].received_us));

    let a = &an.journal().snapshot()[0];
    assert_eq!(a.provider, "ja");
    assert_eq!(a.dialect, Dialect::Anthropic);
    assert_eq!(a.correlation_id.as_deref(), Some("an-1"));
    assert_eq!(a.correlation_source, CorrelationSource::Nonce);
    assert_eq!(a.system_prompt.as_deref(), Some("sys [gauntlet:an-1]"));
    assert_eq!(a.upstream_key.as_deref(), Some("sk-ant"));
    assert_eq!(a.max_tokens, Some(64));
    assert_eq!(a.tokens_sent, 5);
    check_times(a, before, after);
    check_offsets(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_stream_is_client_closed() {
    let mock = Mock::start(&TWO.replace("output-tokens = 6", "output-tokens = 300")).await;
    let client = http_client();
    let url = mock.url("/v1/chat/completions");
    let req = request(Method::POST, &url, &[], Some(chat_stream("m", "x", None).to_string()));
    let response = within("a head", client.request(req)).await.unwrap();
    let mut body = response.into_body();
    let mut parser = SseParser::default();
    let mut seen = 0;
    while seen < 3 {
        let frame = within("a frame", body.frame()).await.unwrap().unwrap();
        if let Ok(data) = frame.into_data() {
            seen += parser
                .feed(&data)
                .iter()
                .filter_map(|e| e.json())
                .filter_map(|c| openai_content(&c))
                .count();
        }
    }
    drop(body); // goes away mid-stream

    let r = &mock.records(1).await[0];
    assert_eq!(r.outcome, Outcome::ClientClosed);
    assert_eq!(r.status, 200, "the head had been sent");
    assert!(r.tokens_sent as usize >= seen, "{} sent, {seen} seen", r.tokens_sent);
    assert!(r.tokens_sent < 300, "the stream did not finish");
    assert_eq!(r.token_offsets_us.len(), r.tokens_sent as usize);
    assert_eq!(r.usage, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_over_http_equals_the_snapshot() {
    let mock = Mock::start(TWO).await;
    let client = http_client();
    let url = mock.url("/v1/chat/completions");
    post(&client, &url, &[("x-gauntlet-request-id", "j-1")], &chat("m", "one")).await;
    stream(&client, &url, &[], &chat_stream("m", "two", Some(true))).await;
    post(&client, &url, &[], &chat("", "bad")).await;
    post(&client, &url, &[], &chat("m", "four [gauntlet:j-4]")).await;
    let snapshot = mock.records(4).await;
    assert_eq!(snapshot.iter().map(|r| r.seq).collect::<Vec<_>>(), [0, 1, 2, 3]);

    let read = |reply: crate::support::Reply| -> Vec<Record> {
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("content-type"), Some("application/x-ndjson"));
        let text = reply.text();
        assert!(text.is_empty() || text.ends_with('\n'));
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    assert_eq!(read(get(&client, &mock.url("/__gauntlet/journal")).await), snapshot);
    assert_eq!(
        read(get(&client, &mock.url("/__gauntlet/journal?since=2")).await),
        snapshot[2..]
    );
    assert_eq!(read(get(&client, &mock.url("/__gauntlet/journal?since=4")).await), []);
    assert_eq!(read(get(&client, &mock.url("/__gauntlet/journal?since=99")).await), []);
    assert_eq!(mock.journal().since(3), snapshot[3..]);

    let cleared = call(&client, Method::DELETE, &mock.url("/__gauntlet/journal"), &[], None).await;
    assert_eq!(cleared.status, StatusCode::NO_CONTENT);
    assert!(mock.journal().is_empty());
    post(&client, &url, &[], &chat("m", "after")).await;
    let after = mock.records(1).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].seq, 0, "numbering starts again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_streamed_record_has_one_offset_per_token() {
    let mock = Mock::start(TWO).await;
    let client = http_client();
    post(&client, &mock.url("/v1/chat/completions"), &[], &chat("m", "x")).await;
    let r = &mock.records(1).await[0];
    assert_eq!(r.tokens_sent, 6);
    assert_eq!(r.token_offsets_us.len(), r.tokens_sent as usize, "{r:?}");
    let sent_at = r.first_token_us.unwrap() - r.received_us;
    assert!(r.token_offsets_us.iter().all(|&o| u64::from(o).abs_diff(sent_at) <= 1));
}
