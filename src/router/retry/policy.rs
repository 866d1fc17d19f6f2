//! The retry policy: the validated configuration of backoff, deadline,
//! budget and cooldown (its `Default` is the one source of the defaults), and
//! the deliberate [`RetryDefects`] that bend it.

use std::num::NonZeroU32;
use std::time::Duration;

/// The default growth factor of the backoff ceiling between retries.
pub const DEFAULT_BACKOFF_FACTOR: f64 = 2.0;
/// The longest overall deadline a policy accepts.
pub const MAX_DEADLINE: Duration = Duration::from_secs(86_400);
/// The longest cooldown a policy accepts.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(86_400);
/// Upstream `Retry-After` values are clamped to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);
/// The retry budget's sliding window is a ring of this many buckets.
pub const BUDGET_BUCKETS: usize = 10;
/// The shortest budget window: one millisecond per bucket.
pub const MIN_BUDGET_WINDOW: Duration = Duration::from_millis(BUDGET_BUCKETS as u64);

const fn non_zero(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => NonZeroU32::MIN,
    }
}

/// The validated retry policy. [`Default`] is the one source of its defaults;
/// [`RetryPolicy::builder`] starts from them.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    base: Duration,
    cap: Duration,
    factor: f64,
    attempts_per_provider: NonZeroU32,
    deadline: Duration,
    first_byte_timeout: Duration,
    budget_ratio: f64,
    budget_window: Duration,
    budget_min_retries: u32,
    cooldown_after: NonZeroU32,
    cooldown: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(5),
            factor: DEFAULT_BACKOFF_FACTOR,
            attempts_per_provider: non_zero(3),
            deadline: Duration::from_secs(30),
            first_byte_timeout: Duration::from_secs(20),
            budget_ratio: 0.2,
            budget_window: Duration::from_secs(10),
            budget_min_retries: 10,
            cooldown_after: non_zero(3),
            cooldown: Duration::from_secs(10),
        }
    }
}

/// A policy that [`RetryPolicyBuilder::build`] refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RetryPolicyError {
    #[error("backoff base must be positive")]
    ZeroBase,
    #[error("backoff cap {cap:?} is below the base {base:?}")]
    CapBelowBase { base: Duration, cap: Duration },
    #[error("backoff factor must be a finite number > 1, got {factor}")]
    BadFactor { factor: f64 },
    #[error("deadline {deadline:?} must be positive and at most {MAX_DEADLINE:?}")]
    BadDeadline { deadline: Duration },
    #[error("first-byte timeout must be positive")]
    ZeroFirstByteTimeout,
    #[error("retry budget ratio must be a finite number >= 0, got {ratio}")]
    BadBudgetRatio { ratio: f64 },
    #[error("retry budget window {window:?} is shorter than {MIN_BUDGET_WINDOW:?}")]
    BudgetWindowTooShort { window: Duration },
    #[error("cooldown {cooldown:?} is longer than {MAX_COOLDOWN:?}")]
    CooldownTooLong { cooldown: Duration },
}

/// Builds a [`RetryPolicy`] from the defaults; [`build`](Self::build) validates.
#[derive(Debug, Clone, Default)]
pub struct RetryPolicyBuilder {
    policy: RetryPolicy,
}

impl RetryPolicyBuilder {
    /// The first retry's backoff ceiling.
    pub fn base(mut self, base: Duration) -> Self {
        self.policy.base = base;
        self
    }

    /// The largest backoff ceiling.
    pub fn cap(mut self, cap: Duration) -> Self {
        self.policy.cap = cap;
        self
    }

    /// How much the backoff ceiling grows from one retry to the next.
    pub fn factor(mut self, factor: f64) -> Self {
        self.policy.factor = factor;
        self
    }

    pub fn attempts_per_provider(mut self, attempts: NonZeroU32) -> Self {
        self.policy.attempts_per_provider = attempts;
        self
    }

    /// The overall deadline of one client request.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.policy.deadline = deadline;
        self
    }

    pub fn first_byte_timeout(mut self, timeout: Duration) -> Self {
        self.policy.first_byte_timeout = timeout;
        self
    }

    /// Retries allowed per request in the window.
    pub fn budget_ratio(mut self, ratio: f64) -> Self {
        self.policy.budget_ratio = ratio;
        self
    }

    pub fn budget_window(mut self, window: Duration) -> Self {
        self.policy.budget_window = window;
        self
    }

    /// Retries allowed in the window whatever the request count.
    pub fn budget_min_retries(mut self, retries: u32) -> Self {
        self.policy.budget_min_retries = retries;
        self
    }

    /// Consecutive 429s that start a cooldown.
    pub fn cooldown_after(mut self, rate_limits: NonZeroU32) -> Self {
        self.policy.cooldown_after = rate_limits;
        self
    }

    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.policy.cooldown = cooldown;
        self
    }

    pub fn build(self) -> Result<RetryPolicy, RetryPolicyError> {
        let p = self.policy;
        if p.base.is_zero() {
            return Err(RetryPolicyError::ZeroBase);
        }
        if p.cap < p.base {
            return Err(RetryPolicyError::CapBelowBase {
                base: p.base,
                cap: p.cap,
            });
        }
        if !(p.factor.is_finite() && p.factor > 1.0) {
            return Err(RetryPolicyError::BadFactor { factor: p.factor });
        }
        if p.deadline.is_zero() || p.deadline > MAX_DEADLINE {
            return Err(RetryPolicyError::BadDeadline { deadline: p.deadline });
        }
        if p.first_byte_timeout.is_zero() {
            return Err(RetryPolicyError::ZeroFirstByteTimeout);
        }
        if !p.budget_ratio.is_finite() || p.budget_ratio < 0.0 {
            return Err(RetryPolicyError::BadBudgetRatio { ratio: p.budget_ratio });
        }
        if p.budget_window < MIN_BUDGET_WINDOW {
            return Err(RetryPolicyError::BudgetWindowTooShort {
                window: p.budget_window,
            });
        }
        if p.cooldown > MAX_COOLDOWN {
            return Err(RetryPolicyError::CooldownTooLong { cooldown: p.cooldown });
        }
        Ok(p)
    }
}

impl RetryPolicy {
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder::default()
    }

    pub fn base(&self) -> Duration {
        self.base
    }

    pub fn cap(&self) -> Duration {
        self.cap
    }

    pub fn factor(&self) -> f64 {
        self.factor
    }

    pub fn attempts_per_provider(&self) -> NonZeroU32 {
        self.attempts_per_provider
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    pub fn first_byte_timeout(&self) -> Duration {
        self.first_byte_timeout
    }

    pub fn budget_ratio(&self) -> f64 {
        self.budget_ratio
    }

    pub fn budget_window(&self) -> Duration {
        self.budget_window
    }

    pub fn budget_min_retries(&self) -> u32 {
        self.budget_min_retries
    }

    pub fn cooldown_after(&self) -> NonZeroU32 {
        self.cooldown_after
    }

    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }

    /// The upper bound of the k-th retry's jittered wait: min(cap, base ×
    /// factor^(k−1)); zero for k = 0 (no retry, no wait). Whole nanoseconds,
    /// rounded, so a factor of 2 doubles exactly.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let Some(growths) = retry.checked_sub(1) else {
            return Duration::ZERO;
        };
        let growth = self.factor.powi(i32::try_from(growths).unwrap_or(i32::MAX));
        let nanos = self.base.as_nanos() as f64 * growth;
        if nanos >= self.cap.as_nanos() as f64 {
            self.cap
        } else {
            Duration::from_nanos(nanos.round() as u64)
        }
    }
}

/// Deliberate misbehaviour, for the harness to prove that its checks catch
/// it. Test-only: a production router runs with the default, all false.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryDefects {
    /// `ignore-retry-after`: the upstream's `Retry-After` is ignored
    /// everywhere: waits are the jittered backoff alone, a cooldown lasts
    /// `cooldown` alone, and no client `Retry-After` is derived from it
    /// (the client is told the remaining cooldown, or the 1 s default).
    pub ignore_retry_after: bool,
    /// `no-jitter`: every wait is the backoff ceiling itself (still at least
    /// `Retry-After`), so clients that failed together retry together.
    pub no_jitter: bool,
    /// `retry-forever`: no limit of attempts per provider (a retryable failure
    /// is retried on the same provider until the deadline) and no retry budget
    /// (retries are neither checked nor counted). The deadline still holds.
    pub retry_forever: bool,
    /// `retry-after-first-byte`: a failure after the first streamed byte is
    /// retried like a reset, duplicating output the client already has.
    pub retry_after_first_byte: bool,
    /// `cap-retry-after`: an upstream `Retry-After` longer than the backoff
    /// `cap` is cut to the cap before a retry on the same provider (a short
    /// one is still honoured; cooldowns still use the whole value).
    pub cap_retry_after: bool,
}

/// A defect name that [`RetryDefects::enable`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown defect `{name}`, expected one of: {}", RetryDefects::NAMES.join(", "))]
pub struct UnknownDefect {
    pub name: String,
}

impl RetryDefects {
    /// The defect names, as scenarios spell them.
    pub const NAMES: [&'static str; 5] = [
        "ignore-retry-after",
        "no-jitter",
        "retry-forever",
        "retry-after-first-byte",
        "cap-retry-after",
    ];

    /// Turns on the defect named `name` (one of [`RetryDefects::NAMES`]).
    pub fn enable(&mut self, name: &str) -> Result<(), UnknownDefect> {
        let flag = match name {
            "ignore-retry-after" => &mut self.ignore_retry_after,
            "no-jitter" => &mut self.no_jitter,
            "retry-forever" => &mut self.retry_forever,
            "retry-after-first-byte" => &mut self.retry_after_first_byte,
            "cap-retry-after" => &mut self.cap_retry_after,
            _ => return Err(UnknownDefect { name: name.to_string() }),
        };
        *flag = true;
        Ok(())
    }
}
