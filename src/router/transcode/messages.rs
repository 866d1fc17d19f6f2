//! The Messages API ingress, the other direction of the chat translation:
//! a client's Anthropic Messages request for either upstream dialect, and
//! each dialect's whole answer as an Anthropic message.
//!
//! An Anthropic-dialect upstream gets the body as it came, with only the
//! upstream model id, `stream` and the model's system prefix (first, before
//! the caller's system prompt, string or blocks) changed. An OpenAI-dialect
//! upstream gets a chat request: `system` as the first system message,
//! `tool_use` blocks as `tool_calls`, `tool_result` blocks as `tool`
//! messages, images as `image_url` parts, `stop_sequences` as `stop`; the
//! prefix and usage options are then applied by
//! [`openai_request_for_upstream`], as for a chat request.
//!
//! Answers become a [`Completion`] whose body is an Anthropic message
//! without `usage`: the router writes the usage it charged for
//! ([`with_anthropic_usage`]), as it does for chat.

use bytes::BufMut;
use serde_json::{Map, Value, json};

use super::request::{SYSTEM_PREFIX_SEPARATOR, openai_request_for_upstream};
use super::response::{anthropic_usage, openai_response_passthrough, upstream_error_value, with_usage_written};
use super::{Completion, FinishReason, TranscodeError, UpstreamUsage, UsageReport, put_decimal};

fn invalid(path: impl Into<String>, problem: impl Into<String>) -> TranscodeError {
    TranscodeError::InvalidRequest {
        path: path.into(),
        problem: problem.into(),
    }
}

fn bad_response(detail: &str) -> TranscodeError {
    TranscodeError::MalformedResponse {
        detail: detail.to_string(),
    }
}

/// A Messages request for an Anthropic-dialect upstream: the body as it
/// came with the upstream model, `stream`, and `system_prefix` first in
/// `system` (joined to a string by [`SYSTEM_PREFIX_SEPARATOR`], or as a text
/// block before the caller's blocks, which keeps their `cache_control`).
pub fn anthropic_request_for_upstream(
    body: &Map<String, Value>,
    upstream_model: &str,
    system_prefix: Option<&str>,
    stream: bool,
) -> Value {
    let mut body = body.clone();
    body.insert("model".into(), upstream_model.into());
    body.insert("stream".into(), stream.into());
    if let Some(prefix) = system_prefix {
        let system = match body.remove("system") {
            None | Some(Value::Null) => Value::String(prefix.to_string()),
            Some(Value::String(text)) => Value::String(format!("{prefix}{SYSTEM_PREFIX_SEPARATOR}{text}")),
            Some(Value::Array(mut blocks)) => {
                blocks.insert(
                    0,
                    json!({"type": "text", "text": format!("{prefix}{SYSTEM_PREFIX_SEPARATOR}")}),
                );
                Value::Array(blocks)
            }
            // Validation refuses other shapes: the prefix alone.
            Some(_) => Value::String(prefix.to_string()),
        };
        body.insert("system".into(), system);
    }
    Value::Object(body)
}

/// A Messages request as an OpenAI chat request for an OpenAI-dialect
/// upstream (see the module docs), with the prefix and `stream` applied.
pub fn openai_request_from_anthropic(
    body: &Map<String, Value>,
    upstream_model: &str,
    system_prefix: Option<&str>,
    stream: bool,
) -> Result<Value, TranscodeError> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("messages", "must be an array of messages"))?;
    let mut out: Vec<Value> = Vec::with_capacity(messages.len() + 1);
    match body.get("system") {
        None | Some(Value::Null) => {}
        Some(system) => out.push(json!({"role": "system", "content": text_of(system, "system")?})),
    }
    for (i, message) in messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        let content = message.get("content").unwrap_or(&Value::Null);
        match message.get("role").and_then(Value::as_str) {
            Some("user") => user_messages(content, &path, &mut out)?,
            Some("assistant") => out.push(assistant_message(content, &path)?),
            _ => return Err(invalid(format!("{path}.role"), "must be user or assistant")),
        }
    }
    let mut request = Map::new();
    request.insert("model".into(), upstream_model.into());
    request.insert("messages".into(), Value::Array(out));
    if let Some(max) = body.get("max_tokens").filter(|v| !v.is_null()) {
        request.insert("max_tokens".into(), max.clone());
    }
    for field in ["temperature", "top_p"] {
        if let Some(value) = body.get(field).filter(|v| !v.is_null()) {
            request.insert(field.into(), value.clone());
        }
    }
    if let Some(stops) = body.get("stop_sequences").filter(|v| !v.is_null()) {
        request.insert("stop".into(), stops.clone());
    }
    if let Some(tools) = body.get("tools").filter(|v| !v.is_null()) {
        request.insert("tools".into(), openai_tools(tools)?);
    }
    if let Some(choice) = body.get("tool_choice").filter(|v| !v.is_null()) {
        let (choice, parallel) = openai_tool_choice(choice)?;
        if let Some(choice) = choice {
            request.insert("tool_choice".into(), choice);
        }
        if !parallel {
            request.insert("parallel_tool_calls".into(), false.into());
        }
    }
    if let Some(user) = body
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        request.insert("user".into(), user.into());
    }
    Ok(openai_request_for_upstream(
        &Value::Object(request),
        upstream_model,
        system_prefix,
        stream,
    ))
}

/// The text of a string or of text blocks, joined as they are.
fn text_of(content: &Value, path: &str) -> Result<String, TranscodeError> {
    match content {
        Value::Null => Ok(String::new()),
        Value::String(text) => Ok(text.clone()),
        Value::Array(blocks) => {
            let mut text = String::new();
            for (j, block) in blocks.iter().enumerate() {
                match block.get("text").and_then(Value::as_str) {
                    Some(piece) if block.get("type").and_then(Value::as_str) == Some("text") => text.push_str(piece),
                    _ => return Err(invalid(format!("{path}[{j}]"), "must be a text block")),
                }
            }
            Ok(text)
        }
        _ => Err(invalid(path, "must be a string or an array of text blocks")),
    }
}

/// A user turn: its `tool_result` blocks as `tool` messages first (they
/// answer the previous assistant turn), then its text and images as one
/// user message.
fn user_messages(content: &Value, path: &str, out: &mut Vec<Value>) -> Result<(), TranscodeError> {
    let Value::Array(blocks) = content else {
        out.push(json!({"role": "user", "content": text_of(content, &format!("{path}.content"))?}));
        return Ok(());
    };
    let mut parts = Vec::with_capacity(blocks.len());
    for (j, block) in blocks.iter().enumerate() {
        let block_path = || format!("{path}.content[{j}]");
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = block
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(block_path(), "needs `text`"))?;
                parts.push(json!({"type": "text", "text": text}));
            }
            Some("image") => {
                let url = image_url(block.get("source").unwrap_or(&Value::Null))
                    .ok_or_else(|| invalid(format!("{}.source", block_path()), "must be a base64 or url source"))?;
                parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
            }
            Some("tool_result") => {
                let id = block
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(block_path(), "needs `tool_use_id`"))?;
                let content = tool_result_text(block.get("content").unwrap_or(&Value::Null), &block_path())?;
                out.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
            }
            _ => return Err(invalid(block_path(), "must be a text, image or tool_result block")),
        }
    }
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

/// A `tool_result`'s content as text: a string, or its text blocks joined
/// (images in a tool result have no place in an OpenAI `tool` message).
fn tool_result_text(content: &Value, path: &str) -> Result<String, TranscodeError> {
    match content {
        Value::Array(blocks) => Ok(blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect()),
        other => text_of(other, &format!("{path}.content")),
    }
}

/// An image source as an OpenAI image URL: base64 as a `data:` URL.
fn image_url(source: &Value) -> Option<String> {
    match source.get("type").and_then(Value::as_str)? {
        "base64" => {
            let media_type = source.get("media_type").and_then(Value::as_str)?;
            let data = source.get("data").and_then(Value::as_str)?;
            Some(format!("data:{media_type};base64,{data}"))
        }
        "url" => source.get("url").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// An assistant turn: text blocks joined into `content`, `tool_use` blocks
/// as `tool_calls` (arguments the JSON text of `input`); thinking dropped.
fn assistant_message(content: &Value, path: &str) -> Result<Value, TranscodeError> {
    let Value::Array(blocks) = content else {
        return Ok(json!({"role": "assistant", "content": text_of(content, &format!("{path}.content"))?}));
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") => {
                let field = |name: &str| {
                    block
                        .get(name)
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid(format!("{path}.content[{j}].{name}"), "must be a string"))
                };
                let arguments = block.get("input").map_or_else(|| "{}".to_string(), Value::to_string);
                calls.push(json!({
                    "id": field("id")?,
                    "type": "function",
                    "function": {"name": field("name")?, "arguments": arguments}
                }));
            }
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": text});
    if !calls.is_empty() {
        if text.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = Value::Array(calls);
    }
    Ok(message)
}

fn openai_tools(tools: &Value) -> Result<Value, TranscodeError> {
    let tools = tools.as_array().ok_or_else(|| invalid("tools", "must be an array"))?;
    let mut out = Vec::with_capacity(tools.len());
    for (k, tool) in tools.iter().enumerate() {
        if let Some(kind) = tool.get("type").and_then(Value::as_str)
            && kind != "custom"
        {
            return Err(invalid(
                format!("tools[{k}].type"),
                format!("`{kind}` is a server tool an OpenAI-dialect upstream cannot run"),
            ));
        }
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("tools[{k}].name"), "must be a string"))?;
        let mut function = Map::new();
        function.insert("name".into(), name.into());
        if let Some(description) = tool.get("description").and_then(Value::as_str) {
            function.insert("description".into(), description.into());
        }
        let schema = tool
            .get("input_schema")
            .filter(|s| s.is_object())
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        function.insert("parameters".into(), schema);
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(Value::Array(out))
}

/// The OpenAI `tool_choice`, and whether parallel tool calls stay allowed.
fn openai_tool_choice(choice: &Value) -> Result<(Option<Value>, bool), TranscodeError> {
    let parallel = choice.get("disable_parallel_tool_use") != Some(&Value::Bool(true));
    let mapped = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice.name", "must be a string"))?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => return Err(invalid("tool_choice.type", "must be auto, any, none or tool")),
    };
    Ok((Some(mapped), parallel))
}

/// Anthropic's `stop_reason` for a finish reason.
pub fn stop_reason(finish: &FinishReason) -> &'static str {
    match finish {
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::ContentFilter => "refusal",
        FinishReason::Stop | FinishReason::Error | FinishReason::Other(_) => "end_turn",
    }
}

/// The stop sequence an OpenAI-compatible upstream says matched: vLLM and
/// others put it in the choice's `stop_reason`; OpenAI itself never says,
/// and then the stop is an `end_turn`. Only one of the caller's sequences
/// counts.
pub fn matched_stop_sequence<'a>(stop_reason: Option<&str>, sequences: Option<&'a Value>) -> Option<&'a str> {
    let said = stop_reason?;
    sequences?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find(|s| *s == said)
}

/// An Anthropic message from an Anthropic-dialect upstream, with the
/// router's id and model, its `usage` taken out (and read).
pub fn anthropic_response_passthrough(
    body: Value,
    generation_id: &str,
    model: &str,
) -> Result<Completion, TranscodeError> {
    let Value::Object(mut obj) = body else {
        return Err(bad_response("not a JSON object"));
    };
    if obj.get("type").and_then(Value::as_str) == Some("error") {
        return Err(upstream_error_value(obj.get("error")));
    }
    if !obj.get("content").is_some_and(Value::is_array) {
        return Err(bad_response("no `content` array"));
    }
    obj.insert("id".into(), generation_id.into());
    obj.insert("model".into(), model.into());
    let usage = obj
        .remove("usage")
        .filter(Value::is_object)
        .map(|u| anthropic_usage(&u));
    let finish_reason = obj
        .get("stop_reason")
        .and_then(Value::as_str)
        .map_or(FinishReason::Stop, FinishReason::from_anthropic);
    Ok(Completion {
        body: Value::Object(obj),
        usage,
        finish_reason,
    })
}

/// An OpenAI `chat.completion` as an Anthropic message: the text as a text
/// block, each tool call as a `tool_use` block whose `input` is the parsed
/// arguments (`{}` when they are not a JSON object), the finish reason as
/// `stop_reason` (see [`matched_stop_sequence`]).
pub fn anthropic_response_from_openai(
    body: Value,
    generation_id: &str,
    model: &str,
    stop_sequences: Option<&Value>,
) -> Result<Completion, TranscodeError> {
    let completion = openai_response_passthrough(body, generation_id, model, 0)?;
    let choice = completion
        .body
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| bad_response("no choice"))?;
    let message = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    if let Some(text) = message.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = |pointer: &str| call.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
        let input = serde_json::from_str::<Value>(field("/function/arguments"))
            .ok()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        content.push(json!({"type": "tool_use", "id": field("/id"), "name": field("/function/name"), "input": input}));
    }
    let matched = match completion.finish_reason {
        FinishReason::Stop => matched_stop_sequence(choice.get("stop_reason").and_then(Value::as_str), stop_sequences),
        _ => None,
    };
    let reason = if matched.is_some() {
        "stop_sequence"
    } else {
        stop_reason(&completion.finish_reason)
    };
    let body = json!({
        "id": generation_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": matched,
    });
    Ok(Completion { body, ..completion })
}

/// Appends Anthropic's `usage` object for `usage`: `input_tokens` without
/// the cache reads and writes, which have their own fields.
pub fn write_anthropic_usage(buf: &mut impl BufMut, usage: &UpstreamUsage) {
    write_anthropic_counts(buf, usage);
    buf.put_u8(b'}');
}

/// Appends Anthropic's `usage` object for what the router charged: the
/// counts as [`write_anthropic_usage`] writes them, then the charge as
/// `cost` (an exact JSON number, as in a chat completion's usage). Clients
/// of the Messages API read the fields they know and keep the others, so
/// the charge rides where a chat client finds it.
pub fn write_anthropic_usage_charged(buf: &mut impl BufMut, report: &UsageReport) {
    write_anthropic_counts(buf, &report.usage);
    buf.put_slice(b",\"cost\":");
    buf.put_slice(report.cost.to_usd_string().as_bytes());
    buf.put_u8(b'}');
}

/// `usage`'s Anthropic fields, the object left open.
fn write_anthropic_counts(buf: &mut impl BufMut, usage: &UpstreamUsage) {
    let billed = usage.billed();
    buf.put_slice(b"{\"input_tokens\":");
    put_decimal(buf, billed.uncached_prompt);
    buf.put_slice(b",\"cache_creation_input_tokens\":");
    put_decimal(buf, billed.cache_write);
    buf.put_slice(b",\"cache_read_input_tokens\":");
    put_decimal(buf, billed.cache_read);
    buf.put_slice(b",\"output_tokens\":");
    put_decimal(buf, billed.completion);
}

/// The bytes of a whole message with Anthropic's `usage` for what the
/// router charged added (any `usage` already in `body` is left out).
pub fn with_anthropic_usage(body: &Value, report: &UsageReport) -> Vec<u8> {
    with_usage_written(body, |out| write_anthropic_usage_charged(out, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::transcode::anthropic_request_from_openai;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn an_anthropic_upstream_gets_the_body_with_the_prefix_first() {
        let body = obj(json!({
            "model": "anthropic/claude-x", "max_tokens": 5, "top_k": 3,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}]
        }));
        let out = anthropic_request_for_upstream(&body, "claude-x-1", Some("P."), true);
        assert_eq!(out["model"], "claude-x-1");
        assert_eq!(out["stream"], true);
        assert_eq!(out["system"], "P.\n\nBe brief.");
        assert_eq!(out["top_k"], 3);
        assert_eq!(out["messages"], body["messages"]);
        let mut blocks = body.clone();
        blocks.insert(
            "system".into(),
            json!([{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]),
        );
        let out = anthropic_request_for_upstream(&blocks, "up", Some("P."), false);
        assert_eq!(
            out["system"],
            json!([{"type": "text", "text": "P.\n\n"}, {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}])
        );
        blocks.remove("system");
        assert_eq!(
            anthropic_request_for_upstream(&blocks, "up", Some("P."), false)["system"],
            "P."
        );
        assert!(
            anthropic_request_for_upstream(&blocks, "up", None, false)
                .get("system")
                .is_none()
        );
    }

    #[test]
    fn an_openai_upstream_gets_a_chat_request() {
        let body = obj(json!({
            "model": "m", "max_tokens": 99, "temperature": 0.5, "stop_sequences": ["END"],
            "metadata": {"user_id": "u1"},
            "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": " Use tools."}],
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]},
                    {"type": "text", "text": "And this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
                ]}
            ],
            "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true}
        }));
        let out = openai_request_from_anthropic(&body, "gpt-x", Some("P."), true).unwrap();
        assert_eq!(
            out,
            json!({
                "model": "gpt-x", "stream": true, "stream_options": {"include_usage": true},
                "max_tokens": 99, "temperature": 0.5, "stop": ["END"], "user": "u1",
                "tool_choice": "required", "parallel_tool_calls": false,
                "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
                "messages": [
                    {"role": "system", "content": "P.\n\nBe brief. Use tools."},
                    {"role": "user", "content": "Weather in Paris?"},
                    {"role": "assistant", "content": "Checking.", "tool_calls": [
                        {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
                    {"role": "user", "content": [
                        {"type": "text", "text": "And this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                        {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
                    ]}
                ]
            })
        );
        let choice =
            |c: Value| openai_request_from_anthropic(&obj(json!({"messages": [], "tool_choice": c})), "u", None, false);
        assert_eq!(choice(json!({"type": "auto"})).unwrap()["tool_choice"], "auto");
        assert_eq!(choice(json!({"type": "none"})).unwrap()["tool_choice"], "none");
        assert_eq!(
            choice(json!({"type": "tool", "name": "f"})).unwrap()["tool_choice"],
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert!(choice(json!({"type": "sometimes"})).is_err());
        let server_tool =
            obj(json!({"messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}));
        assert!(matches!(
            openai_request_from_anthropic(&server_tool, "u", None, false),
            Err(TranscodeError::InvalidRequest { path, .. }) if path == "tools[0].type"
        ));
    }

    /// Chat → Anthropic → chat gives back the conversation the chat request had.
    #[test]
    fn the_two_request_translations_are_inverse() {
        let chat = json!({
            "model": "m", "max_tokens": 7, "stop": ["END"],
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}
                ]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": "required"
        });
        let anthropic = anthropic_request_from_openai(&chat, "m", None, false).unwrap();
        let back = openai_request_from_anthropic(anthropic.as_object().unwrap(), "m", None, false).unwrap();
        for field in ["messages", "tools", "tool_choice", "stop", "max_tokens"] {
            assert_eq!(back[field], chat[field], "{field}");
        }
    }

    #[test]
    fn answers_of_both_dialects_become_messages() {
        let upstream = json!({
            "id": "msg_up", "type": "message", "role": "assistant", "model": "claude-up",
            "content": [{"type": "text", "text": "hi"}], "stop_reason": "max_tokens", "stop_sequence": null,
            "usage": {"input_tokens": 40, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 0, "output_tokens": 10}
        });
        let c = anthropic_response_passthrough(upstream, "gen-1", "anthropic/x").unwrap();
        assert_eq!(
            (c.body["id"].as_str(), c.body["model"].as_str()),
            (Some("gen-1"), Some("anthropic/x"))
        );
        assert!(c.body.get("usage").is_none());
        assert_eq!(c.usage, Some(UpstreamUsage::from_openai(100, 60, 10, 0)));
        assert_eq!(c.finish_reason, FinishReason::Length);
        let report = UsageReport {
            usage: c.usage.unwrap(),
            cost: crate::router::pricing::Picodollars(288_000_000),
            upstream_cost: crate::router::pricing::Picodollars(288_000_000),
            is_byok: false,
        };
        let bytes = with_anthropic_usage(&c.body, &report);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("\"cost\":0.000288}"), "{text}");
        let back: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            back["usage"],
            json!({"input_tokens": 40, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 60, "output_tokens": 10, "cost": 0.000288})
        );
        assert_eq!(back["content"], json!([{"type": "text", "text": "hi"}]));

        let openai = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
            ]}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 10, "prompt_tokens_details": {"cached_tokens": 60}}
        });
        let c = anthropic_response_from_openai(openai, "gen-2", "openai/x", None).unwrap();
        assert_eq!(
            c.body,
            json!({
                "id": "gen-2", "type": "message", "role": "assistant", "model": "openai/x",
                "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}],
                "stop_reason": "tool_use", "stop_sequence": null
            })
        );
        assert_eq!(c.usage, Some(UpstreamUsage::from_anthropic(40, 60, 0, 10)));
        // A stop the upstream names, among the caller's sequences.
        let stop = |reason: Value| json!({"choices": [{"index": 0, "finish_reason": "stop", "stop_reason": reason, "message": {"role": "assistant", "content": "a"}}]});
        let sequences = json!(["END", "STOP"]);
        let c = anthropic_response_from_openai(stop(json!("STOP")), "g", "m", Some(&sequences)).unwrap();
        assert_eq!(
            (c.body["stop_reason"].as_str(), c.body["stop_sequence"].as_str()),
            (Some("stop_sequence"), Some("STOP"))
        );
        let c = anthropic_response_from_openai(stop(Value::Null), "g", "m", Some(&sequences)).unwrap();
        assert_eq!(
            (c.body["stop_reason"].as_str(), c.body["stop_sequence"].as_str()),
            (Some("end_turn"), None)
        );
        let error = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
        assert!(matches!(
            anthropic_response_passthrough(error, "g", "m"),
            Err(TranscodeError::Upstream { .. })
        ));
        assert!(anthropic_response_passthrough(json!({}), "g", "m").is_err());
        assert!(anthropic_response_from_openai(json!({"choices": []}), "g", "m", None).is_err());
    }
}
