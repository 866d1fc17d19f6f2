//! A streamed chat completion: the upstream's events relayed to the client
//! as OpenAI chunks, from a task, then the charge settled and told in the
//! final usage chunk.
//!
//! A streamed Messages API answer takes the same road with a
//! [`MessagesStream`] in place of the chunk translator: its final
//! `message_delta` (with the usage charged for) and `message_stop` are
//! written once the charge is settled, or an `error` event after a failure.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::Response;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval};

use super::{Held, KEEP_ALIVE, Prepared, add_headers, api_key_for, is_byok, price, record, report, upstream_body};
use crate::router::body::RouterBody;
use crate::router::pricing::Picodollars;
use crate::router::request::Api;
use crate::router::sse::{SseEvent, SseItem, SseParser};
use crate::router::state::State;
use crate::router::transcode::{
    self, FinishReason, MessagesStream, Step, StreamTranslator, TranscodeError, UpstreamUsage,
};
use crate::router::upstream::{self, Head};

/// A stream to relay: the request, what it holds, and the upstream body
/// whose first bytes already arrived.
pub(super) struct Relay {
    pub state: Arc<State>,
    pub p: Prepared,
    /// The provider serving the stream.
    pub provider: usize,
    pub held: Held,
    pub body: Incoming,
    /// The first upstream bytes, read while the attempt could still be retried.
    pub first: Bytes,
}

/// How a relayed stream ended.
enum Ending {
    Finished,
    Failed(String),
    ClientGone,
}

/// Answers with a stream and relays the upstream into it from a task.
pub(super) fn start_relay(relay: Relay) -> Response<RouterBody> {
    let (tx, rx) = mpsc::channel(32);
    let mut out = Response::new(RouterBody::Stream(rx));
    let headers = out.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    add_headers(headers, &relay.p);
    tokio::spawn(run(relay, tx));
    out
}

/// Relays the stream, settles what it cost and ends it with the usage
/// chunk (or an error chunk) and `[DONE]`.
async fn run(relay: Relay, tx: mpsc::Sender<Bytes>) {
    let Relay {
        state,
        p,
        provider,
        held: Held { reservation, admission },
        body,
        first,
    } = relay;
    let mut pump = Pump::new(&state, &p, provider, first);
    let ending = relay_with_resends(&state, &p, provider, &mut pump, body, &tx).await;

    let byok = is_byok(&p.key, provider);
    let (usage, finish, failed) = usage_at_end(&ending, &pump.translator, &p);
    // The deliberate `charge-failed-requests` defect settles failures too.
    let charge_failure = state.config.defects.charge_failed_requests && !matches!(ending, Ending::ClientGone);
    let (charge, cost) = price(&state, &p, &usage, failed, byok, reservation.amount());
    let settled = if failed && !charge_failure {
        drop(reservation);
        Ok(Picodollars::ZERO)
    } else {
        let record = record(&p, &state, provider, &usage, (charge, cost), finish, pump.first_token);
        state.ledger.settle(reservation, record).await.map(|s| s.charged)
    };
    drop(admission);
    if let Ending::ClientGone = ending {
        return;
    }
    let out = &mut pump.out;
    if let Translator::Messages(messages) = &mut pump.translator {
        match (&ending, settled) {
            (Ending::Failed(message), _) => messages.write_error(out, message),
            (_, Err(e)) => messages.write_error(out, &format!("billing failed: {e}")),
            // The deliberate `drop-final-usage` defect leaves the message_delta out.
            (_, Ok(_)) if state.config.defects.drop_final_usage => messages.write_end(out, None),
            (_, Ok(charged)) => messages.write_end(out, Some(&report(&state, &usage, charged, cost, byok))),
        }
        let _ = tx.send(out.split().freeze()).await;
        return;
    }
    if let Ending::Failed(message) = &ending {
        transcode::write_error_chunk(out, &p.generation_id, &p.model.id, p.created, message);
    }
    match settled {
        // The deliberate `drop-final-usage` defect leaves the usage chunk out.
        Ok(_) if state.config.defects.drop_final_usage => {}
        Ok(charged) => {
            let cost = if failed { Picodollars::ZERO } else { cost };
            let report = report(&state, &usage, charged, cost, byok);
            transcode::write_usage_chunk(out, &p.generation_id, &p.model.id, p.created, &report);
        }
        Err(e) => {
            let message = format!("billing failed: {e}");
            transcode::write_error_chunk(out, &p.generation_id, &p.model.id, p.created, &message);
        }
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    let _ = tx.send(out.split().freeze()).await;
}

/// Pumps `body` into the client until the stream ends. The deliberate
/// `retry-after-first-byte` defect sends the request again when the stream
/// breaks after the client has had bytes, and goes on relaying the new
/// answer after the old one's content.
async fn relay_with_resends(
    state: &State,
    p: &Prepared,
    provider: usize,
    pump: &mut Pump,
    body: Incoming,
    tx: &mpsc::Sender<Bytes>,
) -> Ending {
    let mut body = body;
    let mut resends = if state.config.defects.retry_after_first_byte {
        state.retrier.policy().attempts_per_provider().get() - 1
    } else {
        0
    };
    let ending = loop {
        let ending = pump.run(&mut body, tx).await;
        if let Ending::Failed(_) = &ending
            && resends > 0
            && let Some(again) = resend(state, p, provider).await
        {
            resends -= 1;
            body = again;
            pump.parser = SseParser::new();
            continue;
        }
        break ending;
    };
    drop(body);
    ending
}

/// The usage to charge, the finish reason and whether the stream failed.
fn usage_at_end(ending: &Ending, translator: &Translator, p: &Prepared) -> (UpstreamUsage, Option<String>, bool) {
    let finish = || translator.finish_reason().map(|f| f.as_str().to_string());
    match ending {
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
    }
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

/// How long the deliberate `delay-first-chunk` defect holds a stream's
/// first chunk.
pub const FIRST_CHUNK_DELAY: Duration = Duration::from_millis(25);

/// The shortest keep-alive period.
const MIN_KEEP_ALIVE: Duration = Duration::from_millis(1);

/// What turns upstream events into the client's: chat chunks or
/// Messages API events, by the request's API.
enum Translator {
    Chat(StreamTranslator),
    Messages(MessagesStream),
}

impl Translator {
    fn on_event(&mut self, event: &SseEvent, out: &mut BytesMut) -> Result<Step, TranscodeError> {
        match self {
            Translator::Chat(t) => t.on_event(event, out),
            Translator::Messages(t) => t.on_event(event, out),
        }
    }

    fn on_end_of_body(&mut self) -> Result<Step, TranscodeError> {
        match self {
            Translator::Chat(t) => t.on_end_of_body(),
            Translator::Messages(t) => t.on_end_of_body(),
        }
    }

    fn finish_reason(&self) -> Option<&FinishReason> {
        match self {
            Translator::Chat(t) => t.finish_reason(),
            Translator::Messages(t) => t.finish_reason(),
        }
    }

    fn usage(&self) -> Option<UpstreamUsage> {
        match self {
            Translator::Chat(t) => t.usage(),
            Translator::Messages(t) => t.usage(),
        }
    }

    fn usage_or_partial(&self) -> Option<UpstreamUsage> {
        match self {
            Translator::Chat(t) => t.usage_or_partial(),
            Translator::Messages(t) => t.usage_or_partial(),
        }
    }

    fn pieces(&self) -> u64 {
        match self {
            Translator::Chat(t) => t.pieces(),
            Translator::Messages(t) => t.pieces(),
        }
    }

    fn content_chunks(&self) -> u64 {
        match self {
            Translator::Chat(t) => t.content_chunks(),
            Translator::Messages(t) => t.content_chunks(),
        }
    }
}

/// The upstream events of one stream turned into client chunks, and what
/// has been made of them so far.
struct Pump {
    parser: SseParser,
    translator: Translator,
    /// Chunks not yet sent to the client.
    out: BytesMut,
    /// When the first content arrived; keep-alives stop then.
    first_token: Option<Instant>,
    /// Bytes read before the relay began, handled first.
    pending: Option<Bytes>,
    /// The longest wait for upstream bytes before the stream counts as failed.
    stall: Duration,
    keep_alive: Interval,
    /// The deliberate `buffer-stream` defect holds every chunk until the end.
    buffer: bool,
    /// The deliberate `delay-first-chunk` defect: how long the first relayed
    /// chunk is held (taken when it is sent).
    first_delay: Option<Duration>,
}

impl Pump {
    fn new(state: &State, p: &Prepared, provider: usize, first: Bytes) -> Pump {
        let dialect = state.config.providers[provider].dialect;
        // Validation keeps the period in 1 ms ..= 1 h; a config built in
        // code gets the same floor rather than a zero-period panic.
        let keep_alive = state.config.keep_alive.max(MIN_KEEP_ALIVE);
        let first_tick = Instant::now().checked_add(keep_alive).unwrap_or_else(Instant::now);
        Pump {
            parser: SseParser::new(),
            translator: match p.req.api {
                Api::Chat => Translator::Chat(StreamTranslator::new(dialect, &p.generation_id, &p.model.id, p.created)),
                Api::Messages => Translator::Messages(MessagesStream::new(
                    dialect,
                    &p.generation_id,
                    &p.model.id,
                    p.req.prompt_estimate,
                    p.req.body.get("stop_sequences"),
                )),
            },
            out: BytesMut::with_capacity(1024),
            first_token: None,
            pending: Some(first),
            stall: state.retrier.policy().first_byte_timeout(),
            keep_alive: tokio::time::interval_at(first_tick, keep_alive),
            buffer: state.config.defects.buffer_stream,
            first_delay: state.config.defects.delay_first_chunk.then_some(FIRST_CHUNK_DELAY),
        }
    }

    /// Relays `body` to `tx` until the stream finishes, fails or the client
    /// goes away.
    async fn run(&mut self, body: &mut Incoming, tx: &mpsc::Sender<Bytes>) -> Ending {
        loop {
            let data = match self.pending.take() {
                Some(data) => data,
                None => match self.next_data(body, tx).await {
                    Ok(Some(data)) => data,
                    Ok(None) => continue,
                    Err(ending) => return ending,
                },
            };
            if let Err(e) = self.parser.push(&data) {
                return Ending::Failed(format!("the upstream stream is not valid SSE: {e}"));
            }
            let mut done = false;
            while let Some(item) = self.parser.next_item() {
                let SseItem::Event(event) = item else { continue };
                match self.translator.on_event(&event, &mut self.out) {
                    Ok(step) if step.is_finished() => done = true,
                    Ok(_) => {}
                    Err(e) => return Ending::Failed(e.to_string()),
                }
            }
            if self.first_token.is_none() && self.translator.content_chunks() > 0 {
                self.first_token = Some(Instant::now());
            }
            if !self.buffer && !self.out.is_empty() {
                if let Some(delay) = self.first_delay.take() {
                    tokio::time::sleep(delay).await;
                }
                if tx.send(self.out.split().freeze()).await.is_err() {
                    return Ending::ClientGone;
                }
            }
            if done {
                return Ending::Finished;
            }
        }
    }

    /// The next upstream bytes; `None` after a frame without data or a
    /// keep-alive; the ending when the stream or the client is done.
    async fn next_data(&mut self, body: &mut Incoming, tx: &mpsc::Sender<Bytes>) -> Result<Option<Bytes>, Ending> {
        let stall = self.stall;
        tokio::select! {
            biased;
            () = tx.closed() => Err(Ending::ClientGone),
            frame = tokio::time::timeout(stall, body.frame()) => match frame {
                Err(_) => Err(Ending::Failed(format!("the upstream stream stalled for {stall:?}"))),
                Ok(None) => match self.translator.on_end_of_body() {
                    Ok(_) => Err(Ending::Finished),
                    Err(e) => Err(Ending::Failed(e.to_string())),
                },
                Ok(Some(Err(e))) => Err(Ending::Failed(format!("the upstream stream broke off: {e}"))),
                Ok(Some(Ok(frame))) => Ok(frame.into_data().ok()),
            },
            _ = self.keep_alive.tick(), if self.first_token.is_none() => {
                if tx.send(Bytes::from_static(KEEP_ALIVE)).await.is_err() {
                    return Err(Ending::ClientGone);
                }
                Ok(None)
            }
        }
    }
}
