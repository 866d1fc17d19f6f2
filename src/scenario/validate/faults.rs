//! `[[faults]]`: the fault timeline, each step setting a mock's faults at a
//! time into the run.

use std::collections::HashSet;
use std::time::Duration;

use mock_providers::config::{ConfigError, validate_faults};
use mock_providers::faults::Fault;

use super::err;
use crate::scenario::FaultStep;
use crate::scenario::raw::RawFaultStep;

/// Validates `[[faults]]` against the mocks and the run's length `total`.
pub fn faults(
    raw: &[RawFaultStep],
    mock_names: &HashSet<&str>,
    total: Duration,
) -> Result<Vec<FaultStep>, ConfigError> {
    let mut faults = Vec::with_capacity(raw.len());
    for (i, f) in raw.iter().enumerate() {
        let path = format!("faults[{i}]");
        if !mock_names.contains(f.provider.as_str()) {
            return Err(err(
                format!("{path}.provider"),
                format!("no [[providers]] is named `{}`", f.provider),
            ));
        }
        let at = Duration::from_millis(f.at_ms);
        if at >= total {
            return Err(err(
                format!("{path}.at-ms"),
                format!("{} ms is after the run ends ({} ms)", f.at_ms, total.as_millis()),
            ));
        }
        let set: Vec<Fault> = validate_faults(&f.set, &format!("{path}.set"))?;
        faults.push(FaultStep {
            at,
            provider: f.provider.clone(),
            set,
        });
    }
    faults.sort_by_key(|f| f.at);
    Ok(faults)
}
