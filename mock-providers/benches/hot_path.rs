//! The per-request and per-chunk work of the mock: what decides whether it
//! can stay out of the way of a measurement.
//!
//! Groups: `chunk` (one SSE content frame per dialect, into a reused buffer),
//! `prompt_tokens` (the documented count, small and ~8 KB conversations),
//! `parse` (an OpenAI request body), `plan` (a 100-token answer) and
//! `whole` (the non-streaming bodies of both dialects). Every fixture is built outside
//! `iter`.
//!
//! Run with `cargo bench -p mock-providers --bench hot_path`.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};

use mock_providers::anthropic::{self, EventWriter};
use mock_providers::config::Behaviour;
use mock_providers::distribution::Distribution;
use mock_providers::openai::{self, ChunkWriter};
use mock_providers::plan::{Ask, Plan, attempt_seed, plan};
use mock_providers::tokens::prompt_tokens;

const MODEL: &str = "gpt-4o-mini";
const CREATED: u64 = 1_700_000_000;

/// A model that answers `tokens` words, 50 ms apart.
fn behaviour(tokens: f64) -> Behaviour {
    Behaviour {
        ttft_ms: Distribution::Constant(5.0),
        itl_ms: Distribution::Constant(50.0),
        output_tokens: Distribution::Constant(tokens),
        ..Behaviour::default()
    }
}

fn ask(stream: bool) -> Ask {
    Ask {
        model: MODEL.to_string(),
        stream,
        include_usage: stream,
        prompt_tokens: 42,
        nonce: Some("req-000042".to_string()),
        ..Ask::default()
    }
}

fn answer(tokens: f64, stream: bool) -> Plan {
    let seed = attempt_seed(7, "openai", MODEL, "req-000042");
    plan(seed, 1, &behaviour(tokens), None, &ask(stream))
}

/// A typical chat request: a system prompt, one user turn with a nonce.
fn small_request() -> Value {
    json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
            {"role": "user", "content": "What is the capital of France? [gauntlet:req-000042]"}
        ],
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": 128,
        "temperature": 0.7
    })
}

/// A conversation of about 8 KB of text: a system prompt and 16 turns, some
/// as content-part arrays, with non-ASCII text.
fn large_request() -> Value {
    let sentence = "The quick brown fox jumps over the lazy dog; naïve café 東京. ";
    let mut messages = vec![json!({"role": "system", "content": sentence.repeat(4)})];
    for i in 0..16 {
        let text = sentence.repeat(7);
        messages.push(if i % 2 == 0 {
            json!({"role": "user", "content": [{"type": "text", "text": text}]})
        } else {
            json!({"role": "assistant", "content": text})
        });
    }
    json!({"model": MODEL, "messages": messages, "stream": true, "max_tokens": 256})
}

fn messages(request: &Value) -> &[Value] {
    request["messages"].as_array().map_or(&[], Vec::as_slice)
}

fn chunk(c: &mut Criterion) {
    let text = answer(100.0, true);
    let openai_plain = ChunkWriter::new(&text, MODEL, CREATED, false);
    let openai_usage = ChunkWriter::new(&text, MODEL, CREATED, true);
    let anthropic = EventWriter::new(&text, "claude-sonnet-4");
    let pieces = text.pieces.len();
    let mut buf = BytesMut::with_capacity(4096);

    let mut group = c.benchmark_group("chunk");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("openai_piece", |b| {
        b.iter(|| {
            buf.clear();
            openai_plain.piece(&mut buf, &text, i % pieces);
            i += 1;
            black_box(buf.len())
        })
    });
    group.bench_function("openai_piece_include_usage", |b| {
        b.iter(|| {
            buf.clear();
            openai_usage.piece(&mut buf, &text, i % pieces);
            i += 1;
            black_box(buf.len())
        })
    });
    // What the stream body does per piece: render, then hand the bytes to
    // hyper as a frozen `Bytes` (dropped here, as hyper does once written).
    group.bench_function("openai_piece_split_freeze", |b| {
        let mut own = BytesMut::with_capacity(512);
        b.iter(|| {
            openai_plain.piece(&mut own, &text, i % pieces);
            i += 1;
            black_box(own.split().freeze())
        })
    });
    group.bench_function("anthropic_piece", |b| {
        b.iter(|| {
            buf.clear();
            anthropic.piece(&mut buf, &text, i % pieces);
            i += 1;
            black_box(buf.len())
        })
    });
    group.finish();
}

fn count_prompt_tokens(c: &mut Criterion) {
    let small = small_request();
    let large = large_request();
    let mut group = c.benchmark_group("prompt_tokens");
    for (name, request) in [("small", &small), ("8kb", &large)] {
        let bytes = request.to_string().len() as u64;
        group.throughput(Throughput::Bytes(bytes));
        let messages = messages(request);
        group.bench_function(name, |b| b.iter(|| prompt_tokens(None, black_box(messages), None)));
    }
    group.finish();
}

fn parse(c: &mut Criterion) {
    let value = small_request();
    let body = value.to_string().into_bytes();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("openai_value", |b| b.iter(|| openai::parse(black_box(&value))));
    // What the handler does with the bytes it read.
    group.bench_function("openai_bytes", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&body)).map(|v| openai::parse(&v)))
    });
    group.finish();
}

fn plan_answer(c: &mut Criterion) {
    let model = behaviour(100.0);
    let request = ask(true);
    let mut group = c.benchmark_group("plan");
    group.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    group.bench_function("100_tokens", |b| {
        b.iter(|| {
            n += 1;
            let seed = attempt_seed(7, "openai", MODEL, "req-000042") ^ n;
            plan(black_box(seed), 1, &model, None, &request)
        })
    });
    group.finish();
}

fn whole(c: &mut Criterion) {
    let short = answer(16.0, false);
    let mut group = c.benchmark_group("whole");
    group.throughput(Throughput::Elements(1));
    group.bench_function("openai_completion_16_tokens", |b| {
        b.iter(|| openai::completion(black_box(&short), MODEL, CREATED))
    });
    group.bench_function("anthropic_message_16_tokens", |b| {
        b.iter(|| anthropic::message(black_box(&short), "claude-sonnet-4"))
    });
    group.finish();
}

criterion_group!(benches, chunk, count_prompt_tokens, parse, plan_answer, whole);
criterion_main!(benches);
