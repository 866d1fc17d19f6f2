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
    /// What the conformance checks read of the answer beyond timings and usage.
    pub conformance: Facts,
}

/// The facts of one answer that conformance checks need: headers, the shape
/// of an error body, how a stream ended and what it carried. All empty
/// (the [`Default`]) until an answer arrives; filled as the answer is read,
/// so a request given up on mid-stream keeps what it saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// The raw `Retry-After` header of a non-2xx answer.
    pub retry_after: Option<String>,
    /// The `x-original-model` header: the model asked for, when a
    /// replacement served it (any status).
    pub original_model: Option<String>,
    /// The shape of a non-2xx answer's body (`None` for 2xx and for no answer).
    pub error_shape: Option<ErrorShape>,
    /// Stream chunks carrying a non-null `usage` object.
    pub usage_chunks: u32,
    /// Whether the last `data:` chunk (before `[DONE]`, or the last one
    /// received when the stream did not say `[DONE]`) carried `usage` and
    /// had `choices: []`.
    pub usage_last: bool,
    /// Chunks that came after the last usage chunk, before `[DONE]`.
    pub chunks_after_usage: u32,
    /// How many `choices` the last usage chunk carried (`None`: no
    /// `choices` array, or no usage chunk).
    pub usage_choices: Option<u32>,
    /// Whether the stream said `data: [DONE]`.
    pub done: bool,
    /// The last non-null `choices[].finish_reason` seen (a whole answer's
    /// `choices[0].finish_reason`).
    pub finish_reason: Option<String>,
    /// Whether a stream chunk carried a top-level `error` object.
    pub error_chunk: bool,
    /// SSE comment lines (`: PROCESSING`) received.
    pub keepalive_comments: u32,
    /// The first tool call: reassembled from the streamed `delta.tool_calls`
    /// of index 0, or a whole answer's `message.tool_calls[0]`.
    pub tool_call: Option<ToolCall>,
    /// Characters (Unicode scalar values) of all `delta.content`, or of a
    /// whole answer's `choices[0].message.content`.
    pub content_chars: u32,
    /// Upstream retries the router says it made (LiteLLM's
    /// `x-litellm-attempted-retries`).
    pub upstream_retries: Option<u32>,
    /// Prompt tokens written to the cache, as the last usage said
    /// (`prompt_tokens_details.cache_write_tokens`, or
    /// `cache_creation_input_tokens` as LiteLLM writes it).
    pub cache_write_tokens: Option<u64>,
    /// `completion_tokens_details.reasoning_tokens` of the last usage.
    pub reasoning_tokens: Option<u64>,
    /// A Messages stream's first departure from Anthropic's event sequence
    /// (`None`: it kept to it, or it was not a Messages stream).
    pub event_sequence: Option<String>,
}

/// The shape of a non-2xx answer's body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErrorShape {
    /// OpenAI-shaped: a JSON object whose `error` is an object with a
    /// non-empty string `message` and a string `type` or a string or number
    /// `code`.
    pub ok: bool,
    /// Anthropic-shaped besides: the body's own `type` is `"error"`.
    pub anthropic: bool,
    /// `error.type`, when it is a string.
    pub error_type: Option<String>,
    /// `error.availability.code` (`"model_deprecated"`).
    pub availability_code: Option<String>,
    /// `error.availability.fallback_models` (its strings, in order).
    pub fallback_models: Vec<String>,
}

/// A tool call as the client reassembled it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ToolCall {
    /// `function.name` (of the first delta that named it).
    pub name: String,
    /// `function.arguments`, its deltas concatenated (a JSON text when the
    /// router behaves).
    pub arguments: String,
}
