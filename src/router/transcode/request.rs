//! The request direction: the router's OpenAI chat request as an Anthropic
//! Messages request, or as an OpenAI request for an OpenAI-dialect upstream,
//! with the model's system prefix applied.

use serde_json::{Map, Value, json};

use super::TranscodeError;

/// `max_tokens` sent to Anthropic when the caller set none (Anthropic
/// requires one).
pub const ANTHROPIC_DEFAULT_MAX_TOKENS: u64 = 4096;

/// Between a model's system prefix and the caller's system text.
pub const SYSTEM_PREFIX_SEPARATOR: &str = "\n\n";

fn invalid(path: impl Into<String>, problem: impl Into<String>) -> TranscodeError {
    TranscodeError::InvalidRequest {
        path: path.into(),
        problem: problem.into(),
    }
}

/// An OpenAI chat request as an Anthropic Messages request.
///
/// System and developer messages become the top-level `system` (joined by
/// `\n`, after `system_prefix` and [`SYSTEM_PREFIX_SEPARATOR`]); assistant
/// `tool_calls` become `tool_use` blocks and consecutive `tool` messages one
/// user message of `tool_result` blocks; function `tools` and `tool_choice`
/// are mapped; `max_completion_tokens` or `max_tokens` (default
/// [`ANTHROPIC_DEFAULT_MAX_TOKENS`]), `temperature`, `top_p`, `stop` and
/// `user` carry over.
pub fn anthropic_request_from_openai(
    body: &Value,
    upstream_model: &str,
    system_prefix: Option<&str>,
    stream: bool,
) -> Result<Value, TranscodeError> {
    let obj = body
        .as_object()
        .ok_or_else(|| invalid("body", "must be a JSON object"))?;
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("messages", "must be an array of messages"))?;
    let mut system: Vec<String> = Vec::new();
    let mut out: Vec<Value> = Vec::with_capacity(messages.len());
    let mut in_tool_results = false;
    for (i, message) in messages.iter().enumerate() {
        let path = |field: &str| format!("messages[{i}].{field}");
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(path("role"), "must be a string"))?;
        let content = message.get("content").unwrap_or(&Value::Null);
        let was_tool_results = std::mem::replace(&mut in_tool_results, false);
        match role {
            "system" | "developer" => system.push(text_of(content, &path("content"))?),
            "user" => out.push(json!({"role": "user", "content": user_content(content, &path("content"))?})),
            "assistant" => out.push(assistant_message(message, content, &path)?),
            "tool" => {
                let id = message
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(path("tool_call_id"), "must be a string"))?;
                let block =
                    json!({"type": "tool_result", "tool_use_id": id, "content": text_of(content, &path("content"))?});
                match out
                    .last_mut()
                    .and_then(|m| m.get_mut("content"))
                    .and_then(Value::as_array_mut)
                {
                    Some(blocks) if was_tool_results => blocks.push(block),
                    _ => out.push(json!({"role": "user", "content": [block]})),
                }
                in_tool_results = true;
            }
            _ => {
                return Err(invalid(
                    path("role"),
                    "must be system, developer, user, assistant or tool",
                ));
            }
        }
    }
    let mut request = Map::new();
    request.insert("model".into(), upstream_model.into());
    request.insert("max_tokens".into(), max_tokens(obj)?.into());
    let caller_system = (!system.is_empty()).then(|| system.join("\n"));
    if let Some(system) = with_prefix(system_prefix, caller_system.as_deref()) {
        request.insert("system".into(), system.into());
    }
    request.insert("messages".into(), Value::Array(out));
    request.insert("stream".into(), stream.into());
    for field in ["temperature", "top_p"] {
        if let Some(value) = obj.get(field).filter(|v| !v.is_null()) {
            if !value.is_number() {
                return Err(invalid(field, "must be a number"));
            }
            request.insert(field.into(), value.clone());
        }
    }
    match obj.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(stop)) => {
            request.insert("stop_sequences".into(), json!([stop]));
        }
        Some(Value::Array(stops)) if stops.iter().all(Value::is_string) => {
            request.insert("stop_sequences".into(), Value::Array(stops.clone()));
        }
        Some(_) => return Err(invalid("stop", "must be a string or an array of strings")),
    }
    if let Some(tools) = obj.get("tools").filter(|t| !t.is_null()) {
        request.insert("tools".into(), anthropic_tools(tools)?);
    }
    if let Some(choice) = anthropic_tool_choice(obj)? {
        request.insert("tool_choice".into(), choice);
    }
    if let Some(user) = obj.get("user").and_then(Value::as_str) {
        request.insert("metadata".into(), json!({"user_id": user}));
    }
    Ok(Value::Object(request))
}

/// The prefix, then the caller's system text.
fn with_prefix(prefix: Option<&str>, caller: Option<&str>) -> Option<String> {
    match (prefix, caller) {
        (Some(prefix), Some(caller)) => Some(format!("{prefix}{SYSTEM_PREFIX_SEPARATOR}{caller}")),
        (Some(only), None) | (None, Some(only)) => Some(only.to_string()),
        (None, None) => None,
    }
}

fn max_tokens(obj: &Map<String, Value>) -> Result<u64, TranscodeError> {
    for field in ["max_completion_tokens", "max_tokens"] {
        match obj.get(field) {
            None | Some(Value::Null) => {}
            Some(value) => {
                return value
                    .as_u64()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| invalid(field, "must be a positive integer"));
            }
        }
    }
    Ok(ANTHROPIC_DEFAULT_MAX_TOKENS)
}

/// The text of a `content`: a string, or the `text` of its text parts.
fn text_of(content: &Value, path: &str) -> Result<String, TranscodeError> {
    match content {
        Value::Null => Ok(String::new()),
        Value::String(text) => Ok(text.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                match part.get("text").and_then(Value::as_str) {
                    Some(piece) if part.get("type").and_then(Value::as_str) == Some("text") => text.push_str(piece),
                    _ => return Err(invalid(format!("{path}[{j}]"), "must be a text part")),
                }
            }
            Ok(text)
        }
        _ => Err(invalid(path, "must be a string or an array of content parts")),
    }
}

/// A user `content`: a string stays one; parts become text and image blocks.
fn user_content(content: &Value, path: &str) -> Result<Value, TranscodeError> {
    let Value::Array(parts) = content else {
        return Ok(Value::String(text_of(content, path)?));
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let part_path = || format!("{path}[{j}]");
        let block = match part.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = part
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(part_path(), "needs `text`"))?;
                let mut block = json!({"type": "text", "text": text});
                if let Some(cache) = part.get("cache_control") {
                    block["cache_control"] = cache.clone();
                }
                block
            }
            Some("image_url") => {
                let url = part
                    .pointer("/image_url/url")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(part_path(), "needs `image_url.url`"))?;
                json!({"type": "image", "source": image_source(url)})
            }
            _ => return Err(invalid(part_path(), "must be a text or image_url part")),
        };
        blocks.push(block);
    }
    Ok(Value::Array(blocks))
}

/// A `data:` URL as a base64 source, any other URL as a URL source.
fn image_source(url: &str) -> Value {
    let inline = url.strip_prefix("data:").and_then(|rest| rest.split_once(";base64,"));
    match inline {
        Some((media_type, data)) => json!({"type": "base64", "media_type": media_type, "data": data}),
        None => json!({"type": "url", "url": url}),
    }
}

fn assistant_message(message: &Value, content: &Value, path: &dyn Fn(&str) -> String) -> Result<Value, TranscodeError> {
    let calls = match message.get("tool_calls") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(calls)) => calls.as_slice(),
        Some(_) => return Err(invalid(path("tool_calls"), "must be an array")),
    };
    let text = text_of(content, &path("content"))?;
    if calls.is_empty() {
        return Ok(json!({"role": "assistant", "content": text}));
    }
    let mut blocks = Vec::with_capacity(calls.len() + 1);
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    for (k, call) in calls.iter().enumerate() {
        let call_path = |field: &str| path(&format!("tool_calls[{k}].{field}"));
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(call_path("id"), "must be a string"))?;
        let name = call
            .pointer("/function/name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(call_path("function.name"), "must be a string"))?;
        let arguments = call
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let input = if arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str::<Value>(arguments)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| invalid(call_path("function.arguments"), "must be a JSON object in a string"))?
        };
        blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok(json!({"role": "assistant", "content": blocks}))
}

fn anthropic_tools(tools: &Value) -> Result<Value, TranscodeError> {
    let tools = tools.as_array().ok_or_else(|| invalid("tools", "must be an array"))?;
    let mut out = Vec::with_capacity(tools.len());
    for (k, tool) in tools.iter().enumerate() {
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            return Err(invalid(format!("tools[{k}].type"), "must be \"function\""));
        }
        let function = tool.get("function").unwrap_or(&Value::Null);
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("tools[{k}].function.name"), "must be a string"))?;
        let mut converted = Map::new();
        converted.insert("name".into(), name.into());
        if let Some(description) = function.get("description").and_then(Value::as_str) {
            converted.insert("description".into(), description.into());
        }
        let schema = function
            .get("parameters")
            .filter(|p| p.is_object())
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        converted.insert("input_schema".into(), schema);
        out.push(Value::Object(converted));
    }
    Ok(Value::Array(out))
}

fn anthropic_tool_choice(obj: &Map<String, Value>) -> Result<Option<Value>, TranscodeError> {
    let mut choice = match obj.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(mode)) => match mode.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "none" => Some(json!({"type": "none"})),
            "required" => Some(json!({"type": "any"})),
            _ => return Err(invalid("tool_choice", "must be auto, none, required or a function")),
        },
        Some(named) => {
            let name = named
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice.function.name", "must be a string"))?;
            Some(json!({"type": "tool", "name": name}))
        }
    };
    if obj.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
        let choice = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if choice["type"] != "none" {
            choice["disable_parallel_tool_use"] = true.into();
        }
    }
    Ok(choice)
}

/// An OpenAI chat request for an OpenAI-dialect upstream: the upstream
/// model, `stream` set and, when streaming, `stream_options.include_usage`
/// forced on (the router always needs the usage); the system prefix
/// prepended to the first system or developer message (after it,
/// [`SYSTEM_PREFIX_SEPARATOR`]), or a system message inserted first. The body
/// was validated before: what is not an object is returned as it is.
pub fn openai_request_for_upstream(
    body: &Value,
    upstream_model: &str,
    system_prefix: Option<&str>,
    stream: bool,
) -> Value {
    let mut body = body.clone();
    let Some(obj) = body.as_object_mut() else {
        return body;
    };
    obj.insert("model".into(), upstream_model.into());
    obj.insert("stream".into(), stream.into());
    if stream {
        let options = obj.entry("stream_options").or_insert_with(|| json!({}));
        if !options.is_object() {
            *options = json!({});
        }
        options["include_usage"] = true.into();
    } else {
        obj.remove("stream_options");
    }
    if let Some(prefix) = system_prefix
        && let Some(messages) = obj.get_mut("messages").and_then(Value::as_array_mut)
    {
        prepend_system(messages, prefix);
    }
    body
}

fn prepend_system(messages: &mut Vec<Value>, prefix: &str) {
    let first_system = messages
        .iter()
        .position(|m| matches!(m.get("role").and_then(Value::as_str), Some("system" | "developer")));
    let Some(i) = first_system else {
        messages.insert(0, json!({"role": "system", "content": prefix}));
        return;
    };
    match messages[i].get_mut("content") {
        Some(Value::String(text)) => *text = format!("{prefix}{SYSTEM_PREFIX_SEPARATOR}{text}"),
        Some(Value::Array(parts)) => {
            parts.insert(
                0,
                json!({"type": "text", "text": format!("{prefix}{SYSTEM_PREFIX_SEPARATOR}")}),
            );
        }
        // No text to prefix (validation refuses other shapes): the prefix alone.
        _ => messages[i]["content"] = prefix.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_request_maps_messages_tools_and_system() {
        let body = json!({
            "model": "anthropic/claude-x",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
                {"role": "user", "content": "Weather in Paris? [gauntlet:r1]"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "And this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                ]}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                      {"type": "function", "function": {"name": "get_time"}}],
            "tool_choice": "required",
            "max_completion_tokens": 99,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": "END",
            "stream": true,
            "stream_options": {"include_usage": true}
        });
        let request =
            anthropic_request_from_openai(&body, "claude-x-2025", Some("You are served by gauntlet."), true).unwrap();
        assert_eq!(
            request,
            json!({
                "model": "claude-x-2025",
                "max_tokens": 99,
                "system": "You are served by gauntlet.\n\nBe brief.\nUse tools.",
                "stream": true,
                "temperature": 0.5,
                "top_p": 0.9,
                "stop_sequences": ["END"],
                "tool_choice": {"type": "any"},
                "messages": [
                    {"role": "user", "content": "Weather in Paris? [gauntlet:r1]"},
                    {"role": "assistant", "content": [
                        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                        {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
                        {"type": "tool_result", "tool_use_id": "call_2", "content": "noon"}
                    ]},
                    {"role": "user", "content": [
                        {"type": "text", "text": "And this?"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
                    ]}
                ],
                "tools": [
                    {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                    {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
                ]
            })
        );
    }

    #[test]
    fn anthropic_request_defaults_and_system_forms() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stop": ["a", "b"], "parallel_tool_calls": false, "tool_choice": {"type": "function", "function": {"name": "f"}}});
        let request = anthropic_request_from_openai(&body, "up", None, false).unwrap();
        assert_eq!(request["max_tokens"], 5);
        assert_eq!(request["stream"], false);
        assert_eq!(request["stop_sequences"], json!(["a", "b"]));
        assert_eq!(
            request["tool_choice"],
            json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})
        );
        assert!(request.get("system").is_none());
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let request = anthropic_request_from_openai(&body, "up", Some("P"), true).unwrap();
        assert_eq!(request["max_tokens"], ANTHROPIC_DEFAULT_MAX_TOKENS);
        assert_eq!(request["system"], "P");
        assert_eq!(request["messages"], json!([{"role": "user", "content": "hi"}]));
    }

    #[test]
    fn invalid_requests_say_where() {
        let cases = [
            (json!([]), "body"),
            (json!({"messages": "x"}), "messages"),
            (json!({"messages": [{"content": "x"}]}), "messages[0].role"),
            (
                json!({"messages": [{"role": "robot", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"messages": [{"role": "user", "content": 5}]}),
                "messages[0].content",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}),
                "messages[0].content[0]",
            ),
            (
                json!({"messages": [{"role": "tool", "content": "x"}]}),
                "messages[0].tool_call_id",
            ),
            (
                json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1"}}]}]}),
                "messages[0].tool_calls[0].function.arguments",
            ),
            (json!({"messages": [], "max_tokens": 0}), "max_tokens"),
            (json!({"messages": [], "stop": 3}), "stop"),
            (
                json!({"messages": [], "tools": [{"type": "retrieval"}]}),
                "tools[0].type",
            ),
            (json!({"messages": [], "tool_choice": "sometimes"}), "tool_choice"),
        ];
        for (body, path) in cases {
            match anthropic_request_from_openai(&body, "up", None, false) {
                Err(TranscodeError::InvalidRequest { path: got, .. }) => assert_eq!(got, path, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        let error = anthropic_request_from_openai(
            &json!({"messages": [{"role": "user", "content": 5}]}),
            "up",
            None,
            false,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "`messages[0].content` must be a string or an array of content parts"
        );
    }

    #[test]
    fn openai_request_gets_the_model_prefix_and_usage() {
        let body = json!({
            "model": "openai/gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "Be brief."}],
            "stream_options": {"include_usage": false, "other": 1}
        });
        let request = openai_request_for_upstream(&body, "gpt-4o-mini", Some("P."), true);
        assert_eq!(request["model"], "gpt-4o-mini");
        assert_eq!(request["stream"], true);
        assert_eq!(request["stream_options"], json!({"include_usage": true, "other": 1}));
        assert_eq!(request["messages"][1]["content"], "P.\n\nBe brief.");
        assert_eq!(request["messages"][0], json!({"role": "user", "content": "hi"}));

        let request = openai_request_for_upstream(&body, "gpt-4o-mini", None, false);
        assert_eq!(request["stream"], false);
        assert!(request.get("stream_options").is_none());
        assert_eq!(request["messages"], body["messages"]);

        let parts = json!({"messages": [{"role": "developer", "content": [{"type": "text", "text": "Be brief."}]}]});
        let request = openai_request_for_upstream(&parts, "up", Some("P."), true);
        assert_eq!(
            request["messages"][0]["content"],
            json!([{"type": "text", "text": "P.\n\n"}, {"type": "text", "text": "Be brief."}])
        );
        assert_eq!(request["stream_options"], json!({"include_usage": true}));

        let none = json!({"messages": [{"role": "user", "content": "hi"}]});
        let request = openai_request_for_upstream(&none, "up", Some("P."), false);
        assert_eq!(
            request["messages"],
            json!([{"role": "system", "content": "P."}, {"role": "user", "content": "hi"}])
        );
        assert_eq!(
            openai_request_for_upstream(&json!([1]), "up", Some("P."), true),
            json!([1])
        );
        let no_messages = openai_request_for_upstream(&json!({}), "up", Some("P."), false);
        assert_eq!(no_messages, json!({"model": "up", "stream": false}));
    }
}
