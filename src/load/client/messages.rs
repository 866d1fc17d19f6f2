//! Answers of Anthropic's Messages API read into a [`RequestRecord`]: a
//! whole message, and the events of a streamed one, timestamped as they
//! arrive. The record's fields keep their chat-completion meaning, so every
//! check reads a Messages answer as it reads a chat completion:
//!
//! - `prompt_tokens` is `input_tokens` plus the cache reads and writes
//!   (Anthropic counts them apart; OpenAI's `prompt_tokens` includes them);
//!   `cached_tokens` is `cache_read_input_tokens`, the cache writes are
//!   `cache_creation_input_tokens`;
//! - the finish reason is the `stop_reason` in OpenAI's words (`end_turn` and
//!   `stop_sequence` are `stop`, `max_tokens` is `length`, `tool_use` is
//!   `tool_calls`; any other is kept as written);
//! - the first content is the first `text_delta` or `input_json_delta` (the
//!   time to first token);
//! - the stream is done at `message_stop`, its usage is in `message_delta`.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::answer::{brief, error_text, raw_number, set_text};
use super::sse::content_at;
use crate::load::record::{RequestRecord, ToolCall};

/// A Messages usage object (`message_start`'s, `message_delta`'s or a whole
/// message's).
#[derive(Debug, Default, Deserialize)]
struct Usage<'a> {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    /// A router's charge, where it writes one into the usage.
    #[serde(default, borrow)]
    cost: Option<&'a RawValue>,
}

/// The usage a message has reported so far: each field the last value
/// reported (`message_delta`'s counts are cumulative).
#[derive(Debug, Default)]
struct Tally {
    input: Option<u64>,
    output: Option<u64>,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
}

impl Tally {
    fn add(&mut self, usage: &Usage<'_>, record: &mut RequestRecord) {
        self.input = usage.input_tokens.or(self.input);
        self.output = usage.output_tokens.or(self.output);
        self.cache_read = usage.cache_read_input_tokens.or(self.cache_read);
        self.cache_write = usage.cache_creation_input_tokens.or(self.cache_write);
        record.prompt_tokens = self.input.map(|input| {
            input
                .saturating_add(self.cache_read.unwrap_or(0))
                .saturating_add(self.cache_write.unwrap_or(0))
        });
        record.completion_tokens = self.output;
        record.cached_tokens = self.cache_read;
        record.conformance.cache_write_tokens = self.cache_write;
        if let Some(cost) = usage.cost {
            record.cost = Some(raw_number(cost));
        }
    }
}

/// A `stop_reason` in OpenAI's words.
pub(super) fn finish_reason(stop_reason: &str) -> &str {
    match stop_reason {
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        other => other,
    }
}

/// A content block: of a whole message, or `content_block_start`'s.
#[derive(Debug, Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    input: Option<&'a RawValue>,
}

/// A whole message (or an error body that came with a 2xx).
#[derive(Debug, Deserialize)]
pub(super) struct Whole<'a> {
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    content: Vec<Block<'a>>,
    #[serde(default, borrow)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    usage: Option<Usage<'a>>,
    #[serde(default, borrow)]
    pub(super) error: Option<&'a RawValue>,
}

impl Whole<'_> {
    pub(super) fn apply(&self, record: &mut RequestRecord) {
        if let Some(model) = &self.model {
            set_text(&mut record.model, model);
        }
        if let Some(usage) = &self.usage {
            Tally::default().add(usage, record);
        }
        let facts = &mut record.conformance;
        if let Some(reason) = &self.stop_reason {
            set_text(&mut facts.finish_reason, finish_reason(reason));
        }
        let mut chars = 0usize;
        for block in &self.content {
            match block.kind.as_ref() {
                "text" => chars += block.text.as_deref().map_or(0, |t| t.chars().count()),
                "tool_use" if facts.tool_call.is_none() => {
                    facts.tool_call = Some(ToolCall {
                        name: block.name.as_deref().unwrap_or_default().to_owned(),
                        arguments: block.input.map(|i| i.get().to_owned()).unwrap_or_default(),
                    });
                }
                _ => {}
            }
        }
        facts.content_chars = u32::try_from(chars).unwrap_or(u32::MAX);
    }
}

/// One streamed event's `data` (its `type` says which event it is; the
/// `event:` line says the same and is not needed).
#[derive(Debug, Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    /// `message_start`'s message.
    #[serde(default, borrow)]
    message: Option<StartMessage<'a>>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    content_block: Option<Block<'a>>,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    usage: Option<Usage<'a>>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
struct StartMessage<'a> {
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    usage: Option<Usage<'a>>,
}

/// `content_block_delta`'s or `message_delta`'s `delta`.
#[derive(Debug, Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    stop_reason: Option<Cow<'a, str>>,
}

/// Where a Messages stream is in Anthropic's event sequence.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Nothing yet: `message_start` comes first.
    #[default]
    Start,
    /// Between content blocks; `next` is the next block's index.
    Between { next: u64 },
    /// Inside block `index`.
    Block { index: u64 },
    /// After `message_delta`: only `message_stop` is left.
    Delta,
}

impl Step {
    /// The step after event `kind` (of block `index`), or what is wrong.
    fn after(self, kind: &str, index: Option<u64>) -> Result<Step, String> {
        let unexpected = |wanted: &str| Err(format!("{kind} came where {wanted} was due"));
        match (self, kind) {
            (Step::Start, "message_start") => Ok(Step::Between { next: 0 }),
            (Step::Start, _) => unexpected("message_start"),
            (step, "ping") => Ok(step),
            (Step::Between { next }, "content_block_start") if index == Some(next) => Ok(Step::Block { index: next }),
            (Step::Between { next }, "content_block_start") => Err(format!(
                "content_block_start had index {}, not the next one, {next}",
                index.map_or("none".into(), |i| i.to_string())
            )),
            (Step::Between { .. }, "message_delta") => Ok(Step::Delta),
            (Step::Between { .. }, _) => unexpected("content_block_start or message_delta"),
            (Step::Block { index: open }, "content_block_delta") if index == Some(open) => Ok(self),
            (Step::Block { index: open }, "content_block_stop") if index == Some(open) => {
                Ok(Step::Between { next: open + 1 })
            }
            (Step::Block { index: open }, _) => unexpected(&format!("block {open}'s delta or content_block_stop")),
            (Step::Delta, "message_stop") => Ok(Step::Delta),
            (Step::Delta, _) => unexpected("message_stop"),
        }
    }
}

/// What a Messages stream has shown so far, beyond what the record holds.
#[derive(Debug, Default)]
pub(super) struct MessagesReader {
    step: Step,
    /// `message_stop` came.
    done: bool,
    /// The first error event's message or malformed event, if any.
    problem: Option<String>,
    /// The index of the first `tool_use` block, whose input is the tool call.
    tool_block: Option<u64>,
    tally: Tally,
}

impl MessagesReader {
    /// One event's `data`, arrived at `at_us`.
    pub(super) fn event(&mut self, data: &[u8], at_us: u64, record: &mut RequestRecord) {
        record.chunks = record.chunks.saturating_add(1);
        if self.done {
            return;
        }
        let event = match serde_json::from_slice::<Event<'_>>(data) {
            Ok(event) => event,
            Err(e) => {
                self.after_usage(record);
                self.problem
                    .get_or_insert_with(|| brief(&format!("a malformed event: {e}")));
                return;
            }
        };
        if record.conformance.event_sequence.is_none() && event.kind != "error" {
            match self.step.after(&event.kind, event.index) {
                Ok(step) => self.step = step,
                Err(problem) => record.conformance.event_sequence = Some(brief(&problem)),
            }
        }
        match event.kind.as_ref() {
            "message_stop" => {
                self.done = true;
                record.conformance.done = true;
            }
            "ping" => {}
            "message_start" => {
                self.after_usage(record);
                if let Some(message) = &event.message {
                    if let Some(model) = &message.model {
                        set_text(&mut record.model, model);
                    }
                    if let Some(usage) = &message.usage {
                        self.tally.add(usage, record);
                    }
                }
            }
            "content_block_start" => {
                self.after_usage(record);
                if let Some(block) = &event.content_block
                    && block.kind == "tool_use"
                    && record.conformance.tool_call.is_none()
                {
                    self.tool_block = event.index;
                    record.conformance.tool_call = Some(ToolCall {
                        name: block.name.as_deref().unwrap_or_default().to_owned(),
                        arguments: String::new(),
                    });
                }
            }
            "content_block_delta" => {
                self.after_usage(record);
                let Some(delta) = &event.delta else { return };
                let text = delta.text.as_deref().unwrap_or_default();
                let json = delta.partial_json.as_deref().unwrap_or_default();
                let facts = &mut record.conformance;
                let chars = u32::try_from(text.chars().count()).unwrap_or(u32::MAX);
                facts.content_chars = facts.content_chars.saturating_add(chars);
                if !json.is_empty()
                    && event.index == self.tool_block
                    && let Some(call) = &mut facts.tool_call
                {
                    call.arguments.push_str(json);
                }
                if !text.is_empty() || !json.is_empty() {
                    content_at(record, at_us);
                }
            }
            "message_delta" => {
                if let Some(reason) = event.delta.as_ref().and_then(|d| d.stop_reason.as_deref()) {
                    set_text(&mut record.conformance.finish_reason, finish_reason(reason));
                }
                match &event.usage {
                    Some(usage) => {
                        self.tally.add(usage, record);
                        let facts = &mut record.conformance;
                        facts.usage_chunks = facts.usage_chunks.saturating_add(1);
                        facts.chunks_after_usage = 0;
                        facts.usage_last = true;
                    }
                    None => self.after_usage(record),
                }
            }
            "error" => {
                self.after_usage(record);
                record.conformance.error_chunk = true;
                let message = event.error.map_or_else(|| "an error event".to_owned(), error_text);
                self.problem.get_or_insert_with(|| brief(&message));
            }
            _ => self.after_usage(record),
        }
    }

    /// An event other than `message_stop` after the usage: the usage is not
    /// the last thing the stream said.
    fn after_usage(&self, record: &mut RequestRecord) {
        let facts = &mut record.conformance;
        facts.usage_last = false;
        if facts.usage_chunks > 0 {
            facts.chunks_after_usage = facts.chunks_after_usage.saturating_add(1);
        }
    }

    /// What the stream's end makes of it; `partial` when it ended inside an
    /// event.
    pub(super) fn finish(self, partial: bool) -> (bool, Option<String>) {
        match (self.problem, self.done) {
            (Some(problem), _) => (false, Some(problem)),
            (None, true) => (true, None),
            (None, false) if partial => (
                false,
                Some("the stream ended inside an event, without message_stop".into()),
            ),
            (None, false) => (false, Some("the stream ended without message_stop".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::load::client::blank_record;
    use crate::load::record::Outcome;

    fn record() -> RequestRecord {
        blank_record(Arc::from("r"), 0, 0, true, 0, 100, Outcome::Timeout)
    }

    const STREAM: [&str; 11] = [
        r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"usage":{"input_tokens":10,"output_tokens":1,"cache_read_input_tokens":100,"cache_creation_input_tokens":20}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"ping"}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"héllo"}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}"#,
        r#"{"type":"content_block_stop","index":1}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":7}}"#,
        r#"{"type":"message_stop"}"#,
    ];

    #[test]
    fn a_stream_is_read_event_by_event() {
        let mut r = record();
        let mut reader = MessagesReader::default();
        for (at, event) in (200..).step_by(10).zip(STREAM) {
            reader.event(event.as_bytes(), at, &mut r);
        }
        assert_eq!(reader.finish(false), (true, None));
        assert_eq!(r.model.as_deref(), Some("claude-x"));
        assert_eq!(
            (r.prompt_tokens, r.completion_tokens, r.cached_tokens),
            (Some(130), Some(7), Some(100))
        );
        let facts = &r.conformance;
        assert_eq!(facts.cache_write_tokens, Some(20));
        assert_eq!(facts.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(facts.content_chars, 5);
        assert!(facts.done && facts.usage_last && facts.usage_chunks == 1 && facts.chunks_after_usage == 0);
        let call = facts.tool_call.clone().unwrap();
        assert_eq!(
            (call.name.as_str(), call.arguments.as_str()),
            ("get_weather", r#"{"city":"Paris"}"#)
        );
        // The first text delta is the first content; three deltas in all.
        assert_eq!(r.first_content_us, Some(230));
        assert_eq!(r.content_chunks, 3);
        assert_eq!(r.content_offsets_us, vec![130, 160, 170]);
        assert_eq!(r.chunks, 11);
        assert_eq!(r.conformance.event_sequence, None);
    }

    #[test]
    fn departures_from_the_event_sequence_are_named() {
        let sequence = |events: &[&str]| {
            let mut r = record();
            let mut reader = MessagesReader::default();
            for event in events {
                reader.event(event.as_bytes(), 300, &mut r);
            }
            r.conformance.event_sequence
        };
        // No message_delta: message_stop straight after the blocks.
        let problem = sequence(&[STREAM[0], STREAM[1], STREAM[3], STREAM[4], STREAM[10]]).unwrap();
        assert!(problem.starts_with("message_stop came where"), "{problem}");
        // A block that is never closed before the next opens.
        let problem = sequence(&[STREAM[0], STREAM[1], STREAM[5]]).unwrap();
        assert!(problem.contains("content_block_stop"), "{problem}");
        // Content before message_start.
        let problem = sequence(&[STREAM[1]]).unwrap();
        assert!(problem.contains("message_start was due"), "{problem}");
        // A block index that skips one.
        let problem = sequence(&[STREAM[0], STREAM[5]]).unwrap();
        assert!(problem.contains("index 1, not the next one, 0"), "{problem}");
    }

    #[test]
    fn a_stream_without_message_stop_or_with_an_error_fails() {
        let mut r = record();
        let mut reader = MessagesReader::default();
        for event in &STREAM[..10] {
            reader.event(event.as_bytes(), 300, &mut r);
        }
        assert_eq!(
            reader.finish(false),
            (false, Some("the stream ended without message_stop".to_owned()))
        );

        let mut r = record();
        let mut reader = MessagesReader::default();
        reader.event(STREAM[0].as_bytes(), 300, &mut r);
        reader.event(
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            310,
            &mut r,
        );
        assert_eq!(reader.finish(false), (false, Some("Overloaded".to_owned())));
        assert!(r.conformance.error_chunk);
    }

    #[test]
    fn a_whole_message_is_read() {
        let body = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"It is"},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":4,"cost":0.00012}}"#;
        let mut r = record();
        let whole: Whole<'_> = serde_json::from_str(body).unwrap();
        whole.apply(&mut r);
        assert_eq!(
            (r.prompt_tokens, r.completion_tokens, r.cached_tokens),
            (Some(3), Some(4), None)
        );
        assert_eq!(r.cost.as_deref(), Some("0.00012"));
        assert_eq!(r.conformance.finish_reason.as_deref(), Some("stop"));
        assert_eq!(r.conformance.content_chars, 5);
        assert_eq!(
            r.conformance.tool_call.as_ref().unwrap().arguments,
            r#"{"city":"Paris"}"#
        );
    }
}
