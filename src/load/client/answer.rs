//! Reading answers into a [`RequestRecord`]: the response headers, a whole
//! JSON body, an error body and its shape, and the borrowed views of stream
//! chunks the SSE reader applies; messages are cut with [`brief`].

use std::borrow::Cow;
use std::fmt;

use http::StatusCode;
use http::header::{HeaderMap, HeaderName, RETRY_AFTER};
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{GENERATION_ID, LITELLM_RETRIES, ORIGINAL_MODEL};
use crate::load::record::{ErrorShape, Facts, RequestRecord, ToolCall};

/// Error messages kept in a record are cut to this many characters.
pub const MAX_MESSAGE_CHARS: usize = 200;

/// The answer's status and headers into `record`.
pub(super) fn read_head(status: StatusCode, headers: &HeaderMap, record: &mut RequestRecord) {
    record.status = status.as_u16();
    record.generation_id = header_text(headers, &GENERATION_ID);
    record.conformance.original_model = header_text(headers, &ORIGINAL_MODEL);
    if !status.is_success() {
        record.conformance.retry_after = header_text(headers, &RETRY_AFTER);
    }
    record.conformance.upstream_retries = header_text(headers, &LITELLM_RETRIES).and_then(|n| n.trim().parse().ok());
}

/// The fields read from a whole answer, a stream chunk or an error body.
#[derive(Debug, Deserialize)]
pub(super) struct Payload<'a> {
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) choices: Option<Choices<'a>>,
    #[serde(default, borrow)]
    pub(super) usage: Option<UsageBody<'a>>,
    #[serde(default, borrow)]
    pub(super) error: Option<&'a RawValue>,
}

impl Payload<'_> {
    /// Copies the model and the usage into `record`. The usage (tokens and
    /// cost) is the last one reported, field for field; the model is the one
    /// the chunk carrying that usage named, else the first one named.
    pub(super) fn apply(&self, record: &mut RequestRecord) {
        if let Some(model) = &self.model
            && (record.model.is_none() || self.usage.is_some())
        {
            set_text(&mut record.model, model);
        }
        if let Some(usage) = &self.usage {
            record.prompt_tokens = usage.prompt_tokens;
            record.completion_tokens = usage.completion_tokens;
            record.cached_tokens = usage.prompt_tokens_details.and_then(|d| d.cached_tokens);
            record.conformance.cache_write_tokens = (usage.prompt_tokens_details)
                .and_then(|d| d.cache_write_tokens)
                .or(usage.cache_creation_input_tokens);
            record.conformance.reasoning_tokens = usage.completion_tokens_details.and_then(|d| d.reasoning_tokens);
            record.cost = usage.cost.map(raw_number);
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct UsageBody<'a> {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
    /// LiteLLM's name for cache writes (Anthropic's own).
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    /// Kept as written: checks compare it exactly.
    #[serde(default, borrow)]
    cost: Option<&'a RawValue>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub(super) struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    cache_write_tokens: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub(super) struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

/// What is read of `choices`, without collecting the array: the first
/// choice's `delta` and `message`, and the finish reasons.
#[derive(Debug, Default)]
pub(super) struct Choices<'a> {
    /// How many choices there were (0 for `choices: []`).
    pub(super) count: usize,
    /// The first choice's `delta` (a stream chunk).
    pub(super) delta: Option<Message<'a>>,
    /// The first choice's `message` (a whole answer).
    message: Option<Message<'a>>,
    /// The first choice's `finish_reason`.
    first_finish: Option<Cow<'a, str>>,
    /// The last non-null `finish_reason` among the choices.
    pub(super) last_finish: Option<Cow<'a, str>>,
}

impl Choices<'_> {
    /// The facts of a whole answer: its first choice's finish reason,
    /// content length and first tool call.
    pub(super) fn apply_whole(&self, facts: &mut Facts) {
        if let Some(reason) = &self.first_finish {
            set_text(&mut facts.finish_reason, reason);
        }
        if let Some(message) = &self.message {
            facts.content_chars = message.content_chars();
            facts.tool_call = message.tool_calls.and_then(first_tool_call);
        }
    }
}

#[derive(Debug, Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    delta: Option<Message<'a>>,
    #[serde(default, borrow)]
    message: Option<Message<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<&'a RawValue>,
}

/// A choice after the first: only its finish reason is read.
#[derive(Debug, Deserialize)]
struct OtherChoice<'a> {
    #[serde(default, borrow)]
    finish_reason: Option<&'a RawValue>,
}

/// A `delta` or a `message`: kept raw, read only as far as needed.
#[derive(Debug, Deserialize)]
pub(super) struct Message<'a> {
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub(super) tool_calls: Option<&'a RawValue>,
}

impl Message<'_> {
    /// Text or a tool-call delta; a role-only or empty delta is not content.
    pub(super) fn has_content(&self) -> bool {
        let present = |raw: Option<&RawValue>| raw.is_some_and(|raw| !is_empty_json(raw.get()));
        present(self.content) || present(self.tool_calls)
    }

    /// The characters of `content` when it is a string (0 otherwise).
    pub(super) fn content_chars(&self) -> u32 {
        let chars = self.content.and_then(|raw| json_string_chars(raw.get())).unwrap_or(0);
        u32::try_from(chars).unwrap_or(u32::MAX)
    }
}

/// One element of `tool_calls`: a streamed delta or a whole call.
#[derive(Debug, Deserialize)]
struct ToolCallBody<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    function: Option<FunctionBody<'a>>,
}

#[derive(Debug, Deserialize)]
struct FunctionBody<'a> {
    #[serde(default, borrow)]
    name: Option<&'a RawValue>,
    #[serde(default, borrow)]
    arguments: Option<&'a RawValue>,
}

impl FunctionBody<'_> {
    /// Adds this piece to `call`: the name if it has none yet, the arguments
    /// appended (their text when they are not a string).
    fn add_to(&self, call: &mut ToolCall) {
        if call.name.is_empty()
            && let Some(name) = self.name.and_then(json_str)
        {
            call.name = name.into_owned();
        }
        if let Some(arguments) = self.arguments {
            call.arguments.push_str(&text_of(arguments));
        }
    }
}

/// The elements of a `tool_calls` array, each kept raw (so one odd element
/// spoils neither the chunk nor the others).
fn tool_call_elements(raw: &RawValue) -> Vec<ToolCallBody<'_>> {
    serde_json::from_str::<Vec<&RawValue>>(raw.get())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|element| serde_json::from_str::<ToolCallBody<'_>>(element.get()).ok())
        .collect()
}

/// Adds a chunk's `delta.tool_calls` of index 0 to the call being reassembled.
pub(super) fn add_tool_deltas(raw: &RawValue, call: &mut Option<ToolCall>) {
    if is_empty_json(raw.get()) {
        return;
    }
    for delta in tool_call_elements(raw) {
        if delta.index.unwrap_or(0) != 0 {
            continue;
        }
        let call = call.get_or_insert_with(ToolCall::default);
        if let Some(function) = &delta.function {
            function.add_to(call);
        }
    }
}

/// A whole answer's `message.tool_calls[0]`.
fn first_tool_call(raw: &RawValue) -> Option<ToolCall> {
    let first = tool_call_elements(raw).into_iter().next()?;
    let mut call = ToolCall::default();
    if let Some(function) = &first.function {
        function.add_to(&mut call);
    }
    Some(call)
}

/// `null`, `""` or `[]`.
fn is_empty_json(text: &str) -> bool {
    let text = text.trim();
    text == "null"
        || text == "\"\""
        || text
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .is_some_and(|inner| inner.trim().is_empty())
}

impl<'de: 'a, 'a> Deserialize<'de> for Choices<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Each<'a>(std::marker::PhantomData<Choices<'a>>);
        impl<'de: 'a, 'a> Visitor<'de> for Each<'a> {
            type Value = Choices<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of choices")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Choices<'a>, A::Error> {
                let mut choices = Choices::default();
                if let Some(first) = seq.next_element::<Choice<'de>>()? {
                    choices.count = 1;
                    choices.delta = first.delta;
                    choices.message = first.message;
                    choices.first_finish = first.finish_reason.and_then(json_str);
                    choices.last_finish.clone_from(&choices.first_finish);
                }
                while let Some(other) = seq.next_element::<OtherChoice<'de>>()? {
                    choices.count += 1;
                    if let Some(reason) = other.finish_reason.and_then(json_str) {
                        choices.last_finish = Some(reason);
                    }
                }
                Ok(choices)
            }
        }
        deserializer.deserialize_seq(Each(std::marker::PhantomData))
    }
}

/// A JSON string's contents, borrowed when it has no escapes; `None` for
/// any other JSON value.
fn json_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get().trim();
    if !text.starts_with('"') {
        return None;
    }
    match serde_json::from_str::<&str>(text) {
        Ok(borrowed) => Some(Cow::Borrowed(borrowed)),
        Err(_) => serde_json::from_str::<String>(text).ok().map(Cow::Owned),
    }
}

/// A JSON string's contents, or the JSON text of any other value.
fn text_of(raw: &RawValue) -> Cow<'_, str> {
    json_str(raw).unwrap_or_else(|| Cow::Borrowed(raw.get().trim()))
}

/// The characters a JSON string literal decodes to, counted on its text
/// (escapes, surrogate pairs included, count as the one character they
/// stand for); `None` when `text` is not a string.
fn json_string_chars(text: &str) -> Option<usize> {
    let inner = text.trim().strip_prefix('"')?.strip_suffix('"')?;
    let bytes = inner.as_bytes();
    let mut count = 0;
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'\\' {
            if bytes.get(i + 1) == Some(&b'u') {
                // The low half of a surrogate pair was counted with its high half.
                let unit = inner
                    .get(i + 2..i + 6)
                    .and_then(|hex| u16::from_str_radix(hex, 16).ok());
                if !unit.is_some_and(|unit| (0xDC00..0xE000).contains(&unit)) {
                    count += 1;
                }
                i += 6;
            } else {
                count += 1;
                i += 2;
            }
        } else {
            // UTF-8 continuation bytes belong to the character counted already.
            if byte & 0xC0 != 0x80 {
                count += 1;
            }
            i += 1;
        }
    }
    Some(count)
}

/// Sets `slot` to `text`, reusing its allocation (none when it is equal).
pub(super) fn set_text(slot: &mut Option<String>, text: &str) {
    match slot {
        Some(current) if current == text => {}
        Some(current) => {
            current.clear();
            current.push_str(text);
        }
        None => *slot = Some(text.to_owned()),
    }
}

/// A JSON number's exact text; a JSON string's contents (some routers quote
/// decimals).
pub(super) fn raw_number(raw: &RawValue) -> String {
    text_of(raw).into_owned()
}

/// A header's value, when it is text.
pub(super) fn header_text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The message of an `error` value: `error.message`, or the error itself
/// when it is a string, or its JSON text.
pub(super) fn error_text(error: &RawValue) -> String {
    #[derive(Deserialize)]
    struct Message {
        message: Option<String>,
    }
    if let Ok(Message { message: Some(message) }) = serde_json::from_str::<Message>(error.get()) {
        return message;
    }
    serde_json::from_str::<String>(error.get()).unwrap_or_else(|_| error.get().to_owned())
}

/// The message of an error body (its `error`, else its text) and its shape.
pub(super) fn read_error_body(body: &[u8]) -> (Option<String>, ErrorShape) {
    let mut shape = ErrorShape::default();
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let error = parsed
        .as_ref()
        .and_then(Value::as_object)
        .and_then(|top| top.get("error"))
        .filter(|error| !error.is_null());
    let message = match error {
        Some(whole @ Value::Object(error)) => {
            let message = error.get("message").and_then(Value::as_str);
            let typed = error.get("type").is_some_and(Value::is_string)
                || error
                    .get("code")
                    .is_some_and(|code| code.is_string() || code.is_number());
            shape.ok = message.is_some_and(|m| !m.is_empty()) && typed;
            shape.error_type = error.get("type").and_then(Value::as_str).map(str::to_owned);
            shape.anthropic = shape.ok
                && shape.error_type.is_some()
                && parsed
                    .as_ref()
                    .and_then(|top| top.get("type"))
                    .is_some_and(|kind| kind == "error");
            if let Some(availability) = error.get("availability") {
                shape.availability_code = availability.get("code").map(|code| match code {
                    Value::String(code) => code.clone(),
                    other => other.to_string(),
                });
                if let Some(models) = availability.get("fallback_models").and_then(Value::as_array) {
                    shape.fallback_models = models.iter().filter_map(Value::as_str).map(str::to_owned).collect();
                }
            }
            Some(brief(&message.map_or_else(|| whole.to_string(), str::to_owned)))
        }
        Some(Value::String(text)) => Some(brief(text)),
        Some(other) => Some(brief(&other.to_string())),
        None if body.is_empty() => None,
        None => Some(brief(&String::from_utf8_lossy(body))),
    };
    (message, shape)
}

/// `text` cut to [`MAX_MESSAGE_CHARS`] characters.
pub fn brief(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::load::client::blank_record;
    use crate::load::record::Outcome;

    #[test]
    fn json_string_characters_count_escapes_once() {
        assert_eq!(json_string_chars(r#""""#), Some(0));
        assert_eq!(json_string_chars(r#""héllo""#), Some(5));
        assert_eq!(json_string_chars(r#""a\n\"b\u00e9\ud83d\ude00""#), Some(6));
        assert_eq!(json_string_chars("null"), None);
        for text in ["plain", "é😀\n\t\"q\"", "\u{1F600} x"] {
            let json = serde_json::to_string(text).unwrap();
            assert_eq!(json_string_chars(&json), Some(text.chars().count()), "{json}");
        }
    }
    #[test]
    fn error_bodies_and_costs() {
        let error_message = |body: &[u8]| read_error_body(body).0;
        let shape = |body: &[u8]| read_error_body(body).1;
        assert_eq!(
            error_message(br#"{"error":{"message":"no such model","code":404}}"#).as_deref(),
            Some("no such model")
        );
        assert_eq!(error_message(br#"{"error":"plain"}"#).as_deref(), Some("plain"));
        assert_eq!(
            error_message(br#"{"error":{"message":7}}"#).as_deref(),
            Some(r#"{"message":7}"#)
        );
        assert_eq!(error_message(b"Bad Gateway").as_deref(), Some("Bad Gateway"));
        assert_eq!(error_message(b""), None);

        assert!(shape(br#"{"error":{"message":"m","code":404}}"#).ok);
        assert!(shape(br#"{"error":{"message":"m","code":"model_not_found"}}"#).ok);
        assert!(shape(br#"{"error":{"message":"m","type":"invalid_request_error","code":null}}"#).ok);
        for bad in [
            &br#"{"error":{"message":"","code":404}}"#[..],
            br#"{"error":{"message":"m"}}"#,
            br#"{"error":{"message":"m","code":null,"type":7}}"#,
            br#"{"error":"plain"}"#,
            br#"{"message":"m","code":404}"#,
            br#"[{"error":{"message":"m","code":404}}]"#,
            b"Bad Gateway",
            b"",
        ] {
            assert_eq!(shape(bad), ErrorShape::default(), "{}", String::from_utf8_lossy(bad));
        }
        let removed = shape(
            br#"{"error":{"message":"gone","code":404,"availability":{"code":"model_deprecated","fallback_models":["x",3,"y"]}}}"#,
        );
        assert_eq!(
            removed,
            ErrorShape {
                ok: true,
                error_type: None,
                anthropic: false,
                availability_code: Some("model_deprecated".into()),
                fallback_models: vec!["x".into(), "y".into()],
            }
        );
        let anthropic = shape(br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#);
        assert!(anthropic.ok && anthropic.anthropic, "{anthropic:?}");
        assert_eq!(anthropic.error_type.as_deref(), Some("rate_limit_error"));
        // OpenAI's shape is not Anthropic's, even with a type.
        let openai = shape(br#"{"error":{"type":"rate_limit_error","message":"slow down"}}"#);
        assert!(openai.ok && !openai.anthropic, "{openai:?}");
        let long = "é".repeat(500);
        let cut = brief(&long);
        assert_eq!(cut.chars().count(), MAX_MESSAGE_CHARS + 1);

        let answer: Payload<'_> = serde_json::from_str(r#"{"usage":{"cost":"0.10"}}"#).unwrap();
        let mut record = blank_record(Arc::from("x"), 0, 0, false, 0, 0, Outcome::Ok);
        answer.apply(&mut record);
        assert_eq!(record.cost.as_deref(), Some("0.10"));
        let answer: Payload<'_> = serde_json::from_str(r#"{"usage":{"cost":1.50e-5}}"#).unwrap();
        answer.apply(&mut record);
        assert_eq!(record.cost.as_deref(), Some("1.50e-5"));
    }
}
