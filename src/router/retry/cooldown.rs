//! Provider cooldown: consecutive 429s per provider, shared by every request
//! of a router, and the cooldown they start.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{MAX_RETRY_AFTER, RetryPolicy, later, lock};

#[derive(Debug, Clone, Copy, Default)]
struct ProviderState {
    consecutive_rate_limits: u32,
    cooling_until: Option<Instant>,
}

/// Per-provider health shared by every request of a router: consecutive 429
/// counts and cooldowns, keyed by [`ProviderRef::id`](super::ProviderRef::id).
#[derive(Debug, Default)]
pub struct ProviderHealth {
    providers: Mutex<HashMap<usize, ProviderState>>,
}

impl ProviderHealth {
    pub fn new() -> Self {
        Self::default()
    }

    /// When the provider's cooldown ends, if it is cooling down at `now`.
    pub fn cooling_until(&self, provider: usize, now: Instant) -> Option<Instant> {
        lock(&self.providers)
            .get(&provider)
            .and_then(|state| state.cooling_until)
            .filter(|&until| until > now)
    }

    pub fn is_cooling(&self, provider: usize, now: Instant) -> bool {
        self.cooling_until(provider, now).is_some()
    }

    /// 429s from the provider since its last success.
    pub fn consecutive_rate_limits(&self, provider: usize) -> u32 {
        lock(&self.providers)
            .get(&provider)
            .map_or(0, |state| state.consecutive_rate_limits)
    }

    /// Counts a 429 at `now`; at `cooldown_after` consecutive ones the
    /// provider cools down until now + max(cooldown, retry_after) (never
    /// shortening a running cooldown). Returns the cooldown's end if it is
    /// cooling down.
    pub fn record_rate_limit(
        &self,
        provider: usize,
        retry_after: Option<Duration>,
        now: Instant,
        policy: &RetryPolicy,
    ) -> Option<Instant> {
        let mut providers = lock(&self.providers);
        let state = providers.entry(provider).or_default();
        state.consecutive_rate_limits = state.consecutive_rate_limits.saturating_add(1);
        if state.consecutive_rate_limits >= policy.cooldown_after().get() {
            let length = policy
                .cooldown()
                .max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER));
            let until = later(now, length);
            state.cooling_until = Some(state.cooling_until.map_or(until, |running| running.max(until)));
        }
        state.cooling_until.filter(|&until| until > now)
    }

    /// A success resets the provider's 429 count (a running cooldown stays).
    pub fn record_success(&self, provider: usize) {
        if let Some(state) = lock(&self.providers).get_mut(&provider) {
            state.consecutive_rate_limits = 0;
        }
    }
}
