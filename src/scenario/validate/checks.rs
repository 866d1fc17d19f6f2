//! `[slo]` and `[[checks]]`: the service levels goodput counts, and what a
//! run is judged on (SLO bounds, the run's validity, conformance checks).

use mock_providers::config::ConfigError;

use super::{ATTEMPTS_PER_REQUEST, PERCENTILE, err, ms, real, share};
use std::time::Duration;

use crate::scenario::raw::{CheckKind, RawCheck, RawScenario, RawSlo};
use crate::scenario::{Check, Conformance, Rule, Slo};

/// Validates `[slo]`.
pub fn slo(raw: Option<&RawSlo>) -> Result<Slo, ConfigError> {
    let slo = match raw {
        None => Slo::default(),
        Some(s) => Slo {
            ttft: s.ttft_ms.map(|v| ms(v, "slo.ttft-ms")).transpose()?,
            e2e: s.e2e_ms.map(|v| ms(v, "slo.e2e-ms")).transpose()?,
            tpot: s.tpot_ms.map(|v| ms(v, "slo.tpot-ms")).transpose()?,
        },
    };
    Ok(slo)
}

/// Validates `[[checks]]`; a sweep takes only SLO checks, and needs one.
pub fn checks(raw: &RawScenario, slo: &Slo, sweep: bool) -> Result<Vec<Check>, ConfigError> {
    let mut checks = Vec::with_capacity(raw.checks.len());
    for (i, c) in raw.checks.iter().enumerate() {
        let path = format!("checks[{i}]");
        let only = |field: &str, given: bool| -> Result<(), ConfigError> {
            if given {
                Err(err(format!("{path}.{field}"), "does not apply to this kind of check"))
            } else {
                Ok(())
            }
        };
        let rule = match c.kind {
            CheckKind::Latency => {
                only("max", c.max.is_some())?;
                only("min", c.min.is_some())?;
                let metric = c.metric.ok_or_else(|| {
                    err(
                        format!("{path}.metric"),
                        "a latency check needs `metric` (e2e, e2e-from-send, ttft, itl, tpot, dispatch, overhead)",
                    )
                })?;
                let percentile = real(&format!("{path}.percentile"), PERCENTILE, c.percentile.unwrap_or(99.0))?;
                let max = ms(
                    c.max_ms
                        .ok_or_else(|| err(format!("{path}.max-ms"), "a latency check needs `max-ms`"))?,
                    &format!("{path}.max-ms"),
                )?;
                Rule::Latency {
                    metric,
                    percentile,
                    max,
                }
            }
            CheckKind::ErrorRate => {
                only("metric", c.metric.is_some())?;
                only("max-ms", c.max_ms.is_some())?;
                let max = c.max.ok_or_else(|| {
                    err(
                        format!("{path}.max"),
                        "an error-rate check needs `max` (a share, 0 to 1)",
                    )
                })?;
                share(max, &format!("{path}.max"))?;
                Rule::ErrorRate { max }
            }
            CheckKind::Goodput => {
                only("metric", c.metric.is_some())?;
                let min = c
                    .min
                    .ok_or_else(|| err(format!("{path}.min"), "a goodput check needs `min` (a share, 0 to 1)"))?;
                share(min, &format!("{path}.min"))?;
                if *slo == Slo::default() {
                    return Err(err(
                        format!("{path}.kind"),
                        "goodput counts requests meeting every [slo]; the scenario has no [slo] table",
                    ));
                }
                Rule::Goodput { min }
            }
            CheckKind::RunValid => Rule::RunValid,
            kind => {
                let rule = conformance(kind, c, &path, raw)?;
                if rule.needs_router() && raw.router.is_none() {
                    return Err(err(
                        format!("{path}.kind"),
                        format!(
                            "`{}` judges the router against the prices, keys and policies of the [router] table; the scenario has none",
                            rule.kind()
                        ),
                    ));
                }
                Rule::Conformance(rule)
            }
        };
        if !matches!(rule, Rule::Conformance(Conformance::NoOverdraft { .. })) && c.keys.is_some() {
            return Err(err(format!("{path}.keys"), "only a no-overdraft check takes `keys`"));
        }
        let name = c.name.clone().unwrap_or_else(|| default_check_name(&rule));
        checks.push(Check { name, rule });
    }

    if sweep {
        if let Some((i, _)) = checks
            .iter()
            .enumerate()
            .find(|(_, c)| matches!(c.rule, Rule::Conformance(_)))
        {
            return Err(err(
                format!("checks[{i}].kind"),
                "a [sweep] judges each step on latency, error-rate and goodput checks; run conformance checks in their own scenario",
            ));
        }
        if !checks.iter().any(|c| c.rule.is_slo()) {
            return Err(err(
                "checks",
                "a [sweep] steps the rate up until its SLO breaks: it needs at least one latency, error-rate or goodput check",
            ));
        }
    }
    Ok(checks)
}

/// Validates a conformance check's parameters.
fn conformance(kind: CheckKind, c: &RawCheck, path: &str, raw: &RawScenario) -> Result<Conformance, ConfigError> {
    let refuse = |field: &str, given: bool| -> Result<(), ConfigError> {
        if given {
            Err(err(format!("{path}.{field}"), "does not apply to this kind of check"))
        } else {
            Ok(())
        }
    };
    refuse("metric", c.metric.is_some())?;
    refuse("min", c.min.is_some())?;
    let timed = matches!(kind, CheckKind::StreamChunkDelay | CheckKind::StreamTtftOverhead);
    if !timed {
        refuse("percentile", c.percentile.is_some())?;
        refuse("max-ms", c.max_ms.is_some())?;
    }
    if kind != CheckKind::RetryStorm {
        refuse("max", c.max.is_some())?;
    }
    let bound = || -> Result<(f64, Duration), ConfigError> {
        let percentile = real(&format!("{path}.percentile"), PERCENTILE, c.percentile.unwrap_or(99.0))?;
        let max = c
            .max_ms
            .ok_or_else(|| err(format!("{path}.max-ms"), "a stream timing check needs `max-ms`"))?;
        Ok((percentile, ms(max, &format!("{path}.max-ms"))?))
    };
    Ok(match kind {
        CheckKind::BillingExact => Conformance::BillingExact,
        CheckKind::NoChargeOnFailure => Conformance::NoChargeOnFailure,
        CheckKind::UsageAgrees => Conformance::UsageAgrees,
        CheckKind::BalanceDelta => Conformance::BalanceDelta,
        CheckKind::GenerationAgrees => Conformance::GenerationAgrees,
        CheckKind::NoOverdraft => {
            let keys = c.keys.clone().unwrap_or_default();
            if keys.is_empty() {
                return Err(err(
                    format!("{path}.keys"),
                    "a no-overdraft check needs `keys`: the keys whose credits the load exhausts",
                ));
            }
            for (i, key) in keys.iter().enumerate() {
                if !raw.mix.iter().any(|m| &m.key == key) {
                    return Err(err(
                        format!("{path}.keys[{i}]"),
                        format!("no [[mix]] entry uses key `{key}`"),
                    ));
                }
            }
            Conformance::NoOverdraft { keys }
        }
        CheckKind::KeyLimits => Conformance::KeyLimits,
        CheckKind::FreeQuota => Conformance::FreeQuota,
        CheckKind::CreditExpiry => Conformance::CreditExpiry,
        CheckKind::RetryAfterRespected => Conformance::RetryAfterRespected,
        CheckKind::BackoffJitter => Conformance::BackoffJitter,
        CheckKind::RetryLimit => Conformance::RetryLimit,
        CheckKind::Cooldown => Conformance::Cooldown,
        CheckKind::RetryStorm => {
            let max = c.max.ok_or_else(|| {
                err(
                    format!("{path}.max"),
                    "a retry-storm check needs `max`: upstream attempts per client request, at most",
                )
            })?;
            let max = real(&format!("{path}.max"), ATTEMPTS_PER_REQUEST, max)?;
            Conformance::RetryStorm { max }
        }
        CheckKind::Fallback => Conformance::Fallback,
        CheckKind::NoRetryAfterFirstByte => Conformance::NoRetryAfterFirstByte,
        CheckKind::StreamChunkDelay => {
            let (percentile, max) = bound()?;
            Conformance::StreamChunkDelay { percentile, max }
        }
        CheckKind::StreamTtftOverhead => {
            let (percentile, max) = bound()?;
            Conformance::StreamTtftOverhead { percentile, max }
        }
        CheckKind::StreamUsage => Conformance::StreamUsage,
        CheckKind::StreamIntegrity => Conformance::StreamIntegrity,
        CheckKind::StreamErrorChunk => Conformance::StreamErrorChunk,
        CheckKind::MessagesEvents => Conformance::MessagesEvents,
        CheckKind::LifecycleGrace => Conformance::LifecycleGrace,
        CheckKind::LifecycleRemoved => Conformance::LifecycleRemoved,
        CheckKind::SystemPrefix => Conformance::SystemPrefix,
        CheckKind::ErrorShape => Conformance::ErrorShape,
        CheckKind::ClientRetryAfter => Conformance::ClientRetryAfter,
        CheckKind::Latency | CheckKind::ErrorRate | CheckKind::Goodput | CheckKind::RunValid => {
            return Err(err(format!("{path}.kind"), "not a conformance check"));
        }
    })
}

fn default_check_name(rule: &Rule) -> String {
    match rule {
        Rule::Latency {
            metric,
            percentile,
            max,
        } => format!("{metric:?} p{percentile} <= {} ms", max.as_secs_f64() * 1000.0).to_lowercase(),
        Rule::ErrorRate { max } => format!("error rate <= {max}"),
        Rule::Goodput { min } => format!("goodput >= {min}"),
        Rule::RunValid => "run is valid".to_string(),
        Rule::Conformance(c) => c.kind().to_string(),
    }
}
