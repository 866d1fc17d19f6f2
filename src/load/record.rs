//! What the load engine records of each request: the one type it shares
//! with metrics, checks and reports. A failed request is data, not an error:
//! it is classified into an [`Outcome`] and counted in a fixed array.
//!
//! Times are Unix microseconds from a [`mock_providers::Clock`] (a wall clock
//! read once and advanced monotonically), the same clock the mock journal
//! uses, so client and mock times of one attempt can be subtracted.

use std::sync::Arc;

use serde::Serialize;

/// How a request ended, as a class (never an error string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 2xx, and a stream that ended with `[DONE]` and no error chunk.
    Ok,
    /// 429.
    RateLimited,
    /// 402.
    PaymentRequired,
    /// 404.
    NotFound,
    /// Another 4xx.
    ClientError,
    /// 5xx.
    ServerError,
    /// A stream that carried an error chunk or ended without `[DONE]`.
    StreamError,
    /// No answer in time.
    Timeout,
    /// The connection could not be made.
    ConnectError,
    /// The connection broke.
    Reset,
    /// Not sent: the phase's in-flight cap was reached.
    Dropped,
}

impl Outcome {
    /// Every class, in the order of [`Outcome::index`].
    pub const ALL: [Outcome; 11] = [
        Outcome::Ok,
        Outcome::RateLimited,
        Outcome::PaymentRequired,
        Outcome::NotFound,
        Outcome::ClientError,
        Outcome::ServerError,
        Outcome::StreamError,
        Outcome::Timeout,
        Outcome::ConnectError,
        Outcome::Reset,
        Outcome::Dropped,
    ];

    /// The position in a `[u64; Outcome::ALL.len()]` count array.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::RateLimited => "rate_limited",
            Outcome::PaymentRequired => "payment_required",
            Outcome::NotFound => "not_found",
            Outcome::ClientError => "client_error",
            Outcome::ServerError => "server_error",
            Outcome::StreamError => "stream_error",
            Outcome::Timeout => "timeout",
            Outcome::ConnectError => "connect_error",
            Outcome::Reset => "reset",
            Outcome::Dropped => "dropped",
        }
    }

    /// Whether the request counts as failed for the error rate (a dropped
    /// request was never sent and counts against the run's validity instead).
    pub fn is_error(self) -> bool {
        !matches!(self, Outcome::Ok | Outcome::Dropped)
    }

    /// The class of an HTTP status.
    pub fn of_status(status: u16) -> Outcome {
        match status {
            200..=299 => Outcome::Ok,
            429 => Outcome::RateLimited,
            402 => Outcome::PaymentRequired,
            404 => Outcome::NotFound,
            400..=499 => Outcome::ClientError,
            _ => Outcome::ServerError,
        }
    }
}

/// One request as the client saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestRecord {
    /// The `x-gauntlet-request-id` (also in the prompt as `[gauntlet:ID]`).
    pub id: Arc<str>,
    /// Index of the phase in the scenario.
    pub phase: u16,
    /// Index of the mix entry in the scenario.
    pub mix: u16,
    pub stream: bool,
    /// When the schedule meant to send it (open loop), or when the user
    /// decided to (closed loop).
    pub intended_us: u64,
    /// When it was actually sent (equal to `intended_us` plus the dispatch delay).
    pub sent_us: u64,
    /// When the response head arrived.
    pub head_us: Option<u64>,
    /// When the first chunk carrying content arrived (a whole answer: its body).
    pub first_content_us: Option<u64>,
    /// When the last byte arrived.
    pub last_byte_us: Option<u64>,
    /// HTTP status (0 when none arrived).
    pub status: u16,
    pub outcome: Outcome,
    /// SSE `data:` chunks received (usage and `[DONE]` included).
    pub chunks: u32,
    /// Chunks carrying content (text or tool-call deltas).
    pub content_chunks: u32,
    /// Arrival of each content chunk, in µs after `sent_us` (for ITL).
    pub content_offsets_us: Vec<u32>,
    /// Token counts from the answer's `usage`.
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub cached_tokens: Option<u64>,
    /// `usage.cost` exactly as the router wrote it (a decimal USD number).
    pub cost: Option<String>,
    pub generation_id: Option<String>,
    /// The `model` the answer named.
    pub model: Option<String>,
    /// What went wrong, briefly (the error body's message), for reports.
    pub error: Option<String>,
}
