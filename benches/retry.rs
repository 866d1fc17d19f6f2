//! The router's retry policy: what deciding about a failed upstream attempt
//! costs (retry the same provider after a backoff, fall back to the next one,
//! or give up), apart from the attempts themselves.
//!
//! Group `decide` runs [`Retrier::run`], the loop the router runs for every
//! client request, over two providers with scripted attempts that answer at
//! once (no network): a success at the first attempt (the baseline), a 429
//! with `Retry-After: 1` then a success on the same provider, a 503 then a
//! success after a jittered exponential backoff, a connect error that falls
//! back to the second provider (one attempt per provider), a 503 whose retry
//! the spent budget refuses (give up), and a 400 that is not retried (give
//! up). It runs on a current-thread tokio runtime whose clock is paused, so a
//! backoff is not waited for: the runtime moves its clock to the timer at
//! once, and what is measured is the loop's own work (budget, health,
//! backoff draw, timer, attempt records, the give-up status). The
//! router-wide state (health, budget) is shared by every iteration, as it
//! is by every request of a router; each case's budget is sized so the path
//! does not change as the iterations pile up. Each path is checked once
//! before it is timed.
//!
//! Groups `backoff` ([`RetryPolicy::backoff_ceiling`] and the jittered draw
//! of [`Retrier::backoff`], with and without `Retry-After`), `budget`
//! ([`RetryBudget`]: a request and its retry counted and admitted, a retry
//! refused) and `cooldown` ([`ProviderHealth`]: the check before each
//! attempt, a 429 counted) time the pieces alone.
//!
//! Run with `cargo bench --bench retry`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::{Ready, ready};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tokio::time::Instant;

use gauntlet::router::retry::{
    AttemptCtx, AttemptResult, Exhausted, Failure, FailureKind, GiveUpReason, ProviderHealth, ProviderRef, Retrier,
    RetryBudget, RetryPolicy, Success,
};

const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Advance of the budget's and the health's clock per iteration: a router
/// serving 1,000 requests a second.
const STEP: Duration = Duration::from_millis(1);

/// How the scripted attempts of one case go.
#[derive(Debug, Clone, Copy)]
enum Script {
    /// Every attempt succeeds.
    Ok,
    /// The first attempt fails with this kind (and `Retry-After`), the next succeeds.
    FailOnce(FailureKind, Option<Duration>),
}

impl Script {
    fn attempt(self, ctx: AttemptCtx) -> Ready<AttemptResult<usize>> {
        ready(match self {
            Script::FailOnce(kind, retry_after) if ctx.attempt_overall == 1 => {
                Err(Failure::new(kind, "scripted failure").with_retry_after(retry_after))
            }
            _ => Ok(ctx.provider_index),
        })
    }
}

fn policy() -> RetryPolicy {
    // Ratio 1: every request may retry once, however long the bench runs.
    RetryPolicy::builder().budget_ratio(1.0).build().unwrap()
}

fn providers() -> Vec<ProviderRef> {
    vec![ProviderRef::new(0, "openai"), ProviderRef::new(1, "azure")]
}

/// A current-thread runtime with its clock paused: sleeps end at once.
fn paused_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime")
}

struct Case {
    name: &'static str,
    retrier: Retrier,
    script: Script,
    /// The attempts made and the provider that served, or why it gave up.
    expect: (usize, Result<usize, GiveUpReason>),
}

fn cases() -> Vec<Case> {
    let one_attempt = RetryPolicy::builder()
        .budget_ratio(1.0)
        .attempts_per_provider(NonZeroU32::MIN)
        .build()
        .unwrap();
    let no_budget = RetryPolicy::builder()
        .budget_ratio(0.0)
        .budget_min_retries(0)
        .build()
        .unwrap();
    let fail_once = |kind, retry_after| Script::FailOnce(kind, retry_after);
    vec![
        Case {
            name: "ok_first_attempt",
            retrier: Retrier::new(policy(), 1),
            script: Script::Ok,
            expect: (1, Ok(0)),
        },
        Case {
            name: "rate_limited_retry_after",
            retrier: Retrier::new(policy(), 2),
            script: fail_once(FailureKind::RateLimited, Some(RETRY_AFTER)),
            expect: (2, Ok(0)),
        },
        Case {
            name: "server_error_backoff",
            retrier: Retrier::new(policy(), 3),
            script: fail_once(FailureKind::Server(503), None),
            expect: (2, Ok(0)),
        },
        Case {
            name: "connect_error_fallback",
            retrier: Retrier::new(one_attempt, 4),
            script: fail_once(FailureKind::Connect, None),
            expect: (2, Ok(1)),
        },
        Case {
            name: "give_up_budget_spent",
            retrier: Retrier::new(no_budget, 5),
            script: fail_once(FailureKind::Server(503), None),
            expect: (1, Err(GiveUpReason::BudgetExhausted)),
        },
        Case {
            name: "give_up_not_retryable",
            retrier: Retrier::new(policy(), 6),
            script: fail_once(FailureKind::ClientError(400), None),
            expect: (1, Err(GiveUpReason::NotRetryable)),
        },
    ]
}

async fn run(case: &Case, providers: &[ProviderRef]) -> Result<Success<usize>, Exhausted> {
    let script = case.script;
    case.retrier.run(providers, move |ctx| script.attempt(ctx)).await
}

fn decide(c: &mut Criterion) {
    let runtime = paused_runtime();
    let providers = providers();
    let cases = cases();
    for case in &cases {
        let outcome = runtime.block_on(run(case, &providers));
        let seen = match &outcome {
            Ok(success) => (success.attempts.len(), Ok(success.value)),
            Err(exhausted) => (exhausted.attempts().len(), Err(exhausted.reason())),
        };
        assert_eq!(seen, case.expect, "{}: {outcome:?}", case.name);
    }
    let mut group = c.benchmark_group("decide");
    for case in &cases {
        group.bench_function(case.name, |b| {
            b.to_async(&runtime)
                .iter(|| async { black_box(run(case, black_box(&providers)).await) })
        });
    }
    group.finish();
}

fn backoff(c: &mut Criterion) {
    let retrier = Retrier::new(RetryPolicy::default(), 7);
    let mut group = c.benchmark_group("backoff");
    for retry in [1, 3, 10] {
        group.bench_function(format!("ceiling_retry_{retry}"), |b| {
            b.iter(|| retrier.policy().backoff_ceiling(black_box(retry)))
        });
    }
    for retry in [1, 3] {
        group.bench_function(format!("jittered_retry_{retry}"), |b| {
            b.iter(|| retrier.backoff(black_box(retry), None))
        });
    }
    group.bench_function("jittered_with_retry_after", |b| {
        b.iter(|| retrier.backoff(black_box(1), black_box(Some(RETRY_AFTER))))
    });
    group.finish();
}

fn budget(c: &mut Criterion) {
    let admitting = RetryBudget::new(&policy());
    let spent = RetryBudget::new(
        &RetryPolicy::builder()
            .budget_ratio(0.0)
            .budget_min_retries(0)
            .build()
            .unwrap(),
    );
    let mut now = Instant::now();
    let mut group = c.benchmark_group("budget");
    group.bench_function("request_and_retry_admitted", |b| {
        b.iter(|| {
            now += STEP;
            admitting.record_request(now);
            assert!(admitting.try_acquire_retry(black_box(now)));
        })
    });
    group.bench_function("retry_refused", |b| {
        b.iter(|| {
            now += STEP;
            spent.try_acquire_retry(black_box(now))
        })
    });
    group.finish();
}

fn cooldown(c: &mut Criterion) {
    let policy = policy();
    let health = ProviderHealth::new();
    let mut now = Instant::now();
    // Provider 0 has never been rate limited (most providers, most of the
    // time); provider 1 has a 429 counted and will soon be cooling down.
    health.record_rate_limit(1, None, now, &policy);
    let mut group = c.benchmark_group("cooldown");
    group.bench_function("check_healthy", |b| {
        b.iter(|| health.cooling_until(black_box(0), black_box(now)))
    });
    group.bench_function("count_rate_limit", |b| {
        b.iter(|| {
            now += STEP;
            health.record_rate_limit(black_box(1), Some(RETRY_AFTER), now, &policy)
        })
    });
    group.finish();
}

criterion_group!(benches, decide, backoff, budget, cooldown);
criterion_main!(benches);
