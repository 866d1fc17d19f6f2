//! What a scenario expects of the router under test: its `[router]` table,
//! validated as the reference router reads its own configuration. For the
//! built-in target it is that router's configuration; for an external
//! router it states the prices, keys, limits and lifecycle the router was
//! configured with, which the conformance checks hold it to.

use std::collections::HashSet;
use std::sync::Arc;

pub use crate::router::catalog::{Deprecation, Model};
pub use crate::router::config::{RawRouter, RouterConfig};
pub use crate::router::pricing::Picodollars;

/// The prefix of a router provider's `base-url` that names a scenario mock.
pub const MOCK_URL_PREFIX: &str = "mock:";

/// A stand-in upstream address while the mocks are not started: validation
/// needs a URL, and nothing is ever sent to it.
const PLACEHOLDER_URL: &str = "http://127.0.0.1:1";

/// The scenario's `[router]` table, validated.
#[derive(Debug, Clone)]
pub struct Expectations {
    /// The configuration, `mock:NAME` upstreams at a placeholder address
    /// until [`Expectations::resolved`].
    pub config: RouterConfig,
    /// Per router provider (by index): the mock it calls, when its
    /// `base-url` is `mock:NAME`.
    mocks: Vec<Option<String>>,
    /// Whether `[router.retry]` stated its per-provider limit in retries
    /// (`retries-per-provider`) rather than attempts: the words a verdict
    /// on that limit uses.
    pub limit_in_retries: bool,
}

/// A `[router]` field that is wrong: where, the value when it is out of
/// its range, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}{}: {message}", .value.as_ref().map(|v| format!(" = {v}")).unwrap_or_default())]
pub struct ExpectError {
    /// The field path, e.g. `router.models[0].prompt`.
    pub path: String,
    pub value: Option<String>,
    pub message: String,
}

impl Expectations {
    /// Validates `raw` (at `path`, e.g. `router`); every `mock:NAME`
    /// upstream must name one of `mock_names`.
    pub fn validate(raw: &RawRouter, path: &str, mock_names: &HashSet<&str>) -> Result<Self, ExpectError> {
        let mut raw = raw.clone();
        let mut mocks = Vec::with_capacity(raw.providers.len());
        for (i, p) in raw.providers.iter_mut().enumerate() {
            let mock = p.base_url.strip_prefix(MOCK_URL_PREFIX).map(str::to_string);
            if let Some(name) = &mock {
                if !mock_names.contains(name.as_str()) {
                    return Err(ExpectError {
                        path: format!("{path}.providers[{i}].base-url"),
                        value: None,
                        message: format!("no [[providers]] is named `{name}`"),
                    });
                }
                p.base_url = PLACEHOLDER_URL.into();
            }
            mocks.push(mock);
        }
        let config = raw.validate(path).map_err(|e| ExpectError {
            path: e.path,
            value: e.value,
            message: e.message,
        })?;
        let limit_in_retries = raw.retry.as_ref().is_some_and(|r| r.retries_per_provider.is_some());
        Ok(Expectations {
            config,
            mocks,
            limit_in_retries,
        })
    }

    /// The mock router provider number `index` calls, when its `base-url`
    /// is `mock:NAME`.
    pub fn mock(&self, index: usize) -> Option<&str> {
        self.mocks.get(index)?.as_deref()
    }

    /// The mock behind router provider number `index` (its own name when
    /// its `base-url` is not a `mock:` one).
    pub fn mock_name(&self, index: usize) -> Option<&str> {
        let mock = self.mocks.get(index)?.as_deref();
        mock.or_else(|| self.config.providers.get(index).map(|p| p.name.as_ref()))
    }

    /// The configuration with each `mock:NAME` upstream at `mock_url(NAME)`.
    pub fn resolved(&self, mock_url: impl Fn(&str) -> Option<String>) -> RouterConfig {
        let mut config = self.config.clone();
        for (upstream, mock) in config.providers.iter_mut().zip(&self.mocks) {
            if let Some(url) = mock.as_deref().and_then(&mock_url) {
                upstream.base_url = Arc::from(url.trim_end_matches('/'));
            }
        }
        config
    }
}
