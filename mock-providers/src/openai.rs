//! The OpenAI dialect: `POST /v1/chat/completions` requests in, completions,
//! `chat.completion.chunk` SSE and error bodies out.

use std::borrow::Cow;

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

/// A whole non-streaming completion, written directly rather than through a
/// `serde_json::Value`: the keys come in the sorted order a `Value` object
/// gives them, so the bytes are the ones `json!` would produce.
pub fn completion(plan: &Plan, model: &str, created: u64) -> Vec<u8> {
    let text_len: usize = plan.pieces.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(512 + model.len() + text_len + text_len / 4);
    out.put_slice(b"{\"choices\":[{\"finish_reason\":\"");
    out.put_slice(finish_reason(plan.finish).as_bytes());
    out.put_slice(b"\",\"index\":0,\"logprobs\":null,\"message\":");
    match &plan.tool {
        Some(tool) => {
            out.put_slice(b"{\"content\":null,\"refusal\":null,\"role\":\"assistant\",");
            out.put_slice(b"\"tool_calls\":[{\"function\":{\"arguments\":");
            write_json_pieces(&mut out, &plan.pieces);
            out.put_slice(b",\"name\":");
            write_json_str(&mut out, &tool.name);
            out.put_slice(b"},\"id\":");
            write_json_str(&mut out, &tool.id);
            out.put_slice(b",\"type\":\"function\"}]}");
        }
        None => {
            out.put_slice(b"{\"content\":");
            write_json_pieces(&mut out, &plan.pieces);
            out.put_slice(b",\"refusal\":null,\"role\":\"assistant\"}");
        }
    }
    out.put_slice(b"}],\"created\":");
    put_decimal(&mut out, created);
    out.put_slice(b",\"id\":\"chatcmpl-");
    write_json_str_contents(&mut out, &plan.id);
    out.put_slice(b"\",\"model\":");
    write_json_str(&mut out, model);
    out.put_slice(b",\"object\":\"chat.completion\",\"system_fingerprint\":\"fp_gauntlet\",\"usage\":");
    write_usage(&mut out, &plan.usage);
    out.put_u8(b'}');
    out
}

/// Appends [`usage_json`] as JSON text (the same bytes, without the `Value`).
pub fn write_usage(buf: &mut impl BufMut, usage: &Usage) {
    buf.put_slice(b"{\"completion_tokens\":");
    put_decimal(buf, u64::from(usage.completion_tokens));
    buf.put_slice(b",\"completion_tokens_details\":{\"accepted_prediction_tokens\":0,\"audio_tokens\":0,");
    buf.put_slice(b"\"reasoning_tokens\":");
    put_decimal(buf, u64::from(usage.reasoning_tokens));
    buf.put_slice(b",\"rejected_prediction_tokens\":0},\"prompt_tokens\":");
    put_decimal(buf, u64::from(usage.prompt_tokens));
    buf.put_slice(b",\"prompt_tokens_details\":{\"audio_tokens\":0,\"cached_tokens\":");
    put_decimal(buf, u64::from(usage.cache_read_tokens));
    buf.put_slice(b"},\"total_tokens\":");
    put_decimal(buf, u64::from(usage.prompt_tokens) + u64::from(usage.completion_tokens));
    buf.put_u8(b'}');
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
            write_usage(buf, &plan.usage);
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

/// Appends `text` as a JSON string literal, escaped as serde_json does.
pub fn write_json_str(buf: &mut impl BufMut, text: &str) {
    buf.put_u8(b'"');
    write_json_str_contents(buf, text);
    buf.put_u8(b'"');
}

/// Appends the pieces, concatenated, as one JSON string literal.
pub fn write_json_pieces(buf: &mut impl BufMut, pieces: &[Cow<'static, str>]) {
    buf.put_u8(b'"');
    for piece in pieces {
        write_json_str_contents(buf, piece);
    }
    buf.put_u8(b'"');
}

/// Appends `text` escaped for the inside of a JSON string literal, the way
/// serde_json escapes it (short forms for `\b \f \n \r \t`, `\u00XX` for
/// other control characters).
pub fn write_json_str_contents(buf: &mut impl BufMut, text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
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
}

/// Appends `n` in decimal.
pub fn put_decimal(buf: &mut impl BufMut, mut n: u64) {
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

    /// The body as it was built before it was written directly: the
    /// direct writer must give the same bytes.
    fn completion_via_value(plan: &Plan, model: &str, created: u64) -> Vec<u8> {
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
        serde_json::to_vec(&body).unwrap()
    }

    fn sample_plan(tool: bool, max_tokens: Option<u32>) -> Plan {
        use crate::config::{Behaviour, ToolCall};
        use crate::distribution::Distribution;
        let behaviour = Behaviour {
            output_tokens: Distribution::Constant(40.0),
            cache_read_share: 0.5,
            reasoning_tokens: 2,
            ..Behaviour::default()
        };
        let call = ToolCall {
            name: "get_\u{8}weather \"now\"".into(),
            arguments: "{\"city\":\"Par\\nis \\\"東京\\\"\"}".into(),
        };
        let ask = Ask {
            model: "m".into(),
            prompt_tokens: 77,
            max_tokens,
            offers_tools: tool,
            ..Ask::default()
        };
        crate::plan::plan(99, 1, &behaviour, tool.then_some(&call), &ask)
    }

    #[test]
    fn whole_completion_bytes_match_the_value_form() {
        for (tool, max_tokens) in [(false, None), (false, Some(5)), (true, None), (true, Some(3))] {
            let plan = sample_plan(tool, max_tokens);
            for model in ["gpt-4o-mini", "we\u{c}ird \"model\"\\\n\u{1}\u{7f} 🦀"] {
                let direct = completion(&plan, model, 1_700_000_123);
                let reference = completion_via_value(&plan, model, 1_700_000_123);
                assert_eq!(String::from_utf8_lossy(&direct), String::from_utf8_lossy(&reference));
            }
        }
    }

    #[test]
    fn usage_bytes_match_the_value_form() {
        let usage = Usage {
            prompt_tokens: 120,
            cache_read_tokens: 60,
            cache_write_tokens: 3,
            completion_tokens: 17,
            reasoning_tokens: 4,
        };
        let mut buf = Vec::new();
        write_usage(&mut buf, &usage);
        assert_eq!(buf, usage_json(&usage).to_string().into_bytes());
        // The total does not overflow.
        let huge = Usage {
            prompt_tokens: u32::MAX,
            completion_tokens: u32::MAX,
            ..usage
        };
        let mut buf = Vec::new();
        write_usage(&mut buf, &huge);
        let v: Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["total_tokens"], 2 * u64::from(u32::MAX));
    }

    #[test]
    fn decimals() {
        for n in [0, 7, 10, 99, 1_700_000_000, u64::from(u32::MAX), u64::MAX] {
            let mut buf = Vec::new();
            put_decimal(&mut buf, n);
            assert_eq!(buf, n.to_string().into_bytes());
        }
    }

    proptest! {
        #[test]
        fn escaping_round_trips(text in "\\PC*|[\"\\\\\n\r\t\u{0}-\u{1f}\u{7f}]*") {
            let mut buf = Vec::new();
            write_json_str(&mut buf, &text);
            let back: String = serde_json::from_slice(&buf).unwrap();
            prop_assert_eq!(&back, &text);
            // And byte for byte what serde_json writes.
            prop_assert_eq!(buf, serde_json::to_vec(&text).unwrap());
        }
    }
}
