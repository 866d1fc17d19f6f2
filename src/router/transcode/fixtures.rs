//! Upstream byte streams in the shape of the mock providers' output, and
//! helpers that run them through a translator and read the router's frames.

use std::collections::BTreeMap;

use bytes::BytesMut;
use serde_json::{Value, json};

use super::{Step, StreamTranslator, TranscodeError, UpstreamUsage, UsageReport, write_error_chunk};
pub(super) use crate::router::config::Dialect;
use crate::router::pricing::Picodollars;
use crate::router::sse::{SseItem, SseParser};

pub(super) const GEN: &str = "gen-123";
pub(super) const MODEL: &str = "openai/gpt-4o-mini";
pub(super) const CREATED: u64 = 1_760_000_000;

/// One chunk the way the mock's OpenAI dialect writes it (with
/// `include_usage`, so `"usage":null` on every content chunk).
pub(super) fn oa(choices: &str, usage: &str) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-up\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\
             \"system_fingerprint\":\"fp_gauntlet\",\"choices\":[{choices}],\"usage\":{usage}}}\n\n"
    )
}

pub(super) fn oa_delta(delta: &str, finish: &str) -> String {
    oa(
        &format!("{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}"),
        "null",
    )
}

pub(super) const OA_USAGE: &str = "{\"completion_tokens\":3,\"completion_tokens_details\":{\"accepted_prediction_tokens\":0,\
        \"audio_tokens\":0,\"reasoning_tokens\":1,\"rejected_prediction_tokens\":0},\"prompt_tokens\":100,\
        \"prompt_tokens_details\":{\"audio_tokens\":0,\"cached_tokens\":60},\"total_tokens\":103}";

pub(super) fn openai_text_stream() -> String {
    [
        oa_delta("{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}", "null"),
        oa_delta("{\"content\":\" the\"}", "null"),
        oa_delta("{\"content\":\" \\\"quoted\\\"\"}", "null"),
        oa_delta("{\"content\":\" 東京\\n\"}", "null"),
        oa_delta("{}", "\"stop\""),
        oa("", OA_USAGE),
        "data: [DONE]\n\n".to_string(),
    ]
    .concat()
}

pub(super) fn openai_tool_stream() -> String {
    [
            oa_delta("{\"role\":\"assistant\",\"content\":null,\"refusal\":null}", "null"),
            oa_delta(
                "{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\"}}]}",
                "null",
            ),
            oa_delta("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\":\\\"Par\"}}]}", "null"),
            oa_delta("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"is 東京\\\"}\"}}]}", "null"),
            oa_delta("{}", "\"tool_calls\""),
            oa("", OA_USAGE),
            "data: [DONE]\n\n".to_string(),
        ]
        .concat()
}

pub(super) fn ev(name: &str, data: &str) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

pub(super) const AN_START: &str = "{\"message\":{\"content\":[],\"id\":\"msg_up\",\"model\":\"claude-x\",\"role\":\"assistant\",\
        \"stop_reason\":null,\"stop_sequence\":null,\"type\":\"message\",\"usage\":{\"cache_creation_input_tokens\":0,\
        \"cache_read_input_tokens\":60,\"input_tokens\":40,\"output_tokens\":1}},\"type\":\"message_start\"}";

pub(super) fn an_text(text: &str) -> String {
    ev(
        "content_block_delta",
        &format!(
            "{{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{text}}}}}"
        ),
    )
}

pub(super) fn an_tail(stop_reason: &str, output_tokens: u64) -> String {
    [
        ev("content_block_stop", "{\"index\":0,\"type\":\"content_block_stop\"}"),
        ev(
            "message_delta",
            &format!(
                "{{\"delta\":{{\"stop_reason\":\"{stop_reason}\",\"stop_sequence\":null}},\"type\":\"message_delta\",\
                 \"usage\":{{\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":60,\"input_tokens\":40,\
                 \"output_tokens\":{output_tokens}}}}}"
            ),
        ),
        ev("message_stop", "{\"type\":\"message_stop\"}"),
    ]
    .concat()
}

pub(super) fn anthropic_text_stream() -> String {
    [
        ev("message_start", AN_START),
        ev(
            "content_block_start",
            "{\"content_block\":{\"text\":\"\",\"type\":\"text\"},\"index\":0,\"type\":\"content_block_start\"}",
        ),
        "event: ping\ndata: {\"type\": \"ping\"}\n\n".to_string(),
        an_text("\" the\""),
        an_text("\" \\\"quoted\\\"\""),
        an_text("\" 東京\\n\""),
        an_tail("end_turn", 3),
    ]
    .concat()
}

pub(super) fn an_json(piece: &str) -> String {
    ev(
        "content_block_delta",
        &format!(
            "{{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":{piece}}}}}"
        ),
    )
}

pub(super) fn anthropic_tool_stream() -> String {
    [
            ev("message_start", AN_START),
            ev("content_block_start", "{\"content_block\":{\"id\":\"call_1\",\"input\":{},\"name\":\"get_weather\",\"type\":\"tool_use\"},\"index\":0,\"type\":\"content_block_start\"}"),
            "event: ping\ndata: {\"type\": \"ping\"}\n\n".to_string(),
            an_json("\"{\\\"city\""),
            an_json("\"\\\":\\\"Par\""),
            an_json("\"is 東京\\\"}\""),
            an_tail("tool_use", 3),
        ]
        .concat()
}

/// Feeds `bytes` through a parser and the translator, `step` bytes at a
/// time, and ends the body if the stream has not ended. Returns the output
/// and the last answer of the translator.
pub(super) fn run(
    translator: &mut StreamTranslator,
    bytes: &[u8],
    step: usize,
) -> (String, Result<Step, TranscodeError>) {
    let mut parser = SseParser::new();
    let mut out = BytesMut::new();
    let mut last = Ok(Step::Continue);
    for piece in bytes.chunks(step.max(1)) {
        parser.push(piece).unwrap();
        while let Some(event) = parser.next_event() {
            last = translator.on_event(&event, &mut out);
        }
    }
    if !translator.is_ended() {
        last = translator.on_end_of_body();
    }
    (String::from_utf8(out.to_vec()).unwrap(), last)
}

/// The JSON of each `data:` frame of the router's output.
pub(super) fn frames(out: &str) -> Vec<Value> {
    let mut parser = SseParser::new();
    parser.push(out.as_bytes()).unwrap();
    let mut frames = Vec::new();
    while let Some(item) = parser.next_item() {
        let SseItem::Event(event) = item else {
            panic!("unexpected comment")
        };
        assert_eq!(event.event, None);
        frames.push(serde_json::from_str(&event.data).unwrap());
    }
    assert!(!parser.has_partial_event(), "every frame is complete");
    frames
}

#[derive(Debug, Default, PartialEq)]
pub(super) struct Reassembled {
    pub(super) role: Option<String>,
    pub(super) content: String,
    /// OpenAI index → (id, name, arguments).
    pub(super) tools: BTreeMap<u64, (String, String, String)>,
    pub(super) finish: Vec<String>,
}

/// What an OpenAI client rebuilds from the chunks; checks every chunk's
/// identity on the way.
pub(super) fn reassemble(frames: &[Value]) -> Reassembled {
    let mut r = Reassembled::default();
    for frame in frames {
        assert_eq!(frame["id"], GEN);
        assert_eq!(frame["object"], "chat.completion.chunk");
        assert_eq!(frame["created"], CREATED);
        assert_eq!(frame["model"], MODEL);
        assert!(frame.get("usage").is_none(), "no usage from the translator: {frame}");
        let choice = &frame["choices"][0];
        let delta = &choice["delta"];
        if let Some(role) = delta["role"].as_str() {
            r.role = Some(role.into());
        }
        r.content.push_str(delta["content"].as_str().unwrap_or_default());
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let entry = r.tools.entry(call["index"].as_u64().unwrap()).or_default();
            if let Some(id) = call["id"].as_str() {
                entry.0 = id.into();
            }
            if let Some(name) = call["function"]["name"].as_str() {
                entry.1 = name.into();
            }
            entry
                .2
                .push_str(call["function"]["arguments"].as_str().unwrap_or_default());
        }
        if let Some(finish) = choice["finish_reason"].as_str() {
            r.finish.push(finish.into());
        }
    }
    r
}

pub(super) fn report(cost: Picodollars) -> UsageReport {
    UsageReport {
        usage: UpstreamUsage::from_openai(100, 60, 10, 4),
        cost,
        upstream_cost: cost,
        is_byok: false,
    }
}

/// The router's error chunk for a failure, as JSON.
pub(super) fn error_frame(error: &TranscodeError) -> Value {
    let mut out = BytesMut::new();
    write_error_chunk(&mut out, GEN, MODEL, CREATED, &error.to_string());
    frames(std::str::from_utf8(&out).unwrap()).remove(0)
}

pub(super) fn anthropic_message() -> Value {
    json!({
        "id": "msg_up", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [
            {"type": "text", "text": "Let me "},
            {"type": "text", "text": "check."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris 東京"}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 40, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 0, "output_tokens": 10}
    })
}
