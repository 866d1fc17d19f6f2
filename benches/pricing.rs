//! Money: the cost formula, the worst case reserved before forwarding,
//! exact decimal parsing of prices and amounts, and USD rendering.
//!
//! Groups: `cost` (an OpenAI usage with cached tokens, an Anthropic usage
//! with cache reads and writes, the zero-completion shortcut, the BYOK fee),
//! `worst_case`, `parse` (prices per million tokens and USD amounts) and
//! `render` (`usage.cost` in USD, a price back to USD per million).
//!
//! Run with `cargo bench --bench pricing`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

use gauntlet::router::pricing::{BilledUsage, Picodollars, Prices, TokenPrice};

fn price(text: &str) -> TokenPrice {
    text.parse().expect("a price")
}

/// Claude Sonnet's prices: every kind of token has its own.
fn sonnet() -> Prices {
    Prices {
        prompt: price("3"),
        completion: price("15"),
        cache_read: price("0.30"),
        cache_write: price("3.75"),
    }
}

fn cost(c: &mut Criterion) {
    let prices = sonnet();
    let openai = BilledUsage::from_openai(1_200, 600, 256);
    let anthropic = BilledUsage::from_anthropic(400, 600, 200, 256);
    let nothing = BilledUsage::from_openai(1_200, 0, 0);
    let mut group = c.benchmark_group("cost");
    group.bench_function("openai_usage", |b| {
        b.iter(|| black_box(&prices).cost(black_box(&openai), false))
    });
    group.bench_function("anthropic_usage", |b| {
        b.iter(|| black_box(&prices).cost(black_box(&anthropic), false))
    });
    group.bench_function("zero_completion", |b| {
        b.iter(|| black_box(&prices).cost(black_box(&nothing), false))
    });
    let charge = prices.cost(&anthropic, false).unwrap();
    group.bench_function("byok_fee", |b| {
        b.iter(|| black_box(charge).basis_points(black_box(500)))
    });
    group.finish();
}

fn worst_case(c: &mut Criterion) {
    let prices = sonnet();
    let mut group = c.benchmark_group("worst_case");
    group.bench_function("prompt_and_max_tokens", |b| {
        b.iter(|| black_box(&prices).worst_case(black_box(1_200), black_box(4_096)))
    });
    group.finish();
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for text in ["0.15", "3.75", "0.000001", "1234.567891"] {
        group.bench_function(format!("price_{text}"), |b| {
            b.iter(|| black_box(text).parse::<TokenPrice>())
        });
    }
    for text in ["10", "10.5", "0.000000000001"] {
        group.bench_function(format!("usd_{text}"), |b| {
            b.iter(|| Picodollars::from_usd_decimal(black_box(text)))
        });
    }
    group.bench_function("refused_too_precise", |b| {
        b.iter(|| black_box("0.0000001").parse::<TokenPrice>())
    });
    group.finish();
}

fn render(c: &mut Criterion) {
    let prices = sonnet();
    let typical = prices.cost(&BilledUsage::from_openai(1_200, 600, 256), false).unwrap();
    let mut group = c.benchmark_group("render");
    group.bench_function("usd_typical_cost", |b| b.iter(|| black_box(typical).to_usd_string()));
    group.bench_function("usd_whole", |b| {
        b.iter(|| black_box(Picodollars(10_000_000_000_000)).to_usd_string())
    });
    group.bench_function("usd_one_picodollar", |b| {
        b.iter(|| black_box(Picodollars(1)).to_usd_string())
    });
    group.bench_function("price_per_million", |b| {
        b.iter(|| black_box(prices.cache_write).usd_per_million())
    });
    group.finish();
}

criterion_group!(benches, cost, worst_case, parse, render);
criterion_main!(benches);
