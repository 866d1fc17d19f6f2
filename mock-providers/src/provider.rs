//! One mock provider: its models, keys, faults and journal, and the handler
//! that turns a request into an answer. The HTTP server and the in-process
//! connector both call [`Provider::handle`].

use std::collections::HashMap;
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

use crate::config::{Behaviour, ConfigError, ModelConfig, ProviderConfig, validate_faults};
use crate::faults::{FaultAction, FaultSet, RawFault, Target};
use crate::journal::{CorrelationSource, Journal, Outcome, Record, Usage, to_ndjson};
use crate::limits::{Limiter, Permit, RateHeaders};
use crate::plan::{Ask, Plan, attempt_seed, fault_roll, plan};
use crate::stream::{MockBody, StreamBody, Writer};
use crate::tokens::{Fnv64, REQUEST_ID_HEADER};
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

/// How long a correlation id's attempt count is remembered, at least: longer
/// than any request's retries take (a router's deadline is seconds).
const ATTEMPT_MEMORY: Duration = Duration::from_secs(120);

/// Attempt numbers per correlation id, remembered for [`ATTEMPT_MEMORY`]
/// and then forgotten, so that a long run does not grow with its requests:
/// two generations of counts keyed by a hash of the id; every
/// [`ATTEMPT_MEMORY`] the older one is dropped. About 24 B per id of the
/// last two generations.
#[derive(Debug)]
struct AttemptCounter {
    current: HashMap<u64, u32>,
    previous: HashMap<u64, u32>,
    rotated: Instant,
}

impl AttemptCounter {
    fn new() -> Self {
        AttemptCounter {
            current: HashMap::new(),
            previous: HashMap::new(),
            rotated: Instant::now(),
        }
    }

    /// The next attempt number of `correlation`, from 1.
    fn next(&mut self, correlation: &str, now: Instant) -> u32 {
        if now.duration_since(self.rotated) >= ATTEMPT_MEMORY {
            self.previous = std::mem::take(&mut self.current);
            self.rotated = now;
        }
        let id = Fnv64::new(0).write(correlation.as_bytes()).finish();
        let earlier = self.previous.remove(&id).unwrap_or(0);
        let n = self.current.entry(id).or_insert(earlier);
        *n += 1;
        *n
    }
}

/// The journal record of an attempt in progress; pushed when finished, or
/// as `client_closed` when dropped unfinished.
#[derive(Debug)]
pub struct Attempt {
    journal: Journal,
    record: Option<Record>,
    received: Instant,
    include_usage: bool,
}

impl Attempt {
    pub fn token_sent(&mut self, at: Instant) {
        let Some(record) = self.record.as_mut() else { return };
        let us = self.journal.clock().at_us(at);
        record.first_token_us.get_or_insert(us);
        record.last_token_us = Some(us);
        record.tokens_sent += 1;
        let offset = at.saturating_duration_since(self.received).as_micros();
        record.token_offsets_us.push(u32::try_from(offset).unwrap_or(u32::MAX));
    }

    pub fn set_usage(&mut self, usage: Usage, reported: bool) {
        if let Some(record) = self.record.as_mut() {
            record.usage = reported.then_some(usage);
        }
    }

    pub fn include_usage(&self) -> bool {
        self.include_usage
    }

    fn set_fault(&mut self, name: &str, retry_after: Option<Duration>) {
        if let Some(record) = self.record.as_mut() {
            record.fault = Some(name.to_string());
            if retry_after.is_some() {
                record.retry_after_ms = retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            }
        }
    }

    pub fn finish(&mut self, status: u16, outcome: Outcome) {
        if let Some(mut record) = self.record.take() {
            record.status = status;
            record.outcome = outcome;
            record.finished_us = self.journal.clock().now_us();
            self.journal.push(record);
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        // The outcome set in advance (client_closed unless a fault said
        // otherwise, like a hang the client gave up on).
        if let Some(record) = self.record.as_ref() {
            let (status, outcome) = (record.status, record.outcome);
            self.finish(status, outcome);
        }
    }
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
    async fn complete<B>(self: Arc<Self>, req: Request<B>, reset: Option<ResetFlag>) -> Reply
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let received = Instant::now();
        let clock = *self.journal.clock();
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let header_id = req
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        let upstream_key = self.upstream_key(&req);
        let mut attempt = Attempt {
            journal: self.journal.clone(),
            record: Some(Record {
                seq: 0,
                correlation_id: header_id.clone(),
                correlation_source: if header_id.is_some() {
                    CorrelationSource::Header
                } else {
                    CorrelationSource::None
                },
                attempt: 1,
                provider: self.name.to_string(),
                dialect: self.dialect,
                model: None,
                upstream_key: upstream_key.clone(),
                system_prompt: None,
                stream: false,
                max_tokens: None,
                received_us: clock.at_us(received),
                first_token_us: None,
                last_token_us: None,
                finished_us: 0,
                tokens_sent: 0,
                token_offsets_us: Vec::new(),
                usage: None,
                status: 0,
                outcome: Outcome::ClientClosed,
                retry_after_ms: None,
                fault: None,
            }),
            received,
            include_usage: false,
        };

        let bytes = match read_body(req.into_body()).await {
            Ok(bytes) => bytes,
            Err((status, message)) => {
                return Ok(self.refuse(&mut attempt, status, Outcome::BadRequest, &message, None));
            }
        };
        let ask = match serde_json::from_slice::<Value>(&bytes) {
            Err(e) => Err(format!("the request body is not valid JSON: {e}")),
            Ok(value) => match self.dialect {
                Dialect::OpenAi => openai::parse(&value),
                Dialect::Anthropic => anthropic::parse(&value),
            },
        };
        let ask = match ask {
            Ok(ask) => ask,
            Err(message) => {
                return Ok(self.refuse(
                    &mut attempt,
                    StatusCode::BAD_REQUEST,
                    Outcome::BadRequest,
                    &message,
                    None,
                ));
            }
        };

        // Correlation: the header, else the prompt nonce, else the sequence number.
        let correlation = header_id.clone().or_else(|| ask.nonce.clone());
        let attempt_no = correlation.as_deref().map_or(1, |c| self.next_attempt(c));
        if let Some(record) = attempt.record.as_mut() {
            if header_id.is_none() && ask.nonce.is_some() {
                record.correlation_id = ask.nonce.clone();
                record.correlation_source = CorrelationSource::Nonce;
            }
            record.attempt = attempt_no;
            record.model = Some(ask.model.clone());
            record.system_prompt = ask.system.clone();
            record.stream = ask.stream;
            record.max_tokens = ask.max_tokens;
        }
        attempt.include_usage = ask.include_usage;

        let limiter = match (&upstream_key, self.keys.is_empty()) {
            (_, true) => None,
            (Some(key), false) => match self.keys.get(key) {
                Some(limiter) => Some(limiter),
                None => {
                    let message = "Incorrect API key provided.";
                    return Ok(self.refuse(
                        &mut attempt,
                        StatusCode::UNAUTHORIZED,
                        Outcome::Unauthorized,
                        message,
                        None,
                    ));
                }
            },
            (None, false) => {
                let message = "You didn't provide an API key.";
                return Ok(self.refuse(
                    &mut attempt,
                    StatusCode::UNAUTHORIZED,
                    Outcome::Unauthorized,
                    message,
                    None,
                ));
            }
        };

        let (behaviour, tool_call) = match self.models.get(&ask.model) {
            Some(model) if !model.removed => (&model.behaviour, model.tool_call.as_ref()),
            None if self.models.is_empty() => (&self.defaults, None),
            _ => {
                let message = format!(
                    "The model `{}` does not exist or you do not have access to it.",
                    ask.model
                );
                let code = Some("model_not_found");
                return Ok(self.refuse(
                    &mut attempt,
                    StatusCode::NOT_FOUND,
                    Outcome::ModelNotFound,
                    &message,
                    code,
                ));
            }
        };

        let seed_key = correlation.unwrap_or_else(|| format!("#{sequence}"));
        let seed = attempt_seed(self.seed, &self.name, &ask.model, &seed_key);
        let plan = plan(seed, attempt_no, behaviour, tool_call, &ask);

        let (permit, rate_headers) = match limiter {
            None => (None, RateHeaders::default()),
            Some(limiter) => {
                let estimate = ask.prompt_tokens.saturating_add(
                    ask.max_tokens
                        .unwrap_or(behaviour.output_tokens.median().round() as u32),
                );
                match limiter.admit(received, estimate) {
                    Ok((permit, headers)) => (Some(permit), headers),
                    Err(refusal) => {
                        if let Some(record) = attempt.record.as_mut() {
                            record.retry_after_ms =
                                Some(u64::try_from(refusal.retry_after.as_millis()).unwrap_or(u64::MAX));
                        }
                        let mut response = self.refuse(
                            &mut attempt,
                            StatusCode::TOO_MANY_REQUESTS,
                            Outcome::RateLimited,
                            &refusal.message,
                            None,
                        );
                        add_rate_headers(&mut response, &refusal.headers);
                        add_retry_after(&mut response, refusal.retry_after);
                        return Ok(response);
                    }
                }
            }
        };

        let roll = fault_roll(seed, attempt_no);
        let tokens = plan.pieces.len() as u32;
        let target = Target {
            model: &ask.model,
            key: upstream_key.as_deref(),
            roll,
            tokens,
        };
        let fault = self.faults.pick(received, target);
        let mut start = received;
        let mut midstream = None;
        if let Some(fault) = &fault {
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
                    let mut response = self.refuse(&mut attempt, status, Outcome::FaultStatus, &message, None);
                    add_rate_headers(&mut response, &rate_headers);
                    if let Some(after) = retry_after {
                        add_retry_after(&mut response, after);
                    }
                    return Ok(response);
                }
                FaultAction::Hang { duration } => {
                    if let Some(record) = attempt.record.as_mut() {
                        record.outcome = Outcome::Hang;
                    }
                    tokio::time::sleep(duration).await;
                    attempt.finish(0, Outcome::Hang);
                    return Err(Abort("hang fault"));
                }
                FaultAction::Reset { after_tokens: None } => {
                    if let Some(flag) = &reset {
                        flag.store(true, Ordering::Release);
                    }
                    attempt.finish(0, Outcome::Reset);
                    return Err(Abort("reset fault"));
                }
                FaultAction::SlowFirstByte { delay } => start += delay,
                FaultAction::Status {
                    after_tokens: Some(k), ..
                }
                | FaultAction::Cut { after_tokens: k }
                | FaultAction::MalformedChunk { after_tokens: k }
                | FaultAction::Reset { after_tokens: Some(k) } => midstream = Some((fault.action, k)),
            }
        }

        if ask.stream {
            sleep_until_due(start).await;
            let created = clock.now_us() / 1_000_000;
            let writer = match self.dialect {
                Dialect::OpenAi => {
                    Writer::OpenAi(openai::ChunkWriter::new(&plan, &ask.model, created, ask.include_usage))
                }
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
            return Ok(response);
        }
        self.answer_whole(attempt, plan, &ask, start, midstream, reset, rate_headers, permit)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn answer_whole(
        &self,
        mut attempt: Attempt,
        plan: Plan,
        ask: &Ask,
        start: Instant,
        midstream: Option<(FaultAction, u32)>,
        reset: Option<ResetFlag>,
        rate_headers: RateHeaders,
        permit: Option<Permit>,
    ) -> Reply {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_numbers_survive_one_rotation_and_are_forgotten_after_two() {
        let mut counter = AttemptCounter::new();
        let start = counter.rotated;
        assert_eq!(counter.next("r1", start), 1);
        assert_eq!(counter.next("r1", start), 2);
        assert_eq!(counter.next("r2", start), 1);
        // Rotated once: r1 is still remembered, and moves to the current generation.
        let later = start + ATTEMPT_MEMORY;
        assert_eq!(counter.next("r1", later), 3);
        // Rotated again: r2 (untouched for a generation) is forgotten, r1 is not.
        let much_later = later + ATTEMPT_MEMORY;
        assert_eq!(counter.next("r2", much_later), 1);
        assert_eq!(counter.next("r1", much_later), 4);
        assert!(counter.previous.len() + counter.current.len() <= 3);
    }
}
