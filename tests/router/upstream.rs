//! Upstream failures through the real router: exact retry counts, backoff
//! that honours `Retry-After`, fallback, pass-through of refusals, the
//! OpenAI-shaped answer once everything is exhausted (wiremock upstreams),
//! and cooldown, the retry budget and the deadline (mock providers).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mock_providers::MockSet;
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

use crate::support::{Answer, Stack, patiently};

/// Small numbers, so that backoff takes milliseconds.
const RETRY: &str = "[router.retry]\nbase-ms = 20\ncap-ms = 200\nattempts-per-provider = 3\ndeadline-ms = 5000\n";

/// What each wiremock upstream answers on success: 10 prompt and 5
/// completion tokens, 0.00002 USD at the model's prices (1 and 2 USD/M).
fn completion() -> Value {
    json!({
        "id": "chatcmpl-wiremock", "object": "chat.completion", "created": 1_700_000_000, "model": "model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    })
}
const COST: f64 = 0.00002;

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(completion())
}

fn status(code: u16) -> ResponseTemplate {
    ResponseTemplate::new(code).set_body_json(
        json!({"error": {"message": format!("upstream says {code}"), "type": "server_error", "code": null}}),
    )
}

/// A router whose model `test/model` is served by `upstreams` (OpenAI
/// dialect, named `a`, `b`, … in order of fallback), with [`RETRY`].
async fn router_over(upstreams: &[&MockServer], retry: &str) -> Stack {
    let names = ["a", "b", "c"];
    let mut toml = format!("[router]\n{retry}");
    for (name, server) in names.iter().zip(upstreams) {
        toml += &format!(
            "[[router.providers]]\nname = \"{name}\"\ndialect = \"openai\"\nbase-url = \"{}\"\napi-key = \"sk-up-{name}\"\n",
            server.uri()
        );
    }
    let providers: Vec<String> = names[..upstreams.len()].iter().map(|n| format!("\"{n}\"")).collect();
    toml += &format!(
        "[[router.models]]\nid = \"test/model\"\nproviders = [{}]\nupstream-model = \"model\"\nprompt = \"1\"\ncompletion = \"2\"\n",
        providers.join(", ")
    );
    toml += "[[router.keys]]\nkey = \"sk-a\"\ncredits = \"10\"\n";
    let mocks = MockSet::spawn(Vec::new()).await.unwrap();
    Stack::serve_router_toml(mocks, &toml).await
}

/// A wiremock upstream answering every chat completion with `template`.
async fn upstream(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

async fn received(server: &MockServer) -> usize {
    server.received_requests().await.expect("recording is on").len()
}

async fn ask(stack: &Stack) -> Answer {
    let body = json!({"model": "test/model", "messages": [{"role": "user", "content": "hi"}]});
    stack.chat("sk-a", &body).await
}

async fn spent(stack: &Stack) -> f64 {
    stack.key_info("sk-a").await["usage"].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_503s_then_the_fallback_serves_at_the_models_price() {
    let (a, b) = (upstream(status(503)).await, upstream(ok()).await);
    let stack = router_over(&[&a, &b], RETRY).await;
    let answer = ask(&stack).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        (received(&a).await, received(&b).await),
        (3, 1),
        "attempts on a, then b"
    );
    assert_eq!(answer.json["model"], "test/model");
    assert_eq!(answer.json["choices"][0]["message"]["content"], "Hello.");
    assert_eq!(answer.json["usage"]["cost"].as_f64(), Some(COST), "{}", answer.text);
    assert_eq!(spent(&stack).await, COST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_then_a_200_is_served_by_the_second_attempt() {
    let a = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(status(503))
        .up_to_n_times(1)
        .mount(&a)
        .await;
    Mock::given(method("POST")).respond_with(ok()).mount(&a).await;
    let b = upstream(ok()).await;
    let stack = router_over(&[&a, &b], RETRY).await;
    let answer = ask(&stack).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!((received(&a).await, received(&b).await), (2, 0));
    assert_eq!(spent(&stack).await, COST);
}

/// Answers 429 with `Retry-After: 1` the first time and 200 after, noting
/// when each request came (wiremock keeps no times).
struct RateLimitedOnce(Arc<Mutex<Vec<Instant>>>);

impl Respond for RateLimitedOnce {
    fn respond(&self, _request: &wiremock::Request) -> ResponseTemplate {
        let mut times = self.0.lock().unwrap();
        times.push(Instant::now());
        if times.len() == 1 {
            status(429).insert_header("retry-after", "1")
        } else {
            ok()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_attempt_waits_for_retry_after() {
    let times = Arc::new(Mutex::new(Vec::new()));
    let a = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(RateLimitedOnce(Arc::clone(&times)))
        .mount(&a)
        .await;
    let stack = router_over(&[&a], RETRY).await;
    let answer = ask(&stack).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let times = times.lock().unwrap().clone();
    assert_eq!(times.len(), 2);
    let gap = times[1] - times[0];
    assert!(
        gap >= Duration::from_secs(1),
        "retried {gap:?} after a 429 with Retry-After: 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_from_upstream_is_not_retried_and_passes_through() {
    let (a, b) = (upstream(status(400)).await, upstream(ok()).await);
    let stack = router_over(&[&a, &b], RETRY).await;
    let answer = ask(&stack).await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(
        (received(&a).await, received(&b).await),
        (1, 0),
        "neither retried nor fallen back"
    );
    let error = &answer.json["error"];
    assert_eq!(error["code"], 400, "{}", answer.text);
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("upstream says 400")),
        "{}",
        answer.text
    );
    assert_eq!(
        error["metadata"]["attempts"].as_array().map(Vec::len),
        Some(1),
        "{}",
        answer.text
    );
    assert_eq!(spent(&stack).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_everything_failed_the_client_learns_what_was_tried() {
    for (a_status, b_status, client_status, kind) in [
        (503, 503, 503, "upstream_error"),
        (503, 500, 502, "upstream_error"),
        (429, 429, 429, "rate_limit_error"),
    ] {
        let case = format!("{a_status} then {b_status}");
        let (a, b) = (upstream(status(a_status)).await, upstream(status(b_status)).await);
        let stack = router_over(&[&a, &b], RETRY).await;
        let answer = ask(&stack).await;
        assert_eq!(answer.status, client_status, "{case}: {}", answer.text);
        assert_eq!((received(&a).await, received(&b).await), (3, 3), "{case}");
        let error = &answer.json["error"];
        assert_eq!(error["code"], client_status, "{case}: {}", answer.text);
        assert_eq!(error["type"], kind, "{case}: {}", answer.text);
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{case}");
        let attempts = error["metadata"]["attempts"]
            .as_array()
            .unwrap_or_else(|| panic!("{case}: {}", answer.text));
        let tried: Vec<(&str, u64, u64)> = attempts
            .iter()
            .map(|a| {
                (
                    a["provider"].as_str().unwrap(),
                    a["attempt"].as_u64().unwrap(),
                    a["status"].as_u64().unwrap(),
                )
            })
            .collect();
        let (a_status, b_status) = (u64::from(a_status), u64::from(b_status));
        assert_eq!(
            tried,
            [
                ("a", 1, a_status),
                ("a", 2, a_status),
                ("a", 3, a_status),
                ("b", 1, b_status),
                ("b", 2, b_status),
                ("b", 3, b_status)
            ],
            "{case}"
        );
        // Full jitter under a doubling ceiling; moving to b does not wait.
        let waited: Vec<u64> = attempts.iter().map(|a| a["waited_ms"].as_u64().unwrap()).collect();
        assert_eq!(
            (waited[0], waited[3]),
            (0, 0),
            "{case}: first attempts wait: {waited:?}"
        );
        for (k, ceiling) in [(1, 20), (2, 40), (4, 20), (5, 40)] {
            assert!(waited[k] <= ceiling, "{case}: waited {waited:?}, ceilings 20, 40 ms");
        }
        if client_status == 429 {
            assert!(
                answer.header("retry-after").is_some(),
                "{case}: a 429 without Retry-After"
            );
        }
        assert_eq!(spent(&stack).await, 0.0, "{case}: charged for a failure");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_upstream_status_gets_its_number_of_attempts() {
    // (status from a, attempts on a, attempts on b (which answers 200), what the client sees)
    let cases = [
        (429, 3, 1, 200),
        (500, 3, 1, 200),
        (502, 3, 1, 200),
        (503, 3, 1, 200),
        (504, 3, 1, 200),
        (529, 3, 1, 200),
        (401, 1, 1, 200),
        (403, 1, 1, 200),
        (404, 1, 1, 200),
        (501, 1, 1, 200),
        (505, 1, 1, 200),
        (400, 1, 0, 400),
        (408, 1, 0, 408),
        (413, 1, 0, 413),
        (422, 1, 0, 422),
    ];
    let runs: Vec<_> = cases
        .into_iter()
        .map(|(code, on_a, on_b, client)| {
            tokio::spawn(async move {
                let (a, b) = (upstream(status(code)).await, upstream(ok()).await);
                let stack = router_over(&[&a, &b], RETRY).await;
                let answer = ask(&stack).await;
                let seen = (received(&a).await, received(&b).await, answer.status.as_u16());
                assert_eq!(seen, (on_a, on_b, client), "upstream {code}: {}", answer.text);
            })
        })
        .collect();
    for run in runs {
        patiently("a status case", run).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_answer_is_retried() {
    let a = MockServer::start().await;
    let garbage = ResponseTemplate::new(200).set_body_raw("{\"id\": \"chatcmpl-", "application/json");
    Mock::given(method("POST"))
        .respond_with(garbage.clone())
        .up_to_n_times(1)
        .mount(&a)
        .await;
    Mock::given(method("POST")).respond_with(ok()).mount(&a).await;
    let stack = router_over(&[&a], RETRY).await;
    let answer = ask(&stack).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(received(&a).await, 2);
    assert_eq!(spent(&stack).await, COST);

    let broken = upstream(garbage).await;
    let stack = router_over(&[&broken], RETRY).await;
    let answer = ask(&stack).await;
    assert_eq!(answer.status, 502, "{}", answer.text);
    assert_eq!(received(&broken).await, 3);
    assert_eq!(spent(&stack).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_upstreams_all_fail_gets_an_error_status_not_a_stream() {
    let a = upstream(status(503)).await;
    let stack = router_over(&[&a], RETRY).await;
    let body = json!({"model": "test/model", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let answer = stack.chat("sk-a", &body).await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.json["error"]["code"], 503, "{}", answer.text);
    assert_eq!(received(&a).await, 3);
}

/// A mock `NAME` (OpenAI dialect) with `faults`, and a router whose model
/// `test/m` is served by the mocks named in `route`, in order.
fn mock_stack(mocks: &[(&str, &str)], route: &[&str], retry: &str) -> String {
    let mut toml = String::new();
    for (name, faults) in mocks {
        toml += &format!(
            "[[providers]]\nname = \"{name}\"\ndialect = \"openai\"\n[providers.defaults]\nttft-ms = 1\nitl-ms = 1\noutput-tokens = 4\n{faults}\n"
        );
    }
    toml += &format!("[router]\n{retry}");
    for (name, _) in mocks {
        toml += &format!(
            "[[router.providers]]\nname = \"{name}\"\ndialect = \"openai\"\nbase-url = \"mock:{name}\"\napi-key = \"sk-up\"\n"
        );
    }
    let route: Vec<String> = route.iter().map(|n| format!("\"{n}\"")).collect();
    toml += &format!(
        "[[router.models]]\nid = \"test/m\"\nproviders = [{}]\nprompt = \"1\"\ncompletion = \"2\"\n",
        route.join(", ")
    );
    toml + "[[router.keys]]\nkey = \"sk-a\"\ncredits = \"100\"\n"
}

fn test_m() -> Value {
    json!({"model": "test/m", "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_keeps_answering_429_cools_down_and_gets_no_traffic() {
    let hot = "[[providers.faults]]\nkind = \"status\"\nstatus = 429\nretry-after-ms = 10\n";
    let retry = format!("{RETRY}cooldown-after = 2\ncooldown-ms = 60000\n");
    let stack = Stack::start(&mock_stack(&[("hot", hot), ("cold", "")], &["hot", "cold"], &retry)).await;
    for i in 0..10 {
        let answer = stack.chat("sk-a", &test_m()).await;
        assert_eq!(answer.status, 200, "request {i}: {}", answer.text);
    }
    patiently("the 429s in the journal", stack.journal("hot").wait_for(2)).await;
    let hot = stack.journal("hot").snapshot();
    assert_eq!(hot.len(), 2, "the cooling provider got traffic: {hot:?}");
    assert!(hot.iter().all(|r| r.status == 429));
    assert_eq!(stack.journal("cold").len(), 10, "the fallback served every request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_storm_is_bounded_by_the_budget() {
    let down = "[[providers.faults]]\nkind = \"status\"\nstatus = 503\n";
    let retry = format!("{RETRY}budget-ratio = 0.1\nbudget-min-retries = 5\n");
    let stack = Arc::new(Stack::start(&mock_stack(&[("down", down)], &["down"], &retry)).await);
    let clients: Vec<_> = (0..100)
        .map(|_| {
            let stack = Arc::clone(&stack);
            tokio::spawn(async move { stack.chat("sk-a", &test_m()).await.status })
        })
        .collect();
    for client in clients {
        assert_eq!(patiently("a client", client).await.unwrap(), 503);
    }
    // Each request made its first attempt, and the floor of 5 retries was
    // surely admitted; ratio 0.1 of 100 requests allows 10 retries in all.
    let journal = stack.journal("down");
    patiently("105 attempts", journal.wait_for(105)).await;
    let attempts = journal.len();
    assert!(
        attempts <= 100 + 10 + 2,
        "{attempts} upstream attempts for 100 requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_bounds_a_request_to_a_hanging_provider() {
    let stuck = "[[providers.faults]]\nkind = \"hang\"\ndelay-ms = 3000\n";
    // Ten attempts of 100 ms would outlast the deadline: it is what stops them.
    let retry = "[router.retry]\nbase-ms = 20\ncap-ms = 200\nattempts-per-provider = 10\nfirst-byte-timeout-ms = 100\ndeadline-ms = 500\n";
    let stack = Stack::start(&mock_stack(&[("stuck", stuck)], &["stuck"], retry)).await;
    let started = Instant::now();
    let answer = stack.chat("sk-a", &test_m()).await;
    let took = started.elapsed();
    assert_eq!(answer.status, 504, "{}", answer.text);
    assert!(
        took < Duration::from_millis(2500),
        "answered after {took:?}; the hang lasts 3 s"
    );
    let attempts = answer.json["error"]["metadata"]["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", answer.text));
    // Each attempt waited its 100 ms for a first byte, and the third one
    // always starts well before the deadline.
    assert!(attempts.len() >= 3, "{}", answer.text);
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(
        attempts.iter().all(|a| a["error"] == "no first byte in time"),
        "{}",
        answer.text
    );
    assert_eq!(spent(&stack).await, 0.0);
}
