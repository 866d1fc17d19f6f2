//! `[[providers]]`: the mock upstream providers, validated into the form
//! they are started from, each seeded from the scenario unless it has a
//! seed of its own.

use mock_providers::config::{ConfigError, RawProvider, validate_providers};

use crate::scenario::Mock;

/// Validates `[[providers]]`; a mock without a seed takes `seed`.
pub fn mocks(raw: &[RawProvider], seed: u64) -> Result<Vec<Mock>, ConfigError> {
    let mut seeded = raw.to_vec();
    for p in &mut seeded {
        p.seed = p.seed.or(Some(seed));
    }
    let configs = validate_providers(&seeded)?;
    Ok(configs
        .into_iter()
        .zip(raw)
        .map(|(config, raw)| Mock {
            config,
            own_seed: raw.seed.is_some(),
        })
        .collect())
}
