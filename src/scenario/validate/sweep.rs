//! `[sweep]`: a capacity sweep's planned rates and how each step runs.

use std::num::NonZeroU32;
use std::time::Duration;

use mock_providers::config::ConfigError;

use super::{MAX_IN_FLIGHT, PHASE_SECONDS, RATE, SWEEP_FACTOR, SWEEP_STEP, count, err, real, seconds};
use crate::scenario::raw::{RawSweep, SweepArrival};
use crate::scenario::{DEFAULT_MAX_IN_FLIGHT, Sweep};

/// The most steps a sweep may plan.
pub const MAX_SWEEP_STEPS: usize = 50;

/// Validates `[sweep]`: explicit `rates`, or `from`/`to` with a `factor` or
/// a `step`.
pub fn sweep(raw: &RawSweep) -> Result<Sweep, ConfigError> {
    let rate = |v: f64, path: &str| real(path, RATE, v);
    let rates = match (&raw.rates, raw.from, raw.to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(err("sweep.rates", "give `rates`, or `from` and `to`, not both"));
        }
        (Some(list), None, None) => {
            if raw.factor.is_some() || raw.step.is_some() {
                return Err(err(
                    "sweep.rates",
                    "`factor` and `step` go with `from` and `to`, not `rates`",
                ));
            }
            let mut rates = Vec::with_capacity(list.len());
            for (i, &v) in list.iter().enumerate() {
                let v = rate(v, &format!("sweep.rates[{i}]"))?;
                if rates.last().is_some_and(|&last| v <= last) {
                    return Err(err(format!("sweep.rates[{i}]"), "rates must rise from step to step"));
                }
                rates.push(v);
            }
            rates
        }
        (None, Some(from), Some(to)) => {
            let from = rate(from, "sweep.from")?;
            let to = rate(to, "sweep.to")?;
            if to < from {
                return Err(err("sweep.to", format!("{to} is below `from` ({from})")));
            }
            let next: Box<dyn Fn(f64) -> f64> = match (raw.factor, raw.step) {
                (Some(_), Some(_)) => return Err(err("sweep.step", "give `factor` or `step`, not both")),
                (Some(f), None) => {
                    let f = real("sweep.factor", SWEEP_FACTOR, f)?;
                    Box::new(move |r| r * f)
                }
                (None, Some(s)) => {
                    let s = real("sweep.step", SWEEP_STEP, s)?;
                    Box::new(move |r| r + s)
                }
                (None, None) => return Err(err("sweep.factor", "give `factor` (e.g. 2) or `step` (req/s)")),
            };
            let mut rates = vec![from];
            let mut r = next(from);
            // The last step is `to` itself (within rounding).
            while r < to * (1.0 + 1e-9) {
                rates.push(r);
                if rates.len() > MAX_SWEEP_STEPS {
                    break;
                }
                r = next(r);
            }
            if rates.last().is_some_and(|&last| last < to * (1.0 - 1e-9)) {
                rates.push(to);
            }
            rates
        }
        (None, _, _) => {
            return Err(err(
                "sweep.rates",
                "a sweep needs `rates = [...]`, or `from`, `to` and `factor` or `step`",
            ));
        }
    };
    if rates.is_empty() {
        return Err(err("sweep.rates", "needs at least one rate"));
    }
    if rates.len() > MAX_SWEEP_STEPS {
        return Err(err(
            "sweep.rates",
            format!("plans {} steps, more than {MAX_SWEEP_STEPS}", rates.len()),
        ));
    }
    let step_duration = match raw.step_duration_s {
        None => Duration::from_secs(10),
        Some(s) => seconds(real("sweep.step-duration-s", PHASE_SECONDS, s)?),
    };
    let max_in_flight = count(
        "sweep.max-in-flight",
        MAX_IN_FLIGHT,
        raw.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT),
    )?;
    let max_in_flight = NonZeroU32::new(max_in_flight).unwrap_or(NonZeroU32::MIN);
    let refine = raw.refine.unwrap_or(0);
    if refine > 10 {
        return Err(err("sweep.refine", format!("at most 10 bisection steps, got {refine}")));
    }
    let min_knee = raw.min_knee.map(|v| rate(v, "sweep.min-knee")).transpose()?;
    Ok(Sweep {
        rates,
        step_duration,
        poisson: raw.arrival == Some(SweepArrival::Poisson),
        max_in_flight,
        refine,
        min_knee,
        keep_going: raw.keep_going.unwrap_or(false),
    })
}
