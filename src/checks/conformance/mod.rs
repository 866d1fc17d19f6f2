//! Conformance checks: whether the router behaves as DESIGN.md's contract
//! says — bills exactly, backs off on 429, streams unbuffered, retires
//! models on schedule — judged from three independent witnesses:
//!
//! - what the client saw ([`RequestRecord`]: statuses, `usage.cost`, headers,
//!   error bodies, chunk times);
//! - what the mock upstreams saw (the journal [`Record`]s: every attempt, its
//!   times, the usage the mock reported, the system prompt it received);
//! - what the router says of its own accounts ([`Accounts`]: `GET /key`
//!   before and after the run, `GET /generation` for each answer).
//!
//! The expectations (prices, keys, BYOK fee, lifecycle dates, retry policy,
//! system prefixes) come from the scenario's `[router]` table, validated as
//! the reference router would read it; for an external router that table
//! states what the user configured it with.
//!
//! Every check yields a [`CheckResult`] with the measured value, the bound
//! and the first offending request ids, like the SLO checks. The checks are
//! pure functions of the evidence; [`crate::target`] gathers the accounts.

mod billing;
mod lifecycle;
mod retries;
mod streaming;
mod usage;

use std::collections::BTreeMap;
use std::sync::Arc;

use mock_providers::{Outcome as MockOutcome, Record};

use super::{CheckResult, Verdict as CheckVerdict};
use crate::load::plan::Api;
use crate::load::record::{Outcome, RequestRecord};
use crate::scenario::{Conformance, MixEntry, Scenario};
use crate::target::{Accounts, Feature, Model, Picodollars, RouterConfig, usd};
pub use crate::target::{Generation, KeyAccount};

/// How many offending request ids a result lists (as the SLO checks, and
/// `reports/schema.json`, allow).
pub const MAX_OFFENDERS: usize = 5;

/// Everything the conformance checks judge.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    pub scenario: &'a Scenario,
    /// The scenario's `[router]` table, validated: what the router should do.
    pub router: Option<&'a RouterConfig>,
    pub records: &'a [RequestRecord],
    /// Every mock's journal, in any order.
    pub attempts: &'a [Record],
    pub accounts: &'a Accounts,
    /// When the router's calendar clock started (Unix µs on the run's
    /// clock), give or take [`CLOCK_MARGIN_US`]: for lifecycle dates.
    pub router_started_us: u64,
}

/// How far, in real time, a request may be from a lifecycle boundary and
/// still be judged: closer ones could fall either side.
pub const CLOCK_MARGIN_US: u64 = 300_000;

/// The evidence, indexed once for every check.
pub struct Index<'a> {
    pub ev: Evidence<'a>,
    /// Attempts by correlation id (ids in order, so that offenders are the
    /// same on every run), each in the order the mocks received them.
    pub attempts: BTreeMap<&'a str, Vec<&'a Record>>,
}

impl<'a> Index<'a> {
    pub fn new(ev: Evidence<'a>) -> Self {
        let mut attempts: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
        for a in ev.attempts {
            if let Some(id) = a.correlation_id.as_deref() {
                attempts.entry(id).or_default().push(a);
            }
        }
        for list in attempts.values_mut() {
            list.sort_by_key(|a| (a.received_us, a.seq));
        }
        Index { ev, attempts }
    }

    /// A USD amount the router wrote (a cost), read as its profile says it
    /// writes them: exact decimals, or floats rounded to the picodollar.
    pub fn usd(&self, text: &str) -> Option<Picodollars> {
        usd(text, self.ev.scenario.target.profile().precision)
    }

    /// The attempts made for request `id`, in order.
    pub fn attempts_of(&self, id: &str) -> &[&'a Record] {
        self.attempts.get(id).map_or(&[], Vec::as_slice)
    }

    /// The attempt that served request `id`: the latest one the mock
    /// answered with a 2xx.
    pub fn served(&self, id: &str) -> Option<&'a Record> {
        self.attempts_of(id)
            .iter()
            .rev()
            .find(|a| (200..300).contains(&a.status))
            .copied()
    }

    /// The mix entry a record was made from.
    pub fn mix(&self, r: &RequestRecord) -> Option<&'a MixEntry> {
        self.ev.scenario.mix.get(usize::from(r.mix))
    }

    /// The mock provider name of router provider number `index`.
    pub fn mock_name<'r>(&'r self, router: &'r RouterConfig, index: usize) -> Option<&'r str> {
        match &self.ev.scenario.expect {
            Some(expect) => expect.mock_name(index),
            None => router.providers.get(index).map(|p| p.name.as_ref()),
        }
    }

    /// The router provider index of the route of `model` that `attempt`
    /// went to (same mock, same upstream model name).
    pub fn route_of(&self, router: &RouterConfig, model: &Model, attempt: &Record) -> Option<usize> {
        model
            .routes
            .iter()
            .find(|route| {
                self.mock_name(router, route.provider) == Some(attempt.provider.as_str())
                    && attempt.model.as_deref() == Some(&*route.upstream_model)
            })
            .map(|route| route.provider)
    }

    /// The catalog model that serves `r`'s mix entry: the model asked for,
    /// or its replacement once it is deprecated (a grace period or later).
    pub fn serving_model<'r>(&self, router: &'r RouterConfig, r: &RequestRecord) -> Option<&'r Arc<Model>> {
        let asked = router.catalog.get(&self.mix(r)?.model)?;
        match &asked.deprecation {
            Some(d) => router.catalog.get(&d.replacement),
            None => Some(asked),
        }
    }
}

/// Whether an attempt failed after streaming content: a stream the client
/// already had bytes of.
pub fn broke_mid_stream(a: &Record) -> bool {
    a.stream
        && a.tokens_sent > 0
        && matches!(
            a.outcome,
            MockOutcome::FaultStreamError | MockOutcome::Cut | MockOutcome::Reset
        )
}

/// Why a check judged nothing, when the scenario did not exercise it.
pub(super) const UNEXERCISED: &str = "the scenario did not exercise this";

/// The features a scenario is about, whatever its checks: a scenario that
/// speaks the Messages API, crosses a scheduled price change or lets
/// credits expire judges nothing of a router that does not claim the
/// feature (its answers would be judged by rules it never took on).
fn exercised(index: &Index<'_>) -> Vec<Feature> {
    let scenario = index.ev.scenario;
    let mut features = Vec::new();
    if scenario.mix.iter().any(|m| m.api == Api::Messages) {
        features.push(Feature::MessagesApi);
    }
    if let Some(router) = index.ev.router {
        if router.catalog.models().iter().any(|m| !m.price_changes.is_empty()) {
            features.push(Feature::PriceSchedule);
        }
        if router.credit_expiry.is_some() {
            features.push(Feature::CreditExpiry);
        }
    }
    features
}

/// The router feature a check needs, beyond answering requests.
fn needs(check: &Conformance) -> Option<Feature> {
    match check {
        Conformance::NoOverdraft { .. } | Conformance::CreditExpiry => Some(Feature::PrepaidCredits),
        Conformance::GenerationAgrees => Some(Feature::GenerationLookup),
        Conformance::BillingExact | Conformance::NoChargeOnFailure => Some(Feature::ReportedCost),
        Conformance::BalanceDelta => Some(Feature::SpendReadout),
        Conformance::KeyLimits | Conformance::FreeQuota => Some(Feature::PerKeyLimits),
        Conformance::Cooldown => Some(Feature::ProviderCooldown),
        Conformance::RetryStorm { .. } => Some(Feature::RetryBudget),
        Conformance::LifecycleGrace | Conformance::LifecycleRemoved => Some(Feature::ModelLifecycle),
        Conformance::SystemPrefix => Some(Feature::SystemPrefix),
        Conformance::MessagesEvents => Some(Feature::MessagesApi),
        _ => None,
    }
}

/// Judges one conformance check: skipped when the target's profile says
/// its router lacks the feature; a check with nothing to judge is skipped
/// when the scenario did not exercise it, and fails when the router failed
/// every request that could have. A check that judged too little to decide
/// (a skip that says what it saw) stays skipped either way.
pub fn judge(check: &Conformance, index: &Index<'_>) -> CheckResult {
    let profile = index.ev.scenario.target.profile();
    if let Some(feature) = exercised(index)
        .into_iter()
        .chain(needs(check))
        .find(|f| !profile.has(*f))
    {
        return CheckResult {
            detail: format!("the {} profile's routers lack {}", profile.name, feature.name()),
            verdict: CheckVerdict::Skip,
            ..super::result(check.kind(), "count", false, 0.0, 0.0)
        };
    }
    let mut result = judge_evidence(check, index);
    let Some(failures) = all_failed(index.ev.records) else {
        return result;
    };
    if result.verdict == CheckVerdict::Skip && result.detail.contains(UNEXERCISED) {
        result.verdict = CheckVerdict::Fail;
        result.detail = result.detail.replace(UNEXERCISED, &failures);
    } else if result.verdict == CheckVerdict::Pass && judges_answers(check) {
        // Failed requests conform trivially (nothing billed, nothing streamed).
        result.verdict = CheckVerdict::Fail;
        result.detail = format!("no answer to judge: {failures}");
    }
    result
}

/// Whether a check's evidence is the router's successful answers (a pass
/// on failed requests alone would be a pass on no evidence). Not
/// `no-charge-on-failure`, whose evidence is the failures.
pub fn judges_answers(check: &Conformance) -> bool {
    matches!(
        check,
        Conformance::BillingExact
            | Conformance::UsageAgrees
            | Conformance::GenerationAgrees
            | Conformance::StreamUsage
            | Conformance::StreamIntegrity
            | Conformance::MessagesEvents
            | Conformance::StreamChunkDelay { .. }
            | Conformance::StreamTtftOverhead { .. }
            | Conformance::LifecycleGrace
            | Conformance::SystemPrefix
    )
}

/// `N of N requests failed: rate_limited ×N, …` when no request sent
/// succeeded (the router failed them all); `None` when one did, or none
/// was sent.
fn all_failed(records: &[RequestRecord]) -> Option<String> {
    let sent: Vec<&RequestRecord> = records.iter().filter(|r| r.outcome != Outcome::Dropped).collect();
    if sent.is_empty() || sent.iter().any(|r| r.outcome == Outcome::Ok) {
        return None;
    }
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for r in &sent {
        let what = match r.status {
            0 => r.outcome.name().to_string(),
            status => format!("HTTP {status}"),
        };
        *counts.entry(what).or_default() += 1;
    }
    let tally: Vec<String> = counts.iter().map(|(what, n)| format!("{what} ×{n}")).collect();
    Some(format!(
        "{} of {} requests failed: {}",
        sent.len(),
        sent.len(),
        tally.join(", ")
    ))
}

/// Judges one conformance check on the evidence.
fn judge_evidence(check: &Conformance, index: &Index<'_>) -> CheckResult {
    let kind = check.kind();
    let router = match (check.needs_router(), index.ev.router) {
        (true, None) => {
            return Judging::new(kind).fail_because("the scenario has no [router] table stating what to expect");
        }
        (_, router) => router,
    };
    match (check, router) {
        (Conformance::BillingExact, Some(r)) => billing::exact(index, r),
        (Conformance::NoChargeOnFailure, _) => billing::no_charge_on_failure(index),
        (Conformance::UsageAgrees, _) => usage::agrees(index),
        (Conformance::BalanceDelta, _) => billing::balance_delta(index),
        (Conformance::GenerationAgrees, _) => billing::generation_agrees(index),
        (Conformance::NoOverdraft { keys }, _) => billing::no_overdraft(index, keys),
        (Conformance::KeyLimits, Some(r)) => billing::key_limits(index, r),
        (Conformance::FreeQuota, Some(r)) => billing::free_quota(index, r),
        (Conformance::CreditExpiry, Some(r)) => billing::credit_expiry(index, r),
        (Conformance::RetryAfterRespected, _) => retries::retry_after_respected(index),
        (Conformance::BackoffJitter, Some(r)) => retries::backoff_jitter(index, r),
        (Conformance::RetryLimit, Some(r)) => retries::retry_limit(index, r),
        (Conformance::Cooldown, Some(r)) => retries::cooldown(index, r),
        (Conformance::RetryStorm { max }, _) => retries::retry_storm(index, *max),
        (Conformance::Fallback, Some(r)) => retries::fallback(index, r),
        (Conformance::NoRetryAfterFirstByte, _) => retries::no_retry_after_first_byte(index),
        (Conformance::StreamChunkDelay { percentile, max }, _) => streaming::chunk_delay(index, *percentile, *max),
        (Conformance::StreamTtftOverhead { percentile, max }, _) => streaming::ttft_overhead(index, *percentile, *max),
        (Conformance::StreamUsage, _) => streaming::usage(index),
        (Conformance::StreamIntegrity, Some(r)) => streaming::integrity(index, r),
        (Conformance::StreamErrorChunk, _) => streaming::error_chunk(index),
        (Conformance::MessagesEvents, _) => streaming::messages_events(index),
        (Conformance::LifecycleGrace, Some(r)) => lifecycle::grace(index, r),
        (Conformance::LifecycleRemoved, Some(r)) => lifecycle::removed(index, r),
        (Conformance::SystemPrefix, Some(r)) => lifecycle::system_prefix(index, r),
        (Conformance::ErrorShape, _) => lifecycle::error_shape(index),
        (Conformance::ClientRetryAfter, _) => retries::client_retry_after(index),
        (_, None) => Judging::new(kind).fail_because("the scenario has no [router] table stating what to expect"),
    }
}

/// A count-based judgement being built: requests judged, offenders found.
pub struct Judging {
    kind: &'static str,
    pub judged: u64,
    pub bad: u64,
    offenders: Vec<String>,
    /// The first problem, described.
    first: Option<String>,
}

impl Judging {
    pub fn new(kind: &'static str) -> Self {
        Judging {
            kind,
            judged: 0,
            bad: 0,
            offenders: Vec::new(),
            first: None,
        }
    }

    /// Counts one judged item.
    pub fn judged(&mut self) {
        self.judged += 1;
    }

    /// Counts one offence by request `id`, described by `why` (kept for the first).
    pub fn offend(&mut self, id: &str, why: impl FnOnce() -> String) {
        self.bad += 1;
        if self.offenders.len() < MAX_OFFENDERS && !self.offenders.iter().any(|o| o == id) {
            self.offenders.push(id.to_string());
        }
        if self.first.is_none() {
            self.first = Some(format!("{id}: {}", why()));
        }
    }

    /// The result: passes when nothing offended and something was judged;
    /// skipped when nothing was ([`judge`] makes that a failure when the
    /// router failed the requests). `what` names the judged items
    /// ("answers", "retries"...).
    pub fn finish(self, what: &str) -> CheckResult {
        let passed = self.bad == 0 && self.judged > 0;
        let detail = if self.judged == 0 {
            format!("no {what} to judge: {UNEXERCISED}")
        } else if self.bad == 0 {
            format!("all {} {what} conform", self.judged)
        } else {
            format!(
                "{} of {} {what} do not conform; first: {}",
                self.bad,
                self.judged,
                self.first.as_deref().unwrap_or("-")
            )
        };
        let verdict = if self.judged == 0 {
            CheckVerdict::Skip
        } else {
            CheckVerdict::of(passed)
        };
        CheckResult {
            detail,
            offenders: self.offenders,
            verdict,
            ..super::result(self.kind, "count", passed, self.bad as f64, 0.0)
        }
    }

    /// A failed result that judged nothing, for `reason`.
    pub fn fail_because(self, reason: &str) -> CheckResult {
        CheckResult {
            detail: reason.to_string(),
            ..super::result(self.kind, "count", false, 0.0, 0.0)
        }
    }
}

/// The router's calendar time (Unix µs) when a request was sent at
/// `sent_us`, and the calendar span of [`CLOCK_MARGIN_US`] either side that
/// a judgement near a date must leave out: the scenario's `[router] clock`
/// start plus the real time since the router started times the speed (the
/// real time of the router's start when no start is set).
pub fn calendar_us(ix: &Index<'_>, router: &RouterConfig, sent_us: u64) -> (f64, f64) {
    let speed = router.clock.speed;
    let elapsed_us = sent_us.saturating_sub(ix.ev.router_started_us) as f64;
    let start_us = router
        .clock
        .start
        .map_or(ix.ev.router_started_us as f64, |start| start.as_microsecond() as f64);
    (start_us + elapsed_us * speed, CLOCK_MARGIN_US as f64 * speed)
}

/// Whether a `Retry-After` value is usable: whole seconds (at least 1, at
/// most a day) or an HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`).
pub fn usable_retry_after(value: &str) -> bool {
    let value = value.trim();
    match value.parse::<u64>() {
        Ok(seconds) => (1..=86_400).contains(&seconds),
        Err(_) => {
            value.len() == 29
                && value.ends_with(" GMT")
                && jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value).is_ok()
        }
    }
}

/// What is wrong with the `Retry-After` of a refusal `r`, if anything: none,
/// or one a client cannot use.
pub fn retry_after_fault(r: &RequestRecord) -> Option<String> {
    match r.conformance.retry_after.as_deref() {
        None => Some(format!("a {} without Retry-After", r.status)),
        Some(value) if !usable_retry_after(value) => {
            Some(format!("a {} with an unusable Retry-After `{value}`", r.status))
        }
        Some(_) => None,
    }
}

/// What is wrong with the body of a non-2xx answer `r`, if it is not an
/// error in its API's shape: for chat completions an OpenAI-shaped one (a
/// JSON `error` object with a non-empty `message` and a `type` or `code`);
/// for the Messages API an Anthropic-shaped one (`"type": "error"` and an
/// `error` object with a `message` and the `type` Anthropic gives the
/// status, as in [`anthropic_error_type`]).
pub fn error_body_fault(ix: &Index<'_>, r: &RequestRecord) -> Option<String> {
    let shape = r.conformance.error_shape.as_ref();
    if ix.mix(r).is_some_and(|m| m.api == Api::Messages) {
        let Some(shape) = shape.filter(|s| s.anthropic) else {
            return Some(format!(
                "the {} body is not an Anthropic-shaped error ({})",
                r.status,
                r.error.as_deref().unwrap_or("no message")
            ));
        };
        let given = shape.error_type.as_deref().unwrap_or_default();
        return match anthropic_error_type(r.status) {
            Some(types) if !types.contains(&given) => Some(format!(
                "the {} body's error type is `{given}`, not {}",
                r.status,
                types.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(" or ")
            )),
            _ => None,
        };
    }
    if shape.is_some_and(|s| s.ok) {
        return None;
    }
    Some(format!(
        "the {} body is not an OpenAI-shaped error ({})",
        r.status,
        r.error.as_deref().unwrap_or("no message")
    ))
}

/// The error types Anthropic's Messages API gives an HTTP status (`None`:
/// any).
pub fn anthropic_error_type(status: u16) -> Option<&'static [&'static str]> {
    Some(match status {
        400 => &["invalid_request_error"],
        401 => &["authentication_error"],
        402 => &["billing_error"],
        403 => &["permission_error"],
        404 => &["not_found_error"],
        413 => &["request_too_large"],
        429 => &["rate_limit_error"],
        529 => &["overloaded_error"],
        500..=599 => &["api_error", "overloaded_error", "timeout_error"],
        _ => return None,
    })
}

/// `p` in picodollars as USD for a sentence.
pub fn show(p: Picodollars) -> String {
    p.to_usd_string()
}

/// The `percentile` of `values` (nearest rank), `None` when empty.
pub fn percentile(values: &mut [u64], percentile: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = ((percentile / 100.0) * values.len() as f64).ceil() as usize;
    values.get(rank.clamp(1, values.len()) - 1).copied()
}

#[cfg(test)]
mod tests;
