//! Retry, backoff, fallback, cooldown, retry budget and deadline: the one home
//! of the router's policy for failed upstream attempts.
//!
//! [`Retrier::run`] drives the upstream attempts of one client request across
//! the model's providers. The caller supplies a closure that makes a single
//! attempt and classifies a failure as a [`FailureKind`]; it never sleeps,
//! counts or decides anything about retries itself. This module knows nothing
//! about HTTP types: statuses are plain `u16`s.
//!
//! # The rules
//!
//! **What is retried.** Only failures before the first byte reached the client:
//!
//! | failure                                                  | same provider              | then                |
//! |----------------------------------------------------------|----------------------------|---------------------|
//! | 429, 500, 502, 503, 504, 529, connect error, timeout before the first byte, reset or incomplete response before any byte reached the client | retried with backoff until `attempts_per_provider` attempts | fall back |
//! | 401, 403, 404                                            | not retried                | fall back at once   |
//! | any other 5xx (501, 505, …)                              | not retried                | fall back at once   |
//! | any other 4xx (400, 408, 413, 422, …)                    | not retried                | stop: [`GiveUpReason::NotRetryable`] |
//! | after the first streamed byte ([`FailureKind::AfterFirstByte`]) | not retried         | stop at once: [`GiveUpReason::AfterFirstByte`] |
//!
//! 401/403/404 fall back because they speak about the provider, not the
//! request: the provider may not serve this model, or the router's key for it
//! may be bad, and the next provider may well answer. Other 4xx say the request
//! itself is wrong (malformed, too large, unprocessable), so every provider
//! would refuse it. An unusual 5xx is not worth a second try on the provider
//! that produced it, but is not the request's fault either. A status filed
//! under the wrong variant is read by its number (`ClientError(503)` is a
//! `Server(503)`, `Server(529)` is `Overloaded`, `ClientError(429)` is
//! `RateLimited`), see [`FailureKind::normalized`].
//!
//! **Backoff.** The k-th retry on a provider waits uniform(0, min(cap,
//! base × factor^(k−1))) ("full jitter", [`RetryPolicy::backoff_ceiling`];
//! the factor is 2 unless configured), and
//! never less than the upstream's `Retry-After`: the wait is max(jittered,
//! retry_after). An upstream `Retry-After` is clamped to [`MAX_RETRY_AFTER`].
//! Moving to the next provider does not wait.
//!
//! **Deadline.** A request gets `deadline` from the start of [`Retrier::run`].
//! No attempt starts at or after it ([`GiveUpReason::DeadlineExceeded`]). A
//! wait that would reach it is not slept: the provider is abandoned and the
//! loop falls back to the next one, or gives up when none is left. Attempts
//! are never cancelled by the loop (an attempt may already be streaming to
//! the client); the caller bounds the wait for each attempt's first byte by
//! [`AttemptCtx::first_byte_deadline`] = min(start of attempt +
//! `first_byte_timeout`, deadline).
//!
//! **Fallback.** Providers are tried in the order given. The loop leaves a
//! provider after `attempts_per_provider` attempts, after a failure that falls
//! back at once, when a wait would reach the deadline, or when the provider is
//! cooling down. A provider that is cooling down gets no attempt at all. If
//! every provider is cooling down when the request starts, the loop gives up at
//! once with [`GiveUpReason::AllCoolingDown`] rather than hammer them.
//!
//! **Cooldown.** [`ProviderHealth`] counts each provider's consecutive 429s
//! (429s not separated by a success; other failures neither count nor reset).
//! At `cooldown_after` of them the provider cools down until now +
//! max(cooldown, its Retry-After). A success resets the count but does not
//! end a running cooldown (it was asked for). The count is not reset when a
//! cooldown starts, so the first attempt after the cooldown is a probe: a
//! 429 cools the provider down again at once, a success restores it.
//!
//! **Retry budget.** [`RetryBudget`] counts client requests and retries in a
//! sliding window. Each client request counts once, when [`Retrier::run`]
//! starts. Every attempt after the first one of a request (a retry on the same
//! provider or the first attempt on a fallback provider) is a retry and is
//! admitted only if, counting it, retries ≤ max(`budget_min_retries`,
//! ⌊`budget_ratio` × requests⌋) in the window. The floor lets a quiet router
//! still retry. When the budget is spent the loop stops and returns the last
//! failure ([`GiveUpReason::BudgetExhausted`]): no retry storm.
//!
//! **What the client sees** ([`Exhausted::client_status`]):
//!
//! | reason                                  | status |
//! |-----------------------------------------|--------|
//! | `AllCoolingDown`                        | 429    |
//! | `DeadlineExceeded`                      | 504    |
//! | `NotRetryable`                          | the upstream's own 4xx, passed through (400, 413, 422, …) |
//! | `AfterFirstByte`                        | 502 (for the error chunk: the stream has begun with 200) |
//! | `AllProvidersFailed`, `BudgetExhausted` | by the last failure: 429 for a rate limit; 503 for overloaded (529) or 503; 504 for a timeout or 504; 502 for everything else (other 5xx, connect, reset, 401/403/404, or no attempt at all) |
//!
//! [`Exhausted::retry_after`] suggests a `Retry-After` for a 429: the smallest
//! remaining cooldown of the request's providers or remaining `Retry-After` of
//! the last 429 each provider gave; for a 503, the remaining `Retry-After` of
//! the last failure. When nothing is known, a 429 or a 503 still suggests
//! [`DEFAULT_CLIENT_RETRY_AFTER`]: a refusal always says when to come back.
//! Other statuses suggest none.
//!
//! **RetryDefects.** [`RetryDefects`] make the router misbehave on purpose so the
//! harness can prove its checks catch it. Test-only; every flag bends exactly
//! one rule, documented on its field.

mod budget;
mod cooldown;
mod policy;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;

pub use budget::{BudgetSnapshot, RetryBudget};
pub use cooldown::ProviderHealth;
pub use policy::{
    BUDGET_BUCKETS, DEFAULT_BACKOFF_FACTOR, MAX_COOLDOWN, MAX_DEADLINE, MAX_RETRY_AFTER, MIN_BUDGET_WINDOW,
    RetryDefects, RetryPolicy, RetryPolicyBuilder, RetryPolicyError, UnknownDefect,
};

/// The `Retry-After` a 429 or 503 suggests when neither a cooldown nor an
/// upstream `Retry-After` says more.
pub const DEFAULT_CLIENT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A provider as the retry loop knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProviderRef {
    /// The provider's router-wide id (its index in the router's provider
    /// table): the key of its [`ProviderHealth`], shared by every model it serves.
    pub id: usize,
    /// Its name, for attempt records.
    pub name: Arc<str>,
}

impl ProviderRef {
    pub fn new(id: usize, name: impl Into<Arc<str>>) -> Self {
        ProviderRef { id, name: name.into() }
    }
}

/// How an upstream attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// 429.
    RateLimited,
    /// A 5xx other than 529.
    Server(u16),
    /// 529 (Anthropic's `overloaded_error`).
    Overloaded,
    /// The connection could not be made.
    Connect,
    /// No first byte within the first-byte timeout.
    Timeout,
    /// The connection was reset, or the response was incomplete, before any
    /// byte reached the client.
    Reset,
    /// A 4xx other than 429.
    ClientError(u16),
    /// The attempt failed after its first streamed byte reached the client.
    AfterFirstByte,
}

impl FailureKind {
    /// The kind its status number says, whatever variant carried it: 429 is
    /// `RateLimited`, 529 `Overloaded`, other 5xx `Server`, other 4xx `ClientError`.
    pub fn normalized(self) -> FailureKind {
        match self {
            FailureKind::Server(status) | FailureKind::ClientError(status) => match status {
                429 => FailureKind::RateLimited,
                529 => FailureKind::Overloaded,
                400..=499 => FailureKind::ClientError(status),
                _ => FailureKind::Server(status),
            },
            other => other,
        }
    }

    /// The upstream HTTP status, when the failure carried one.
    pub fn upstream_status(self) -> Option<u16> {
        match self {
            FailureKind::RateLimited => Some(429),
            FailureKind::Overloaded => Some(529),
            FailureKind::Server(status) | FailureKind::ClientError(status) => Some(status),
            FailureKind::Connect | FailureKind::Timeout | FailureKind::Reset | FailureKind::AfterFirstByte => None,
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::RateLimited => f.write_str("rate limited (429)"),
            FailureKind::Server(status) => write!(f, "upstream error ({status})"),
            FailureKind::Overloaded => f.write_str("overloaded (529)"),
            FailureKind::Connect => f.write_str("connect error"),
            FailureKind::Timeout => f.write_str("no first byte in time"),
            FailureKind::Reset => f.write_str("reset before the first byte"),
            FailureKind::ClientError(status) => write!(f, "refused ({status})"),
            FailureKind::AfterFirstByte => f.write_str("failed after the first byte"),
        }
    }
}

/// A failed attempt, as the caller's closure reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Failure {
    pub kind: FailureKind,
    /// The upstream's `Retry-After`, if it sent one.
    pub retry_after: Option<Duration>,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            retry_after: None,
            message: message.into(),
        }
    }

    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }
}

/// The outcome of one upstream attempt.
pub type AttemptResult<T> = Result<T, Failure>;

/// What the caller's closure is told about the attempt it is to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptCtx {
    /// The provider's position in the slice given to [`Retrier::run`].
    pub provider_index: usize,
    /// 1-based count of attempts on this provider within this request.
    pub attempt_on_provider: u32,
    /// 1-based count of attempts within this request.
    pub attempt_overall: u32,
    /// The request's overall deadline.
    pub deadline: Instant,
    /// When to give up waiting for this attempt's first byte (and report
    /// [`FailureKind::Timeout`]): min(now + `first_byte_timeout`, deadline).
    pub first_byte_deadline: Instant,
}

/// One attempt made, successful or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub provider: ProviderRef,
    /// 1-based, per provider.
    pub attempt_on_provider: u32,
    /// 1-based, within the request.
    pub attempt_overall: u32,
    /// The failure, normalized; `None` for the attempt that succeeded.
    pub kind: Option<FailureKind>,
    /// The upstream HTTP status, when the failure carried one.
    pub status: Option<u16>,
    /// The upstream's `Retry-After` as reported (clamped to [`MAX_RETRY_AFTER`]).
    pub retry_after: Option<Duration>,
    /// The backoff slept just before this attempt.
    pub waited_before: Duration,
    /// When the attempt started, from the start of the request.
    pub started: Duration,
    /// How long the attempt took.
    pub elapsed: Duration,
    /// The failure's message; empty on success.
    pub message: String,
}

/// A request served: the value and every attempt made, the last one successful.
#[derive(Debug)]
pub struct Success<T> {
    pub value: T,
    pub attempts: Vec<AttemptRecord>,
}

/// Why the loop gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GiveUpReason {
    /// Every provider was tried (or skipped while cooling down) and failed.
    AllProvidersFailed,
    /// The deadline passed.
    DeadlineExceeded,
    /// The retry budget is spent.
    BudgetExhausted,
    /// Every provider is cooling down.
    AllCoolingDown,
    /// The upstream refused the request itself (a 4xx other than 401/403/404/429).
    NotRetryable,
    /// The attempt failed after the first byte reached the client.
    AfterFirstByte,
}

impl fmt::Display for GiveUpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GiveUpReason::AllProvidersFailed => "all providers failed",
            GiveUpReason::DeadlineExceeded => "deadline exceeded",
            GiveUpReason::BudgetExhausted => "retry budget exhausted",
            GiveUpReason::AllCoolingDown => "all providers cooling down",
            GiveUpReason::NotRetryable => "not retryable",
            GiveUpReason::AfterFirstByte => "failed after the first byte",
        })
    }
}

/// A request the loop gave up on, with every attempt it made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upstream attempts exhausted: {reason} after {} attempt(s)", .attempts.len())]
pub struct Exhausted {
    attempts: Vec<AttemptRecord>,
    reason: GiveUpReason,
    status: u16,
    retry_after: Option<Duration>,
}

impl Exhausted {
    pub fn attempts(&self) -> &[AttemptRecord] {
        &self.attempts
    }

    pub fn into_attempts(self) -> Vec<AttemptRecord> {
        self.attempts
    }

    pub fn reason(&self) -> GiveUpReason {
        self.reason
    }

    /// The last attempt (a failure), if any attempt was made.
    pub fn last_failure(&self) -> Option<&AttemptRecord> {
        self.attempts.last()
    }

    /// The HTTP status the client should see (see the module docs).
    pub fn client_status(&self) -> u16 {
        self.status
    }

    /// The `Retry-After` to suggest to the client, for a 429 or a 503.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// The client status for a give-up (the table in the module docs).
fn client_status(reason: GiveUpReason, last: Option<FailureKind>) -> u16 {
    match reason {
        GiveUpReason::AllCoolingDown => 429,
        GiveUpReason::DeadlineExceeded => 504,
        GiveUpReason::AfterFirstByte => 502,
        GiveUpReason::NotRetryable => match last {
            Some(FailureKind::ClientError(status)) => status,
            _ => 502,
        },
        GiveUpReason::AllProvidersFailed | GiveUpReason::BudgetExhausted => match last {
            Some(FailureKind::RateLimited) => 429,
            Some(FailureKind::Overloaded | FailureKind::Server(503)) => 503,
            Some(FailureKind::Timeout | FailureKind::Server(504)) => 504,
            _ => 502,
        },
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; a poisoned one is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `t + d`; durations here are validated or clamped to at most a day, so the
/// fallback (`t`) is unreachable.
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).unwrap_or(t)
}

/// What to do after a failure.
enum Disposition {
    Retry,
    FallBack,
    Stop(GiveUpReason),
}

/// The retry loop and the router-wide state it shares between requests:
/// build one per router and share it (`Arc<Retrier>`).
#[derive(Debug)]
pub struct Retrier {
    policy: RetryPolicy,
    health: ProviderHealth,
    budget: RetryBudget,
    rng: Mutex<Xoshiro256PlusPlus>,
    defects: RetryDefects,
}

impl Retrier {
    /// A retrier with fresh health and budget; `seed` seeds the jitter.
    pub fn new(policy: RetryPolicy, seed: u64) -> Self {
        Retrier {
            health: ProviderHealth::new(),
            budget: RetryBudget::new(&policy),
            policy,
            rng: Mutex::new(Xoshiro256PlusPlus::seed_from_u64(seed)),
            defects: RetryDefects::default(),
        }
    }

    /// Turns on deliberate misbehaviour (test-only, see [`RetryDefects`]).
    pub fn with_defects(mut self, defects: RetryDefects) -> Self {
        self.defects = defects;
        self
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    pub fn health(&self) -> &ProviderHealth {
        &self.health
    }

    pub fn budget(&self) -> &RetryBudget {
        &self.budget
    }

    pub fn defects(&self) -> RetryDefects {
        self.defects
    }

    fn effective_retry_after(&self, retry_after: Option<Duration>) -> Option<Duration> {
        if self.defects.ignore_retry_after {
            None
        } else {
            retry_after.map(|d| d.min(MAX_RETRY_AFTER))
        }
    }

    /// The wait before the k-th retry on a provider (k ≥ 1): uniform(0,
    /// [`RetryPolicy::backoff_ceiling`]\(k)), at least `retry_after`.
    pub fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self.policy.backoff_ceiling(retry);
        let jittered = if self.defects.no_jitter || ceiling.is_zero() {
            ceiling
        } else {
            let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(lock(&self.rng).random_range(0..=nanos))
        };
        self.retry_after_to_wait(retry_after)
            .map_or(jittered, |at_least| jittered.max(at_least))
    }

    /// The least wait an upstream `Retry-After` asks of a retry on the same
    /// provider (the `cap-retry-after` defect cuts it to the backoff cap).
    fn retry_after_to_wait(&self, retry_after: Option<Duration>) -> Option<Duration> {
        let wait = self.effective_retry_after(retry_after)?;
        Some(if self.defects.cap_retry_after {
            wait.min(self.policy.cap())
        } else {
            wait
        })
    }

    fn disposition(&self, kind: FailureKind) -> Disposition {
        match kind {
            FailureKind::RateLimited
            | FailureKind::Overloaded
            | FailureKind::Server(500 | 502 | 503 | 504)
            | FailureKind::Connect
            | FailureKind::Timeout
            | FailureKind::Reset => Disposition::Retry,
            FailureKind::Server(_) | FailureKind::ClientError(401 | 403 | 404) => Disposition::FallBack,
            FailureKind::ClientError(_) => Disposition::Stop(GiveUpReason::NotRetryable),
            FailureKind::AfterFirstByte if self.defects.retry_after_first_byte => Disposition::Retry,
            FailureKind::AfterFirstByte => Disposition::Stop(GiveUpReason::AfterFirstByte),
        }
    }

    /// Runs one client request's attempts over `providers`, in order, by the
    /// rules in the module docs. `attempt` makes one upstream attempt.
    pub async fn run<T, F, Fut>(&self, providers: &[ProviderRef], mut attempt: F) -> Result<Success<T>, Exhausted>
    where
        F: FnMut(AttemptCtx) -> Fut,
        Fut: Future<Output = AttemptResult<T>>,
    {
        let start = Instant::now();
        let deadline = later(start, self.policy.deadline());
        self.budget.record_request(start);
        let mut records: Vec<AttemptRecord> = Vec::new();
        if !providers.is_empty() && providers.iter().all(|p| self.health.is_cooling(p.id, start)) {
            return Err(self.give_up(GiveUpReason::AllCoolingDown, providers, start, records));
        }
        for (provider_index, provider) in providers.iter().enumerate() {
            let mut attempt_on_provider = 0u32;
            let mut wait = Duration::ZERO;
            loop {
                let now = Instant::now();
                let left = deadline.saturating_duration_since(now);
                if left.is_zero() {
                    return Err(self.give_up(GiveUpReason::DeadlineExceeded, providers, start, records));
                }
                if !wait.is_zero() && wait >= left {
                    break; // the wait would reach the deadline: fall back
                }
                let cooling = |at: Instant| self.health.cooling_until(provider.id, at);
                if cooling(now).is_some_and(|until| until.saturating_duration_since(now) > wait) {
                    break;
                }
                if !records.is_empty() && !self.defects.retry_forever && !self.budget.try_acquire_retry(now) {
                    return Err(self.give_up(GiveUpReason::BudgetExhausted, providers, start, records));
                }
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                    if cooling(Instant::now()).is_some() {
                        break; // cooled down (by other requests) while we waited
                    }
                }
                attempt_on_provider = attempt_on_provider.saturating_add(1);
                let began = Instant::now();
                let ctx = AttemptCtx {
                    provider_index,
                    attempt_on_provider,
                    attempt_overall: u32::try_from(records.len()).unwrap_or(u32::MAX).saturating_add(1),
                    deadline,
                    first_byte_deadline: later(began, self.policy.first_byte_timeout()).min(deadline),
                };
                let outcome = attempt(ctx).await;
                let ended = Instant::now();
                let mut record = AttemptRecord {
                    provider: provider.clone(),
                    attempt_on_provider,
                    attempt_overall: ctx.attempt_overall,
                    kind: None,
                    status: None,
                    retry_after: None,
                    waited_before: wait,
                    started: began.saturating_duration_since(start),
                    elapsed: ended.saturating_duration_since(began),
                    message: String::new(),
                };
                let failure = match outcome {
                    Ok(value) => {
                        self.health.record_success(provider.id);
                        records.push(record);
                        return Ok(Success {
                            value,
                            attempts: records,
                        });
                    }
                    Err(failure) => failure,
                };
                let kind = failure.kind.normalized();
                let retry_after = failure.retry_after.map(|d| d.min(MAX_RETRY_AFTER));
                if kind == FailureKind::RateLimited {
                    let cooldown_hint = self.effective_retry_after(retry_after);
                    self.health
                        .record_rate_limit(provider.id, cooldown_hint, ended, &self.policy);
                }
                record.kind = Some(kind);
                record.status = kind.upstream_status();
                record.retry_after = retry_after;
                record.message = failure.message;
                records.push(record);
                match self.disposition(kind) {
                    Disposition::Stop(reason) => return Err(self.give_up(reason, providers, start, records)),
                    Disposition::FallBack => break,
                    Disposition::Retry => {
                        let limit = self.policy.attempts_per_provider().get();
                        if !self.defects.retry_forever && attempt_on_provider >= limit {
                            break;
                        }
                        wait = self.backoff(attempt_on_provider, retry_after);
                    }
                }
            }
        }
        let now = Instant::now();
        let reason = if now >= deadline {
            GiveUpReason::DeadlineExceeded
        } else if !providers.is_empty() && providers.iter().all(|p| self.health.is_cooling(p.id, now)) {
            GiveUpReason::AllCoolingDown
        } else {
            GiveUpReason::AllProvidersFailed
        };
        Err(self.give_up(reason, providers, start, records))
    }

    fn give_up(
        &self,
        reason: GiveUpReason,
        providers: &[ProviderRef],
        start: Instant,
        attempts: Vec<AttemptRecord>,
    ) -> Exhausted {
        let now = Instant::now();
        let status = client_status(reason, attempts.last().and_then(|r| r.kind));
        let remaining = |until: Instant| Some(until.saturating_duration_since(now)).filter(|d| !d.is_zero());
        // When the upstream said this attempt's provider would be ready again.
        let hinted = |r: &AttemptRecord| {
            let after = self.effective_retry_after(r.retry_after)?;
            remaining(later(start, r.started.saturating_add(r.elapsed).saturating_add(after)))
        };
        let retry_after = match status {
            429 => {
                let cooling = providers
                    .iter()
                    .filter_map(|p| self.health.cooling_until(p.id, now))
                    .filter_map(remaining);
                let latest_rate_limits = attempts.iter().enumerate().filter(|&(i, r)| {
                    r.kind == Some(FailureKind::RateLimited)
                        && !attempts[i + 1..].iter().any(|later| later.provider.id == r.provider.id)
                });
                let known = cooling.chain(latest_rate_limits.filter_map(|(_, r)| hinted(r))).min();
                Some(known.unwrap_or(DEFAULT_CLIENT_RETRY_AFTER))
            }
            503 => Some(attempts.last().and_then(hinted).unwrap_or(DEFAULT_CLIENT_RETRY_AFTER)),
            _ => None,
        };
        Exhausted {
            attempts,
            reason,
            status,
            retry_after,
        }
    }
}
