//! `[target]`: the router the scenario runs against, the built-in one or
//! one at an HTTP URL (with how to start it and ask whether it is ready).

use std::collections::BTreeMap;
use std::time::Duration;

use mock_providers::config::ConfigError;

use super::{READY_TIMEOUT_MS, check_http_url, count, err};
use crate::scenario::raw::{RawTarget, TargetKind};
use crate::target::{self, DEFAULT_READY_TIMEOUT, Profile, RawProfile, Target};

/// Validates `[profiles.NAME]`: the scenario's own router profiles.
pub fn profiles(raw: &BTreeMap<String, RawProfile>) -> Result<Vec<Profile>, ConfigError> {
    raw.iter()
        .map(|(name, p)| {
            p.validate(name).map_err(|e| ConfigError {
                value: e.value,
                ..err(format!("profiles.{name}.{}", e.field), e.message)
            })
        })
        .collect()
}

/// The profile `name` names: one of `declared`, or a built-in one.
fn named(name: &str, declared: &[Profile]) -> Result<Profile, ConfigError> {
    Profile::named(name, declared).ok_or_else(|| {
        err(
            "target.profile",
            format!(
                "no profile `{name}`: the built-in ones and the scenario's [profiles] are {}",
                Profile::known_names(declared)
            ),
        )
    })
}

/// Validates `[target]` (none is the built-in router).
pub fn target(raw: Option<&RawTarget>, profiles: &[Profile]) -> Result<Target, ConfigError> {
    let target = match raw {
        None => Target::Builtin,
        Some(t) => match t.kind {
            TargetKind::Builtin => {
                for (field, given) in [
                    ("url", t.url.is_some()),
                    ("command", t.command.is_some()),
                    ("ready-url", t.ready_url.is_some()),
                    ("profile", t.profile.is_some()),
                    ("headers", t.headers.is_some()),
                ] {
                    if given {
                        return Err(err(format!("target.{field}"), "applies only to kind = \"http\""));
                    }
                }
                Target::Builtin
            }
            TargetKind::Http => {
                let url = t
                    .url
                    .clone()
                    .ok_or_else(|| err("target.url", "kind = \"http\" needs the router's API base URL"))?;
                let url = url.trim_end_matches('/').to_string();
                check_http_url("target.url", &url)?;
                if let Some(command) = &t.command
                    && command.first().is_none_or(|c| c.trim().is_empty())
                {
                    return Err(err(
                        "target.command",
                        "must name a program: [\"./my-router\", \"--flag\"]",
                    ));
                }
                if let Some(ready_url) = &t.ready_url {
                    check_http_url("target.ready-url", ready_url)?;
                }
                let profile = match &t.profile {
                    Some(name) => named(name, profiles)?,
                    None => Profile::openrouter(),
                };
                let mut headers = Vec::new();
                for (name, value) in t.headers.iter().flatten() {
                    let header = target::header(name, value)
                        .map_err(|e| err(format!("target.headers.{name}"), e.to_string()))?;
                    headers.push(header);
                }
                Target::Http {
                    url,
                    profile: Box::new(profile),
                    command: t.command.clone(),
                    ready_url: t.ready_url.clone(),
                    ready_timeout: t
                        .ready_timeout_ms
                        .map(|ms| count("target.ready-timeout-ms", READY_TIMEOUT_MS, ms))
                        .transpose()?
                        .map_or(DEFAULT_READY_TIMEOUT, Duration::from_millis),
                    headers,
                }
            }
        },
    };
    Ok(target)
}
