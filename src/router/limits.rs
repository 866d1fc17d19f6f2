//! Per-key limits, checked before a request is forwarded: request rate per
//! key, concurrent requests per key and model, the `:free` model quotas (20 a
//! minute; 50 a calendar day, 1000 once the key has bought 10 USD), and the
//! in-flight budget (reserved worst-case spend). A refusal carries its status
//! (429, or 402 for the budget), a `Retry-After` and the `x-ratelimit-*` values.
//!
//! Rates use GCRA (the generic cell rate algorithm): one "theoretical arrival
//! time" per key, advanced by `60 s / rate` per admitted request, allowing a
//! burst of a whole minute's allowance. It is exact, needs no timer and no
//! background refill, and tells precisely when the next request fits.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use super::config::FreeLimits;
use super::pricing::Picodollars;

/// A rate of `per_minute` with a burst of the same size.
#[derive(Debug, Clone, Copy)]
struct Gcra {
    interval: Duration,
    tolerance: Duration,
    limit: u32,
    tat: Option<Instant>,
}

impl Gcra {
    fn new(per_minute: NonZeroU32) -> Self {
        let interval = Duration::from_secs(60) / per_minute.get();
        Gcra {
            interval,
            tolerance: interval * (per_minute.get() - 1),
            limit: per_minute.get(),
            tat: None,
        }
    }

    /// Admits one request at `now`, or says how long until one fits.
    fn admit(&mut self, now: Instant) -> Result<RateState, Duration> {
        let tat = self.tat.map_or(now, |t| t.max(now));
        let ahead = tat - now;
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        let next = tat + self.interval;
        self.tat = Some(next);
        Ok(self.state(now, next))
    }

    fn state(&self, now: Instant, tat: Instant) -> RateState {
        let ahead = tat.saturating_duration_since(now);
        let used = ahead.as_nanos().div_ceil(self.interval.as_nanos().max(1));
        RateState {
            limit: self.limit,
            remaining: self.limit.saturating_sub(u32::try_from(used).unwrap_or(u32::MAX)),
            reset: ahead,
        }
    }

    fn peek(&self, now: Instant) -> RateState {
        self.state(now, self.tat.map_or(now, |t| t.max(now)))
    }
}

/// What the `x-ratelimit-*` headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    pub limit: u32,
    pub remaining: u32,
    /// Until the allowance is whole again.
    pub reset: Duration,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    KeyRate,
    Concurrency,
    FreePerMinute,
    FreePerDay,
    InFlightBudget,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: LimitKind,
    /// 429, or 402 for the in-flight budget.
    pub status: u16,
    pub retry_after: Duration,
    pub rate: Option<RateState>,
    pub message: String,
}

/// The per-key settings the limiter enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyLimits {
    pub rpm: Option<NonZeroU32>,
    pub concurrency: Option<NonZeroU32>,
    pub in_flight_budget: Option<Picodollars>,
}

#[derive(Debug)]
struct KeyState {
    limits: KeyLimits,
    rate: Option<Mutex<Gcra>>,
    free_minute: Mutex<Gcra>,
    /// (calendar day, requests that day) for `:free` models.
    free_day: Mutex<(i64, u32)>,
    in_flight: Mutex<InFlight>,
}

#[derive(Debug, Default)]
struct InFlight {
    per_model: HashMap<Arc<str>, u32>,
    spend: Picodollars,
}

/// A request being served; dropping it frees its concurrency slot and budget.
#[derive(Debug)]
pub struct Admission {
    state: Arc<KeyState>,
    model: Arc<str>,
    spend: Picodollars,
    /// The rate state to report on the response.
    pub rate: Option<RateState>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut in_flight = self.state.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = in_flight.per_model.get_mut(&self.model) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                in_flight.per_model.remove(&self.model);
            }
        }
        in_flight.spend -= self.spend;
    }
}

/// What a request asks of the limiter.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub model: &'a Arc<str>,
    pub free: bool,
    /// Credits the key has bought in total (for the free daily quota).
    pub purchased: Picodollars,
    /// The worst-case cost reserved for this request.
    pub worst_case: Picodollars,
    pub now: Instant,
    /// The calendar day now, and the real time until the next one.
    pub day: i64,
    pub until_next_day: Duration,
}

#[derive(Debug)]
pub struct Limiter {
    free: FreeLimits,
    keys: RwLock<HashMap<Arc<str>, Arc<KeyState>>>,
}

impl Limiter {
    pub fn new(free: FreeLimits) -> Self {
        Limiter {
            free,
            keys: RwLock::new(HashMap::new()),
        }
    }

    /// Sets (or replaces) the limits of a key.
    pub fn set_key(&self, key: Arc<str>, limits: KeyLimits) {
        let state = Arc::new(KeyState {
            limits,
            rate: limits.rpm.map(|r| Mutex::new(Gcra::new(r))),
            free_minute: Mutex::new(Gcra::new(self.free.per_minute)),
            free_day: Mutex::new((i64::MIN, 0)),
            in_flight: Mutex::new(InFlight::default()),
        });
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, state);
    }

    /// The key's request-rate state, for `GET /key`.
    pub fn rate(&self, key: &str, now: Instant) -> Option<RateState> {
        let state = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()?;
        let rate = state.rate.as_ref()?;
        Some(rate.lock().unwrap_or_else(PoisonError::into_inner).peek(now))
    }

    /// Admits a request of `key` or refuses it. Checks the cheapest and most
    /// specific limits first and counts nothing against a refused request.
    pub fn admit(&self, key: &str, ask: Ask<'_>) -> Result<Admission, Refusal> {
        let Some(state) = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
        else {
            // A key without limits (created before its limits were set): nothing to enforce.
            return Ok(self.unlimited(&ask));
        };
        let mut in_flight = state.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
        check_in_flight(&state.limits, &in_flight, &ask)?;
        // The free-model counts taken, to give back if the key rate refuses.
        let free_taken = if ask.free {
            Some(self.take_free(&state, &ask)?)
        } else {
            None
        };
        let rate = take_rate(&state, &ask, free_taken)?;
        *in_flight.per_model.entry(Arc::clone(ask.model)).or_insert(0) += 1;
        in_flight.spend += ask.worst_case;
        drop(in_flight);
        Ok(Admission {
            state: Arc::clone(&state),
            model: Arc::clone(ask.model),
            spend: ask.worst_case,
            rate,
        })
    }

    /// The admission of a key that has no limits: it counts against nothing.
    fn unlimited(&self, ask: &Ask<'_>) -> Admission {
        let state = Arc::new(KeyState {
            limits: KeyLimits::default(),
            rate: None,
            free_minute: Mutex::new(Gcra::new(self.free.per_minute)),
            free_day: Mutex::new((i64::MIN, 0)),
            in_flight: Mutex::new(InFlight::default()),
        });
        Admission {
            state,
            model: Arc::clone(ask.model),
            spend: Picodollars::ZERO,
            rate: None,
        }
    }

    /// Counts a request to a `:free` model against the key's daily quota
    /// (larger once the key has bought credits) and its per-minute rate.
    /// Returns the per-minute state before the request, to give back.
    fn take_free(&self, state: &KeyState, ask: &Ask<'_>) -> Result<Gcra, Refusal> {
        let mut minute = state.free_minute.lock().unwrap_or_else(PoisonError::into_inner);
        let mut day = state.free_day.lock().unwrap_or_else(PoisonError::into_inner);
        let quota = if ask.purchased >= self.free.purchase_threshold {
            self.free.per_day_after_purchase
        } else {
            self.free.per_day
        };
        let used_today = if day.0 == ask.day { day.1 } else { 0 };
        if used_today >= quota {
            return Err(Refusal {
                kind: LimitKind::FreePerDay,
                status: 429,
                retry_after: ask.until_next_day.max(Duration::from_secs(1)),
                rate: Some(RateState {
                    limit: quota,
                    remaining: 0,
                    reset: ask.until_next_day,
                }),
                message: format!(
                    "free-model requests are limited to {quota} a day for this key; the quota renews at midnight UTC"
                ),
            });
        }
        let before = *minute;
        if let Err(wait) = minute.admit(ask.now) {
            return Err(Refusal {
                kind: LimitKind::FreePerMinute,
                status: 429,
                retry_after: wait,
                rate: Some(minute.peek(ask.now)),
                message: format!("free-model requests are limited to {} a minute", self.free.per_minute),
            });
        }
        *day = (ask.day, used_today + 1);
        Ok(before)
    }
}

/// Refuses a request over the key's concurrency per model (429) or over its
/// in-flight budget (402), given what is in flight now.
fn check_in_flight(limits: &KeyLimits, in_flight: &InFlight, ask: &Ask<'_>) -> Result<(), Refusal> {
    if let Some(max) = limits.concurrency {
        let current = in_flight.per_model.get(ask.model).copied().unwrap_or(0);
        if current >= max.get() {
            return Err(Refusal {
                kind: LimitKind::Concurrency,
                status: 429,
                retry_after: Duration::from_secs(1),
                rate: None,
                message: format!(
                    "too many concurrent requests for this key and model `{}`: the limit is {max}",
                    ask.model
                ),
            });
        }
    }
    if let Some(budget) = limits.in_flight_budget
        && in_flight.spend + ask.worst_case > budget
    {
        return Err(Refusal {
            kind: LimitKind::InFlightBudget,
            status: 402,
            retry_after: Duration::from_secs(1),
            rate: None,
            message: format!(
                "this key's in-flight spend would exceed its budget of {budget}: {} is reserved by requests in flight and this one may cost up to {}",
                in_flight.spend, ask.worst_case
            ),
        });
    }
    Ok(())
}

/// Counts the request against the key's own rate, if it has one. A refusal
/// gives back the free-model counts taken (`free_taken`, the per-minute
/// state before them).
fn take_rate(state: &KeyState, ask: &Ask<'_>, free_taken: Option<Gcra>) -> Result<Option<RateState>, Refusal> {
    let Some(rate) = &state.rate else {
        return Ok(None);
    };
    let wait = match rate.lock().unwrap_or_else(PoisonError::into_inner).admit(ask.now) {
        Ok(r) => return Ok(Some(r)),
        Err(wait) => wait,
    };
    if let Some(before) = free_taken {
        *state.free_minute.lock().unwrap_or_else(PoisonError::into_inner) = before;
        let mut day = state.free_day.lock().unwrap_or_else(PoisonError::into_inner);
        day.1 = day.1.saturating_sub(1);
    }
    let limit = state.limits.rpm.map_or(0, NonZeroU32::get);
    Err(Refusal {
        kind: LimitKind::KeyRate,
        status: 429,
        retry_after: wait,
        rate: Some(RateState {
            limit,
            remaining: 0,
            reset: wait,
        }),
        message: format!("rate limit exceeded: this key may make {limit} requests a minute"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(limits: KeyLimits) -> Limiter {
        let l = Limiter::new(FreeLimits::default());
        l.set_key("k".into(), limits);
        l
    }

    fn ask<'a>(model: &'a Arc<str>, now: Instant) -> Ask<'a> {
        Ask {
            model,
            free: false,
            purchased: Picodollars::ZERO,
            worst_case: Picodollars(10),
            now,
            day: 0,
            until_next_day: Duration::from_secs(3600),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn key_rate_allows_a_minute_burst_then_paces() {
        let l = limiter(KeyLimits {
            rpm: NonZeroU32::new(60),
            ..KeyLimits::default()
        });
        let m: Arc<str> = "m".into();
        let now = Instant::now();
        let held: Vec<_> = (0..60).map(|_| l.admit("k", ask(&m, now)).unwrap()).collect();
        let refusal = l.admit("k", ask(&m, now)).unwrap_err();
        assert_eq!((refusal.kind, refusal.status), (LimitKind::KeyRate, 429));
        assert_eq!(refusal.retry_after, Duration::from_secs(1));
        assert!(l.admit("k", ask(&m, now + Duration::from_secs(1))).is_ok());
        drop(held);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_per_model_and_released_on_drop() {
        let l = limiter(KeyLimits {
            concurrency: NonZeroU32::new(1),
            ..KeyLimits::default()
        });
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let now = Instant::now();
        let first = l.admit("k", ask(&a, now)).unwrap();
        assert_eq!(l.admit("k", ask(&a, now)).unwrap_err().kind, LimitKind::Concurrency);
        let _other_model = l.admit("k", ask(&b, now)).unwrap();
        drop(first);
        assert!(l.admit("k", ask(&a, now)).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_budget_gives_402() {
        let l = limiter(KeyLimits {
            in_flight_budget: Some(Picodollars(25)),
            ..KeyLimits::default()
        });
        let m: Arc<str> = "m".into();
        let now = Instant::now();
        let _a = l.admit("k", ask(&m, now)).unwrap();
        let _b = l.admit("k", ask(&m, now)).unwrap();
        let refusal = l.admit("k", ask(&m, now)).unwrap_err();
        assert_eq!((refusal.kind, refusal.status), (LimitKind::InFlightBudget, 402));
    }

    #[tokio::test(start_paused = true)]
    async fn free_models_have_a_minute_and_a_daily_quota() {
        let l = limiter(KeyLimits::default());
        let m: Arc<str> = "m:free".into();
        let mut now = Instant::now();
        let free = |now, day, purchased| Ask {
            free: true,
            day,
            purchased,
            ..ask(&m, now)
        };
        for _ in 0..20 {
            drop(l.admit("k", free(now, 0, Picodollars::ZERO)).unwrap());
        }
        assert_eq!(
            l.admit("k", free(now, 0, Picodollars::ZERO)).unwrap_err().kind,
            LimitKind::FreePerMinute
        );
        // 30 more over the day reach the quota of 50.
        for _ in 0..30 {
            now += Duration::from_secs(3);
            drop(l.admit("k", free(now, 0, Picodollars::ZERO)).unwrap());
        }
        now += Duration::from_secs(60);
        let refusal = l.admit("k", free(now, 0, Picodollars::ZERO)).unwrap_err();
        assert_eq!(refusal.kind, LimitKind::FreePerDay);
        assert_eq!(refusal.retry_after, Duration::from_secs(3600));
        // A key that bought 10 USD gets 1000 a day; a new day renews the quota.
        let ten = FreeLimits::default().purchase_threshold;
        assert!(l.admit("k", free(now, 0, ten)).is_ok());
        assert!(
            l.admit("k", free(now + Duration::from_secs(3), 1, Picodollars::ZERO))
                .is_ok()
        );
    }
}
