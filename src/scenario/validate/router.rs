//! `[router]`: the prices, keys, limits and lifecycle the router is
//! configured with — the built-in router's configuration, and what the
//! conformance checks expect of any router.

use std::collections::HashSet;

use mock_providers::config::ConfigError;

use super::err;
use crate::target::{Expectations, RawRouter, Target};

/// Validates `[router]`, which the built-in target needs; `mock:NAME`
/// upstreams must name one of `mock_names`.
pub fn router(
    raw: Option<&RawRouter>,
    target: &Target,
    mock_names: &HashSet<&str>,
) -> Result<Option<Expectations>, ConfigError> {
    let expect = match raw {
        None if *target == Target::Builtin => {
            return Err(err(
                "router",
                "the built-in target needs a [router] table (models, prices, keys)",
            ));
        }
        None => None,
        Some(router) => Some(
            Expectations::validate(router, "router", mock_names).map_err(|e| ConfigError {
                value: e.value,
                ..err(e.path, e.message)
            })?,
        ),
    };
    Ok(expect)
}
