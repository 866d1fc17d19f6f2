//! Shared helpers: spawning providers on loopback from TOML text, a real
//! HTTP client (hyper-util's legacy `Client`), a raw TCP client for faults
//! that break the connection, and a spec-following SSE parser.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;
use mock_providers::config::{RawProvidersFile, parse_toml, validate_providers};
use mock_providers::{Journal, MockSet, ProviderConfig, Record, RunningProvider};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long any single wait in a test may take before the test fails
/// (instead of hanging the binary).
pub const PATIENCE: Duration = Duration::from_secs(15);

/// Awaits `fut`, failing the test if it takes longer than [`PATIENCE`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Parses and validates `[[providers]]` tables from TOML text.
pub fn configs(toml: &str) -> Vec<ProviderConfig> {
    let raw: RawProvidersFile = parse_toml(toml).unwrap_or_else(|e| panic!("bad test TOML: {e}\n{toml}"));
    validate_providers(&raw.providers).unwrap_or_else(|e| panic!("invalid test config: {e}\n{toml}"))
}

/// Providers served on loopback (every test config leaves `listen` at
/// its default `127.0.0.1:0`).
pub struct Mock {
    pub set: MockSet,
}

impl Mock {
    pub async fn start(toml: &str) -> Mock {
        let set = MockSet::spawn(configs(toml)).await.expect("spawn the mock providers");
        for p in set.providers() {
            assert!(p.addr.ip().is_loopback(), "bound to {}", p.addr);
            assert_ne!(p.addr.port(), 0, "the bound port is read back");
        }
        Mock { set }
    }

    /// The first provider of the file.
    pub fn first(&self) -> &RunningProvider {
        &self.set.providers()[0]
    }

    pub fn named(&self, name: &str) -> &RunningProvider {
        self.set.get(name).unwrap_or_else(|| panic!("no provider `{name}`"))
    }

    pub fn addr(&self) -> SocketAddr {
        self.first().addr
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.first().base_url())
    }

    pub fn journal(&self) -> &Journal {
        self.first().journal()
    }

    /// Waits until the first provider's journal holds `n` records and returns them.
    pub async fn records(&self, n: usize) -> Vec<Record> {
        within(&format!("{n} journal records"), self.journal().wait_for(n)).await;
        self.journal().snapshot()
    }
}

/// Microseconds since the Unix epoch, by the test's own clock.
pub fn unix_us() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_micros(),
    )
    .expect("fits in u64")
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the response head arrived.
    pub head_at: Instant,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).expect("body is UTF-8")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("header is text"))
    }
}

pub fn request(method: Method, url: &str, headers: &[(&str, &str)], body: Option<String>) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(url);
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("a valid request")
}

/// Sends a request and reads the whole response.
pub async fn call<C>(
    client: &Client<C, Full<Bytes>>,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Reply
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let response = within("a response", client.request(request(method, url, headers, body)))
        .await
        .unwrap_or_else(|e| panic!("request to {url} failed: {e:?}"));
    let head_at = Instant::now();
    let (parts, body) = response.into_parts();
    let body = within("a response body", body.collect())
        .await
        .expect("a complete body")
        .to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
        head_at,
    }
}

/// POSTs a JSON value and reads the whole response.
pub async fn post<C>(client: &Client<C, Full<Bytes>>, url: &str, headers: &[(&str, &str)], body: &Value) -> Reply
where
    C: Connect + Clone + Send + Sync + 'static,
{
    call(client, Method::POST, url, headers, Some(body.to_string())).await
}

pub async fn get(client: &HttpClient, url: &str) -> Reply {
    call(client, Method::GET, url, &[], None).await
}

/// An SSE event with the time it was complete at the client.
#[derive(Debug, Clone)]
pub struct Timed {
    pub at: Instant,
    pub event: SseEvent,
}

/// A streamed response, read to its end.
#[derive(Debug)]
pub struct Streamed {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub sent: Instant,
    pub head_at: Instant,
    pub events: Vec<Timed>,
    /// The body ended with an error instead of its proper end.
    pub error: Option<String>,
}

impl Streamed {
    pub fn events(&self) -> Vec<SseEvent> {
        self.events.iter().map(|t| t.event.clone()).collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("header is text"))
    }
}

/// POSTs a JSON value and reads the SSE body event by event, timing each.
pub async fn stream<C>(client: &Client<C, Full<Bytes>>, url: &str, headers: &[(&str, &str)], body: &Value) -> Streamed
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let sent = Instant::now();
    let response = within(
        "a response head",
        client.request(request(Method::POST, url, headers, Some(body.to_string()))),
    )
    .await
    .unwrap_or_else(|e| panic!("request to {url} failed: {e:?}"));
    let head_at = Instant::now();
    let (parts, mut body) = response.into_parts();
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    let mut error = None;
    loop {
        match within("the next body frame", body.frame()).await {
            None => break,
            Some(Err(e)) => {
                error = Some(format!("{e:?}"));
                break;
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let at = Instant::now();
                    events.extend(parser.feed(&data).into_iter().map(|event| Timed { at, event }));
                }
            }
        }
    }
    Streamed {
        status: parts.status,
        headers: parts.headers,
        sent,
        head_at,
        events,
        error,
    }
}

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type (`message` unless an `event:` field named one).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

impl SseEvent {
    /// The data as JSON, or `None` when it is not valid JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.data).ok()
    }

    pub fn is_done(&self) -> bool {
        self.data == "[DONE]"
    }
}

/// An incremental SSE parser following the WHATWG "event stream
/// interpretation": lines end with CRLF, LF or CR; a blank line dispatches;
/// `:` starts a comment; one space after the field's colon is dropped; data
/// lines are joined with LF; an event with no data is not dispatched; an
/// unfinished event at the end of the stream is discarded.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    after_cr: bool,
    started: bool,
    event: String,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// Feeds bytes; returns the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(&mut out),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut out);
                }
                _ => self.line.push(b),
            }
        }
        out
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let mut bytes = std::mem::take(&mut self.line);
        if !self.started {
            self.started = true;
            if bytes.starts_with("\u{feff}".as_bytes()) {
                bytes.drain(..3);
            }
        }
        let line = String::from_utf8(bytes).expect("an SSE line is UTF-8");
        if line.is_empty() {
            if self.has_data {
                let mut data = std::mem::take(&mut self.data);
                data.pop(); // the LF after the last data line
                let event = std::mem::take(&mut self.event);
                out.push(SseEvent {
                    event: if event.is_empty() { "message".to_string() } else { event },
                    data,
                });
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            _ => {} // id, retry and unknown fields do not matter here
        }
    }
}

/// Parses a whole SSE text.
pub fn parse_sse(bytes: &[u8]) -> Vec<SseEvent> {
    SseParser::default().feed(bytes)
}

/// How a raw TCP exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawEnd {
    /// The peer closed the connection in order (FIN).
    Eof,
    /// The peer reset the connection (RST).
    Reset,
    Other(std::io::ErrorKind),
}

/// What a raw HTTP/1.1 exchange saw on the socket.
#[derive(Debug)]
pub struct RawExchange {
    pub bytes: Vec<u8>,
    pub end: RawEnd,
    pub sent: Instant,
    pub ended: Instant,
}

/// A parsed raw response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The de-chunked body as far as it got.
    pub body: Vec<u8>,
    /// The chunked body ended with its terminating zero-size chunk.
    pub complete: bool,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

impl RawExchange {
    pub fn response(&self) -> RawResponse {
        self.try_response()
            .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(&self.bytes)))
    }

    /// The response, or `None` when no complete head arrived.
    pub fn try_response(&self) -> Option<RawResponse> {
        let split = self.bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&self.bytes[..split]).expect("head is text");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("a status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let rest = &self.bytes[split + 4..];
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        let (body, complete) = if chunked {
            dechunk(rest)
        } else {
            let length: Option<usize> = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok());
            (rest.to_vec(), length.is_none_or(|l| l == rest.len()))
        };
        Some(RawResponse {
            status,
            headers,
            body,
            complete,
        })
    }
}

/// Decodes a chunked body: the data, and whether the zero-size last chunk
/// (and the blank line after it) arrived.
pub fn dechunk(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size_text = std::str::from_utf8(&rest[..eol]).expect("chunk size is text");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size_text:?}"));
        rest = &rest[eol + 2..];
        if size == 0 {
            return (out, rest.starts_with(b"\r\n"));
        }
        if rest.len() < size + 2 {
            out.extend_from_slice(&rest[..rest.len().min(size)]);
            return (out, false);
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Writes one HTTP/1.1 POST by hand (`connection: close`) and reads until
/// the server closes or resets the connection.
pub async fn raw_post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &Value) -> RawExchange {
    let body = body.to_string();
    let mut text = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(&body);

    let mut socket = within("a TCP connection", TcpStream::connect(addr))
        .await
        .expect("connect to the mock");
    let sent = Instant::now();
    socket.write_all(text.as_bytes()).await.expect("write the request");
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    let end = loop {
        match within("the server to answer or close", socket.read(&mut buf)).await {
            Ok(0) => break RawEnd::Eof,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break RawEnd::Reset,
            Err(e) => break RawEnd::Other(e.kind()),
        }
    };
    RawExchange {
        bytes,
        end,
        sent,
        ended: Instant::now(),
    }
}

/// The text of an OpenAI content chunk (`choices[0].delta.content`, when a
/// string and not the role chunk's empty opening).
pub fn openai_content(chunk: &Value) -> Option<String> {
    let delta = chunk.get("choices")?.get(0)?.get("delta")?;
    if delta.get("role").is_some() {
        return None;
    }
    delta.get("content")?.as_str().map(str::to_string)
}

/// A simple OpenAI chat request.
pub fn chat(model: &str, user: &str) -> Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": user}]})
}

/// The same with `stream: true` (and `stream_options` when `usage` is set).
pub fn chat_stream(model: &str, user: &str, usage: Option<bool>) -> Value {
    let mut body = chat(model, user);
    body["stream"] = true.into();
    if let Some(include) = usage {
        body["stream_options"] = serde_json::json!({"include_usage": include});
    }
    body
}

/// A simple Anthropic Messages request.
pub fn message(model: &str, user: &str, max_tokens: u32) -> Value {
    serde_json::json!({"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": user}]})
}
