//! Reading a client's chat completion request: validation with messages that
//! say what is wrong, and the prompt-token upper bound used to reserve the
//! worst-case cost before forwarding.
//!
//! The bound assumes no token is shorter than one byte of text: it counts the
//! bytes of every message's text, the tool definitions, and 8 tokens of
//! framing per message plus 16, so it is never below what a real tokenizer
//! (or the mock's documented count) reports.
//!
//! The estimate is for the one case where the upstream never reports a prompt
//! count, an OpenAI-dialect stream the client abandons: four characters a
//! token, four tokens of framing a message and three for the reply
//! (OpenAI's chat format), and a quarter of the tool definitions' bytes.

use serde_json::{Map, Value};

use super::error::ApiError;

mod messages;

pub use messages::{parse_count_tokens, parse_messages};

/// The most completion tokens a request may ask for.
pub const MAX_TOKENS_LIMIT: u32 = 1_000_000;

/// Which API a request came in through: it decides how the body is read,
/// translated for each upstream dialect, and answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// OpenAI's chat completions (`/chat/completions`).
    Chat,
    /// Anthropic's Messages API (`/messages`).
    Messages,
}

/// A validated request; `body` is kept whole to translate for the upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub api: Api,
    pub body: Map<String, Value>,
    pub model: String,
    pub stream: bool,
    pub max_tokens: Option<u32>,
    pub prompt_bound: u64,
    pub prompt_estimate: u64,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

/// The body as a JSON object: what either API's request must be.
fn json_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("the request body is not valid JSON: {e}")))?;
    match value {
        Value::Object(body) => Ok(body),
        _ => Err(bad("the request body must be a JSON object")),
    }
}

/// `model`: a non-empty string.
fn model_of(body: &Map<String, Value>) -> Result<String, ApiError> {
    match body.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => Ok(m.clone()),
        Some(Value::String(_)) => Err(bad("`model` must not be empty")),
        Some(other) => Err(bad(format!("`model` must be a string, got {}", type_name(other)))),
        None => Err(bad("`model` is required")),
    }
}

/// `messages`: a non-empty array.
fn messages_of(body: &Map<String, Value>) -> Result<&Vec<Value>, ApiError> {
    match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => Ok(m),
        Some(Value::Array(_)) => Err(bad("`messages` must not be empty")),
        Some(other) => Err(bad(format!("`messages` must be an array, got {}", type_name(other)))),
        None => Err(bad("`messages` is required")),
    }
}

/// `stream`: a boolean, false when absent.
fn stream_of(body: &Map<String, Value>) -> Result<bool, ApiError> {
    match body.get("stream") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(bad(format!("`stream` must be a boolean, got {}", type_name(other)))),
    }
}

/// The JSON bytes of `tools` (an array; 0 when absent), which the prompt
/// bound counts whole and the estimate a quarter of.
fn tools_bytes(body: &Map<String, Value>) -> Result<u64, ApiError> {
    match body.get("tools") {
        None | Some(Value::Null) => Ok(0),
        Some(tools @ Value::Array(_)) => Ok(tools.to_string().len() as u64),
        Some(other) => Err(bad(format!("`tools` must be an array, got {}", type_name(other)))),
    }
}

/// `temperature`: a number from 0 to `max` (2 for chat, 1 for Anthropic's).
fn check_temperature(body: &Map<String, Value>, max: f64) -> Result<(), ApiError> {
    match body.get("temperature").filter(|v| !v.is_null()) {
        Some(t) if !t.as_f64().is_some_and(|t| (0.0..=max).contains(&t)) => {
            Err(bad(format!("`temperature` must be a number from 0 to {max}, got {t}")))
        }
        _ => Ok(()),
    }
}

/// Parses and validates a request body.
pub fn parse(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
    let body = json_object(bytes)?;
    let model = model_of(&body)?;
    let messages = messages_of(&body)?;
    let mut prompt_bound: u64 = 16;
    let mut prompt_estimate: u64 = 3;
    for (i, message) in messages.iter().enumerate() {
        let mut chars: u64 = 0;
        let Value::Object(message) = message else {
            return Err(bad(format!("`messages[{i}]` must be an object")));
        };
        let role = match message.get("role") {
            Some(Value::String(r)) => r.as_str(),
            _ => return Err(bad(format!("`messages[{i}].role` must be a string"))),
        };
        if !matches!(role, "system" | "developer" | "user" | "assistant" | "tool") {
            return Err(bad(format!(
                "`messages[{i}].role` must be one of system, developer, user, assistant, tool; got `{role}`"
            )));
        }
        match message.get("content") {
            Some(Value::String(text)) => {
                prompt_bound += text.len() as u64;
                chars += text.chars().count() as u64;
            }
            Some(Value::Array(parts)) => {
                for (j, part) in parts.iter().enumerate() {
                    match part.get("text") {
                        Some(Value::String(text)) => {
                            prompt_bound += text.len() as u64;
                            chars += text.chars().count() as u64;
                        }
                        Some(_) => return Err(bad(format!("`messages[{i}].content[{j}].text` must be a string"))),
                        None => prompt_bound += part.to_string().len() as u64,
                    }
                }
            }
            None | Some(Value::Null) if role == "assistant" => {}
            None | Some(Value::Null) => return Err(bad(format!("`messages[{i}].content` is required"))),
            Some(other) => {
                return Err(bad(format!(
                    "`messages[{i}].content` must be a string or an array of parts, got {}",
                    type_name(other)
                )));
            }
        }
        if let Some(calls) = message.get("tool_calls") {
            prompt_bound += calls.to_string().len() as u64;
        }
        prompt_bound += 8;
        prompt_estimate += 4 + chars.div_ceil(4);
    }
    let stream = stream_of(&body)?;
    if let Some(options) = body.get("stream_options").filter(|v| !v.is_null())
        && !options.is_object()
    {
        return Err(bad("`stream_options` must be an object"));
    }
    let mut max_tokens = None;
    for field in ["max_tokens", "max_completion_tokens"] {
        match body.get(field) {
            None | Some(Value::Null) => {}
            Some(v) => {
                let n = v
                    .as_u64()
                    .filter(|&n| (1..=u64::from(MAX_TOKENS_LIMIT)).contains(&n))
                    .ok_or_else(|| {
                        bad(format!(
                            "`{field}` must be an integer from 1 to {MAX_TOKENS_LIMIT}, got {v}"
                        ))
                    })?;
                max_tokens = Some(max_tokens.map_or(n as u32, |m: u32| m.min(n as u32)));
            }
        }
    }
    let tools = tools_bytes(&body)?;
    prompt_bound += tools;
    prompt_estimate += tools.div_ceil(4);
    check_temperature(&body, 2.0)?;
    Ok(ChatRequest {
        api: Api::Chat,
        body,
        model,
        stream,
        max_tokens,
        prompt_bound,
        prompt_estimate,
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_good_request_parses() {
        let r = parse(br#"{"model":"m","stream":true,"max_tokens":9,"messages":[{"role":"user","content":"hello"}]}"#)
            .unwrap();
        assert_eq!((r.model.as_str(), r.stream, r.max_tokens), ("m", true, Some(9)));
        assert_eq!(r.prompt_bound, 16 + 5 + 8);
        assert_eq!(r.prompt_estimate, 3 + 4 + 2);
    }

    #[test]
    fn mistakes_are_named() {
        let cases: [(&[u8], &str); 9] = [
            (b"{", "not valid JSON"),
            (b"[]", "JSON object"),
            (br#"{"messages":[]}"#, "`model` is required"),
            (
                br#"{"model":1,"messages":[]}"#,
                "`model` must be a string, got a number",
            ),
            (br#"{"model":"m"}"#, "`messages` is required"),
            (
                br#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#,
                "`messages[0].role`",
            ),
            (
                br#"{"model":"m","messages":[{"role":"user"}]}"#,
                "`messages[0].content` is required",
            ),
            (
                br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
                "`max_tokens`",
            ),
            (
                br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
                "`stream` must be a boolean",
            ),
        ];
        for (body, expected) in cases {
            let e = parse(body).unwrap_err();
            assert!(
                e.to_string().contains(expected),
                "{}: {e}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(e.status(), 400);
        }
    }

    proptest! {
        /// No input makes the parser panic; anything refused is a 400.
        #[test]
        fn any_bytes_are_handled(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Err(e) = parse(&bytes) {
                prop_assert_eq!(e.status(), 400);
            }
        }

        #[test]
        fn any_json_shape_is_handled(v in arb_json()) {
            if let Err(e) = parse(v.to_string().as_bytes()) {
                prop_assert_eq!(e.status(), 400);
            }
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z]{0,6}".prop_map(Value::String),
            Just(Value::String("model".into())),
            Just(Value::String("messages".into())),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(
                    (
                        prop_oneof![
                            Just("model"),
                            Just("messages"),
                            Just("role"),
                            Just("content"),
                            Just("max_tokens"),
                            Just("stream")
                        ],
                        inner
                    ),
                    0..5
                )
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            ]
        })
    }
}
