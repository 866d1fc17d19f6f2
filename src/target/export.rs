//! Another router's own configuration, written from a scenario's
//! `[router]` table (`gauntlet export-config`): the models and their
//! prices, the upstreams pointed at the scenario's mocks, retries, cooldown
//! and keys, in [`litellm`]'s or [`portkey`]'s terms, so that router can be
//! put in front of the suite as configured as the checks expect. What the
//! other router cannot express (prepaid credits, lifecycle dates, system
//! prefixes…) is said in a comment of the output, never silently dropped.
//!
//! Amounts are written from the exact picodollar prices as decimals
//! (`0.00000015`), never through a binary float.

mod litellm;
mod portkey;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::Expectations;
use crate::router::config::{Dialect, RouterConfig};
use crate::router::pricing::TokenPrice;

/// The routers a configuration can be written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFor {
    /// LiteLLM proxy: a `config.yaml`.
    Litellm,
    /// Portkey's gateway: an `x-portkey-config` header, in a scenario `[target]` table.
    Portkey,
}

/// What a configuration is written from.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The scenario file, named in the output.
    pub file: &'a Path,
    /// Its `[router]` table, validated.
    pub expect: &'a Expectations,
    /// Where each of its mocks listens, by name (after `--mock-ports`).
    pub mocks: &'a [(&'a str, SocketAddr)],
    /// The `--mock-ports` BASE they were placed from, if any: the commands
    /// the output suggests repeat it.
    pub mock_ports: Option<u16>,
}

impl Source<'_> {
    /// The command line that runs the scenario against the router at
    /// `url` (ready once `ready` answers), read with `profile`, its mocks
    /// where the configuration expects them, and `extra` arguments.
    /// The command line that runs the scenario against the router at `url`
    /// (its profile says where readiness is asked).
    fn run_command(&self, url: &str, profile: &str, extra: &str) -> String {
        let ports = self
            .mock_ports
            .map(|b| format!(" --mock-ports {b}"))
            .unwrap_or_default();
        format!(
            "gauntlet run {}{ports} --target {url} --profile {profile}{extra}",
            self.file.display()
        )
    }

    /// The command line that serves the mocks alone, to try the router by hand.
    fn mock_command(&self) -> String {
        let ports = self
            .mock_ports
            .map(|b| format!(" --mock-ports {b}"))
            .unwrap_or_default();
        format!("gauntlet mock --config {}{ports}", self.file.display())
    }
}

/// Why a configuration cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// A `mock:NAME` upstream whose mock takes any free port: the other
    /// router could not be told where it is.
    #[error(
        "router.providers[{index}] (`{provider}`) calls mock `{mock}`, which listens on a random port \
         ({listen}): give the mock a fixed `listen`, or --mock-ports BASE here and to `gauntlet run` \
         (or `gauntlet mock`)"
    )]
    RandomPort {
        index: usize,
        provider: String,
        mock: String,
        listen: SocketAddr,
    },
    /// A `mock:NAME` upstream whose mock is not in [`Source::mocks`].
    #[error("router.providers[{index}] (`{provider}`) calls mock `{mock}`, which the scenario does not declare")]
    UnknownMock {
        index: usize,
        provider: String,
        mock: String,
    },
}

/// The configuration of `router`, as the text of its file.
pub fn export(router: ExportFor, source: &Source<'_>) -> Result<String, ExportError> {
    let upstreams = upstreams(source)?;
    Ok(match router {
        ExportFor::Litellm => litellm::config(source, &upstreams),
        ExportFor::Portkey => portkey::config(source, &upstreams),
    })
}

/// A router provider of the scenario, as the other router reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Upstream {
    name: String,
    dialect: Dialect,
    /// `http://host:port` (and a path prefix, for a URL that is not a mock):
    /// the root the reference router appends `/v1/chat/completions` or
    /// `/v1/messages` to.
    root: String,
    api_key: String,
}

/// Every router provider, `mock:NAME` ones at their mock's address.
fn upstreams(source: &Source<'_>) -> Result<Vec<Upstream>, ExportError> {
    let config = &source.expect.config;
    (config.providers.iter().enumerate())
        .map(|(index, p)| {
            let root = match source.expect.mock(index) {
                None => p.base_url.to_string(),
                Some(mock) => mock_root(source, index, &p.name, mock)?,
            };
            Ok(Upstream {
                name: p.name.to_string(),
                dialect: p.dialect,
                root,
                api_key: p.api_key.to_string(),
            })
        })
        .collect()
}

/// `http://127.0.0.1:PORT` of mock `mock`, called by router provider `index`.
fn mock_root(source: &Source<'_>, index: usize, provider: &str, mock: &str) -> Result<String, ExportError> {
    let Some((_, listen)) = source.mocks.iter().find(|(name, _)| *name == mock) else {
        return Err(ExportError::UnknownMock {
            index,
            provider: provider.to_string(),
            mock: mock.to_string(),
        });
    };
    if listen.port() == 0 {
        return Err(ExportError::RandomPort {
            index,
            provider: provider.to_string(),
            mock: mock.to_string(),
            listen: *listen,
        });
    }
    let mut reach = *listen;
    if reach.ip().is_unspecified() {
        reach.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Ok(format!("http://{reach}"))
}

/// A price per million tokens as exact decimal USD per token (`0.15` →
/// `0.00000015`).
fn per_token(price: TokenPrice) -> String {
    price.per_token().to_usd_string()
}

/// A duration in seconds, exactly (`1.5`, `10`).
fn seconds(d: Duration) -> String {
    let ms = d.as_millis();
    let (whole, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        format!("{whole}")
    } else {
        format!("{whole}.{}", format!("{frac:03}").trim_end_matches('0'))
    }
}

/// What neither router can express, one sentence each: lifecycle dates,
/// system prefixes, `:free` limits, prepaid credits, BYOK, the calendar
/// warp, and the retry policy's backoff and budget.
fn not_expressible(config: &RouterConfig) -> Vec<String> {
    let mut notes = Vec::new();
    for m in config.catalog.models() {
        if let Some(d) = &m.deprecation {
            notes.push(format!(
                "`{}` is announced for removal on {} and removed on {}, replaced by `{}`: no model lifecycle \
                 (serving the replacement in the grace period, then 404)",
                m.id, d.announced, d.removed, d.replacement
            ));
        }
        if let Some(prefix) = &m.system_prefix {
            notes.push(format!(
                "`{}` puts the system prefix {:?} before the caller's system prompt: no per-model system prefix",
                m.id, prefix
            ));
        }
    }
    if config.catalog.models().iter().any(|m| m.free) {
        let f = &config.free;
        notes.push(format!(
            "`:free` models are limited to {} a minute and {} a day per key ({} once a key bought {} USD): \
             no such quota",
            f.per_minute,
            f.per_day,
            f.per_day_after_purchase,
            f.purchase_threshold.to_usd_string()
        ));
    }
    for k in &config.keys {
        notes.push(format!(
            "key `{}` has {} USD of prepaid credits: no prepaid balance (nothing refuses a request with 402)",
            k.key,
            k.credits.to_usd_string()
        ));
        if let Some(b) = &k.byok {
            let provider = config.providers.get(b.provider).map_or("?", |p| &*p.name);
            notes.push(format!(
                "key `{}` brings its own `{provider}` key, charged a fee of {} basis points: no BYOK",
                k.key, config.byok_fee_bps
            ));
        }
    }
    if let Some(start) = config.clock.start {
        notes.push(format!(
            "the calendar starts at {start} and runs {}× fast: the router's clock is the real one",
            config.clock.speed
        ));
    }
    let r = &config.retry;
    notes.push(format!(
        "backoff of uniform(0, min({} s, {} s × 2^(k−1))) before retry k, never sooner than Retry-After, and \
         a retry budget of {} × requests (at least {}) per {} s: the router's own backoff, no budget",
        seconds(r.cap()),
        seconds(r.base()),
        r.budget_ratio(),
        r.budget_min_retries(),
        seconds(r.budget_window()),
    ));
    notes
}

/// `text` in single quotes for a POSIX shell.
fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A comment line as it is (a command to copy): `#   text`.
fn command_line(out: &mut String, text: &str) {
    out.push_str("#   ");
    out.push_str(text);
    out.push('\n');
}

/// `text` as comment lines (`# …`), wrapped at about 92 columns.
fn comment(out: &mut String, text: &str) {
    const WIDTH: usize = 92;
    let mut line = String::from("#");
    for word in text.split(' ') {
        if line.len() > 2 && line.len() + 1 + word.len() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#  ");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

#[cfg(test)]
mod tests;
