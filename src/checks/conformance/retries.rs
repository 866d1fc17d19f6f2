//! Upstream backoff, judged from the journals' attempt times:
//! `retry-after-respected`, `backoff-jitter`, `retry-limit`, `retry-storm`,
//! `fallback`, `no-retry-after-first-byte`.
//!
//! A retry's *gap* is the time from the end of the failed attempt (the mock
//! sent its last byte) to the start of the next attempt of the same request
//! on the same provider (the mock received it). The router cannot start
//! waiting before the end, so the gap is at least its wait.

use std::collections::{BTreeMap, HashMap};

use mock_providers::{Outcome as MockOutcome, Record};

use super::{Index, Judging, broke_mid_stream};
use crate::checks::{CheckResult, Verdict as CheckVerdict};
use crate::load::record::Outcome;
use crate::target::RouterConfig;

/// Clock rounding allowed when comparing a gap with a wait, µs.
const ROUNDING_US: u64 = 1_000;
/// How far past the backoff ceiling a gap may run (the router's own work
/// and a busy scheduler on a shared machine, which has been seen to add
/// 17 ms): half the ceiling, at least this, µs.
const CEILING_SLACK_US: u64 = 25_000;
/// Jittered gaps needed before their spread is judged.
const MIN_JITTER_SAMPLES: usize = 12;
/// The highest mean gap/ceiling ratio of a jittered backoff: full jitter
/// averages 0.5; a wait at the ceiling every time is 1.
const MAX_MEAN_RATIO: f64 = 0.8;

/// Whether an attempt failed in a way the router retries or falls back from
/// (a status, a reset or a hang before the answer).
fn failed(a: &Record) -> bool {
    !(200..300).contains(&a.status) || !matches!(a.outcome, MockOutcome::Ok | MockOutcome::Malformed)
}

/// The retries of every request: (request id, failed attempt, next attempt
/// on the same provider, which retry on that provider it is, from 1).
fn retries<'a>(ix: &'a Index<'_>) -> impl Iterator<Item = (&'a str, &'a Record, &'a Record, u32)> + 'a {
    ix.attempts.iter().flat_map(|(id, attempts)| {
        let mut out = Vec::new();
        let mut seen: HashMap<(&str, Option<&str>), (u32, &Record)> = HashMap::new();
        for a in attempts {
            let slot = (a.provider.as_str(), a.upstream_key.as_deref());
            if let Some((n, previous)) = seen.get(&slot).copied()
                && failed(previous)
            {
                out.push((*id, previous, *a, n));
            }
            let n = seen.get(&slot).map_or(0, |(n, _)| *n);
            seen.insert(slot, (n + 1, a));
        }
        out
    })
}

fn gap_us(failed: &Record, next: &Record) -> u64 {
    next.received_us.saturating_sub(failed.finished_us)
}

/// `retry-after-respected`: no retry on a provider sooner than the
/// `Retry-After` it answered with.
pub fn retry_after_respected(ix: &Index<'_>) -> CheckResult {
    let mut v = Judging::new("retry-after-respected");
    for (id, failed, next, _) in retries(ix) {
        let Some(wait_ms) = failed.retry_after_ms else { continue };
        v.judged();
        let gap = gap_us(failed, next);
        if gap + ROUNDING_US < wait_ms * 1000 {
            v.offend(id, || {
                format!(
                    "retried `{}` {:.1} ms after a {} with Retry-After {wait_ms} ms",
                    failed.provider,
                    gap as f64 / 1000.0,
                    failed.status
                )
            });
        }
    }
    v.finish("retries after a Retry-After")
}

/// `backoff-jitter`: retries without a `Retry-After` wait within the full
/// jitter band — the k-th retry's gap at most min(cap, base × 2^(k−1)) —
/// and spread across it: the mean gap/ceiling ratio is at most 0.8 (full
/// jitter averages 0.5; waiting the ceiling every time, so that clients
/// that failed together retry together, is 1).
pub fn backoff_jitter(ix: &Index<'_>, router: &RouterConfig) -> CheckResult {
    let mut v = Judging::new("backoff-jitter");
    let mut ratios = Vec::new();
    let mut at_ceiling = Vec::new();
    for (id, failed, next, k) in retries(ix) {
        if failed.retry_after_ms.is_some() {
            continue;
        }
        v.judged();
        let ceiling = u64::try_from(router.retry.backoff_ceiling(k).as_micros()).unwrap_or(u64::MAX);
        let gap = gap_us(failed, next);
        if gap > ceiling + CEILING_SLACK_US.max(ceiling / 2) {
            v.offend(id, || {
                format!(
                    "retry {k} on `{}` waited {:.1} ms, above the {:.1} ms ceiling",
                    failed.provider,
                    gap as f64 / 1000.0,
                    ceiling as f64 / 1000.0
                )
            });
        }
        if ceiling > 0 {
            let ratio = (gap as f64 / ceiling as f64).min(1.0);
            ratios.push(ratio);
            if ratio >= 0.95 && at_ceiling.len() < super::MAX_OFFENDERS {
                at_ceiling.push(id.to_string());
            }
        }
    }
    let band = v.bad;
    let mut result = v.finish("retries without Retry-After");
    if ratios.len() < MIN_JITTER_SAMPLES {
        if result.passed() {
            result.verdict = CheckVerdict::Fail;
            result.detail = format!(
                "only {} jittered retries: at least {MIN_JITTER_SAMPLES} are needed to judge their spread",
                ratios.len()
            );
        }
        return result;
    }
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    let spread = mean <= MAX_MEAN_RATIO;
    result.detail = format!(
        "{} retries, {band} above the backoff ceiling; mean wait {:.0}% of the ceiling (full jitter averages 50%){}",
        ratios.len(),
        mean * 100.0,
        if spread { "" } else { ": the waits are not jittered" }
    );
    result.verdict = CheckVerdict::of(band == 0 && spread);
    result.measured = mean;
    result.bound = MAX_MEAN_RATIO;
    result.unit = "share";
    if !spread && band == 0 {
        result.offenders = at_ceiling;
    }
    result
}

/// `retry-limit`: no request made more attempts on one provider than the
/// policy's `attempts-per-provider`.
pub fn retry_limit(ix: &Index<'_>, router: &RouterConfig) -> CheckResult {
    let mut v = Judging::new("retry-limit");
    let limit = router.retry.attempts_per_provider().get();
    for (id, attempts) in &ix.attempts {
        v.judged();
        let mut per_provider: HashMap<&str, u32> = HashMap::new();
        for a in attempts {
            *per_provider.entry(a.provider.as_str()).or_default() += 1;
        }
        if let Some((provider, n)) = per_provider.into_iter().find(|(_, n)| *n > limit) {
            v.offend(id, || format!("{n} attempts on `{provider}`, the limit is {limit}"));
        }
    }
    v.finish("requests that reached an upstream")
}

/// `retry-storm`: upstream attempts per client request that reached an
/// upstream, at most `max` (the retry budget at work in a 429 storm).
pub fn retry_storm(ix: &Index<'_>, max: f64) -> CheckResult {
    let requests = ix.attempts.len();
    let attempts: usize = ix.attempts.values().map(Vec::len).sum();
    let mut busiest: Vec<_> = ix.attempts.iter().map(|(id, a)| (a.len(), *id)).collect();
    busiest.sort_unstable_by(|a, b| b.cmp(a));
    let ratio = if requests == 0 {
        0.0
    } else {
        attempts as f64 / requests as f64
    };
    let passed = requests > 0 && ratio <= max;
    CheckResult {
        detail: if requests == 0 {
            format!("no request reached an upstream to judge: {}", super::UNEXERCISED)
        } else {
            format!("{attempts} upstream attempts for {requests} requests ({ratio:.2} each)")
        },
        offenders: if passed {
            Vec::new()
        } else {
            busiest
                .into_iter()
                .take(super::MAX_OFFENDERS)
                .map(|(_, id)| id.to_string())
                .collect()
        },
        verdict: if requests == 0 {
            CheckVerdict::Skip
        } else {
            CheckVerdict::of(passed)
        },
        ..crate::checks::result("retry-storm", "ratio", passed, ratio, max)
    }
}

/// `fallback`: a request that failed on a provider and did not end well
/// tried every later provider of its model (in the catalog's order) before
/// giving up, unless the failure was its own fault (a 4xx other than 401,
/// 403, 404, 429) or it had already streamed.
pub fn fallback(ix: &Index<'_>, router: &RouterConfig) -> CheckResult {
    let mut v = Judging::new("fallback");
    for r in ix.ev.records {
        let attempts = ix.attempts_of(&r.id);
        if attempts.is_empty() || !attempts.iter().any(|a| failed(a)) {
            continue;
        }
        let Some(model) = ix.serving_model(router, r) else {
            continue;
        };
        if model.routes.len() < 2 {
            continue;
        }
        v.judged();
        if r.outcome == Outcome::Ok {
            continue;
        }
        let own_fault = attempts.iter().any(|a| {
            matches!(a.status, 400..=499) && !matches!(a.status, 401 | 403 | 404 | 429) || broke_mid_stream(a)
        });
        if own_fault {
            continue;
        }
        let untried = model.routes.iter().find_map(|route| {
            let mock = ix.mock_name(router, route.provider)?;
            (!attempts.iter().any(|a| a.provider == mock)).then_some(mock)
        });
        if let Some(mock) = untried {
            v.offend(&r.id, || {
                format!(
                    "failed with {} after {} attempts without trying `{mock}`",
                    r.status,
                    attempts.len()
                )
            });
        }
    }
    v.finish("requests with a failed attempt on a model with several providers")
}

/// `no-retry-after-first-byte`: once an attempt has streamed content, the
/// request makes no further attempt (it would duplicate what the client has).
pub fn no_retry_after_first_byte(ix: &Index<'_>) -> CheckResult {
    let mut v = Judging::new("no-retry-after-first-byte");
    for (id, attempts) in &ix.attempts {
        let Some(position) = attempts.iter().position(|a| broke_mid_stream(a)) else {
            continue;
        };
        v.judged();
        let later = attempts.len() - position - 1;
        if later > 0 {
            v.offend(id, || {
                format!(
                    "{later} more attempts after `{}` failed having streamed {} tokens",
                    attempts[position].provider, attempts[position].tokens_sent
                )
            });
        }
    }
    v.finish("streams that failed after their first token")
}

/// How long after the event that starts a cooldown an attempt may still
/// arrive (the router had sent it before it learnt of the 429, perhaps on a
/// busy machine), and how close to the cooldown's end one may come early, µs.
const COOLDOWN_MARGIN_US: u64 = 25_000;

/// `cooldown`: a provider that answered `cooldown-after` 429s in a row (not
/// separated by a success, in the order the answers ended) gets no attempt
/// until max(`cooldown`, its `Retry-After`) has passed.
pub fn cooldown(ix: &Index<'_>, router: &RouterConfig) -> CheckResult {
    let mut v = Judging::new("cooldown");
    let after = router.retry.cooldown_after().get();
    let length_us = u64::try_from(router.retry.cooldown().as_micros()).unwrap_or(u64::MAX);
    let mut by_provider: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for a in ix.ev.attempts {
        by_provider.entry(a.provider.as_str()).or_default().push(a);
    }
    for (provider, mut attempts) in by_provider {
        // Cooldowns from the answers, in the order they ended: (start, end).
        attempts.sort_by_key(|a| (a.finished_us, a.seq));
        let mut cooldowns: Vec<(u64, u64, &Record)> = Vec::new();
        let mut in_a_row = 0u32;
        for a in &attempts {
            if a.status == 429 {
                in_a_row += 1;
                if in_a_row >= after {
                    let wait = length_us.max(a.retry_after_ms.unwrap_or(0).saturating_mul(1000));
                    cooldowns.push((a.finished_us, a.finished_us + wait, a));
                }
            } else if (200..300).contains(&a.status) {
                in_a_row = 0;
            }
        }
        if cooldowns.is_empty() {
            continue;
        }
        attempts.sort_by_key(|a| (a.received_us, a.seq));
        for a in attempts {
            let during = cooldowns.iter().find(|(start, end, _)| {
                a.received_us > start + COOLDOWN_MARGIN_US && a.received_us + COOLDOWN_MARGIN_US < *end
            });
            if a.received_us > cooldowns[0].0 {
                v.judged();
            }
            if let Some((start, end, cause)) = during {
                let id = a.correlation_id.as_deref().unwrap_or("?");
                v.offend(id, || {
                    format!(
                        "`{provider}` got an attempt {:.1} ms into a {:.0} ms cooldown that began with 429 number {after} in a row ({})",
                        (a.received_us - start) as f64 / 1000.0,
                        (end - start) as f64 / 1000.0,
                        cause.correlation_id.as_deref().unwrap_or("?")
                    )
                });
            }
        }
    }
    v.finish("attempts after a provider's cooldown began")
}
