//! Server-sent events: the [`SseFramer`] that splits a body into the `data`
//! of its events however the bytes arrive, and the reader that applies each
//! event to the record, timestamped as it arrived.

use super::answer::{Payload, add_tool_deltas, brief, error_text, set_text};
use crate::load::record::{Outcome, RequestRecord};

/// The bound on one server-sent event (its unterminated line and its data).
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// What a stream has shown so far, beyond what the record holds.
#[derive(Debug, Default)]
pub(super) struct StreamReader {
    done: bool,
    /// The first error chunk's message or malformed chunk, if any.
    problem: Option<String>,
}

impl StreamReader {
    /// One event's `data`, arrived at `at_us`.
    pub(super) fn event(&mut self, data: &[u8], at_us: u64, record: &mut RequestRecord) {
        record.chunks = record.chunks.saturating_add(1);
        if self.done {
            return;
        }
        if data == b"[DONE]" {
            self.done = true;
            record.conformance.done = true;
            return;
        }
        let chunk = match serde_json::from_slice::<Payload<'_>>(data) {
            Ok(chunk) => chunk,
            Err(e) => {
                record.conformance.usage_last = false;
                if record.conformance.usage_chunks > 0 {
                    record.conformance.chunks_after_usage = record.conformance.chunks_after_usage.saturating_add(1);
                }
                self.problem
                    .get_or_insert_with(|| brief(&format!("a malformed chunk: {e}")));
                return;
            }
        };
        let facts = &mut record.conformance;
        if let Some(error) = chunk.error {
            facts.error_chunk |= error.get().starts_with('{');
            self.problem.get_or_insert_with(|| brief(&error_text(error)));
        }
        if chunk.usage.is_some() {
            facts.usage_chunks = facts.usage_chunks.saturating_add(1);
            facts.chunks_after_usage = 0;
            facts.usage_choices = chunk
                .choices
                .as_ref()
                .map(|c| u32::try_from(c.count).unwrap_or(u32::MAX));
        } else if facts.usage_chunks > 0 {
            facts.chunks_after_usage = facts.chunks_after_usage.saturating_add(1);
        }
        facts.usage_last = chunk.usage.is_some() && chunk.choices.as_ref().is_some_and(|c| c.count == 0);
        if let Some(choices) = &chunk.choices {
            if let Some(reason) = &choices.last_finish {
                set_text(&mut facts.finish_reason, reason);
            }
            if let Some(delta) = &choices.delta {
                facts.content_chars = facts.content_chars.saturating_add(delta.content_chars());
                if let Some(tool_calls) = delta.tool_calls {
                    add_tool_deltas(tool_calls, &mut facts.tool_call);
                }
                if delta.has_content() {
                    content_at(record, at_us);
                }
            }
        }
        chunk.apply(record);
    }

    /// The outcome of a stream that ended cleanly; `partial` when it ended
    /// inside an event.
    pub(super) fn finish(self, partial: bool) -> (Outcome, Option<String>) {
        match (self.problem, self.done) {
            (Some(problem), _) => (Outcome::StreamError, Some(problem)),
            (None, true) => (Outcome::Ok, None),
            (None, false) if partial => (
                Outcome::StreamError,
                Some("the stream ended inside an event, without [DONE]".to_owned()),
            ),
            (None, false) => (Outcome::StreamError, Some("the stream ended without [DONE]".to_owned())),
        }
    }
}

/// Records a chunk that carried content, arrived at `at_us`: counted, the
/// first content's time, and its offset from the send.
pub(super) fn content_at(record: &mut RequestRecord, at_us: u64) {
    record.content_chunks = record.content_chunks.saturating_add(1);
    record.first_content_us.get_or_insert(at_us);
    let offset = at_us.saturating_sub(record.sent_us);
    record
        .content_offsets_us
        .push(u32::try_from(offset).unwrap_or(u32::MAX));
}

/// A server-sent event stream split into the `data` of its events, fed the
/// body's bytes as they arrive and split anywhere.
///
/// Lines end with LF or CRLF; a blank line ends an event; `data:` lines (with
/// or without a space after the colon) are joined with `\n`; comment lines
/// (`: …`) and other fields are skipped (comments are counted); an event
/// without data is not dispatched. The unterminated line plus the pending data are bounded by
/// [`MAX_EVENT_BYTES`].
#[derive(Debug, Default)]
pub struct SseFramer {
    /// Bytes of a line not terminated yet.
    pending: Vec<u8>,
    /// The data of the event being read.
    data: Vec<u8>,
    has_data: bool,
    /// Comment lines seen.
    comments: u32,
}

/// An event larger than [`MAX_EVENT_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTooLarge;

impl SseFramer {
    /// Feeds `bytes`, calling `on_data` with the data of each event they complete.
    pub fn push(&mut self, bytes: &[u8], mut on_data: impl FnMut(&[u8])) -> Result<(), EventTooLarge> {
        let mut bytes = bytes;
        if !self.pending.is_empty() {
            match bytes.iter().position(|&b| b == b'\n') {
                None => {
                    self.pending.extend_from_slice(bytes);
                    bytes = &[];
                }
                Some(end) => {
                    let mut line = std::mem::take(&mut self.pending);
                    line.extend_from_slice(&bytes[..end]);
                    self.line(&line, &mut on_data);
                    line.clear();
                    self.pending = line;
                    bytes = &bytes[end + 1..];
                }
            }
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            self.line(&bytes[..end], &mut on_data);
            bytes = &bytes[end + 1..];
        }
        self.pending.extend_from_slice(bytes);
        if self.pending.len() + self.data.len() > MAX_EVENT_BYTES {
            return Err(EventTooLarge);
        }
        Ok(())
    }

    /// Comment lines (`: PROCESSING` keep-alives) seen so far.
    pub fn comments(&self) -> u32 {
        self.comments
    }

    /// Whether an event has begun and not ended.
    pub fn has_partial(&self) -> bool {
        self.has_data || !self.pending.is_empty()
    }

    fn line(&mut self, line: &[u8], on_data: &mut impl FnMut(&[u8])) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.has_data {
                on_data(&self.data);
                self.data.clear();
                self.has_data = false;
            }
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => {
                self.comments = self.comments.saturating_add(1);
                return;
            }
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        if field == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::load::client::blank_record;
    use crate::load::record::ToolCall;

    fn events(chunks: &[&[u8]]) -> Vec<String> {
        let mut framer = SseFramer::default();
        let mut out = Vec::new();
        for chunk in chunks {
            framer
                .push(chunk, |data| out.push(String::from_utf8_lossy(data).into_owned()))
                .unwrap();
        }
        out
    }
    #[test]
    fn framer_splits_anywhere() {
        let stream: &[u8] = b": PROCESSING\n\ndata: {\"a\":1}\r\n\r\ndata:{\"b\":2}\n\nevent: x\ndata: one\ndata: two\n\nid: 7\n\ndata: [DONE]\n\n";
        let expected = vec!["{\"a\":1}", "{\"b\":2}", "one\ntwo", "[DONE]"];
        assert_eq!(events(&[stream]), expected);
        for split in 0..stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(events(&[a, b]), expected, "split at {split}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(events(&bytes), expected);
    }

    #[test]
    fn framer_reports_partial_and_oversized_events() {
        let mut framer = SseFramer::default();
        framer.push(b"data: {\"a\"", |_| panic!("not complete")).unwrap();
        assert!(framer.has_partial());
        let mut big = SseFramer::default();
        let line = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert_eq!(big.push(&line, |_| {}), Err(EventTooLarge));
    }

    fn read(events: &[&str]) -> (RequestRecord, Outcome, Option<String>) {
        let mut record = blank_record(Arc::from("r0-0"), 0, 0, true, 1_000, 1_000, Outcome::Timeout);
        let mut reader = StreamReader::default();
        for (i, event) in events.iter().enumerate() {
            reader.event(event.as_bytes(), 2_000 + 100 * i as u64, &mut record);
        }
        let (outcome, error) = reader.finish(false);
        (record, outcome, error)
    }

    #[test]
    fn stream_chunks_are_classified() {
        let (record, outcome, error) = read(&[
            r#"{"model":"m1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"model":"m1","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4},"cost":0.0000150}}"#,
            "[DONE]",
        ]);
        assert_eq!((outcome, error), (Outcome::Ok, None));
        assert_eq!(record.chunks, 7);
        assert_eq!(record.content_chunks, 2);
        assert_eq!(record.content_offsets_us, vec![1_100, 1_200]);
        assert_eq!(record.first_content_us, Some(2_100));
        assert_eq!(record.model.as_deref(), Some("m1"));
        assert_eq!(
            (record.prompt_tokens, record.completion_tokens, record.cached_tokens),
            (Some(10), Some(2), Some(4))
        );
        assert_eq!(record.cost.as_deref(), Some("0.0000150"));
        let facts = &record.conformance;
        assert_eq!((facts.usage_chunks, facts.usage_last, facts.done), (1, true, true));
        assert_eq!(
            (facts.finish_reason.as_deref(), facts.error_chunk),
            (Some("stop"), false)
        );
        assert_eq!(facts.content_chars, 2);
        assert_eq!(
            facts.tool_call,
            Some(ToolCall {
                name: String::new(),
                arguments: "{".into()
            })
        );
    }

    #[test]
    fn usage_and_model_come_from_the_usage_chunk() {
        let (record, outcome, _) = read(&[
            r#"{"model":"early","choices":[{"delta":{"content":"a"}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"cost":1}}"#,
            r#"{"model":"served","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":2}}"#,
            "[DONE]",
        ]);
        assert_eq!(outcome, Outcome::Ok);
        assert_eq!(record.model.as_deref(), Some("served"));
        assert_eq!((record.prompt_tokens, record.completion_tokens), (Some(10), Some(2)));
        // The last usage says no cost: none, not the earlier one's.
        assert_eq!(record.cost, None);
        assert_eq!(
            (record.conformance.usage_chunks, record.conformance.usage_last),
            (2, true)
        );

        // Usage beside a choice, then a content chunk last: not last.
        let (record, _, _) = read(&[
            r#"{"choices":[{"delta":{},"finish_reason":"length"}],"usage":{"completion_tokens":2}}"#,
            r#"{"choices":[{"delta":{"content":"late"}}]}"#,
            "[DONE]",
            r#"{"choices":[],"usage":{"completion_tokens":9}}"#,
        ]);
        assert_eq!(record.completion_tokens, Some(2));
        assert_eq!(
            (record.conformance.usage_chunks, record.conformance.usage_last),
            (1, false)
        );
        // What was wrong with it: one chunk after it, and one choice in it.
        assert_eq!(
            (record.conformance.chunks_after_usage, record.conformance.usage_choices),
            (1, Some(1))
        );
        assert_eq!(record.conformance.finish_reason.as_deref(), Some("length"));
    }
    #[test]
    fn stream_failures_are_classified() {
        let content = r#"{"choices":[{"delta":{"content":"a"}}]}"#;
        let (record, outcome, error) = read(&[
            content,
            r#"{"error":{"message":"upstream died","code":502},"choices":[{"delta":{},"finish_reason":"error"}]}"#,
            "[DONE]",
        ]);
        assert_eq!(
            (outcome, error.as_deref()),
            (Outcome::StreamError, Some("upstream died"))
        );
        assert_eq!(record.content_chunks, 1);
        let facts = &record.conformance;
        assert!(facts.error_chunk && facts.done && !facts.usage_last);
        assert_eq!(facts.finish_reason.as_deref(), Some("error"));

        // An `error` that is not an object is a problem, not an error chunk.
        let (record, outcome, _) = read(&[r#"{"error":"odd"}"#, "[DONE]"]);
        assert_eq!((outcome, record.conformance.error_chunk), (Outcome::StreamError, false));

        let (_, outcome, error) = read(&[content]);
        assert_eq!(outcome, Outcome::StreamError);
        assert!(error.unwrap().contains("[DONE]"));

        let (_, outcome, error) = read(&[content, "{\"choices\":[{\"delta\":{\"content\":\"tr", "[DONE]"]);
        assert_eq!(outcome, Outcome::StreamError);
        assert!(error.unwrap().starts_with("a malformed chunk"));
    }
}
