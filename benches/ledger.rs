//! The prepaid-credit ledger in memory (`Ledger::in_memory`): what a request
//! pays to hold its worst case and settle its real cost.
//!
//! Groups: `reserve_settle` (one thread: reserve then settle a fresh
//! generation; reserve then drop, the failed-request path; a replayed
//! settle), `contended` (two threads, each doing reserve + settle, on one
//! shared key and on a key each, batches started together; the time is per
//! pair of operations running at once) and `reserve_settle_cpu` (the
//! one-thread case in the thread's CPU time, robust to a loaded machine). Generation records are built outside the
//! timing, one per iteration, as the router builds them, in batches of
//! [`BATCH`] just before they are settled (so they are warm in the cache, as
//! the one the router has just built is); each sample starts from a fresh
//! ledger, so the generation map grows with the sample, as it grows with
//! every request in a router. Settle is an `async fn`; in memory it never
//! waits, so it is polled once with a no-op waker instead of going through a
//! runtime.
//!
//! Run with `cargo bench --bench ledger`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::pin::pin;
use std::sync::{Barrier, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::measurement::Measurement;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};

use gauntlet::router::ledger::{GenerationRecord, Ledger, Settlement};
use gauntlet::router::pricing::Picodollars;

mod support;
use support::{ThreadCpu, thread_cpu_now};

/// Worst case of a small request: 100 prompt tokens at $3/M and 4096
/// completion tokens at $15/M.
const HOLD: Picodollars = Picodollars(100 * 3_000_000 + 4096 * 15_000_000);
/// Its real cost: 100 prompt and 16 completion tokens.
const COST: Picodollars = Picodollars(100 * 3_000_000 + 16 * 15_000_000);
/// Records built at a time, outside the timing.
const BATCH: u64 = 256;
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

/// `iters` reserve + settle on `key`, timed by `clock` batch by batch, each
/// batch's records built before its timing starts. With `together`, every
/// batch starts when the other thread's does.
fn timed_run(
    ledger: &Ledger,
    key: &str,
    thread: usize,
    iters: u64,
    clock: fn() -> Duration,
    together: Option<&Barrier>,
) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut batch = Vec::with_capacity(BATCH as usize);
    let mut n = 0;
    while n < iters {
        let end = (n + BATCH).min(iters);
        batch.extend((n..end).map(|n| record(key, thread, n)));
        if let Some(barrier) = together {
            barrier.wait();
        }
        let start = clock();
        for record in batch.drain(..) {
            black_box(reserve_settle(ledger, key, record));
        }
        elapsed += clock().saturating_sub(start);
        n = end;
    }
    elapsed
}

fn reserve_settle(ledger: &Ledger, key: &str, record: GenerationRecord) -> Settlement {
    let held = ledger.reserve(key, HOLD).unwrap();
    now(ledger.settle(held, record)).unwrap()
}

/// Wall time since the first call.
fn wall_now() -> Duration {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed()
}

fn one_thread_in<M: Measurement<Value = Duration>>(group: &mut BenchmarkGroup<'_, M>, clock: fn() -> Duration) {
    group.bench_function("one_thread", |b| {
        b.iter_custom(|iters| {
            let ledger = ledger(&["sk-a"]);
            let elapsed = timed_run(&ledger, "sk-a", 0, iters, clock, None);
            assert_eq!(ledger.stats().settled, iters);
            elapsed
        })
    });
}

fn one_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("reserve_settle");
    group.throughput(Throughput::Elements(1));
    one_thread_in(&mut group, wall_now);
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

/// Two threads doing `iters` reserve + settle each, on `keys[thread]`,
/// batch by batch in step; the longer of the two threads' timed spans.
fn two_threads(ledger: &Ledger, keys: [&str; 2], iters: u64) -> Duration {
    let together = Barrier::new(2);
    std::thread::scope(|scope| {
        let workers: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(thread, key)| {
                let together = &together;
                scope.spawn(move || timed_run(ledger, key, thread, iters, wall_now, Some(together)))
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).max().unwrap()
    })
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

/// The one-thread case again, in the thread's CPU time: the same work, less
/// the time the thread waited for a core on a loaded machine.
fn one_thread_cpu(c: &mut Criterion<ThreadCpu>) {
    let mut group = c.benchmark_group("reserve_settle_cpu");
    group.throughput(Throughput::Elements(1));
    one_thread_in(&mut group, thread_cpu_now);
    group.finish();
}

criterion_group!(benches, one_thread, contended);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = one_thread_cpu
}
criterion_main!(benches, cpu);
