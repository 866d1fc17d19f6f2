//! SSE framing round-trips: whatever a token's text, the bytes the writers
//! produce parse (by the SSE spec, then JSON) back to exactly that text.

use std::borrow::Cow;
use std::time::Duration;

use bytes::BytesMut;
use mock_providers::Usage;
use mock_providers::anthropic::EventWriter;
use mock_providers::openai::ChunkWriter;
use mock_providers::plan::{Finish, Plan, ToolPlan};
use proptest::prelude::*;
use serde_json::Value;

use crate::support::{SseEvent, parse_sse};

fn plan_of(pieces: &[String], tool: bool) -> Plan {
    Plan {
        ttft: Duration::ZERO,
        gaps: vec![Duration::ZERO; pieces.len().saturating_sub(1)],
        pieces: pieces.iter().cloned().map(Cow::Owned).collect(),
        tool: tool.then(|| ToolPlan {
            id: "call_0".into(),
            name: "f".into(),
            arguments: pieces.concat(),
        }),
        finish: if tool { Finish::ToolCalls } else { Finish::Stop },
        usage: Usage {
            prompt_tokens: 10,
            completion_tokens: pieces.len() as u32,
            ..Usage::default()
        },
        id: "00ff".into(),
        opening_with_first_token: false,
    }
}

/// Text with the characters that break naive framing well represented.
fn tricky_text() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '"', '\\', '\n', '\r', '\t', '\u{0}', '\u{8}', '\u{c}', '\u{1f}', '\u{7f}', '\u{85}', '\u{2028}', '\u{2029}',
        '\u{feff}', ':', ' ', 'é', '東', '🦀',
    ]);
    prop::collection::vec(prop_oneof![3 => any::<char>(), 2 => special], 0..24)
        .prop_map(|chars| chars.into_iter().collect())
}

fn json(event: &SseEvent) -> Value {
    serde_json::from_str(&event.data).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", event.data))
}

#[test]
fn the_test_parser_follows_the_spec() {
    let events = parse_sse(
        b"\xef\xbb\xbfevent: a\r\ndata: x\rdata:y\n\n: a comment\ndata\n\nid: 1\nretry: 5\n\nevent: lost\ndata: unfinished",
    );
    assert_eq!(
        events,
        [
            SseEvent {
                event: "a".into(),
                data: "x\ny".into()
            },
            SseEvent {
                event: "message".into(),
                data: String::new()
            },
        ]
    );
    // Fed byte by byte, a CRLF split across two reads is still one line end.
    let mut parser = crate::support::SseParser::default();
    let mut out = Vec::new();
    for b in b"data: 1\r\n\r\ndata: 2\r\r" {
        out.extend(parser.feed(&[*b]));
    }
    let data: Vec<&str> = out.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data, ["1", "2"]);
}

proptest! {
    #[test]
    fn openai_chunks_round_trip(pieces in prop::collection::vec(tricky_text(), 1..5), model in tricky_text(), usage: bool) {
        let plan = plan_of(&pieces, false);
        let writer = ChunkWriter::new(&plan, &model, 1_700_000_000, usage);
        let mut buf = BytesMut::new();
        writer.preamble(&mut buf, &plan);
        for i in 0..pieces.len() {
            writer.piece(&mut buf, &plan, i);
        }
        writer.tail(&mut buf, &plan);
        let events = parse_sse(&buf);
        prop_assert_eq!(events.len(), 1 + pieces.len() + 1 + usize::from(usage) + 1);
        prop_assert!(events.last().unwrap().is_done());
        for (i, piece) in pieces.iter().enumerate() {
            let chunk = json(&events[1 + i]);
            prop_assert_eq!(chunk["choices"][0]["delta"]["content"].as_str(), Some(piece.as_str()));
            prop_assert_eq!(chunk["model"].as_str(), Some(model.as_str()));
        }
        if usage {
            prop_assert_eq!(&json(&events[pieces.len() + 2])["usage"]["completion_tokens"], &Value::from(pieces.len()));
        }
    }

    #[test]
    fn openai_tool_deltas_and_errors_round_trip(pieces in prop::collection::vec(tricky_text(), 1..5), message in tricky_text()) {
        let plan = plan_of(&pieces, true);
        let writer = ChunkWriter::new(&plan, "m", 0, false);
        let mut buf = BytesMut::new();
        for i in 0..pieces.len() {
            writer.piece(&mut buf, &plan, i);
        }
        writer.error(&mut buf, 500, &message);
        let events = parse_sse(&buf);
        prop_assert_eq!(events.len(), pieces.len() + 1);
        for (i, piece) in pieces.iter().enumerate() {
            let chunk = json(&events[i]);
            let args = &chunk["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"];
            prop_assert_eq!(args.as_str(), Some(piece.as_str()));
        }
        let error = json(&events[pieces.len()]);
        prop_assert_eq!(error["error"]["message"].as_str(), Some(message.as_str()));
    }

    #[test]
    fn anthropic_deltas_round_trip(pieces in prop::collection::vec(tricky_text(), 1..5), model in tricky_text(), tool: bool, message in tricky_text()) {
        let plan = plan_of(&pieces, tool);
        let writer = EventWriter::new(&plan, &model);
        let mut buf = BytesMut::new();
        writer.preamble(&mut buf, &plan);
        for i in 0..pieces.len() {
            writer.piece(&mut buf, &plan, i);
        }
        writer.tail(&mut buf, &plan);
        writer.error(&mut buf, 529, &message);
        let events = parse_sse(&buf);
        prop_assert_eq!(events.len(), 3 + pieces.len() + 3 + 1);
        let start = json(&events[0]);
        prop_assert_eq!(start["message"]["model"].as_str(), Some(model.as_str()));
        for (i, piece) in pieces.iter().enumerate() {
            let event = &events[3 + i];
            prop_assert_eq!(event.event.as_str(), "content_block_delta");
            let delta = &json(event)["delta"];
            let field = if tool { "partial_json" } else { "text" };
            prop_assert_eq!(delta[field].as_str(), Some(piece.as_str()));
        }
        let last = events.last().unwrap();
        prop_assert_eq!(last.event.as_str(), "error");
        let error = json(last);
        prop_assert_eq!(error["error"]["message"].as_str(), Some(message.as_str()));
        prop_assert_eq!(error["error"]["type"].as_str(), Some("overloaded_error"));
    }
}
