//! The wire side of the load generator: the request bodies it sends, one
//! pooled keep-alive HTTP/1.1 client, and the reading of each answer — a
//! whole JSON body, or an SSE stream timestamped chunk by chunk — into a
//! [`RequestRecord`]. Failures are classified into an [`Outcome`], never
//! returned as errors.
//!
//! - `request`: the [`Template`] of each mix entry and the [`Call`] it makes.
//! - `answer`: headers, whole bodies and error bodies into the record.
//! - `sse`: the [`SseFramer`] and the reader that timestamps each chunk.
//!
//! This module holds the [`HttpClient`] that sends a call and hands its
//! answer to the right reader.

mod answer;
mod messages;
mod request;
mod sse;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mock_providers::Clock;

pub use self::answer::{MAX_MESSAGE_CHARS, brief};
use self::answer::{Payload, error_text, read_error_body, read_head};
use self::messages::MessagesReader;
pub use self::request::{Call, TOOL_NAME, Template, blank_record};
use self::sse::StreamReader;
pub use self::sse::{EventTooLarge, MAX_EVENT_BYTES, SseFramer};
use crate::load::plan::Api;
use crate::load::record::{ErrorShape, Outcome, RequestRecord};

/// The header that carries the request id (also in the prompt as a nonce).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-gauntlet-request-id");
/// The header a router names its generation in.
pub const GENERATION_ID: HeaderName = HeaderName::from_static("x-generation-id");
/// The header a router names the requested model in when a replacement served it.
pub const ORIGINAL_MODEL: HeaderName = HeaderName::from_static("x-original-model");
/// LiteLLM proxy's count of upstream retries it made.
pub const LITELLM_RETRIES: HeaderName = HeaderName::from_static("x-litellm-attempted-retries");

/// The pooled keep-alive client every request goes through; cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    hyper: Client<HttpConnector, Full<Bytes>>,
    /// `{base_url}/chat/completions`, or why the target URL is unusable.
    endpoint: Result<Uri, Arc<str>>,
    /// `{base_url}/messages`, likewise.
    messages: Result<Uri, Arc<str>>,
    clock: Clock,
    /// Sent with every request (the target's routing or auth headers).
    extra: Arc<[(HeaderName, HeaderValue)]>,
    /// The response header the router writes its charge in (its profile's
    /// cost), when not `usage.cost`.
    cost_header: Option<HeaderName>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient").field("endpoint", &self.endpoint).finish()
    }
}

/// Checked `(name, value)` headers as hyper's types; one that is not valid
/// (validation refuses them) is left out.
fn parsed_headers(headers: &[(String, String)]) -> Arc<[(HeaderName, HeaderValue)]> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            Some((
                HeaderName::from_bytes(name.as_bytes()).ok()?,
                HeaderValue::from_str(value).ok()?,
            ))
        })
        .collect()
}

impl HttpClient {
    /// A client for `POST {base_url}/chat/completions`, timing with `clock`.
    /// A base URL that is not a valid URI makes every request a
    /// [`Outcome::ConnectError`].
    pub fn new(base_url: &str, clock: Clock, connect_timeout: Duration) -> HttpClient {
        let endpoint = |path: &str| {
            let endpoint = format!("{}/{path}", base_url.trim_end_matches('/'));
            endpoint
                .parse::<Uri>()
                .map_err(|e| Arc::from(format!("invalid target URL `{endpoint}`: {e}")))
        };
        let (messages, endpoint) = (endpoint("messages"), endpoint("chat/completions"));
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let hyper = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(usize::MAX)
            .build(http);
        HttpClient {
            hyper,
            endpoint,
            messages,
            clock,
            extra: Arc::from([]),
            cost_header: None,
        }
    }

    /// The same client, sending `headers` with every request (before the
    /// request's own: a call's key is its `authorization`). Names and values
    /// were checked with the scenario; one that is not valid is left out.
    pub fn with_headers(mut self, headers: &[(String, String)]) -> HttpClient {
        self.extra = parsed_headers(headers);
        self
    }

    /// The same client, reading each answer's charge from the response
    /// header `name` when the answer has it, else from `usage.cost` (a
    /// LiteLLM proxy's `x-litellm-response-cost` comes with whole answers;
    /// its streams carry the cost in their last usage only); `None` reads
    /// `usage.cost`.
    pub fn with_cost_header(mut self, name: Option<&str>) -> HttpClient {
        self.cost_header = name.and_then(|n| HeaderName::from_bytes(n.as_bytes()).ok());
        self
    }

    /// Sends `call` and reads its whole answer into `record`, whose `sent_us`
    /// the content offsets are measured from. Sets `record.outcome` only once
    /// the answer is complete (or has failed): a caller that gives up on this
    /// future keeps the outcome it put there.
    pub async fn exchange(&self, call: Call, record: &mut RequestRecord) {
        let endpoint = match call.api {
            Api::Chat => &self.endpoint,
            Api::Messages => &self.messages,
        };
        let endpoint = match endpoint {
            Ok(endpoint) => endpoint.clone(),
            Err(message) => {
                record.outcome = Outcome::ConnectError;
                record.error = Some(message.to_string());
                return;
            }
        };
        let mut request = Request::new(Full::new(call.body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = endpoint;
        let headers = request.headers_mut();
        for (name, value) in self.extra.iter().chain(call.headers.iter()) {
            headers.insert(name.clone(), value.clone());
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some((name, value)) = call.auth {
            headers.insert(name, value);
        }
        if let Ok(id) = HeaderValue::from_str(&call.id) {
            headers.insert(REQUEST_ID, id);
        }

        let response = match self.hyper.request(request).await {
            Ok(response) => response,
            Err(e) => {
                record.outcome = if e.is_connect() {
                    Outcome::ConnectError
                } else {
                    Outcome::Reset
                };
                record.error = Some(brief(&chain(&e)));
                return;
            }
        };
        record.head_us = Some(self.clock.now_us());
        let status = response.status();
        read_head(status, response.headers(), record);
        let header_cost = (self.cost_header.as_ref()).and_then(|name| answer::header_text(response.headers(), name));
        let body = response.into_body();
        if !status.is_success() {
            self.read_refusal(body, record).await;
        } else if call.stream {
            self.read_stream(body, call.api, record).await;
        } else {
            self.read_whole(body, call.api, record).await;
        }
        if header_cost.is_some() {
            record.cost = header_cost;
        }
    }

    /// An error status: its class, and the message and shape of its body.
    async fn read_refusal(&self, body: Incoming, record: &mut RequestRecord) {
        // Reading the body also lets the connection go back to the pool.
        match body.collect().await {
            Ok(collected) => {
                record.last_byte_us = Some(self.clock.now_us());
                let (message, shape) = read_error_body(&collected.to_bytes());
                record.error = message;
                record.conformance.error_shape = Some(shape);
            }
            Err(e) => {
                record.error = Some(brief(&format!("the error body broke: {}", chain(&e))));
                record.conformance.error_shape = Some(ErrorShape::default());
            }
        }
        record.outcome = Outcome::of_status(record.status);
    }

    /// A whole answer: content and last byte are when the body completed.
    async fn read_whole(&self, body: Incoming, api: Api, record: &mut RequestRecord) {
        let bytes = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                record.outcome = Outcome::Reset;
                record.error = Some(brief(&chain(&e)));
                return;
            }
        };
        let done = self.clock.now_us();
        record.first_content_us = Some(done);
        record.last_byte_us = Some(done);
        // The answer into the record; what is wrong with it, if anything.
        let read = match api {
            Api::Chat => serde_json::from_slice::<Payload<'_>>(&bytes)
                .map(|answer| {
                    answer.apply(record);
                    if let Some(choices) = &answer.choices {
                        choices.apply_whole(&mut record.conformance);
                    }
                    answer.error.map(error_text)
                })
                .map_err(|e| format!("the answer is not valid JSON: {e}")),
            Api::Messages => serde_json::from_slice::<messages::Whole<'_>>(&bytes)
                .map(|answer| {
                    answer.apply(record);
                    answer.error.map(error_text)
                })
                .map_err(|e| format!("the answer is not a message: {e}")),
        };
        record.outcome = match read {
            Ok(None) => Outcome::Ok,
            Ok(Some(problem)) | Err(problem) => {
                record.error = Some(brief(&problem));
                Outcome::StreamError
            }
        };
    }

    /// An SSE stream, each chunk timestamped as its bytes arrive.
    async fn read_stream(&self, mut body: Incoming, api: Api, record: &mut RequestRecord) {
        let mut framer = SseFramer::default();
        let mut reader = match api {
            Api::Chat => Reader::Chat(StreamReader::default()),
            Api::Messages => Reader::Messages(MessagesReader::default()),
        };
        while let Some(frame) = body.frame().await {
            let data = match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_trailers) => continue,
                },
                Err(e) => {
                    record.outcome = Outcome::Reset;
                    record.error = Some(brief(&chain(&e)));
                    return;
                }
            };
            let at_us = self.clock.now_us();
            record.last_byte_us = Some(at_us);
            let pushed = framer.push(&data, |event| reader.event(event, at_us, record));
            record.conformance.keepalive_comments = framer.comments();
            if pushed.is_err() {
                record.outcome = Outcome::StreamError;
                record.error = Some(format!("a server-sent event exceeded {MAX_EVENT_BYTES} bytes"));
                return;
            }
        }
        let (outcome, error) = reader.finish(framer.has_partial());
        record.outcome = outcome;
        if error.is_some() {
            record.error = error;
        }
    }
}

/// The reader of one stream's events, by its API.
enum Reader {
    Chat(StreamReader),
    Messages(MessagesReader),
}

impl Reader {
    fn event(&mut self, data: &[u8], at_us: u64, record: &mut RequestRecord) {
        match self {
            Reader::Chat(reader) => reader.event(data, at_us, record),
            Reader::Messages(reader) => reader.event(data, at_us, record),
        }
    }

    fn finish(self, partial: bool) -> (Outcome, Option<String>) {
        match self {
            Reader::Chat(reader) => reader.finish(partial),
            Reader::Messages(reader) => match reader.finish(partial) {
                (true, problem) => (Outcome::Ok, problem),
                (false, problem) => (Outcome::StreamError, problem),
            },
        }
    }
}

/// An error and its sources, joined by `: `.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
