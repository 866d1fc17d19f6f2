//! `POST /chat/completions`: the request's whole life in the router.
//!
//! 1. Validate the body and resolve the model at the clock's calendar time
//!    (404 for unknown or removed models, before anything else is spent).
//! 2. Admit it under the key's limits, then reserve its worst-case cost
//!    (402 when the balance cannot cover it).
//! 3. Try the model's providers through the retry module. A streaming
//!    attempt counts as served only once its first upstream bytes arrived,
//!    so a stream that dies before its first byte is still retried.
//! 4. Price the usage the serving provider reported at the serving model's
//!    prices, settle it durably, and only then tell the client the cost:
//!    in `usage` of a whole answer, or in the final `choices: []` chunk.
//!
//! Failed requests release their reservation and are charged nothing. A
//! stream the client abandons is charged for what was generated up to then.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::body::RouterBody;
use super::catalog::{Model, Resolution};
use super::config::{Dialect, KeyConfig, Upstream};
use super::error::ApiError;
use super::ledger::{GenerationRecord, Reservation};
use super::limits::{self, Admission};
use super::pricing::{Picodollars, Prices};
use super::request::{self, ChatRequest};
use super::retry::{AttemptCtx, Exhausted, Failure, FailureKind, ProviderRef};
use super::sse::{SseItem, SseParser};
use super::state::State;
use super::transcode::{self, Completion, FinishReason, StreamTranslator, UpstreamUsage, UsageReport};
use super::upstream::{self, Head, REQUEST_ID};

/// The response header naming the model the client asked for, when another
/// one served it (a deprecation grace period).
pub const ORIGINAL_MODEL: HeaderName = HeaderName::from_static("x-original-model");
/// The response header with the generation id (`GET /generation?id=`).
pub const GENERATION_ID: HeaderName = HeaderName::from_static("x-generation-id");
/// The keep-alive comment sent while waiting for the first token.
pub const KEEP_ALIVE: &[u8] = b": PROCESSING\n\n";
/// The largest upstream error body read (to keep the connection reusable).
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Everything decided before the first upstream attempt.
struct Prepared {
    key: Arc<KeyConfig>,
    req: ChatRequest,
    model: Arc<Model>,
    requested: Arc<Model>,
    generation_id: String,
    created: u64,
    created_at_us: i64,
    received: Instant,
}

/// What a successful attempt hands on.
enum Served {
    Whole(Completion),
    Stream {
        response: hyper::Response<Incoming>,
        first: Bytes,
    },
}

pub(crate) async fn complete(
    state: Arc<State>,
    key: Arc<KeyConfig>,
    headers: &HeaderMap,
    bytes: Bytes,
) -> Result<Response<RouterBody>, ApiError> {
    let received = Instant::now();
    let req = request::parse(&bytes)?;
    let calendar = state.clock.at(received);
    let defects = state.config.defects;
    let (model, requested) = match state.config.catalog.resolve_with(&req.model, calendar, &defects) {
        Resolution::Serve { model, requested } => (model, requested),
        // The deliberate `removed-model-502` defect: the wrong status for a removed model.
        Resolution::Removed { model, .. } if defects.removed_model_502 => {
            return Err(ApiError::Upstream {
                status: 502,
                message: format!("no provider could serve the model `{}`", model.id),
                retry_after: None,
                metadata: json!({"reason": "model unavailable"}),
            });
        }
        Resolution::Removed { model, replacement } => {
            return Err(ApiError::ModelRemoved {
                model: model.id.to_string(),
                replacement: replacement.to_string(),
            });
        }
        Resolution::Unknown => return Err(ApiError::ModelNotFound(req.model.clone())),
    };

    // The worst case covers the system prefix the router adds, and for a BYOK
    // key whose every route is its own provider, only the fee can be charged.
    let max_completion = u64::from(req.max_tokens.unwrap_or(model.default_max_tokens));
    let prefix_bound = model.system_prefix.as_deref().map_or(0, |p| p.len() as u64 + 8);
    let full_worst = model
        .prices
        .worst_case(req.prompt_bound + prefix_bound, max_completion)
        .map_err(|e| ApiError::BadRequest(format!("the request is too large to price: {e}")))?;
    let byok_only = key
        .byok
        .as_ref()
        .is_some_and(|b| model.routes.iter().all(|r| r.provider == b.provider));
    let worst_case = if byok_only {
        full_worst.basis_points(state.config.byok_fee_bps).unwrap_or(full_worst)
    } else {
        full_worst
    };
    let balance = state
        .ledger
        .balance(&key.key)
        .ok_or_else(|| ApiError::Internal("the key has no account".into()))?;
    let day = state.clock.day(received);
    let next_day = jiff::Timestamp::from_second((day + 1) * 86_400).unwrap_or(jiff::Timestamp::MAX);
    let admission = state
        .limiter
        .admit(
            &key.key,
            limits::Ask {
                model: &model.id,
                free: model.free,
                purchased: balance.credits,
                worst_case,
                now: received,
                day,
                until_next_day: state.clock.real_until(next_day),
            },
        )
        .map_err(ApiError::Limited)?;
    let reservation = if defects.no_overdraft_guard {
        state.ledger.reserve_unguarded(&key.key, worst_case)
    } else {
        state.ledger.reserve(&key.key, worst_case)
    }
    .map_err(ApiError::from)?;

    let n = state.next_generation.fetch_add(1, Ordering::Relaxed);
    let prepared = Prepared {
        generation_id: format!("gen-{}-{n:x}", state.generation_prefix),
        created: u64::try_from(calendar.as_second()).unwrap_or(0),
        created_at_us: calendar.as_microsecond(),
        key,
        req,
        model,
        requested,
        received,
    };

    let routes: Vec<ProviderRef> = prepared
        .model
        .routes
        .iter()
        .map(|r| ProviderRef::new(r.provider, Arc::clone(&state.config.providers[r.provider].name)))
        .collect();
    let bodies: Vec<Result<Bytes, String>> = prepared
        .model
        .routes
        .iter()
        .map(|r| upstream_body(&state, &prepared, r.provider, &r.upstream_model))
        .collect();
    let request_id = headers.get(REQUEST_ID).cloned();

    let outcome = state
        .retrier
        .run(&routes, |ctx: AttemptCtx| {
            let route = &prepared.model.routes[ctx.provider_index];
            let upstream = &state.config.providers[route.provider];
            let api_key = api_key_for(&prepared.key, route.provider, upstream);
            let body = bodies[ctx.provider_index].clone();
            let state = &state;
            let prepared = &prepared;
            let request_id = request_id.as_ref();
            async move {
                let body = body.map_err(|m| Failure::new(FailureKind::ClientError(400), m))?;
                attempt(state, prepared, upstream, &api_key, body, request_id, ctx)
                    .await
                    .map(|s| (s, route.provider))
            }
        })
        .await;

    let (served, provider) = match outcome {
        Ok(success) => success.value,
        Err(exhausted) => {
            if defects.charge_failed_requests {
                charge_exhausted(&state, &prepared, reservation, &exhausted).await;
            }
            return Err(upstream_error(&exhausted));
        }
    };
    match served {
        Served::Whole(completion) => finish_whole(&state, prepared, provider, reservation, admission, completion).await,
        Served::Stream { response, first } => Ok(start_relay(
            state,
            prepared,
            provider,
            reservation,
            admission,
            response,
            first,
        )),
    }
}

/// The key to call `provider` with: the user's own for their BYOK provider.
fn api_key_for(key: &KeyConfig, provider: usize, upstream: &Upstream) -> Arc<str> {
    match &key.byok {
        Some(byok) if byok.provider == provider => Arc::clone(&byok.api_key),
        _ => Arc::clone(&upstream.api_key),
    }
}

fn is_byok(key: &KeyConfig, provider: usize) -> bool {
    key.byok.as_ref().is_some_and(|b| b.provider == provider)
}

/// The request body in the provider's dialect, with the system prefix
/// applied and `max_tokens` set to what was reserved for, so the upstream can
/// never produce more than the reservation covers.
fn upstream_body(state: &State, p: &Prepared, provider: usize, upstream_model: &str) -> Result<Bytes, String> {
    let mut body = p.req.body.clone();
    if p.req.max_tokens.is_none() {
        body.insert("max_tokens".into(), Value::from(p.model.default_max_tokens));
    }
    let body = Value::Object(body);
    let prefix = if state.config.defects.skip_system_prefix {
        None
    } else {
        p.model.system_prefix.as_deref()
    };
    let translated = match state.config.providers[provider].dialect {
        Dialect::OpenAi => transcode::openai_request_for_upstream(&body, upstream_model, prefix, p.req.stream),
        Dialect::Anthropic => transcode::anthropic_request_from_openai(&body, upstream_model, prefix, p.req.stream)
            .map_err(|e| e.to_string())?,
    };
    serde_json::to_vec(&translated)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

fn failure_of(status: StatusCode) -> FailureKind {
    FailureKind::ClientError(status.as_u16()).normalized()
}

/// One upstream attempt, up to the point where the client would see a byte.
async fn attempt(
    state: &State,
    p: &Prepared,
    upstream: &Upstream,
    api_key: &str,
    body: Bytes,
    request_id: Option<&HeaderValue>,
    ctx: AttemptCtx,
) -> Result<Served, Failure> {
    let request = upstream::request(upstream, api_key, body, request_id).map_err(|e| {
        Failure::new(
            FailureKind::ClientError(400),
            format!("cannot build the upstream request: {e}"),
        )
    })?;
    let response = match tokio::time::timeout_at(ctx.first_byte_deadline, state.client.request(request)).await {
        Err(_) => {
            return Err(Failure::new(
                FailureKind::Timeout,
                "no response before the first-byte timeout",
            ));
        }
        Ok(Err(e)) if e.is_connect() => return Err(Failure::new(FailureKind::Connect, e.to_string())),
        Ok(Err(e)) => return Err(Failure::new(FailureKind::Reset, e.to_string())),
        Ok(Ok(response)) => response,
    };
    let response = match upstream::head(response) {
        Head::Ok(response) => response,
        Head::Failed {
            status,
            retry_after,
            body,
        } => {
            let detail = error_text(body, ctx.first_byte_deadline).await;
            return Err(Failure::new(
                failure_of(status),
                format!("{} answered {status}: {detail}", upstream.name),
            )
            .with_retry_after(retry_after));
        }
    };
    if p.req.stream {
        // Wait for the first bytes: a stream that dies before them is retried.
        let (parts, mut body) = response.into_parts();
        let first = loop {
            match tokio::time::timeout_at(ctx.first_byte_deadline, body.frame()).await {
                Err(_) => {
                    return Err(Failure::new(
                        FailureKind::Timeout,
                        "no stream bytes before the first-byte timeout",
                    ));
                }
                Ok(None) => {
                    return Err(Failure::new(
                        FailureKind::Reset,
                        "the upstream stream ended before any byte",
                    ));
                }
                Ok(Some(Err(e))) => return Err(Failure::new(FailureKind::Reset, e.to_string())),
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => break data,
                    _ => continue,
                },
            }
        };
        return Ok(Served::Stream {
            response: hyper::Response::from_parts(parts, body),
            first,
        });
    }
    let bytes = match tokio::time::timeout_at(ctx.deadline, response.into_body().collect()).await {
        Err(_) => {
            return Err(Failure::new(
                FailureKind::Timeout,
                "the upstream answer did not finish before the deadline",
            ));
        }
        Ok(Err(e)) => {
            return Err(Failure::new(
                FailureKind::Reset,
                format!("the upstream answer broke off: {e}"),
            ));
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let json: Value = serde_json::from_slice(&bytes).map_err(|e| {
        Failure::new(
            FailureKind::Reset,
            format!("the upstream answer is not valid JSON: {e}"),
        )
    })?;
    let translated = match upstream.dialect {
        Dialect::OpenAi => transcode::openai_response_passthrough(json, &p.generation_id, &p.model.id, p.created),
        Dialect::Anthropic => {
            transcode::openai_response_from_anthropic(&json, &p.generation_id, &p.model.id, p.created)
        }
    };
    translated
        .map(Served::Whole)
        .map_err(|e| Failure::new(FailureKind::Reset, format!("the upstream answer is not usable: {e}")))
}

/// The start of an upstream error body, read (up to [`ERROR_BODY_LIMIT`]) so
/// that the connection can be reused; empty if it does not come in time.
async fn error_text(body: Incoming, deadline: Instant) -> String {
    let limited = http_body_util::Limited::new(body, ERROR_BODY_LIMIT);
    let deadline = deadline.min(Instant::now() + Duration::from_secs(1));
    match tokio::time::timeout_at(deadline, limited.collect()).await {
        Ok(Ok(collected)) => {
            let text = String::from_utf8_lossy(&collected.to_bytes()).into_owned();
            text.chars().take(300).collect()
        }
        _ => String::new(),
    }
}

/// The client's error when every attempt failed, with what was tried.
fn upstream_error(exhausted: &Exhausted) -> ApiError {
    let tried: Vec<Value> = exhausted
        .attempts()
        .iter()
        .map(|a| {
            json!({
                "provider": &*a.provider.name,
                "attempt": a.attempt_on_provider,
                "status": a.status,
                "error": a.kind.map(|k| k.to_string()),
                "retry_after_ms": a.retry_after.map(|d| d.as_millis() as u64),
                "waited_ms": a.waited_before.as_millis() as u64,
            })
        })
        .collect();
    let last = exhausted.last_failure().map(|a| a.message.clone()).unwrap_or_default();
    ApiError::Upstream {
        status: exhausted.client_status(),
        message: format!("{exhausted}; last error: {last}"),
        retry_after: exhausted.retry_after(),
        metadata: json!({"reason": exhausted.reason().to_string(), "attempts": tried}),
    }
}

/// What a finished request costs: the serving model's price of the usage,
/// and the BYOK fee instead when the key's own provider key was used.
/// Returns (charge, cost). `held` is the reservation, which the deliberate
/// `charge-failed-requests` defect charges for a failed or empty answer.
fn price(
    state: &State,
    p: &Prepared,
    usage: &UpstreamUsage,
    failed: bool,
    byok: bool,
    held: Picodollars,
) -> (Picodollars, Picodollars) {
    let defects = &state.config.defects;
    let prices: &Prices = if defects.bill_requested_model {
        &p.requested.prices
    } else {
        &p.model.prices
    };
    let mut billed = usage.billed();
    if defects.double_count_cached_tokens {
        billed.uncached_prompt = usage.prompt_total;
    }
    let cost = prices.cost(&billed, failed).unwrap_or(Picodollars::ZERO);
    if defects.charge_failed_requests && (failed || billed.completion == 0) {
        return (held, cost);
    }
    let charge = if byok {
        cost.basis_points(state.config.byok_fee_bps).unwrap_or(cost)
    } else {
        cost
    };
    (charge, cost)
}

/// The deliberate `charge-failed-requests` defect for a request whose every
/// upstream attempt failed: if one reached an upstream, the whole
/// reservation is settled as its charge instead of being released.
async fn charge_exhausted(state: &State, p: &Prepared, reservation: Reservation, exhausted: &Exhausted) {
    let Some(last) = exhausted
        .attempts()
        .iter()
        .rfind(|a| a.kind != Some(FailureKind::Connect))
    else {
        return;
    };
    let held = reservation.amount();
    let usage = UpstreamUsage::default();
    let record = record(
        p,
        state,
        last.provider.id,
        &usage,
        (held, Picodollars::ZERO),
        Some("error".to_string()),
        None,
    );
    // The client is told about the failure either way.
    let _ = state.ledger.settle(reservation, record).await;
}

fn record(
    p: &Prepared,
    state: &State,
    provider: usize,
    usage: &UpstreamUsage,
    (charge, cost): (Picodollars, Picodollars),
    finish: Option<String>,
    first_token: Option<Instant>,
) -> GenerationRecord {
    let now = Instant::now();
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let billed = usage.billed();
    GenerationRecord {
        id: p.generation_id.clone(),
        key: p.key.key.to_string(),
        model: p.model.id.to_string(),
        requested_model: p.requested.id.to_string(),
        provider_name: state.config.providers[provider].name.to_string(),
        total_cost: charge,
        upstream_cost: cost,
        is_byok: is_byok(&p.key, provider),
        tokens_prompt: billed.prompt_total(),
        tokens_completion: billed.completion,
        cache_read_tokens: billed.cache_read,
        cache_write_tokens: billed.cache_write,
        latency_ms: ms(now - p.received),
        generation_time_ms: first_token.map_or(0, |t| ms(now - t)),
        streamed: p.req.stream,
        finish_reason: finish,
        created_at_us: p.created_at_us,
    }
}

fn report(usage: &UpstreamUsage, charged: Picodollars, cost: Picodollars, byok: bool) -> UsageReport {
    UsageReport {
        usage: *usage,
        cost: charged,
        upstream_cost: cost,
        is_byok: byok,
    }
}

fn add_headers(headers: &mut HeaderMap, p: &Prepared) {
    if let Ok(v) = HeaderValue::from_str(&p.generation_id) {
        headers.insert(GENERATION_ID, v);
    }
    if p.requested.id != p.model.id
        && let Ok(v) = HeaderValue::from_str(&p.requested.id)
    {
        headers.insert(ORIGINAL_MODEL, v);
    }
}

/// Settles a whole answer and sends it with its usage and cost. An answer
/// without usage is charged nothing (the router bills only reported usage).
async fn finish_whole(
    state: &State,
    p: Prepared,
    provider: usize,
    reservation: Reservation,
    admission: Admission,
    completion: Completion,
) -> Result<Response<RouterBody>, ApiError> {
    let usage = completion.usage.unwrap_or_default();
    let failed = completion.finish_reason == FinishReason::Error;
    let byok = is_byok(&p.key, provider);
    let (charge, cost) = price(state, &p, &usage, failed, byok, reservation.amount());
    let finish = Some(completion.finish_reason.as_str().to_string());
    let record = record(&p, state, provider, &usage, (charge, cost), finish, None);
    let settlement = state.ledger.settle(reservation, record).await.map_err(ApiError::from)?;
    drop(admission);
    let bytes = transcode::with_usage(&completion.body, &report(&usage, settlement.charged, cost, byok));
    let mut response = Response::new(RouterBody::from(Bytes::from(bytes)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    add_headers(response.headers_mut(), &p);
    Ok(response)
}

/// Answers with a stream and relays the upstream into it from a task.
fn start_relay(
    state: Arc<State>,
    p: Prepared,
    provider: usize,
    reservation: Reservation,
    admission: Admission,
    response: hyper::Response<Incoming>,
    first: Bytes,
) -> Response<RouterBody> {
    let (tx, rx) = mpsc::channel(32);
    let mut out = Response::new(RouterBody::Stream(rx));
    let headers = out.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    add_headers(headers, &p);
    tokio::spawn(relay(
        state,
        p,
        provider,
        reservation,
        admission,
        response.into_body(),
        first,
        tx,
    ));
    out
}

/// The deliberate `retry-after-first-byte` defect: the same request sent to
/// the same provider again, for its body; `None` if it fails before a body.
async fn resend(state: &State, p: &Prepared, provider: usize) -> Option<Incoming> {
    let route = p.model.routes.iter().find(|r| r.provider == provider)?;
    let upstream = state.config.providers.get(provider)?;
    let body = upstream_body(state, p, provider, &route.upstream_model).ok()?;
    let api_key = api_key_for(&p.key, provider, upstream);
    let request = upstream::request(upstream, &api_key, body, None).ok()?;
    let response = state.client.request(request).await.ok()?;
    match upstream::head(response) {
        Head::Ok(response) => Some(response.into_body()),
        Head::Failed { .. } => None,
    }
}

/// How a relayed stream ended.
enum Ending {
    Finished,
    Failed(String),
    ClientGone,
}

#[allow(clippy::too_many_arguments)]
async fn relay(
    state: Arc<State>,
    p: Prepared,
    provider: usize,
    reservation: Reservation,
    admission: Admission,
    mut body: Incoming,
    first: Bytes,
    tx: mpsc::Sender<Bytes>,
) {
    let dialect = state.config.providers[provider].dialect;
    let mut parser = SseParser::new();
    let mut translator = StreamTranslator::new(dialect, &p.generation_id, &p.model.id, p.created);
    let mut out = BytesMut::with_capacity(1024);
    let mut first_token: Option<Instant> = None;
    let stall = state.retrier.policy().first_byte_timeout();
    let mut keep_alive = tokio::time::interval_at(Instant::now() + state.config.keep_alive, state.config.keep_alive);
    let mut pending = Some(first);
    // The deliberate `buffer-stream` defect holds every chunk until the end.
    let buffer = state.config.defects.buffer_stream;
    // The deliberate `retry-after-first-byte` defect sends the request again
    // when the stream breaks after the client has had bytes, and goes on
    // relaying the new answer after the old one's content.
    let mut resends = if state.config.defects.retry_after_first_byte {
        state.retrier.policy().attempts_per_provider().get() - 1
    } else {
        0
    };

    let ending = 'resend: loop {
        let ending = 'relay: loop {
            let data = match pending.take() {
                Some(data) => data,
                None => tokio::select! {
                    biased;
                    () = tx.closed() => break 'relay Ending::ClientGone,
                    frame = tokio::time::timeout(stall, body.frame()) => match frame {
                        Err(_) => break 'relay Ending::Failed(format!("the upstream stream stalled for {stall:?}")),
                        Ok(None) => match translator.on_end_of_body() {
                            Ok(_) => break 'relay Ending::Finished,
                            Err(e) => break 'relay Ending::Failed(e.to_string()),
                        },
                        Ok(Some(Err(e))) => break 'relay Ending::Failed(format!("the upstream stream broke off: {e}")),
                        Ok(Some(Ok(frame))) => match frame.into_data() {
                            Ok(data) => data,
                            Err(_) => continue,
                        },
                    },
                    _ = keep_alive.tick(), if first_token.is_none() => {
                        if tx.send(Bytes::from_static(KEEP_ALIVE)).await.is_err() {
                            break 'relay Ending::ClientGone;
                        }
                        continue;
                    }
                },
            };
            if let Err(e) = parser.push(&data) {
                break Ending::Failed(format!("the upstream stream is not valid SSE: {e}"));
            }
            let mut done = false;
            while let Some(item) = parser.next_item() {
                let SseItem::Event(event) = item else { continue };
                match translator.on_event(&event, &mut out) {
                    Ok(step) if step.is_finished() => done = true,
                    Ok(_) => {}
                    Err(e) => break 'relay Ending::Failed(e.to_string()),
                }
            }
            if first_token.is_none() && translator.content_chunks() > 0 {
                first_token = Some(Instant::now());
            }
            if !buffer && !out.is_empty() && tx.send(out.split().freeze()).await.is_err() {
                break Ending::ClientGone;
            }
            if done {
                break Ending::Finished;
            }
        };
        if let Ending::Failed(_) = &ending
            && resends > 0
            && let Some(again) = resend(&state, &p, provider).await
        {
            resends -= 1;
            body = again;
            parser = SseParser::new();
            continue 'resend;
        }
        break 'resend ending;
    };
    drop(body);

    let byok = is_byok(&p.key, provider);
    let finish = || translator.finish_reason().map(|f| f.as_str().to_string());
    let (usage, finish, failed) = match &ending {
        Ending::Finished => (translator.usage().unwrap_or_default(), finish(), false),
        Ending::Failed(_) => (
            translator.usage_or_partial().unwrap_or_default(),
            Some("error".to_string()),
            true,
        ),
        // Charged for what was generated up to the cut: the usage the
        // upstream reported so far, or (an OpenAI stream reports it only at
        // its end) the prompt estimate and one completion token a piece.
        Ending::ClientGone => {
            let partial = translator
                .usage_or_partial()
                .unwrap_or_else(|| UpstreamUsage::from_openai(p.req.prompt_estimate, 0, translator.pieces(), 0));
            (partial, finish(), false)
        }
    };
    // The deliberate `charge-failed-requests` defect settles failures too.
    let charge_failure = state.config.defects.charge_failed_requests && !matches!(ending, Ending::ClientGone);
    let (charge, cost) = price(&state, &p, &usage, failed, byok, reservation.amount());
    let settled = if failed && !charge_failure {
        drop(reservation);
        Ok(Picodollars::ZERO)
    } else {
        let record = record(&p, &state, provider, &usage, (charge, cost), finish, first_token);
        state.ledger.settle(reservation, record).await.map(|s| s.charged)
    };
    drop(admission);
    if let Ending::ClientGone = ending {
        return;
    }
    if let Ending::Failed(message) = &ending {
        transcode::write_error_chunk(&mut out, &p.generation_id, &p.model.id, p.created, message);
    }
    match settled {
        // The deliberate `drop-final-usage` defect leaves the usage chunk out.
        Ok(_) if state.config.defects.drop_final_usage => {}
        Ok(charged) => {
            let cost = if failed { Picodollars::ZERO } else { cost };
            transcode::write_usage_chunk(
                &mut out,
                &p.generation_id,
                &p.model.id,
                p.created,
                &report(&usage, charged, cost, byok),
            );
        }
        Err(e) => {
            transcode::write_error_chunk(
                &mut out,
                &p.generation_id,
                &p.model.id,
                p.created,
                &format!("billing failed: {e}"),
            );
        }
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    let _ = tx.send(out.split().freeze()).await;
}
