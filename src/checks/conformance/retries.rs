//! Upstream backoff, judged from the journals' attempt times:
//! `retry-after-respected`, `backoff-jitter`, `retry-limit`, `retry-storm`,
//! `fallback`, `no-retry-after-first-byte`, `cooldown`; and what the router
//! tells its own client when it refuses: `client-retry-after`.
//!
//! A retry's *gap* is the time from the end of the failed attempt (the mock
//! sent its last byte) to the start of the next attempt of the same request
//! on the same provider (the mock received it). The router cannot start
//! waiting before the end, so the gap is at least its wait.

use std::collections::{BTreeMap, HashMap};

use mock_providers::{Outcome as MockOutcome, Record};

use super::{Index, Judging, broke_mid_stream, error_body_fault, retry_after_fault};
use crate::checks::{CheckResult, Verdict as CheckVerdict};
use crate::load::record::Outcome;
use crate::target::RouterConfig;

/// Clock rounding allowed when comparing a gap with a wait, µs.
const ROUNDING_US: u64 = 1_000;
/// How far past the backoff ceiling a gap may run (the router's own work
/// and a busy scheduler on a shared machine, which has been seen to add
/// 17 ms): half the ceiling, at least this, µs.
const CEILING_SLACK_US: u64 = 25_000;
/// Waits of one retry number needed before their spread is judged.
const MIN_SPREAD_SAMPLES: usize = 8;
/// Waits whose lowest three quarters span less than this share of their
/// median are one fixed wait. Waits only ever come late (a scheduler can
/// delay a timer, never fire it early), so a fixed wait shows as a tight
/// floor with a tail above it; the lowest three quarters ignore the tail,
/// which the interquartile range would let pass for jitter. Jitter as
/// narrow as OpenAI's SDK's (the ceiling × U[0.75, 1]) spans about 16 %;
/// 8 such waits come out under 5 % in fewer than 1 in 200 runs.
const MIN_SPREAD: f64 = 0.05;
/// Waits of one retry number above the ceiling and its slack offend when
/// at least one in this many are: fewer are a late tail.
const OVERSHOOT_SHARE_DENOMINATOR: usize = 4;
/// A median wait under this share of its ceiling is no wait at all.
const NO_WAIT_SHARE: f64 = 0.05;
/// The smallest ceiling whose immediate retries are judged, µs: below it,
/// a retry at once and a short wait look alike.
const MIN_JUDGED_CEILING_US: u64 = 10_000;

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
/// `Retry-After` it answered with. The detail says which `Retry-After`
/// values were judged, so that a scenario's long one is seen to have been.
pub fn retry_after_respected(ix: &Index<'_>) -> CheckResult {
    let mut v = Judging::new("retry-after-respected");
    let mut asked_ms: Vec<u64> = Vec::new();
    for (id, failed, next, _) in retries(ix) {
        let Some(wait_ms) = failed.retry_after_ms else { continue };
        v.judged();
        asked_ms.push(wait_ms);
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
    let mut result = v.finish("retries after a Retry-After");
    if let (Some(shortest), Some(longest)) = (asked_ms.iter().min(), asked_ms.iter().max()) {
        let asked = if shortest == longest {
            format!("{shortest} ms")
        } else {
            format!("{shortest} to {longest} ms")
        };
        result.detail = format!("{} (Retry-After {asked})", result.detail);
    }
    result
}

/// The waits without a `Retry-After` of each retry number k (the k-th
/// retry of a request on one provider): (request id, provider, gap µs).
type UnaskedWaits<'a> = BTreeMap<u32, Vec<(&'a str, &'a str, u64)>>;

fn unasked_waits<'a>(ix: &'a Index<'_>) -> UnaskedWaits<'a> {
    let mut by_retry: UnaskedWaits<'a> = BTreeMap::new();
    for (id, failed, next, k) in retries(ix) {
        if failed.retry_after_ms.is_none() {
            let gap = gap_us(failed, next);
            by_retry.entry(k).or_default().push((id, failed.provider.as_str(), gap));
        }
    }
    by_retry
}

/// The ceiling of retry `k`'s wait, µs: min(cap, base × factor^(k−1)) of
/// the router's own backoff when its profile says its code fixes one (no
/// configuration of it could follow the scenario's), else of the
/// scenario's `[router.retry]`.
fn ceiling_us(ix: &Index<'_>, router: &RouterConfig, k: u32) -> u64 {
    let ceiling = match ix.ev.scenario.target.profile().backoff {
        Some(own) => own.ceiling(k),
        None => router.retry.backoff_ceiling(k),
    };
    u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX)
}

/// How far past its ceiling a wait may run, µs.
fn ceiling_slack_us(ceiling_us: u64) -> u64 {
    CEILING_SLACK_US.max(ceiling_us / 2)
}

/// The waits of one retry number and what they say.
struct RetryWaits<'a> {
    k: u32,
    ceiling_us: u64,
    /// Gaps, µs, ascending.
    gaps: Vec<u64>,
    /// The requests behind them, in the index's order.
    ids: Vec<&'a str>,
}

impl<'a> RetryWaits<'a> {
    fn new(k: u32, ceiling_us: u64, waits: &[(&'a str, &'a str, u64)]) -> Self {
        let mut gaps: Vec<u64> = waits.iter().map(|w| w.2).collect();
        gaps.sort_unstable();
        RetryWaits {
            k,
            ceiling_us,
            gaps,
            ids: waits.iter().map(|w| w.0).collect(),
        }
    }

    /// The nearest-rank `share` quantile (0 < share ≤ 1).
    fn quantile(&self, share: f64) -> u64 {
        let rank = (share * self.gaps.len() as f64).ceil() as usize;
        self.gaps[rank.clamp(1, self.gaps.len()) - 1]
    }

    fn median(&self) -> u64 {
        self.quantile(0.5)
    }

    /// Whether there are enough waits to judge how they spread.
    fn judged(&self) -> bool {
        self.gaps.len() >= MIN_SPREAD_SAMPLES
    }

    /// The span of the lowest three quarters of the waits, as a share of
    /// their median (`None` for a zero median).
    fn spread(&self) -> Option<f64> {
        let median = self.median();
        (median > 0).then(|| (self.quantile(0.75) - self.gaps[0]) as f64 / median as f64)
    }

    /// Why these waits are no jittered backoff, when there are enough of
    /// them to say: no wait at all, or one fixed wait.
    fn finding(&self) -> Option<String> {
        if !self.judged() {
            return None;
        }
        let median = self.median();
        let ceiling = self.ceiling_us as f64;
        if self.ceiling_us >= MIN_JUDGED_CEILING_US && (median as f64) < NO_WAIT_SHARE * ceiling {
            return Some(format!(
                "retry {} retried without waiting: median {} ms, {:.1}% of its {} ms ceiling (under {:.0}% is no wait)",
                self.k,
                ms(median),
                100.0 * median as f64 / ceiling,
                ms(self.ceiling_us),
                NO_WAIT_SHARE * 100.0
            ));
        }
        let spread = self.spread()?;
        (spread < MIN_SPREAD).then(|| {
            format!(
                "retry {} is not jittered: the lowest three quarters of its waits span {:.1}% of their median {} ms \
                 (under {:.0}% is a fixed wait)",
                self.k,
                spread * 100.0,
                ms(median),
                MIN_SPREAD * 100.0
            )
        })
    }

    /// `retry 1 ×34: 0.4 to 99.1 ms, median 51.2 ms, ceiling 100.0 ms, spread 92%`.
    fn summary(&self) -> String {
        let spread = match (self.judged(), self.spread()) {
            (true, Some(spread)) => format!(", spread {:.0}%", spread * 100.0),
            (true, None) => String::new(),
            (false, _) => ", too few to judge their spread".to_string(),
        };
        format!(
            "retry {} ×{}: {} to {} ms, median {} ms, ceiling {} ms{spread}",
            self.k,
            self.gaps.len(),
            ms(self.gaps[0]),
            ms(self.quantile(1.0)),
            ms(self.median()),
            ms(self.ceiling_us)
        )
    }
}

/// µs as milliseconds for a sentence.
fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

/// `backoff-jitter`: retries without a `Retry-After`, grouped by retry
/// number k, judged on the waits themselves. More than three quarters of
/// each k's waits (all of them, of four or fewer) are at most the declared
/// ceiling min(cap, base × factor^(k−1)) — the router's own, when its
/// profile says its code fixes one — plus slack for a busy machine. With [`MIN_SPREAD_SAMPLES`] waits of one k, their median is
/// more than a sliver of the ceiling (not a retry at once) and they are
/// spread (not one fixed wait). Fewer waits of every k: skipped, with
/// the counts. The spread is judged on the waits as they were, never
/// clipped at the ceiling.
pub fn backoff_jitter(ix: &Index<'_>, router: &RouterConfig) -> CheckResult {
    let mut v = Judging::new("backoff-jitter");
    let mut groups = Vec::new();
    let mut late_tail = 0;
    for (k, waits) in unasked_waits(ix) {
        let ceiling = ceiling_us(ix, router, k);
        let limit = ceiling + ceiling_slack_us(ceiling);
        let group = RetryWaits::new(k, ceiling, &waits);
        // A wait only ever comes late: a busy router or machine delays a
        // tail of them, while a policy that overshoots its ceiling delays
        // most. So the waits above it offend only when a quarter or more
        // of this retry number's are (any one, of fewer than five).
        let above = waits.iter().filter(|w| w.2 > limit).count();
        let overshoots = above > 0 && above * OVERSHOOT_SHARE_DENOMINATOR >= waits.len();
        if !overshoots {
            late_tail += above;
        }
        for &(id, provider, gap) in &waits {
            v.judged();
            if overshoots && gap > limit {
                v.offend(id, || {
                    format!(
                        "retry {k} on `{provider}` waited {} ms, above the {} ms ceiling",
                        ms(gap),
                        ms(ceiling)
                    )
                });
            }
        }
        groups.push(group);
    }
    let waited_past = v.bad > 0;
    let mut result = v.finish("retries without Retry-After");
    if groups.is_empty() {
        return result;
    }
    let findings: Vec<(&RetryWaits, String)> = groups.iter().filter_map(|g| g.finding().map(|f| (g, f))).collect();
    let mut problems: Vec<String> = Vec::new();
    if waited_past {
        problems.push(result.detail.clone());
    }
    for (group, finding) in &findings {
        problems.push(finding.clone());
        add_offenders(&mut result.offenders, &group.ids);
    }
    let summaries: Vec<String> = groups.iter().map(RetryWaits::summary).collect();
    let spreads: Vec<f64> = groups
        .iter()
        .filter(|g| g.judged())
        .filter_map(RetryWaits::spread)
        .collect();
    result.measured = spreads.iter().copied().reduce(f64::min).unwrap_or(0.0);
    result.bound = MIN_SPREAD;
    result.unit = "share";
    let waits: usize = groups.iter().map(|g| g.gaps.len()).sum();
    (result.verdict, result.detail) = if !problems.is_empty() {
        (
            CheckVerdict::Fail,
            format!("{}. {}", problems.join("; "), summaries.join("; ")),
        )
    } else if groups.iter().all(|g| !g.judged()) {
        (
            CheckVerdict::Skip,
            format!(
                "too few retries without Retry-After to judge their spread ({MIN_SPREAD_SAMPLES} of one retry number \
                 are needed): {}",
                summaries.join("; ")
            ),
        )
    } else {
        (
            CheckVerdict::Pass,
            format!(
                "{waits} retries without Retry-After, under their ceilings{} and spread: {}",
                match late_tail {
                    0 => String::new(),
                    n => format!(" but for a late tail of {n} (under a quarter of their retry number's)"),
                },
                summaries.join("; ")
            ),
        )
    };
    result
}

/// Adds `ids` to `offenders`, up to [`super::MAX_OFFENDERS`], once each.
fn add_offenders(offenders: &mut Vec<String>, ids: &[&str]) {
    for id in ids {
        if offenders.len() >= super::MAX_OFFENDERS {
            return;
        }
        if !offenders.iter().any(|o| o == id) {
            offenders.push((*id).to_string());
        }
    }
}

/// `retry-limit`: no request made more attempts on one provider than the
/// policy allows, told in the words the scenario stated it in
/// (`attempts-per-provider` or `retries-per-provider`).
pub fn retry_limit(ix: &Index<'_>, router: &RouterConfig) -> CheckResult {
    let mut v = Judging::new("retry-limit");
    let limit = router.retry.attempts_per_provider().get();
    let in_retries = ix.ev.scenario.expect.as_ref().is_some_and(|e| e.limit_in_retries);
    for (id, attempts) in &ix.attempts {
        v.judged();
        let mut per_provider: HashMap<&str, u32> = HashMap::new();
        for a in attempts {
            *per_provider.entry(a.provider.as_str()).or_default() += 1;
        }
        if let Some((provider, n)) = per_provider.into_iter().find(|(_, n)| *n > limit) {
            v.offend(id, || over_the_limit(provider, n, limit, in_retries));
        }
    }
    v.finish("requests that reached an upstream")
}

/// `3 attempts on `a`, the limit is 2`, or in retries: `2 retries on `a`,
/// the limit is 1 retry`.
fn over_the_limit(provider: &str, attempts: u32, limit: u32, in_retries: bool) -> String {
    if in_retries {
        let retries = |n: u32| format!("{n} {}", if n == 1 { "retry" } else { "retries" });
        format!(
            "{} on `{provider}`, the limit is {}",
            retries(attempts - 1),
            retries(limit - 1)
        )
    } else {
        format!("{attempts} attempts on `{provider}`, the limit is {limit}")
    }
}

/// The statuses that tell a client to come back later.
const COME_BACK_LATER: [u16; 3] = [429, 503, 529];

/// `client-retry-after`: every 429, 503 or 529 the router answered (after
/// giving up on its upstreams, or by its own limits) says when to come
/// back — a usable `Retry-After` — and is an OpenAI-shaped error.
pub fn client_retry_after(ix: &Index<'_>) -> CheckResult {
    let mut v = Judging::new("client-retry-after");
    for r in ix.ev.records.iter().filter(|r| COME_BACK_LATER.contains(&r.status)) {
        v.judged();
        let faults: Vec<String> = [retry_after_fault(r), error_body_fault(ix, r)]
            .into_iter()
            .flatten()
            .collect();
        if !faults.is_empty() {
            let behind = upstream_attempts(ix.attempts_of(&r.id).len());
            v.offend(&r.id, || format!("{}, {behind}", faults.join("; ")));
        }
    }
    v.finish("refusals (429, 503, 529)")
}

/// What lay behind a refusal: `after 2 upstream attempts`, or the router's own.
fn upstream_attempts(n: usize) -> String {
    match n {
        0 => "with no upstream attempt (the router's own refusal)".to_string(),
        1 => "after 1 upstream attempt".to_string(),
        n => format!("after {n} upstream attempts"),
    }
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
