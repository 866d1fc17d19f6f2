//! Limits per upstream API key: requests per minute, tokens per minute and
//! concurrent requests, refused with 429, `Retry-After` and `x-ratelimit-*`.
//!
//! Requests and tokens are token buckets that hold a minute's allowance and
//! refill continuously (as OpenAI describes its limits). A request costs its
//! prompt tokens plus its `max_tokens` (or the model's median output when it
//! sets none) against the token bucket, taken up front.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The limits of one key; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyLimits {
    pub rpm: Option<NonZeroU32>,
    pub tpm: Option<NonZeroU32>,
    pub concurrency: Option<NonZeroU32>,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Requests,
    Tokens,
    Concurrency,
}

/// A refusal: which limit, when to come back, and the headers to send.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub limit: Limit,
    pub retry_after: Duration,
    pub headers: RateHeaders,
    pub message: String,
}

/// The values behind the `x-ratelimit-*` headers at the time of a decision.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateHeaders {
    pub requests: Option<BucketState>,
    pub tokens: Option<BucketState>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketState {
    pub limit: u32,
    pub remaining: u32,
    /// Time until the bucket is full again.
    pub reset: Duration,
}

impl RateHeaders {
    /// Header name and value pairs, OpenAI's names.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::with_capacity(6);
        if let Some(b) = self.requests {
            out.push(("x-ratelimit-limit-requests", b.limit.to_string()));
            out.push(("x-ratelimit-remaining-requests", b.remaining.to_string()));
            out.push(("x-ratelimit-reset-requests", format_reset(b.reset)));
        }
        if let Some(b) = self.tokens {
            out.push(("x-ratelimit-limit-tokens", b.limit.to_string()));
            out.push(("x-ratelimit-remaining-tokens", b.remaining.to_string()));
            out.push(("x-ratelimit-reset-tokens", format_reset(b.reset)));
        }
        out
    }
}

/// Formats a reset time as OpenAI does: `20ms`, `1.5s`, `6m0s`.
pub fn format_reset(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        let s = d.as_secs_f64();
        format!("{}s", (s * 1000.0).round() / 1000.0)
    } else {
        let s = d.as_secs();
        format!("{}m{}s", s / 60, s % 60)
    }
}

#[derive(Debug)]
struct Bucket {
    capacity: f64,
    per_sec: f64,
    level: f64,
    last: Instant,
}

impl Bucket {
    fn new(per_minute: NonZeroU32, now: Instant) -> Self {
        let capacity = f64::from(per_minute.get());
        Bucket {
            capacity,
            per_sec: capacity / 60.0,
            level: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.level = (self.level + dt * self.per_sec).min(self.capacity);
        self.last = now;
    }

    /// Time until `cost` is available (zero when it already is).
    fn wait_for(&self, cost: f64) -> Duration {
        if self.level >= cost {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((cost - self.level) / self.per_sec)
        }
    }

    fn state(&self) -> BucketState {
        BucketState {
            limit: self.capacity as u32,
            remaining: self.level.max(0.0).floor() as u32,
            reset: Duration::from_secs_f64((self.capacity - self.level).max(0.0) / self.per_sec),
        }
    }
}

/// The live limiter of one key.
#[derive(Debug)]
pub struct Limiter {
    limits: KeyLimits,
    buckets: Mutex<(Option<Bucket>, Option<Bucket>)>,
    in_flight: Arc<AtomicU32>,
}

/// Holds a concurrency slot until dropped.
#[derive(Debug)]
pub struct Permit {
    in_flight: Option<Arc<AtomicU32>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(counter) = self.in_flight.take() {
            counter.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Limiter {
    pub fn new(limits: KeyLimits) -> Self {
        let now = Instant::now();
        Limiter {
            limits,
            buckets: Mutex::new((
                limits.rpm.map(|r| Bucket::new(r, now)),
                limits.tpm.map(|t| Bucket::new(t, now)),
            )),
            in_flight: Arc::new(AtomicU32::new(0)),
        }
    }

    pub fn limits(&self) -> KeyLimits {
        self.limits
    }

    /// Admits a request costing `tokens` against the token limit, or says why not.
    pub fn admit(&self, now: Instant, tokens: u32) -> Result<(Permit, RateHeaders), Refusal> {
        let headers = {
            let mut guard = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
            let (requests, token_bucket) = &mut *guard;
            if let Some(b) = requests.as_mut() {
                b.refill(now);
            }
            if let Some(b) = token_bucket.as_mut() {
                b.refill(now);
            }
            let snapshot = |r: &Option<Bucket>, t: &Option<Bucket>| RateHeaders {
                requests: r.as_ref().map(Bucket::state),
                tokens: t.as_ref().map(Bucket::state),
            };
            if let Some(b) = requests.as_ref().filter(|b| b.level < 1.0) {
                let wait = b.wait_for(1.0);
                return Err(Refusal {
                    limit: Limit::Requests,
                    retry_after: wait,
                    headers: snapshot(requests, token_bucket),
                    message: format!(
                        "Rate limit reached for requests per minute: limit {}, used {}. Please try again in {}.",
                        b.capacity,
                        b.capacity as u32,
                        format_reset(wait)
                    ),
                });
            }
            let cost = f64::from(tokens);
            if let Some(b) = token_bucket.as_ref().filter(|b| b.level < cost) {
                let too_large = cost > b.capacity;
                let wait = if too_large {
                    Duration::from_secs(60)
                } else {
                    b.wait_for(cost)
                };
                let message = if too_large {
                    format!(
                        "Request too large for tokens per minute: limit {}, requested {tokens}.",
                        b.capacity
                    )
                } else {
                    format!(
                        "Rate limit reached for tokens per minute: limit {}, requested {tokens}. Please try again in {}.",
                        b.capacity,
                        format_reset(wait)
                    )
                };
                return Err(Refusal {
                    limit: Limit::Tokens,
                    retry_after: wait,
                    headers: snapshot(requests, token_bucket),
                    message,
                });
            }
            if let Some(max) = self.limits.concurrency {
                let taken = self.in_flight.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < max.get()).then_some(n + 1)
                });
                if taken.is_err() {
                    return Err(Refusal {
                        limit: Limit::Concurrency,
                        retry_after: Duration::from_secs(1),
                        headers: snapshot(requests, token_bucket),
                        message: format!("Too many concurrent requests for this key: limit {max}."),
                    });
                }
            }
            if let Some(b) = requests.as_mut() {
                b.level -= 1.0;
            }
            if let Some(b) = token_bucket.as_mut() {
                b.level -= cost;
            }
            snapshot(requests, token_bucket)
        };
        let permit = Permit {
            in_flight: self.limits.concurrency.map(|_| Arc::clone(&self.in_flight)),
        };
        Ok((permit, headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: u32) -> Option<NonZeroU32> {
        NonZeroU32::new(n)
    }

    #[tokio::test(start_paused = true)]
    async fn rpm_refuses_then_refills() {
        let limiter = Limiter::new(KeyLimits {
            rpm: nz(60),
            ..KeyLimits::default()
        });
        let now = Instant::now();
        for _ in 0..60 {
            limiter.admit(now, 10).unwrap();
        }
        let refusal = limiter.admit(now, 10).unwrap_err();
        assert_eq!(refusal.limit, Limit::Requests);
        assert_eq!(refusal.retry_after, Duration::from_secs(1));
        assert_eq!(refusal.headers.requests.unwrap().remaining, 0);
        assert!(limiter.admit(now + Duration::from_secs(1), 10).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn tpm_counts_tokens_and_rejects_oversized() {
        let limiter = Limiter::new(KeyLimits {
            tpm: nz(600),
            ..KeyLimits::default()
        });
        let now = Instant::now();
        limiter.admit(now, 500).unwrap();
        let refusal = limiter.admit(now, 200).unwrap_err();
        assert_eq!(refusal.limit, Limit::Tokens);
        assert_eq!(refusal.retry_after, Duration::from_secs(10));
        assert!(limiter.admit(now, 601).unwrap_err().message.contains("too large"));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_released_on_drop() {
        let limiter = Limiter::new(KeyLimits {
            concurrency: nz(2),
            ..KeyLimits::default()
        });
        let now = Instant::now();
        let a = limiter.admit(now, 1).unwrap();
        let _b = limiter.admit(now, 1).unwrap();
        assert_eq!(limiter.admit(now, 1).unwrap_err().limit, Limit::Concurrency);
        drop(a);
        assert!(limiter.admit(now, 1).is_ok());
    }

    #[test]
    fn reset_format_matches_openai() {
        assert_eq!(format_reset(Duration::from_millis(20)), "20ms");
        assert_eq!(format_reset(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_reset(Duration::from_secs(360)), "6m0s");
    }
}
