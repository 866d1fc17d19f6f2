//! The prepaid-credit ledger in memory (`Ledger::in_memory`): what a request
//! pays to hold its worst case and settle its real cost.
//!
//! Groups: `reserve_settle` (one thread: reserve then settle a fresh
//! generation; reserve then drop, the failed-request path; a replayed
//! settle) and `contended` (two threads, each doing reserve + settle, on one
//! shared key and on a key each). Generation records are built outside the
//! timed loop, one per iteration, as the router builds them; each sample
//! starts from a fresh ledger, so the generation map grows only with that
//! sample. Settle is an `async fn`; in memory it never waits, so it is
//! polled once with a no-op waker instead of going through a runtime.
//!
//! Run with `cargo bench --bench ledger`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::pin::pin;
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use gauntlet::router::ledger::{GenerationRecord, Ledger, Settlement};
use gauntlet::router::pricing::Picodollars;

/// Worst case of a small request: 100 prompt tokens at $3/M and 4096
/// completion tokens at $15/M.
const HOLD: Picodollars = Picodollars(100 * 3_000_000 + 4096 * 15_000_000);
/// Its real cost: 100 prompt and 16 completion tokens.
const COST: Picodollars = Picodollars(100 * 3_000_000 + 16 * 15_000_000);
/// Enough credits that no reservation is ever refused.
const CREDITS: Picodollars = Picodollars(i64::MAX / 4);

/// Runs a future that must not wait (the in-memory ledger never does).
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an in-memory ledger operation waited"),
    }
}

/// A ledger with one account per key.
fn ledger(keys: &[&str]) -> Ledger {
    let ledger = Ledger::in_memory();
    for key in keys {
        now(ledger.create_account(key, "bench", CREDITS)).unwrap();
    }
    ledger
}

/// The record the router settles for generation `n`, with its strings
/// already built (the router builds them before settling).
fn record(key: &str, thread: usize, n: u64) -> GenerationRecord {
    GenerationRecord {
        id: format!("gen-0a1b2c3d4e5f-{thread}-{n:x}"),
        key: key.to_string(),
        model: "anthropic/claude-sonnet-4".to_string(),
        requested_model: "anthropic/claude-sonnet-4".to_string(),
        provider_name: "anthropic-like".to_string(),
        total_cost: COST,
        upstream_cost: COST,
        is_byok: false,
        tokens_prompt: 100,
        tokens_completion: 16,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        latency_ms: 3,
        generation_time_ms: 2,
        streamed: false,
        finish_reason: Some("stop".to_string()),
        created_at_us: 1_767_225_600_000_000,
    }
}

fn records(key: &str, thread: usize, iters: u64) -> Vec<GenerationRecord> {
    (0..iters).map(|n| record(key, thread, n)).collect()
}

fn reserve_settle(ledger: &Ledger, key: &str, record: GenerationRecord) -> Settlement {
    let held = ledger.reserve(key, HOLD).unwrap();
    now(ledger.settle(held, record)).unwrap()
}

fn one_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("reserve_settle");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_thread", |b| {
        b.iter_custom(|iters| {
            let ledger = ledger(&["sk-a"]);
            let records = records("sk-a", 0, iters);
            let start = Instant::now();
            for record in records {
                black_box(reserve_settle(&ledger, "sk-a", record));
            }
            let elapsed = start.elapsed();
            assert_eq!(ledger.stats().settled, iters);
            drop(ledger);
            elapsed
        })
    });
    // A failed request: the hold is released when the reservation drops.
    group.bench_function("reserve_drop", |b| {
        let ledger = ledger(&["sk-a"]);
        b.iter(|| drop(black_box(ledger.reserve("sk-a", HOLD).unwrap())))
    });
    // A settle retried with a generation id that was settled before.
    group.bench_function("replayed_settle", |b| {
        let ledger = ledger(&["sk-a"]);
        black_box(reserve_settle(&ledger, "sk-a", record("sk-a", 0, 0)));
        b.iter_batched(
            || record("sk-a", 0, 0),
            |record| {
                let settlement = reserve_settle(&ledger, "sk-a", record);
                assert!(settlement.replayed);
                settlement
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Two threads doing `iters` reserve + settle each, on `keys[thread]`;
/// the time from the first start to the last finish.
fn two_threads(ledger: &Ledger, keys: [&str; 2], iters: u64) -> Duration {
    let start = Barrier::new(2);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|scope| {
        let workers: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(thread, key)| {
                let records = records(key, thread, iters);
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    let begun = Instant::now();
                    for record in records {
                        black_box(reserve_settle(ledger, key, record));
                    }
                    (begun, Instant::now())
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let first = spans.iter().map(|s| s.0).min().unwrap();
    let last = spans.iter().map(|s| s.1).max().unwrap();
    last - first
}

fn contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("contended");
    // Each iteration is one reserve + settle on each of the two threads.
    group.throughput(Throughput::Elements(2));
    group.bench_function("two_threads_one_key", |b| {
        b.iter_custom(|iters| two_threads(&ledger(&["sk-a"]), ["sk-a", "sk-a"], iters))
    });
    group.bench_function("two_threads_two_keys", |b| {
        b.iter_custom(|iters| two_threads(&ledger(&["sk-a", "sk-b"]), ["sk-a", "sk-b"], iters))
    });
    group.finish();
}

criterion_group!(benches, one_thread, contended);
criterion_main!(benches);
