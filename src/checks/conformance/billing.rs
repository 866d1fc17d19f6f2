//! Money and key limits: `billing-exact`, `balance-delta`,
//! `generation-agrees`, `no-overdraft`, `key-limits`, `free-quota`,
//! `credit-expiry`.

use std::collections::BTreeMap;

use super::{Index, Judging, retry_after_fault, show};
use crate::checks::CheckResult;
use crate::load::record::{Outcome, RequestRecord};
use crate::scenario::MixEntry;
use crate::target::{Feature, Picodollars, RouterConfig};

/// The charge `r` reports, read as the profile writes amounts: `Ok(None)`
/// for none, `Err` (the sentence) for one that is not an amount.
fn charged(ix: &Index<'_>, r: &RequestRecord) -> Result<Option<Picodollars>, String> {
    match r.cost.as_deref() {
        None => Ok(None),
        Some(text) => (ix.usd(text).map(Some)).ok_or_else(|| format!("the cost `{text}` is not a USD amount")),
    }
}

/// Whether `r`'s key brings its own provider key (BYOK).
fn is_byok(router: &RouterConfig, ix: &Index<'_>, r: &RequestRecord) -> bool {
    (ix.mix(r).and_then(|m| router.keys.iter().find(|k| *k.key == *m.key))).is_some_and(|k| k.byok.is_some())
}

/// `no-charge-on-failure`: no request the router failed (an error status,
/// or a stream that broke off) reports a charge other than zero.
pub fn no_charge_on_failure(ix: &Index<'_>) -> CheckResult {
    let mut v = Judging::new("no-charge-on-failure");
    for r in ix.ev.records {
        if r.status == 0 || r.outcome == Outcome::Ok {
            continue;
        }
        v.judged();
        match charged(ix, r) {
            Err(why) => v.offend(&r.id, || why),
            Ok(Some(p)) if p != Picodollars::ZERO => v.offend(&r.id, || {
                format!("a failed request (status {}) reports a charge of {}", r.status, show(p))
            }),
            Ok(_) => {}
        }
    }
    v.finish("failed requests")
}

/// `billing-exact`: every answer's reported cost equals, to the picodollar,
/// the price of the model that served it (the price in force when the
/// request was sent: a scheduled change applies to requests sent after it,
/// and those sent within the clock margin of it are not judged) × the usage the mock reported for
/// the attempt that served it (cache reads and writes at their own prices,
/// uncached prompt = all prompt tokens less both), zero for no completion
/// token or a `finish_reason: "error"` ending, the BYOK fee when the key's
/// own provider key served it. A BYOK key's answers are left out when the
/// profile's routers have no BYOK. Failed requests are
/// `no-charge-on-failure`'s.
pub fn exact(ix: &Index<'_>, router: &RouterConfig) -> CheckResult {
    let mut v = Judging::new("billing-exact");
    let byok = ix.ev.scenario.target.profile().has(Feature::Byok);
    for r in ix.ev.records {
        if r.status == 0 || r.outcome != Outcome::Ok {
            continue;
        }
        if !byok && is_byok(router, ix, r) {
            continue;
        }
        if near_price_change(ix, router, r) {
            continue;
        }
        v.judged();
        let charged = match charged(ix, r) {
            Ok(Some(p)) => p,
            Ok(None) => {
                v.offend(&r.id, || "the answer reports no cost".into());
                continue;
            }
            Err(why) => {
                v.offend(&r.id, || why);
                continue;
            }
        };
        match expected_charge(ix, router, r) {
            Ok(expected) if expected == charged => {}
            Ok(expected) => v.offend(&r.id, || {
                let written = r.cost.as_deref().unwrap_or_default();
                // A float cost was rounded to the picodollar: say what was written.
                let as_written = if written.trim_matches('"') == show(charged) {
                    String::new()
                } else {
                    format!(" (written `{written}`)")
                };
                format!(
                    "charged {}, expected {} for `{}`{as_written}, {} off",
                    show(charged),
                    show(expected),
                    r.model.as_deref().unwrap_or("?"),
                    show(Picodollars(charged.0.saturating_sub(expected.0))),
                )
            }),
            Err(why) => v.offend(&r.id, || why.to_string()),
        }
    }
    v.finish("answers")
}

/// Why the charge an answer should have had cannot be reckoned: each is an
/// offence of the answer (it names a model it was not served by, or the
/// mocks saw nothing of it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unpriced {
    #[error("no mock attempt served it")]
    NotServed,
    #[error("the answer names no model")]
    NoModel,
    #[error("the answer names `{0}`, which is not in the catalog")]
    UnknownModel(String),
    #[error("the answer names `{named}`, but `{provider}` served `{served}`, not one of its routes")]
    NotARoute {
        named: String,
        provider: String,
        served: String,
    },
    #[error("the serving attempt reported no usage")]
    NoUsage,
    #[error("the expected cost overflows")]
    Overflow,
}

/// The catalog model `r` asked for, then its replacement if it has one.
fn asked_models<'r>(
    router: &'r RouterConfig,
    ix: &Index<'_>,
    r: &RequestRecord,
) -> impl Iterator<Item = &'r std::sync::Arc<crate::target::Model>> {
    let asked = ix.mix(r).and_then(|m| router.catalog.get(&m.model));
    let replacement = asked
        .and_then(|m| m.deprecation.as_ref())
        .and_then(|d| router.catalog.get(&d.replacement));
    asked.into_iter().chain(replacement)
}

/// What the router should have charged for answer `r`.
pub fn expected_charge(ix: &Index<'_>, router: &RouterConfig, r: &RequestRecord) -> Result<Picodollars, Unpriced> {
    let attempt = ix.served(&r.id).ok_or(Unpriced::NotServed)?;
    let named = r.model.as_deref().ok_or(Unpriced::NoModel)?;
    let model = match router.catalog.get(named) {
        Some(model) => model,
        // A name the catalog does not know: the upstream's own id, or one
        // of the router's own config (LiteLLM after a fallback names
        // `gpt-4o-mini` or its fallback group `openai/gpt-4o@backup`). The
        // model asked for, or its replacement, prices the answer if the
        // attempt that served it went to one of its routes.
        None => asked_models(router, ix, r)
            .find(|m| ix.route_of(router, m, attempt).is_some())
            .ok_or_else(|| Unpriced::UnknownModel(named.to_string()))?,
    };
    let provider = ix.route_of(router, model, attempt).ok_or_else(|| Unpriced::NotARoute {
        named: named.to_string(),
        provider: attempt.provider.clone(),
        served: attempt.model.as_deref().unwrap_or("?").to_string(),
    })?;
    let usage = attempt.usage.ok_or(Unpriced::NoUsage)?;
    if usage.completion_tokens == 0 || r.conformance.finish_reason.as_deref() == Some("error") {
        return Ok(Picodollars::ZERO);
    }
    // The prices in force when the request was sent (the router's clock).
    let (sent_at_us, _) = super::calendar_us(ix, router, r.sent_us);
    let p = &model.prices_at(calendar_time(sent_at_us));
    let uncached = usage
        .prompt_tokens
        .saturating_sub(usage.cache_read_tokens)
        .saturating_sub(usage.cache_write_tokens);
    let overflow = |_| Unpriced::Overflow;
    let cost = p
        .prompt
        .per_token()
        .times(u64::from(uncached))
        .and_then(|c| c.checked_add(p.cache_read.per_token().times(u64::from(usage.cache_read_tokens))?))
        .and_then(|c| c.checked_add(p.cache_write.per_token().times(u64::from(usage.cache_write_tokens))?))
        .and_then(|c| c.checked_add(p.completion.per_token().times(u64::from(usage.completion_tokens))?))
        .map_err(overflow)?;
    let byok = ix
        .mix(r)
        .and_then(|m| router.keys.iter().find(|k| *k.key == *m.key))
        .and_then(|k| k.byok.as_ref())
        .is_some_and(|b| b.provider == provider);
    if byok {
        cost.basis_points(router.byok_fee_bps).map_err(overflow)
    } else {
        Ok(cost)
    }
}

/// A calendar time from Unix microseconds.
fn calendar_time(us: f64) -> jiff::Timestamp {
    jiff::Timestamp::from_microsecond(us as i64).unwrap_or(jiff::Timestamp::MAX)
}

/// Whether `r` was sent too close to a price change of a model that may
/// have served it to say which price applied (see
/// [`super::CLOCK_MARGIN_US`]).
fn near_price_change(ix: &Index<'_>, router: &RouterConfig, r: &RequestRecord) -> bool {
    let (sent_at_us, margin) = super::calendar_us(ix, router, r.sent_us);
    let named = r.model.as_deref().and_then(|m| router.catalog.get(m));
    named
        .into_iter()
        .chain(asked_models(router, ix, r))
        .flat_map(|m| m.price_changes.iter())
        .any(|c| (c.at.as_microsecond() as f64 - sent_at_us).abs() < margin)
}

/// The charges the client was told of, summed per key of the mix.
fn reported_per_key<'a>(ix: &Index<'a>) -> BTreeMap<&'a str, Picodollars> {
    let mut sums: BTreeMap<&str, Picodollars> = BTreeMap::new();
    for r in ix.ev.records {
        let Some(mix) = ix.mix(r) else { continue };
        let sum = sums.entry(mix.key.as_str()).or_default();
        if let Some(p) = r.cost.as_deref().and_then(|c| ix.usd(c)) {
            *sum = Picodollars(sum.0.saturating_add(p.0));
        }
    }
    sums
}

/// `balance-delta`: each key's spend (`GET /key` `usage`, after − before)
/// moved by exactly the sum of the charges its answers reported — so a
/// request whose failure reported nothing was charged nothing.
pub fn balance_delta(ix: &Index<'_>) -> CheckResult {
    let mut v = Judging::new("balance-delta");
    let accounts = ix.ev.accounts;
    for (key, reported) in reported_per_key(ix) {
        v.judged();
        let (Some(before), Some(after)) = (accounts.before.get(key), accounts.after.get(key)) else {
            v.offend(key, || {
                format!(
                    "GET /key gave no account for it ({})",
                    accounts.problems.first().map_or("no answer", String::as_str)
                )
            });
            continue;
        };
        let moved = Picodollars(after.usage.0.saturating_sub(before.usage.0));
        if moved != reported {
            v.offend(key, || {
                format!(
                    "its spend moved by {} but its answers reported charges of {}",
                    show(moved),
                    show(reported)
                )
            });
        }
    }
    v.finish("keys")
}

/// `generation-agrees`: `GET /generation?id=` for each answer's generation
/// id names the same model and the same total cost as the answer.
pub fn generation_agrees(ix: &Index<'_>) -> CheckResult {
    let mut v = Judging::new("generation-agrees");
    for r in ix.ev.records.iter().filter(|r| r.outcome == Outcome::Ok) {
        let Some(id) = r.generation_id.as_deref() else { continue };
        v.judged();
        let Some(g) = ix.ev.accounts.generations.get(id) else {
            v.offend(&r.id, || format!("GET /generation?id={id} gave nothing"));
            continue;
        };
        let cost = r.cost.as_deref().and_then(|c| ix.usd(c));
        if cost != Some(g.total_cost) {
            v.offend(&r.id, || {
                format!(
                    "the answer's cost is {} but the generation says {}",
                    r.cost.as_deref().unwrap_or("none"),
                    show(g.total_cost)
                )
            });
        } else if r.model.as_deref() != Some(g.model.as_str()) {
            v.offend(&r.id, || {
                format!(
                    "the answer names `{}` but the generation says `{}`",
                    r.model.as_deref().unwrap_or("?"),
                    g.model
                )
            });
        }
    }
    v.finish("generations")
}

/// `no-overdraft`: for each key the load exhausts, concurrent requests never
/// overdrew it: the credits left never went below zero, the charges never
/// exceeded what it had, and the router answered 402 once they ran out.
pub fn no_overdraft(ix: &Index<'_>, keys: &[String]) -> CheckResult {
    let mut v = Judging::new("no-overdraft");
    let reported = reported_per_key(ix);
    for key in keys {
        v.judged();
        let (Some(before), Some(after)) = (ix.ev.accounts.before.get(key), ix.ev.accounts.after.get(key)) else {
            v.offend(key, || "GET /key gave no account for it".into());
            continue;
        };
        let refused = ix
            .ev
            .records
            .iter()
            .filter(|r| r.outcome == Outcome::PaymentRequired && ix.mix(r).is_some_and(|m| &m.key == key))
            .count();
        let spent = reported.get(key.as_str()).copied().unwrap_or_default();
        let had = before.limit_remaining;
        if let Some(left) = after.limit_remaining.filter(|l| l.0 < 0) {
            v.offend(key, || format!("overdrawn: {} left", show(left)));
        } else if let Some(had) = had.filter(|h| spent > *h) {
            v.offend(key, || {
                format!("charged {} with only {} of credit", show(spent), show(had))
            });
        } else if refused == 0 {
            v.offend(key, || {
                format!(
                    "no request was refused with 402, though the load was meant to exhaust its credits ({} left)",
                    after.limit_remaining.map_or_else(|| "?".into(), show)
                )
            });
        }
    }
    v.finish("keys")
}

/// The answered requests of the mix entries `wanted` keeps, per key, in the
/// order they were sent.
fn answered_by_key<'a>(
    ix: &Index<'a>,
    wanted: impl Fn(&MixEntry) -> bool,
) -> BTreeMap<&'a str, Vec<&'a RequestRecord>> {
    let mut by_key: BTreeMap<&str, Vec<&RequestRecord>> = BTreeMap::new();
    for r in ix.ev.records.iter().filter(|r| r.status != 0) {
        if let Some(m) = ix.mix(r).filter(|m| wanted(m)) {
            by_key.entry(m.key.as_str()).or_default().push(r);
        }
    }
    for records in by_key.values_mut() {
        records.sort_by_key(|r| r.sent_us);
    }
    by_key
}

/// Whether the router refused `r` itself, by its key's limits or credits: a
/// 429 or 402 with no upstream attempt behind it.
fn refused_by_router(ix: &Index<'_>, r: &RequestRecord) -> bool {
    matches!(r.outcome, Outcome::RateLimited | Outcome::PaymentRequired) && ix.attempts_of(&r.id).is_empty()
}

/// `key-limits`: a refusal the router made itself (a 429 or 402 with no
/// upstream attempt behind it) carries a usable `Retry-After`, and no
/// request of a key with a rate limit was refused with 429 while fewer than
/// `rpm − 1` of its requests had been admitted in the minute before (the
/// limit allows a minute's worth at once; one is spared for requests that
/// crossed on the way).
pub fn key_limits(ix: &Index<'_>, router: &RouterConfig) -> CheckResult {
    let mut v = Judging::new("key-limits");
    for (key, records) in answered_by_key(ix, |_| true) {
        let rpm = router
            .keys
            .iter()
            .find(|k| &*k.key == key)
            .and_then(|k| k.rpm)
            .map(|n| u64::from(n.get()));
        let mut admitted: std::collections::VecDeque<u64> = std::collections::VecDeque::new();
        for r in records {
            if !refused_by_router(ix, r) {
                // Admitted by the key's limits, whatever the upstream said.
                admitted.push_back(r.sent_us);
                continue;
            }
            v.judged();
            if let Some(fault) = retry_after_fault(r) {
                v.offend(&r.id, || fault);
                continue;
            }
            if let (Some(rpm), Outcome::RateLimited) = (rpm, r.outcome) {
                while admitted.front().is_some_and(|t| t + 60_000_000 <= r.sent_us) {
                    admitted.pop_front();
                }
                let recent = admitted.len() as u64;
                if recent + 1 < rpm {
                    v.offend(&r.id, || {
                        format!("refused with 429 after only {recent} admitted requests in the last minute (limit {rpm}/min)")
                    });
                }
            }
        }
    }
    v.finish("refusals")
}

/// Microseconds in a calendar day.
const DAY_US: f64 = 86_400e6;

/// `free-quota`: each key's requests for `:free` models admitted on one
/// calendar day of the router's (warped) clock are at most its daily quota
/// (the larger one once its credits reach the purchase threshold), and none
/// was refused while fewer than quota − 1 had been admitted that day — so a
/// new day renews the quota. Requests within the clock margin of midnight
/// count for their day but are not judged.
pub fn free_quota(ix: &Index<'_>, router: &RouterConfig) -> CheckResult {
    let mut v = Judging::new("free-quota");
    let free = |m: &MixEntry| router.catalog.get(&m.model).is_some_and(|model| model.free);
    for (key, records) in answered_by_key(ix, free) {
        let credits = router.keys.iter().find(|k| &*k.key == key).map(|k| k.credits);
        let quota = u64::from(if credits.is_some_and(|c| c >= router.free.purchase_threshold) {
            router.free.per_day_after_purchase
        } else {
            router.free.per_day
        });
        let mut day = i64::MIN;
        let mut admitted = 0u64;
        for r in records {
            let (now_us, margin) = super::calendar_us(ix, router, r.sent_us);
            let today = (now_us / DAY_US).floor() as i64;
            if today != day {
                day = today;
                admitted = 0;
            }
            let since_midnight = now_us - today as f64 * DAY_US;
            let near_midnight = since_midnight < margin || DAY_US - since_midnight < margin;
            let refused = r.outcome == Outcome::RateLimited && refused_by_router(ix, r);
            if !near_midnight {
                v.judged();
            }
            if refused {
                if !near_midnight && admitted + 1 < quota {
                    v.offend(&r.id, || {
                        format!("refused with 429 after only {admitted} free-model requests that day (quota {quota})")
                    });
                }
                continue;
            }
            admitted += 1;
            if !near_midnight && admitted > quota {
                v.offend(&r.id, || {
                    format!("free-model request number {admitted} of the day was admitted (quota {quota})")
                });
            }
        }
    }
    v.finish("free-model requests")
}

/// `credit-expiry`: under a router's `credit-expiry-days`, the credits a
/// key of the config file was given (bought as the router started) expire
/// that long after, and with them everything the key could spend: each
/// request of such a key sent after the expiry (by the router's warped
/// clock, beyond the clock margin) is refused with 402 and reports no
/// charge. Keys without credits are left out, and so is a router whose
/// credits never expire.
pub fn credit_expiry(ix: &Index<'_>, router: &RouterConfig) -> CheckResult {
    let mut v = Judging::new("credit-expiry");
    let Some(expiry) = router.credit_expiry else {
        return v.finish("requests after their credits expired");
    };
    let (started_us, margin) = super::calendar_us(ix, router, ix.ev.router_started_us);
    let expires_us = started_us + expiry.as_micros() as f64;
    for r in ix.ev.records {
        let Some(mix) = ix.mix(r) else { continue };
        let credited = router
            .keys
            .iter()
            .any(|k| *k.key == *mix.key && k.credits > Picodollars::ZERO);
        let (sent_us, _) = super::calendar_us(ix, router, r.sent_us);
        if !credited || r.status == 0 || sent_us < expires_us + margin {
            continue;
        }
        v.judged();
        if r.status != 402 {
            v.offend(&r.id, || {
                format!(
                    "status {} for key `{}` {:.2} days after its credits expired, not 402",
                    r.status,
                    mix.key,
                    (sent_us - expires_us) / 86_400e6
                )
            });
        } else if let Ok(Some(p)) = charged(ix, r)
            && p != Picodollars::ZERO
        {
            v.offend(&r.id, || format!("a 402 reports a charge of {}", show(p)));
        }
    }
    v.finish("requests after their credits expired")
}
