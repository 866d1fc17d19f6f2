//! Metrics: what folding one finished request into a load worker's
//! [`Collector`] costs (HDR histograms, outcome counts, the per-second
//! series, SLO and check probes, token accounting), against the bare HDR
//! histogram it is built on.
//!
//! Group `collector`, one case per kind of record: `whole` (a non-streamed
//! answer: E2E, dispatch), `stream_100_chunks` (a streamed answer with 100
//! content chunk times: TTFT, TPOT and 99 ITL gaps too) and `rate_limited`
//! (a 429: counted, dispatch only). The collector has the SLO and latency
//! checks of a typical scenario (so probes and goodput are judged). Each
//! case cycles through a pool of [`POOL`] varied records built outside the
//! timing (seeded random latencies, 500 requests a second of intended
//! times), small enough to stay in cache as the record the worker has just
//! built would be; the collector has seen the pool once before it is timed,
//! so its histograms have grown to their steady size.
//!
//! Group `hdr`: `hdrhistogram::Histogram::<u64>::record` of one value, and
//! of the 99 ITL gaps of a 100-chunk stream, cycling through the pool's latencies, in a
//! warmed histogram like the collector's (auto-resizing, [`SIGFIG`] digits).
//!
//! Run with `cargo bench --bench metrics`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hdrhistogram::Histogram;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use gauntlet::load::record::{Facts, Outcome, RequestRecord};
use gauntlet::metrics::{Collector, Metric, SIGFIG};
use gauntlet::scenario::raw::MetricName;
use gauntlet::scenario::{Check, Rule, Slo};

/// Records in each pool (a power of two, to cycle with a mask).
const POOL: usize = 256;
/// Content chunks of a streamed answer.
const CHUNKS: usize = 100;
/// 2026-01-01T00:00:00Z in Unix microseconds.
const START_US: u64 = 1_767_225_600_000_000;
/// Between intended send times: 500 requests a second.
const INTERVAL_US: u64 = 2_000;

/// The SLO and latency checks of a typical scenario.
fn collector() -> Collector {
    let slo = Slo {
        ttft: Some(Duration::from_millis(800)),
        e2e: Some(Duration::from_secs(10)),
        tpot: Some(Duration::from_millis(40)),
    };
    let latency = |name: &str, metric, percentile, max| Check {
        name: name.to_string(),
        rule: Rule::Latency {
            metric,
            percentile,
            max,
        },
    };
    let checks = [
        latency("e2e-p99", MetricName::E2e, 99.0, Duration::from_secs(8)),
        latency("ttft-p95", MetricName::Ttft, 95.0, Duration::from_millis(700)),
        latency("itl-p99", MetricName::Itl, 99.0, Duration::from_millis(60)),
        latency("dispatch-p99", MetricName::Dispatch, 99.0, Duration::from_millis(5)),
    ];
    Collector::with(slo, &checks)
}

/// A record sent `i`-th, with nothing received yet.
fn sent(rng: &mut Xoshiro256PlusPlus, i: usize, stream: bool) -> RequestRecord {
    let intended_us = START_US + i as u64 * INTERVAL_US;
    RequestRecord {
        id: Arc::from(format!("req-{i:06}")),
        phase: 0,
        mix: u16::from(stream),
        stream,
        intended_us,
        sent_us: intended_us + rng.random_range(20..=400),
        head_us: None,
        first_content_us: None,
        last_byte_us: None,
        status: 0,
        outcome: Outcome::Ok,
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

fn answered(mut r: RequestRecord, completion_tokens: u64) -> RequestRecord {
    r.status = 200;
    r.prompt_tokens = Some(420);
    r.completion_tokens = Some(completion_tokens);
    r.cost = Some("0.0000123".to_string());
    r.generation_id = Some(format!("gen-{}", r.id));
    r.model = Some("openai/gpt-4o-mini".to_string());
    r.conformance.finish_reason = Some("stop".to_string());
    r
}

/// A non-streamed answer after 0.3–3 s (a few over the checks' bound).
fn whole(rng: &mut Xoshiro256PlusPlus, i: usize) -> RequestRecord {
    let mut r = sent(rng, i, false);
    let done = r.sent_us + rng.random_range(300_000..=3_000_000);
    r.head_us = Some(done - rng.random_range(100..=2_000));
    r.first_content_us = Some(done);
    r.last_byte_us = Some(done);
    answered(r, rng.random_range(50..=400))
}

/// A streamed answer: TTFT 0.15–0.9 s, then [`CHUNKS`] content chunks
/// 5–50 ms apart, usage and `[DONE]`.
fn stream(rng: &mut Xoshiro256PlusPlus, i: usize) -> RequestRecord {
    let mut r = sent(rng, i, true);
    let mut offset: u32 = rng.random_range(150_000..=900_000);
    r.content_offsets_us = (0..CHUNKS)
        .map(|_| {
            let at = offset;
            offset += rng.random_range(5_000..=50_000);
            at
        })
        .collect();
    let first = r.sent_us + u64::from(r.content_offsets_us[0]);
    let last = r.sent_us + u64::from(r.content_offsets_us[CHUNKS - 1]);
    r.head_us = Some(first - rng.random_range(1_000..=50_000));
    r.first_content_us = Some(first);
    r.last_byte_us = Some(last + rng.random_range(100..=1_000));
    r.chunks = CHUNKS as u32 + 3;
    r.content_chunks = CHUNKS as u32;
    r.conformance.usage_chunks = 1;
    r.conformance.usage_last = true;
    r.conformance.done = true;
    answered(r, CHUNKS as u64)
}

/// A 429 with an OpenAI-shaped error body, after 2–20 ms.
fn rate_limited(rng: &mut Xoshiro256PlusPlus, i: usize) -> RequestRecord {
    let mut r = sent(rng, i, false);
    let done = r.sent_us + rng.random_range(2_000..=20_000);
    r.head_us = Some(done - 100);
    r.last_byte_us = Some(done);
    r.status = 429;
    r.outcome = Outcome::RateLimited;
    r.error = Some("rate limit exceeded for key".to_string());
    r.conformance.retry_after = Some("1".to_string());
    r
}

/// Builds the `i`-th record of a pool.
type Build = fn(&mut Xoshiro256PlusPlus, usize) -> RequestRecord;

fn pool(seed: u64, build: Build) -> Vec<RequestRecord> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..POOL).map(|i| build(&mut rng, i)).collect()
}

fn record(c: &mut Criterion) {
    // Each case with the samples its pool puts in the E2E and ITL histograms.
    let cases: [(&str, Build, u64, u64); 3] = [
        ("whole", whole, 1, 0),
        ("stream_100_chunks", stream, 1, CHUNKS as u64 - 1),
        ("rate_limited", rate_limited, 0, 0),
    ];
    let mut group = c.benchmark_group("collector");
    for (seed, (name, build, e2e, itl)) in (1..).zip(cases) {
        let records = pool(seed, build);
        let mut collector = collector();
        records.iter().for_each(|r| collector.record(r));
        let samples = |metric| collector.histogram(metric).len();
        assert_eq!(samples(Metric::Dispatch), POOL as u64, "{name}");
        assert_eq!(samples(Metric::E2e), e2e * POOL as u64, "{name}");
        assert_eq!(samples(Metric::Itl), itl * POOL as u64, "{name}");
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                collector.record(black_box(&records[i % POOL]));
                i += 1;
            })
        });
    }
    group.finish();
}

fn hdr(c: &mut Criterion) {
    // The latencies the collector's pools hold: E2E of whole answers and ITL gaps.
    let e2e: Vec<u64> = pool(1, whole)
        .iter()
        .map(|r| r.last_byte_us.unwrap() - r.intended_us)
        .collect();
    let gaps: Vec<u64> = pool(2, stream)
        .iter()
        .flat_map(|r| r.content_offsets_us.windows(2).map(|w| u64::from(w[1] - w[0])))
        .collect();
    let mut group = c.benchmark_group("hdr");
    let mut histogram = Histogram::<u64>::new(SIGFIG).unwrap();
    e2e.iter().for_each(|&v| histogram.record(v).unwrap());
    let mut i = 0;
    group.bench_function("record_one", |b| {
        b.iter(|| {
            histogram.record(black_box(e2e[i % POOL])).unwrap();
            i += 1;
        })
    });
    let mut histogram = Histogram::<u64>::new(SIGFIG).unwrap();
    gaps.iter().for_each(|&v| histogram.record(v).unwrap());
    let streams: Vec<&[u64]> = gaps.chunks(CHUNKS - 1).collect();
    let mut i = 0;
    group.bench_function("record_99_gaps", |b| {
        b.iter(|| {
            for &gap in black_box(streams[i % streams.len()]) {
                histogram.record(gap).unwrap();
            }
            i += 1;
        })
    });
    group.finish();
}

criterion_group!(benches, record, hdr);
criterion_main!(benches);
