//! Streaming: the router's per-stream work on a 100-token upstream stream,
//! SSE parsing and transcoding into its own `chat.completion.chunk` frames.
//!
//! The upstream bytes are written by the mock providers' own writers (so
//! they are exactly what the router reads in a run) once, outside the timed
//! loop, and split into pieces as they come off the network: `per_event`
//! (one event per read, as at a real inter-token pace) and `mss` (1,448-byte
//! reads that cut events anywhere, as in a burst).
//!
//! Groups `openai` and `anthropic` (the upstream dialect), with cases
//! `parse/<split>` (the SSE parser alone) and `relay/<split>` (what the
//! relay task does per stream: parser and translator built, every piece
//! parsed and translated into a reused buffer and frozen as the frame to
//! send, then the usage chunk and `[DONE]`). Throughput is in tokens.
//!
//! Run with `cargo bench --bench stream`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use gauntlet::router::config::Dialect;
use gauntlet::router::pricing::Picodollars;
use gauntlet::router::sse::{SseItem, SseParser};
use gauntlet::router::transcode::{StreamTranslator, UsageReport, write_usage_chunk};
use mock_providers::anthropic::EventWriter;
use mock_providers::config::Behaviour;
use mock_providers::distribution::Distribution;
use mock_providers::openai::ChunkWriter;
use mock_providers::plan::{Ask, Plan, attempt_seed, plan};

const TOKENS: usize = 100;
/// TCP payload per segment on Ethernet with timestamps.
const MSS: usize = 1_448;
const GENERATION: &str = "gen-0a1b2c3d4e5f-2a";
const CREATED: u64 = 1_767_225_600;

/// The mock's plan of a 100-token text answer.
fn answer() -> Plan {
    let behaviour = Behaviour {
        ttft_ms: Distribution::Constant(0.0),
        itl_ms: Distribution::Constant(0.0),
        output_tokens: Distribution::Constant(TOKENS as f64),
        ..Behaviour::default()
    };
    let ask = Ask {
        model: "gpt-4o-mini".to_string(),
        stream: true,
        include_usage: true,
        prompt_tokens: 42,
        nonce: Some("req-000042".to_string()),
        ..Ask::default()
    };
    let plan = plan(
        attempt_seed(7, "bench", "gpt-4o-mini", "req-000042"),
        1,
        &behaviour,
        None,
        &ask,
    );
    assert_eq!(plan.pieces.len(), TOKENS);
    plan
}

/// The whole upstream body of `dialect` for `plan`.
fn upstream(dialect: Dialect, plan: &Plan) -> Bytes {
    let mut buf = BytesMut::new();
    match dialect {
        Dialect::OpenAi => {
            let writer = ChunkWriter::new(plan, "gpt-4o-mini", CREATED, true);
            writer.preamble(&mut buf, plan);
            (0..TOKENS).for_each(|i| writer.piece(&mut buf, plan, i));
            writer.tail(&mut buf, plan);
        }
        Dialect::Anthropic => {
            let writer = EventWriter::new(plan, "claude-sonnet-4");
            writer.preamble(&mut buf, plan);
            (0..TOKENS).for_each(|i| writer.piece(&mut buf, plan, i));
            writer.tail(&mut buf, plan);
        }
    }
    buf.freeze()
}

/// One piece per event (each ends with a blank line).
fn per_event(body: &Bytes) -> Vec<Bytes> {
    let mut pieces = Vec::new();
    let mut start = 0;
    while let Some(end) = body[start..].windows(2).position(|w| w == b"\n\n") {
        pieces.push(body.slice(start..start + end + 2));
        start += end + 2;
    }
    assert_eq!(start, body.len(), "the body ends with a whole event");
    pieces
}

fn mss(body: &Bytes) -> Vec<Bytes> {
    (0..body.len())
        .step_by(MSS)
        .map(|at| body.slice(at..(at + MSS).min(body.len())))
        .collect()
}

/// The SSE parser alone: every item of every piece.
fn parse(pieces: &[Bytes]) -> usize {
    let mut parser = SseParser::new();
    let mut events = 0;
    for piece in pieces {
        parser.push(piece).unwrap();
        while let Some(item) = parser.next_item() {
            events += usize::from(matches!(item, SseItem::Event(_)));
        }
    }
    events
}

/// What the relay task does for one stream, less the channel.
fn relay(dialect: Dialect, pieces: &[Bytes], out: &mut BytesMut) -> usize {
    let mut parser = SseParser::new();
    let mut translator = StreamTranslator::new(dialect, GENERATION, "openai/gpt-4o-mini", CREATED);
    let mut sent = 0;
    for piece in pieces {
        parser.push(piece).unwrap();
        while let Some(item) = parser.next_item() {
            let SseItem::Event(event) = item else { continue };
            translator.on_event(&event, out).unwrap();
        }
        if !out.is_empty() {
            sent += black_box(out.split().freeze()).len();
        }
    }
    assert!(translator.is_ended(), "the stream finished");
    let usage = translator.usage().unwrap();
    let report = UsageReport {
        usage,
        cost: Picodollars(123_456_000),
        upstream_cost: Picodollars(123_456_000),
        is_byok: false,
    };
    write_usage_chunk(out, GENERATION, "openai/gpt-4o-mini", CREATED, &report);
    out.extend_from_slice(b"data: [DONE]\n\n");
    sent + black_box(out.split().freeze()).len()
}

fn dialect_group(c: &mut Criterion, name: &str, dialect: Dialect, plan: &Plan) {
    let body = upstream(dialect, plan);
    let splits = [("per_event", per_event(&body)), ("mss", mss(&body))];
    let mut out = BytesMut::with_capacity(4096);
    // Check once, outside the timing, that every split carries every token.
    for (split, pieces) in &splits {
        let mut parser = SseParser::new();
        let mut translator = StreamTranslator::new(dialect, GENERATION, "openai/gpt-4o-mini", CREATED);
        let mut sink = BytesMut::new();
        for piece in pieces {
            parser.push(piece).unwrap();
            while let Some(event) = parser.next_event() {
                translator.on_event(&event, &mut sink).unwrap();
            }
        }
        assert!(translator.is_ended(), "{name}/{split}: the stream finished");
        assert_eq!(
            translator.content_chunks(),
            TOKENS as u64,
            "{name}/{split}: a chunk per token"
        );
    }

    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(TOKENS as u64));
    for (split, pieces) in &splits {
        group.bench_with_input(BenchmarkId::new("parse", split), pieces, |b, pieces| {
            b.iter(|| parse(black_box(pieces)))
        });
        group.bench_with_input(BenchmarkId::new("relay", split), pieces, |b, pieces| {
            b.iter(|| relay(dialect, black_box(pieces), &mut out))
        });
    }
    group.finish();
}

fn streams(c: &mut Criterion) {
    let plan = answer();
    dialect_group(c, "openai", Dialect::OpenAi, &plan);
    dialect_group(c, "anthropic", Dialect::Anthropic, &plan);
}

criterion_group!(benches, streams);
criterion_main!(benches);
