//! `[floor]`: the mock a bench scenario's phases are first sent straight
//! at, to measure what the load engine and loopback cost without a router.

use mock_providers::config::{ConfigError, RawProvider};

use super::err;
use crate::scenario::Floor;
use crate::scenario::raw::RawFloor;

/// Validates `[floor]`: an OpenAI-dialect mock, and no sweep.
pub fn floor(raw: Option<&RawFloor>, providers: &[RawProvider], sweep: bool) -> Result<Option<Floor>, ConfigError> {
    let floor = match raw {
        None => None,
        Some(f) => {
            if sweep {
                return Err(err(
                    "floor",
                    "a [sweep] does not measure a floor; remove one of the two",
                ));
            }
            let provider = providers.iter().find(|p| p.name == f.provider).ok_or_else(|| {
                let hint = mock_providers::config::closest(&f.provider, providers.iter().map(|p| p.name.as_str()))
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_default();
                err(
                    "floor.provider",
                    format!("no [[providers]] is named `{}`{hint}", f.provider),
                )
            })?;
            if provider.dialect != mock_providers::Dialect::OpenAi {
                return Err(err(
                    "floor.provider",
                    format!(
                        "`{}` speaks the anthropic dialect; the floor is the load engine's own OpenAI requests straight at a mock, so it needs an openai one (declare an openai twin with the same timing)",
                        f.provider
                    ),
                ));
            }
            Some(Floor {
                provider: f.provider.clone(),
            })
        }
    };
    Ok(floor)
}
