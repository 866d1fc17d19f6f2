//! `schema` and `[meta]`: which format the file is, and what the scenario
//! is called (it names the report folder).

use mock_providers::config::ConfigError;

use super::err;
use crate::scenario::raw::RawScenario;
use crate::scenario::{Meta, SCHEMA};

/// Validates `schema` and `[meta]`.
pub fn meta(raw: &RawScenario) -> Result<Meta, ConfigError> {
    if raw.schema != SCHEMA {
        return Err(err(
            "schema",
            format!("this gauntlet reads schema = {SCHEMA}, the file says {}", raw.schema),
        ));
    }
    let name = raw.meta.name.trim().to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(err(
            "meta.name",
            format!("must be letters, digits, `-`, `_` or `.` (it names the report folder), got `{name}`"),
        ));
    }
    let meta = Meta {
        name,
        description: raw.meta.description.clone().unwrap_or_default(),
        seed: raw.meta.seed.unwrap_or(0),
        tags: raw.meta.tags.clone(),
    };
    Ok(meta)
}
