//! `[[phases]]`: the load, phase by phase (open-loop arrivals or closed-loop
//! users, a duration, an in-flight cap, a part of the mix, whether it only
//! warms the router up), or the steps a `[sweep]` plans.

use std::num::NonZeroU32;
use std::time::Duration;

use mock_providers::config::ConfigError;

use mock_providers::bounds::Range;

use super::{
    BURST, BURSTINESS, MAX_IN_FLIGHT, PHASE_MS, PHASE_SECONDS, RAMP_RATE, RATE, THINK_MS, USERS, count, err, real,
    seconds,
};
use crate::load::arrival::Arrival;
use crate::scenario::raw::{ArrivalKind, RawArrival, RawPhase};
use crate::scenario::{Check, Conformance, DEFAULT_MAX_IN_FLIGHT, Load, MixEntry, Phase, Rule, Sweep};

/// Validates `[[phases]]`; a sweep's steps stand in for them.
pub fn phases(raw: &[RawPhase], sweep: Option<&Sweep>, mix: &[MixEntry]) -> Result<Vec<Phase>, ConfigError> {
    if sweep.is_some() && !raw.is_empty() {
        return Err(err(
            "phases",
            "a [sweep] plans its own phases (one per rate); remove the [[phases]] tables",
        ));
    }
    if raw.is_empty() && sweep.is_none() {
        return Err(err("phases", "a scenario needs at least one [[phases]] table"));
    }
    let mut phases = match sweep {
        Some(sweep) => sweep
            .rates
            .iter()
            .enumerate()
            .map(|(i, &rate)| sweep.phase(i, rate, mix.len()))
            .collect(),
        None => Vec::with_capacity(raw.len()),
    };
    for (i, p) in raw.iter().enumerate() {
        let path = format!("phases[{i}]");
        let duration = match (p.duration_ms, p.duration_s) {
            (Some(_), Some(_)) => {
                return Err(err(
                    format!("{path}.duration-s"),
                    "give duration-ms or duration-s, not both",
                ));
            }
            (Some(ms), None) => Duration::from_millis(count(&format!("{path}.duration-ms"), PHASE_MS, ms)?),
            (None, Some(s)) => seconds(real(&format!("{path}.duration-s"), PHASE_SECONDS, s)?),
            (None, None) => {
                return Err(err(
                    format!("{path}.duration-s"),
                    "a phase needs a duration (duration-s or duration-ms)",
                ));
            }
        };
        let load = match (&p.arrival, &p.users) {
            (Some(_), Some(_)) => {
                return Err(err(
                    format!("{path}.users"),
                    "give `arrival` (open loop) or `users` (closed loop), not both",
                ));
            }
            (None, None) => {
                return Err(err(
                    format!("{path}.arrival"),
                    "a phase needs `arrival` (open loop) or `users` (closed loop)",
                ));
            }
            (Some(a), None) => Load::Open(arrival(a, &format!("{path}.arrival"))?),
            (None, Some(u)) => Load::Closed {
                users: NonZeroU32::new(count(&format!("{path}.users.count"), USERS, u.count)?)
                    .unwrap_or(NonZeroU32::MIN),
                think: Duration::from_millis(count(
                    &format!("{path}.users.think-ms"),
                    THINK_MS,
                    u.think_ms.unwrap_or(0),
                )?),
            },
        };
        let max_in_flight = p.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
        let max_in_flight = NonZeroU32::new(count(&format!("{path}.max-in-flight"), MAX_IN_FLIGHT, max_in_flight)?)
            .unwrap_or(NonZeroU32::MIN);
        let mix_indices = match &p.mix {
            None => (0..mix.len()).collect(),
            Some(names) => names
                .iter()
                .enumerate()
                .map(|(j, n)| {
                    mix.iter().position(|m| &m.name == n).ok_or_else(|| {
                        let hint = mock_providers::config::closest(n, mix.iter().map(|m| m.name.as_str()))
                            .map(|c| format!("; did you mean `{c}`?"))
                            .unwrap_or_default();
                        err(format!("{path}.mix[{j}]"), format!("no [[mix]] is named `{n}`{hint}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        if p.requests == Some(0) {
            return Err(err(
                format!("{path}.requests"),
                "must be at least 1 (leave it out for no cap)",
            ));
        }
        phases.push(Phase {
            name: p.name.clone().unwrap_or_else(|| format!("phase-{i}")),
            duration,
            max_requests: p.requests,
            load,
            max_in_flight,
            mix: mix_indices,
            warm_up: p.warm_up.unwrap_or(false),
        });
    }
    if !phases.is_empty() && phases.iter().all(|p| p.warm_up) {
        return Err(err(
            format!("phases[{}].warm-up", phases.len() - 1),
            "every phase is a warm-up phase, so nothing would be measured or judged; \
             leave `warm-up = true` off at least one phase",
        ));
    }
    Ok(phases)
}

/// Refuses a warm-up phase that sends with a key a check judges from all of
/// that key's traffic: its spend read from the router before and after the
/// whole load, or its per-minute and per-day windows. The warm-up's
/// requests would move them while the check cannot see them, and the check
/// would blame the router. (`no-overdraft` is not one: warm-up spending
/// only makes it more lenient.)
pub fn warm_up_keys(phases: &[Phase], mix: &[MixEntry], checks: &[Check]) -> Result<(), ConfigError> {
    let Some((c, check)) = checks.iter().enumerate().find_map(|(c, check)| match &check.rule {
        Rule::Conformance(k) if reads_whole_key(k) => Some((c, k)),
        _ => None,
    }) else {
        return Ok(());
    };
    let measured: Vec<&str> = (phases.iter().filter(|p| !p.warm_up))
        .flat_map(|p| keys_of(p, mix))
        .collect();
    for (i, phase) in phases.iter().enumerate().filter(|(_, p)| p.warm_up) {
        if let Some(key) = keys_of(phase, mix).find(|k| measured.contains(k)) {
            return Err(err(
                format!("phases[{i}].warm-up"),
                format!(
                    "this warm-up phase sends with key `{key}`, which the measured phases use too, and \
                     `{}` (checks[{c}]) judges a key from all its traffic, warm-up included, though warm-up \
                     requests are left out of the checks; give the warm-up phase a [[mix]] entry with a key \
                     of its own (its `mix` list), or drop the check",
                    check.kind()
                ),
            ));
        }
    }
    Ok(())
}

/// The keys of the mix entries a phase draws from.
fn keys_of<'a>(phase: &'a Phase, mix: &'a [MixEntry]) -> impl Iterator<Item = &'a str> + 'a {
    (phase.mix.iter()).filter_map(|&m| mix.get(m)).map(|m| m.key.as_str())
}

/// Whether a check reads state every request of a key moves: its spend
/// (before and after the whole load), its rate window or its daily free
/// quota.
fn reads_whole_key(check: &Conformance) -> bool {
    matches!(
        check,
        Conformance::BalanceDelta | Conformance::KeyLimits | Conformance::FreeQuota
    )
}

fn arrival(raw: &RawArrival, path: &str) -> Result<Arrival, ConfigError> {
    let need = |field: &str, v: Option<f64>| {
        v.ok_or_else(|| {
            err(
                format!("{path}.{field}"),
                format!("kind = \"{}\" needs `{field}`", kind_name(raw.kind)),
            )
        })
    };
    let allowed: &[&str] = match raw.kind {
        ArrivalKind::Constant | ArrivalKind::Poisson => &["rate"],
        ArrivalKind::Gamma => &["rate", "burstiness"],
        ArrivalKind::Ramp => &["from", "to", "poisson"],
        ArrivalKind::Burst => &["count"],
    };
    let given = [
        ("rate", raw.rate.is_some()),
        ("burstiness", raw.burstiness.is_some()),
        ("from", raw.from.is_some()),
        ("to", raw.to.is_some()),
        ("poisson", raw.poisson.is_some()),
        ("count", raw.count.is_some()),
    ];
    if let Some((field, _)) = given.iter().find(|(f, g)| *g && !allowed.contains(f)) {
        return Err(err(
            format!("{path}.{field}"),
            format!("does not apply to kind = \"{}\"", kind_name(raw.kind)),
        ));
    }
    let within = |field: &str, range: Range, v: Option<f64>| -> Result<f64, ConfigError> {
        real(&format!("{path}.{field}"), range, need(field, v)?)
    };
    let arrival = match raw.kind {
        ArrivalKind::Constant => Arrival::Constant {
            rate: within("rate", RATE, raw.rate)?,
        },
        ArrivalKind::Poisson => Arrival::Poisson {
            rate: within("rate", RATE, raw.rate)?,
        },
        ArrivalKind::Gamma => Arrival::Gamma {
            rate: within("rate", RATE, raw.rate)?,
            burstiness: within("burstiness", BURSTINESS, raw.burstiness)?,
        },
        ArrivalKind::Ramp => Arrival::Ramp {
            from: within("from", RAMP_RATE, raw.from)?,
            to: within("to", RAMP_RATE, raw.to)?,
            poisson: raw.poisson.unwrap_or(false),
        },
        ArrivalKind::Burst => Arrival::Burst {
            count: count(
                &format!("{path}.count"),
                BURST,
                raw.count
                    .ok_or_else(|| err(format!("{path}.count"), "kind = \"burst\" needs `count`"))?,
            )?,
        },
    };
    // What the ranges leave to it: a ramp from 0 to 0.
    arrival.validate().map_err(|e| err(path, e.to_string()))?;
    Ok(arrival)
}

fn kind_name(kind: ArrivalKind) -> &'static str {
    match kind {
        ArrivalKind::Constant => "constant",
        ArrivalKind::Poisson => "poisson",
        ArrivalKind::Gamma => "gamma",
        ArrivalKind::Ramp => "ramp",
        ArrivalKind::Burst => "burst",
    }
}
