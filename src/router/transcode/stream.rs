//! The streaming half: a [`StreamTranslator`] reads an upstream's events
//! (OpenAI chunks in [`openai`], Anthropic Messages events in [`anthropic`])
//! and writes the router's `chat.completion.chunk` frames.

mod anthropic;
mod messages;
mod openai;

pub use messages::MessagesStream;

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use self::anthropic::AnthropicCounts;
use super::{FinishReason, MID_STREAM_ERROR_CODE, TranscodeError, UpstreamUsage, UsageReport, clip};
use super::{put_decimal, write_json_str, write_usage_object};
use crate::router::config::Dialect;
use crate::router::sse::SseEvent;

/// Where a stream stands after an event. A failure is an `Err` of
/// [`StreamTranslator::on_event`]: then the router writes the error chunk
/// ([`write_error_chunk`]), the usage chunk and `[DONE]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Continue,
    /// The upstream finished normally; the router writes the usage chunk
    /// ([`write_usage_chunk`]) and `[DONE]`.
    Finished,
}

impl Step {
    pub fn is_finished(self) -> bool {
        self == Step::Finished
    }
}

/// Turns one upstream stream into the router's chunks. See the module docs.
#[derive(Debug)]
pub struct StreamTranslator {
    dialect: Dialect,
    /// `data: {"id":…,"object":…,"created":…,"model":…,"choices":[`.
    prefix: Vec<u8>,
    finish: Option<FinishReason>,
    usage: Option<UpstreamUsage>,
    start_usage: Option<UpstreamUsage>,
    /// Anthropic's counts so far (`message_start`, then each `message_delta`).
    counts: AnthropicCounts,
    /// Anthropic block index of each `tool_use` block; the position is the
    /// OpenAI tool-call index.
    tool_blocks: Vec<u64>,
    pieces: u64,
    content_chunks: u64,
    chunks: u64,
    /// How the stream ended, repeated to any later call.
    ended: Option<Result<Step, TranscodeError>>,
}

impl StreamTranslator {
    /// For an upstream of `dialect`. `model` is the router model id that
    /// served; `created` is in Unix seconds.
    pub fn new(dialect: Dialect, generation_id: &str, model: &str, created: u64) -> Self {
        let mut prefix = Vec::with_capacity(96 + generation_id.len() + model.len());
        write_prefix(&mut prefix, generation_id, model, created);
        StreamTranslator {
            dialect,
            prefix,
            finish: None,
            usage: None,
            start_usage: None,
            counts: AnthropicCounts::default(),
            tool_blocks: Vec::new(),
            pieces: 0,
            content_chunks: 0,
            chunks: 0,
            ended: None,
        }
    }

    /// Reads one upstream event, appending zero or more complete frames to
    /// `out` (never half a frame). An `Err` is a mid-stream failure: an
    /// upstream error event, malformed JSON, an event out of place. Once the
    /// stream has ended, further events write nothing and get the same answer.
    pub fn on_event(&mut self, event: &SseEvent, out: &mut BytesMut) -> Result<Step, TranscodeError> {
        if let Some(ended) = &self.ended {
            return ended.clone();
        }
        let step = match self.dialect {
            Dialect::OpenAi => self.openai_event(event, out),
            Dialect::Anthropic => self.anthropic_event(event, out),
        };
        match step {
            Ok(Step::Continue) => Ok(Step::Continue),
            ended => self.end(ended),
        }
    }

    /// The upstream body ended. Anthropic streams must have sent
    /// `message_stop`; OpenAI ones `[DONE]`, or at least a finish reason and
    /// the usage. Otherwise the stream was cut: [`TranscodeError::Truncated`].
    pub fn on_end_of_body(&mut self) -> Result<Step, TranscodeError> {
        if let Some(ended) = &self.ended {
            return ended.clone();
        }
        let complete = self.dialect == Dialect::OpenAi && self.finish.is_some() && self.usage.is_some();
        self.end(if complete {
            Ok(Step::Finished)
        } else {
            Err(TranscodeError::Truncated)
        })
    }

    fn end(&mut self, ended: Result<Step, TranscodeError>) -> Result<Step, TranscodeError> {
        if ended.is_err() {
            self.finish = Some(FinishReason::Error);
        }
        self.ended = Some(ended.clone());
        ended
    }

    /// How the stream ended, once it has (`Error` after a failure).
    pub fn finish_reason(&self) -> Option<&FinishReason> {
        self.finish.as_ref()
    }

    /// The upstream's final usage: OpenAI's usage chunk, or Anthropic's
    /// counts once a `message_delta` carried usage.
    pub fn usage(&self) -> Option<UpstreamUsage> {
        self.usage
    }

    /// Anthropic's `message_start` usage: the prompt, known from the start.
    pub fn start_usage(&self) -> Option<UpstreamUsage> {
        self.start_usage
    }

    /// The final usage, else for a cut stream what is known: the prompt of
    /// `message_start` with one completion token per piece seen. `None` for
    /// an OpenAI stream cut before its usage chunk: the router estimates the
    /// prompt and charges [`pieces`](Self::pieces) as completion.
    pub fn usage_or_partial(&self) -> Option<UpstreamUsage> {
        self.usage.or_else(|| {
            self.start_usage.map(|start| UpstreamUsage {
                completion: self.pieces,
                reasoning: 0,
                ..start
            })
        })
    }

    /// Upstream deltas that carried generated text, reasoning or tool
    /// arguments: what a cut stream is charged as completion tokens.
    pub fn pieces(&self) -> u64 {
        self.pieces
    }

    /// Frames written that carried generated output (text, reasoning, a tool
    /// call's start or arguments): the first one is the time to first token.
    pub fn content_chunks(&self) -> u64 {
        self.content_chunks
    }

    /// Frames written so far (role, content and finish chunks).
    pub fn chunks_written(&self) -> u64 {
        self.chunks
    }

    pub fn is_ended(&self) -> bool {
        self.ended.is_some()
    }

    fn open_choice(&self, out: &mut BytesMut) {
        out.put_slice(&self.prefix);
        out.put_slice(b"{\"index\":0,\"delta\":");
    }

    fn close_choice(&mut self, out: &mut BytesMut, finish: Option<&FinishReason>) {
        out.put_slice(b",\"finish_reason\":");
        match finish {
            Some(reason) => write_json_str(out, reason.as_str()),
            None => out.put_slice(b"null"),
        }
        out.put_slice(b"}]}\n\n");
        self.chunks += 1;
    }

    /// A chunk whose delta is `{"<field>":<raw>}`.
    fn field_chunk(&mut self, out: &mut BytesMut, field: &[u8], raw: &RawValue) {
        self.open_choice(out);
        out.put_slice(b"{\"");
        out.put_slice(field);
        out.put_slice(b"\":");
        out.put_slice(raw.get().as_bytes());
        out.put_u8(b'}');
        self.close_choice(out, None);
        self.pieces += 1;
        self.content_chunks += 1;
    }
}

/// `data: {"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":[`
fn write_prefix(out: &mut impl BufMut, generation_id: &str, model: &str, created: u64) {
    out.put_slice(b"data: {\"id\":");
    write_json_str(out, generation_id);
    out.put_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
    put_decimal(out, created);
    out.put_slice(b",\"model\":");
    write_json_str(out, model);
    out.put_slice(b",\"choices\":[");
}

/// Appends the chunk that ends a failed stream (OpenRouter's convention): a
/// top-level `error` with code [`MID_STREAM_ERROR_CODE`] and a choice with
/// `finish_reason: "error"`. The usage chunk and `[DONE]` follow it.
pub fn write_error_chunk(out: &mut BytesMut, generation_id: &str, model: &str, created: u64, message: &str) {
    write_prefix(out, generation_id, model, created);
    out.put_slice(b"{\"index\":0,\"delta\":{},\"finish_reason\":\"error\"}],\"error\":{\"code\":");
    put_decimal(out, u64::from(MID_STREAM_ERROR_CODE));
    out.put_slice(b",\"message\":");
    write_json_str(out, message);
    out.put_slice(b"}}\n\n");
}

/// Appends the one usage chunk that ends every stream (`choices: []`, the
/// cost an exact JSON number); `[DONE]` follows it.
pub fn write_usage_chunk(out: &mut BytesMut, generation_id: &str, model: &str, created: u64, report: &UsageReport) {
    write_prefix(out, generation_id, model, created);
    out.put_slice(b"],\"usage\":");
    write_usage_object(out, report);
    out.put_slice(b"}\n\n");
}

fn malformed(event: &str, detail: impl ToString) -> TranscodeError {
    TranscodeError::Malformed {
        event: event.to_string(),
        detail: detail.to_string(),
    }
}

/// The error an upstream put in an `error` object (or string).
fn upstream_error(raw: &RawValue) -> TranscodeError {
    let (kind, message) = match serde_json::from_str::<ErrorBody<'_>>(raw.get()) {
        Ok(body) => (body.kind.map(String::from), body.message.map(String::from)),
        Err(_) => (None, serde_json::from_str::<String>(raw.get()).ok()),
    };
    TranscodeError::Upstream {
        kind: kind.unwrap_or_else(|| "error".into()),
        message: clip(message.as_deref().unwrap_or("unknown error")),
    }
}

/// The error of an `error` event's data: `{"error": …}`, or plain text.
fn upstream_error_from_data(data: &str) -> TranscodeError {
    match serde_json::from_str::<ErrorEnvelope<'_>>(data) {
        Ok(ErrorEnvelope { error: Some(error) }) => upstream_error(error),
        _ => TranscodeError::Upstream {
            kind: "error".into(),
            message: clip(data),
        },
    }
}

#[derive(Deserialize)]
struct ErrorEnvelope<'a> {
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::pricing::{Picodollars, Prices, TokenPrice};
    use crate::router::sse::SseError;
    use crate::router::transcode::fixtures::*;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;

    #[test]
    fn tool_call_deltas_reassemble_the_same_in_both_dialects() {
        let mut oa = StreamTranslator::new(Dialect::OpenAi, GEN, MODEL, CREATED);
        let (oa_out, oa_step) = run(&mut oa, openai_tool_stream().as_bytes(), usize::MAX);
        let mut an = StreamTranslator::new(Dialect::Anthropic, GEN, MODEL, CREATED);
        let (an_out, an_step) = run(&mut an, anthropic_tool_stream().as_bytes(), usize::MAX);
        assert_eq!((oa_step, an_step), (Ok(Step::Finished), Ok(Step::Finished)));
        let (oa_r, an_r) = (reassemble(&frames(&oa_out)), reassemble(&frames(&an_out)));
        let expected = (
            "call_1".to_string(),
            "get_weather".to_string(),
            "{\"city\":\"Paris 東京\"}".to_string(),
        );
        assert_eq!(oa_r.tools, BTreeMap::from([(0, expected.clone())]));
        assert_eq!(an_r.tools, BTreeMap::from([(0, expected)]));
        assert_eq!(
            (oa_r.finish, an_r.finish),
            (vec!["tool_calls".to_string()], vec!["tool_calls".to_string()])
        );
        assert_eq!(an.finish_reason(), Some(&FinishReason::ToolCalls));
        assert_eq!((oa.pieces(), an.pieces()), (3, 3));
        // The Anthropic tool start (id and name, no arguments yet) is output too.
        assert_eq!((oa.content_chunks(), an.content_chunks()), (3, 4));
        // The tool start chunk carries the OpenAI shape.
        let an_frames = frames(&an_out);
        assert_eq!(
            an_frames[1]["choices"][0]["delta"],
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]})
        );
    }

    #[test]
    fn any_split_of_the_upstream_bytes_gives_the_same_output() {
        for (stream, openai) in [
            (openai_text_stream(), true),
            (openai_tool_stream(), true),
            (anthropic_text_stream(), false),
            (anthropic_tool_stream(), false),
        ] {
            let new = || {
                if openai {
                    StreamTranslator::new(Dialect::OpenAi, GEN, MODEL, CREATED)
                } else {
                    StreamTranslator::new(Dialect::Anthropic, GEN, MODEL, CREATED)
                }
            };
            let (whole, _) = run(&mut new(), stream.as_bytes(), usize::MAX);
            for step in [1, 2, 3, 5, 64] {
                assert_eq!(
                    run(&mut new(), stream.as_bytes(), step).0,
                    whole,
                    "split every {step} bytes"
                );
            }
            let crlf = stream.replace('\n', "\r\n");
            assert_eq!(run(&mut new(), crlf.as_bytes(), 3).0, whole, "CRLF");
        }
    }

    #[test]
    fn usage_chunk_writes_the_exact_decimal_cost() {
        let price = |s: &str| s.parse::<TokenPrice>().unwrap();
        let prices = Prices {
            prompt: price("3"),
            completion: price("15"),
            cache_read: price("0.3"),
            cache_write: price("3.75"),
        };
        let usage = UpstreamUsage::from_openai(100, 60, 10, 4);
        let cost = prices.cost(&usage.billed(), false).unwrap();
        let mut out = BytesMut::new();
        let exact = UsageReport {
            usage,
            cost,
            upstream_cost: cost,
            is_byok: false,
        };
        write_usage_chunk(&mut out, GEN, MODEL, CREATED, &exact);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("data: {") && text.ends_with("}\n\n"));
        assert!(text.contains(",\"cost\":0.000288,"), "{text}");
        let frame: Value = serde_json::from_str(text.trim_start_matches("data: ").trim_end()).unwrap();
        assert_eq!(frame["id"], GEN);
        assert_eq!(frame["choices"], json!([]));
        assert_eq!(
            frame["usage"],
            json!({
                "prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110,
                "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 4},
                "cost": 0.000288, "is_byok": false, "cost_details": {"upstream_inference_cost": null}
            })
        );
        // Twelve fractional digits and whole dollars stay exact, BYOK says so.
        let mut out = BytesMut::new();
        let byok = UsageReport {
            is_byok: true,
            upstream_cost: Picodollars(2_000_000_000_001),
            ..report(Picodollars(1))
        };
        write_usage_chunk(&mut out, GEN, MODEL, CREATED, &byok);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            text.contains(
                "\"cost\":0.000000000001,\"is_byok\":true,\"cost_details\":{\"upstream_inference_cost\":2.000000000001}"
            ),
            "{text}"
        );
    }

    #[test]
    fn events_after_the_end_write_nothing() {
        let mut t = StreamTranslator::new(Dialect::Anthropic, GEN, MODEL, CREATED);
        let (_, step) = run(&mut t, anthropic_text_stream().as_bytes(), usize::MAX);
        assert_eq!(step, Ok(Step::Finished));
        let mut out = BytesMut::new();
        let late = SseEvent {
            event: None,
            data: "{\"type\":\"message_start\"}".into(),
        };
        assert_eq!(t.on_event(&late, &mut out), Ok(Step::Finished));
        assert_eq!(t.on_end_of_body(), Ok(Step::Finished));
        assert!(out.is_empty());
    }

    #[test]
    fn ids_and_models_are_escaped() {
        let mut t = StreamTranslator::new(Dialect::Anthropic, "g\"1", "we\\ird/\u{1}model", 7);
        let (out, _) = run(&mut t, anthropic_text_stream().as_bytes(), usize::MAX);
        let frames = frames(&out);
        assert_eq!(frames[0]["id"], "g\"1");
        assert_eq!(frames[0]["model"], "we\\ird/\u{1}model");
    }

    #[test]
    fn the_error_chunk_follows_openrouters_convention() {
        let mut out = BytesMut::new();
        write_error_chunk(&mut out, GEN, MODEL, CREATED, "upstream \"went\" away");
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("data: {") && text.ends_with("}\n\n") && text.matches('\n').count() == 2);
        let frame = frames(text).remove(0);
        assert_eq!(
            frame,
            json!({
                "id": GEN, "object": "chat.completion.chunk", "created": CREATED, "model": MODEL,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "error"}],
                "error": {"code": 502, "message": "upstream \"went\" away"}
            })
        );
        let framing = TranscodeError::from(SseError::EventTooLarge { limit: 1 });
        assert_eq!(
            error_frame(&framing)["error"]["message"],
            "upstream stream framing: server-sent event larger than 1 bytes"
        );
    }
}
