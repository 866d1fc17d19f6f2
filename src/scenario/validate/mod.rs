//! Validation of a raw scenario into a [`Scenario`]: one function per table,
//! each in its own file, called in the order the tables depend on one
//! another (the mocks before the router that calls them, the mix before the
//! phases that pick from it, the phases before the faults timed into them).
//! Errors name the field path; [`super::ScenarioError`] adds the file, the
//! line and the value written there.

mod checks;
mod faults;
mod floor;
mod meta;
mod mix;
mod mocks;
mod phases;
mod router;
mod sweep;
mod target;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mock_providers::bounds::{Count, Range};
use mock_providers::config::ConfigError;

use super::raw::RawScenario;
use super::{DEFAULT_REPORT_DIR, Scenario};
use crate::load::arrival::{MAX_BURST, MAX_BURSTINESS, MAX_RATE};
use crate::target::Target;

pub use sweep::MAX_SWEEP_STEPS;

// The ranges of the scenario's own durations, rates and counts (the mocks'
// are `mock_providers::bounds`, the router's are checked by its config):
// whatever validates runs. Documented in scenarios/README.md ("Ranges").

/// A phase's (or a sweep step's) length in seconds: a millisecond to a week.
pub const PHASE_SECONDS: Range = Range::new(0.001, 604_800.0, "seconds");
/// The same in milliseconds.
pub const PHASE_MS: Count = Count::new(1, 604_800_000, "milliseconds");
/// An arrival rate: above 0, up to 10 million a second.
pub const RATE: Range = Range::above(0.0, MAX_RATE, "requests per second");
/// A ramp's end, which may be 0.
pub const RAMP_RATE: Range = Range::new(0.0, MAX_RATE, "requests per second");
/// A gamma process's burstiness (the gaps' coefficient of variation).
pub const BURSTINESS: Range = Range::above(0.0, MAX_BURSTINESS, "");
/// A burst's requests.
pub const BURST: Count = Count::new(1, MAX_BURST, "requests");
/// A closed-loop phase's users.
pub const USERS: Count = Count::new(1, 100_000, "users");
/// A user's pause between requests: up to an hour.
pub const THINK_MS: Count = Count::new(0, 3_600_000, "milliseconds");
/// A phase's (or a sweep's) cap of requests in flight.
pub const MAX_IN_FLIGHT: Count = Count::new(1, 1_000_000, "requests");
/// A mix entry's weight.
pub const WEIGHT: Count = Count::new(1, 1_000_000, "");
/// A mix entry's prompt filler.
pub const PROMPT_CHARS: Count = Count::new(0, 10_000_000, "characters");
/// A mix entry's `max_tokens`.
pub const MAX_TOKENS: Count = Count::new(1, 1_000_000, "tokens");
/// A latency bound (`[slo]`, a check's `max-ms`): a microsecond to an hour.
pub const BOUND_MS: Range = Range::new(0.001, 3_600_000.0, "milliseconds");
/// A check's percentile.
pub const PERCENTILE: Range = Range::above(0.0, 100.0, "");
/// A `retry-storm` check's bound.
pub const ATTEMPTS_PER_REQUEST: Range = Range::new(1.0, 1000.0, "upstream attempts per request");
/// How much a sweep's rate grows from step to step, times.
pub const SWEEP_FACTOR: Range = Range::above(1.0, 1000.0, "");
/// How much a sweep's rate grows from step to step, requests per second.
pub const SWEEP_STEP: Range = Range::above(0.0, MAX_RATE, "requests per second");
/// How long an external router may take to become ready: up to an hour.
pub const READY_TIMEOUT_MS: Count = Count::new(1, 3_600_000, "milliseconds");

/// Validates every table of `raw`, read from `file`.
pub fn validate(raw: RawScenario, file: &Path) -> Result<Scenario, ConfigError> {
    let meta = meta::meta(&raw)?;
    let mocks = mocks::mocks(&raw.providers, meta.seed)?;
    let mock_names: HashSet<&str> = raw.providers.iter().map(|p| p.name.as_str()).collect();
    let profiles = target::profiles(&raw.profiles)?;
    let target = target::target(raw.target.as_ref(), &profiles)?;
    let expect = router::router(raw.router.as_ref(), &target, &mock_names)?;
    if target == Target::Builtin && mocks.is_empty() {
        return Err(err(
            "providers",
            "the built-in router needs at least one [[providers]] mock to call",
        ));
    }
    let mix = mix::mix(&raw.mix, expect.as_ref())?;
    let sweep = raw.sweep.as_ref().map(sweep::sweep).transpose()?;
    let phases = phases::phases(&raw.phases, sweep.as_ref(), &mix)?;
    let total: Duration = phases.iter().map(|p| p.duration).sum();
    let faults = faults::faults(&raw.faults, &mock_names, total)?;
    let slo = checks::slo(raw.slo.as_ref())?;
    let checks = checks::checks(&raw, &slo, sweep.is_some())?;
    phases::warm_up_keys(&phases, &mix, &checks)?;
    let floor = floor::floor(raw.floor.as_ref(), &raw.providers, sweep.is_some())?;
    let report_dir = (raw.report.as_ref())
        .and_then(|r| r.dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_REPORT_DIR));
    Ok(Scenario {
        file: file.to_path_buf(),
        meta,
        target,
        profiles,
        mocks,
        expect,
        phases,
        mix,
        faults,
        slo,
        checks,
        report_dir,
        floor,
        sweep,
    })
}

fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::new(path, message)
}

/// `value` in `range`, or an error naming `path` and the value.
fn real(path: &str, range: Range, value: f64) -> Result<f64, ConfigError> {
    range.check(value).map_err(|e| ConfigError::out_of_range(path, e))
}

/// `value` in `range`, or an error naming `path` and the value.
fn count<T: Copy + TryInto<u64> + std::fmt::Display>(path: &str, range: Count, value: T) -> Result<T, ConfigError> {
    range.check(value).map_err(|e| ConfigError::out_of_range(path, e))
}

/// A number of seconds as a `Duration`, the longest one past its range
/// (the callers check the range first; this only never panics).
fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::MAX)
}

/// A latency bound in milliseconds, in [`BOUND_MS`].
fn ms(value: f64, path: &str) -> Result<Duration, ConfigError> {
    Ok(seconds(real(path, BOUND_MS, value)? / 1000.0))
}

fn share(v: f64, path: &str) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(err(path, format!("must be a share between 0 and 1, got {v}")))
    }
}

fn check_http_url(path: &str, url: &str) -> Result<(), ConfigError> {
    match url.parse::<http::Uri>() {
        Ok(uri) if uri.scheme_str() == Some("http") && uri.authority().is_some() => Ok(()),
        _ => Err(err(
            path,
            format!("`{url}` must be an http:// URL with a host and port"),
        )),
    }
}
