//! Provider configuration: the `[[providers]]` tables of a scenario file,
//! parsed into raw serde structs and validated into [`ProviderConfig`].
//!
//! ```toml
//! [[providers]]
//! name = "openai-like"              # unique; names the provider in the journal
//! dialect = "openai"                # openai | anthropic
//! listen = "127.0.0.1:18001"        # default 127.0.0.1:0 (any free port)
//! seed = 7                          # default 0
//!
//! [providers.defaults]              # behaviour of every model (listed models may override)
//! ttft-ms = { dist = "lognormal", p50 = 300, p99 = 900 }
//! itl-ms = 20
//! output-tokens = { dist = "uniform", min = 20, max = 200 }
//! cache-read-share = 0.5            # share of prompt tokens reported as read from the cache
//! cache-write-share = 0.0           # share reported as written to the cache (Anthropic)
//! reasoning-tokens = 0              # extra completion tokens reported as reasoning
//! role-chunk = "at-once"            # at-once | with-first-token: when a stream's opening
//!                                   # (OpenAI's role chunk, Anthropic's message_start) is sent
//!
//! [[providers.models]]              # none listed: any model name is served
//! id = "gpt-4o-mini"
//! removed = false                   # true: 404 model_not_found
//! tool-call = { name = "get_weather", arguments = '{"city":"Paris"}' }
//! itl-ms = 10                       # any behaviour field overrides the defaults
//!
//! [[providers.keys]]                # none listed: any key (or none) is accepted
//! key = "sk-upstream-1"
//! rpm = 600
//! tpm = 200000
//! concurrency = 50
//!
//! [[providers.faults]]              # see the faults module
//! kind = "status"
//! status = 429
//! retry-after-ms = 1000
//! probability = 0.1
//! ```
//!
//! Every delay, length, limit and fault time has a range ([`crate::bounds`]:
//! delays up to an hour, lengths up to a million tokens, limits up to 10
//! million a second); a value outside it is refused as
//! `providers[0].defaults.ttft-ms = 1e300: must be …`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Dialect;
use crate::bounds::{self, Count, OutOfRange};
use crate::distribution::{Distribution, DistributionError, RawDistribution};
use crate::faults::{Fault, RawFault};
use crate::limits::KeyLimits;

/// The default address: loopback, any free port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:0";

/// A configuration error: where (file, field path, line), the value when
/// it is the problem, and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}{}: {message}", location(.file, .line), if .path.is_empty() { String::new() } else { format!(": {}", .path) }, .value.as_ref().map(|v| format!(" = {v}")).unwrap_or_default())]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    /// 1-based line and column in the file, when known.
    pub line: Option<(usize, usize)>,
    /// The field path, like `providers[0].models[1].ttft-ms`.
    pub path: String,
    /// The value at `path`, when the error is about it (one out of its
    /// range): shown as `path = value: message`.
    pub value: Option<String>,
    pub message: String,
}

fn location(file: &Option<PathBuf>, line: &Option<(usize, usize)>) -> String {
    let file = file
        .as_ref()
        .map_or_else(|| "<config>".to_string(), |f| f.display().to_string());
    match line {
        Some((l, c)) => format!("{file}:{l}:{c}"),
        None => file,
    }
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            file: None,
            line: None,
            path: path.into(),
            value: None,
            message: message.into(),
        }
    }

    /// The value at `path` is out of its range.
    pub fn out_of_range(path: impl Into<String>, e: OutOfRange) -> Self {
        ConfigError {
            value: Some(e.value),
            ..ConfigError::new(path, e.expected)
        }
    }

    /// Attaches the file the error came from.
    pub fn in_file(mut self, file: &Path) -> Self {
        self.file = Some(file.to_path_buf());
        self
    }
}

/// Behaviour fields as written (in `defaults` and in each model).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawBehaviour {
    pub ttft_ms: Option<RawDistribution>,
    pub itl_ms: Option<RawDistribution>,
    pub output_tokens: Option<RawDistribution>,
    pub cache_read_share: Option<f64>,
    pub cache_write_share: Option<f64>,
    pub reasoning_tokens: Option<u32>,
    pub role_chunk: Option<RoleChunk>,
}

/// When a stream's opening (OpenAI's role chunk; Anthropic's
/// `message_start`, `content_block_start` and `ping`) is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoleChunk {
    /// As soon as the response starts, before the first token is due.
    #[default]
    AtOnce,
    /// In the same write as the first token, as some providers do: a router
    /// can then hide no delay of its own behind the time to the first token.
    WithFirstToken,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawModel {
    pub id: String,
    #[serde(default)]
    pub removed: bool,
    pub tool_call: Option<RawToolCall>,
    // The behaviour fields again: serde cannot flatten with deny_unknown_fields.
    pub ttft_ms: Option<RawDistribution>,
    pub itl_ms: Option<RawDistribution>,
    pub output_tokens: Option<RawDistribution>,
    pub cache_read_share: Option<f64>,
    pub cache_write_share: Option<f64>,
    pub reasoning_tokens: Option<u32>,
    pub role_chunk: Option<RoleChunk>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawToolCall {
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawKey {
    pub key: String,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub concurrency: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawProvider {
    pub name: String,
    pub dialect: Dialect,
    pub listen: Option<String>,
    pub seed: Option<u64>,
    #[serde(default)]
    pub defaults: RawBehaviour,
    #[serde(default)]
    pub models: Vec<RawModel>,
    #[serde(default)]
    pub keys: Vec<RawKey>,
    #[serde(default)]
    pub faults: Vec<RawFault>,
}

/// A file that holds `[[providers]]` tables; other top-level tables (a
/// scenario's `[router]`, `[[phases]]`...) are left to their own readers.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawProvidersFile {
    #[serde(default)]
    pub providers: Vec<RawProvider>,
}

/// How a model answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    pub ttft_ms: Distribution,
    pub itl_ms: Distribution,
    pub output_tokens: Distribution,
    pub cache_read_share: f64,
    pub cache_write_share: f64,
    pub reasoning_tokens: u32,
    pub role_chunk: RoleChunk,
}

impl Default for Behaviour {
    /// The one source of the default behaviour: 50 ms to the first token,
    /// 10 ms between tokens, 16 output tokens, nothing cached.
    fn default() -> Self {
        Behaviour {
            ttft_ms: Distribution::Constant(50.0),
            itl_ms: Distribution::Constant(10.0),
            output_tokens: Distribution::Constant(16.0),
            cache_read_share: 0.0,
            cache_write_share: 0.0,
            reasoning_tokens: 0,
            role_chunk: RoleChunk::AtOnce,
        }
    }
}

/// A tool call the model answers with when the request offers tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub name: String,
    /// The arguments as a JSON text (validated).
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub id: String,
    pub removed: bool,
    pub tool_call: Option<ToolCall>,
    pub behaviour: Behaviour,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyConfig {
    pub key: String,
    pub limits: KeyLimits,
}

/// A validated provider.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub dialect: Dialect,
    pub listen: SocketAddr,
    pub seed: u64,
    pub defaults: Behaviour,
    /// Empty: any model name is served with `defaults`.
    pub models: Vec<ModelConfig>,
    /// Empty: any key, or none, is accepted without limits.
    pub keys: Vec<KeyConfig>,
    pub faults: Vec<Fault>,
}

impl ProviderConfig {
    /// A provider that serves any model with the default behaviour.
    pub fn any_model(name: &str, dialect: Dialect, listen: SocketAddr) -> Self {
        ProviderConfig {
            name: name.to_string(),
            dialect,
            listen,
            seed: 0,
            defaults: Behaviour::default(),
            models: Vec::new(),
            keys: Vec::new(),
            faults: Vec::new(),
        }
    }
}

impl RawBehaviour {
    /// Applies these fields over `base`; `path` prefixes error paths.
    fn apply(&self, base: &Behaviour, path: &str) -> Result<Behaviour, ConfigError> {
        let dist = |field: &str,
                    raw: &Option<RawDistribution>,
                    range: bounds::Range,
                    base: Distribution|
         -> Result<Distribution, ConfigError> {
            raw.as_ref().map_or(Ok(base), |r| {
                r.validate(range).map_err(|e| {
                    // A table's parameter is named by its own path.
                    let path = match (r, e.parameter()) {
                        (RawDistribution::Table(_), Some(parameter)) => format!("{path}.{field}.{parameter}"),
                        _ => format!("{path}.{field}"),
                    };
                    match e {
                        DistributionError::OutOfRange { range, .. } => ConfigError::out_of_range(path, range),
                        e => ConfigError::new(path, e.to_string()),
                    }
                })
            })
        };
        let share = |field: &str, raw: Option<f64>, base: f64| -> Result<f64, ConfigError> {
            match raw {
                None => Ok(base),
                Some(s) if (0.0..=1.0).contains(&s) => Ok(s),
                Some(s) => Err(ConfigError::new(
                    format!("{path}.{field}"),
                    format!("must be between 0 and 1, got {s}"),
                )),
            }
        };
        let behaviour = Behaviour {
            ttft_ms: dist("ttft-ms", &self.ttft_ms, bounds::DELAY_MS, base.ttft_ms)?,
            itl_ms: dist("itl-ms", &self.itl_ms, bounds::DELAY_MS, base.itl_ms)?,
            output_tokens: dist(
                "output-tokens",
                &self.output_tokens,
                bounds::OUTPUT_TOKENS,
                base.output_tokens,
            )?,
            cache_read_share: share("cache-read-share", self.cache_read_share, base.cache_read_share)?,
            cache_write_share: share("cache-write-share", self.cache_write_share, base.cache_write_share)?,
            reasoning_tokens: in_range(
                format!("{path}.reasoning-tokens"),
                bounds::REASONING_TOKENS,
                self.reasoning_tokens,
            )?
            .unwrap_or(base.reasoning_tokens),
            role_chunk: self.role_chunk.unwrap_or(base.role_chunk),
        };
        if behaviour.cache_read_share + behaviour.cache_write_share > 1.0 {
            return Err(ConfigError::new(
                format!("{path}.cache-write-share"),
                format!(
                    "cache-read-share + cache-write-share must not exceed 1, got {} + {}",
                    behaviour.cache_read_share, behaviour.cache_write_share
                ),
            ));
        }
        Ok(behaviour)
    }
}

impl RawModel {
    fn behaviour(&self) -> RawBehaviour {
        RawBehaviour {
            ttft_ms: self.ttft_ms.clone(),
            itl_ms: self.itl_ms.clone(),
            output_tokens: self.output_tokens.clone(),
            cache_read_share: self.cache_read_share,
            cache_write_share: self.cache_write_share,
            reasoning_tokens: self.reasoning_tokens,
            role_chunk: self.role_chunk,
        }
    }
}

/// `value`, when given, in `range`.
fn in_range<T: Copy + TryInto<u64> + std::fmt::Display>(
    path: String,
    range: Count,
    value: Option<T>,
) -> Result<Option<T>, ConfigError> {
    value
        .map(|v| range.check(v).map_err(|e| ConfigError::out_of_range(path, e)))
        .transpose()
}

/// A per-key limit, when given: in `range`, whose lowest value is at least 1.
fn limit(path: String, range: Count, value: Option<u32>) -> Result<Option<NonZeroU32>, ConfigError> {
    Ok(in_range(path, range, value)?.and_then(NonZeroU32::new))
}

impl RawProvider {
    /// Validates the provider at `providers[index]`.
    pub fn validate(&self, index: usize) -> Result<ProviderConfig, ConfigError> {
        let at = format!("providers[{index}]");
        if self.name.trim().is_empty() {
            return Err(ConfigError::new(format!("{at}.name"), "must not be empty"));
        }
        let listen_text = self.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ConfigError::new(
                format!("{at}.listen"),
                format!("`{listen_text}` is not an address like 127.0.0.1:18001"),
            )
        })?;
        let defaults = self.defaults.apply(&Behaviour::default(), &format!("{at}.defaults"))?;

        let mut seen = HashSet::new();
        let mut models = Vec::with_capacity(self.models.len());
        for (i, raw) in self.models.iter().enumerate() {
            let path = format!("{at}.models[{i}]");
            if raw.id.trim().is_empty() {
                return Err(ConfigError::new(format!("{path}.id"), "must not be empty"));
            }
            if !seen.insert(raw.id.as_str()) {
                return Err(ConfigError::new(
                    format!("{path}.id"),
                    format!("model `{}` is listed twice", raw.id),
                ));
            }
            let tool_call = match &raw.tool_call {
                None => None,
                Some(t) => {
                    if let Err(e) = serde_json::from_str::<serde_json::Value>(&t.arguments) {
                        return Err(ConfigError::new(
                            format!("{path}.tool-call.arguments"),
                            format!("must be a JSON text: {e}"),
                        ));
                    }
                    if t.name.trim().is_empty() {
                        return Err(ConfigError::new(format!("{path}.tool-call.name"), "must not be empty"));
                    }
                    Some(ToolCall {
                        name: t.name.clone(),
                        arguments: t.arguments.clone(),
                    })
                }
            };
            models.push(ModelConfig {
                id: raw.id.clone(),
                removed: raw.removed,
                tool_call,
                behaviour: raw.behaviour().apply(&defaults, &path)?,
            });
        }

        let mut seen = HashSet::new();
        let mut keys = Vec::with_capacity(self.keys.len());
        for (i, raw) in self.keys.iter().enumerate() {
            let path = format!("{at}.keys[{i}]");
            if raw.key.is_empty() {
                return Err(ConfigError::new(format!("{path}.key"), "must not be empty"));
            }
            if !seen.insert(raw.key.as_str()) {
                return Err(ConfigError::new(format!("{path}.key"), "this key is listed twice"));
            }
            keys.push(KeyConfig {
                key: raw.key.clone(),
                limits: KeyLimits {
                    rpm: limit(format!("{path}.rpm"), bounds::PER_MINUTE, raw.rpm)?,
                    tpm: limit(format!("{path}.tpm"), bounds::PER_MINUTE, raw.tpm)?,
                    concurrency: limit(format!("{path}.concurrency"), bounds::CONCURRENCY, raw.concurrency)?,
                },
            });
        }

        let faults = validate_faults(&self.faults, &format!("{at}.faults"))?;
        Ok(ProviderConfig {
            name: self.name.clone(),
            dialect: self.dialect,
            listen,
            seed: self.seed.unwrap_or(0),
            defaults,
            models,
            keys,
            faults,
        })
    }
}

/// Validates a fault list; `path` is where the list sits.
pub fn validate_faults(raw: &[RawFault], path: &str) -> Result<Vec<Fault>, ConfigError> {
    raw.iter()
        .enumerate()
        .map(|(i, f)| {
            f.validate(i).map_err(|e| ConfigError {
                value: e.value,
                ..ConfigError::new(format!("{path}[{i}].{}", e.field), e.message)
            })
        })
        .collect()
}

/// Validates every provider of a file: names and fixed ports must be unique.
pub fn validate_providers(raw: &[RawProvider]) -> Result<Vec<ProviderConfig>, ConfigError> {
    let mut names = HashSet::new();
    let mut ports = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, provider) in raw.iter().enumerate() {
        let config = provider.validate(i)?;
        if !names.insert(config.name.clone()) {
            return Err(ConfigError::new(
                format!("providers[{i}].name"),
                format!("provider `{}` is defined twice", config.name),
            ));
        }
        if config.listen.port() != 0 && !ports.insert(config.listen) {
            return Err(ConfigError::new(
                format!("providers[{i}].listen"),
                format!("{} is already used by another provider", config.listen),
            ));
        }
        out.push(config);
    }
    Ok(out)
}

/// Parses TOML text into `T`, turning a serde error into a [`ConfigError`]
/// with the field path, the line and column, and the closest valid key when a
/// key is misspelt.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| toml_error(text, "", &e))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        toml_error(text, &path, e.inner())
    })
}

fn toml_error(text: &str, path: &str, error: &toml::de::Error) -> ConfigError {
    let line = error.span().map(|span| line_col(text, span.start));
    ConfigError {
        line,
        ..ConfigError::new(path, with_suggestion(error.message().trim()))
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" (and the same
/// for variants), appends "did you mean `a`?" when one is close.
pub fn with_suggestion(message: &str) -> String {
    let Some(rest) = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))
    else {
        return message.to_string();
    };
    let Some((given, expected)) = rest.split_once('`') else {
        return message.to_string();
    };
    let candidates = expected.split('`').skip(1).step_by(2);
    match closest(given, candidates) {
        Some(best) => format!("{message}; did you mean `{best}`?"),
        None => message.to_string(),
    }
}

/// The candidate closest to `given`, if it is close enough to be a typo.
pub fn closest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(given, c), c))
        .filter(|&(d, c)| d <= (c.len().max(given.len()) / 3).max(2))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Reads the `[[providers]]` tables of a TOML file and validates them.
pub fn load_providers(file: &Path) -> Result<Vec<ProviderConfig>, ConfigError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ConfigError::new("", format!("cannot read the file: {e}")).in_file(file))?;
    let raw: RawProvidersFile = parse_toml(&text).map_err(|e| e.in_file(file))?;
    if raw.providers.is_empty() {
        return Err(ConfigError::new("providers", "the file has no [[providers]] table").in_file(file));
    }
    validate_providers(&raw.providers).map_err(|e| e.in_file(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<ProviderConfig>, ConfigError> {
        let raw: RawProvidersFile = parse_toml(text)?;
        validate_providers(&raw.providers)
    }

    #[test]
    fn a_typo_gets_path_line_and_suggestion() {
        let err = parse(
            "[[providers]]\nname = \"a\"\ndialect = \"openai\"\n[[providers.models]]\nid = \"m\"\nttft-mss = 3\n",
        )
        .unwrap_err();
        assert_eq!(err.path, "providers[0].models[0].ttft-mss");
        assert_eq!(err.line.map(|l| l.0), Some(6));
        assert!(err.message.contains("did you mean `ttft-ms`?"), "{}", err.message);
    }

    #[test]
    fn a_bad_dialect_is_named() {
        let err = parse("[[providers]]\nname = \"a\"\ndialect = \"opneai\"\n").unwrap_err();
        assert_eq!(err.path, "providers[0].dialect");
        assert!(err.message.contains("did you mean `openai`?"), "{}", err.message);
    }

    #[test]
    fn validation_errors_name_the_field() {
        let cases = [
            (
                "[[providers]]\nname = \"a\"\ndialect = \"openai\"\nlisten = \"nowhere\"\n",
                "providers[0].listen",
            ),
            (
                "[[providers]]\nname = \"a\"\ndialect = \"openai\"\n[providers.defaults]\ncache-read-share = 2.0\n",
                "providers[0].defaults.cache-read-share",
            ),
            (
                "[[providers]]\nname = \"a\"\ndialect = \"openai\"\n[[providers.models]]\nid = \"m\"\nitl-ms = { dist = \"uniform\", min = 5, max = 1 }\n",
                "providers[0].models[0].itl-ms",
            ),
            (
                "[[providers]]\nname = \"a\"\ndialect = \"openai\"\n[[providers.keys]]\nkey = \"k\"\nrpm = 0\n",
                "providers[0].keys[0].rpm",
            ),
            (
                "[[providers]]\nname = \"a\"\ndialect = \"openai\"\n[[providers.faults]]\nkind = \"cut\"\n",
                "providers[0].faults[0].after-tokens",
            ),
            (
                "[[providers]]\nname = \"a\"\ndialect = \"openai\"\n[[providers]]\nname = \"a\"\ndialect = \"anthropic\"\n",
                "providers[1].name",
            ),
            (
                "[[providers]]\nname = \"a\"\ndialect = \"openai\"\n[[providers.models]]\nid = \"m\"\ntool-call = { name = \"f\", arguments = \"{oops\" }\n",
                "providers[0].models[0].tool-call.arguments",
            ),
        ];
        for (text, path) in cases {
            assert_eq!(parse(text).unwrap_err().path, path, "for {text}");
        }
    }

    /// `ttft-ms = 1e300` and `itl-ms = 1e20` validated, then panicked (or
    /// stalled) the mock: every delay has a range, named with its value.
    #[test]
    fn a_delay_out_of_range_is_refused_with_its_path_and_value() {
        let provider = "[[providers]]\nname = \"a\"\ndialect = \"openai\"\n[providers.defaults]\n";
        for (field, written, shown) in [
            ("ttft-ms", "1e300", "1e300"),
            ("itl-ms", "1e20", "1e20"),
            ("ttft-ms", "inf", "inf"),
            ("itl-ms", "nan", "NaN"),
            ("ttft-ms", "-1", "-1"),
            ("itl-ms", "3600001", "3600001"),
        ] {
            let err = parse(&format!("{provider}{field} = {written}\n")).unwrap_err();
            let path = format!("providers[0].defaults.{field}");
            assert_eq!(err.path, path, "{written}: {err}");
            assert!(
                err.to_string().ends_with(&format!(
                    "{path} = {shown}: must be a finite number of milliseconds between 0 and 3600000"
                )),
                "{err}"
            );
        }
        // A table's parameter is named by its own path.
        let err = parse(&format!(
            "{provider}ttft-ms = {{ dist = \"lognormal\", p50 = 100, p99 = 1e300 }}\n"
        ))
        .unwrap_err();
        assert_eq!(err.path, "providers[0].defaults.ttft-ms.p99", "{err}");
        let err = parse(&format!("{provider}output-tokens = 1e9\n")).unwrap_err();
        assert_eq!(err.path, "providers[0].defaults.output-tokens", "{err}");
        // The edges of the range are in it.
        parse(&format!("{provider}ttft-ms = 3600000\nitl-ms = 0\n")).unwrap();
    }

    #[test]
    fn counts_and_fault_times_out_of_range_are_refused() {
        let provider = "[[providers]]\nname = \"a\"\ndialect = \"openai\"\n";
        let cases = [
            (
                "[[providers.keys]]\nkey = \"k\"\nrpm = 4000000000\n",
                "providers[0].keys[0].rpm",
                "4000000000",
            ),
            (
                "[[providers.keys]]\nkey = \"k\"\nconcurrency = 2000000\n",
                "providers[0].keys[0].concurrency",
                "2000000",
            ),
            (
                "[providers.defaults]\nreasoning-tokens = 4294967295\n",
                "providers[0].defaults.reasoning-tokens",
                "4294967295",
            ),
            (
                "[[providers.faults]]\nkind = \"hang\"\ndelay-ms = 9223372036854775807\n",
                "providers[0].faults[0].delay-ms",
                "9223372036854775807",
            ),
            (
                "[[providers.faults]]\nkind = \"status\"\nstatus = 429\nretry-after-ms = 86400001\n",
                "providers[0].faults[0].retry-after-ms",
                "86400001",
            ),
            (
                "[[providers.faults]]\nkind = \"cut\"\nafter-tokens = 1\nuntil-ms = 604800001\n",
                "providers[0].faults[0].until-ms",
                "604800001",
            ),
        ];
        for (table, path, value) in cases {
            let err = parse(&format!("{provider}{table}")).unwrap_err();
            assert_eq!(err.path, path, "{err}");
            assert!(err.to_string().contains(&format!("{path} = {value}: must be")), "{err}");
        }
    }

    #[test]
    fn defaults_flow_into_models() {
        let providers = parse(
            "[[providers]]\nname = \"a\"\ndialect = \"anthropic\"\n[providers.defaults]\nitl-ms = 7\n[[providers.models]]\nid = \"m\"\nttft-ms = 1\n",
        )
        .unwrap();
        let model = &providers[0].models[0];
        assert_eq!(model.behaviour.itl_ms, Distribution::Constant(7.0));
        assert_eq!(model.behaviour.ttft_ms, Distribution::Constant(1.0));
        assert_eq!(model.behaviour.output_tokens, Behaviour::default().output_tokens);
    }

    #[test]
    fn the_error_message_reads_well() {
        let err = ConfigError {
            file: Some("s.toml".into()),
            line: Some((3, 1)),
            ..ConfigError::new("providers[0]", "bad")
        };
        assert_eq!(err.to_string(), "s.toml:3:1: providers[0]: bad");
        let err = ConfigError::out_of_range(
            "providers[0].defaults.itl-ms",
            bounds::DELAY_MS.check(1e20).unwrap_err(),
        );
        assert_eq!(
            err.to_string(),
            "<config>: providers[0].defaults.itl-ms = 1e20: must be a finite number of milliseconds between 0 and 3600000"
        );
    }
}
