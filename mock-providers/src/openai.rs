//! The OpenAI dialect: `POST /v1/chat/completions` requests in, completions,
//! `chat.completion.chunk` SSE and error bodies out.

use bytes::{BufMut, BytesMut};
use serde_json::{Value, json};

use crate::journal::Usage;
use crate::plan::{Ask, Finish, Plan};
use crate::tokens::{content_text, find_nonce, for_each_text, prompt_tokens};

/// Reads a chat completion request; the error says what is wrong.
pub fn parse(body: &Value) -> Result<Ask, String> {
    let obj = body.as_object().ok_or("the request body must be a JSON object")?;
    let model = match obj.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(_) => return Err("`model` must be a non-empty string".into()),
        None => return Err("you must provide a `model` parameter".into()),
    };
    let messages = match obj.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return Err("`messages` must not be empty".into()),
        Some(_) => return Err("`messages` must be an array".into()),
        None => return Err("missing required parameter: `messages`".into()),
    };
    let mut system = Vec::new();
    let mut nonce = None;
    for (i, message) in messages.iter().enumerate() {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("`messages[{i}].role` must be a string"))?;
        if matches!(role, "system" | "developer") {
            system.push(content_text(message.get("content")));
        }
        if nonce.is_none() {
            for_each_text(message.get("content"), &mut |text| {
                if nonce.is_none() {
                    nonce = find_nonce(text).map(str::to_string);
                }
            });
        }
    }
    let stream = flag(obj.get("stream"), "stream")?;
    let include_usage = match obj.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => flag(o.get("include_usage"), "stream_options.include_usage")?,
        Some(_) => return Err("`stream_options` must be an object".into()),
    };
    let max_tokens = match obj.get("max_completion_tokens").or_else(|| obj.get("max_tokens")) {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|&n| n > 0)
                .ok_or("`max_tokens` must be a positive integer")?,
        ),
    };
    let tools = obj.get("tools").filter(|t| t.as_array().is_some_and(|a| !a.is_empty()));
    Ok(Ask {
        model,
        stream,
        include_usage,
        max_tokens,
        system: (!system.is_empty()).then(|| system.join("\n")),
        prompt_tokens: prompt_tokens(None, messages, tools),
        nonce,
        offers_tools: tools.is_some(),
    })
}

fn flag(value: Option<&Value>, name: &str) -> Result<bool, String> {
    match value {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("`{name}` must be a boolean")),
    }
}

fn finish_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "stop",
        Finish::Length => "length",
        Finish::ToolCalls => "tool_calls",
    }
}

/// The `usage` object as OpenAI reports it: `prompt_tokens` includes the
/// cached tokens.
pub fn usage_json(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    })
}

/// A whole non-streaming completion.
pub fn completion(plan: &Plan, model: &str, created: u64) -> Vec<u8> {
    let message = match &plan.tool {
        Some(tool) => json!({
            "role": "assistant",
            "content": null,
            "refusal": null,
            "tool_calls": [{
                "id": tool.id,
                "type": "function",
                "function": {"name": tool.name, "arguments": plan.pieces.concat()}
            }]
        }),
        None => json!({"role": "assistant", "content": plan.text(), "refusal": null}),
    };
    let body = json!({
        "id": format!("chatcmpl-{}", plan.id),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason(plan.finish)}],
        "usage": usage_json(&plan.usage),
        "system_fingerprint": "fp_gauntlet"
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// An error body: `{"error": {"message", "type", "param", "code"}}`.
pub fn error(status: u16, message: &str, code: Option<&str>) -> Vec<u8> {
    let (kind, default_code) = match status {
        401 => ("invalid_request_error", "invalid_api_key"),
        404 => ("invalid_request_error", "model_not_found"),
        400 | 413 | 422 => ("invalid_request_error", "invalid_request"),
        429 => ("requests", "rate_limit_exceeded"),
        529 => ("overloaded_error", "overloaded"),
        _ => ("server_error", "server_error"),
    };
    let body =
        json!({"error": {"message": message, "type": kind, "param": null, "code": code.unwrap_or(default_code)}});
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Writes the SSE frames of one streamed completion.
#[derive(Debug)]
pub struct ChunkWriter {
    /// `data: {"id":…,"choices":[` — everything before the choice.
    prefix: Vec<u8>,
    /// `,"usage":null` when the client asked for usage (OpenAI sends it on every chunk then).
    usage_null: &'static [u8],
    include_usage: bool,
}

impl ChunkWriter {
    pub fn new(plan: &Plan, model: &str, created: u64, include_usage: bool) -> Self {
        let mut prefix = Vec::with_capacity(160 + model.len());
        prefix.extend_from_slice(b"data: {\"id\":\"chatcmpl-");
        prefix.extend_from_slice(plan.id.as_bytes());
        prefix.extend_from_slice(b"\",\"object\":\"chat.completion.chunk\",\"created\":");
        prefix.extend_from_slice(created.to_string().as_bytes());
        prefix.extend_from_slice(b",\"model\":");
        write_json_str(&mut prefix, model);
        prefix.extend_from_slice(b",\"system_fingerprint\":\"fp_gauntlet\",\"choices\":[");
        ChunkWriter {
            prefix,
            usage_null: if include_usage { b",\"usage\":null" } else { b"" },
            include_usage,
        }
    }

    fn choice(&self, buf: &mut BytesMut, delta: &[u8], text: Option<&str>, delta_end: &[u8], finish: Option<&str>) {
        buf.put_slice(&self.prefix);
        buf.put_slice(b"{\"index\":0,\"delta\":");
        buf.put_slice(delta);
        if let Some(text) = text {
            write_json_str(buf, text);
        }
        buf.put_slice(delta_end);
        buf.put_slice(b",\"logprobs\":null,\"finish_reason\":");
        match finish {
            Some(reason) => {
                buf.put_u8(b'"');
                buf.put_slice(reason.as_bytes());
                buf.put_u8(b'"');
            }
            None => buf.put_slice(b"null"),
        }
        buf.put_slice(b"}]");
        buf.put_slice(self.usage_null);
        buf.put_slice(b"}\n\n");
    }

    /// The role chunk that opens the stream.
    pub fn preamble(&self, buf: &mut BytesMut, plan: &Plan) {
        let delta: &[u8] = if plan.tool.is_some() {
            b"{\"role\":\"assistant\",\"content\":null,\"refusal\":null}"
        } else {
            b"{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}"
        };
        self.choice(buf, delta, None, b"", None);
    }

    /// The chunk of piece `index`.
    pub fn piece(&self, buf: &mut BytesMut, plan: &Plan, index: usize) {
        let text = plan.pieces.get(index).map_or("", |p| p.as_ref());
        match &plan.tool {
            None => self.choice(buf, b"{\"content\":", Some(text), b"}", None),
            Some(tool) if index == 0 => {
                let mut head = Vec::with_capacity(96 + tool.name.len());
                head.extend_from_slice(b"{\"tool_calls\":[{\"index\":0,\"id\":\"");
                head.extend_from_slice(tool.id.as_bytes());
                head.extend_from_slice(b"\",\"type\":\"function\",\"function\":{\"name\":");
                write_json_str(&mut head, &tool.name);
                head.extend_from_slice(b",\"arguments\":");
                self.choice(buf, &head, Some(text), b"}}]}", None);
            }
            Some(_) => self.choice(
                buf,
                b"{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":",
                Some(text),
                b"}}]}",
                None,
            ),
        }
    }

    /// The finish chunk, the usage chunk (`choices: []`) when asked for, and `[DONE]`.
    pub fn tail(&self, buf: &mut BytesMut, plan: &Plan) {
        self.choice(buf, b"{}", None, b"", Some(finish_reason(plan.finish)));
        if self.include_usage {
            buf.put_slice(&self.prefix);
            buf.put_slice(b"],\"usage\":");
            buf.put_slice(usage_json(&plan.usage).to_string().as_bytes());
            buf.put_slice(b"}\n\n");
        }
        buf.put_slice(b"data: [DONE]\n\n");
    }

    /// An error in the stream, as OpenAI sends one: a `data:` line with an
    /// `error` object, then the stream ends.
    pub fn error(&self, buf: &mut BytesMut, status: u16, message: &str) {
        buf.put_slice(b"data: ");
        buf.put_slice(&error(status, message, None));
        buf.put_slice(b"\n\n");
    }

    /// A chunk whose JSON is cut off.
    pub fn malformed(&self, buf: &mut BytesMut) {
        buf.put_slice(&self.prefix);
        buf.put_slice(b"{\"index\":0,\"delta\":{\"content\":\"trunc\n\n");
    }
}

/// Appends `text` as a JSON string literal.
pub fn write_json_str(buf: &mut impl BufMut, text: &str) {
    buf.put_u8(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                buf.put_slice(&bytes[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                buf.put_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        buf.put_slice(&bytes[start..i]);
        buf.put_slice(escape);
        start = i + 1;
    }
    buf.put_slice(&bytes[start..]);
    buf.put_u8(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_reads_the_fields() {
        let ask = parse(&json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi [gauntlet:r1]"}]}
            ],
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_completion_tokens": 9,
            "tools": [{"type": "function", "function": {"name": "f"}}]
        }))
        .unwrap();
        assert_eq!(ask.model, "gpt-4o-mini");
        assert!(ask.stream && ask.include_usage && ask.offers_tools);
        assert_eq!(ask.max_tokens, Some(9));
        assert_eq!(ask.system.as_deref(), Some("be brief"));
        assert_eq!(ask.nonce.as_deref(), Some("r1"));
    }

    #[test]
    fn parse_says_what_is_wrong() {
        assert!(parse(&json!([])).unwrap_err().contains("JSON object"));
        assert!(parse(&json!({"messages": []})).unwrap_err().contains("model"));
        assert!(parse(&json!({"model": "m"})).unwrap_err().contains("messages"));
        assert!(
            parse(&json!({"model": "m", "messages": [{"content": "x"}]}))
                .unwrap_err()
                .contains("role")
        );
        let bad_max = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1});
        assert!(parse(&bad_max).unwrap_err().contains("max_tokens"));
    }

    proptest! {
        #[test]
        fn escaping_round_trips(text in "\\PC*|[\"\\\\\n\r\t\u{0}-\u{1f}]*") {
            let mut buf = Vec::new();
            write_json_str(&mut buf, &text);
            let back: String = serde_json::from_slice(&buf).unwrap();
            prop_assert_eq!(back, text);
        }
    }
}
