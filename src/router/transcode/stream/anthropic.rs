//! Anthropic Messages stream events as OpenAI chunks: `message_start` opens
//! with a role chunk, text and thinking deltas become `content` and
//! `reasoning`, `tool_use` blocks become `tool_calls` deltas, `message_stop`
//! writes the finish chunk. Usage is cumulative: `message_delta` fields
//! replace those of `message_start`.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Step, StreamTranslator, malformed, upstream_error, upstream_error_from_data};
use crate::router::sse::SseEvent;
use crate::router::transcode::{FinishReason, TranscodeError, UpstreamUsage, put_decimal};

impl StreamTranslator {
    pub(super) fn anthropic_event(&mut self, event: &SseEvent, out: &mut BytesMut) -> Result<Step, TranscodeError> {
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
                self.open_choice(out);
                out.put_slice(b"{\"role\":\"assistant\",\"content\":\"\"}");
                self.close_choice(out, None);
            }
            "content_block_start" => {
                let block = parsed
                    .content_block
                    .ok_or_else(|| malformed(kind, "missing `content_block`"))?;
                match block.kind.as_ref() {
                    "tool_use" => {
                        let index = parsed.index.ok_or_else(|| malformed(kind, "missing `index`"))?;
                        let id = json_string(block.id, kind, "content_block.id")?;
                        let name = json_string(block.name, kind, "content_block.name")?;
                        let tool = self.tool_blocks.len() as u64;
                        self.tool_blocks.push(index);
                        self.open_choice(out);
                        out.put_slice(b"{\"tool_calls\":[{\"index\":");
                        put_decimal(out, tool);
                        out.put_slice(b",\"id\":");
                        out.put_slice(id.get().as_bytes());
                        out.put_slice(b",\"type\":\"function\",\"function\":{\"name\":");
                        out.put_slice(name.get().as_bytes());
                        out.put_slice(b",\"arguments\":\"\"}}]}");
                        self.close_choice(out, None);
                        self.content_chunks += 1;
                    }
                    "text" => {
                        if let Some(text) = block.text.filter(|t| !is_empty_json_str(t)) {
                            let text = json_string(Some(text), kind, "content_block.text")?;
                            self.field_chunk(out, b"content", text);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = parsed.delta.ok_or_else(|| malformed(kind, "missing `delta`"))?;
                match delta.kind.as_deref() {
                    Some("text_delta") => {
                        let text = json_string(delta.text, kind, "delta.text")?;
                        if !is_empty_json_str(text) {
                            self.field_chunk(out, b"content", text);
                        }
                    }
                    Some("thinking_delta") => {
                        let thinking = json_string(delta.thinking, kind, "delta.thinking")?;
                        if !is_empty_json_str(thinking) {
                            self.field_chunk(out, b"reasoning", thinking);
                        }
                    }
                    Some("input_json_delta") => {
                        let partial = json_string(delta.partial_json, kind, "delta.partial_json")?;
                        let index = parsed.index.ok_or_else(|| malformed(kind, "missing `index`"))?;
                        let tool = self
                            .tool_blocks
                            .iter()
                            .position(|&block| block == index)
                            .ok_or_else(|| malformed(kind, "input_json_delta for a block that is not a tool_use"))?;
                        if !is_empty_json_str(partial) {
                            self.open_choice(out);
                            out.put_slice(b"{\"tool_calls\":[{\"index\":");
                            put_decimal(out, tool as u64);
                            out.put_slice(b",\"function\":{\"arguments\":");
                            out.put_slice(partial.get().as_bytes());
                            out.put_slice(b"}}]}");
                            self.close_choice(out, None);
                            self.pieces += 1;
                            self.content_chunks += 1;
                        }
                    }
                    // `signature_delta`, `citations_delta` and later kinds carry no text.
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = parsed.delta.and_then(|d| d.stop_reason) {
                    self.finish = Some(FinishReason::from_anthropic(&reason));
                }
                if let Some(usage) = parsed.usage {
                    self.counts = self.counts.merged(&usage);
                    self.usage = Some(self.counts.normalise());
                }
            }
            "message_stop" => {
                let reason = self.finish.take().unwrap_or(FinishReason::Stop);
                self.open_choice(out);
                out.put_slice(b"{}");
                self.close_choice(out, Some(&reason));
                self.finish = Some(reason);
                return Ok(Step::Finished);
            }
            "error" => {
                let error = parsed.error.ok_or_else(|| malformed(kind, "missing `error`"))?;
                return Err(upstream_error(error));
            }
            // `ping`, `content_block_stop`, and event types added later.
            _ => {}
        }
        Ok(Step::Continue)
    }
}

/// A raw JSON value that must be a string literal.
fn json_string<'a>(raw: Option<&'a RawValue>, event: &str, field: &str) -> Result<&'a RawValue, TranscodeError> {
    match raw {
        Some(raw) if raw.get().starts_with('"') => Ok(raw),
        Some(_) => Err(malformed(event, format!("`{field}` is not a string"))),
        None => Err(malformed(event, format!("missing `{field}`"))),
    }
}

pub(super) fn is_empty_json_str(raw: &RawValue) -> bool {
    raw.get() == "\"\""
}

/// Every Anthropic stream event, flattened: each kind fills its own fields.
/// (The Messages API ingress reads the same events: `stream::messages`.)
#[derive(Deserialize)]
pub(super) struct AnthropicEvent<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Cow<'a, str>,
    pub(super) index: Option<u64>,
    pub(super) message: Option<MessageStart>,
    #[serde(borrow)]
    pub(super) content_block: Option<ContentBlock<'a>>,
    #[serde(borrow)]
    pub(super) delta: Option<AnthropicDelta<'a>>,
    pub(super) usage: Option<AnthropicUsage>,
    #[serde(borrow)]
    pub(super) error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(super) struct MessageStart {
    pub(super) usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
pub(super) struct ContentBlock<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Cow<'a, str>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow)]
    text: Option<&'a RawValue>,
}

/// A `content_block_delta`'s or a `message_delta`'s `delta`.
#[derive(Deserialize)]
pub(super) struct AnthropicDelta<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) text: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(super) thinking: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(super) partial_json: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(super) stop_reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) stop_sequence: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct AnthropicUsage {
    input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

/// Anthropic's counts as last reported, field by field.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct AnthropicCounts {
    input: u64,
    cache_read: u64,
    cache_write: u64,
    output: u64,
}

impl AnthropicCounts {
    /// These counts with the fields `usage` reports replaced.
    pub(super) fn merged(self, usage: &AnthropicUsage) -> Self {
        AnthropicCounts {
            input: usage.input_tokens.unwrap_or(self.input),
            cache_read: usage.cache_read_input_tokens.unwrap_or(self.cache_read),
            cache_write: usage.cache_creation_input_tokens.unwrap_or(self.cache_write),
            output: usage.output_tokens.unwrap_or(self.output),
        }
    }

    pub(super) fn normalise(&self) -> UpstreamUsage {
        UpstreamUsage::from_anthropic(self.input, self.cache_read, self.cache_write, self.output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::pricing::BilledUsage;
    use crate::router::transcode::fixtures::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn anthropic_stream_becomes_openai_chunks() {
        let mut t = StreamTranslator::new(Dialect::Anthropic, GEN, MODEL, CREATED);
        let (out, step) = run(&mut t, anthropic_text_stream().as_bytes(), usize::MAX);
        assert_eq!(step, Ok(Step::Finished));
        let frames = frames(&out);
        assert_eq!(frames.len(), 5, "role, three pieces, finish: {out}");
        assert_eq!(
            frames[0]["choices"][0],
            json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null})
        );
        assert_eq!(
            frames[4]["choices"][0],
            json!({"index": 0, "delta": {}, "finish_reason": "stop"})
        );
        let r = reassemble(&frames);
        assert_eq!(r.content, " the \"quoted\" 東京\n");
        assert_eq!(r.finish, ["stop"]);
        // The same text, the same counts as the OpenAI stream.
        let mut oa = StreamTranslator::new(Dialect::OpenAi, GEN, MODEL, CREATED);
        let (oa_out, _) = run(&mut oa, openai_text_stream().as_bytes(), usize::MAX);
        assert_eq!(reassemble(&self::frames(&oa_out)).content, r.content);
        assert_eq!(t.usage().map(|u| u.billed()), oa.usage().map(|u| u.billed()));
        assert_eq!(t.start_usage().map(|u| (u.prompt_total, u.completion)), Some((100, 1)));
        assert_eq!(t.pieces(), 3);
    }

    #[test]
    fn several_tool_blocks_get_successive_openai_indexes() {
        let block = |index: u64, id: &str| {
            ev(
                "content_block_start",
                &format!(
                    "{{\"type\":\"content_block_start\",\"index\":{index},\"content_block\":{{\"type\":\"tool_use\",\"id\":\"{id}\",\"name\":\"f\",\"input\":{{}}}}}}"
                ),
            )
        };
        let args = |index: u64, piece: &str| {
            ev(
                "content_block_delta",
                &format!(
                    "{{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":\"{piece}\"}}}}"
                ),
            )
        };
        let stream = [
            ev("message_start", AN_START),
            ev(
                "content_block_start",
                "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
            ),
            an_text("\"Let me look.\""),
            block(1, "toolu_a"),
            args(1, ""),
            args(1, "{}"),
            block(2, "toolu_b"),
            args(2, "{\\\"x\\\":1}"),
            an_tail("tool_use", 9),
        ]
        .concat();
        let mut t = StreamTranslator::new(Dialect::Anthropic, GEN, MODEL, CREATED);
        let (out, step) = run(&mut t, stream.as_bytes(), 7);
        assert_eq!(step, Ok(Step::Finished));
        let r = reassemble(&frames(&out));
        assert_eq!(r.content, "Let me look.");
        assert_eq!(
            r.tools,
            BTreeMap::from([
                (0, ("toolu_a".into(), "f".into(), "{}".into())),
                (1, ("toolu_b".into(), "f".into(), "{\"x\":1}".into())),
            ])
        );
        // The empty `partial_json` is not a piece.
        assert_eq!(t.pieces(), 3);
    }

    #[test]
    fn anthropic_usage_takes_the_last_message_delta_field_by_field() {
        let stream = [
            ev("message_start", AN_START),
            an_text("\"a\""),
            // Only output so far: input and cache stay from message_start.
            ev("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":null},\"usage\":{\"output_tokens\":5}}"),
            ev("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":7,\"cache_creation_input_tokens\":10,\"input_tokens\":30}}"),
            ev("message_stop", "{\"type\":\"message_stop\"}"),
        ]
        .concat();
        let mut t = StreamTranslator::new(Dialect::Anthropic, GEN, MODEL, CREATED);
        let (out, step) = run(&mut t, stream.as_bytes(), usize::MAX);
        assert_eq!(step, Ok(Step::Finished));
        assert_eq!(reassemble(&frames(&out)).finish, ["length"]);
        assert_eq!(
            t.usage(),
            Some(UpstreamUsage {
                prompt_total: 100,
                cache_read: 60,
                cache_write: 10,
                completion: 7,
                reasoning: 0
            })
        );
        assert_eq!(
            t.usage().unwrap().billed(),
            BilledUsage {
                uncached_prompt: 30,
                cache_read: 60,
                cache_write: 10,
                completion: 7
            }
        );
    }

    #[test]
    fn anthropic_error_event_fails_the_stream() {
        let stream = [
            ev("message_start", AN_START),
            an_text("\" the\""),
            ev(
                "error",
                "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}",
            ),
        ]
        .concat();
        let mut t = StreamTranslator::new(Dialect::Anthropic, GEN, MODEL, CREATED);
        let (out, step) = run(&mut t, stream.as_bytes(), usize::MAX);
        assert_eq!(
            step,
            Err(TranscodeError::Upstream {
                kind: "overloaded_error".into(),
                message: "Overloaded".into()
            })
        );
        assert_eq!(reassemble(&frames(&out)).content, " the");
        assert_eq!(t.finish_reason(), Some(&FinishReason::Error));
        let frame = error_frame(step.as_ref().unwrap_err());
        assert_eq!(frame["id"], GEN);
        assert_eq!(
            frame["error"],
            json!({"code": 502, "message": "upstream error (overloaded_error): Overloaded"})
        );
        assert_eq!(
            frame["choices"],
            json!([{"index": 0, "delta": {}, "finish_reason": "error"}])
        );
        // The cut stream is charged for its pieces and the prompt of message_start.
        assert_eq!(t.usage(), None);
        assert_eq!(
            t.usage_or_partial(),
            Some(UpstreamUsage {
                prompt_total: 100,
                cache_read: 60,
                cache_write: 0,
                completion: 1,
                reasoning: 0
            })
        );
    }

    #[test]
    fn without_message_delta_the_stream_still_ends_with_stop() {
        let stream = [
            ev("message_start", AN_START),
            an_text("\"x\""),
            ev("message_stop", "{\"type\":\"message_stop\"}"),
        ]
        .concat();
        let mut t = StreamTranslator::new(Dialect::Anthropic, GEN, MODEL, CREATED);
        let (out, step) = run(&mut t, stream.as_bytes(), usize::MAX);
        assert_eq!(step, Ok(Step::Finished));
        assert_eq!(reassemble(&frames(&out)).finish, ["stop"]);
        assert_eq!(t.usage(), None);
        assert_eq!(
            t.usage_or_partial().map(|u| (u.prompt_total, u.completion)),
            Some((100, 1))
        );
    }

    #[test]
    fn malformed_events_fail_the_stream() {
        // The mock's malformed event: cut-off JSON followed by a blank line.
        let stream = [
            ev("message_start", AN_START),
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_del\n\n".to_string(),
        ]
        .concat();
        let mut t = StreamTranslator::new(Dialect::Anthropic, GEN, MODEL, CREATED);
        let (out, step) = run(&mut t, stream.as_bytes(), usize::MAX);
        assert!(matches!(&step, Err(TranscodeError::Malformed { event, .. }) if event == "content_block_delta"));
        assert_eq!(frames(&out).len(), 1, "the role chunk only");
        assert_eq!(t.finish_reason(), Some(&FinishReason::Error));
        // Valid JSON of the wrong shape is malformed too.
        for bad in [
            "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":5}}",
            "{\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\"}}",
            "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"name\":\"f\"}}",
            "{\"type\":\"content_block_delta\",\"index\":0}",
            "{\"index\":0}",
        ] {
            let mut t = StreamTranslator::new(Dialect::Anthropic, GEN, MODEL, CREATED);
            let (out, step) = run(&mut t, ev("x", bad).as_bytes(), usize::MAX);
            assert!(matches!(step, Err(TranscodeError::Malformed { .. })), "{bad}: {step:?}");
            assert!(out.is_empty());
        }
    }

    #[test]
    fn a_stream_cut_before_message_stop_fails() {
        let full = anthropic_text_stream();
        let cut = &full[..full.find("event: message_delta").unwrap()];
        let mut t = StreamTranslator::new(Dialect::Anthropic, GEN, MODEL, CREATED);
        let (_, step) = run(&mut t, cut.as_bytes(), usize::MAX);
        assert_eq!(step, Err(TranscodeError::Truncated));
        // Charged for the prompt of message_start and the three pieces seen.
        assert_eq!(t.usage(), None);
        assert_eq!(
            t.usage_or_partial(),
            Some(UpstreamUsage {
                prompt_total: 100,
                cache_read: 60,
                cache_write: 0,
                completion: 3,
                reasoning: 0
            })
        );
        // message_delta came but not message_stop: still cut, with the final counts.
        let cut = &full[..full.find("event: message_stop").unwrap()];
        let mut t = StreamTranslator::new(Dialect::Anthropic, GEN, MODEL, CREATED);
        assert_eq!(
            run(&mut t, cut.as_bytes(), usize::MAX).1,
            Err(TranscodeError::Truncated)
        );
        assert_eq!(t.usage_or_partial().map(|u| u.completion), Some(3));
    }

    proptest! {
        #[test]
        fn text_deltas_survive_any_content(pieces in proptest::collection::vec(any::<String>(), 1..6)) {
            let mut stream = ev("message_start", AN_START);
            for piece in &pieces {
                stream += &an_text(&serde_json::to_string(piece).unwrap());
            }
            stream += &an_tail("end_turn", pieces.len() as u64);
            let mut t = StreamTranslator::new(Dialect::Anthropic, GEN, MODEL, CREATED);
            let (out, step) = run(&mut t, stream.as_bytes(), 13);
            prop_assert_eq!(step, Ok(Step::Finished));
            prop_assert_eq!(reassemble(&frames(&out)).content, pieces.concat());
            prop_assert_eq!(t.pieces(), pieces.iter().filter(|p| !p.is_empty()).count() as u64);
        }
    }
}
