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

use mock_providers::config::ConfigError;

use super::raw::RawScenario;
use super::{DEFAULT_REPORT_DIR, Scenario};
use crate::target::Target;

pub use sweep::MAX_SWEEP_STEPS;

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

/// A number of milliseconds > 0.
fn ms(value: f64, path: &str) -> Result<Duration, ConfigError> {
    if value.is_finite() && value > 0.0 {
        Ok(Duration::from_secs_f64(value / 1000.0))
    } else {
        Err(err(path, format!("must be a number of milliseconds > 0, got {value}")))
    }
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
