//! Upstream answers (OpenAI or Anthropic dialect) turned into the router's
//! OpenAI-dialect output, and the router's OpenAI requests into upstream ones.
//!
//! Streaming: a [`StreamTranslator`] is fed the upstream's events one at a
//! time and appends complete `chat.completion.chunk` frames carrying the
//! router's generation id, model and creation time. It never forwards the
//! upstream's usage nor `[DONE]`: it records the usage and the finish reason,
//! and the router ends every stream the same way: an error chunk if the
//! upstream failed ([`write_error_chunk`]), then one usage chunk with the cost
//! ([`write_usage_chunk`]), then [`super::sse::DONE`].
//!
//! Text and tool-argument deltas are copied as raw JSON string literals,
//! never decoded and re-escaped; upstream events are read into small
//! borrowing structs rather than `serde_json::Value`.
//!
//! The parts, all re-exported here:
//! - `stream`: [`StreamTranslator`] and its [`Step`]s, the error and usage
//!   chunks, with one submodule per upstream dialect (`stream::openai`,
//!   `stream::anthropic`).
//! - `response`: whole answers as a [`Completion`], and [`with_usage`].
//! - `request`: [`anthropic_request_from_openai`] and
//!   [`openai_request_for_upstream`].
//! - `messages`: the Messages API ingress, the other direction: a Messages
//!   request for either dialect, answers as Anthropic messages; its streams
//!   are [`MessagesStream`]'s (`stream::messages`).
//! - here: what they share — [`UpstreamUsage`] (usage normalised through
//!   [`BilledUsage`]'s dialect rules), [`UsageReport`] and the router's usage
//!   object, [`FinishReason`], [`TranscodeError`].

mod messages;
mod request;
mod response;
mod stream;

#[cfg(test)]
mod fixtures;

use bytes::BufMut;

use super::pricing::{BilledUsage, Picodollars};
use super::sse::SseError;

pub use messages::{
    anthropic_request_for_upstream, anthropic_response_from_openai, anthropic_response_passthrough,
    matched_stop_sequence, openai_request_from_anthropic, stop_reason, with_anthropic_usage, write_anthropic_usage,
    write_anthropic_usage_charged,
};
pub use request::{
    ANTHROPIC_DEFAULT_MAX_TOKENS, SYSTEM_PREFIX_SEPARATOR, anthropic_request_from_openai, openai_request_for_upstream,
};
pub use response::{Completion, openai_response_from_anthropic, openai_response_passthrough, with_usage};
pub use stream::{MessagesStream, Step, StreamTranslator, write_error_chunk, write_usage_chunk};

/// The `error.code` of the chunk that reports a mid-stream upstream failure.
pub const MID_STREAM_ERROR_CODE: u16 = 502;

/// Longest upstream error text repeated to the client.
const MAX_ERROR_MESSAGE_BYTES: usize = 512;

/// Why an upstream answer or a request could not be translated. The stream
/// failures (`Upstream` to `Body`) end a stream with an error chunk;
/// `MalformedResponse` is a bad whole answer (a 502); `InvalidRequest` is the
/// caller's fault (a 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscodeError {
    #[error("upstream error ({kind}): {message}")]
    Upstream { kind: String, message: String },
    #[error("malformed upstream `{event}` event: {detail}")]
    Malformed { event: String, detail: String },
    #[error("upstream stream ended before its final event")]
    Truncated,
    #[error("upstream stream framing: {0}")]
    Sse(#[from] SseError),
    #[error("upstream body read failed: {detail}")]
    Body { detail: String },
    #[error("malformed upstream response: {detail}")]
    MalformedResponse { detail: String },
    #[error("`{path}` {problem}")]
    InvalidRequest { path: String, problem: String },
}

/// Why a completion ended, in OpenAI's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    /// The upstream failed mid-way: not charged.
    Error,
    /// Another value an OpenAI-dialect upstream sent, relayed as is.
    Other(Box<str>),
}

impl FinishReason {
    pub fn as_str(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Error => "error",
            FinishReason::Other(other) => other,
        }
    }

    pub fn from_openai(reason: &str) -> Self {
        match reason {
            "stop" => FinishReason::Stop,
            "length" => FinishReason::Length,
            "tool_calls" => FinishReason::ToolCalls,
            "content_filter" => FinishReason::ContentFilter,
            "error" => FinishReason::Error,
            other => FinishReason::Other(other.into()),
        }
    }

    /// Anthropic's `stop_reason`; an unknown one reads as `stop`.
    pub fn from_anthropic(stop_reason: &str) -> Self {
        match stop_reason {
            "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
            "tool_use" => FinishReason::ToolCalls,
            "refusal" => FinishReason::ContentFilter,
            _ => FinishReason::Stop,
        }
    }
}

/// Usage as the upstream reported it, normalised: the prompt total includes
/// the cache reads and writes, the completion includes the reasoning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamUsage {
    pub prompt_total: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub completion: u64,
    /// The reasoning share of `completion`, reported but not billed apart.
    pub reasoning: u64,
}

impl UpstreamUsage {
    /// From OpenAI's counts (`prompt_tokens` includes `cached_tokens`,
    /// `completion_tokens` includes `reasoning_tokens`).
    pub fn from_openai(prompt_tokens: u64, cached_tokens: u64, completion_tokens: u64, reasoning_tokens: u64) -> Self {
        Self::from_billed(
            BilledUsage::from_openai(prompt_tokens, cached_tokens, completion_tokens),
            reasoning_tokens,
        )
    }

    /// From Anthropic's counts (`input_tokens` excludes both cache counts).
    pub fn from_anthropic(input_tokens: u64, cache_read: u64, cache_write: u64, output_tokens: u64) -> Self {
        Self::from_billed(
            BilledUsage::from_anthropic(input_tokens, cache_read, cache_write, output_tokens),
            0,
        )
    }

    fn from_billed(billed: BilledUsage, reasoning: u64) -> Self {
        UpstreamUsage {
            prompt_total: billed
                .uncached_prompt
                .saturating_add(billed.cache_read)
                .saturating_add(billed.cache_write),
            cache_read: billed.cache_read,
            cache_write: billed.cache_write,
            completion: billed.completion,
            reasoning: reasoning.min(billed.completion),
        }
    }

    /// The disjoint counts the cost formula takes.
    pub fn billed(&self) -> BilledUsage {
        BilledUsage {
            uncached_prompt: self
                .prompt_total
                .saturating_sub(self.cache_read)
                .saturating_sub(self.cache_write),
            cache_read: self.cache_read,
            cache_write: self.cache_write,
            completion: self.completion,
        }
    }

    pub fn total_tokens(&self) -> u64 {
        self.prompt_total.saturating_add(self.completion)
    }
}

/// What the router's final usage object says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageReport {
    pub usage: UpstreamUsage,
    /// What the key is charged (for BYOK, the fee): `usage.cost`.
    pub cost: Picodollars,
    /// The usage at the serving model's prices. For BYOK the upstream bills
    /// it to the key's owner directly: `usage.cost_details.upstream_inference_cost`
    /// (`null` otherwise).
    pub upstream_cost: Picodollars,
    pub is_byok: bool,
}

/// Appends the router's `usage` object (OpenRouter's fields), the costs as
/// exact JSON numbers: `"cost":0.000288`, never through `f64`.
pub fn write_usage_object(buf: &mut impl BufMut, report: &UsageReport) {
    let usage = &report.usage;
    buf.put_slice(b"{\"prompt_tokens\":");
    put_decimal(buf, usage.prompt_total);
    buf.put_slice(b",\"completion_tokens\":");
    put_decimal(buf, usage.completion);
    buf.put_slice(b",\"total_tokens\":");
    put_decimal(buf, usage.total_tokens());
    buf.put_slice(b",\"prompt_tokens_details\":{\"cached_tokens\":");
    put_decimal(buf, usage.cache_read);
    buf.put_slice(b",\"cache_write_tokens\":");
    put_decimal(buf, usage.cache_write);
    buf.put_slice(b"},\"completion_tokens_details\":{\"reasoning_tokens\":");
    put_decimal(buf, usage.reasoning);
    buf.put_slice(b"},\"cost\":");
    buf.put_slice(report.cost.to_usd_string().as_bytes());
    buf.put_slice(if report.is_byok {
        b",\"is_byok\":true"
    } else {
        b",\"is_byok\":false"
    });
    buf.put_slice(b",\"cost_details\":{\"upstream_inference_cost\":");
    if report.is_byok {
        buf.put_slice(report.upstream_cost.to_usd_string().as_bytes());
    } else {
        buf.put_slice(b"null");
    }
    buf.put_slice(b"}}");
}

/// An upstream's error text, cut to a length fit to repeat to the client.
fn clip(message: &str) -> String {
    message[..message.floor_char_boundary(MAX_ERROR_MESSAGE_BYTES)].to_string()
}

/// Appends `text` as a JSON string literal, escaped as serde_json does.
fn write_json_str(buf: &mut impl BufMut, text: &str) {
    buf.put_u8(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        buf.put_slice(&bytes[start..i]);
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            buf.put_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        } else {
            buf.put_slice(short);
        }
        start = i + 1;
    }
    buf.put_slice(&bytes[start..]);
    buf.put_u8(b'"');
}

fn put_decimal(buf: &mut impl BufMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.put_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn both_dialects_normalise_to_the_same_billed_usage() {
        // 100 prompt tokens of which 60 read from the cache, 10 completion of which 4 reasoning.
        let openai = UpstreamUsage::from_openai(100, 60, 10, 4);
        let anthropic = UpstreamUsage::from_anthropic(40, 60, 0, 10);
        assert_eq!(openai.billed(), anthropic.billed());
        assert_eq!(openai.billed(), BilledUsage::from_openai(100, 60, 10));
        assert_eq!(anthropic.billed(), BilledUsage::from_anthropic(40, 60, 0, 10));
        assert_eq!((openai.prompt_total, anthropic.prompt_total), (100, 100));
        // Cache writes count in Anthropic's prompt total.
        let written = UpstreamUsage::from_anthropic(30, 60, 10, 10);
        assert_eq!(written.prompt_total, 100);
        assert_eq!(
            written.billed(),
            BilledUsage {
                uncached_prompt: 30,
                cache_read: 60,
                cache_write: 10,
                completion: 10
            }
        );
        // A nonsense count does not overflow.
        assert_eq!(UpstreamUsage::from_anthropic(u64::MAX, 5, 5, 1).prompt_total, u64::MAX);
    }

    #[test]
    fn finish_reasons_map() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("stop_sequence", "stop"),
            ("pause_turn", "stop"),
            ("refusal", "content_filter"),
        ] {
            assert_eq!(FinishReason::from_anthropic(stop).as_str(), finish);
        }
        assert_eq!(FinishReason::from_openai("function_call").as_str(), "function_call");
        assert_eq!(FinishReason::from_openai("tool_calls"), FinishReason::ToolCalls);
    }

    proptest! {
        #[test]
        fn json_strings_are_escaped_as_serde_json_does(text in "\\PC*|[\"\\\\\n\r\t\u{0}-\u{1f}\u{7f}é東]*") {
            let mut buf = Vec::new();
            write_json_str(&mut buf, &text);
            prop_assert_eq!(buf, serde_json::to_vec(&text).unwrap());
        }

        #[test]
        fn decimals_are_written_as_rust_does(n in any::<u64>()) {
            let mut buf = Vec::new();
            put_decimal(&mut buf, n);
            prop_assert_eq!(buf, n.to_string().into_bytes());
        }

    }
}
