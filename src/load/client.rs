//! The wire side of the load generator: the request bodies it sends, one
//! pooled keep-alive HTTP/1.1 client, and the reading of each answer — a
//! whole JSON body, or an SSE stream timestamped chunk by chunk — into a
//! [`RequestRecord`]. Failures are classified into an [`Outcome`], never
//! returned as errors.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mock_providers::Clock;
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::record::{Outcome, RequestRecord};
use crate::scenario::MixEntry;

/// The header that carries the request id (also in the prompt as a nonce).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-gauntlet-request-id");
/// The header a router names its generation in.
pub const GENERATION_ID: HeaderName = HeaderName::from_static("x-generation-id");
/// The bound on one server-sent event (its unterminated line and its data).
pub const MAX_EVENT_BYTES: usize = 1 << 20;
/// Error messages kept in a record are cut to this many characters.
pub const MAX_MESSAGE_CHARS: usize = 200;

/// The name of the one tool offered by a mix entry with `tools = true`.
pub const TOOL_NAME: &str = "get_weather";

/// The tool list sent when a mix entry offers tools.
const TOOLS_JSON: &str = r#"[{"type":"function","function":{"name":"get_weather","description":"Current weather for a city.","parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city"]}}}]"#;

/// Prompt filler: plain ASCII words, nothing JSON must escape.
const FILLER: &[u8] = b"Summarise the following notes about load testing in one short paragraph. \
Open loop arrivals keep their schedule whatever the latency; closed loop users wait for each answer \
and then think before they ask again. ";

/// The body of every request of one mix entry, built once, with a gap where
/// each request's nonce goes.
#[derive(Debug, Clone)]
pub struct Template {
    mix: u16,
    stream: bool,
    /// `Bearer KEY`; `None` when the key is not a valid header value (the
    /// request then goes without one and the router should answer 401).
    auth: Option<HeaderValue>,
    /// The JSON up to the user message's opening quote.
    head: Vec<u8>,
    /// The JSON from the user message's closing quote.
    tail: Vec<u8>,
    /// `prompt_chars` characters of filler.
    filler: Vec<u8>,
}

impl Template {
    /// The template of mix entry `index`.
    pub fn new(index: usize, entry: &MixEntry) -> Template {
        let quoted = |text: &str| serde_json::Value::from(text).to_string();
        let mut head = Vec::with_capacity(128 + entry.model.len());
        head.extend_from_slice(b"{\"model\":");
        head.extend_from_slice(quoted(&entry.model).as_bytes());
        head.extend_from_slice(b",\"messages\":[");
        if let Some(system) = &entry.system {
            head.extend_from_slice(b"{\"role\":\"system\",\"content\":");
            head.extend_from_slice(quoted(system).as_bytes());
            head.extend_from_slice(b"},");
        }
        head.extend_from_slice(b"{\"role\":\"user\",\"content\":\"");

        let mut tail = Vec::with_capacity(96 + TOOLS_JSON.len());
        tail.extend_from_slice(b"\"}]");
        if entry.stream {
            // Routers always send usage; a bare provider only when asked.
            tail.extend_from_slice(b",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
        } else {
            tail.extend_from_slice(b",\"stream\":false");
        }
        if let Some(max_tokens) = entry.max_tokens {
            tail.extend_from_slice(format!(",\"max_tokens\":{max_tokens}").as_bytes());
        }
        if entry.tools {
            tail.extend_from_slice(b",\"tools\":");
            tail.extend_from_slice(TOOLS_JSON.as_bytes());
        }
        tail.push(b'}');

        let chars = usize::try_from(entry.prompt_chars).unwrap_or(usize::MAX);
        let filler = FILLER.iter().copied().cycle().take(chars).collect();
        let auth = HeaderValue::try_from(format!("Bearer {}", entry.key))
            .ok()
            .map(|mut value| {
                value.set_sensitive(true);
                value
            });
        Template {
            mix: u16::try_from(index).unwrap_or(u16::MAX),
            stream: entry.stream,
            auth,
            head,
            tail,
            filler,
        }
    }

    pub fn stream(&self) -> bool {
        self.stream
    }

    pub fn mix(&self) -> u16 {
        self.mix
    }

    /// The request with id `id` (ASCII, `A-Za-z0-9-_.`): its body serialized
    /// once. The user message is `[gauntlet:ID] ` then filler, `prompt_chars`
    /// characters in all (just the nonce when it is longer than that).
    pub fn call(&self, id: Arc<str>, phase: u16) -> Call {
        let nonce_len = "[gauntlet:]".len() + id.len();
        let filler = self.filler.len().saturating_sub(nonce_len + 1);
        let mut body = Vec::with_capacity(self.head.len() + nonce_len + 1 + filler + self.tail.len());
        body.extend_from_slice(&self.head);
        body.extend_from_slice(b"[gauntlet:");
        body.extend_from_slice(id.as_bytes());
        body.push(b']');
        if filler > 0 {
            body.push(b' ');
            body.extend_from_slice(self.filler.get(..filler).unwrap_or_default());
        }
        body.extend_from_slice(&self.tail);
        Call {
            id,
            phase,
            mix: self.mix,
            stream: self.stream,
            auth: self.auth.clone(),
            body: Bytes::from(body),
        }
    }
}

/// One request, ready to send.
#[derive(Debug, Clone)]
pub struct Call {
    pub id: Arc<str>,
    pub phase: u16,
    pub mix: u16,
    pub stream: bool,
    auth: Option<HeaderValue>,
    pub body: Bytes,
}

impl Call {
    /// A record of this call with nothing received yet.
    pub fn record(&self, intended_us: u64, sent_us: u64, outcome: Outcome) -> RequestRecord {
        blank_record(
            Arc::clone(&self.id),
            self.phase,
            self.mix,
            self.stream,
            intended_us,
            sent_us,
            outcome,
        )
    }
}

/// A record with nothing received: status 0, no times past `sent_us`.
pub fn blank_record(
    id: Arc<str>,
    phase: u16,
    mix: u16,
    stream: bool,
    intended_us: u64,
    sent_us: u64,
    outcome: Outcome,
) -> RequestRecord {
    RequestRecord {
        id,
        phase,
        mix,
        stream,
        intended_us,
        sent_us,
        head_us: None,
        first_content_us: None,
        last_byte_us: None,
        status: 0,
        outcome,
        chunks: 0,
        content_chunks: 0,
        content_offsets_us: Vec::new(),
        prompt_tokens: None,
        completion_tokens: None,
        cached_tokens: None,
        cost: None,
        generation_id: None,
        model: None,
        error: None,
    }
}

/// The pooled keep-alive client every request goes through; cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    hyper: Client<HttpConnector, Full<Bytes>>,
    /// `{base_url}/chat/completions`, or why the target URL is unusable.
    endpoint: Result<Uri, Arc<str>>,
    clock: Clock,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient").field("endpoint", &self.endpoint).finish()
    }
}

impl HttpClient {
    /// A client for `POST {base_url}/chat/completions`, timing with `clock`.
    /// A base URL that is not a valid URI makes every request a
    /// [`Outcome::ConnectError`].
    pub fn new(base_url: &str, clock: Clock, connect_timeout: Duration) -> HttpClient {
        let endpoint = format!("{}/chat/completions", base_url.trim_end_matches('/'));
        let endpoint = endpoint
            .parse::<Uri>()
            .map_err(|e| Arc::from(format!("invalid target URL `{endpoint}`: {e}")));
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let hyper = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(usize::MAX)
            .build(http);
        HttpClient { hyper, endpoint, clock }
    }

    /// Sends `call` and reads its whole answer into `record`, whose `sent_us`
    /// the content offsets are measured from. Sets `record.outcome` only once
    /// the answer is complete (or has failed): a caller that gives up on this
    /// future keeps the outcome it put there.
    pub async fn exchange(&self, call: Call, record: &mut RequestRecord) {
        let endpoint = match &self.endpoint {
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
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(auth) = call.auth {
            headers.insert(AUTHORIZATION, auth);
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
        record.status = status.as_u16();
        record.generation_id = response
            .headers()
            .get(GENERATION_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.into_body();
        if !status.is_success() {
            self.read_refusal(body, record).await;
        } else if call.stream {
            self.read_stream(body, record).await;
        } else {
            self.read_whole(body, record).await;
        }
    }

    /// An error status: its class, and the message of its body.
    async fn read_refusal(&self, body: Incoming, record: &mut RequestRecord) {
        // Reading the body also lets the connection go back to the pool.
        match body.collect().await {
            Ok(collected) => {
                record.last_byte_us = Some(self.clock.now_us());
                record.error = error_message(&collected.to_bytes());
            }
            Err(e) => record.error = Some(brief(&format!("the error body broke: {}", chain(&e)))),
        }
        record.outcome = Outcome::of_status(record.status);
    }

    /// A whole answer: content and last byte are when the body completed.
    async fn read_whole(&self, body: Incoming, record: &mut RequestRecord) {
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
        record.outcome = match serde_json::from_slice::<Payload<'_>>(&bytes) {
            Ok(answer) => {
                answer.apply(record);
                match answer.error {
                    Some(error) => {
                        record.error = Some(brief(&error_text(error)));
                        Outcome::StreamError
                    }
                    None => Outcome::Ok,
                }
            }
            Err(e) => {
                record.error = Some(brief(&format!("the answer is not valid JSON: {e}")));
                Outcome::StreamError
            }
        };
    }

    /// An SSE stream, each chunk timestamped as its bytes arrive.
    async fn read_stream(&self, mut body: Incoming, record: &mut RequestRecord) {
        let mut framer = SseFramer::default();
        let mut reader = StreamReader::default();
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
            if framer.push(&data, |event| reader.event(event, at_us, record)).is_err() {
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

/// What a stream has shown so far, beyond what the record holds.
#[derive(Debug, Default)]
struct StreamReader {
    done: bool,
    /// The first error chunk's message or malformed chunk, if any.
    problem: Option<String>,
}

impl StreamReader {
    /// One event's `data`, arrived at `at_us`.
    fn event(&mut self, data: &[u8], at_us: u64, record: &mut RequestRecord) {
        record.chunks = record.chunks.saturating_add(1);
        if self.done {
            return;
        }
        if data == b"[DONE]" {
            self.done = true;
            return;
        }
        let chunk = match serde_json::from_slice::<Payload<'_>>(data) {
            Ok(chunk) => chunk,
            Err(e) => {
                self.problem
                    .get_or_insert_with(|| brief(&format!("a malformed chunk: {e}")));
                return;
            }
        };
        if let Some(error) = chunk.error {
            self.problem.get_or_insert_with(|| brief(&error_text(error)));
        }
        if chunk.choices.is_some_and(|first| first.0) {
            record.content_chunks = record.content_chunks.saturating_add(1);
            record.first_content_us.get_or_insert(at_us);
            let offset = at_us.saturating_sub(record.sent_us);
            record
                .content_offsets_us
                .push(u32::try_from(offset).unwrap_or(u32::MAX));
        }
        chunk.apply(record);
    }

    /// The outcome of a stream that ended cleanly; `partial` when it ended
    /// inside an event.
    fn finish(self, partial: bool) -> (Outcome, Option<String>) {
        match (self.problem, self.done) {
            (Some(problem), _) => (Outcome::StreamError, Some(problem)),
            (None, true) => (Outcome::Ok, None),
            (None, false) if partial => (
                Outcome::StreamError,
                Some("the stream ended inside an event, without [DONE]".to_owned()),
            ),
            (None, false) => (Outcome::StreamError, Some("the stream ended without [DONE]".to_owned())),
        }
    }
}

/// The fields read from a whole answer, a stream chunk or an error body.
#[derive(Debug, Deserialize)]
struct Payload<'a> {
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    choices: Option<FirstChoice>,
    #[serde(default, borrow)]
    usage: Option<UsageBody<'a>>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

impl Payload<'_> {
    /// Copies the model (the first one named) and the usage (the last one
    /// reported) into `record`.
    fn apply(&self, record: &mut RequestRecord) {
        if record.model.is_none()
            && let Some(model) = &self.model
        {
            record.model = Some(model.to_string());
        }
        if let Some(usage) = &self.usage {
            record.prompt_tokens = usage.prompt_tokens.or(record.prompt_tokens);
            record.completion_tokens = usage.completion_tokens.or(record.completion_tokens);
            let cached = usage.prompt_tokens_details.and_then(|d| d.cached_tokens);
            record.cached_tokens = cached.or(record.cached_tokens);
            if let Some(cost) = usage.cost {
                record.cost = Some(raw_number(cost));
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct UsageBody<'a> {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    /// Kept as written: checks compare it exactly.
    #[serde(default, borrow)]
    cost: Option<&'a RawValue>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

/// Whether the first of `choices` carries content in its `delta`: read
/// without collecting the array.
#[derive(Debug, Clone, Copy)]
struct FirstChoice(bool);

#[derive(Debug, Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
}

#[derive(Debug, Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
    #[serde(default, borrow)]
    tool_calls: Option<&'a RawValue>,
}

impl Delta<'_> {
    /// Text or a tool-call delta; a role-only or empty delta is not content.
    fn has_content(&self) -> bool {
        let present = |raw: Option<&RawValue>| raw.is_some_and(|raw| !is_empty_json(raw.get()));
        present(self.content) || present(self.tool_calls)
    }
}

/// `null`, `""` or `[]`.
fn is_empty_json(text: &str) -> bool {
    let text = text.trim();
    text == "null"
        || text == "\"\""
        || text
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .is_some_and(|inner| inner.trim().is_empty())
}

impl<'de> Deserialize<'de> for FirstChoice {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct First;
        impl<'de> Visitor<'de> for First {
            type Value = FirstChoice;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of choices")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FirstChoice, A::Error> {
                let first = seq.next_element::<Choice<'de>>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                let content = first
                    .and_then(|choice| choice.delta)
                    .is_some_and(|delta| delta.has_content());
                Ok(FirstChoice(content))
            }
        }
        deserializer.deserialize_seq(First)
    }
}

/// A JSON number's exact text; a JSON string's contents (some routers quote
/// decimals).
fn raw_number(raw: &RawValue) -> String {
    let text = raw.get().trim();
    if text.starts_with('"')
        && let Ok(unquoted) = serde_json::from_str::<String>(text)
    {
        return unquoted;
    }
    text.to_owned()
}

/// The message of an `error` value: `error.message`, or the error itself
/// when it is a string, or its JSON text.
fn error_text(error: &RawValue) -> String {
    #[derive(Deserialize)]
    struct Message {
        message: Option<String>,
    }
    if let Ok(Message { message: Some(message) }) = serde_json::from_str::<Message>(error.get()) {
        return message;
    }
    serde_json::from_str::<String>(error.get()).unwrap_or_else(|_| error.get().to_owned())
}

/// The message of an error body: its `error`, else its text.
fn error_message(body: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Payload<'_>>(body) {
        Ok(Payload { error: Some(error), .. }) => Some(brief(&error_text(error))),
        _ if body.is_empty() => None,
        _ => Some(brief(&String::from_utf8_lossy(body))),
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

/// `text` cut to [`MAX_MESSAGE_CHARS`] characters.
pub fn brief(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

/// A server-sent event stream split into the `data` of its events, fed the
/// body's bytes as they arrive and split anywhere.
///
/// Lines end with LF or CRLF; a blank line ends an event; `data:` lines (with
/// or without a space after the colon) are joined with `\n`; comment lines
/// (`: …`) and other fields are skipped; an event without data is not
/// dispatched. The unterminated line plus the pending data are bounded by
/// [`MAX_EVENT_BYTES`].
#[derive(Debug, Default)]
pub struct SseFramer {
    /// Bytes of a line not terminated yet.
    pending: Vec<u8>,
    /// The data of the event being read.
    data: Vec<u8>,
    has_data: bool,
}

/// An event larger than [`MAX_EVENT_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTooLarge;

impl SseFramer {
    /// Feeds `bytes`, calling `on_data` with the data of each event they complete.
    pub fn push(&mut self, bytes: &[u8], mut on_data: impl FnMut(&[u8])) -> Result<(), EventTooLarge> {
        let mut bytes = bytes;
        if !self.pending.is_empty() {
            match bytes.iter().position(|&b| b == b'\n') {
                None => {
                    self.pending.extend_from_slice(bytes);
                    bytes = &[];
                }
                Some(end) => {
                    let mut line = std::mem::take(&mut self.pending);
                    line.extend_from_slice(&bytes[..end]);
                    self.line(&line, &mut on_data);
                    line.clear();
                    self.pending = line;
                    bytes = &bytes[end + 1..];
                }
            }
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            self.line(&bytes[..end], &mut on_data);
            bytes = &bytes[end + 1..];
        }
        self.pending.extend_from_slice(bytes);
        if self.pending.len() + self.data.len() > MAX_EVENT_BYTES {
            return Err(EventTooLarge);
        }
        Ok(())
    }

    /// Whether an event has begun and not ended.
    pub fn has_partial(&self) -> bool {
        self.has_data || !self.pending.is_empty()
    }

    fn line(&mut self, line: &[u8], on_data: &mut impl FnMut(&[u8])) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.has_data {
                on_data(&self.data);
                self.data.clear();
                self.has_data = false;
            }
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => return,
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        if field == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(stream: bool) -> MixEntry {
        MixEntry {
            name: "m".into(),
            weight: 1,
            model: "vendor/model \"q\"".into(),
            key: "sk-test".into(),
            stream,
            prompt_chars: 120,
            system: Some("be brief\n".into()),
            max_tokens: Some(32),
            tools: false,
        }
    }

    fn events(chunks: &[&[u8]]) -> Vec<String> {
        let mut framer = SseFramer::default();
        let mut out = Vec::new();
        for chunk in chunks {
            framer
                .push(chunk, |data| out.push(String::from_utf8_lossy(data).into_owned()))
                .unwrap();
        }
        out
    }

    #[test]
    fn body_carries_the_fields_and_the_nonce() {
        let template = Template::new(3, &entry(true));
        let call = template.call(Arc::from("r1-42"), 1);
        assert_eq!((call.mix, call.phase, call.stream), (3, 1, true));
        let body: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(body["model"], "vendor/model \"q\"");
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][0]["content"], "be brief\n");
        assert_eq!(body["messages"][1]["role"], "user");
        let prompt = body["messages"][1]["content"].as_str().unwrap();
        assert_eq!(prompt.chars().count(), 120);
        assert_eq!(mock_providers::tokens::find_nonce(prompt), Some("r1-42"));
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["max_tokens"], 32);
        assert!(body.get("tools").is_none());

        // Ids of other lengths keep the prompt length.
        let long = template.call(Arc::from("r1-123456789"), 1);
        let body: serde_json::Value = serde_json::from_slice(&long.body).unwrap();
        assert_eq!(body["messages"][1]["content"].as_str().unwrap().chars().count(), 120);
    }

    #[test]
    fn body_without_options() {
        let mut plain = entry(false);
        plain.system = None;
        plain.max_tokens = None;
        plain.tools = true;
        plain.prompt_chars = 3;
        let call = Template::new(0, &plain).call(Arc::from("r0-0"), 0);
        let body: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(body["messages"].as_array().unwrap().len(), 1);
        // Shorter than the nonce: the nonce alone.
        assert_eq!(body["messages"][0]["content"], "[gauntlet:r0-0]");
        assert_eq!(body["stream"], false);
        assert!(body.get("stream_options").is_none() && body.get("max_tokens").is_none());
        assert_eq!(body["tools"][0]["function"]["name"], TOOL_NAME);
        assert_eq!(body["tools"][0]["function"]["parameters"]["type"], "object");
    }

    #[test]
    fn framer_splits_anywhere() {
        let stream: &[u8] = b": PROCESSING\n\ndata: {\"a\":1}\r\n\r\ndata:{\"b\":2}\n\nevent: x\ndata: one\ndata: two\n\nid: 7\n\ndata: [DONE]\n\n";
        let expected = vec!["{\"a\":1}", "{\"b\":2}", "one\ntwo", "[DONE]"];
        assert_eq!(events(&[stream]), expected);
        for split in 0..stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(events(&[a, b]), expected, "split at {split}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(events(&bytes), expected);
    }

    #[test]
    fn framer_reports_partial_and_oversized_events() {
        let mut framer = SseFramer::default();
        framer.push(b"data: {\"a\"", |_| panic!("not complete")).unwrap();
        assert!(framer.has_partial());
        let mut big = SseFramer::default();
        let line = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert_eq!(big.push(&line, |_| {}), Err(EventTooLarge));
    }

    fn read(events: &[&str]) -> (RequestRecord, Outcome, Option<String>) {
        let mut record = blank_record(Arc::from("r0-0"), 0, 0, true, 1_000, 1_000, Outcome::Timeout);
        let mut reader = StreamReader::default();
        for (i, event) in events.iter().enumerate() {
            reader.event(event.as_bytes(), 2_000 + 100 * i as u64, &mut record);
        }
        let (outcome, error) = reader.finish(false);
        (record, outcome, error)
    }

    #[test]
    fn stream_chunks_are_classified() {
        let (record, outcome, error) = read(&[
            r#"{"model":"m1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"model":"m1","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4},"cost":0.0000150}}"#,
            "[DONE]",
        ]);
        assert_eq!((outcome, error), (Outcome::Ok, None));
        assert_eq!(record.chunks, 7);
        assert_eq!(record.content_chunks, 2);
        assert_eq!(record.content_offsets_us, vec![1_100, 1_200]);
        assert_eq!(record.first_content_us, Some(2_100));
        assert_eq!(record.model.as_deref(), Some("m1"));
        assert_eq!(
            (record.prompt_tokens, record.completion_tokens, record.cached_tokens),
            (Some(10), Some(2), Some(4))
        );
        assert_eq!(record.cost.as_deref(), Some("0.0000150"));
    }

    #[test]
    fn stream_failures_are_classified() {
        let content = r#"{"choices":[{"delta":{"content":"a"}}]}"#;
        let (record, outcome, error) = read(&[
            content,
            r#"{"error":{"message":"upstream died","code":502},"choices":[{"delta":{},"finish_reason":"error"}]}"#,
            "[DONE]",
        ]);
        assert_eq!(
            (outcome, error.as_deref()),
            (Outcome::StreamError, Some("upstream died"))
        );
        assert_eq!(record.content_chunks, 1);

        let (_, outcome, error) = read(&[content]);
        assert_eq!(outcome, Outcome::StreamError);
        assert!(error.unwrap().contains("[DONE]"));

        let (_, outcome, error) = read(&[content, "{\"choices\":[{\"delta\":{\"content\":\"tr", "[DONE]"]);
        assert_eq!(outcome, Outcome::StreamError);
        assert!(error.unwrap().starts_with("a malformed chunk"));
    }

    #[test]
    fn error_bodies_and_costs() {
        assert_eq!(
            error_message(br#"{"error":{"message":"no such model","code":404}}"#).as_deref(),
            Some("no such model")
        );
        assert_eq!(error_message(br#"{"error":"plain"}"#).as_deref(), Some("plain"));
        assert_eq!(error_message(b"Bad Gateway").as_deref(), Some("Bad Gateway"));
        assert_eq!(error_message(b""), None);
        let long = "é".repeat(500);
        let cut = brief(&long);
        assert_eq!(cut.chars().count(), MAX_MESSAGE_CHARS + 1);

        let answer: Payload<'_> = serde_json::from_str(r#"{"usage":{"cost":"0.10"}}"#).unwrap();
        let mut record = blank_record(Arc::from("x"), 0, 0, false, 0, 0, Outcome::Ok);
        answer.apply(&mut record);
        assert_eq!(record.cost.as_deref(), Some("0.10"));
        let answer: Payload<'_> = serde_json::from_str(r#"{"usage":{"cost":1.50e-5}}"#).unwrap();
        answer.apply(&mut record);
        assert_eq!(record.cost.as_deref(), Some("1.50e-5"));
    }
}
