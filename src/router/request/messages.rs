//! Reading a client's Messages API request (`POST /messages`, and the body
//! of `POST /messages/count_tokens`) into the same [`ChatRequest`] a chat
//! completion becomes, so that both APIs share pricing, limits, retries and
//! settlement.
//!
//! The prompt bound and estimate follow the chat rules of the parent module:
//! the top-level `system` counts as one more message, the text of `text`
//! blocks is what is estimated, and every other block (images, `tool_use`
//! inputs, `tool_result` contents) adds its JSON bytes to the bound. The
//! estimate is then the mock providers' documented count, and the answer of
//! `count_tokens`.

use serde_json::Value;

use super::{
    Api, ChatRequest, MAX_TOKENS_LIMIT, bad, check_temperature, json_object, messages_of, model_of, stream_of,
    tools_bytes, type_name,
};
use crate::router::error::ApiError;

/// Parses and validates a Messages request: `max_tokens` is required, as
/// Anthropic requires it.
pub fn parse_messages(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
    parse_body(bytes, true)
}

/// Parses a `count_tokens` body: a Messages request without `max_tokens`.
pub fn parse_count_tokens(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
    parse_body(bytes, false)
}

/// What the text of a `system` or a message content adds up to.
#[derive(Default)]
struct Counted {
    bytes: u64,
    chars: u64,
}

fn parse_body(bytes: &[u8], needs_max_tokens: bool) -> Result<ChatRequest, ApiError> {
    let body = json_object(bytes)?;
    let model = model_of(&body)?;
    let messages = messages_of(&body)?;
    let mut prompt_bound: u64 = 16;
    let mut prompt_estimate: u64 = 3;
    match body.get("system") {
        None | Some(Value::Null) => {}
        Some(system @ (Value::String(_) | Value::Array(_))) => {
            let counted = count_content(system, "system", true)?;
            prompt_bound += counted.bytes + 8;
            prompt_estimate += 4 + counted.chars.div_ceil(4);
        }
        Some(other) => {
            return Err(bad(format!(
                "`system` must be a string or an array of text blocks, got {}",
                type_name(other)
            )));
        }
    }
    for (i, message) in messages.iter().enumerate() {
        let Value::Object(message) = message else {
            return Err(bad(format!("`messages[{i}]` must be an object")));
        };
        match message.get("role") {
            Some(Value::String(r)) if matches!(r.as_str(), "user" | "assistant") => {}
            Some(Value::String(r)) => {
                return Err(bad(format!(
                    "`messages[{i}].role` must be user or assistant; got `{r}`"
                )));
            }
            _ => return Err(bad(format!("`messages[{i}].role` must be a string"))),
        }
        let content = message
            .get("content")
            .ok_or_else(|| bad(format!("`messages[{i}].content` is required")))?;
        let counted = count_content(content, &format!("messages[{i}].content"), false)?;
        prompt_bound += counted.bytes + 8;
        prompt_estimate += 4 + counted.chars.div_ceil(4);
    }
    let stream = stream_of(&body)?;
    let max_tokens = match body.get("max_tokens") {
        None | Some(Value::Null) if needs_max_tokens => return Err(bad("`max_tokens` is required")),
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|&n| (1..=u64::from(MAX_TOKENS_LIMIT)).contains(&n))
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    bad(format!(
                        "`max_tokens` must be an integer from 1 to {MAX_TOKENS_LIMIT}, got {v}"
                    ))
                })?,
        ),
    };
    let tools = tools_bytes(&body)?;
    prompt_bound += tools;
    prompt_estimate += tools.div_ceil(4);
    match body.get("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(stops)) if stops.iter().all(Value::is_string) => {}
        Some(_) => return Err(bad("`stop_sequences` must be an array of strings")),
    }
    if let Some(choice) = body.get("tool_choice").filter(|v| !v.is_null())
        && !choice.get("type").is_some_and(Value::is_string)
    {
        return Err(bad("`tool_choice` must be an object with a `type`"));
    }
    check_temperature(&body, 1.0)?;
    Ok(ChatRequest {
        api: Api::Messages,
        body,
        model,
        stream,
        max_tokens,
        prompt_bound,
        prompt_estimate,
    })
}

/// Validates a `system` or message `content` (a string or an array of
/// blocks) and counts its text. `system` blocks must be text blocks.
fn count_content(content: &Value, path: &str, text_only: bool) -> Result<Counted, ApiError> {
    let mut counted = Counted::default();
    match content {
        Value::String(text) => {
            counted.bytes += text.len() as u64;
            counted.chars += text.chars().count() as u64;
        }
        Value::Array(blocks) => {
            for (j, block) in blocks.iter().enumerate() {
                let kind = block
                    .get("type")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("`{path}[{j}].type` must be a string")))?;
                match (kind, block.get("text")) {
                    ("text", Some(Value::String(text))) => {
                        counted.bytes += text.len() as u64;
                        counted.chars += text.chars().count() as u64;
                    }
                    ("text", _) => return Err(bad(format!("`{path}[{j}].text` must be a string"))),
                    _ if text_only => return Err(bad(format!("`{path}[{j}]` must be a text block"))),
                    _ => {
                        if let Some(problem) = block_problem(kind, block) {
                            return Err(bad(format!("`{path}[{j}]` {problem}")));
                        }
                        counted.bytes += block.to_string().len() as u64;
                    }
                }
            }
        }
        other => {
            return Err(bad(format!(
                "`{path}` must be a string or an array of content blocks, got {}",
                type_name(other)
            )));
        }
    }
    Ok(counted)
}

/// What is wrong with a non-text block the router reads, if anything.
/// Other block kinds (thinking, documents, server tools) pass unchecked.
fn block_problem(kind: &str, block: &Value) -> Option<&'static str> {
    let has_str = |field: &str| block.get(field).is_some_and(Value::is_string);
    match kind {
        "image" if !block.get("source").is_some_and(Value::is_object) => Some("needs a `source` object"),
        "tool_use" if !(has_str("id") && has_str("name")) => Some("needs `id` and `name` strings"),
        "tool_use" if !block.get("input").is_some_and(Value::is_object) => Some("needs an `input` object"),
        "tool_result" if !has_str("tool_use_id") => Some("needs a `tool_use_id` string"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn a_messages_request_parses_and_counts_like_the_mock() {
        let body = json!({
            "model": "m", "max_tokens": 9, "stream": true,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]}
            ]
        });
        let r = parse_messages(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.api, Api::Messages);
        assert_eq!((r.model.as_str(), r.stream, r.max_tokens), ("m", true, Some(9)));
        // 3, system 4 + ceil(9/4), "hello" 4 + 2, two messages without text 4 each.
        assert_eq!(r.prompt_estimate, 3 + 7 + 6 + 4 + 4);
        assert!(r.prompt_bound >= r.prompt_estimate);
        assert_eq!(r.body, *body.as_object().unwrap());
        // count_tokens needs no max_tokens.
        let mut no_max = body.clone();
        no_max.as_object_mut().unwrap().remove("max_tokens");
        assert_eq!(
            parse_count_tokens(no_max.to_string().as_bytes())
                .unwrap()
                .prompt_estimate,
            r.prompt_estimate
        );
    }

    #[test]
    fn mistakes_are_named() {
        let cases: [(Value, &str); 10] = [
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
                "`max_tokens` is required",
            ),
            (
                json!({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}),
                "`max_tokens`",
            ),
            (json!({"max_tokens": 1, "messages": []}), "`model` is required"),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]}),
                "`messages[0].role`",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user"}]}),
                "`messages[0].content` is required",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "system": 5, "messages": [{"role": "user", "content": "x"}]}),
                "`system`",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "system": [{"type": "image"}], "messages": [{"role": "user", "content": "x"}]}),
                "`system[0]`",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "image"}]}]}),
                "`messages[0].content[0]`",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "stop_sequences": "x", "messages": [{"role": "user", "content": "x"}]}),
                "`stop_sequences`",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "tool_choice": "auto", "messages": [{"role": "user", "content": "x"}]}),
                "`tool_choice`",
            ),
        ];
        for (body, expected) in cases {
            let e = parse_messages(body.to_string().as_bytes()).unwrap_err();
            assert!(e.to_string().contains(expected), "{body}: {e}");
            assert_eq!(e.status(), 400);
        }
    }

    proptest! {
        /// No input makes the parser panic; anything refused is a 400.
        #[test]
        fn any_bytes_are_handled(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Err(e) = parse_messages(&bytes) {
                prop_assert_eq!(e.status(), 400);
            }
        }
    }
}
