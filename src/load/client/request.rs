//! The request side of the load generator: each mix entry's body built once
//! as a [`Template`], and the [`Call`] it stamps out per request (its nonce
//! spliced in, serialized once into `Bytes`).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};

use crate::load::plan::MixEntry;
use crate::load::record::{Facts, Outcome, RequestRecord};

/// The name of the one tool offered by a mix entry with `tools = true`.
pub const TOOL_NAME: &str = "get_weather";

/// The tool list sent when a mix entry offers tools.
const TOOLS_JSON: &str = r#"[{"type":"function","function":{"name":"get_weather","description":"Current weather for a city.","parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city"]}}}]"#;

/// Prompt filler: plain ASCII words, nothing JSON must escape.
const FILLER: &[u8] = b"Summarise the following notes about load testing in one short paragraph. \
Open loop arrivals keep their schedule whatever the latency; closed loop users wait for each answer \
and then think before they ask again. ";

/// The body of every request of one mix entry, built once, with a gap where
/// each request's nonce goes.
#[derive(Debug, Clone)]
pub struct Template {
    mix: u16,
    stream: bool,
    /// `Bearer KEY`; `None` when the key is not a valid header value (the
    /// request then goes without one and the router should answer 401).
    auth: Option<HeaderValue>,
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
        let quoted = |text: &str| serde_json::Value::from(text).to_string();
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

        let chars = usize::try_from(entry.prompt_chars).unwrap_or(usize::MAX);
        let filler = FILLER.iter().copied().cycle().take(chars).collect();
        let auth = HeaderValue::try_from(format!("Bearer {}", entry.key))
            .ok()
            .map(|mut value| {
                value.set_sensitive(true);
                value
            });
        Template {
            mix: u16::try_from(index).unwrap_or(u16::MAX),
            stream: entry.stream,
            auth,
            head,
            tail,
            filler,
            headers: super::parsed_headers(&entry.headers),
        }
    }

    pub fn stream(&self) -> bool {
        self.stream
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
            stream: self.stream,
            auth: self.auth.clone(),
            headers: Arc::clone(&self.headers),
            body: Bytes::from(body),
        }
    }
}

/// One request, ready to send.
#[derive(Debug, Clone)]
pub struct Call {
    pub id: Arc<str>,
    pub phase: u16,
    pub mix: u16,
    pub stream: bool,
    pub(super) auth: Option<HeaderValue>,
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
            model: "vendor/model \"q\"".into(),
            key: "sk-test".into(),
            stream,
            prompt_chars: 120,
            system: Some("be brief\n".into()),
            max_tokens: Some(32),
            tools: false,
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
}
