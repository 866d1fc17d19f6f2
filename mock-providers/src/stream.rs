//! The response body of the mock: a whole JSON answer, or an SSE stream that
//! is a poll-driven state machine (no task or channel per stream), sending
//! each piece at its planned time and recording it in the journal.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::faults::FaultAction;
use crate::journal::Outcome;
use crate::limits::Permit;
use crate::plan::Plan;
use crate::provider::Attempt;
use crate::{anthropic, openai};

/// How long a cut or reset waits for hyper to flush the tokens before it.
const ABORT_FLUSH: Duration = Duration::from_millis(5);

/// Why a body ended without finishing; hyper then closes the connection.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("stream cut by fault after {0} tokens")]
    Cut(u32),
    #[error("connection reset by fault")]
    Reset,
}

/// What `poll_frame` returns.
type PollFrame = Poll<Option<Result<Frame<Bytes>, BodyError>>>;

/// The body of every mock response.
#[derive(Debug)]
pub enum MockBody {
    Full(Option<Bytes>),
    Stream(Box<StreamBody>),
}

impl MockBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        MockBody::Full(Some(bytes.into()))
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            MockBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Stream(stream) => Pin::new(stream.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(bytes) => bytes.is_none(),
            MockBody::Stream(stream) => stream.phase == Phase::Done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            MockBody::Full(None) => SizeHint::with_exact(0),
            MockBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// The SSE writer of a dialect.
#[derive(Debug)]
pub enum Writer {
    OpenAi(openai::ChunkWriter),
    Anthropic(anthropic::EventWriter),
}

impl Writer {
    fn preamble(&self, buf: &mut BytesMut, plan: &Plan) {
        match self {
            Writer::OpenAi(w) => w.preamble(buf, plan),
            Writer::Anthropic(w) => w.preamble(buf, plan),
        }
    }

    pub fn piece(&self, buf: &mut BytesMut, plan: &Plan, index: usize) {
        match self {
            Writer::OpenAi(w) => w.piece(buf, plan, index),
            Writer::Anthropic(w) => w.piece(buf, plan, index),
        }
    }

    fn tail(&self, buf: &mut BytesMut, plan: &Plan) {
        match self {
            Writer::OpenAi(w) => w.tail(buf, plan),
            Writer::Anthropic(w) => w.tail(buf, plan),
        }
    }

    fn error(&self, buf: &mut BytesMut, status: u16, message: &str) {
        match self {
            Writer::OpenAi(w) => w.error(buf, status, message),
            Writer::Anthropic(w) => w.error(buf, status, message),
        }
    }

    fn malformed(&self, buf: &mut BytesMut) {
        match self {
            Writer::OpenAi(w) => w.malformed(buf),
            Writer::Anthropic(w) => w.malformed(buf),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Preamble,
    Pieces,
    Tail,
    Done,
}

/// A streamed answer in progress.
#[derive(Debug)]
pub struct StreamBody {
    writer: Writer,
    plan: Plan,
    phase: Phase,
    next: usize,
    deadline: Instant,
    sleep: Pin<Box<Sleep>>,
    /// A fault that acts once `after_tokens` pieces are out.
    midstream: Option<(FaultAction, u32)>,
    malformed_sent: bool,
    /// When a cut or reset fault fails the body (after [`ABORT_FLUSH`]).
    abort_at: Option<Instant>,
    attempt: Attempt,
    reset: Option<Arc<AtomicBool>>,
    /// Holds the key's concurrency slot for as long as the stream lives.
    _permit: Option<Permit>,
    buf: BytesMut,
}

impl StreamBody {
    /// A stream whose first piece is due at `start + plan.ttft`.
    pub fn new(
        writer: Writer,
        plan: Plan,
        start: Instant,
        midstream: Option<(FaultAction, u32)>,
        attempt: Attempt,
        reset: Option<Arc<AtomicBool>>,
        permit: Option<Permit>,
    ) -> Self {
        let deadline = start + plan.ttft;
        StreamBody {
            writer,
            plan,
            phase: Phase::Preamble,
            next: 0,
            deadline,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            midstream,
            malformed_sent: false,
            abort_at: None,
            attempt,
            reset,
            _permit: permit,
            buf: BytesMut::with_capacity(512),
        }
    }

    fn frame(&mut self) -> PollFrame {
        Poll::Ready(Some(Ok(Frame::data(self.buf.split().freeze()))))
    }

    /// Acts on the mid-stream fault due now, if any.
    fn fault_now(&mut self, cx: &mut Context<'_>) -> Option<PollFrame> {
        let (action, after) = self.midstream?;
        if self.next != after as usize {
            return None;
        }
        match action {
            FaultAction::Status { status, .. } => {
                self.midstream = None;
                self.writer
                    .error(&mut self.buf, status, &crate::provider::status_message(status));
                self.attempt.finish(status, Outcome::FaultStreamError);
                self.phase = Phase::Done;
                Some(self.frame())
            }
            FaultAction::Cut { .. } | FaultAction::Reset { .. } if !self.flushed_before_abort(cx) => {
                Some(Poll::Pending)
            }
            FaultAction::Cut { .. } => {
                self.attempt.finish(200, Outcome::Cut);
                self.phase = Phase::Done;
                Some(Poll::Ready(Some(Err(BodyError::Cut(after)))))
            }
            FaultAction::Reset { .. } => {
                if let Some(flag) = &self.reset {
                    flag.store(true, Ordering::Release);
                }
                self.attempt.finish(200, Outcome::Reset);
                self.phase = Phase::Done;
                Some(Poll::Ready(Some(Err(BodyError::Reset))))
            }
            FaultAction::MalformedChunk { .. } => {
                self.midstream = None;
                self.malformed_sent = true;
                self.writer.malformed(&mut self.buf);
                Some(self.frame())
            }
            FaultAction::Hang { .. } | FaultAction::SlowFirstByte { .. } => {
                self.midstream = None;
                None
            }
        }
    }

    /// Gives hyper [`ABORT_FLUSH`] to write out the tokens it holds before the
    /// body fails: failing in the same poll would drop what is still buffered.
    fn flushed_before_abort(&mut self, cx: &mut Context<'_>) -> bool {
        let at = *self.abort_at.get_or_insert_with(|| Instant::now() + ABORT_FLUSH);
        if Instant::now() >= at {
            return true;
        }
        self.sleep.as_mut().reset(at);
        self.sleep.as_mut().poll(cx).is_ready()
    }

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        loop {
            match this.phase {
                Phase::Preamble => {
                    this.writer.preamble(&mut this.buf, &this.plan);
                    this.phase = Phase::Pieces;
                    if this.plan.opening_with_first_token {
                        // Held in `buf` until the first piece (or the end) is written.
                        continue;
                    }
                    return this.frame();
                }
                Phase::Pieces => {
                    if let Some(poll) = this.fault_now(cx) {
                        return poll;
                    }
                    if this.next >= this.plan.pieces.len() {
                        this.phase = Phase::Tail;
                        continue;
                    }
                    if Instant::now() < this.deadline {
                        if this.sleep.deadline() != this.deadline {
                            this.sleep.as_mut().reset(this.deadline);
                        }
                        if this.sleep.as_mut().poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                    }
                    this.writer.piece(&mut this.buf, &this.plan, this.next);
                    this.attempt.token_sent(Instant::now());
                    if let Some(gap) = this.plan.gaps.get(this.next) {
                        this.deadline += *gap;
                    }
                    this.next += 1;
                    return this.frame();
                }
                Phase::Tail => {
                    this.writer.tail(&mut this.buf, &this.plan);
                    this.attempt.set_usage(this.plan.usage, this.reports_usage());
                    let outcome = if this.malformed_sent {
                        Outcome::Malformed
                    } else {
                        Outcome::Ok
                    };
                    this.attempt.finish(200, outcome);
                    this.phase = Phase::Done;
                    return this.frame();
                }
                Phase::Done => return Poll::Ready(None),
            }
        }
    }

    fn reports_usage(&self) -> bool {
        match &self.writer {
            Writer::OpenAi(_) => self.attempt.include_usage(),
            Writer::Anthropic(_) => true,
        }
    }
}
