//! A whole chat completion through the reference router in-process:
//! `Router::handle` on an in-memory ledger, its upstream leg through the mock
//! providers' in-process connector (real HTTP/1.1 framing over in-memory
//! pipes, no sockets), on a current-thread tokio runtime.
//!
//! Everything runs on the bench thread, so the thread's CPU time per request
//! is the CPU cost of the request — the router's *and* the mock's. To split
//! them, the same requests are also sent straight to the mock through a
//! hyper-util client on the same connector (`mock_alone_*`): the router's
//! share is `whole − mock_alone`, and that share then excludes the router's
//! upstream HTTP client leg, which the mock-alone figure contains too.
//!
//! Groups: `wall` (criterion's wall-clock time: noisy on a loaded machine)
//! and `cpu` (the same cases measured in the bench thread's CPU time, from
//! `CLOCK_THREAD_CPUTIME_ID`: what the 10 µs per request goal is about).
//! Cases: `whole_openai` and `whole_anthropic` (not streamed, 16 completion
//! tokens), `stream_openai_100` (100 tokens, the router's SSE collected to
//! `[DONE]`), and the mock alone for the OpenAI ones. The Messages API side
//! by side: `messages_anthropic` (passed through to the Anthropic mock),
//! `messages_openai` (translated both ways) and `messages_stream_openai_100`
//! (the OpenAI chunks as Anthropic events, to `message_stop`). The runtime, the mocks
//! (zero delays) and the router are built outside the timed loop; the
//! request value is built in it (a `Bytes` clone and two headers). Before
//! timing, each case is checked once, and so is connection reuse (the
//! counts are printed after each group).
//!
//! Run with `cargo bench --bench request`. For instruction counts, run the
//! bench binary under `valgrind --tool=callgrind` with `--bench
//! --profile-time 3 'wall/whole_openai$'`: only the `wall` group, as the CPU
//! clock's vDSO lookup does not run under valgrind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use criterion::measurement::Measurement;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mock_providers::config::{RawProvidersFile, parse_toml, validate_providers};
use mock_providers::{InProcessConnector, MockSet};
use tokio::runtime::Runtime;

use gauntlet::router::config::RawRouterFile;
use gauntlet::router::{Connector, Router};

mod support;
use support::ThreadCpu;

/// Two mocks with no delays and a router in front, one key with plenty of
/// credits and no limits. `gpt-4o-mini` answers 16 tokens, `-long` 100.
const STACK: &str = r#"
[[providers]]
name = "oai"
dialect = "openai"
[providers.defaults]
ttft-ms = 0
itl-ms = 0
output-tokens = 16
[[providers.models]]
id = "gpt-4o-mini"
[[providers.models]]
id = "gpt-4o-mini-long"
output-tokens = 100

[[providers]]
name = "ant"
dialect = "anthropic"
[providers.defaults]
ttft-ms = 0
itl-ms = 0
output-tokens = 16

[router]

[[router.providers]]
name = "oai"
dialect = "openai"
base-url = "mock:oai"
api-key = "sk-up-oai"

[[router.providers]]
name = "ant"
dialect = "anthropic"
base-url = "mock:ant"
api-key = "sk-up-ant"

[[router.models]]
id = "openai/gpt-4o-mini"
providers = ["oai"]
prompt = "0.15"
completion = "0.60"

[[router.models]]
id = "openai/gpt-4o-mini-long"
providers = ["oai"]
prompt = "0.15"
completion = "0.60"

[[router.models]]
id = "anthropic/claude-sonnet-4"
providers = ["ant"]
prompt = "3"
completion = "15"

[[router.keys]]
key = "sk-bench"
credits = "1000000"
"#;

const KEY: &str = "Bearer sk-bench";

/// A small chat request: a system prompt and one user turn.
fn chat_body(model: &str, stream: bool) -> Bytes {
    let body = serde_json::json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
            {"role": "user", "content": "What is the capital of France?"}
        ],
        "max_tokens": 256,
        "stream": stream,
    });
    Bytes::from(body.to_string())
}

/// The same request in the Messages API.
fn messages_body(model: &str, stream: bool) -> Bytes {
    let body = serde_json::json!({
        "model": model,
        "system": "You are a helpful assistant. Answer briefly.",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 256,
        "stream": stream,
    });
    Bytes::from(body.to_string())
}

/// What the router sends the OpenAI mock for `chat_body("openai/gpt-4o-mini", stream)`.
fn upstream_body(model: &str, stream: bool) -> Bytes {
    let mut body = serde_json::json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
            {"role": "user", "content": "What is the capital of France?"}
        ],
        "max_tokens": 256,
        "stream": stream,
    });
    if stream {
        body["stream_options"] = serde_json::json!({"include_usage": true});
    }
    Bytes::from(body.to_string())
}

/// The mocks, the router on them, and a client straight to the mocks.
struct Stack {
    mocks: MockSet,
    router: Router,
    direct: Client<Counted, Full<Bytes>>,
    /// Connections opened by the router and by `direct`.
    router_connects: Arc<AtomicUsize>,
    direct_connects: Arc<AtomicUsize>,
}

/// The mocks' in-process connector, counting the connections it opens (a
/// pooled client opens one and keeps it).
#[derive(Clone)]
struct Counted {
    inner: InProcessConnector,
    connects: Arc<AtomicUsize>,
}

impl tower_service::Service<Uri> for Counted {
    type Response = <InProcessConnector as tower_service::Service<Uri>>::Response;
    type Error = <InProcessConnector as tower_service::Service<Uri>>::Error;
    type Future = <InProcessConnector as tower_service::Service<Uri>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        self.connects.fetch_add(1, Ordering::Relaxed);
        self.inner.call(uri)
    }
}

impl Stack {
    fn start(runtime: &Runtime) -> Stack {
        runtime.block_on(async {
            let providers: RawProvidersFile = parse_toml(STACK).expect("providers parse");
            let mocks = MockSet::spawn(validate_providers(&providers.providers).expect("providers validate"))
                .await
                .expect("mocks start");
            let mut file: RawRouterFile = parse_toml(STACK).expect("router parses");
            let mut raw = file.router.take().expect("a [router] table");
            for p in &mut raw.providers {
                if let Some(name) = p.base_url.strip_prefix("mock:") {
                    p.base_url = mocks.get(name).expect("a mock").base_url();
                }
            }
            let config = raw.validate("router").expect("router validates");
            let counted = |connects: &Arc<AtomicUsize>| Counted {
                inner: mocks.connector(),
                connects: Arc::clone(connects),
            };
            let router_connects = Arc::new(AtomicUsize::new(0));
            let direct_connects = Arc::new(AtomicUsize::new(0));
            let router = Router::new(config, Connector::from_service(counted(&router_connects)))
                .await
                .expect("router starts");
            let direct = Client::builder(TokioExecutor::new()).build(counted(&direct_connects));
            Stack {
                mocks,
                router,
                direct,
                router_connects,
                direct_connects,
            }
        })
    }

    fn mock_url(&self, name: &str) -> String {
        format!(
            "{}/v1/chat/completions",
            self.mocks.get(name).expect("a mock").base_url()
        )
    }
}

/// One request through `Router::handle`, its body read to the end.
async fn through_router(router: &Router, body: &Bytes) -> (StatusCode, Bytes) {
    through_route(router, "/api/v1/chat/completions", body).await
}

/// One request to `path` through `Router::handle`, its body read to the end.
async fn through_route(router: &Router, path: &str, body: &Bytes) -> (StatusCode, Bytes) {
    let req = Request::post(path)
        .header("authorization", KEY)
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))
        .expect("a request");
    let response = router.handle(req).await;
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("infallible").to_bytes();
    (status, bytes)
}

/// One request straight to a mock, its body read to the end.
async fn to_mock(client: &Client<Counted, Full<Bytes>>, url: &str, body: &Bytes) -> (StatusCode, Bytes) {
    let req = Request::post(url)
        .header("authorization", "Bearer sk-up-oai")
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))
        .expect("a request");
    let response = client.request(req).await.expect("the mock answers");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("the whole body").to_bytes();
    (status, bytes)
}

/// Checks, outside any timing, that each case answers what it should and
/// that the clients keep their connections (a bench of reconnections would
/// measure something else).
fn check(runtime: &Runtime, stack: &Stack) {
    runtime.block_on(async {
        for _ in 0..10 {
            for (model, stream) in [
                ("openai/gpt-4o-mini", false),
                ("anthropic/claude-sonnet-4", false),
                ("openai/gpt-4o-mini-long", true),
            ] {
                let (status, bytes) = through_router(&stack.router, &chat_body(model, stream)).await;
                let text = String::from_utf8_lossy(&bytes);
                assert_eq!(status, StatusCode::OK, "{model}: {text}");
                assert!(text.contains("\"cost\""), "{model}: no cost in {text}");
                if stream {
                    assert!(text.ends_with("data: [DONE]\n\n"), "{model}: {text}");
                    assert_eq!(
                        text.matches("\"content\":").count(),
                        101,
                        "{model}: a role chunk and 100 tokens"
                    );
                }
            }
            for (model, stream) in [
                ("anthropic/claude-sonnet-4", false),
                ("openai/gpt-4o-mini", false),
                ("openai/gpt-4o-mini-long", true),
            ] {
                let (status, bytes) = through_route(&stack.router, "/v1/messages", &messages_body(model, stream)).await;
                let text = String::from_utf8_lossy(&bytes);
                assert_eq!(status, StatusCode::OK, "{model}: {text}");
                if stream {
                    assert!(
                        text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
                        "{model}: {text}"
                    );
                    assert_eq!(text.matches("\"text_delta\"").count(), 100, "{model}: 100 tokens");
                } else {
                    assert!(text.contains("\"type\":\"message\""), "{model}: {text}");
                    assert!(text.contains("\"output_tokens\":16"), "{model}: {text}");
                }
            }
            for (model, stream) in [("gpt-4o-mini", false), ("gpt-4o-mini-long", true)] {
                let (status, bytes) =
                    to_mock(&stack.direct, &stack.mock_url("oai"), &upstream_body(model, stream)).await;
                assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
            }
        }
    });
    report_connections(stack);
}

fn report_connections(stack: &Stack) {
    let router = stack.router_connects.load(Ordering::Relaxed);
    let direct = stack.direct_connects.load(Ordering::Relaxed);
    eprintln!("connections opened so far: by the router {router}, straight to the mock {direct}");
}

/// The cases, measured with `M` (wall time or thread CPU time).
fn cases<M: Measurement>(group: &mut BenchmarkGroup<'_, M>, runtime: &Runtime, stack: &Stack) {
    group.throughput(Throughput::Elements(1));
    let whole_openai = chat_body("openai/gpt-4o-mini", false);
    let whole_anthropic = chat_body("anthropic/claude-sonnet-4", false);
    let stream_openai = chat_body("openai/gpt-4o-mini-long", true);
    let messages_anthropic = messages_body("anthropic/claude-sonnet-4", false);
    let messages_openai = messages_body("openai/gpt-4o-mini", false);
    let messages_stream_openai = messages_body("openai/gpt-4o-mini-long", true);
    let mock_whole = upstream_body("gpt-4o-mini", false);
    let mock_stream = upstream_body("gpt-4o-mini-long", true);
    let url = stack.mock_url("oai");
    let router = &stack.router;
    let direct = &stack.direct;

    group.bench_function("whole_openai", |b| {
        b.to_async(runtime)
            .iter(|| async { black_box(through_router(router, &whole_openai).await) })
    });
    group.bench_function("mock_alone_whole_openai", |b| {
        b.to_async(runtime)
            .iter(|| async { black_box(to_mock(direct, &url, &mock_whole).await) })
    });
    group.bench_function("whole_anthropic", |b| {
        b.to_async(runtime)
            .iter(|| async { black_box(through_router(router, &whole_anthropic).await) })
    });
    group.bench_function("stream_openai_100", |b| {
        b.to_async(runtime)
            .iter(|| async { black_box(through_router(router, &stream_openai).await) })
    });
    group.bench_function("mock_alone_stream_openai_100", |b| {
        b.to_async(runtime)
            .iter(|| async { black_box(to_mock(direct, &url, &mock_stream).await) })
    });
    group.bench_function("messages_anthropic", |b| {
        b.to_async(runtime)
            .iter(|| async { black_box(through_route(router, "/v1/messages", &messages_anthropic).await) })
    });
    group.bench_function("messages_openai", |b| {
        b.to_async(runtime)
            .iter(|| async { black_box(through_route(router, "/v1/messages", &messages_openai).await) })
    });
    group.bench_function("messages_stream_openai_100", |b| {
        b.to_async(runtime)
            .iter(|| async { black_box(through_route(router, "/v1/messages", &messages_stream_openai).await) })
    });
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn wall(c: &mut Criterion) {
    let runtime = runtime();
    let stack = Stack::start(&runtime);
    check(&runtime, &stack);
    let mut group = c.benchmark_group("wall");
    cases(&mut group, &runtime, &stack);
    group.finish();
    report_connections(&stack);
}

fn cpu(c: &mut Criterion<ThreadCpu>) {
    let runtime = runtime();
    let stack = Stack::start(&runtime);
    check(&runtime, &stack);
    let mut group = c.benchmark_group("cpu");
    cases(&mut group, &runtime, &stack);
    group.finish();
    report_connections(&stack);
}

criterion_group!(wall_time, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = cpu
}
criterion_main!(wall_time, cpu_time);
