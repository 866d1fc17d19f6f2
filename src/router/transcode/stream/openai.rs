//! OpenAI-dialect upstream chunks: deltas relayed as they came, with the
//! router's id, model and creation time; usage and finish reason recorded.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Step, StreamTranslator, malformed, upstream_error, upstream_error_from_data};
use crate::router::sse::SseEvent;
use crate::router::transcode::{FinishReason, TranscodeError, UpstreamUsage, put_decimal, write_json_str};

impl StreamTranslator {
    pub(super) fn openai_event(&mut self, event: &SseEvent, out: &mut BytesMut) -> Result<Step, TranscodeError> {
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
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.normalise());
        }
        let choices = chunk.choices.unwrap_or_default();
        if choices.is_empty() {
            return Ok(Step::Continue);
        }
        if choices
            .iter()
            .any(|c| c.delta.is_some_and(|d| !d.get().starts_with('{')))
        {
            return Err(malformed("chunk", "`delta` is not an object"));
        }
        out.put_slice(&self.prefix);
        let mut generated = false;
        for (i, choice) in choices.iter().enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            out.put_slice(b"{\"index\":");
            put_decimal(out, choice.index);
            out.put_slice(b",\"delta\":");
            match choice.delta {
                Some(delta) => {
                    out.put_slice(delta.get().as_bytes());
                    if generates(delta) {
                        self.pieces += 1;
                        generated = true;
                    }
                }
                None => out.put_slice(b"{}"),
            }
            out.put_slice(b",\"finish_reason\":");
            match &choice.finish_reason {
                Some(reason) => {
                    write_json_str(out, reason);
                    if choice.index == 0 {
                        self.finish = Some(FinishReason::from_openai(reason));
                    }
                }
                None => out.put_slice(b"null"),
            }
            out.put_u8(b'}');
        }
        out.put_slice(b"]}\n\n");
        self.chunks += 1;
        self.content_chunks += u64::from(generated);
        Ok(Step::Continue)
    }
}

/// Whether an OpenAI delta carries generated output.
fn generates(delta: &RawValue) -> bool {
    let carries = |raw: Option<&RawValue>| raw.is_some_and(|r| !matches!(r.get(), "\"\"" | "[]" | "null"));
    serde_json::from_str::<DeltaProbe<'_>>(delta.get()).is_ok_and(|probe| {
        carries(probe.content) || carries(probe.reasoning) || carries(probe.refusal) || carries(probe.tool_calls)
    })
}

/// (The Messages API ingress reads the same chunks: `stream::messages`.)
#[derive(Deserialize)]
pub(super) struct OpenAiChunk<'a> {
    #[serde(borrow)]
    pub(super) choices: Option<Vec<OpenAiChoice<'a>>>,
    pub(super) usage: Option<OpenAiUsage>,
    #[serde(borrow)]
    pub(super) error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(super) struct OpenAiChoice<'a> {
    #[serde(default)]
    pub(super) index: u64,
    #[serde(borrow)]
    pub(super) delta: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(super) finish_reason: Option<Cow<'a, str>>,
    /// The stop sequence that matched, from upstreams that say (vLLM).
    #[serde(borrow)]
    pub(super) stop_reason: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct DeltaProbe<'a> {
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    #[serde(borrow)]
    reasoning: Option<&'a RawValue>,
    #[serde(borrow)]
    refusal: Option<&'a RawValue>,
    #[serde(borrow)]
    tool_calls: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(super) struct OpenAiUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    reasoning_tokens: Option<u64>,
}

impl OpenAiUsage {
    pub(super) fn normalise(&self) -> UpstreamUsage {
        UpstreamUsage::from_openai(
            self.prompt_tokens.unwrap_or(0),
            self.prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            self.completion_tokens.unwrap_or(0),
            self.completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::transcode::fixtures::*;
    use serde_json::json;

    #[test]
    fn openai_stream_is_relayed_with_the_routers_identity() {
        let mut t = StreamTranslator::new(Dialect::OpenAi, GEN, MODEL, CREATED);
        let (out, step) = run(&mut t, openai_text_stream().as_bytes(), usize::MAX);
        assert!(step.is_ok_and(Step::is_finished));
        assert!(!out.contains("[DONE]") && !out.contains("usage"));
        let frames = frames(&out);
        assert_eq!(frames.len(), 5, "role, three pieces, finish: {out}");
        // The delta is kept as the upstream sent it.
        assert_eq!(
            frames[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": "", "refusal": null})
        );
        let r = reassemble(&frames);
        assert_eq!(r.role.as_deref(), Some("assistant"));
        assert_eq!(r.content, " the \"quoted\" 東京\n");
        assert_eq!(r.finish, ["stop"]);
        assert_eq!(t.finish_reason(), Some(&FinishReason::Stop));
        assert_eq!(
            t.usage(),
            Some(UpstreamUsage {
                prompt_total: 100,
                cache_read: 60,
                cache_write: 0,
                completion: 3,
                reasoning: 1
            })
        );
        assert_eq!((t.pieces(), t.content_chunks(), t.chunks_written()), (3, 3, 5));
    }

    #[test]
    fn openai_error_data_fails_the_stream() {
        let stream = [
            oa_delta("{\"content\":\" the\"}", "null"),
            "data: {\"error\":{\"code\":\"server_error\",\"message\":\"upstream went away\",\"param\":null,\"type\":\"server_error\"}}\n\n".to_string(),
        ]
        .concat();
        let mut t = StreamTranslator::new(Dialect::OpenAi, GEN, MODEL, CREATED);
        let (out, step) = run(&mut t, stream.as_bytes(), usize::MAX);
        assert_eq!(
            step,
            Err(TranscodeError::Upstream {
                kind: "server_error".into(),
                message: "upstream went away".into()
            })
        );
        assert_eq!(frames(&out).len(), 1);
        assert_eq!(
            error_frame(step.as_ref().unwrap_err())["choices"][0]["finish_reason"],
            "error"
        );
        assert_eq!((t.usage_or_partial(), t.pieces()), (None, 1));
        // An `event: error` with plain text.
        let mut t = StreamTranslator::new(Dialect::OpenAi, GEN, MODEL, CREATED);
        let (_, step) = run(&mut t, b"event: error\ndata: boom\n\n", usize::MAX);
        assert_eq!(
            step,
            Err(TranscodeError::Upstream {
                kind: "error".into(),
                message: "boom".into()
            })
        );
    }

    #[test]
    fn malformed_chunks_fail_the_stream() {
        // The mock's malformed chunk: cut-off JSON followed by a blank line.
        let stream = [
            oa_delta("{\"content\":\" the\"}", "null"),
            "data: {\"id\":\"chatcmpl-up\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"trunc\n\n".to_string(),
        ]
        .concat();
        let mut t = StreamTranslator::new(Dialect::OpenAi, GEN, MODEL, CREATED);
        let (out, step) = run(&mut t, stream.as_bytes(), usize::MAX);
        assert!(
            matches!(&step, Err(TranscodeError::Malformed { event, .. }) if event == "chunk"),
            "{step:?}"
        );
        assert_eq!(frames(&out).len(), 1);
        assert_eq!(t.finish_reason(), Some(&FinishReason::Error));
        // Valid JSON of the wrong shape: nothing half-written.
        let mut t = StreamTranslator::new(Dialect::OpenAi, GEN, MODEL, CREATED);
        let (out, step) = run(&mut t, oa_delta("\"text\"", "null").as_bytes(), usize::MAX);
        assert!(matches!(step, Err(TranscodeError::Malformed { .. })));
        assert!(out.is_empty());
    }

    #[test]
    fn a_stream_cut_before_its_finish_fails() {
        let full = openai_text_stream();
        let cut = &full[..full.find("\"finish_reason\":\"stop\"").unwrap()];
        let mut t = StreamTranslator::new(Dialect::OpenAi, GEN, MODEL, CREATED);
        let (out, step) = run(&mut t, cut.as_bytes(), usize::MAX);
        assert_eq!(step, Err(TranscodeError::Truncated));
        assert_eq!(
            frames(&out).len(),
            4,
            "role and three pieces; the partial finish line is not relayed"
        );
        assert_eq!((t.pieces(), t.usage_or_partial()), (3, None));

        // Finish and usage seen, only `[DONE]` missing: complete.
        let cut = &full[..full.find("data: [DONE]").unwrap()];
        let mut t = StreamTranslator::new(Dialect::OpenAi, GEN, MODEL, CREATED);
        assert_eq!(run(&mut t, cut.as_bytes(), usize::MAX).1, Ok(Step::Finished));
        assert_eq!(t.finish_reason(), Some(&FinishReason::Stop));
    }
}
