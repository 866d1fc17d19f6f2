//! The request side of the load generator: each mix entry's body built once
//! as a [`Template`], and the [`Call`] it stamps out per request (its nonce
//! spliced in, serialized once into `Bytes`).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};

use crate::load::plan::{Api, MixEntry};
use crate::load::record::{Facts, Outcome, RequestRecord};

/// The name of the one tool offered by a mix entry with `tools = true`.
pub const TOOL_NAME: &str = "get_weather";

/// The tool list sent when a mix entry offers tools.
const TOOLS_JSON: &str = r#"[{"type":"function","function":{"name":"get_weather","description":"Current weather for a city.","parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city"]}}}]"#;

/// The same tool as the Messages API declares it.
const MESSAGES_TOOLS_JSON: &str = r#"[{"name":"get_weather","description":"Current weather for a city.","input_schema":{"type":"object","properties":{"city":{"type":"string","description":"City name"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city"]}}]"#;

/// The same, marked for caching as Claude Code marks its tools.
const MESSAGES_TOOLS_CACHED_JSON: &str = r#"[{"name":"get_weather","description":"Current weather for a city.","input_schema":{"type":"object","properties":{"city":{"type":"string","description":"City name"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city"]},"cache_control":{"type":"ephemeral"}}]"#;

/// `max_tokens` of a Messages request whose entry sets none: the API
/// requires one.
pub const MESSAGES_MAX_TOKENS: u32 = 1024;

/// The header a Messages request carries its key in (as Claude Code does
/// with `ANTHROPIC_API_KEY`).
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
/// The API version every Messages request names.
const ANTHROPIC_VERSION: (HeaderName, HeaderValue) = (
    HeaderName::from_static("anthropic-version"),
    HeaderValue::from_static("2023-06-01"),
);

/// Prompt filler: plain ASCII words, nothing JSON must escape.
const FILLER: &[u8] = b"Summarise the following notes about load testing in one short paragraph. \
Open loop arrivals keep their schedule whatever the latency; closed loop users wait for each answer \
and then think before they ask again. ";

/// The body of every request of one mix entry, built once, with a gap where
/// each request's nonce goes.
#[derive(Debug, Clone)]
pub struct Template {
    mix: u16,
    api: Api,
    stream: bool,
    /// `authorization: Bearer KEY` (chat) or `x-api-key: KEY` (messages);
    /// `None` when the key is not a valid header value (the request then
    /// goes without one and the router should answer 401).
    auth: Option<(HeaderName, HeaderValue)>,
    /// The JSON up to the user message's opening quote.
    head: Vec<u8>,
    /// The JSON from the user message's closing quote.
    tail: Vec<u8>,
    /// `prompt_chars` characters of filler.
    filler: Vec<u8>,
    /// The entry's own headers.
    headers: Arc<[(HeaderName, HeaderValue)]>,
}

impl Template {
    /// The template of mix entry `index`.
    pub fn new(index: usize, entry: &MixEntry) -> Template {
        let (head, tail) = match entry.api {
            Api::Chat => chat_body(entry),
            Api::Messages => messages_body(entry),
        };
        let chars = usize::try_from(entry.prompt_chars).unwrap_or(usize::MAX);
        let filler = FILLER.iter().copied().cycle().take(chars).collect();
        let auth = match entry.api {
            Api::Chat => (AUTHORIZATION, HeaderValue::try_from(format!("Bearer {}", entry.key))),
            Api::Messages => (X_API_KEY, HeaderValue::try_from(entry.key.as_str())),
        };
        let auth = match auth {
            (name, Ok(mut value)) => {
                value.set_sensitive(true);
                Some((name, value))
            }
            (_, Err(_)) => None,
        };
        let mut headers: Vec<(HeaderName, HeaderValue)> = super::parsed_headers(&entry.headers).to_vec();
        if entry.api == Api::Messages && !headers.iter().any(|(name, _)| *name == ANTHROPIC_VERSION.0) {
            headers.insert(0, ANTHROPIC_VERSION);
        }
        Template {
            mix: u16::try_from(index).unwrap_or(u16::MAX),
            api: entry.api,
            stream: entry.stream,
            auth,
            head,
            tail,
            filler,
            headers: headers.into(),
        }
    }

    pub fn stream(&self) -> bool {
        self.stream
    }

    pub fn api(&self) -> Api {
        self.api
    }

    pub fn mix(&self) -> u16 {
        self.mix
    }

    /// The request with id `id` (ASCII, `A-Za-z0-9-_.`): its body serialized
    /// once. The user message is `[gauntlet:ID] ` then filler, `prompt_chars`
    /// characters in all (just the nonce when it is longer than that).
    pub fn call(&self, id: Arc<str>, phase: u16) -> Call {
        let nonce_len = "[gauntlet:]".len() + id.len();
        let filler = self.filler.len().saturating_sub(nonce_len + 1);
        let mut body = Vec::with_capacity(self.head.len() + nonce_len + 1 + filler + self.tail.len());
        body.extend_from_slice(&self.head);
        body.extend_from_slice(b"[gauntlet:");
        body.extend_from_slice(id.as_bytes());
        body.push(b']');
        if filler > 0 {
            body.push(b' ');
            body.extend_from_slice(self.filler.get(..filler).unwrap_or_default());
        }
        body.extend_from_slice(&self.tail);
        Call {
            id,
            phase,
            mix: self.mix,
            api: self.api,
            stream: self.stream,
            auth: self.auth.clone(),
            headers: Arc::clone(&self.headers),
            body: Bytes::from(body),
        }
    }
}

/// A JSON string literal.
fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// A chat completion's body around the user message: the JSON up to its
/// opening quote and from its closing quote.
fn chat_body(entry: &MixEntry) -> (Vec<u8>, Vec<u8>) {
    let mut head = Vec::with_capacity(128 + entry.model.len());
    head.extend_from_slice(b"{\"model\":");
    head.extend_from_slice(quoted(&entry.model).as_bytes());
    head.extend_from_slice(b",\"messages\":[");
    if let Some(system) = &entry.system {
        head.extend_from_slice(b"{\"role\":\"system\",\"content\":");
        head.extend_from_slice(quoted(system).as_bytes());
        head.extend_from_slice(b"},");
    }
    head.extend_from_slice(b"{\"role\":\"user\",\"content\":\"");

    let mut tail = Vec::with_capacity(96 + TOOLS_JSON.len());
    tail.extend_from_slice(b"\"}]");
    if entry.stream {
        // Routers always send usage; a bare provider only when asked.
        tail.extend_from_slice(b",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    } else {
        tail.extend_from_slice(b",\"stream\":false");
    }
    if let Some(max_tokens) = entry.max_tokens {
        tail.extend_from_slice(format!(",\"max_tokens\":{max_tokens}").as_bytes());
    }
    if entry.tools {
        tail.extend_from_slice(b",\"tools\":");
        tail.extend_from_slice(TOOLS_JSON.as_bytes());
    }
    tail.push(b'}');
    (head, tail)
}

/// A Messages request's body around the user message, as Claude Code
/// sends one: `max_tokens` always, the system prompt as a string.
fn messages_body(entry: &MixEntry) -> (Vec<u8>, Vec<u8>) {
    let mut head = Vec::with_capacity(128 + entry.model.len());
    head.extend_from_slice(b"{\"model\":");
    head.extend_from_slice(quoted(&entry.model).as_bytes());
    let max_tokens = entry.max_tokens.unwrap_or(MESSAGES_MAX_TOKENS);
    head.extend_from_slice(format!(",\"max_tokens\":{max_tokens}").as_bytes());
    if let Some(system) = &entry.system {
        head.extend_from_slice(b",\"system\":");
        if entry.cache_control {
            head.extend_from_slice(b"[{\"type\":\"text\",\"text\":");
            head.extend_from_slice(quoted(system).as_bytes());
            head.extend_from_slice(b",\"cache_control\":{\"type\":\"ephemeral\"}}]");
        } else {
            head.extend_from_slice(quoted(system).as_bytes());
        }
    }
    head.extend_from_slice(b",\"messages\":[{\"role\":\"user\",\"content\":\"");

    let mut tail = Vec::with_capacity(64 + MESSAGES_TOOLS_JSON.len());
    tail.extend_from_slice(b"\"}]");
    tail.extend_from_slice(if entry.stream {
        b",\"stream\":true"
    } else {
        b",\"stream\":false"
    });
    if entry.tools {
        tail.extend_from_slice(b",\"tools\":");
        tail.extend_from_slice(if entry.cache_control {
            MESSAGES_TOOLS_CACHED_JSON.as_bytes()
        } else {
            MESSAGES_TOOLS_JSON.as_bytes()
        });
    }
    tail.push(b'}');
    (head, tail)
}

/// One request, ready to send.
#[derive(Debug, Clone)]
pub struct Call {
    pub id: Arc<str>,
    pub phase: u16,
    pub mix: u16,
    pub api: Api,
    pub stream: bool,
    pub(super) auth: Option<(HeaderName, HeaderValue)>,
    /// The mix entry's own headers.
    pub(super) headers: Arc<[(HeaderName, HeaderValue)]>,
    pub body: Bytes,
}

impl Call {
    /// A record of this call with nothing received yet.
    pub fn record(&self, intended_us: u64, sent_us: u64, outcome: Outcome) -> RequestRecord {
        blank_record(
            Arc::clone(&self.id),
            self.phase,
            self.mix,
            self.stream,
            intended_us,
            sent_us,
            outcome,
        )
    }
}

/// A record with nothing received: status 0, no times past `sent_us`.
pub fn blank_record(
    id: Arc<str>,
    phase: u16,
    mix: u16,
    stream: bool,
    intended_us: u64,
    sent_us: u64,
    outcome: Outcome,
) -> RequestRecord {
    RequestRecord {
        id,
        phase,
        mix,
        stream,
        intended_us,
        sent_us,
        head_us: None,
        first_content_us: None,
        last_byte_us: None,
        status: 0,
        outcome,
        chunks: 0,
        content_chunks: 0,
        content_offsets_us: Vec::new(),
        prompt_tokens: None,
        completion_tokens: None,
        cached_tokens: None,
        cost: None,
        generation_id: None,
        model: None,
        error: None,
        conformance: Facts::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(stream: bool) -> MixEntry {
        MixEntry {
            name: "m".into(),
            weight: 1,
            api: Api::Chat,
            model: "vendor/model \"q\"".into(),
            key: "sk-test".into(),
            stream,
            prompt_chars: 120,
            system: Some("be brief\n".into()),
            max_tokens: Some(32),
            tools: false,
            cache_control: false,
            headers: Vec::new(),
        }
    }
    #[test]
    fn body_carries_the_fields_and_the_nonce() {
        let template = Template::new(3, &entry(true));
        let call = template.call(Arc::from("r1-42"), 1);
        assert_eq!((call.mix, call.phase, call.stream), (3, 1, true));
        let body: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(body["model"], "vendor/model \"q\"");
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][0]["content"], "be brief\n");
        assert_eq!(body["messages"][1]["role"], "user");
        let prompt = body["messages"][1]["content"].as_str().unwrap();
        assert_eq!(prompt.chars().count(), 120);
        assert_eq!(mock_providers::tokens::find_nonce(prompt), Some("r1-42"));
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["max_tokens"], 32);
        assert!(body.get("tools").is_none());

        // Ids of other lengths keep the prompt length.
        let long = template.call(Arc::from("r1-123456789"), 1);
        let body: serde_json::Value = serde_json::from_slice(&long.body).unwrap();
        assert_eq!(body["messages"][1]["content"].as_str().unwrap().chars().count(), 120);
    }

    #[test]
    fn body_without_options() {
        let mut plain = entry(false);
        plain.system = None;
        plain.max_tokens = None;
        plain.tools = true;
        plain.prompt_chars = 3;
        let call = Template::new(0, &plain).call(Arc::from("r0-0"), 0);
        let body: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(body["messages"].as_array().unwrap().len(), 1);
        // Shorter than the nonce: the nonce alone.
        assert_eq!(body["messages"][0]["content"], "[gauntlet:r0-0]");
        assert_eq!(body["stream"], false);
        assert!(body.get("stream_options").is_none() && body.get("max_tokens").is_none());
        assert_eq!(body["tools"][0]["function"]["name"], TOOL_NAME);
        assert_eq!(body["tools"][0]["function"]["parameters"]["type"], "object");
    }

    #[test]
    fn a_messages_body_is_what_claude_code_sends() {
        let mut messages = entry(true);
        messages.api = Api::Messages;
        messages.tools = true;
        let template = Template::new(1, &messages);
        let call = template.call(Arc::from("r2-7"), 0);
        assert_eq!(call.api, Api::Messages);
        let body: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(body["model"], "vendor/model \"q\"");
        assert_eq!(body["max_tokens"], 32);
        assert_eq!(body["system"], "be brief\n");
        assert_eq!(body["messages"].as_array().unwrap().len(), 1);
        assert_eq!(body["messages"][0]["role"], "user");
        let prompt = body["messages"][0]["content"].as_str().unwrap();
        assert_eq!(prompt.chars().count(), 120);
        assert_eq!(mock_providers::tokens::find_nonce(prompt), Some("r2-7"));
        assert_eq!(body["stream"], true);
        assert!(body.get("stream_options").is_none());
        assert_eq!(body["tools"][0]["name"], TOOL_NAME);
        assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
        let (name, value) = call.auth.clone().unwrap();
        assert_eq!((name.as_str(), value.to_str().unwrap()), ("x-api-key", "sk-test"));
        assert!(
            call.headers
                .iter()
                .any(|(n, v)| n == "anthropic-version" && v == "2023-06-01")
        );

        // max_tokens is required by the API: a default when the entry has none.
        messages.max_tokens = None;
        messages.system = None;
        let call = Template::new(1, &messages).call(Arc::from("r2-8"), 0);
        let body: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(body["max_tokens"], MESSAGES_MAX_TOKENS);
        assert!(body.get("system").is_none());

        // Claude Code's caching marks: the system prompt as a block, the tool.
        messages.system = Some("be brief".into());
        messages.cache_control = true;
        let call = Template::new(1, &messages).call(Arc::from("r2-9"), 0);
        let body: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(body["system"][0]["text"], "be brief");
        assert_eq!(body["system"][0]["cache_control"]["type"], "ephemeral");
        assert_eq!(body["tools"][0]["cache_control"]["type"], "ephemeral");
    }
}
