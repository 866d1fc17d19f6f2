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
//!    prices in force when the request started (a price change while it
//!    runs does not apply to it), settle it durably, and only then tell the
//!    client the cost: in `usage` of a whole answer, or in the final
//!    `choices: []` chunk.
//!
//! Failed requests release their reservation and are charged nothing. A
//! stream the client abandons is charged for what was generated up to then.
//!
//! The streamed answer's relay, from the first upstream bytes to the usage
//! chunk, lives in `chat/stream.rs`.
//!
//! `POST /messages` (Anthropic's Messages API) lives the same life through
//! the same functions: only reading the body, the upstream body, and the
//! answer's shape depend on the request's [`Api`] (the translations are in
//! `transcode`). A Messages answer tells its cost as an extra `cost` in
//! Anthropic's `usage` (a stream's in its `message_delta`), and a whole one
//! in the [`COST`] header too.

mod messages;
mod stream;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::body::RouterBody;
use super::catalog::{Model, Resolution};
use super::config::{Dialect, KeyConfig, Upstream};
use super::defects::Defects;
use super::error::ApiError;
use super::ledger::{GenerationRecord, Reservation};
use super::limits::{self, Admission};
use super::pricing::{Picodollars, Prices};
use super::request::{self, Api, ChatRequest};
use super::retry::{AttemptCtx, Exhausted, Failure, FailureKind, ProviderRef};
use super::state::State;
use super::transcode::{self, Completion, FinishReason, UpstreamUsage, UsageReport};
use super::upstream::{self, Head, REQUEST_ID};
pub(crate) use messages::{count_tokens, messages};
use stream::{Relay, start_relay};

/// The response header naming the model the client asked for, when another
/// one served it (a deprecation grace period).
pub const ORIGINAL_MODEL: HeaderName = HeaderName::from_static("x-original-model");
/// The response header with the generation id (`GET /generation?id=`).
pub const GENERATION_ID: HeaderName = HeaderName::from_static("x-generation-id");
/// The response header with the exact USD charged for a whole Messages API
/// answer (a chat answer says it in `usage.cost`). A streamed one is
/// settled before its `message_delta`; its charge is `GET /generation?id=`.
pub const COST: HeaderName = HeaderName::from_static("x-gauntlet-cost");
/// The client's Anthropic beta flags, forwarded to Anthropic upstreams.
pub const ANTHROPIC_BETA: HeaderName = HeaderName::from_static("anthropic-beta");
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
    /// The serving model's prices when the request started: what it is
    /// billed at, even if it ends after a price change.
    prices: Prices,
    /// The requested model's prices then (for the `bill-requested-model` defect).
    requested_prices: Prices,
    generation_id: String,
    created: u64,
    created_at_us: i64,
    received: Instant,
}

/// What a request holds while it runs: its reservation of the worst-case
/// cost and its place under the key's limits. The reservation is given up
/// first, as the fields are dropped in order.
struct Held {
    reservation: Reservation,
    admission: Admission,
}

/// What a successful attempt hands on.
enum Served {
    Whole(Completion),
    Stream {
        response: hyper::Response<Incoming>,
        first: Bytes,
    },
}

/// Why a request could not be put in a provider's dialect (a 400).
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error(transparent)]
    Translate(#[from] transcode::TranscodeError),
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
}

/// `POST /chat/completions`.
pub(crate) async fn complete(
    state: Arc<State>,
    key: Arc<KeyConfig>,
    headers: &HeaderMap,
    bytes: Bytes,
) -> Result<Response<RouterBody>, ApiError> {
    let received = Instant::now();
    let req = request::parse(&bytes)?;
    answer(state, key, headers, req, received).await
}

/// A parsed request of either API, from its resolution to its answer.
async fn answer(
    state: Arc<State>,
    key: Arc<KeyConfig>,
    headers: &HeaderMap,
    req: ChatRequest,
    received: Instant,
) -> Result<Response<RouterBody>, ApiError> {
    let calendar = state.clock.at(received);
    let (model, requested) = resolve(&state, &req, calendar)?;
    let prices = model.prices_at(calendar);
    let worst_case = worst_case(&state, &key, &model, &prices, &req)?;
    let held = hold(&state, &key, &model, worst_case, received)?;

    let n = state.next_generation.fetch_add(1, Ordering::Relaxed);
    let prepared = Prepared {
        generation_id: format!("gen-{}-{n:x}", state.generation_prefix),
        created: u64::try_from(calendar.as_second()).unwrap_or(0),
        created_at_us: calendar.as_microsecond(),
        key,
        req,
        requested_prices: requested.prices_at(calendar),
        prices,
        model,
        requested,
        received,
    };

    let (served, provider) = match serve(&state, &prepared, headers).await {
        Ok(success) => success,
        Err(exhausted) => {
            if state.config.defects.charge_failed_requests {
                let Held { reservation, admission } = held;
                charge_exhausted(&state, &prepared, reservation, &exhausted).await;
                drop(admission);
            }
            return Err(upstream_error(&exhausted, &state.config.defects));
        }
    };
    match served {
        Served::Whole(completion) => finish_whole(&state, prepared, provider, held, completion).await,
        Served::Stream { response, first } => Ok(start_relay(Relay {
            state,
            p: prepared,
            provider,
            held,
            body: response.into_body(),
            first,
        })),
    }
}

/// The model to serve and the one asked for, at the clock's calendar time:
/// 404 for an unknown or a removed model.
fn resolve(state: &State, req: &ChatRequest, calendar: jiff::Timestamp) -> Result<(Arc<Model>, Arc<Model>), ApiError> {
    let defects = state.config.defects;
    match state.config.catalog.resolve_with(&req.model, calendar, &defects) {
        Resolution::Serve { model, requested } => Ok((model, requested)),
        // The deliberate `removed-model-502` defect: the wrong status for a removed model.
        Resolution::Removed { model, .. } if defects.removed_model_502 => Err(ApiError::Upstream {
            status: 502,
            message: format!("no provider could serve the model `{}`", model.id),
            retry_after: None,
            metadata: json!({"reason": "model unavailable"}),
        }),
        Resolution::Removed { model, replacement } => Err(ApiError::ModelRemoved {
            model: model.id.to_string(),
            replacement: replacement.to_string(),
        }),
        Resolution::Unknown => Err(ApiError::ModelNotFound(req.model.clone())),
    }
}

/// The most the request can cost. The worst case covers the system prefix
/// the router adds, and for a BYOK key whose every route is its own
/// provider, only the fee can be charged.
fn worst_case(
    state: &State,
    key: &KeyConfig,
    model: &Model,
    prices: &Prices,
    req: &ChatRequest,
) -> Result<Picodollars, ApiError> {
    let max_completion = u64::from(req.max_tokens.unwrap_or(model.default_max_tokens));
    let prefix_bound = model.system_prefix.as_deref().map_or(0, |p| p.len() as u64 + 8);
    let full_worst = prices
        .worst_case(req.prompt_bound + prefix_bound, max_completion)
        .map_err(|e| ApiError::BadRequest(format!("the request is too large to price: {e}")))?;
    let byok_only = key
        .byok
        .as_ref()
        .is_some_and(|b| model.routes.iter().all(|r| r.provider == b.provider));
    Ok(if byok_only {
        full_worst.basis_points(state.config.byok_fee_bps).unwrap_or(full_worst)
    } else {
        full_worst
    })
}

/// Admits the request under the key's limits (429 when over them), then
/// reserves its worst-case cost (402 when the balance cannot cover it).
fn hold(
    state: &State,
    key: &KeyConfig,
    model: &Model,
    worst_case: Picodollars,
    received: Instant,
) -> Result<Held, ApiError> {
    let purchased = state
        .ledger
        .purchased(&key.key)
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
                purchased,
                worst_case,
                now: received,
                day,
                until_next_day: state.clock.real_until(next_day),
            },
        )
        .map_err(ApiError::Limited)?;
    let reservation = if state.config.defects.no_overdraft_guard {
        state.ledger.reserve_unguarded(&key.key, worst_case)
    } else {
        state.ledger.reserve(&key.key, worst_case)
    }
    .map_err(ApiError::from)?;
    Ok(Held { reservation, admission })
}

/// Tries the model's providers through the retry module; the first attempt
/// that serves hands on its answer and the provider that gave it.
async fn serve(state: &State, prepared: &Prepared, headers: &HeaderMap) -> Result<(Served, usize), Exhausted> {
    let routes: Vec<ProviderRef> = prepared
        .model
        .routes
        .iter()
        .map(|r| ProviderRef::new(r.provider, Arc::clone(&state.config.providers[r.provider].name)))
        .collect();
    let bodies: Vec<Result<Bytes, BodyError>> = prepared
        .model
        .routes
        .iter()
        .map(|r| upstream_body(state, prepared, r.provider, &r.upstream_model))
        .collect();
    let forwarded = Forwarded {
        request_id: headers.get(REQUEST_ID).cloned(),
        anthropic_beta: match prepared.req.api {
            Api::Messages => headers.get(ANTHROPIC_BETA).cloned(),
            Api::Chat => None,
        },
    };

    let outcome = state
        .retrier
        .run(&routes, |ctx: AttemptCtx| {
            let route = &prepared.model.routes[ctx.provider_index];
            let upstream = &state.config.providers[route.provider];
            let api_key = api_key_for(&prepared.key, route.provider, upstream);
            let body = bodies[ctx.provider_index]
                .as_ref()
                .map(Bytes::clone)
                .map_err(|e| Failure::new(FailureKind::ClientError(400), e.to_string()));
            let forwarded = &forwarded;
            async move {
                attempt(state, prepared, upstream, &api_key, body?, forwarded, ctx)
                    .await
                    .map(|s| (s, route.provider))
            }
        })
        .await;
    outcome.map(|success| success.value)
}

/// The client's headers an upstream request carries on.
struct Forwarded {
    request_id: Option<HeaderValue>,
    /// Sent to Anthropic-dialect upstreams only.
    anthropic_beta: Option<HeaderValue>,
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
fn upstream_body(state: &State, p: &Prepared, provider: usize, upstream_model: &str) -> Result<Bytes, BodyError> {
    let prefix = if state.config.defects.skip_system_prefix {
        None
    } else {
        p.model.system_prefix.as_deref()
    };
    let dialect = state.config.providers[provider].dialect;
    let stream = p.req.stream;
    let translated = match p.req.api {
        // `max_tokens` is required and validated: the reservation covers it.
        Api::Messages => match dialect {
            Dialect::Anthropic => {
                transcode::anthropic_request_for_upstream(&p.req.body, upstream_model, prefix, stream)
            }
            Dialect::OpenAi => transcode::openai_request_from_anthropic(&p.req.body, upstream_model, prefix, stream)?,
        },
        Api::Chat => {
            let mut body = p.req.body.clone();
            if p.req.max_tokens.is_none() {
                body.insert("max_tokens".into(), Value::from(p.model.default_max_tokens));
            }
            let body = Value::Object(body);
            match dialect {
                Dialect::OpenAi => transcode::openai_request_for_upstream(&body, upstream_model, prefix, stream),
                Dialect::Anthropic => transcode::anthropic_request_from_openai(&body, upstream_model, prefix, stream)?,
            }
        }
    };
    Ok(Bytes::from(serde_json::to_vec(&translated)?))
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
    forwarded: &Forwarded,
    ctx: AttemptCtx,
) -> Result<Served, Failure> {
    let mut request = upstream::request(upstream, api_key, body, forwarded.request_id.as_ref()).map_err(|e| {
        Failure::new(
            FailureKind::ClientError(400),
            format!("cannot build the upstream request: {e}"),
        )
    })?;
    if upstream.dialect == Dialect::Anthropic
        && let Some(beta) = &forwarded.anthropic_beta
    {
        request.headers_mut().insert(ANTHROPIC_BETA, beta.clone());
    }
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
    let (id, model) = (p.generation_id.as_str(), &*p.model.id);
    let translated = match (p.req.api, upstream.dialect) {
        (Api::Chat, Dialect::OpenAi) => transcode::openai_response_passthrough(json, id, model, p.created),
        (Api::Chat, Dialect::Anthropic) => transcode::openai_response_from_anthropic(&json, id, model, p.created),
        (Api::Messages, Dialect::Anthropic) => transcode::anthropic_response_passthrough(json, id, model),
        (Api::Messages, Dialect::OpenAi) => {
            transcode::anthropic_response_from_openai(json, id, model, p.req.body.get("stop_sequences"))
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

/// The client's error when every attempt failed, with what was tried and,
/// for a 429 or 503, when to come back (none under the deliberate
/// `no-retry-after-on-give-up` defect).
fn upstream_error(exhausted: &Exhausted, defects: &Defects) -> ApiError {
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
        retry_after: exhausted.retry_after().filter(|_| !defects.no_retry_after_on_give_up),
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
    // The deliberate `bill-at-end-price` defect: the prices of now, not of the start.
    let at_end;
    let prices: &Prices = if defects.bill_requested_model {
        &p.requested_prices
    } else if defects.bill_at_end_price {
        at_end = p.model.prices_at(state.clock.now());
        &at_end
    } else {
        &p.prices
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

/// The usage object the client is told. The deliberate `misreport-usage`
/// defect tells the uncached prompt tokens as `prompt_tokens` (the charge
/// stays right).
fn report(state: &State, usage: &UpstreamUsage, charged: Picodollars, cost: Picodollars, byok: bool) -> UsageReport {
    let mut told = *usage;
    if state.config.defects.misreport_usage {
        told.prompt_total = told.prompt_total.saturating_sub(told.cache_read + told.cache_write);
    }
    UsageReport {
        usage: told,
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
    held: Held,
    completion: Completion,
) -> Result<Response<RouterBody>, ApiError> {
    let Held { reservation, admission } = held;
    let usage = completion.usage.unwrap_or_default();
    let failed = completion.finish_reason == FinishReason::Error;
    let byok = is_byok(&p.key, provider);
    let (charge, cost) = price(state, &p, &usage, failed, byok, reservation.amount());
    let finish = Some(completion.finish_reason.as_str().to_string());
    let record = record(&p, state, provider, &usage, (charge, cost), finish, None);
    let settlement = state.ledger.settle(reservation, record).await.map_err(ApiError::from)?;
    drop(admission);
    let report = report(state, &usage, settlement.charged, cost, byok);
    let bytes = match p.req.api {
        Api::Chat => transcode::with_usage(&completion.body, &report),
        Api::Messages => transcode::with_anthropic_usage(&completion.body, &report),
    };
    let mut response = Response::new(RouterBody::from(Bytes::from(bytes)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if p.req.api == Api::Messages
        && let Ok(v) = HeaderValue::from_str(&settlement.charged.to_usd_string())
    {
        headers.insert(COST, v);
    }
    add_headers(headers, &p);
    Ok(response)
}
