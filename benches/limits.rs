//! Per-key limits: what admitting a request costs before it is forwarded.
//!
//! Group `admit`: a paid model on a key with a request rate and a
//! concurrency limit (GCRA + the per-model in-flight count), the same with
//! an in-flight budget too, a key without limits, the `:free` model path
//! (minute and daily quotas), and a refusal (the concurrency limit, which
//! formats its message). Each admitted request's [`Admission`] is dropped in
//! the loop, as the router does when the request ends; the clock handed to
//! the limiter advances by one rate interval per request, so a rate never
//! refuses and nothing waits.
//!
//! Run with `cargo bench --bench limits`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::time::Instant;

use gauntlet::router::config::FreeLimits;
use gauntlet::router::limits::{Ask, KeyLimits, Limiter};
use gauntlet::router::pricing::Picodollars;

/// 600,000 requests a minute: one every 100 µs of the limiter's clock.
const RPM: u32 = 600_000;
const STEP: Duration = Duration::from_micros(100);

fn limiter() -> Limiter {
    let free = FreeLimits {
        per_minute: NonZeroU32::new(RPM).unwrap(),
        per_day: u32::MAX,
        per_day_after_purchase: u32::MAX,
        ..FreeLimits::default()
    };
    let limiter = Limiter::new(free);
    limiter.set_key(
        "sk-rate".into(),
        KeyLimits {
            rpm: NonZeroU32::new(RPM),
            concurrency: NonZeroU32::new(8),
            in_flight_budget: None,
        },
    );
    limiter.set_key(
        "sk-budget".into(),
        KeyLimits {
            rpm: NonZeroU32::new(RPM),
            concurrency: NonZeroU32::new(8),
            in_flight_budget: Some(Picodollars(1_000_000_000_000)),
        },
    );
    limiter.set_key("sk-open".into(), KeyLimits::default());
    limiter.set_key(
        "sk-one".into(),
        KeyLimits {
            concurrency: NonZeroU32::new(1),
            ..KeyLimits::default()
        },
    );
    limiter
}

fn ask(model: &Arc<str>, free: bool, now: Instant) -> Ask<'_> {
    Ask {
        model,
        free,
        purchased: Picodollars(20_000_000_000_000),
        worst_case: Picodollars(61_740_000_000),
        now,
        day: 20_454,
        until_next_day: Duration::from_secs(3_600),
    }
}

fn admit(c: &mut Criterion) {
    let limiter = limiter();
    let paid: Arc<str> = "openai/gpt-4o-mini".into();
    let free: Arc<str> = "meta-llama/llama-3.3-70b-instruct:free".into();
    let mut now = Instant::now();
    let mut group = c.benchmark_group("admit");
    for (name, key, model, is_free) in [
        ("rpm_and_concurrency", "sk-rate", &paid, false),
        ("rpm_concurrency_and_budget", "sk-budget", &paid, false),
        ("no_limits", "sk-open", &paid, false),
        ("free_model", "sk-open", &free, true),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                now += STEP;
                let admission = limiter.admit(black_box(key), ask(model, is_free, now)).unwrap();
                drop(black_box(admission));
            })
        });
    }
    let held = limiter.admit("sk-one", ask(&paid, false, now)).unwrap();
    group.bench_function("refused_concurrency", |b| {
        b.iter(|| limiter.admit(black_box("sk-one"), ask(&paid, false, now)).unwrap_err())
    });
    drop(held);
    group.finish();
}

criterion_group!(benches, admit);
criterion_main!(benches);
