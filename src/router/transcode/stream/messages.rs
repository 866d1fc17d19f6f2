//! Streams of the Messages API ingress: upstream events out as Anthropic's
//! named events (`event:` lines, the data's `type` equal to the name).
//!
//! - An Anthropic-dialect upstream's events are relayed as they came, read
//!   with the chat translator's borrowing structs only for the usage, the
//!   stop reason and the pieces; `message_start` gets the router's id and
//!   model.
//! - An OpenAI-dialect upstream's chunks become `message_start`, a text
//!   block (`content_block_start`, then `ping` after the first block), one
//!   `tool_use` block per tool call (`input_json_delta` for its argument
//!   fragments) and `content_block_stop`s; text and argument fragments are
//!   copied as raw JSON string literals.
//!
//! In both, the upstream's `message_delta` and `message_stop` are held: the
//! router settles the charge first and then ends the stream with
//! [`MessagesStream::write_end`] (the usage it charged for), or with an
//! `error` event after a failure ([`MessagesStream::write_error`]), as a chat
//! stream ends with its usage chunk.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::anthropic::{AnthropicCounts, AnthropicEvent, is_empty_json_str};
use super::openai::OpenAiChunk;
use super::{Step, malformed, upstream_error, upstream_error_from_data};
use crate::router::config::Dialect;
use crate::router::sse::SseEvent;
use crate::router::transcode::{
    FinishReason, TranscodeError, UpstreamUsage, UsageReport, put_decimal, stop_reason, write_anthropic_usage,
    write_anthropic_usage_charged, write_json_str,
};

/// Anthropic's error types an upstream failure keeps when relayed.
const KEPT_ERROR_TYPES: [&str; 3] = ["overloaded_error", "rate_limit_error", "timeout_error"];

/// The block an OpenAI-dialect stream has open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    /// A tool call, by its OpenAI index.
    Tool(u64),
}

/// Turns one upstream stream into Messages API events. See the module docs.
#[derive(Debug)]
pub struct MessagesStream {
    dialect: Dialect,
    generation_id: Box<str>,
    model: Box<str>,
    /// `message_start`'s `input_tokens` for an OpenAI upstream, which
    /// reports the prompt only at the end.
    prompt_estimate: u64,
    /// The caller's `stop_sequences`, to tell a matched one.
    stop_sequences: Option<Value>,
    counts: AnthropicCounts,
    usage: Option<UpstreamUsage>,
    start_usage: Option<UpstreamUsage>,
    finish: Option<FinishReason>,
    /// Anthropic's words, as the upstream said them or as mapped.
    stop_reason: Option<Box<str>>,
    stop_sequence: Option<Box<str>>,
    started: bool,
    open: Option<Block>,
    blocks: u64,
    pieces: u64,
    content_chunks: u64,
    error_type: &'static str,
    ended: Option<Result<Step, TranscodeError>>,
}

impl MessagesStream {
    /// For an upstream of `dialect`; `model` is the router model that serves.
    pub fn new(
        dialect: Dialect,
        generation_id: &str,
        model: &str,
        prompt_estimate: u64,
        stop_sequences: Option<&Value>,
    ) -> Self {
        MessagesStream {
            dialect,
            generation_id: generation_id.into(),
            model: model.into(),
            prompt_estimate,
            stop_sequences: stop_sequences.cloned(),
            counts: AnthropicCounts::default(),
            usage: None,
            start_usage: None,
            finish: None,
            stop_reason: None,
            stop_sequence: None,
            started: false,
            open: None,
            blocks: 0,
            pieces: 0,
            content_chunks: 0,
            error_type: "api_error",
            ended: None,
        }
    }

    /// Reads one upstream event, appending zero or more complete events to
    /// `out`. As [`StreamTranslator::on_event`](super::StreamTranslator::on_event).
    pub fn on_event(&mut self, event: &SseEvent, out: &mut BytesMut) -> Result<Step, TranscodeError> {
        if let Some(ended) = &self.ended {
            return ended.clone();
        }
        let step = match self.dialect {
            Dialect::Anthropic => self.anthropic_event(event, out),
            Dialect::OpenAi => self.openai_event(event, out),
        };
        match step {
            Ok(Step::Continue) => Ok(Step::Continue),
            ended => self.end(ended),
        }
    }

    /// The upstream body ended: complete after `message_stop`, or for an
    /// OpenAI stream after its finish reason and usage; else truncated.
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
        if let Err(e) = &ended {
            self.finish = Some(FinishReason::Error);
            if let TranscodeError::Upstream { kind, .. } = e
                && let Some(kept) = KEPT_ERROR_TYPES.iter().find(|k| **k == kind.as_str())
            {
                self.error_type = kept;
            }
        }
        self.ended = Some(ended.clone());
        ended
    }

    pub fn finish_reason(&self) -> Option<&FinishReason> {
        self.finish.as_ref()
    }

    pub fn usage(&self) -> Option<UpstreamUsage> {
        self.usage
    }

    /// As [`StreamTranslator::usage_or_partial`](super::StreamTranslator::usage_or_partial).
    pub fn usage_or_partial(&self) -> Option<UpstreamUsage> {
        self.usage.or_else(|| {
            self.start_usage.map(|start| UpstreamUsage {
                completion: self.pieces,
                reasoning: 0,
                ..start
            })
        })
    }

    pub fn pieces(&self) -> u64 {
        self.pieces
    }

    pub fn content_chunks(&self) -> u64 {
        self.content_chunks
    }

    /// Ends a finished stream: any block still open closed, then
    /// `message_delta` with the stop reason and `usage` (unless `report` is
    /// `None`: a deliberate defect), then `message_stop`.
    pub fn write_end(&mut self, out: &mut BytesMut, report: Option<&UsageReport>) {
        self.start(out);
        self.close(out);
        let Some(report) = report else {
            out.put_slice(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
            return;
        };
        let reason = match (&self.stop_reason, &self.finish) {
            (Some(reason), _) => reason,
            (None, Some(finish)) => stop_reason(finish),
            (None, None) => "end_turn",
        };
        event_head(out, "message_delta");
        out.put_slice(b"{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":");
        write_json_str(out, reason);
        out.put_slice(b",\"stop_sequence\":");
        match &self.stop_sequence {
            Some(sequence) => write_json_str(out, sequence),
            None => out.put_slice(b"null"),
        }
        out.put_slice(b"},\"usage\":");
        write_anthropic_usage_charged(out, report);
        out.put_slice(b"}\n\n");
        out.put_slice(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    }

    /// Ends a failed stream with Anthropic's `error` event (`api_error`,
    /// or the upstream's overloaded, rate-limit or timeout type).
    pub fn write_error(&self, out: &mut BytesMut, message: &str) {
        event_head(out, "error");
        out.put_slice(b"{\"type\":\"error\",\"error\":{\"type\":");
        write_json_str(out, self.error_type);
        out.put_slice(b",\"message\":");
        write_json_str(out, message);
        out.put_slice(b"}}\n\n");
    }

    fn anthropic_event(&mut self, event: &SseEvent, out: &mut BytesMut) -> Result<Step, TranscodeError> {
        let parsed: AnthropicEvent<'_> = match serde_json::from_str(&event.data) {
            Ok(parsed) => parsed,
            Err(_) if event.kind() == "error" => return Err(upstream_error_from_data(&event.data)),
            Err(e) => return Err(malformed(event.kind(), e)),
        };
        let kind = parsed.kind.as_ref();
        match kind {
            "message_start" => {
                if let Some(usage) = parsed.message.and_then(|m| m.usage) {
                    self.counts = AnthropicCounts::default().merged(&usage);
                    self.start_usage = Some(self.counts.normalise());
                }
                // Once a stream: the router's id and model in place of the upstream's.
                let mut start: Value = serde_json::from_str(&event.data).map_err(|e| malformed(kind, e))?;
                let message = start
                    .get_mut("message")
                    .and_then(Value::as_object_mut)
                    .ok_or_else(|| malformed(kind, "missing `message`"))?;
                message.insert("id".into(), Value::from(&*self.generation_id));
                message.insert("model".into(), Value::from(&*self.model));
                event_head(out, kind);
                // Writing a `Value` into a buffer cannot fail.
                let _ = serde_json::to_writer(out.writer(), &start);
                out.put_slice(b"\n\n");
                self.started = true;
                return Ok(Step::Continue);
            }
            "content_block_start" => {
                let block = parsed
                    .content_block
                    .ok_or_else(|| malformed(kind, "missing `content_block`"))?;
                if block.kind == "tool_use" {
                    self.content_chunks += 1;
                }
            }
            "content_block_delta" => {
                let delta = parsed.delta.ok_or_else(|| malformed(kind, "missing `delta`"))?;
                let piece = match delta.kind.as_deref() {
                    Some("text_delta") => delta.text,
                    Some("thinking_delta") => delta.thinking,
                    Some("input_json_delta") => delta.partial_json,
                    _ => None,
                };
                if piece.is_some_and(|p| !is_empty_json_str(p)) {
                    self.pieces += 1;
                    self.content_chunks += 1;
                }
            }
            "message_delta" => {
                if let Some(delta) = parsed.delta {
                    if let Some(reason) = delta.stop_reason {
                        self.finish = Some(FinishReason::from_anthropic(&reason));
                        self.stop_reason = Some(reason.into());
                    }
                    self.stop_sequence = delta.stop_sequence.map(Into::into);
                }
                if let Some(usage) = parsed.usage {
                    self.counts = self.counts.merged(&usage);
                    self.usage = Some(self.counts.normalise());
                }
                return Ok(Step::Continue);
            }
            "message_stop" => {
                self.finish.get_or_insert(FinishReason::Stop);
                return Ok(Step::Finished);
            }
            "error" => {
                let error = parsed.error.ok_or_else(|| malformed(kind, "missing `error`"))?;
                return Err(upstream_error(error));
            }
            // `ping`, `content_block_stop`, and event types added later.
            _ => {}
        }
        event_head(out, kind);
        put_data_lines(out, &event.data);
        Ok(Step::Continue)
    }

    fn openai_event(&mut self, event: &SseEvent, out: &mut BytesMut) -> Result<Step, TranscodeError> {
        if event.is_done() {
            return Ok(Step::Finished);
        }
        if event.kind() == "error" {
            return Err(upstream_error_from_data(&event.data));
        }
        let chunk: OpenAiChunk<'_> = serde_json::from_str(&event.data).map_err(|e| malformed("chunk", e))?;
        if let Some(error) = chunk.error {
            return Err(upstream_error(error));
        }
        if let Some(usage) = &chunk.usage {
            self.usage = Some(usage.normalise());
        }
        self.start(out);
        // One message: only the first choice is read.
        let Some(choice) = chunk.choices.unwrap_or_default().into_iter().find(|c| c.index == 0) else {
            return Ok(Step::Continue);
        };
        if let Some(delta) = choice.delta {
            let delta: Delta<'_> = serde_json::from_str(delta.get()).map_err(|e| malformed("chunk", e))?;
            if let Some(text) = delta
                .content
                .filter(|t| t.get().starts_with('"') && !is_empty_json_str(t))
            {
                if self.open != Some(Block::Text) {
                    self.open_block(out, Block::Text, None);
                }
                event_head(out, "content_block_delta");
                out.put_slice(b"{\"type\":\"content_block_delta\",\"index\":");
                put_decimal(out, self.blocks - 1);
                out.put_slice(b",\"delta\":{\"type\":\"text_delta\",\"text\":");
                out.put_slice(text.get().as_bytes());
                out.put_slice(b"}}\n\n");
                self.pieces += 1;
                self.content_chunks += 1;
            }
            // Reasoning has no Anthropic block without a signature: not
            // relayed, but generated, so a cut stream is charged for it.
            if delta
                .reasoning
                .is_some_and(|r| r.get().starts_with('"') && !is_empty_json_str(r))
            {
                self.pieces += 1;
            }
            for call in delta.tool_calls.unwrap_or_default() {
                self.tool_call(out, &call)?;
            }
        }
        if let Some(reason) = choice.finish_reason {
            let finish = FinishReason::from_openai(&reason);
            let said = choice
                .stop_reason
                .and_then(|raw| serde_json::from_str::<Cow<'_, str>>(raw.get()).ok());
            let matched = match finish {
                FinishReason::Stop => {
                    crate::router::transcode::matched_stop_sequence(said.as_deref(), self.stop_sequences.as_ref())
                }
                _ => None,
            };
            self.stop_reason = Some(
                if matched.is_some() {
                    "stop_sequence"
                } else {
                    stop_reason(&finish)
                }
                .into(),
            );
            self.stop_sequence = matched.map(Into::into);
            self.finish = Some(finish);
            self.close(out);
        }
        Ok(Step::Continue)
    }

    /// One tool-call delta: a new call (a new index, or an id) opens a
    /// `tool_use` block; argument fragments are `input_json_delta`s.
    fn tool_call(&mut self, out: &mut BytesMut, call: &ToolCallDelta<'_>) -> Result<(), TranscodeError> {
        let index = call.index.unwrap_or(0);
        if self.open != Some(Block::Tool(index)) || call.id.is_some() {
            let function = call.function.as_ref();
            let name = function.and_then(|f| f.name).filter(|n| n.get().starts_with('"'));
            let id = call.id.filter(|i| i.get().starts_with('"'));
            self.open_block(out, Block::Tool(index), Some((id, name)));
        }
        let arguments = call.function.as_ref().and_then(|f| f.arguments);
        if let Some(arguments) = arguments {
            if !arguments.get().starts_with('"') {
                return Err(malformed("chunk", "`function.arguments` is not a string"));
            }
            if !is_empty_json_str(arguments) {
                event_head(out, "content_block_delta");
                out.put_slice(b"{\"type\":\"content_block_delta\",\"index\":");
                put_decimal(out, self.blocks - 1);
                out.put_slice(b",\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":");
                out.put_slice(arguments.get().as_bytes());
                out.put_slice(b"}}\n\n");
                self.pieces += 1;
                self.content_chunks += 1;
            }
        }
        Ok(())
    }

    /// `message_start`, once, for an OpenAI-dialect stream (an Anthropic
    /// one relays its own).
    fn start(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        event_head(out, "message_start");
        out.put_slice(b"{\"type\":\"message_start\",\"message\":{\"id\":");
        write_json_str(out, &self.generation_id);
        out.put_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
        write_json_str(out, &self.model);
        out.put_slice(b",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":");
        let estimate = UpstreamUsage::from_anthropic(self.prompt_estimate, 0, 0, 0);
        write_anthropic_usage(out, &estimate);
        out.put_slice(b"}}\n\n");
    }

    /// Closes the open block and opens `block` at the next index: a text
    /// block, or a `tool_use` with the call's id and name (JSON strings).
    fn open_block(&mut self, out: &mut BytesMut, block: Block, tool: Option<(Option<&RawValue>, Option<&RawValue>)>) {
        self.close(out);
        let index = self.blocks;
        event_head(out, "content_block_start");
        out.put_slice(b"{\"type\":\"content_block_start\",\"index\":");
        put_decimal(out, index);
        match tool {
            None => out.put_slice(b",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"),
            Some((id, name)) => {
                out.put_slice(b",\"content_block\":{\"type\":\"tool_use\",\"id\":");
                match id {
                    Some(id) => out.put_slice(id.get().as_bytes()),
                    None => {
                        out.put_slice(b"\"toolu_");
                        put_decimal(out, index);
                        out.put_u8(b'"');
                    }
                }
                out.put_slice(b",\"name\":");
                out.put_slice(name.map_or("\"\"", |n| n.get()).as_bytes());
                out.put_slice(b",\"input\":{}}}\n\n");
                self.content_chunks += 1;
            }
        }
        if index == 0 {
            out.put_slice(b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
        }
        self.blocks += 1;
        self.open = Some(block);
    }

    fn close(&mut self, out: &mut BytesMut) {
        if self.open.take().is_some() {
            event_head(out, "content_block_stop");
            out.put_slice(b"{\"type\":\"content_block_stop\",\"index\":");
            put_decimal(out, self.blocks - 1);
            out.put_slice(b"}\n\n");
        }
    }
}

/// `event: NAME\ndata: ` (the data and the blank line follow).
fn event_head(out: &mut BytesMut, name: &str) {
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\ndata: ");
}

/// An event's data after its `data: `, one `data:` line per line of it.
fn put_data_lines(out: &mut BytesMut, data: &str) {
    let mut lines = data.split('\n');
    if let Some(first) = lines.next() {
        out.put_slice(first.as_bytes());
    }
    for line in lines {
        out.put_slice(b"\ndata: ");
        out.put_slice(line.as_bytes());
    }
    out.put_slice(b"\n\n");
}

/// The fields of an OpenAI delta the Messages stream reads.
#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    #[serde(borrow)]
    reasoning: Option<&'a RawValue>,
    #[serde(borrow)]
    tool_calls: Option<Vec<ToolCallDelta<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallDelta<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::sse::{SseItem, SseParser};
    use crate::router::transcode::fixtures::*;
    use serde_json::json;

    /// Feeds `stream` through a Messages translator and ends it as the
    /// router does; returns the events as (name, data) and the last step.
    fn translate(t: &mut MessagesStream, stream: &str) -> (Vec<(String, Value)>, Result<Step, TranscodeError>) {
        let mut parser = SseParser::new();
        let mut out = BytesMut::new();
        parser.push(stream.as_bytes()).unwrap();
        let mut step = Ok(Step::Continue);
        while let Some(item) = parser.next_item() {
            if let SseItem::Event(event) = item {
                step = t.on_event(&event, &mut out);
            }
        }
        if step == Ok(Step::Continue) {
            step = t.on_end_of_body();
        }
        match &step {
            Ok(_) => {
                let report = UsageReport {
                    usage: t.usage().unwrap_or_default(),
                    cost: crate::router::pricing::Picodollars(7),
                    upstream_cost: crate::router::pricing::Picodollars(7),
                    is_byok: false,
                };
                t.write_end(&mut out, Some(&report));
            }
            Err(e) => t.write_error(&mut out, &e.to_string()),
        }
        (events(&out), step)
    }

    fn events(out: &[u8]) -> Vec<(String, Value)> {
        let text = std::str::from_utf8(out).unwrap();
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (head, data) = e.split_once('\n').unwrap();
                let name = head.strip_prefix("event: ").unwrap().to_string();
                let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name.as_str(), "{e}");
                (name, data)
            })
            .collect()
    }

    fn names(events: &[(String, Value)]) -> Vec<&str> {
        events.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn an_openai_text_stream_becomes_anthropic_events() {
        let mut t = MessagesStream::new(Dialect::OpenAi, GEN, MODEL, 42, None);
        let (events, step) = translate(&mut t, &openai_text_stream());
        assert_eq!(step, Ok(Step::Finished));
        assert_eq!(
            names(&events),
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let start = &events[0].1["message"];
        assert_eq!(
            (start["id"].as_str(), start["model"].as_str()),
            (Some(GEN), Some(MODEL))
        );
        assert_eq!(start["usage"]["input_tokens"], 42);
        let text: String = events.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect();
        assert_eq!(text, " the \"quoted\" 東京\n");
        assert_eq!(
            events[7].1,
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": {"input_tokens": 40, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 60, "output_tokens": 3,
                             "cost": 0.000000000007}})
        );
        assert_eq!(t.pieces(), 3);
    }

    #[test]
    fn an_openai_tool_stream_becomes_a_tool_use_block() {
        let mut t = MessagesStream::new(Dialect::OpenAi, GEN, MODEL, 1, None);
        let (events, step) = translate(&mut t, &openai_tool_stream());
        assert_eq!(step, Ok(Step::Finished));
        let starts: Vec<&Value> = events
            .iter()
            .filter(|(n, _)| n == "content_block_start")
            .map(|(_, d)| d)
            .collect();
        assert_eq!(
            starts.last().unwrap()["content_block"],
            json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}})
        );
        let index = starts.last().unwrap()["index"].clone();
        let json: String = events
            .iter()
            .filter(|(_, d)| d["index"] == index)
            .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
            .collect();
        assert_eq!(json, "{\"city\":\"Paris 東京\"}");
        let delta = events.iter().find(|(n, _)| n == "message_delta").unwrap();
        assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
        // Indexes are contiguous from 0 and every start has its stop.
        let stops = events.iter().filter(|(n, _)| n == "content_block_stop").count();
        assert_eq!(stops, starts.len());
        for (i, start) in starts.iter().enumerate() {
            assert_eq!(start["index"], i);
        }
    }

    #[test]
    fn an_anthropic_stream_is_relayed_with_the_routers_identity() {
        let mut t = MessagesStream::new(Dialect::Anthropic, GEN, MODEL, 0, None);
        let (events, step) = translate(&mut t, &anthropic_tool_stream());
        assert_eq!(step, Ok(Step::Finished));
        assert_eq!(events[0].0, "message_start");
        assert_eq!(events[0].1["message"]["id"], GEN);
        assert_eq!(events[0].1["message"]["model"], MODEL);
        assert_eq!(
            names(&events)[names(&events).len() - 2..],
            ["message_delta", "message_stop"]
        );
        assert_eq!(events.iter().filter(|(n, _)| n == "message_delta").count(), 1);
        let delta = &events[events.len() - 2].1;
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        assert_eq!(delta["usage"]["output_tokens"], t.usage().unwrap().completion);
        // Everything between is the upstream's, in order.
        let upstream = self::events(anthropic_tool_stream().as_bytes());
        assert_eq!(events[1..events.len() - 2], upstream[1..upstream.len() - 2]);
    }

    #[test]
    fn failures_end_with_an_error_event() {
        let stream = [
            ev("message_start", AN_START),
            an_text("\" the\""),
            ev(
                "error",
                "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}",
            ),
        ]
        .concat();
        let mut t = MessagesStream::new(Dialect::Anthropic, GEN, MODEL, 0, None);
        let (events, step) = translate(&mut t, &stream);
        assert!(matches!(step, Err(TranscodeError::Upstream { .. })));
        let (name, data) = events.last().unwrap();
        assert_eq!(name, "error");
        assert_eq!(data["error"]["type"], "overloaded_error");
        assert_eq!(t.finish_reason(), Some(&FinishReason::Error));
        assert_eq!(t.usage_or_partial().map(|u| u.completion), Some(1));
        // A cut OpenAI stream: api_error.
        let full = openai_text_stream();
        let cut = &full[..full.find("\"finish_reason\":\"stop\"").unwrap()];
        let mut t = MessagesStream::new(Dialect::OpenAi, GEN, MODEL, 0, None);
        let (events, step) = translate(&mut t, cut);
        assert_eq!(step, Err(TranscodeError::Truncated));
        assert_eq!(events.last().unwrap().1["error"]["type"], "api_error");
    }

    #[test]
    fn a_named_stop_sequence_is_reported() {
        let stream = [
            oa_delta("{\"content\":\"a\"}", "null"),
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\",\"stop_reason\":\"END\"}]}\n\n"
                .to_string(),
            format!("data: {{\"choices\":[],\"usage\":{OA_USAGE}}}\n\n"),
        ]
        .concat();
        let sequences = json!(["END"]);
        let mut t = MessagesStream::new(Dialect::OpenAi, GEN, MODEL, 0, Some(&sequences));
        let (events, step) = translate(&mut t, &stream);
        assert_eq!(step, Ok(Step::Finished));
        let delta = &events.iter().find(|(n, _)| n == "message_delta").unwrap().1;
        assert_eq!(
            delta["delta"],
            json!({"stop_reason": "stop_sequence", "stop_sequence": "END"})
        );
    }
}
