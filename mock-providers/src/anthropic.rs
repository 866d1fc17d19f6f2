//! The Anthropic dialect: `POST /v1/messages` requests in, messages, the
//! Messages streaming events and error bodies out.
//!
//! Usage follows Anthropic's convention: `input_tokens` excludes
//! `cache_read_input_tokens` and `cache_creation_input_tokens`.

use bytes::{BufMut, BytesMut};
use serde_json::{Value, json};

use crate::journal::Usage;
use crate::openai::{put_decimal, write_json_pieces, write_json_str, write_json_str_contents};
use crate::plan::{Ask, Finish, Plan};
use crate::tokens::{content_text, find_nonce, for_each_text, prompt_tokens};

/// Reads a Messages request; the error says what is wrong (in Anthropic's
/// `field: problem` style).
pub fn parse(body: &Value) -> Result<Ask, String> {
    let obj = body.as_object().ok_or("the request body must be a JSON object")?;
    let model = match obj.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(_) => return Err("model: must be a non-empty string".into()),
        None => return Err("model: Field required".into()),
    };
    let max_tokens = match obj.get("max_tokens") {
        None => return Err("max_tokens: Field required".into()),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n > 0)
            .ok_or("max_tokens: must be a positive integer")?,
    };
    let messages = match obj.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return Err("messages: at least one message is required".into()),
        Some(_) => return Err("messages: must be an array".into()),
        None => return Err("messages: Field required".into()),
    };
    for (i, message) in messages.iter().enumerate() {
        match message.get("role").and_then(Value::as_str) {
            Some("user" | "assistant") => {}
            Some(other) => {
                return Err(format!(
                    "messages.{i}.role: must be 'user' or 'assistant', got '{other}'"
                ));
            }
            None => return Err(format!("messages.{i}.role: Field required")),
        }
    }
    let system = match obj.get("system") {
        None | Some(Value::Null) => None,
        Some(v @ (Value::String(_) | Value::Array(_))) => Some(content_text(Some(v))),
        Some(_) => return Err("system: must be a string or a list of text blocks".into()),
    };
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("stream: must be a boolean".into()),
    };
    let mut nonce = system.as_deref().and_then(find_nonce).map(str::to_string);
    for message in messages {
        for_each_text(message.get("content"), &mut |text| {
            if nonce.is_none() {
                nonce = find_nonce(text).map(str::to_string);
            }
        });
    }
    let tools = obj.get("tools").filter(|t| t.as_array().is_some_and(|a| !a.is_empty()));
    Ok(Ask {
        model,
        stream,
        include_usage: true,
        max_tokens: Some(max_tokens),
        prompt_tokens: prompt_tokens(system.as_deref(), messages, tools),
        system,
        nonce,
        offers_tools: tools.is_some(),
    })
}

fn stop_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "end_turn",
        Finish::Length => "max_tokens",
        Finish::ToolCalls => "tool_use",
    }
}

/// Usage as Anthropic reports it: `input_tokens` are the uncached ones.
pub fn usage_json(usage: &Usage, output_tokens: u32) -> Value {
    json!({
        "input_tokens": input_tokens(usage),
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "output_tokens": output_tokens
    })
}

/// The uncached prompt tokens.
fn input_tokens(usage: &Usage) -> u32 {
    usage.prompt_tokens - usage.cache_read_tokens - usage.cache_write_tokens
}

fn tool_input(plan: &Plan) -> Value {
    serde_json::from_str(&plan.pieces.concat()).unwrap_or_else(|_| json!({}))
}

/// A whole non-streaming message. A text answer is written directly, in the
/// sorted key order of a `serde_json::Value` (the bytes `json!` would give); a
/// tool use goes through a `Value`, as its `input` is the parsed arguments.
pub fn message(plan: &Plan, model: &str) -> Vec<u8> {
    if plan.tool.is_some() {
        return message_via_value(plan, model);
    }
    let text_len: usize = plan.pieces.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(320 + model.len() + text_len + text_len / 4);
    out.put_slice(b"{\"content\":[{\"text\":");
    write_json_pieces(&mut out, &plan.pieces);
    out.put_slice(b",\"type\":\"text\"}],\"id\":\"msg_");
    write_json_str_contents(&mut out, &plan.id);
    out.put_slice(b"\",\"model\":");
    write_json_str(&mut out, model);
    out.put_slice(b",\"role\":\"assistant\",\"stop_reason\":\"");
    out.put_slice(stop_reason(plan.finish).as_bytes());
    out.put_slice(b"\",\"stop_sequence\":null,\"type\":\"message\",\"usage\":");
    let usage = &plan.usage;
    out.put_slice(b"{\"cache_creation_input_tokens\":");
    put_decimal(&mut out, u64::from(usage.cache_write_tokens));
    out.put_slice(b",\"cache_read_input_tokens\":");
    put_decimal(&mut out, u64::from(usage.cache_read_tokens));
    out.put_slice(b",\"input_tokens\":");
    put_decimal(&mut out, u64::from(input_tokens(usage)));
    out.put_slice(b",\"output_tokens\":");
    put_decimal(&mut out, u64::from(usage.completion_tokens));
    out.put_slice(b"}}");
    out
}

fn message_via_value(plan: &Plan, model: &str) -> Vec<u8> {
    let content = match &plan.tool {
        Some(tool) => json!([{"type": "tool_use", "id": tool.id, "name": tool.name, "input": tool_input(plan)}]),
        None => json!([{"type": "text", "text": plan.text()}]),
    };
    let body = json!({
        "id": format!("msg_{}", plan.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(plan.finish),
        "stop_sequence": null,
        "usage": usage_json(&plan.usage, plan.usage.completion_tokens)
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The error type Anthropic uses for a status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// An error body: `{"type": "error", "error": {"type", "message"}}`.
pub fn error(status: u16, message: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"type": "error", "error": {"type": error_type(status), "message": message}}))
        .unwrap_or_default()
}

/// Writes the SSE events of one streamed message.
#[derive(Debug)]
pub struct EventWriter {
    message_id: String,
    model: String,
}

impl EventWriter {
    pub fn new(plan: &Plan, model: &str) -> Self {
        EventWriter {
            message_id: format!("msg_{}", plan.id),
            model: model.to_string(),
        }
    }

    fn event(buf: &mut BytesMut, name: &str, data: &Value) {
        buf.put_slice(b"event: ");
        buf.put_slice(name.as_bytes());
        buf.put_slice(b"\ndata: ");
        buf.put_slice(data.to_string().as_bytes());
        buf.put_slice(b"\n\n");
    }

    /// `message_start`, `content_block_start` and a `ping`.
    pub fn preamble(&self, buf: &mut BytesMut, plan: &Plan) {
        let start = json!({
            "type": "message_start",
            "message": {
                "id": self.message_id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": usage_json(&plan.usage, 1)
            }
        });
        Self::event(buf, "message_start", &start);
        let block = match &plan.tool {
            Some(tool) => json!({"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}}),
            None => json!({"type": "text", "text": ""}),
        };
        Self::event(
            buf,
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": block}),
        );
        buf.put_slice(b"event: ping\ndata: {\"type\": \"ping\"}\n\n");
    }

    /// The `content_block_delta` of piece `index`.
    pub fn piece(&self, buf: &mut BytesMut, plan: &Plan, index: usize) {
        let text = plan.pieces.get(index).map_or("", |p| p.as_ref());
        buf.put_slice(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":");
        if plan.tool.is_some() {
            buf.put_slice(b"{\"type\":\"input_json_delta\",\"partial_json\":");
        } else {
            buf.put_slice(b"{\"type\":\"text_delta\",\"text\":");
        }
        write_json_str(buf, text);
        buf.put_slice(b"}}\n\n");
    }

    /// `content_block_stop`, `message_delta` with the cumulative usage, `message_stop`.
    pub fn tail(&self, buf: &mut BytesMut, plan: &Plan) {
        Self::event(
            buf,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        );
        let delta = json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(plan.finish), "stop_sequence": null},
            "usage": usage_json(&plan.usage, plan.usage.completion_tokens)
        });
        Self::event(buf, "message_delta", &delta);
        buf.put_slice(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    }

    /// An `event: error` in the stream (529 is `overloaded_error`).
    pub fn error(&self, buf: &mut BytesMut, status: u16, message: &str) {
        Self::event(
            buf,
            "error",
            &json!({"type": "error", "error": {"type": error_type(status), "message": message}}),
        );
    }

    /// A delta event whose JSON is cut off.
    pub fn malformed(&self, buf: &mut BytesMut) {
        buf.put_slice(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_del\n\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_system_blocks_and_requires_max_tokens() {
        let ask = parse(&json!({
            "model": "claude-sonnet-4",
            "max_tokens": 64,
            "system": [{"type": "text", "text": "prefix. "}, {"type": "text", "text": "caller [gauntlet:n-1]"}],
            "messages": [{"role": "user", "content": "hello"}]
        }))
        .unwrap();
        assert_eq!(ask.system.as_deref(), Some("prefix. caller [gauntlet:n-1]"));
        assert_eq!(ask.nonce.as_deref(), Some("n-1"));
        assert!(ask.include_usage);
        let missing = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        assert_eq!(parse(&missing).unwrap_err(), "max_tokens: Field required");
        let bad_role = json!({"model": "m", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]});
        assert!(parse(&bad_role).unwrap_err().contains("messages.0.role"));
    }

    #[test]
    fn whole_text_message_bytes_match_the_value_form() {
        use crate::config::Behaviour;
        use crate::distribution::Distribution;
        let behaviour = Behaviour {
            output_tokens: Distribution::Constant(40.0),
            cache_read_share: 0.5,
            cache_write_share: 0.25,
            ..Behaviour::default()
        };
        for max_tokens in [None, Some(5)] {
            let ask = Ask {
                model: "m".into(),
                prompt_tokens: 77,
                max_tokens,
                ..Ask::default()
            };
            let plan = crate::plan::plan(99, 1, &behaviour, None, &ask);
            for model in ["claude-sonnet-4", "we\u{c}ird \"model\"\\\n\u{1} 🦀"] {
                assert_eq!(
                    String::from_utf8_lossy(&message(&plan, model)),
                    String::from_utf8_lossy(&message_via_value(&plan, model))
                );
            }
        }
    }

    #[test]
    fn input_tokens_exclude_cache_tokens() {
        let usage = Usage {
            prompt_tokens: 100,
            cache_read_tokens: 60,
            cache_write_tokens: 10,
            completion_tokens: 5,
            reasoning_tokens: 0,
        };
        let v = usage_json(&usage, 5);
        assert_eq!(v["input_tokens"], 30);
        assert_eq!(v["cache_read_input_tokens"], 60);
        assert_eq!(v["cache_creation_input_tokens"], 10);
    }
}
