//! A mock-plus-router stack on loopback and an HTTP client for it.
//!
//! A test writes one TOML text with `[[providers]]` (the mocks, on
//! `127.0.0.1:0`) and a `[router]` table whose providers say
//! `base-url = "mock:NAME"`; [`Stack::start`] serves the mocks, points the
//! router at them, and serves the router.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mock_providers::config::{RawProvidersFile, parse_toml, validate_providers};
use mock_providers::{Journal, MockSet};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use gauntlet::router::config::RawRouterFile;
use gauntlet::router::{Connector, Router, serve};

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Mocks and a router, served on loopback; stopped on drop.
pub struct Stack {
    pub mocks: MockSet,
    pub router: Router,
    pub addr: SocketAddr,
    pub client: HttpClient,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Stack {
    /// Serves the mocks and the router that `toml` describes.
    pub async fn start(toml: &str) -> Stack {
        Self::start_with(toml, |_| {}).await
    }

    /// [`Stack::start`], with `adjust` applied to the validated router config
    /// before the router starts (to turn on defects, for one).
    pub async fn start_with(toml: &str, adjust: impl FnOnce(&mut gauntlet::router::config::RouterConfig)) -> Stack {
        let providers: RawProvidersFile = parse_toml(toml).expect("providers parse");
        let mocks = MockSet::spawn(validate_providers(&providers.providers).expect("providers validate"))
            .await
            .expect("mocks start");
        let mut file: RawRouterFile = parse_toml(toml).expect("router parses");
        let mut raw = file.router.take().expect("a [router] table");
        for p in &mut raw.providers {
            if let Some(name) = p.base_url.strip_prefix("mock:") {
                p.base_url = mocks.get(name).unwrap_or_else(|| panic!("no mock `{name}`")).base_url();
            }
        }
        let mut config = raw.validate("router").expect("router validates");
        config.listen = "127.0.0.1:0".parse().unwrap();
        adjust(&mut config);
        Self::serve(mocks, config, Connector::tcp()).await
    }

    /// Serves a router built from `config` in front of `mocks`.
    pub async fn serve(mocks: MockSet, config: gauntlet::router::config::RouterConfig, connector: Connector) -> Stack {
        let router = Router::new(config, connector).await.expect("router starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, router.clone(), async move {
            let _ = stopped.await;
        }));
        Stack {
            mocks,
            router,
            addr,
            client: client(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn journal(&self, provider: &str) -> &Journal {
        self.mocks
            .get(provider)
            .unwrap_or_else(|| panic!("no mock `{provider}`"))
            .journal()
    }

    /// POSTs a chat completion (not streamed) and reads the whole answer.
    pub async fn chat(&self, key: &str, body: &Value) -> Answer {
        self.send("POST", "/api/v1/chat/completions", Some(key), Some(body), &[])
            .await
    }

    /// A request with any method, path, key, JSON body and extra headers.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        self.send_raw(method, path, key, bytes, headers).await
    }

    /// Like [`Stack::send`] with a raw body.
    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(self.url(path))
            .header("content-type", "application/json");
        if let Some(key) = key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let response = self
            .client
            .request(req.body(Full::new(body)).unwrap())
            .await
            .expect("the router answers");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("the whole body").to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status: parts.status,
            headers: parts.headers,
            json,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// POSTs a streaming chat completion and reads every SSE item with its
    /// arrival time.
    pub async fn stream(&self, key: &str, body: &Value) -> Streamed {
        let req = Request::post(self.url("/api/v1/chat/completions"))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let sent = Instant::now();
        let response = self.client.request(req).await.expect("the router answers");
        let (parts, body) = response.into_parts();
        read_sse(sent, parts.status, parts.headers, body).await
    }

    /// `GET /api/v1/key` for `key`: the `data` object.
    pub async fn key_info(&self, key: &str) -> Value {
        let answer = self.send("GET", "/api/v1/key", Some(key), None, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        answer.json["data"].clone()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A pooled keep-alive client.
pub fn client() -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(http)
}

/// A whole answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A streamed answer: each `data:` chunk (parsed) and comment with its arrival time.
#[derive(Debug)]
pub struct Streamed {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub sent: Instant,
    pub chunks: Vec<(Instant, Value)>,
    pub comments: Vec<(Instant, String)>,
    pub done: bool,
    pub broken: bool,
    pub leftover: String,
}

impl Default for Streamed {
    fn default() -> Self {
        Streamed {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            sent: Instant::now(),
            chunks: Vec::new(),
            comments: Vec::new(),
            done: false,
            broken: false,
            leftover: String::new(),
        }
    }
}

impl Streamed {
    /// The concatenated `delta.content` of every chunk.
    pub fn text(&self) -> String {
        self.chunks
            .iter()
            .filter_map(|(_, c)| c["choices"][0]["delta"]["content"].as_str())
            .collect()
    }

    /// The chunks with `choices: []` (usage chunks).
    pub fn usage_chunks(&self) -> Vec<&Value> {
        self.chunks
            .iter()
            .map(|(_, c)| c)
            .filter(|c| c["choices"].as_array().is_some_and(Vec::is_empty))
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Exact money, raw streams and journal look-ups (billing, ledger, limits,
// lifecycle and api tests).

/// The raw JSON text found at `path` (object fields, or array indices) in the
/// JSON document `text`: the exact digits of a number such as `usage.cost`,
/// never read through `f64`.
pub fn raw_json_at(text: &str, path: &[&str]) -> Option<String> {
    let mut current: Box<serde_json::value::RawValue> = serde_json::from_str(text).ok()?;
    for field in path {
        current = match field.parse::<usize>() {
            Ok(index) => {
                let mut array: Vec<Box<serde_json::value::RawValue>> = serde_json::from_str(current.get()).ok()?;
                (index < array.len()).then(|| array.swap_remove(index))?
            }
            Err(_) => {
                let mut object: std::collections::HashMap<String, Box<serde_json::value::RawValue>> =
                    serde_json::from_str(current.get()).ok()?;
                object.remove(*field)?
            }
        };
    }
    Some(current.get().to_string())
}

/// Picodollars of a USD decimal written by the router (`0.000288` → 288,000,000).
pub fn picos(usd: &str) -> i64 {
    gauntlet::router::pricing::Picodollars::from_usd_decimal(usd)
        .unwrap_or_else(|e| panic!("`{usd}` is not an exact USD decimal: {e}"))
        .0
}

/// Picodollars of the USD number at `path` in the JSON document `text`.
pub fn picos_at(text: &str, path: &[&str]) -> i64 {
    let raw = raw_json_at(text, path).unwrap_or_else(|| panic!("no {} in {text}", path.join(".")));
    picos(&raw)
}

/// Prices in picodollars per token (USD per million × 10^6).
#[derive(Debug, Clone, Copy)]
pub struct Price {
    pub prompt: i64,
    pub completion: i64,
    pub cache_read: i64,
    pub cache_write: i64,
}

impl Price {
    /// The cost of what a mock reported: its `prompt_tokens` count every
    /// prompt token, cached or not; reasoning is inside `completion_tokens`.
    pub fn cost(&self, usage: &mock_providers::Usage) -> i64 {
        if usage.completion_tokens == 0 {
            return 0;
        }
        let uncached = i64::from(usage.prompt_tokens - usage.cache_read_tokens - usage.cache_write_tokens);
        uncached * self.prompt
            + i64::from(usage.cache_read_tokens) * self.cache_read
            + i64::from(usage.cache_write_tokens) * self.cache_write
            + i64::from(usage.completion_tokens) * self.completion
    }
}

/// The journal record of the attempt that served the request sent with
/// `x-gauntlet-request-id: id` (the last one with that id), waiting (at most
/// five seconds) for the mock to write it.
pub async fn served_record(journal: &Journal, id: &str) -> mock_providers::Record {
    records_for(journal, id, 1).await.pop().unwrap()
}

/// The journal records with correlation id `id`, once there are at least `n`
/// (waiting at most five seconds).
pub async fn records_for(journal: &Journal, id: &str, n: usize) -> Vec<mock_providers::Record> {
    loop {
        let records = journal.snapshot();
        let mine: Vec<_> = records
            .iter()
            .filter(|r| r.correlation_id.as_deref() == Some(id))
            .cloned()
            .collect();
        if mine.len() >= n {
            return mine;
        }
        tokio::time::timeout(Duration::from_secs(5), journal.wait_for(records.len() + 1))
            .await
            .unwrap_or_else(|_| panic!("fewer than {n} journal records for `{id}`: {mine:?}"));
    }
}

/// A streamed answer kept as text: each `data:` payload as it came.
#[derive(Debug)]
pub struct RawStream {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub data: Vec<String>,
    pub done: bool,
    pub broken: bool,
}

impl RawStream {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The payloads of the `choices: []` chunks (the usage chunks).
    pub fn usage_data(&self) -> Vec<&str> {
        self.data
            .iter()
            .filter(|d| {
                serde_json::from_str::<Value>(d)
                    .ok()
                    .is_some_and(|c| c["choices"].as_array().is_some_and(Vec::is_empty))
            })
            .map(String::as_str)
            .collect()
    }

    /// The one usage chunk, parsed.
    pub fn usage_chunk(&self) -> Value {
        let usage = self.usage_data();
        assert_eq!(usage.len(), 1, "exactly one usage chunk: {self:?}");
        serde_json::from_str(usage[0]).unwrap()
    }

    /// The exact `usage.cost` of the one usage chunk, in picodollars.
    pub fn cost(&self) -> i64 {
        let usage = self.usage_data();
        assert_eq!(usage.len(), 1, "exactly one usage chunk: {self:?}");
        picos_at(usage[0], &["usage", "cost"])
    }
}

/// Reads an SSE body to its end, keeping each `data:` payload as text.
pub async fn read_raw_stream(response: http::Response<hyper::body::Incoming>) -> RawStream {
    let (parts, mut body) = response.into_parts();
    let mut out = RawStream {
        status: parts.status,
        headers: parts.headers,
        data: Vec::new(),
        done: false,
        broken: false,
    };
    let mut buffer = String::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            out.broken = true;
            break;
        };
        let Ok(data) = frame.into_data() else { continue };
        buffer.push_str(&String::from_utf8_lossy(&data));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            for line in block.lines() {
                if let Some(data) = line.strip_prefix("data:") {
                    let data = data.trim_start();
                    if data == "[DONE]" {
                        out.done = true;
                    } else {
                        out.data.push(data.to_string());
                    }
                }
            }
        }
    }
    out
}

impl Stack {
    /// POSTs a chat completion with extra headers and returns as soon as the
    /// head arrives, leaving the body (a stream, or a whole answer) to read.
    pub async fn open(
        &self,
        key: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> http::Response<hyper::body::Incoming> {
        let mut req = Request::post(self.url("/api/v1/chat/completions"))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.client
            .request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap())
            .await
            .expect("the router answers")
    }

    /// A streamed chat completion with extra headers, read whole as text.
    pub async fn stream_raw(&self, key: &str, body: &Value, headers: &[(&str, &str)]) -> RawStream {
        read_raw_stream(self.open(key, body, headers).await).await
    }

    /// `GET /api/v1/generation?id=` as `key`.
    pub async fn generation(&self, key: &str, id: &str) -> Answer {
        self.send("GET", &format!("/api/v1/generation?id={id}"), Some(key), None, &[])
            .await
    }

    /// `GET /api/v1/key` as `key`, read as raw text: (credits, spent, available) in picodollars.
    pub async fn money(&self, key: &str) -> (i64, i64, i64) {
        let answer = self.send("GET", "/api/v1/key", Some(key), None, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        (
            picos_at(&answer.text, &["data", "limit"]),
            picos_at(&answer.text, &["data", "usage"]),
            picos_at(&answer.text, &["data", "limit_remaining"]),
        )
    }
}

/// Asserts an OpenAI-shaped error body: `error.code` is the status, with a
/// string `type` and a non-empty `message`. Returns the `error` object.
pub fn assert_error_shape(status: StatusCode, json: &Value, text: &str) -> Value {
    let error = &json["error"];
    assert_eq!(
        error["code"].as_u64(),
        Some(u64::from(status.as_u16())),
        "error.code is the status: {text}"
    );
    assert!(
        error["type"].as_str().is_some_and(|t| !t.is_empty()),
        "error.type: {text}"
    );
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error.message: {text}"
    );
    error.clone()
}

/// How long any single wait in a test may take before the test fails
/// instead of hanging the binary.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// Awaits `fut`, failing the test if it takes longer than [`PATIENCE`].
pub async fn patiently<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {PATIENCE:?} waiting for {what}"),
    }
}

/// Reads an SSE body (from a socket or straight from [`Router::handle`])
/// into a [`Streamed`], timestamping each item as it arrives.
pub async fn read_sse<B>(sent: Instant, status: StatusCode, headers: HeaderMap, mut body: B) -> Streamed
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let mut streamed = Streamed {
        status,
        headers,
        sent,
        ..Streamed::default()
    };
    let mut buffer = String::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            streamed.broken = true;
            break;
        };
        let Ok(data) = frame.into_data() else { continue };
        let at = Instant::now();
        buffer.push_str(&String::from_utf8_lossy(&data));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            for line in block.lines() {
                if let Some(comment) = line.strip_prefix(':') {
                    streamed.comments.push((at, comment.trim().to_string()));
                } else if let Some(data) = line.strip_prefix("data:") {
                    let data = data.trim_start();
                    if data == "[DONE]" {
                        streamed.done = true;
                    } else {
                        streamed
                            .chunks
                            .push((at, serde_json::from_str(data).unwrap_or(Value::Null)));
                    }
                }
            }
        }
    }
    if !buffer.trim().is_empty() {
        streamed.leftover = buffer;
    }
    streamed
}

impl Stack {
    /// Like [`Stack::stream`], with extra request headers (such as
    /// `x-gauntlet-request-id`, which the mocks seed their answers by).
    pub async fn stream_with_headers(&self, key: &str, body: &Value, headers: &[(&str, &str)]) -> Streamed {
        let mut req = Request::post(self.url("/api/v1/chat/completions"))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let sent = Instant::now();
        let response = self
            .client
            .request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap())
            .await
            .expect("the router answers");
        let (parts, body) = response.into_parts();
        read_sse(sent, parts.status, parts.headers, body).await
    }

    /// A router configured by the `[router]` table of `toml`, whose
    /// base-urls are used as written (real `http://` URLs, such as a
    /// wiremock server's), served on loopback in front of `mocks`.
    pub async fn serve_router_toml(mocks: MockSet, toml: &str) -> Stack {
        let file: RawRouterFile = parse_toml(toml).expect("router parses");
        let mut config = file
            .router
            .expect("a [router] table")
            .validate("router")
            .expect("router validates");
        config.listen = "127.0.0.1:0".parse().unwrap();
        Self::serve(mocks, config, Connector::tcp()).await
    }
}
