//! Server-sent events: an incremental parser for upstream streams (the WHATWG
//! `text/event-stream` grammar) and the writers of the router's own frames.
//!
//! The parser is fed the body's bytes as they arrive, split anywhere (inside
//! a line terminator or a multi-byte character), and hands back whole events
//! and comments (keep-alives). Lines end with CRLF, LF or CR; `data:` lines are joined with
//! `\n`; `id:` and `retry:` are read and ignored; a leading byte-order mark is
//! dropped. An event larger than the parser's limit is an error rather than
//! unbounded buffering.

use std::collections::VecDeque;
use std::mem;

use bytes::BufMut;

/// The default bound on one event (its unterminated line, data and name).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// The frame that ends an OpenAI-dialect stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// The `data` of the frame that ends an OpenAI-dialect stream.
pub const DONE_DATA: &str = "[DONE]";

/// The comment the router sends while it waits for the first token.
pub const KEEP_ALIVE: &str = "PROCESSING";

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `None` when absent or empty (the type `message`).
    pub event: Option<String>,
    /// The `data:` lines, joined by `\n`.
    pub data: String,
}

impl SseEvent {
    /// The event type: its `event:` field, else `message`.
    pub fn kind(&self) -> &str {
        self.event.as_deref().unwrap_or("message")
    }

    /// Whether this is OpenAI's `data: [DONE]` terminator.
    pub fn is_done(&self) -> bool {
        self.data == DONE_DATA
    }
}

/// What the parser hands back: an event, or a comment line (a keep-alive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    Event(SseEvent),
    /// The text after the `:`, less one leading space.
    Comment(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("server-sent event larger than {limit} bytes")]
    EventTooLarge { limit: usize },
}

/// An incremental event-stream parser: [`push`](Self::push) bytes as they
/// arrive, then take the complete events and comments with
/// [`next_item`](Self::next_item).
#[derive(Debug)]
pub struct SseParser {
    /// Received bytes not yet split into lines; those before `start` are consumed.
    buf: Vec<u8>,
    start: usize,
    /// Bytes in `start..scanned` hold no line terminator.
    scanned: usize,
    /// The last line ended with CR, so a LF right after it is part of it.
    after_cr: bool,
    bom_checked: bool,
    pending: Pending,
    items: VecDeque<SseItem>,
    max_event_bytes: usize,
    failed: Option<SseError>,
}

/// The fields of the event being read.
#[derive(Debug, Default)]
struct Pending {
    event: Option<String>,
    data: String,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    /// A parser bounded by [`DEFAULT_MAX_EVENT_BYTES`].
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    pub fn with_max_event_bytes(max_event_bytes: usize) -> Self {
        SseParser {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            after_cr: false,
            bom_checked: false,
            pending: Pending::default(),
            items: VecDeque::new(),
            max_event_bytes,
            failed: None,
        }
    }

    /// Reads received bytes, queueing every event and comment they complete.
    /// An event larger than the bound is an error, and the parser stays
    /// failed (the items queued before it can still be taken).
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        self.buf.extend_from_slice(bytes);
        self.parse()
    }

    /// The next complete event or comment, `None` until more bytes come.
    pub fn next_item(&mut self) -> Option<SseItem> {
        self.items.pop_front()
    }

    /// The next event, skipping comments.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        while let Some(item) = self.items.pop_front() {
            if let SseItem::Event(event) = item {
                return Some(event);
            }
        }
        None
    }

    /// Whether bytes of an unfinished event are held: at the end of the body
    /// they are discarded, as the spec says.
    pub fn has_partial_event(&self) -> bool {
        self.start < self.buf.len() || !self.pending.data.is_empty() || self.pending.event.is_some()
    }

    fn parse(&mut self) -> Result<(), SseError> {
        loop {
            if !self.bom_checked && !self.skip_bom() {
                return Ok(());
            }
            if self.after_cr && self.start < self.buf.len() {
                if self.buf[self.start] == b'\n' {
                    self.start += 1;
                }
                self.after_cr = false;
            }
            let from = self.scanned.max(self.start);
            let Some(offset) = self.buf[from..].iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.scanned = self.buf.len();
                self.compact();
                if self.buf.len() + self.pending.len() > self.max_event_bytes {
                    return Err(self.fail());
                }
                return Ok(());
            };
            let end = from + offset;
            if end - self.start > self.max_event_bytes {
                return Err(self.fail());
            }
            self.after_cr = self.buf[end] == b'\r';
            let line = self.start..end;
            self.start = end + 1;
            let item = self.pending.line(&self.buf[line]);
            if self.pending.len() > self.max_event_bytes {
                return Err(self.fail());
            }
            self.items.extend(item);
        }
    }

    /// Drops a leading byte-order mark; false while too few bytes have come
    /// to tell.
    fn skip_bom(&mut self) -> bool {
        let head = &self.buf[self.start..];
        let n = head.len().min(BOM.len());
        if head[..n] != BOM[..n] {
            self.bom_checked = true;
        } else if n == BOM.len() {
            self.start += n;
            self.bom_checked = true;
        }
        self.bom_checked
    }

    /// Moves the unconsumed tail to the front of the buffer.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
    }

    fn fail(&mut self) -> SseError {
        let error = SseError::EventTooLarge {
            limit: self.max_event_bytes,
        };
        self.buf = Vec::new();
        self.start = 0;
        self.scanned = 0;
        self.pending = Pending::default();
        self.failed = Some(error.clone());
        error
    }
}

impl Pending {
    fn len(&self) -> usize {
        self.data.len() + self.event.as_ref().map_or(0, String::len)
    }

    /// Interprets one line (without its terminator).
    fn line(&mut self, line: &[u8]) -> Option<SseItem> {
        if line.is_empty() {
            return self.dispatch();
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => return Some(SseItem::Comment(text(strip_space(&line[1..])).into_owned())),
            Some(colon) => (&line[..colon], strip_space(&line[colon + 1..])),
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                // One allocation for a one-line event (the buffer was handed
                // out with the last one), rather than one per doubling.
                self.data.reserve(value.len() + 1);
                self.data.push_str(&text(value));
                self.data.push('\n');
            }
            b"event" => self.event = (!value.is_empty()).then(|| text(value).into_owned()),
            // `id`, `retry` and unknown fields carry nothing the router uses.
            _ => {}
        }
        None
    }

    /// A blank line: the event, if it has data.
    fn dispatch(&mut self) -> Option<SseItem> {
        let event = self.event.take();
        if self.data.is_empty() {
            return None;
        }
        self.data.pop();
        Some(SseItem::Event(SseEvent {
            event,
            data: mem::take(&mut self.data),
        }))
    }
}

fn strip_space(value: &[u8]) -> &[u8] {
    value.strip_prefix(b" ").unwrap_or(value)
}

/// UTF-8 with invalid sequences replaced, as the spec's decoder does.
fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Appends `data: {json}\n\n`. The payload must be one line, as compact JSON
/// always is.
pub fn write_data(buf: &mut impl BufMut, json: &[u8]) {
    debug_assert!(!json.contains(&b'\n') && !json.contains(&b'\r'));
    buf.put_slice(b"data: ");
    buf.put_slice(json);
    buf.put_slice(b"\n\n");
}

/// Appends a comment (`: text`), one comment line per line of `text`, then a
/// blank line so that clients reading whole frames see it on its own.
pub fn write_comment(buf: &mut impl BufMut, text: &str) {
    for line in lines(text) {
        buf.put_slice(b": ");
        buf.put_slice(line.as_bytes());
        buf.put_u8(b'\n');
    }
    buf.put_u8(b'\n');
}

/// Appends a whole event: an optional `event:` line, then one `data:` line per
/// line of `data`.
pub fn write_event(buf: &mut impl BufMut, event: Option<&str>, data: &str) {
    if let Some(event) = event {
        buf.put_slice(b"event: ");
        buf.put_slice(lines(event).next().unwrap_or_default().as_bytes());
        buf.put_u8(b'\n');
    }
    for line in lines(data) {
        buf.put_slice(b"data: ");
        buf.put_slice(line.as_bytes());
        buf.put_u8(b'\n');
    }
    buf.put_u8(b'\n');
}

/// Splits at CRLF, LF or CR; an empty text is one empty line.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\r', '\n']) {
            Some(at) => {
                let after = if current[at..].starts_with("\r\n") {
                    at + 2
                } else {
                    at + 1
                };
                rest = Some(&current[after..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn drain(parser: &mut SseParser) -> Vec<SseItem> {
        std::iter::from_fn(|| parser.next_item()).collect()
    }

    fn push_all(parser: &mut SseParser, bytes: &[u8]) -> Vec<SseItem> {
        parser.push(bytes).unwrap();
        drain(parser)
    }

    fn parse(bytes: &[u8]) -> Vec<SseItem> {
        push_all(&mut SseParser::new(), bytes)
    }

    fn event(name: Option<&str>, data: &str) -> SseItem {
        SseItem::Event(SseEvent {
            event: name.map(str::to_string),
            data: data.to_string(),
        })
    }

    #[test]
    fn reads_openai_and_anthropic_frames() {
        let items = parse(
            b": PROCESSING\n\n\
              data: {\"a\":1}\n\n\
              event: message_start\ndata: {\"type\":\"message_start\"}\n\n\
              data: [DONE]\n\n",
        );
        assert_eq!(
            items,
            vec![
                SseItem::Comment("PROCESSING".into()),
                event(None, "{\"a\":1}"),
                event(Some("message_start"), "{\"type\":\"message_start\"}"),
                event(None, "[DONE]"),
            ]
        );
        let SseItem::Event(done) = &items[3] else {
            unreachable!()
        };
        assert!(done.is_done() && done.kind() == "message");
    }

    #[test]
    fn all_line_endings_and_field_forms() {
        let items =
            parse(b"data:no space\r\ndata:  two spaces\rdata\r\n\revent:\nid: 7\nretry: 10\nfoo: bar\ndata: x\n\n");
        assert_eq!(items, vec![event(None, "no space\n two spaces\n"), event(None, "x")]);
    }

    #[test]
    fn blank_lines_without_data_dispatch_nothing() {
        // An `event:` without data is dropped, and its name does not leak.
        assert_eq!(parse(b"\n\nevent: ping\n\ndata: d\n\n"), vec![event(None, "d")]);
        // An empty data line is an event with empty data.
        assert_eq!(parse(b"data:\n\n"), vec![event(None, "")]);
    }

    #[test]
    fn crlf_split_across_pushes_is_one_terminator() {
        let mut parser = SseParser::new();
        assert_eq!(push_all(&mut parser, b"data: a\r"), vec![]);
        assert_eq!(push_all(&mut parser, b"\n\r"), vec![event(None, "a")]);
        assert_eq!(push_all(&mut parser, b"\ndata: b\r\r"), vec![event(None, "b")]);
    }

    #[test]
    fn multibyte_characters_split_anywhere() {
        let whole = "data: 東京 🦀 café\n\n".as_bytes();
        for cut in 0..whole.len() {
            let mut parser = SseParser::new();
            let mut items = push_all(&mut parser, &whole[..cut]);
            items.extend(push_all(&mut parser, &whole[cut..]));
            assert_eq!(items, vec![event(None, "東京 🦀 café")], "cut at {cut}");
        }
    }

    #[test]
    fn bom_is_dropped_once_even_when_split() {
        let mut parser = SseParser::new();
        assert_eq!(push_all(&mut parser, &BOM[..2]), vec![]);
        assert_eq!(push_all(&mut parser, &BOM[2..]), vec![]);
        assert_eq!(
            push_all(&mut parser, b"data: x\n\n\xEF\xBB\xBFdata: y\n\n"),
            vec![event(None, "x")]
        );
        // A second BOM is part of the field name, so that line is ignored.
        assert!(!parser.has_partial_event());
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(parse(b"data: a\xFFb\n\n"), vec![event(None, "a\u{FFFD}b")]);
    }

    #[test]
    fn an_oversized_event_is_an_error_and_stays_one() {
        let mut parser = SseParser::with_max_event_bytes(16);
        assert_eq!(parser.push(b": ok\n\ndata: 0123456789\n"), Ok(()));
        assert_eq!(
            parser.push(b"data: 0123456789\n"),
            Err(SseError::EventTooLarge { limit: 16 })
        );
        assert!(parser.push(b"\n").is_err(), "it stays failed");
        assert_eq!(
            drain(&mut parser),
            vec![SseItem::Comment("ok".into())],
            "what came before is kept"
        );

        // An unterminated line counts too.
        let mut parser = SseParser::with_max_event_bytes(16);
        assert!(parser.push(&[b'x'; 17]).is_err());
        // A whole line longer than the bound, in one push.
        let mut parser = SseParser::with_max_event_bytes(16);
        assert!(parser.push(b": 0123456789abcdefgh\n\n").is_err());
        // Many small events in one push are fine.
        let mut parser = SseParser::with_max_event_bytes(16);
        assert_eq!(push_all(&mut parser, &b"data: 0123456789\n\n".repeat(100)).len(), 100);
    }

    #[test]
    fn partial_events_are_visible_at_end_of_body() {
        let mut parser = SseParser::new();
        assert_eq!(push_all(&mut parser, b"data: {\"cut"), vec![]);
        assert!(parser.has_partial_event());
        assert_eq!(push_all(&mut parser, b"\"}\n"), vec![]);
        assert!(parser.has_partial_event());
        assert_eq!(push_all(&mut parser, b"\n").len(), 1);
        assert!(!parser.has_partial_event());
    }

    #[test]
    fn writers_frame_what_the_parser_reads() {
        let mut buf = Vec::new();
        write_comment(&mut buf, KEEP_ALIVE);
        write_data(&mut buf, b"{\"x\":\"y\"}");
        write_event(&mut buf, Some("error"), "line one\r\nline two");
        buf.put_slice(DONE);
        assert_eq!(
            String::from_utf8_lossy(&buf),
            ": PROCESSING\n\ndata: {\"x\":\"y\"}\n\nevent: error\ndata: line one\ndata: line two\n\ndata: [DONE]\n\n"
        );
        let items = parse(&buf);
        assert_eq!(items.len(), 4);
        assert_eq!(items[2], event(Some("error"), "line one\nline two"));
    }

    #[derive(Debug, Clone)]
    enum Part {
        Event(Option<String>, Vec<String>),
        Comment(String),
        Ignored(String),
    }

    fn one_line() -> impl Strategy<Value = String> {
        prop_oneof![
            "[^\r\n]*",
            // JSON text, where quotes, backslashes and CR travel escaped.
            any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        ]
    }

    fn part() -> impl Strategy<Value = Part> {
        prop_oneof![
            4 => (proptest::option::of("[^\r\n]+"), proptest::collection::vec(one_line(), 1..4))
                .prop_map(|(name, lines)| Part::Event(name, lines)),
            1 => "[^\r\n]*".prop_map(Part::Comment),
            1 => "[^\r\n]*".prop_map(Part::Ignored),
        ]
    }

    proptest! {
        #[test]
        fn serialised_events_parse_back_whatever_the_split(
            parts in proptest::collection::vec(part(), 0..12),
            ending in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut text = String::new();
            let mut expected = Vec::new();
            for part in &parts {
                match part {
                    Part::Event(name, lines) => {
                        if let Some(name) = name {
                            text += &format!("event: {name}{ending}");
                        }
                        for line in lines {
                            text += &format!("data: {line}{ending}");
                        }
                        text += ending;
                        expected.push(event(name.as_deref(), &lines.join("\n")));
                    }
                    Part::Comment(comment) => {
                        text += &format!(": {comment}{ending}");
                        expected.push(SseItem::Comment(comment.clone()));
                    }
                    Part::Ignored(value) => text += &format!("id: {value}{ending}retry: 5{ending}"),
                }
            }
            let bytes = text.as_bytes();
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut parser = SseParser::new();
            let mut items = Vec::new();
            let mut at = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                items.extend(push_all(&mut parser, &bytes[at..cut]));
                at = cut;
            }
            prop_assert_eq!(items, expected);
        }

        #[test]
        fn write_event_round_trips_text_with_line_breaks(
            name in proptest::option::of("[^\r\n]+"),
            data in any::<String>(),
        ) {
            let mut buf = Vec::new();
            write_event(&mut buf, name.as_deref(), &data);
            let normalised = data.replace("\r\n", "\n").replace('\r', "\n");
            prop_assert_eq!(parse(&buf), vec![event(name.as_deref(), &normalised)]);
        }
    }
}
