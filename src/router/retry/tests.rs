//! Tests of the retry rules, in virtual time (`start_paused`): sleeps advance
//! the clock at once and exactly.

use std::future::ready;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::*;

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

fn providers(names: &[&str]) -> Vec<ProviderRef> {
    names
        .iter()
        .enumerate()
        .map(|(id, name)| ProviderRef::new(id, *name))
        .collect()
}

fn fail(kind: FailureKind) -> Failure {
    Failure::new(kind, "scripted")
}

fn limited(retry_after: Option<Duration>) -> Failure {
    fail(FailureKind::RateLimited).with_retry_after(retry_after)
}

type Outcome = Result<Success<u16>, Exhausted>;

/// Runs one request whose attempts return what `script` says, at once; also
/// returns each attempt's context and start time.
async fn drive(
    retrier: &Retrier,
    providers: &[ProviderRef],
    mut script: impl FnMut(AttemptCtx) -> AttemptResult<u16>,
) -> (Outcome, Vec<(AttemptCtx, Instant)>) {
    let mut log = Vec::new();
    let outcome = retrier
        .run(providers, |ctx| {
            log.push((ctx, Instant::now()));
            ready(script(ctx))
        })
        .await;
    (outcome, log)
}

fn expect_exhausted(outcome: Outcome) -> Exhausted {
    match outcome {
        Ok(success) => panic!("expected exhaustion, got a success after {:?}", success.attempts),
        Err(exhausted) => exhausted,
    }
}

fn waits(records: &[AttemptRecord]) -> Vec<Duration> {
    records.iter().map(|r| r.waited_before).collect()
}

#[test]
fn default_policy_is_valid_and_the_builder_validates() {
    let defaults = RetryPolicy::default();
    assert_eq!(RetryPolicy::builder().build(), Ok(defaults.clone()));
    assert_eq!(defaults.base(), 200 * MS);
    assert_eq!(defaults.cap(), 5 * SEC);
    assert_eq!(defaults.attempts_per_provider().get(), 3);
    assert_eq!(defaults.deadline(), 30 * SEC);
    assert_eq!(defaults.first_byte_timeout(), 20 * SEC);
    assert_eq!(defaults.budget_ratio(), 0.2);
    assert_eq!(defaults.budget_window(), 10 * SEC);
    assert_eq!(defaults.budget_min_retries(), 10);
    assert_eq!(defaults.cooldown_after().get(), 3);
    assert_eq!(defaults.cooldown(), 10 * SEC);

    let b = RetryPolicy::builder;
    assert_eq!(b().base(Duration::ZERO).build(), Err(RetryPolicyError::ZeroBase));
    assert_eq!(
        b().base(SEC).cap(500 * MS).build(),
        Err(RetryPolicyError::CapBelowBase {
            base: SEC,
            cap: 500 * MS
        })
    );
    assert!(matches!(
        b().deadline(Duration::ZERO).build(),
        Err(RetryPolicyError::BadDeadline { .. })
    ));
    assert!(matches!(
        b().deadline(2 * MAX_DEADLINE).build(),
        Err(RetryPolicyError::BadDeadline { .. })
    ));
    assert_eq!(
        b().first_byte_timeout(Duration::ZERO).build(),
        Err(RetryPolicyError::ZeroFirstByteTimeout)
    );
    for ratio in [f64::NAN, f64::INFINITY, -0.1] {
        assert!(matches!(
            b().budget_ratio(ratio).build(),
            Err(RetryPolicyError::BadBudgetRatio { .. })
        ));
    }
    assert!(matches!(
        b().budget_window(9 * MS).build(),
        Err(RetryPolicyError::BudgetWindowTooShort { .. })
    ));
    assert!(matches!(
        b().cooldown(2 * MAX_COOLDOWN).build(),
        Err(RetryPolicyError::CooldownTooLong { .. })
    ));
    let message = b().base(SEC).cap(MS).build().unwrap_err().to_string();
    assert_eq!(message, "backoff cap 1ms is below the base 1s");
}

#[test]
fn kinds_are_read_by_their_status_number() {
    use FailureKind::*;
    assert_eq!(ClientError(429).normalized(), RateLimited);
    assert_eq!(Server(429).normalized(), RateLimited);
    assert_eq!(Server(529).normalized(), Overloaded);
    assert_eq!(ClientError(503).normalized(), Server(503));
    assert_eq!(Server(404).normalized(), ClientError(404));
    assert_eq!(Server(500).normalized(), Server(500));
    assert_eq!(Overloaded.upstream_status(), Some(529));
    assert_eq!(RateLimited.upstream_status(), Some(429));
    assert_eq!(Reset.upstream_status(), None);
}

#[tokio::test(start_paused = true)]
async fn an_always_failing_provider_gets_its_attempts_then_falls_back_then_gives_up() {
    // The default policy: 3 attempts per provider; one request, so the
    // budget's floor (10) admits its 5 retries.
    let retrier = Retrier::new(RetryPolicy::default(), 1);
    let providers = providers(&["a", "b"]);
    let (outcome, log) = drive(&retrier, &providers, |_| Err(fail(FailureKind::Server(500)))).await;
    let exhausted = expect_exhausted(outcome);

    let made: Vec<_> = exhausted
        .attempts()
        .iter()
        .map(|r| (&*r.provider.name, r.attempt_on_provider))
        .collect();
    assert_eq!(made, [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2), ("b", 3)]);
    let overall: Vec<_> = exhausted.attempts().iter().map(|r| r.attempt_overall).collect();
    assert_eq!(overall, [1, 2, 3, 4, 5, 6]);
    assert!(
        exhausted
            .attempts()
            .iter()
            .all(|r| r.kind == Some(FailureKind::Server(500)) && r.status == Some(500))
    );
    let indexes: Vec<_> = log.iter().map(|(ctx, _)| ctx.provider_index).collect();
    assert_eq!(indexes, [0, 0, 0, 1, 1, 1]);
    // No wait before a first attempt, fallback included.
    let w = waits(exhausted.attempts());
    assert_eq!((w[0], w[3]), (Duration::ZERO, Duration::ZERO));
    assert_eq!(exhausted.reason(), GiveUpReason::AllProvidersFailed);
    assert_eq!(exhausted.client_status(), 502);
    assert_eq!(exhausted.retry_after(), None);
    assert_eq!(
        exhausted.to_string(),
        "upstream attempts exhausted: all providers failed after 6 attempt(s)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_503_then_a_200_succeeds_on_the_second_attempt() {
    let retrier = Retrier::new(RetryPolicy::default(), 2);
    let (outcome, log) = drive(&retrier, &providers(&["a", "b"]), |ctx| match ctx.attempt_overall {
        1 => Err(fail(FailureKind::Server(503))),
        _ => Ok(200),
    })
    .await;
    let success = outcome.unwrap();
    assert_eq!(success.value, 200);
    assert_eq!(log.len(), 2);
    let [first, second] = &success.attempts[..] else {
        panic!("{:?}", success.attempts)
    };
    assert_eq!((first.kind, first.status), (Some(FailureKind::Server(503)), Some(503)));
    assert_eq!(
        (second.kind, second.status, second.attempt_on_provider),
        (None, None, 2)
    );
    assert_eq!(&*second.provider.name, "a");
    assert!(second.waited_before <= 200 * MS);
    assert_eq!(second.started, log[1].1 - log[0].1);
}

#[tokio::test(start_paused = true)]
async fn waits_are_never_shorter_than_retry_after() {
    // 429, 529, 429: two rate limits not in a row with a third, so no cooldown.
    let policy = RetryPolicy::builder().attempts_per_provider(nz(4)).build().unwrap();
    let after = [3 * SEC, 50 * MS, 700 * MS];
    for seed in 0..20 {
        let retrier = Retrier::new(policy.clone(), seed);
        let (outcome, log) = drive(&retrier, &providers(&["a"]), |ctx| match ctx.attempt_overall {
            1 => Err(limited(Some(after[0]))),
            2 => Err(fail(FailureKind::Overloaded).with_retry_after(Some(after[1]))),
            3 => Err(limited(Some(after[2]))),
            _ => Ok(200),
        })
        .await;
        let records = outcome.unwrap().attempts;
        assert_eq!(records.len(), 4);
        for (i, record) in records.iter().enumerate().skip(1) {
            let asked = after[i - 1];
            assert!(
                record.waited_before >= asked,
                "seed {seed}: waited {:?} < {asked:?}",
                record.waited_before
            );
            assert!(
                log[i].1 - log[i - 1].1 >= asked,
                "seed {seed}: attempt {} came too soon",
                i + 1
            );
        }
    }
}

#[test]
fn the_backoff_ceiling_doubles_from_the_base_to_the_cap() {
    let policy = RetryPolicy::default();
    let ceilings: Vec<_> = (0..=7).map(|k| policy.backoff_ceiling(k)).collect();
    let expected = [0, 200, 400, 800, 1600, 3200, 5000, 5000].map(|ms| ms * MS);
    assert_eq!(ceilings, expected);
    for k in 1..6 {
        assert_eq!(
            policy.backoff_ceiling(k + 1),
            (2 * policy.backoff_ceiling(k)).min(policy.cap())
        );
    }
    // 2^(k−1) overflowing is the cap, not a panic.
    assert_eq!(policy.backoff_ceiling(40), policy.cap());
    assert_eq!(policy.backoff_ceiling(u32::MAX), policy.cap());
}

#[test]
fn the_backoff_ceiling_grows_by_the_factor() {
    let policy = |factor: f64| {
        RetryPolicy::builder()
            .base(100 * MS)
            .cap(2 * SEC)
            .factor(factor)
            .build()
            .unwrap()
    };
    let ceilings = |p: &RetryPolicy| (1..=5).map(|k| p.backoff_ceiling(k)).collect::<Vec<_>>();
    let micros = [100_000, 150_000, 225_000, 337_500, 506_250].map(Duration::from_micros);
    assert_eq!(ceilings(&policy(1.5)), micros);
    assert_eq!(ceilings(&policy(4.0)), [100, 400, 1600, 2000, 2000].map(|ms| ms * MS));
    assert_eq!(policy(1.5).backoff_ceiling(u32::MAX), 2 * SEC);
    for bad in [1.0, 0.5, f64::NAN, f64::INFINITY] {
        let refused = RetryPolicy::builder().factor(bad).build();
        assert!(matches!(refused, Err(RetryPolicyError::BadFactor { .. })), "{bad}");
    }
}

#[tokio::test(start_paused = true)]
async fn jittered_waits_cover_zero_to_the_ceiling_for_many_seeds() {
    let policy = RetryPolicy::default();
    for k in 1..=8 {
        let ceiling = policy.backoff_ceiling(k);
        let samples: Vec<_> = (0..500)
            .map(|seed| Retrier::new(policy.clone(), seed).backoff(k, None))
            .collect();
        assert!(samples.iter().all(|&w| w <= ceiling), "k={k}: a wait above {ceiling:?}");
        let (min, max) = (samples.iter().min().unwrap(), samples.iter().max().unwrap());
        // Full jitter: uniform over [0, ceiling], not a fixed or a half-jittered wait.
        assert!(
            *min < ceiling / 20 && *max > ceiling * 19 / 20,
            "k={k}: {min:?}..{max:?} of {ceiling:?}"
        );
    }
    // Seeded: the same seed gives the same waits.
    let draw = |seed| {
        let retrier = Retrier::new(policy.clone(), seed);
        (1..=5).map(|k| retrier.backoff(k, None)).collect::<Vec<_>>()
    };
    assert_eq!(draw(42), draw(42));
    assert_ne!(draw(42), draw(43));

    // The loop's own waits obey the same bounds.
    let policy = RetryPolicy::builder().attempts_per_provider(nz(6)).build().unwrap();
    for seed in 0..50 {
        let retrier = Retrier::new(policy.clone(), seed);
        let (outcome, _) = drive(&retrier, &providers(&["a"]), |_| Err(fail(FailureKind::Connect))).await;
        let exhausted = expect_exhausted(outcome);
        assert_eq!(exhausted.attempts().len(), 6);
        for record in &exhausted.attempts()[1..] {
            assert!(record.waited_before <= policy.backoff_ceiling(record.attempt_on_provider - 1));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn nothing_is_retried_after_the_first_byte() {
    let retrier = Retrier::new(RetryPolicy::default(), 3);
    let start = Instant::now();
    let (outcome, log) = drive(&retrier, &providers(&["a", "b"]), |_| {
        Err(fail(FailureKind::AfterFirstByte))
    })
    .await;
    let exhausted = expect_exhausted(outcome);
    assert_eq!(log.len(), 1);
    assert_eq!(exhausted.reason(), GiveUpReason::AfterFirstByte);
    assert_eq!(exhausted.client_status(), 502);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_cuts_the_loop_with_504() {
    let policy = RetryPolicy::builder()
        .deadline(5 * SEC)
        .first_byte_timeout(2 * SEC)
        .attempts_per_provider(nz(10))
        .build()
        .unwrap();
    let retrier = Retrier::new(policy, 4);
    let start = Instant::now();
    let mut contexts = Vec::new();
    // Each attempt hangs until its first-byte deadline.
    let outcome = retrier
        .run(&providers(&["a", "b"]), |ctx| {
            contexts.push(ctx);
            async move {
                tokio::time::sleep_until(ctx.first_byte_deadline).await;
                AttemptResult::<u16>::Err(fail(FailureKind::Timeout))
            }
        })
        .await;
    let exhausted = expect_exhausted(outcome);
    assert_eq!(start.elapsed(), 5 * SEC);
    assert_eq!(exhausted.reason(), GiveUpReason::DeadlineExceeded);
    assert_eq!(exhausted.client_status(), 504);
    assert_eq!(exhausted.attempts().len(), 3);
    assert!(
        contexts
            .iter()
            .all(|ctx| ctx.deadline == start + 5 * SEC && ctx.first_byte_deadline <= ctx.deadline)
    );
    assert_eq!(contexts[0].first_byte_deadline, start + 2 * SEC);
    assert_eq!(contexts[2].first_byte_deadline, start + 5 * SEC);
}

#[tokio::test(start_paused = true)]
async fn a_wait_that_would_cross_the_deadline_falls_back_at_once() {
    let retrier = Retrier::new(RetryPolicy::default(), 5);
    let start = Instant::now();
    let (outcome, _) = drive(&retrier, &providers(&["a", "b"]), |ctx| match ctx.provider_index {
        0 => Err(limited(Some(60 * SEC))),
        _ => Ok(200),
    })
    .await;
    let success = outcome.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(success.attempts.len(), 2);
    assert_eq!(success.attempts[1].waited_before, Duration::ZERO);

    // With no provider left it gives up at once, passing the rate limit on.
    let (outcome, _) = drive(&retrier, &providers(&["a"]), |_| Err(limited(Some(60 * SEC)))).await;
    let exhausted = expect_exhausted(outcome);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(exhausted.reason(), GiveUpReason::AllProvidersFailed);
    assert_eq!(exhausted.attempts().len(), 1);
    assert_eq!(exhausted.client_status(), 429);
    assert_eq!(exhausted.retry_after(), Some(60 * SEC));
}

#[tokio::test(start_paused = true)]
async fn a_cooling_provider_gets_no_traffic_until_it_expires_while_fallback_serves() {
    let policy = RetryPolicy::builder()
        .attempts_per_provider(nz(1))
        .cooldown_after(nz(3))
        .cooldown(10 * SEC)
        .build()
        .unwrap();
    let retrier = Retrier::new(policy, 6);
    let providers = providers(&["a", "b"]);
    let request = |a_ok: bool| {
        let (retrier, providers) = (&retrier, &providers);
        async move {
            let (outcome, log) = drive(retrier, providers, |ctx| match ctx.provider_index {
                0 if !a_ok => Err(limited(None)),
                _ => Ok(200),
            })
            .await;
            assert_eq!(outcome.unwrap().value, 200);
            log.iter().filter(|(ctx, _)| ctx.provider_index == 0).count()
        }
    };
    let mut a_attempts = 0;
    for _ in 0..6 {
        a_attempts += request(false).await;
    }
    assert_eq!(a_attempts, 3, "the 4th request onwards skips the cooling provider");
    assert!(retrier.health().is_cooling(0, Instant::now()));

    tokio::time::advance(10 * SEC - MS).await;
    assert_eq!(request(false).await, 0);
    tokio::time::advance(2 * MS).await;
    // Expired: a probe; its 429 cools the provider down again at once.
    assert_eq!(request(false).await, 1);
    assert_eq!(request(false).await, 0);
    tokio::time::advance(10 * SEC + MS).await;
    // A success restores it for good.
    assert_eq!(request(true).await, 1);
    assert_eq!(retrier.health().consecutive_rate_limits(0), 0);
    assert_eq!(request(false).await, 1);
    assert_eq!(request(false).await, 1);
    assert!(!retrier.health().is_cooling(0, Instant::now()));
}

#[tokio::test(start_paused = true)]
async fn a_cooldown_lasts_the_retry_after_when_it_is_longer() {
    let policy = RetryPolicy::builder()
        .cooldown_after(nz(1))
        .cooldown(10 * SEC)
        .build()
        .unwrap();
    let health = ProviderHealth::new();
    let now = Instant::now();
    assert_eq!(
        health.record_rate_limit(7, Some(30 * SEC), now, &policy),
        Some(now + 30 * SEC)
    );
    assert_eq!(health.cooling_until(7, now + 20 * SEC), Some(now + 30 * SEC));
    assert!(!health.is_cooling(7, now + 30 * SEC));
    // A shorter Retry-After does not shorten the cooldown.
    assert_eq!(
        health.record_rate_limit(8, Some(SEC), now, &policy),
        Some(now + 10 * SEC)
    );
    // A provider never seen is healthy.
    assert!(!health.is_cooling(9, now));
}

#[tokio::test(start_paused = true)]
async fn only_consecutive_rate_limits_start_a_cooldown() {
    let policy = RetryPolicy::default();
    let health = ProviderHealth::new();
    let now = Instant::now();
    assert_eq!(health.record_rate_limit(0, None, now, &policy), None);
    assert_eq!(health.record_rate_limit(0, None, now, &policy), None);
    health.record_success(0);
    assert_eq!(health.record_rate_limit(0, None, now, &policy), None);
    assert_eq!(health.record_rate_limit(0, None, now, &policy), None);
    assert_eq!(health.consecutive_rate_limits(0), 2);
    assert_eq!(health.record_rate_limit(0, None, now, &policy), Some(now + 10 * SEC));
}

#[tokio::test(start_paused = true)]
async fn when_every_provider_cools_down_the_loop_gives_up_at_once_with_429() {
    let policy = RetryPolicy::builder()
        .attempts_per_provider(nz(1))
        .cooldown_after(nz(1))
        .build()
        .unwrap();
    let retrier = Retrier::new(policy, 7);
    let providers = providers(&["a", "b"]);
    let (outcome, _) = drive(&retrier, &providers, |ctx| match ctx.provider_index {
        0 => Err(limited(Some(20 * SEC))),
        _ => Err(limited(None)),
    })
    .await;
    let exhausted = expect_exhausted(outcome);
    assert_eq!(exhausted.attempts().len(), 2);
    assert_eq!(exhausted.reason(), GiveUpReason::AllCoolingDown);
    assert_eq!(exhausted.client_status(), 429);
    assert_eq!(exhausted.retry_after(), Some(10 * SEC), "b's cooldown ends first");

    tokio::time::advance(SEC).await;
    let start = Instant::now();
    let (outcome, log) = drive(&retrier, &providers, |_| Ok(200)).await;
    let exhausted = expect_exhausted(outcome);
    assert!(log.is_empty(), "no attempt while everything cools down");
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(exhausted.reason(), GiveUpReason::AllCoolingDown);
    assert_eq!(exhausted.client_status(), 429);
    assert_eq!(exhausted.retry_after(), Some(9 * SEC));
}

/// A policy whose budget a storm of failing requests must spend.
fn storm_policy() -> RetryPolicy {
    RetryPolicy::builder()
        .budget_ratio(0.1)
        .budget_min_retries(2)
        .budget_window(10 * SEC)
        .deadline(60 * SEC)
        .build()
        .unwrap()
}

/// Starts one always-failing request (2 providers × 3 attempts: up to 5
/// retries); it ends with its start time and what it made.
fn spawn_failing(requests: &mut JoinSet<(Instant, Exhausted)>, retrier: &Arc<Retrier>, providers: &[ProviderRef]) {
    let (retrier, providers) = (Arc::clone(retrier), providers.to_vec());
    requests.spawn(async move {
        let start = Instant::now();
        let outcome = retrier
            .run(&providers, |_| {
                ready(AttemptResult::<u16>::Err(fail(FailureKind::Server(502))))
            })
            .await;
        (start, expect_exhausted(outcome))
    });
}

/// Checks the storm policy's budget at each retry it admitted: the retries
/// admitted in the 9 s up to it (itself included) are at most max(2, ⌊0.1 ×
/// requests started in the 10 s up to it⌋). (The window is ten 1 s buckets,
/// the current one partial, so it spans between 9 and 10 s.) Returns the
/// number of retries.
fn assert_budget_held(ended: &[(Instant, Exhausted)]) -> usize {
    let requests: Vec<Instant> = ended.iter().map(|(start, _)| *start).collect();
    // A retry is admitted just before its backoff sleep.
    let admitted: Vec<Instant> = ended
        .iter()
        .flat_map(|(start, e)| {
            e.attempts()[1..]
                .iter()
                .map(move |r| *start + r.started - r.waited_before)
        })
        .collect();
    for &t in &admitted {
        let retries = admitted.iter().filter(|&&r| r <= t && r + 9 * SEC > t).count();
        let recent = requests.iter().filter(|&&q| q <= t && q + 10 * SEC > t).count();
        assert!(
            retries <= (recent / 10).max(2),
            "{retries} retries for {recent} requests at {t:?}"
        );
    }
    admitted.len()
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_failing_requests_cannot_cause_a_retry_storm() {
    let retrier = Arc::new(Retrier::new(storm_policy(), 8));
    let providers = providers(&["a", "b"]);
    let mut requests = JoinSet::new();
    for _ in 0..200 {
        spawn_failing(&mut requests, &retrier, &providers);
    }
    let ended = requests.join_all().await;
    let retries = assert_budget_held(&ended);
    // Without a budget: 200 × 5 retries.
    assert!((2..=20).contains(&retries), "{retries} retries for 200 requests");
    let spent = ended
        .iter()
        .filter(|(_, e)| e.reason() == GiveUpReason::BudgetExhausted)
        .count();
    assert!(spent >= 180, "{spent}");
    // A spent budget still answers with the last failure's status.
    assert!(ended.iter().all(|(_, e)| e.client_status() == 502));
}

#[tokio::test(start_paused = true)]
async fn a_steady_storm_gets_its_budget_back_as_the_window_slides() {
    let retrier = Arc::new(Retrier::new(storm_policy(), 9));
    let providers = providers(&["a", "b"]);
    let mut requests = JoinSet::new();
    // 10 failing requests a second for 60 s.
    for _ in 0..600 {
        spawn_failing(&mut requests, &retrier, &providers);
        tokio::time::sleep(100 * MS).await;
    }
    let ended = requests.join_all().await;
    let retries = assert_budget_held(&ended);
    // About a tenth of the requests: not a lifetime cap of 10, the window slides.
    assert!(
        (40..=80).contains(&retries),
        "{retries} retries for 600 requests in 60 s"
    );
}

#[tokio::test(start_paused = true)]
async fn the_budget_floor_lets_a_quiet_router_retry_and_a_spent_budget_stops_at_once() {
    let budget = RetryBudget::new(&storm_policy());
    let now = Instant::now();
    budget.record_request(now);
    assert!(
        budget.try_acquire_retry(now) && budget.try_acquire_retry(now),
        "the floor of 2"
    );
    assert!(!budget.try_acquire_retry(now));
    assert_eq!(
        budget.snapshot(now),
        BudgetSnapshot {
            requests: 1,
            retries: 2,
            limit: 2
        }
    );
    for _ in 0..39 {
        budget.record_request(now);
    }
    assert_eq!(budget.snapshot(now).limit, 4, "⌊0.1 × 40⌋");
    assert!(budget.try_acquire_retry(now) && budget.try_acquire_retry(now));
    assert!(!budget.try_acquire_retry(now));
    // The window has passed: everything has left it.
    assert_eq!(
        budget.snapshot(now + 10 * SEC),
        BudgetSnapshot {
            requests: 0,
            retries: 0,
            limit: 2
        }
    );

    // No budget at all: the first failure ends the request, with its status.
    let policy = RetryPolicy::builder()
        .budget_ratio(0.0)
        .budget_min_retries(0)
        .build()
        .unwrap();
    let retrier = Retrier::new(policy, 10);
    let (outcome, log) = drive(&retrier, &providers(&["a", "b"]), |_| Err(limited(Some(2 * SEC)))).await;
    let exhausted = expect_exhausted(outcome);
    assert_eq!(log.len(), 1);
    assert_eq!(exhausted.reason(), GiveUpReason::BudgetExhausted);
    assert_eq!(
        (exhausted.client_status(), exhausted.retry_after()),
        (429, Some(2 * SEC))
    );
}

#[test]
fn the_client_status_follows_the_reason_then_the_last_failure() {
    use FailureKind::*;
    use GiveUpReason::*;
    let cases = [
        (AllCoolingDown, None, 429),
        (AllCoolingDown, Some(Server(500)), 429),
        (DeadlineExceeded, Some(RateLimited), 504),
        (GiveUpReason::AfterFirstByte, Some(FailureKind::AfterFirstByte), 502),
        (NotRetryable, Some(ClientError(400)), 400),
        (NotRetryable, Some(ClientError(413)), 413),
        (NotRetryable, Some(ClientError(422)), 422),
        (AllProvidersFailed, Some(RateLimited), 429),
        (BudgetExhausted, Some(RateLimited), 429),
        (AllProvidersFailed, Some(Overloaded), 503),
        (AllProvidersFailed, Some(Server(503)), 503),
        (BudgetExhausted, Some(Server(503)), 503),
        (AllProvidersFailed, Some(Timeout), 504),
        (AllProvidersFailed, Some(Server(504)), 504),
        (AllProvidersFailed, Some(Server(500)), 502),
        (AllProvidersFailed, Some(Server(502)), 502),
        (AllProvidersFailed, Some(Connect), 502),
        (AllProvidersFailed, Some(Reset), 502),
        (AllProvidersFailed, Some(ClientError(401)), 502),
        (AllProvidersFailed, Some(ClientError(404)), 502),
        (AllProvidersFailed, None, 502),
    ];
    for (reason, last, status) in cases {
        assert_eq!(client_status(reason, last), status, "{reason:?} after {last:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn client_errors_stop_or_fall_back_by_status() {
    let retrier = Retrier::new(RetryPolicy::default(), 11);
    let providers = providers(&["a", "b"]);
    for status in [400, 408, 413, 422] {
        let (outcome, log) = drive(&retrier, &providers, |_| Err(fail(FailureKind::ClientError(status)))).await;
        let exhausted = expect_exhausted(outcome);
        assert_eq!(log.len(), 1, "{status} is the request's fault: no retry, no fallback");
        assert_eq!(
            (exhausted.reason(), exhausted.client_status()),
            (GiveUpReason::NotRetryable, status)
        );
    }
    for status in [401, 403, 404] {
        let (outcome, log) = drive(&retrier, &providers, |ctx| match ctx.provider_index {
            0 => Err(fail(FailureKind::ClientError(status))),
            _ => Ok(200),
        })
        .await;
        assert_eq!(outcome.unwrap().attempts.len(), 2, "{status} falls back at once");
        assert_eq!(log[1].0.provider_index, 1);
        let (outcome, _) = drive(&retrier, &providers, |_| Err(fail(FailureKind::ClientError(status)))).await;
        let exhausted = expect_exhausted(outcome);
        assert_eq!(exhausted.attempts().len(), 2);
        assert_eq!(
            (exhausted.reason(), exhausted.client_status()),
            (GiveUpReason::AllProvidersFailed, 502)
        );
    }
    // An unusual 5xx: not retried on its provider, but the next one is tried.
    let (outcome, _) = drive(&retrier, &providers, |_| Err(fail(FailureKind::Server(501)))).await;
    assert_eq!(expect_exhausted(outcome).attempts().len(), 2);
    // 529s everywhere: 503, with the last Retry-After.
    let retrier = Retrier::new(RetryPolicy::default(), 11);
    let (outcome, _) = drive(&retrier, &providers, |ctx| {
        let after = SEC * ctx.attempt_overall;
        Err(fail(FailureKind::Overloaded).with_retry_after(Some(after)))
    })
    .await;
    let exhausted = expect_exhausted(outcome);
    assert_eq!(exhausted.attempts().len(), 6);
    assert_eq!(
        (exhausted.client_status(), exhausted.retry_after()),
        (503, Some(6 * SEC))
    );
}

#[test]
fn defects_are_named_as_scenarios_spell_them() {
    let mut defects = RetryDefects::default();
    for name in RetryDefects::NAMES {
        defects.enable(name).unwrap();
    }
    let all = RetryDefects {
        ignore_retry_after: true,
        no_jitter: true,
        retry_forever: true,
        retry_after_first_byte: true,
        cap_retry_after: true,
    };
    assert_eq!(defects, all);
    let error = RetryDefects::default().enable("retry-harder").unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("unknown defect `retry-harder`, expected one of: ignore-retry-after")
    );
}

/// A retrier with only `defects` turned on.
fn with(defects: RetryDefects, policy: RetryPolicy, seed: u64) -> Retrier {
    Retrier::new(policy, seed).with_defects(defects)
}

#[tokio::test(start_paused = true)]
async fn ignore_retry_after_drops_only_the_retry_after_rule() {
    let defect = RetryDefects {
        ignore_retry_after: true,
        ..RetryDefects::default()
    };
    let script = |ctx: AttemptCtx| match ctx.attempt_overall {
        1 | 2 => Err(limited(Some(3 * SEC))),
        _ => Ok(200),
    };
    for seed in 0..10 {
        let (honest, _) = drive(
            &with(RetryDefects::default(), RetryPolicy::default(), seed),
            &providers(&["a"]),
            script,
        )
        .await;
        assert!(waits(&honest.unwrap().attempts)[1..].iter().all(|&w| w >= 3 * SEC));
        let (bent, _) = drive(&with(defect, RetryPolicy::default(), seed), &providers(&["a"]), script).await;
        let attempts = bent.unwrap().attempts;
        assert_eq!(attempts.len(), 3, "the attempt count is unchanged");
        assert_eq!(
            attempts[0].retry_after,
            Some(3 * SEC),
            "still recorded as the upstream sent it"
        );
        // Still jittered under the ceiling, no longer at least Retry-After.
        assert!(attempts[1].waited_before <= 200 * MS && attempts[2].waited_before <= 400 * MS);
    }
    // The cooldown is `cooldown` alone.
    let policy = RetryPolicy::builder()
        .cooldown_after(nz(1))
        .attempts_per_provider(nz(1))
        .build()
        .unwrap();
    let bent = with(defect, policy.clone(), 0);
    let honest = with(RetryDefects::default(), policy, 0);
    for retrier in [&bent, &honest] {
        let (outcome, _) = drive(retrier, &providers(&["a"]), |_| Err(limited(Some(30 * SEC)))).await;
        assert_eq!(expect_exhausted(outcome).client_status(), 429);
    }
    let now = Instant::now();
    assert_eq!(bent.health().cooling_until(0, now), Some(now + 10 * SEC));
    assert_eq!(honest.health().cooling_until(0, now), Some(now + 30 * SEC));
}

#[tokio::test(start_paused = true)]
async fn no_jitter_waits_exactly_the_ceiling_and_still_honours_retry_after() {
    let defect = RetryDefects {
        no_jitter: true,
        ..RetryDefects::default()
    };
    let five = RetryPolicy::builder().attempts_per_provider(nz(5)).build().unwrap();
    let failing = |_: AttemptCtx| Err(fail(FailureKind::Server(500)));
    let (bent, _) = drive(&with(defect, five.clone(), 12), &providers(&["a"]), failing).await;
    let expected = [0, 200, 400, 800, 1600].map(|ms| ms * MS);
    assert_eq!(waits(expect_exhausted(bent).attempts()), expected);
    let (honest, _) = drive(&with(RetryDefects::default(), five, 12), &providers(&["a"]), failing).await;
    assert_ne!(waits(expect_exhausted(honest).attempts()), expected);

    let (bent, _) = drive(&with(defect, RetryPolicy::default(), 12), &providers(&["a"]), |ctx| {
        Err(fail(FailureKind::Overloaded).with_retry_after(Some(ctx.attempt_overall * 300 * MS)))
    })
    .await;
    assert_eq!(
        waits(expect_exhausted(bent).attempts()),
        [0, 300, 600].map(|ms| ms * MS)
    );
}

#[tokio::test(start_paused = true)]
async fn cap_retry_after_cuts_a_long_retry_after_to_the_cap_only() {
    let defect = RetryDefects {
        cap_retry_after: true,
        ..RetryDefects::default()
    };
    // Cap 800 ms: a 150 ms Retry-After is honoured, a 2 s one cut to 800 ms.
    let policy = RetryPolicy::builder()
        .base(200 * MS)
        .cap(800 * MS)
        .attempts_per_provider(nz(2))
        .cooldown_after(nz(100))
        .build()
        .unwrap();
    let asking = |after: Duration| {
        move |ctx: AttemptCtx| match ctx.attempt_overall {
            1 => Err(limited(Some(after))),
            _ => Ok(200),
        }
    };
    for (after, bent_wait) in [(150 * MS, 150 * MS), (2 * SEC, 800 * MS)] {
        let (bent, _) = drive(&with(defect, policy.clone(), 15), &providers(&["a"]), asking(after)).await;
        let wait = bent.unwrap().attempts[1].waited_before;
        assert!(wait >= bent_wait && wait <= 800 * MS, "{after:?}: waited {wait:?}");
        let (honest, _) = drive(
            &with(RetryDefects::default(), policy.clone(), 15),
            &providers(&["a"]),
            asking(after),
        )
        .await;
        assert!(honest.unwrap().attempts[1].waited_before >= after, "{after:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_refusal_after_giving_up_always_says_when_to_come_back() {
    // No Retry-After upstream and no cooldown: the 1 s default, for 429 and 503.
    let policy = RetryPolicy::builder()
        .attempts_per_provider(nz(2))
        .cooldown_after(nz(100))
        .build()
        .unwrap();
    for (kind, status) in [(FailureKind::RateLimited, 429), (FailureKind::Server(503), 503)] {
        let (outcome, _) = drive(&Retrier::new(policy.clone(), 16), &providers(&["a", "b"]), |_| {
            Err(fail(kind))
        })
        .await;
        let exhausted = expect_exhausted(outcome);
        assert_eq!(exhausted.attempts().len(), 4);
        assert_eq!(
            (exhausted.client_status(), exhausted.retry_after()),
            (status, Some(DEFAULT_CLIENT_RETRY_AFTER))
        );
    }
    // The upstream's own Retry-After, when it gave one, counts from when it was said.
    let (outcome, _) = drive(&Retrier::new(policy.clone(), 16), &providers(&["a"]), |_| {
        Err(limited(Some(3 * SEC)))
    })
    .await;
    let exhausted = expect_exhausted(outcome);
    assert_eq!(exhausted.client_status(), 429);
    assert_eq!(exhausted.retry_after(), Some(3 * SEC));
    // Other statuses suggest nothing.
    let (outcome, _) = drive(&Retrier::new(policy, 16), &providers(&["a"]), |_| {
        Err(fail(FailureKind::Server(500)))
    })
    .await;
    assert_eq!(expect_exhausted(outcome).retry_after(), None);
}

#[tokio::test(start_paused = true)]
async fn retry_forever_drops_the_attempt_limit_and_the_budget_but_not_the_deadline() {
    let defect = RetryDefects {
        retry_forever: true,
        ..RetryDefects::default()
    };
    // No retry budget at all.
    let policy = RetryPolicy::builder()
        .budget_ratio(0.0)
        .budget_min_retries(0)
        .deadline(20 * SEC)
        .build()
        .unwrap();
    let failing = |_: AttemptCtx| Err(fail(FailureKind::Server(500)));
    let (honest, _) = drive(
        &with(RetryDefects::default(), policy.clone(), 13),
        &providers(&["a"]),
        failing,
    )
    .await;
    assert_eq!(exhausted_reason(honest), GiveUpReason::BudgetExhausted);

    let bent = with(defect, policy, 13);
    let start = Instant::now();
    let (outcome, log) = drive(&bent, &providers(&["a"]), failing).await;
    let exhausted = expect_exhausted(outcome);
    // The backoff reaches the 5 s cap: ~10 attempts in 20 s, far over 3.
    assert!(
        exhausted.attempts().len() > 5,
        "{} attempts",
        exhausted.attempts().len()
    );
    assert!(log.iter().all(|(_, at)| *at < start + 20 * SEC));
    assert!(
        start.elapsed() < 20 * SEC,
        "stops when the next wait would reach the deadline"
    );
    assert_eq!(exhausted.reason(), GiveUpReason::AllProvidersFailed);
    // Neither admitted nor counted by the budget.
    assert_eq!(bent.budget().snapshot(Instant::now()).retries, 0);
    // It still stops on a request the upstream refuses, and after the first byte.
    let (outcome, log) = drive(&bent, &providers(&["a"]), |_| Err(fail(FailureKind::ClientError(400)))).await;
    assert_eq!((log.len(), exhausted_reason(outcome)), (1, GiveUpReason::NotRetryable));
    let (outcome, log) = drive(&bent, &providers(&["a"]), |_| Err(fail(FailureKind::AfterFirstByte))).await;
    assert_eq!(
        (log.len(), exhausted_reason(outcome)),
        (1, GiveUpReason::AfterFirstByte)
    );
}

fn exhausted_reason(outcome: Outcome) -> GiveUpReason {
    expect_exhausted(outcome).reason()
}

#[tokio::test(start_paused = true)]
async fn retry_after_first_byte_retries_what_was_already_streamed() {
    let script = |ctx: AttemptCtx| match ctx.attempt_overall {
        1 => Err(fail(FailureKind::AfterFirstByte)),
        _ => Ok(200),
    };
    let (honest, _) = drive(&Retrier::new(RetryPolicy::default(), 14), &providers(&["a"]), script).await;
    assert_eq!(exhausted_reason(honest), GiveUpReason::AfterFirstByte);
    let defect = RetryDefects {
        retry_after_first_byte: true,
        ..RetryDefects::default()
    };
    let (bent, _) = drive(&with(defect, RetryPolicy::default(), 14), &providers(&["a"]), script).await;
    let attempts = bent.unwrap().attempts;
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts[1].waited_before <= 200 * MS,
        "retried with the ordinary backoff"
    );
}
