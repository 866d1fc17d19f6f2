//! One mock provider: its models, keys, faults and journal, and the handler
//! that turns a request into an answer. The HTTP server and the in-process
//! connector both call [`Provider::handle`].

use std::collections::HashMap;
use std::ops::ControlFlow;
type BoxError = Box<dyn std::error::Error + Send + Sync>;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use tokio::time::Instant;

pub use crate::attempt::Attempt;
use crate::attempt::AttemptCounter;
use crate::config::{Behaviour, ConfigError, ModelConfig, ProviderConfig, ToolCall, validate_faults};
use crate::faults::{Fault, FaultAction, FaultSet, RawFault, Target};
use crate::journal::{Journal, Outcome, to_ndjson};
use crate::limits::{Limiter, Permit, RateHeaders};
use crate::plan::{Ask, Plan, attempt_seed, fault_roll, plan};
use crate::stream::{MockBody, StreamBody, Writer};
use crate::tokens::REQUEST_ID_HEADER;
use crate::{Dialect, anthropic, openai};

/// The largest request body the mock reads.
pub const MAX_BODY_BYTES: usize = 4 << 20;

/// The handler gave up on the connection (a hang, cut or reset fault, or a
/// client that went away mid-request): hyper closes it without an answer.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped: {0}")]
pub struct Abort(pub &'static str);

/// A per-connection flag: set, the connection is closed with a TCP reset.
pub type ResetFlag = Arc<AtomicBool>;

#[derive(Debug)]
pub struct Provider {
    name: Arc<str>,
    dialect: Dialect,
    seed: u64,
    defaults: Behaviour,
    models: HashMap<String, ModelConfig>,
    model_order: Vec<String>,
    keys: HashMap<String, Limiter>,
    faults: FaultSet,
    journal: Journal,
    attempts: Mutex<AttemptCounter>,
    sequence: AtomicU64,
}

/// The message that goes with an error status a fault sends.
pub fn status_message(status: u16) -> String {
    match status {
        429 => "Rate limit reached for requests (injected by gauntlet)".to_string(),
        529 => "Overloaded".to_string(),
        500 => "The server had an error while processing your request (injected by gauntlet)".to_string(),
        502 => "Bad gateway (injected by gauntlet)".to_string(),
        503 => "The engine is currently overloaded, please try again later (injected by gauntlet)".to_string(),
        s => format!("Upstream error {s} (injected by gauntlet)"),
    }
}

type Reply = Result<Response<MockBody>, Abort>;

/// A step of [`Provider::complete`]: go on with its value, or answer with
/// the refusal it made (already recorded).
type Refusable<T> = ControlFlow<Response<MockBody>, T>;

/// An attempt admitted and planned: everything its answer needs.
struct Answer {
    attempt: Attempt,
    plan: Plan,
    /// When the answer is due to begin (after any slow-first-byte fault).
    start: Instant,
    /// A fault that strikes during the answer, after this many pieces.
    midstream: Option<(FaultAction, u32)>,
    reset: Option<ResetFlag>,
    rate_headers: RateHeaders,
    /// The concurrency slot held until the answer ends.
    permit: Option<Permit>,
}

impl Provider {
    pub fn new(config: ProviderConfig, journal: Journal) -> Self {
        let model_order = config.models.iter().map(|m| m.id.clone()).collect();
        Provider {
            name: Arc::from(config.name.as_str()),
            dialect: config.dialect,
            seed: config.seed,
            defaults: config.defaults,
            models: config.models.into_iter().map(|m| (m.id.clone(), m)).collect(),
            model_order,
            keys: config
                .keys
                .into_iter()
                .map(|k| (k.key, Limiter::new(k.limits)))
                .collect(),
            faults: FaultSet::new(config.faults),
            journal,
            attempts: Mutex::new(AttemptCounter::new()),
            sequence: AtomicU64::new(0),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    pub fn faults(&self) -> &FaultSet {
        &self.faults
    }

    /// Replaces the fault list (windows count from now).
    pub fn set_faults(&self, raw: &[RawFault]) -> Result<(), ConfigError> {
        let faults = validate_faults(raw, "faults")?;
        self.faults.replace(faults);
        Ok(())
    }

    /// Answers one HTTP request. `reset` is the connection's reset flag, when
    /// there is a TCP connection to reset.
    pub async fn handle<B>(self: Arc<Self>, req: Request<B>, reset: Option<ResetFlag>) -> Reply
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let path = req.uri().path();
        let method = req.method().clone();
        match (&method, path) {
            (&Method::GET, "/__gauntlet/health") => Ok(json_response(
                StatusCode::OK,
                serde_json::json!({"ok": true, "provider": &*self.name}).to_string(),
            )),
            (&Method::GET, "/__gauntlet/journal") => {
                let since = query_param(req.uri().query(), "since")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let body = to_ndjson(&self.journal.since(since));
                Ok(with_type(Response::new(MockBody::full(body)), "application/x-ndjson"))
            }
            (&Method::DELETE, "/__gauntlet/journal") => {
                self.journal.clear();
                Ok(empty(StatusCode::NO_CONTENT))
            }
            (&Method::GET, "/__gauntlet/faults") => {
                let list: Vec<Value> = self
                    .faults
                    .list()
                    .iter()
                    .map(|f| {
                        let mut v = serde_json::to_value(f.raw()).unwrap_or_default();
                        v["hits"] = f.hits().into();
                        v
                    })
                    .collect();
                Ok(json_response(StatusCode::OK, Value::Array(list).to_string()))
            }
            (&Method::PUT, "/__gauntlet/faults") => Ok(self.put_faults(req).await),
            (&Method::DELETE, "/__gauntlet/faults") => {
                self.faults.replace(Vec::new());
                Ok(empty(StatusCode::NO_CONTENT))
            }
            (&Method::GET, "/v1/models" | "/models") => Ok(self.list_models()),
            (&Method::POST, "/v1/chat/completions" | "/chat/completions") if self.dialect == Dialect::OpenAi => {
                self.complete(req, reset).await
            }
            (&Method::POST, "/v1/messages" | "/messages") if self.dialect == Dialect::Anthropic => {
                self.complete(req, reset).await
            }
            _ => Ok(self.error(
                StatusCode::NOT_FOUND,
                &format!("no route for {method} {path}"),
                Some("not_found"),
            )),
        }
    }

    async fn put_faults<B>(&self, req: Request<B>) -> Response<MockBody>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let bytes = match read_body(req.into_body()).await {
            Ok(b) => b,
            Err((status, message)) => return self.error(status, &message, None),
        };
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let raw: Vec<RawFault> = match serde_path_to_error::deserialize(&mut de) {
            Ok(raw) => raw,
            Err(e) => {
                let message = format!("faults{}: {}", path_suffix(&e.path().to_string()), e.inner());
                return self.error(StatusCode::BAD_REQUEST, &message, None);
            }
        };
        match self.set_faults(&raw) {
            Ok(()) => json_response(StatusCode::OK, serde_json::json!({"installed": raw.len()}).to_string()),
            Err(e) => self.error(StatusCode::BAD_REQUEST, &format!("{}: {}", e.path, e.message), None),
        }
    }

    fn list_models(&self) -> Response<MockBody> {
        let data: Vec<Value> = self
            .model_order
            .iter()
            .filter_map(|id| self.models.get(id))
            .filter(|m| !m.removed)
            .map(|m| match self.dialect {
                Dialect::OpenAi => serde_json::json!({"id": m.id, "object": "model", "created": 1_700_000_000, "owned_by": &*self.name}),
                Dialect::Anthropic => serde_json::json!({"id": m.id, "type": "model", "display_name": m.id, "created_at": "2025-01-01T00:00:00Z"}),
            })
            .collect();
        let body = match self.dialect {
            Dialect::OpenAi => serde_json::json!({"object": "list", "data": data}),
            Dialect::Anthropic => {
                serde_json::json!({"data": data, "has_more": false, "first_id": null, "last_id": null})
            }
        };
        json_response(StatusCode::OK, body.to_string())
    }

    fn error(&self, status: StatusCode, message: &str, code: Option<&str>) -> Response<MockBody> {
        let body = match self.dialect {
            Dialect::OpenAi => openai::error(status.as_u16(), message, code),
            Dialect::Anthropic => anthropic::error(status.as_u16(), message),
        };
        let mut response = json_response(status, body);
        if status == StatusCode::UNAUTHORIZED && self.dialect == Dialect::OpenAi {
            response
                .headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        }
        response
    }

    fn upstream_key<B>(&self, req: &Request<B>) -> Option<String> {
        let headers = req.headers();
        let bearer = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim);
        let key = match self.dialect {
            Dialect::OpenAi => bearer.or(api_key),
            Dialect::Anthropic => api_key.or(bearer),
        };
        key.filter(|k| !k.is_empty()).map(str::to_string)
    }

    fn next_attempt(&self, correlation: &str) -> u32 {
        self.attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next(correlation, Instant::now())
    }

    /// A chat completion or message: the attempt the journal records.
    /// Read the ask, correlate it, check the key and the model, plan the
    /// answer, admit it under the key's limits, play a fault if one applies,
    /// then answer, streamed or whole.
    async fn complete<B>(self: Arc<Self>, req: Request<B>, reset: Option<ResetFlag>) -> Reply
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let received = Instant::now();
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let header_id = req
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        let upstream_key = self.upstream_key(&req);
        let mut attempt = Attempt::open(
            self.journal.clone(),
            &self.name,
            self.dialect,
            received,
            header_id.clone(),
            upstream_key.clone(),
        );
        let ask = match self.read_ask(&mut attempt, req.into_body()).await {
            ControlFlow::Continue(ask) => ask,
            ControlFlow::Break(refusal) => return Ok(refusal),
        };

        // Correlation: the header, else the prompt nonce, else the sequence number.
        let correlation = header_id.clone().or_else(|| ask.nonce.clone());
        let attempt_no = correlation.as_deref().map_or(1, |c| self.next_attempt(c));
        attempt.describe(&ask, attempt_no, header_id.is_none());

        let limiter = match self.limiter(&mut attempt, upstream_key.as_deref()) {
            ControlFlow::Continue(limiter) => limiter,
            ControlFlow::Break(refusal) => return Ok(refusal),
        };
        let (behaviour, tool_call) = match self.model(&mut attempt, &ask.model) {
            ControlFlow::Continue(model) => model,
            ControlFlow::Break(refusal) => return Ok(refusal),
        };

        let seed_key = correlation.unwrap_or_else(|| format!("#{sequence}"));
        let seed = attempt_seed(self.seed, &self.name, &ask.model, &seed_key);
        let plan = plan(seed, attempt_no, behaviour, tool_call, &ask);

        let (permit, rate_headers) = match limiter {
            None => (None, RateHeaders::default()),
            Some(limiter) => match self.admit(&mut attempt, limiter, behaviour, &ask, received) {
                ControlFlow::Continue((permit, headers)) => (Some(permit), headers),
                ControlFlow::Break(refusal) => return Ok(refusal),
            },
        };

        let target = Target {
            model: &ask.model,
            key: upstream_key.as_deref(),
            roll: fault_roll(seed, attempt_no),
            tokens: plan.pieces.len() as u32,
        };
        let (start, midstream) = match self.faults.pick(received, target) {
            None => (received, None),
            Some(fault) => match self
                .open_fault(&mut attempt, &fault, received, &rate_headers, reset.as_ref())
                .await
            {
                ControlFlow::Continue(begun) => begun,
                ControlFlow::Break(reply) => return reply,
            },
        };

        let answer = Answer {
            attempt,
            plan,
            start,
            midstream,
            reset,
            rate_headers,
            permit,
        };
        if ask.stream {
            return Ok(self.answer_stream(answer, &ask).await);
        }
        self.answer_whole(answer, &ask).await
    }

    /// The request body read and parsed in the provider's dialect, or the
    /// 400 (or 413) that refuses it.
    async fn read_ask<B>(&self, attempt: &mut Attempt, body: B) -> Refusable<Ask>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let bytes = match read_body(body).await {
            Ok(bytes) => bytes,
            Err((status, message)) => {
                return ControlFlow::Break(self.refuse(attempt, status, Outcome::BadRequest, &message, None));
            }
        };
        let ask = match serde_json::from_slice::<Value>(&bytes) {
            Err(e) => Err(format!("the request body is not valid JSON: {e}")),
            Ok(value) => match self.dialect {
                Dialect::OpenAi => openai::parse(&value),
                Dialect::Anthropic => anthropic::parse(&value),
            },
        };
        match ask {
            Ok(ask) => ControlFlow::Continue(ask),
            Err(message) => {
                ControlFlow::Break(self.refuse(attempt, StatusCode::BAD_REQUEST, Outcome::BadRequest, &message, None))
            }
        }
    }

    /// The limiter of the key the request came with (none when the provider
    /// has no keys), or the 401 for a missing or unknown key.
    fn limiter(&self, attempt: &mut Attempt, upstream_key: Option<&str>) -> Refusable<Option<&Limiter>> {
        if self.keys.is_empty() {
            return ControlFlow::Continue(None);
        }
        let message = match upstream_key {
            Some(key) => match self.keys.get(key) {
                Some(limiter) => return ControlFlow::Continue(Some(limiter)),
                None => "Incorrect API key provided.",
            },
            None => "You didn't provide an API key.",
        };
        ControlFlow::Break(self.refuse(attempt, StatusCode::UNAUTHORIZED, Outcome::Unauthorized, message, None))
    }

    /// How the asked model behaves and the tool call it makes (the defaults
    /// when the provider lists no models), or the 404 for a model it does
    /// not serve.
    fn model(&self, attempt: &mut Attempt, model: &str) -> Refusable<(&Behaviour, Option<&ToolCall>)> {
        match self.models.get(model) {
            Some(model) if !model.removed => ControlFlow::Continue((&model.behaviour, model.tool_call.as_ref())),
            None if self.models.is_empty() => ControlFlow::Continue((&self.defaults, None)),
            _ => {
                let message = format!("The model `{model}` does not exist or you do not have access to it.");
                let code = Some("model_not_found");
                ControlFlow::Break(self.refuse(attempt, StatusCode::NOT_FOUND, Outcome::ModelNotFound, &message, code))
            }
        }
    }

    /// The key's permit for the ask's estimated tokens, or the 429 that
    /// refuses it (with its rate headers and Retry-After).
    fn admit(
        &self,
        attempt: &mut Attempt,
        limiter: &Limiter,
        behaviour: &Behaviour,
        ask: &Ask,
        received: Instant,
    ) -> Refusable<(Permit, RateHeaders)> {
        let estimate = ask.prompt_tokens.saturating_add(
            ask.max_tokens
                .unwrap_or(behaviour.output_tokens.median().round() as u32),
        );
        let refusal = match limiter.admit(received, estimate) {
            Ok(admitted) => return ControlFlow::Continue(admitted),
            Err(refusal) => refusal,
        };
        if let Some(record) = attempt.record.as_mut() {
            record.retry_after_ms = Some(u64::try_from(refusal.retry_after.as_millis()).unwrap_or(u64::MAX));
        }
        let mut response = self.refuse(
            attempt,
            StatusCode::TOO_MANY_REQUESTS,
            Outcome::RateLimited,
            &refusal.message,
            None,
        );
        add_rate_headers(&mut response, &refusal.headers);
        add_retry_after(&mut response, refusal.retry_after);
        ControlFlow::Break(response)
    }

    /// Plays the part of `fault` that comes before the answer: a status, a
    /// hang or a reset ends the attempt here; a slow first byte moves the
    /// start; a mid-answer fault is handed on with its token. Continues with
    /// when the answer starts and the mid-answer fault.
    async fn open_fault(
        &self,
        attempt: &mut Attempt,
        fault: &Fault,
        received: Instant,
        rate_headers: &RateHeaders,
        reset: Option<&ResetFlag>,
    ) -> ControlFlow<Reply, (Instant, Option<(FaultAction, u32)>)> {
        let mut start = received;
        let mut midstream = None;
        let retry_after = match fault.action {
            FaultAction::Status { retry_after, .. } => retry_after,
            _ => None,
        };
        attempt.set_fault(&fault.name, retry_after);
        match fault.action {
            FaultAction::Status {
                status,
                retry_after,
                after_tokens: None,
            } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let message = status_message(status.as_u16());
                let mut response = self.refuse(attempt, status, Outcome::FaultStatus, &message, None);
                add_rate_headers(&mut response, rate_headers);
                if let Some(after) = retry_after {
                    add_retry_after(&mut response, after);
                }
                return ControlFlow::Break(Ok(response));
            }
            FaultAction::Hang { duration } => {
                if let Some(record) = attempt.record.as_mut() {
                    record.outcome = Outcome::Hang;
                }
                tokio::time::sleep(duration).await;
                attempt.finish(0, Outcome::Hang);
                return ControlFlow::Break(Err(Abort("hang fault")));
            }
            FaultAction::Reset { after_tokens: None } => {
                if let Some(flag) = reset {
                    flag.store(true, Ordering::Release);
                }
                attempt.finish(0, Outcome::Reset);
                return ControlFlow::Break(Err(Abort("reset fault")));
            }
            FaultAction::SlowFirstByte { delay } => start += delay,
            FaultAction::Status {
                after_tokens: Some(k), ..
            }
            | FaultAction::Cut { after_tokens: k }
            | FaultAction::MalformedChunk { after_tokens: k }
            | FaultAction::Reset { after_tokens: Some(k) } => midstream = Some((fault.action, k)),
        }
        ControlFlow::Continue((start, midstream))
    }

    /// A streamed answer: the head now (once the start is due), the chunks
    /// as the body is polled.
    async fn answer_stream(&self, answer: Answer, ask: &Ask) -> Response<MockBody> {
        let Answer {
            mut attempt,
            plan,
            start,
            midstream,
            reset,
            rate_headers,
            permit,
        } = answer;
        sleep_until_due(start).await;
        let created = self.journal.clock().now_us() / 1_000_000;
        let writer = match self.dialect {
            Dialect::OpenAi => Writer::OpenAi(openai::ChunkWriter::new(&plan, &ask.model, created, ask.include_usage)),
            Dialect::Anthropic => Writer::Anthropic(anthropic::EventWriter::new(&plan, &ask.model)),
        };
        if let Some(record) = attempt.record.as_mut() {
            record.status = 200;
        }
        let body = StreamBody::new(writer, plan, start, midstream, attempt, reset, permit);
        let mut response = Response::new(MockBody::Stream(Box::new(body)));
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        add_rate_headers(&mut response, &rate_headers);
        response
    }

    /// A whole answer, sent once generated (or cut, or refused, by a
    /// mid-answer fault).
    async fn answer_whole(&self, answer: Answer, ask: &Ask) -> Reply {
        let Answer {
            mut attempt,
            plan,
            start,
            midstream,
            reset,
            rate_headers,
            permit,
        } = answer;
        let until_piece = |k: usize| start + plan.ttft + plan.gaps.iter().take(k.saturating_sub(1)).sum::<Duration>();
        // The fault set only picks mid-answer faults the answer reaches.
        let mut malformed = false;
        if let Some((action, k)) = midstream {
            let k = k as usize;
            match action {
                FaultAction::Status { status, .. } => {
                    tokio::time::sleep_until(until_piece(k)).await;
                    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    let message = status_message(status.as_u16());
                    return Ok(self.refuse(&mut attempt, status, Outcome::FaultStatus, &message, None));
                }
                FaultAction::Cut { .. } | FaultAction::Reset { .. } => {
                    tokio::time::sleep_until(until_piece(k)).await;
                    let is_reset = matches!(action, FaultAction::Reset { .. });
                    if let (true, Some(flag)) = (is_reset, &reset) {
                        flag.store(true, Ordering::Release);
                    }
                    attempt.finish(0, if is_reset { Outcome::Reset } else { Outcome::Cut });
                    return Err(Abort("cut or reset fault"));
                }
                FaultAction::MalformedChunk { .. } => malformed = true,
                FaultAction::Hang { .. } | FaultAction::SlowFirstByte { .. } => {}
            }
        }
        sleep_until_due(start + plan.generation_time()).await;
        let mut body = match self.dialect {
            Dialect::OpenAi => openai::completion(&plan, &ask.model, self.journal.clock().now_us() / 1_000_000),
            Dialect::Anthropic => anthropic::message(&plan, &ask.model),
        };
        if malformed {
            body.truncate(body.len() / 2);
        }
        let now = Instant::now();
        if let Some(record) = attempt.record.as_mut() {
            let us = self.journal.clock().at_us(now);
            record.first_token_us = Some(us);
            record.last_token_us = Some(us);
            record.tokens_sent = plan.pieces.len() as u32;
            // Every token of a whole answer leaves at once, with the response.
            let offset = now.saturating_duration_since(attempt.received).as_micros();
            record.token_offsets_us = vec![u32::try_from(offset).unwrap_or(u32::MAX); plan.pieces.len()];
            record.usage = Some(plan.usage);
        }
        attempt.finish(200, if malformed { Outcome::Malformed } else { Outcome::Ok });
        drop(permit);
        let mut response = json_response(StatusCode::OK, body);
        add_rate_headers(&mut response, &rate_headers);
        Ok(response)
    }

    /// Answers an attempt with an error and records it.
    fn refuse(
        &self,
        attempt: &mut Attempt,
        status: StatusCode,
        outcome: Outcome,
        message: &str,
        code: Option<&str>,
    ) -> Response<MockBody> {
        attempt.finish(status.as_u16(), outcome);
        self.error(status, message, code)
    }
}

/// Sleeps until `deadline`; one that has passed (a zero-delay model) costs
/// no timer registration.
async fn sleep_until_due(deadline: Instant) {
    if Instant::now() < deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

async fn read_body<B>(body: B) -> Result<Bytes, (StatusCode, String)>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        )),
        Err(e) => Err((StatusCode::BAD_REQUEST, format!("could not read the request body: {e}"))),
    }
}

fn path_suffix(path: &str) -> String {
    if path == "." || path.is_empty() {
        String::new()
    } else {
        format!("{}{path}", if path.starts_with('[') { "" } else { "." })
    }
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<MockBody> {
    let mut response = Response::new(MockBody::full(body));
    *response.status_mut() = status;
    with_type(response, "application/json")
}

fn with_type(mut response: Response<MockBody>, content_type: &'static str) -> Response<MockBody> {
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn empty(status: StatusCode) -> Response<MockBody> {
    let mut response = Response::new(MockBody::Full(None));
    *response.status_mut() = status;
    response
}

fn add_rate_headers(response: &mut Response<MockBody>, headers: &RateHeaders) {
    for (name, value) in headers.pairs() {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
}

/// `retry-after` in whole seconds (rounded up, as the header allows no
/// fraction) and `retry-after-ms` exactly, as OpenAI sends both.
fn add_retry_after(response: &mut Response<MockBody>, after: Duration) {
    let ms = after.as_millis();
    let secs = ms.div_ceil(1000);
    let headers = response.headers_mut();
    headers.insert(
        http::header::RETRY_AFTER,
        HeaderValue::from(u64::try_from(secs).unwrap_or(u64::MAX)),
    );
    headers.insert(
        "retry-after-ms",
        HeaderValue::from(u64::try_from(ms).unwrap_or(u64::MAX)),
    );
}
