//! Whole (non-streaming) answers: an Anthropic message or an OpenAI
//! completion as the router's `chat.completion`, and the bytes of it with the
//! router's usage added.

use bytes::BufMut;
use serde_json::{Map, Value, json};

use super::{FinishReason, TranscodeError, UpstreamUsage, UsageReport, clip, write_json_str, write_usage_object};

/// An upstream answer as the router's `chat.completion`, without `usage`
/// (the router adds it with the cost: [`with_usage`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub body: Value,
    /// `None` when the upstream reported none.
    pub usage: Option<UpstreamUsage>,
    pub finish_reason: FinishReason,
}

fn bad_response(detail: &str) -> TranscodeError {
    TranscodeError::MalformedResponse {
        detail: detail.to_string(),
    }
}

/// An Anthropic message as an OpenAI `chat.completion`: text blocks joined
/// into `content`, `tool_use` blocks as `tool_calls` whose `arguments` is the
/// JSON text of `input`, thinking blocks as `reasoning`.
pub fn openai_response_from_anthropic(
    body: &Value,
    generation_id: &str,
    model: &str,
    created: u64,
) -> Result<Completion, TranscodeError> {
    if body.get("type").and_then(Value::as_str) == Some("error") {
        return Err(upstream_error_value(body.get("error")));
    }
    let blocks = body
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_response("no `content` array"))?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("thinking") => reasoning.push_str(block.get("thinking").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") => {
                let id = block
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_response("tool_use without `id`"))?;
                let name = block
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_response("tool_use without `name`"))?;
                let arguments = block.get("input").map_or_else(|| "{}".to_string(), Value::to_string);
                tool_calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments}
                }));
            }
            _ => {}
        }
    }
    let finish_reason = body
        .get("stop_reason")
        .and_then(Value::as_str)
        .map_or(FinishReason::Stop, FinishReason::from_anthropic);
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    let content = if text.is_empty() && !tool_calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    message.insert("content".into(), content);
    if !reasoning.is_empty() {
        message.insert("reasoning".into(), Value::String(reasoning));
    }
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    let usage = body.get("usage").filter(|u| u.is_object()).map(anthropic_usage);
    let body = json!({
        "id": generation_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason.as_str()
        }]
    });
    Ok(Completion {
        body,
        usage,
        finish_reason,
    })
}

/// An OpenAI `chat.completion` with the router's id, model and creation time,
/// its `usage` taken out (and read).
pub fn openai_response_passthrough(
    mut body: Value,
    generation_id: &str,
    model: &str,
    created: u64,
) -> Result<Completion, TranscodeError> {
    if let Some(error) = body.get("error").filter(|e| !e.is_null()) {
        return Err(upstream_error_value(Some(error)));
    }
    let obj = body.as_object_mut().ok_or_else(|| bad_response("not a JSON object"))?;
    if !obj.get("choices").is_some_and(Value::is_array) {
        return Err(bad_response("no `choices` array"));
    }
    obj.insert("id".into(), generation_id.into());
    obj.insert("model".into(), model.into());
    obj.insert("created".into(), created.into());
    // Field by field rather than by JSON pointer, which allocates for
    // every segment of its path.
    let usage = obj.remove("usage").filter(Value::is_object).map(|u| {
        let count = |path: &[&str]| {
            path.iter()
                .try_fold(&u, |value, field| value.get(field))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        UpstreamUsage::from_openai(
            count(&["prompt_tokens"]),
            count(&["prompt_tokens_details", "cached_tokens"]),
            count(&["completion_tokens"]),
            count(&["completion_tokens_details", "reasoning_tokens"]),
        )
    });
    let finish_reason = body
        .get("choices")
        .and_then(|choices| choices.get(0))
        .and_then(|choice| choice.get("finish_reason"))
        .and_then(Value::as_str)
        .map_or(FinishReason::Stop, FinishReason::from_openai);
    Ok(Completion {
        body,
        usage,
        finish_reason,
    })
}

pub(super) fn upstream_error_value(error: Option<&Value>) -> TranscodeError {
    let text = |field: &str| error.and_then(|e| e.get(field)).and_then(Value::as_str);
    TranscodeError::Upstream {
        kind: text("type").unwrap_or("error").to_string(),
        message: clip(
            text("message")
                .or_else(|| error.and_then(Value::as_str))
                .unwrap_or("unknown error"),
        ),
    }
}

/// An Anthropic `usage` object's counts (a missing one is 0).
pub(super) fn anthropic_usage(usage: &Value) -> UpstreamUsage {
    let count = |field: &str| usage.get(field).and_then(Value::as_u64).unwrap_or(0);
    UpstreamUsage::from_anthropic(
        count("input_tokens"),
        count("cache_read_input_tokens"),
        count("cache_creation_input_tokens"),
        count("output_tokens"),
    )
}

/// The bytes of a whole completion body with the router's `usage` object
/// added (any `usage` already in `body` is left out; the cost an exact JSON
/// number).
pub fn with_usage(body: &Value, report: &UsageReport) -> Vec<u8> {
    with_usage_written(body, |out| write_usage_object(out, report))
}

/// The bytes of a whole answer with `usage` as `write_usage` writes it
/// (any `usage` already in `body` is left out): the chat completion's own
/// object, or a Messages answer's Anthropic one.
pub(super) fn with_usage_written(body: &Value, write_usage: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let Value::Object(fields) = body else {
        return body.to_string().into_bytes();
    };
    let mut out = Vec::with_capacity(1024);
    out.push(b'{');
    for (name, value) in fields.iter().filter(|(name, _)| name.as_str() != "usage") {
        write_json_str(&mut out, name);
        out.push(b':');
        // Straight into the buffer, as `to_string` would write it; writing
        // a `Value` into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut out, value);
        out.push(b',');
    }
    out.put_slice(b"\"usage\":");
    write_usage(&mut out);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::pricing::Picodollars;
    use crate::router::transcode::fixtures::*;
    use crate::router::transcode::{Step, StreamTranslator};

    #[test]
    fn anthropic_message_becomes_a_completion() {
        let c = openai_response_from_anthropic(&anthropic_message(), GEN, MODEL, CREATED).unwrap();
        assert_eq!(c.finish_reason, FinishReason::ToolCalls);
        assert_eq!(c.usage, Some(UpstreamUsage::from_openai(100, 60, 10, 0)));
        assert_eq!(
            c.body,
            json!({
                "id": GEN, "object": "chat.completion", "created": CREATED, "model": MODEL,
                "choices": [{
                    "index": 0, "logprobs": null, "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant", "content": "Let me check.",
                        "tool_calls": [{"id": "toolu_1", "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris 東京\"}"}}]
                    }
                }]
            })
        );
        let only_tool =
            json!({"content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}], "stop_reason": "tool_use"});
        let c = openai_response_from_anthropic(&only_tool, GEN, MODEL, CREATED).unwrap();
        assert_eq!(c.body["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(c.usage, None);
        let error = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
        assert!(matches!(
            openai_response_from_anthropic(&error, GEN, MODEL, CREATED),
            Err(TranscodeError::Upstream { .. })
        ));
        assert!(matches!(
            openai_response_from_anthropic(&json!({}), GEN, MODEL, CREATED),
            Err(TranscodeError::MalformedResponse { .. })
        ));
    }

    #[test]
    fn openai_completion_passes_through() {
        let upstream = json!({
            "id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi", "refusal": null}, "logprobs": null, "finish_reason": "length"}],
            "usage": serde_json::from_str::<Value>(OA_USAGE).unwrap(),
            "system_fingerprint": "fp_gauntlet"
        });
        let c = openai_response_passthrough(upstream, GEN, MODEL, CREATED).unwrap();
        assert_eq!(c.finish_reason, FinishReason::Length);
        assert_eq!(c.usage, Some(UpstreamUsage::from_openai(100, 60, 3, 1)));
        assert_eq!(c.body["id"], GEN);
        assert_eq!(c.body["model"], MODEL);
        assert_eq!(c.body["created"], CREATED);
        assert!(c.body.get("usage").is_none());
        assert_eq!(c.body["choices"][0]["message"]["content"], "hi");
        let error = json!({"error": {"message": "nope", "type": "server_error"}});
        assert!(matches!(
            openai_response_passthrough(error, GEN, MODEL, CREATED),
            Err(TranscodeError::Upstream { .. })
        ));
    }

    #[test]
    fn streaming_and_whole_answers_report_the_same_usage() {
        let whole = openai_response_from_anthropic(&anthropic_message(), GEN, MODEL, CREATED).unwrap();
        let stream = [ev("message_start", AN_START), an_text("\"x\""), an_tail("tool_use", 10)].concat();
        let mut t = StreamTranslator::new(Dialect::Anthropic, GEN, MODEL, CREATED);
        assert_eq!(run(&mut t, stream.as_bytes(), usize::MAX).1, Ok(Step::Finished));
        assert_eq!(t.usage(), whole.usage);
        assert_eq!(t.finish_reason(), Some(&whole.finish_reason));
    }

    #[test]
    fn with_usage_adds_the_usage_once() {
        let c = openai_response_from_anthropic(&anthropic_message(), GEN, MODEL, CREATED).unwrap();
        let bytes = with_usage(&c.body, &report(Picodollars(288_000_000)));
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.contains("\"cost\":0.000288,"), "{text}");
        let back: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back["usage"]["prompt_tokens"], 100);
        let mut without = back.clone();
        without.as_object_mut().unwrap().remove("usage");
        assert_eq!(without, c.body);
        // A `usage` already in the body is replaced, not repeated.
        let mut body = c.body.clone();
        body["usage"] = Value::Null;
        let text = String::from_utf8(with_usage(&body, &report(Picodollars(1)))).unwrap();
        assert_eq!(text.matches("\"usage\"").count(), 1, "{text}");
        let empty: Value = serde_json::from_slice(&with_usage(&json!({}), &report(Picodollars::ZERO))).unwrap();
        assert_eq!(empty["usage"]["cost"], 0);
    }
}
