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
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mock_providers::Clock;
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;

use super::record::{ErrorShape, Facts, Outcome, RequestRecord, ToolCall};
use crate::scenario::MixEntry;

/// The header that carries the request id (also in the prompt as a nonce).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-gauntlet-request-id");
/// The header a router names its generation in.
pub const GENERATION_ID: HeaderName = HeaderName::from_static("x-generation-id");
/// The header a router names the requested model in when a replacement served it.
pub const ORIGINAL_MODEL: HeaderName = HeaderName::from_static("x-original-model");
/// LiteLLM proxy's charge for the request, in USD (its profile's cost).
pub const LITELLM_COST: HeaderName = HeaderName::from_static("x-litellm-response-cost");
/// LiteLLM proxy's count of upstream retries it made.
pub const LITELLM_RETRIES: HeaderName = HeaderName::from_static("x-litellm-attempted-retries");
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
        conformance: Facts::default(),
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
        let headers = response.headers();
        record.generation_id = header_text(headers, &GENERATION_ID);
        record.conformance.original_model = header_text(headers, &ORIGINAL_MODEL);
        if !status.is_success() {
            record.conformance.retry_after = header_text(headers, &RETRY_AFTER);
        }
        // A LiteLLM proxy says what it charged in a header (a whole answer's
        // `usage.cost`, when there is one, is read from the body after this).
        let litellm_cost = header_text(headers, &LITELLM_COST);
        record.conformance.upstream_retries =
            header_text(headers, &LITELLM_RETRIES).and_then(|n| n.trim().parse().ok());
        let body = response.into_body();
        if !status.is_success() {
            self.read_refusal(body, record).await;
        } else if call.stream {
            self.read_stream(body, record).await;
        } else {
            self.read_whole(body, record).await;
        }
        if record.cost.is_none() {
            record.cost = litellm_cost;
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
                if let Some(choices) = &answer.choices {
                    choices.apply_whole(&mut record.conformance);
                }
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
            record.conformance.done = true;
            return;
        }
        let chunk = match serde_json::from_slice::<Payload<'_>>(data) {
            Ok(chunk) => chunk,
            Err(e) => {
                record.conformance.usage_last = false;
                self.problem
                    .get_or_insert_with(|| brief(&format!("a malformed chunk: {e}")));
                return;
            }
        };
        let facts = &mut record.conformance;
        if let Some(error) = chunk.error {
            facts.error_chunk |= error.get().starts_with('{');
            self.problem.get_or_insert_with(|| brief(&error_text(error)));
        }
        if chunk.usage.is_some() {
            facts.usage_chunks = facts.usage_chunks.saturating_add(1);
        }
        facts.usage_last = chunk.usage.is_some() && chunk.choices.as_ref().is_some_and(|c| c.count == 0);
        if let Some(choices) = &chunk.choices {
            if let Some(reason) = &choices.last_finish {
                set_text(&mut facts.finish_reason, reason);
            }
            if let Some(delta) = &choices.delta {
                facts.content_chars = facts.content_chars.saturating_add(delta.content_chars());
                if let Some(tool_calls) = delta.tool_calls {
                    add_tool_deltas(tool_calls, &mut facts.tool_call);
                }
                if delta.has_content() {
                    record.content_chunks = record.content_chunks.saturating_add(1);
                    record.first_content_us.get_or_insert(at_us);
                    let offset = at_us.saturating_sub(record.sent_us);
                    record
                        .content_offsets_us
                        .push(u32::try_from(offset).unwrap_or(u32::MAX));
                }
            }
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
    #[serde(default, borrow)]
    choices: Option<Choices<'a>>,
    #[serde(default, borrow)]
    usage: Option<UsageBody<'a>>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

impl Payload<'_> {
    /// Copies the model and the usage into `record`. The usage (tokens and
    /// cost) is the last one reported, field for field; the model is the one
    /// the chunk carrying that usage named, else the first one named.
    fn apply(&self, record: &mut RequestRecord) {
        if let Some(model) = &self.model
            && (record.model.is_none() || self.usage.is_some())
        {
            set_text(&mut record.model, model);
        }
        if let Some(usage) = &self.usage {
            record.prompt_tokens = usage.prompt_tokens;
            record.completion_tokens = usage.completion_tokens;
            record.cached_tokens = usage.prompt_tokens_details.and_then(|d| d.cached_tokens);
            record.cost = usage.cost.map(raw_number);
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

/// What is read of `choices`, without collecting the array: the first
/// choice's `delta` and `message`, and the finish reasons.
#[derive(Debug, Default)]
struct Choices<'a> {
    /// How many choices there were (0 for `choices: []`).
    count: usize,
    /// The first choice's `delta` (a stream chunk).
    delta: Option<Message<'a>>,
    /// The first choice's `message` (a whole answer).
    message: Option<Message<'a>>,
    /// The first choice's `finish_reason`.
    first_finish: Option<Cow<'a, str>>,
    /// The last non-null `finish_reason` among the choices.
    last_finish: Option<Cow<'a, str>>,
}

impl Choices<'_> {
    /// The facts of a whole answer: its first choice's finish reason,
    /// content length and first tool call.
    fn apply_whole(&self, facts: &mut Facts) {
        if let Some(reason) = &self.first_finish {
            set_text(&mut facts.finish_reason, reason);
        }
        if let Some(message) = &self.message {
            facts.content_chars = message.content_chars();
            facts.tool_call = message.tool_calls.and_then(first_tool_call);
        }
    }
}

#[derive(Debug, Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    delta: Option<Message<'a>>,
    #[serde(default, borrow)]
    message: Option<Message<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<&'a RawValue>,
}

/// A choice after the first: only its finish reason is read.
#[derive(Debug, Deserialize)]
struct OtherChoice<'a> {
    #[serde(default, borrow)]
    finish_reason: Option<&'a RawValue>,
}

/// A `delta` or a `message`: kept raw, read only as far as needed.
#[derive(Debug, Deserialize)]
struct Message<'a> {
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
    #[serde(default, borrow)]
    tool_calls: Option<&'a RawValue>,
}

impl Message<'_> {
    /// Text or a tool-call delta; a role-only or empty delta is not content.
    fn has_content(&self) -> bool {
        let present = |raw: Option<&RawValue>| raw.is_some_and(|raw| !is_empty_json(raw.get()));
        present(self.content) || present(self.tool_calls)
    }

    /// The characters of `content` when it is a string (0 otherwise).
    fn content_chars(&self) -> u32 {
        let chars = self.content.and_then(|raw| json_string_chars(raw.get())).unwrap_or(0);
        u32::try_from(chars).unwrap_or(u32::MAX)
    }
}

/// One element of `tool_calls`: a streamed delta or a whole call.
#[derive(Debug, Deserialize)]
struct ToolCallBody<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    function: Option<FunctionBody<'a>>,
}

#[derive(Debug, Deserialize)]
struct FunctionBody<'a> {
    #[serde(default, borrow)]
    name: Option<&'a RawValue>,
    #[serde(default, borrow)]
    arguments: Option<&'a RawValue>,
}

impl FunctionBody<'_> {
    /// Adds this piece to `call`: the name if it has none yet, the arguments
    /// appended (their text when they are not a string).
    fn add_to(&self, call: &mut ToolCall) {
        if call.name.is_empty()
            && let Some(name) = self.name.and_then(json_str)
        {
            call.name = name.into_owned();
        }
        if let Some(arguments) = self.arguments {
            call.arguments.push_str(&text_of(arguments));
        }
    }
}

/// The elements of a `tool_calls` array, each kept raw (so one odd element
/// spoils neither the chunk nor the others).
fn tool_call_elements(raw: &RawValue) -> Vec<ToolCallBody<'_>> {
    serde_json::from_str::<Vec<&RawValue>>(raw.get())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|element| serde_json::from_str::<ToolCallBody<'_>>(element.get()).ok())
        .collect()
}

/// Adds a chunk's `delta.tool_calls` of index 0 to the call being reassembled.
fn add_tool_deltas(raw: &RawValue, call: &mut Option<ToolCall>) {
    if is_empty_json(raw.get()) {
        return;
    }
    for delta in tool_call_elements(raw) {
        if delta.index.unwrap_or(0) != 0 {
            continue;
        }
        let call = call.get_or_insert_with(ToolCall::default);
        if let Some(function) = &delta.function {
            function.add_to(call);
        }
    }
}

/// A whole answer's `message.tool_calls[0]`.
fn first_tool_call(raw: &RawValue) -> Option<ToolCall> {
    let first = tool_call_elements(raw).into_iter().next()?;
    let mut call = ToolCall::default();
    if let Some(function) = &first.function {
        function.add_to(&mut call);
    }
    Some(call)
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

impl<'de: 'a, 'a> Deserialize<'de> for Choices<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Each<'a>(std::marker::PhantomData<Choices<'a>>);
        impl<'de: 'a, 'a> Visitor<'de> for Each<'a> {
            type Value = Choices<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of choices")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Choices<'a>, A::Error> {
                let mut choices = Choices::default();
                if let Some(first) = seq.next_element::<Choice<'de>>()? {
                    choices.count = 1;
                    choices.delta = first.delta;
                    choices.message = first.message;
                    choices.first_finish = first.finish_reason.and_then(json_str);
                    choices.last_finish.clone_from(&choices.first_finish);
                }
                while let Some(other) = seq.next_element::<OtherChoice<'de>>()? {
                    choices.count += 1;
                    if let Some(reason) = other.finish_reason.and_then(json_str) {
                        choices.last_finish = Some(reason);
                    }
                }
                Ok(choices)
            }
        }
        deserializer.deserialize_seq(Each(std::marker::PhantomData))
    }
}

/// A JSON string's contents, borrowed when it has no escapes; `None` for
/// any other JSON value.
fn json_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get().trim();
    if !text.starts_with('"') {
        return None;
    }
    match serde_json::from_str::<&str>(text) {
        Ok(borrowed) => Some(Cow::Borrowed(borrowed)),
        Err(_) => serde_json::from_str::<String>(text).ok().map(Cow::Owned),
    }
}

/// A JSON string's contents, or the JSON text of any other value.
fn text_of(raw: &RawValue) -> Cow<'_, str> {
    json_str(raw).unwrap_or_else(|| Cow::Borrowed(raw.get().trim()))
}

/// The characters a JSON string literal decodes to, counted on its text
/// (escapes, surrogate pairs included, count as the one character they
/// stand for); `None` when `text` is not a string.
fn json_string_chars(text: &str) -> Option<usize> {
    let inner = text.trim().strip_prefix('"')?.strip_suffix('"')?;
    let bytes = inner.as_bytes();
    let mut count = 0;
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'\\' {
            if bytes.get(i + 1) == Some(&b'u') {
                // The low half of a surrogate pair was counted with its high half.
                let unit = inner
                    .get(i + 2..i + 6)
                    .and_then(|hex| u16::from_str_radix(hex, 16).ok());
                if !unit.is_some_and(|unit| (0xDC00..0xE000).contains(&unit)) {
                    count += 1;
                }
                i += 6;
            } else {
                count += 1;
                i += 2;
            }
        } else {
            // UTF-8 continuation bytes belong to the character counted already.
            if byte & 0xC0 != 0x80 {
                count += 1;
            }
            i += 1;
        }
    }
    Some(count)
}

/// Sets `slot` to `text`, reusing its allocation (none when it is equal).
fn set_text(slot: &mut Option<String>, text: &str) {
    match slot {
        Some(current) if current == text => {}
        Some(current) => {
            current.clear();
            current.push_str(text);
        }
        None => *slot = Some(text.to_owned()),
    }
}

/// A JSON number's exact text; a JSON string's contents (some routers quote
/// decimals).
fn raw_number(raw: &RawValue) -> String {
    text_of(raw).into_owned()
}

/// A header's value, when it is text.
fn header_text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
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

/// The message of an error body (its `error`, else its text) and its shape.
fn read_error_body(body: &[u8]) -> (Option<String>, ErrorShape) {
    let mut shape = ErrorShape::default();
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let error = parsed
        .as_ref()
        .and_then(Value::as_object)
        .and_then(|top| top.get("error"))
        .filter(|error| !error.is_null());
    let message = match error {
        Some(whole @ Value::Object(error)) => {
            let message = error.get("message").and_then(Value::as_str);
            let typed = error.get("type").is_some_and(Value::is_string)
                || error
                    .get("code")
                    .is_some_and(|code| code.is_string() || code.is_number());
            shape.ok = message.is_some_and(|m| !m.is_empty()) && typed;
            if let Some(availability) = error.get("availability") {
                shape.availability_code = availability.get("code").map(|code| match code {
                    Value::String(code) => code.clone(),
                    other => other.to_string(),
                });
                if let Some(models) = availability.get("fallback_models").and_then(Value::as_array) {
                    shape.fallback_models = models.iter().filter_map(Value::as_str).map(str::to_owned).collect();
                }
            }
            Some(brief(&message.map_or_else(|| whole.to_string(), str::to_owned)))
        }
        Some(Value::String(text)) => Some(brief(text)),
        Some(other) => Some(brief(&other.to_string())),
        None if body.is_empty() => None,
        None => Some(brief(&String::from_utf8_lossy(body))),
    };
    (message, shape)
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
/// (`: …`) and other fields are skipped (comments are counted); an event
/// without data is not dispatched. The unterminated line plus the pending data are bounded by
/// [`MAX_EVENT_BYTES`].
#[derive(Debug, Default)]
pub struct SseFramer {
    /// Bytes of a line not terminated yet.
    pending: Vec<u8>,
    /// The data of the event being read.
    data: Vec<u8>,
    has_data: bool,
    /// Comment lines seen.
    comments: u32,
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

    /// Comment lines (`: PROCESSING` keep-alives) seen so far.
    pub fn comments(&self) -> u32 {
        self.comments
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
            Some(0) => {
                self.comments = self.comments.saturating_add(1);
                return;
            }
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
        let facts = &record.conformance;
        assert_eq!((facts.usage_chunks, facts.usage_last, facts.done), (1, true, true));
        assert_eq!(
            (facts.finish_reason.as_deref(), facts.error_chunk),
            (Some("stop"), false)
        );
        assert_eq!(facts.content_chars, 2);
        assert_eq!(
            facts.tool_call,
            Some(ToolCall {
                name: String::new(),
                arguments: "{".into()
            })
        );
    }

    #[test]
    fn usage_and_model_come_from_the_usage_chunk() {
        let (record, outcome, _) = read(&[
            r#"{"model":"early","choices":[{"delta":{"content":"a"}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"cost":1}}"#,
            r#"{"model":"served","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":2}}"#,
            "[DONE]",
        ]);
        assert_eq!(outcome, Outcome::Ok);
        assert_eq!(record.model.as_deref(), Some("served"));
        assert_eq!((record.prompt_tokens, record.completion_tokens), (Some(10), Some(2)));
        // The last usage says no cost: none, not the earlier one's.
        assert_eq!(record.cost, None);
        assert_eq!(
            (record.conformance.usage_chunks, record.conformance.usage_last),
            (2, true)
        );

        // Usage beside a choice, then a content chunk last: not last.
        let (record, _, _) = read(&[
            r#"{"choices":[{"delta":{},"finish_reason":"length"}],"usage":{"completion_tokens":2}}"#,
            r#"{"choices":[{"delta":{"content":"late"}}]}"#,
            "[DONE]",
            r#"{"choices":[],"usage":{"completion_tokens":9}}"#,
        ]);
        assert_eq!(record.completion_tokens, Some(2));
        assert_eq!(
            (record.conformance.usage_chunks, record.conformance.usage_last),
            (1, false)
        );
        assert_eq!(record.conformance.finish_reason.as_deref(), Some("length"));
    }

    #[test]
    fn json_string_characters_count_escapes_once() {
        assert_eq!(json_string_chars(r#""""#), Some(0));
        assert_eq!(json_string_chars(r#""héllo""#), Some(5));
        assert_eq!(json_string_chars(r#""a\n\"b\u00e9\ud83d\ude00""#), Some(6));
        assert_eq!(json_string_chars("null"), None);
        for text in ["plain", "é😀\n\t\"q\"", "\u{1F600} x"] {
            let json = serde_json::to_string(text).unwrap();
            assert_eq!(json_string_chars(&json), Some(text.chars().count()), "{json}");
        }
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
        let facts = &record.conformance;
        assert!(facts.error_chunk && facts.done && !facts.usage_last);
        assert_eq!(facts.finish_reason.as_deref(), Some("error"));

        // An `error` that is not an object is a problem, not an error chunk.
        let (record, outcome, _) = read(&[r#"{"error":"odd"}"#, "[DONE]"]);
        assert_eq!((outcome, record.conformance.error_chunk), (Outcome::StreamError, false));

        let (_, outcome, error) = read(&[content]);
        assert_eq!(outcome, Outcome::StreamError);
        assert!(error.unwrap().contains("[DONE]"));

        let (_, outcome, error) = read(&[content, "{\"choices\":[{\"delta\":{\"content\":\"tr", "[DONE]"]);
        assert_eq!(outcome, Outcome::StreamError);
        assert!(error.unwrap().starts_with("a malformed chunk"));
    }

    #[test]
    fn error_bodies_and_costs() {
        let error_message = |body: &[u8]| read_error_body(body).0;
        let shape = |body: &[u8]| read_error_body(body).1;
        assert_eq!(
            error_message(br#"{"error":{"message":"no such model","code":404}}"#).as_deref(),
            Some("no such model")
        );
        assert_eq!(error_message(br#"{"error":"plain"}"#).as_deref(), Some("plain"));
        assert_eq!(
            error_message(br#"{"error":{"message":7}}"#).as_deref(),
            Some(r#"{"message":7}"#)
        );
        assert_eq!(error_message(b"Bad Gateway").as_deref(), Some("Bad Gateway"));
        assert_eq!(error_message(b""), None);

        assert!(shape(br#"{"error":{"message":"m","code":404}}"#).ok);
        assert!(shape(br#"{"error":{"message":"m","code":"model_not_found"}}"#).ok);
        assert!(shape(br#"{"error":{"message":"m","type":"invalid_request_error","code":null}}"#).ok);
        for bad in [
            &br#"{"error":{"message":"","code":404}}"#[..],
            br#"{"error":{"message":"m"}}"#,
            br#"{"error":{"message":"m","code":null,"type":7}}"#,
            br#"{"error":"plain"}"#,
            br#"{"message":"m","code":404}"#,
            br#"[{"error":{"message":"m","code":404}}]"#,
            b"Bad Gateway",
            b"",
        ] {
            assert_eq!(shape(bad), ErrorShape::default(), "{}", String::from_utf8_lossy(bad));
        }
        let removed = shape(
            br#"{"error":{"message":"gone","code":404,"availability":{"code":"model_deprecated","fallback_models":["x",3,"y"]}}}"#,
        );
        assert_eq!(
            removed,
            ErrorShape {
                ok: true,
                availability_code: Some("model_deprecated".into()),
                fallback_models: vec!["x".into(), "y".into()],
            }
        );
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
