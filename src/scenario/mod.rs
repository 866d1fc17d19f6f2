//! Scenario scripts: a TOML file (`schema = 1`) that says what to start,
//! what load to drive, which faults to inject when, and what to check.
//! Parsed into [`raw`] serde structs, then validated into a [`Scenario`];
//! every error names the file, the field path and what is wrong (with the
//! closest valid key for a misspelt one). The format is documented in
//! `scenarios/README.md`.

pub mod raw;

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mock_providers::config::{ConfigError, RawProvider, parse_toml, validate_faults, validate_providers};
use mock_providers::faults::RawFault;

use crate::load::arrival::Arrival;
use crate::router::config::{RawRouter, RouterConfig};
use raw::{ArrivalKind, CheckKind, MetricName, Profile, RawArrival, RawScenario, TargetKind};

/// The schema this version of gauntlet reads.
pub const SCHEMA: u32 = 1;
/// Where reports go unless `[report] dir` says otherwise.
pub const DEFAULT_REPORT_DIR: &str = "reports/runs";
/// The in-flight cap of a phase that sets none.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 1024;
/// How long an external router may take to become ready.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The prefix of a router provider's `base-url` that names a scenario mock.
pub const MOCK_URL_PREFIX: &str = "mock:";

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub file: PathBuf,
    pub meta: Meta,
    pub target: Target,
    /// The mock providers, validated (they are started from this form).
    pub providers: Vec<RawProvider>,
    /// The `[router]` table: the built-in router's configuration, or, for an
    /// external router, the prices, keys and lifecycle the checks expect.
    /// Provider `base-url`s may say `mock:NAME`, resolved at run time.
    pub router: Option<RawRouter>,
    pub phases: Vec<Phase>,
    pub mix: Vec<MixEntry>,
    pub faults: Vec<FaultStep>,
    pub slo: Slo,
    pub checks: Vec<Check>,
    pub report_dir: PathBuf,
    /// `[floor]`: run the phases straight at a mock first, no router.
    pub floor: Option<Floor>,
    /// `[sweep]`: capacity planning; [`Scenario::phases`] are then its
    /// planned steps, one open-loop phase per rate.
    pub sweep: Option<Sweep>,
}

/// The floor of a bench scenario: the same phases, sent by the same engine
/// straight at an OpenAI-dialect mock in the same run, before the router is
/// measured; the router's figures are reported as ratios to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Floor {
    /// The `[[providers]]` mock the floor is measured against.
    pub provider: String,
}

/// A capacity sweep: open-loop steps at rising rates, each judged on the
/// scenario's latency, error-rate and goodput checks (the SLO), until one
/// breaks; then optionally bisected between the last rate that held and the
/// first that broke.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// The planned rates, ascending, requests per second.
    pub rates: Vec<f64>,
    pub step_duration: Duration,
    /// Poisson arrivals instead of evenly spaced ones.
    pub poisson: bool,
    pub max_in_flight: NonZeroU32,
    /// Bisection steps after the first break.
    pub refine: u32,
    /// The run fails when the knee is below this rate.
    pub min_knee: Option<f64>,
    /// Go on stepping after the first break (the curve past the knee).
    pub keep_going: bool,
}

impl Sweep {
    /// The open-loop phase of one step.
    pub fn phase(&self, index: usize, rate: f64, mix: usize) -> Phase {
        let arrival = if self.poisson {
            Arrival::Poisson { rate }
        } else {
            Arrival::Constant { rate }
        };
        Phase {
            name: format!("step-{}-{}rps", index + 1, rate.round()),
            duration: self.step_duration,
            max_requests: None,
            load: Load::Open(arrival),
            max_in_flight: self.max_in_flight,
            mix: (0..mix).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub name: String,
    pub description: String,
    pub seed: u64,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The reference router, started in-process on loopback.
    Builtin,
    /// A router at `url` (the API base, e.g. `http://127.0.0.1:8080/api/v1`).
    Http {
        url: String,
        profile: Profile,
        command: Option<Vec<String>>,
        ready_url: String,
        ready_timeout: Duration,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub name: String,
    pub duration: Duration,
    pub max_requests: Option<u64>,
    pub load: Load,
    pub max_in_flight: NonZeroU32,
    /// Indices into [`Scenario::mix`] this phase draws from.
    pub mix: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    /// Open loop: requests at the schedule's intended times.
    Open(Arrival),
    /// Closed loop: `users` each send, wait for the answer, think, repeat.
    Closed { users: NonZeroU32, think: Duration },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixEntry {
    pub name: String,
    pub weight: u32,
    pub model: String,
    pub key: String,
    pub stream: bool,
    pub prompt_chars: u32,
    pub system: Option<String>,
    pub max_tokens: Option<u32>,
    pub tools: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultStep {
    pub at: Duration,
    pub provider: String,
    pub set: Vec<RawFault>,
}

/// Per-request service levels for goodput.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Slo {
    pub ttft: Option<Duration>,
    pub e2e: Option<Duration>,
    pub tpot: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    pub rule: Rule,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    Latency {
        metric: MetricName,
        percentile: f64,
        max: Duration,
    },
    ErrorRate {
        max: f64,
    },
    Goodput {
        min: f64,
    },
    RunValid,
    /// A conformance check of the router's behaviour.
    Conformance(Conformance),
}

/// The conformance checks (see `checks::conformance` for what each judges).
#[derive(Debug, Clone, PartialEq)]
pub enum Conformance {
    BillingExact,
    BalanceDelta,
    GenerationAgrees,
    /// The load is meant to exhaust these keys' credits.
    NoOverdraft {
        keys: Vec<String>,
    },
    KeyLimits,
    FreeQuota,
    RetryAfterRespected,
    BackoffJitter,
    RetryLimit,
    Cooldown,
    /// Upstream attempts per client request, at most.
    RetryStorm {
        max: f64,
    },
    Fallback,
    NoRetryAfterFirstByte,
    StreamChunkDelay {
        percentile: f64,
        max: Duration,
    },
    StreamTtftOverhead {
        percentile: f64,
        max: Duration,
    },
    StreamUsage,
    StreamIntegrity,
    StreamErrorChunk,
    LifecycleGrace,
    LifecycleRemoved,
    SystemPrefix,
    ErrorShape,
}

impl Target {
    /// How to read the target's charges and balances (the built-in router
    /// speaks OpenRouter's dialect).
    pub fn profile(&self) -> Profile {
        match self {
            Target::Builtin => Profile::Openrouter,
            Target::Http { profile, .. } => *profile,
        }
    }
}

impl Rule {
    /// A service level of the load as a whole (latency, error rate, goodput):
    /// what a sweep step is judged on.
    pub fn is_slo(&self) -> bool {
        matches!(
            self,
            Rule::Latency { .. } | Rule::ErrorRate { .. } | Rule::Goodput { .. }
        )
    }
}

impl Conformance {
    /// The name scenarios give the check's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Conformance::BillingExact => "billing-exact",
            Conformance::BalanceDelta => "balance-delta",
            Conformance::GenerationAgrees => "generation-agrees",
            Conformance::NoOverdraft { .. } => "no-overdraft",
            Conformance::KeyLimits => "key-limits",
            Conformance::FreeQuota => "free-quota",
            Conformance::RetryAfterRespected => "retry-after-respected",
            Conformance::BackoffJitter => "backoff-jitter",
            Conformance::RetryLimit => "retry-limit",
            Conformance::Cooldown => "cooldown",
            Conformance::RetryStorm { .. } => "retry-storm",
            Conformance::Fallback => "fallback",
            Conformance::NoRetryAfterFirstByte => "no-retry-after-first-byte",
            Conformance::StreamChunkDelay { .. } => "stream-chunk-delay",
            Conformance::StreamTtftOverhead { .. } => "stream-ttft-overhead",
            Conformance::StreamUsage => "stream-usage",
            Conformance::StreamIntegrity => "stream-integrity",
            Conformance::StreamErrorChunk => "stream-error-chunk",
            Conformance::LifecycleGrace => "lifecycle-grace",
            Conformance::LifecycleRemoved => "lifecycle-removed",
            Conformance::SystemPrefix => "system-prefix",
            Conformance::ErrorShape => "error-shape",
        }
    }

    /// Whether judging it needs the scenario's `[router]` table (prices,
    /// keys, lifecycle, retry policy).
    pub fn needs_router(&self) -> bool {
        !matches!(
            self,
            Conformance::ErrorShape
                | Conformance::StreamUsage
                | Conformance::NoRetryAfterFirstByte
                | Conformance::StreamChunkDelay { .. }
                | Conformance::StreamTtftOverhead { .. }
                | Conformance::StreamErrorChunk
                | Conformance::RetryStorm { .. }
        )
    }
}

/// A scenario that could not be read.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ScenarioError(#[from] pub ConfigError);

fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::new(path, message)
}

fn ms(value: f64, path: &str) -> Result<Duration, ConfigError> {
    if value.is_finite() && value > 0.0 {
        Ok(Duration::from_secs_f64(value / 1000.0))
    } else {
        Err(err(path, format!("must be a number of milliseconds > 0, got {value}")))
    }
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(file: &Path) -> Result<Scenario, ScenarioError> {
        let text =
            std::fs::read_to_string(file).map_err(|e| err("", format!("cannot read the file: {e}")).in_file(file))?;
        Self::parse(&text, file)
    }

    /// Validates scenario text; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = parse_toml(text).map_err(|e| e.in_file(file))?;
        validate(raw, file).map_err(|e| ScenarioError(e.in_file(file)))
    }

    /// The whole run's planned length.
    pub fn duration(&self) -> Duration {
        self.phases.iter().map(|p| p.duration).sum()
    }

    /// The router configuration with `mock:NAME` base URLs resolved by `resolve`.
    pub fn router_config(&self, resolve: impl Fn(&str) -> Option<String>) -> Result<Option<RouterConfig>, ConfigError> {
        let Some(raw) = &self.router else { return Ok(None) };
        let mut raw = raw.clone();
        for (i, p) in raw.providers.iter_mut().enumerate() {
            if let Some(name) = p.base_url.strip_prefix(MOCK_URL_PREFIX) {
                p.base_url = resolve(name).ok_or_else(|| {
                    err(
                        format!("router.providers[{i}].base-url"),
                        format!("no [[providers]] is named `{name}`"),
                    )
                })?;
            }
        }
        raw.validate("router").map(Some).map_err(|e| err(e.path, e.message))
    }
}

fn validate(raw: RawScenario, file: &Path) -> Result<Scenario, ConfigError> {
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

    validate_providers(&raw.providers)?;
    let mock_names: HashSet<&str> = raw.providers.iter().map(|p| p.name.as_str()).collect();

    let target = match &raw.target {
        None => Target::Builtin,
        Some(t) => match t.kind {
            TargetKind::Builtin => {
                for (field, given) in [
                    ("url", t.url.is_some()),
                    ("command", t.command.is_some()),
                    ("ready-url", t.ready_url.is_some()),
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
                let ready_url = t.ready_url.clone().unwrap_or_else(|| format!("{url}/models"));
                check_http_url("target.ready-url", &ready_url)?;
                Target::Http {
                    url,
                    profile: t.profile.unwrap_or(Profile::Openrouter),
                    command: t.command.clone(),
                    ready_url,
                    ready_timeout: t.ready_timeout_ms.map_or(DEFAULT_READY_TIMEOUT, Duration::from_millis),
                }
            }
        },
    };

    // The router table is validated with `mock:NAME` resolved to a placeholder.
    let router_models: Option<HashSet<String>>;
    let router_keys: Option<HashSet<String>>;
    match &raw.router {
        None if target == Target::Builtin => {
            return Err(err(
                "router",
                "the built-in target needs a [router] table (models, prices, keys)",
            ));
        }
        None => {
            router_models = None;
            router_keys = None;
        }
        Some(router) => {
            let mut probe = router.clone();
            for (i, p) in probe.providers.iter_mut().enumerate() {
                if let Some(name) = p.base_url.strip_prefix(MOCK_URL_PREFIX) {
                    if !mock_names.contains(name) {
                        return Err(err(
                            format!("router.providers[{i}].base-url"),
                            format!("no [[providers]] is named `{name}`"),
                        ));
                    }
                    p.base_url = "http://127.0.0.1:1".into();
                }
            }
            let config = probe.validate("router").map_err(|e| err(e.path, e.message))?;
            router_models = Some(config.catalog.models().iter().map(|m| m.id.to_string()).collect());
            router_keys = Some(config.keys.iter().map(|k| k.key.to_string()).collect());
        }
    }
    if target == Target::Builtin && raw.providers.is_empty() {
        return Err(err(
            "providers",
            "the built-in router needs at least one [[providers]] mock to call",
        ));
    }

    if raw.mix.is_empty() {
        return Err(err(
            "mix",
            "a scenario needs at least one [[mix]] entry (model, key, ...)",
        ));
    }
    let mut mix = Vec::with_capacity(raw.mix.len());
    let mut mix_names = HashSet::new();
    for (i, m) in raw.mix.iter().enumerate() {
        let path = format!("mix[{i}]");
        let name = m.name.clone().unwrap_or_else(|| format!("mix-{i}"));
        if !mix_names.insert(name.clone()) {
            return Err(err(format!("{path}.name"), format!("`{name}` is used twice")));
        }
        if m.weight == Some(0) {
            return Err(err(
                format!("{path}.weight"),
                "must be at least 1 (remove the entry to leave it out)",
            ));
        }
        if let Some(models) = &router_models
            && !models.contains(&m.model)
        {
            let known: Vec<&str> = models.iter().map(String::as_str).collect();
            let hint = mock_providers::config::closest(&m.model, known)
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            return Err(err(
                format!("{path}.model"),
                format!("`{}` is not a [[router.models]] id{hint}", m.model),
            ));
        }
        if let Some(keys) = &router_keys
            && !keys.contains(&m.key)
        {
            return Err(err(
                format!("{path}.key"),
                format!("`{}` is not a [[router.keys]] key", m.key),
            ));
        }
        if m.max_tokens == Some(0) {
            return Err(err(format!("{path}.max-tokens"), "must be at least 1"));
        }
        mix.push(MixEntry {
            name,
            weight: m.weight.unwrap_or(1),
            model: m.model.clone(),
            key: m.key.clone(),
            stream: m.stream.unwrap_or(false),
            prompt_chars: m.prompt_chars.unwrap_or(64),
            system: m.system.clone(),
            max_tokens: m.max_tokens,
            tools: m.tools.unwrap_or(false),
        });
    }

    let sweep = raw.sweep.as_ref().map(sweep).transpose()?;
    if sweep.is_some() && !raw.phases.is_empty() {
        return Err(err(
            "phases",
            "a [sweep] plans its own phases (one per rate); remove the [[phases]] tables",
        ));
    }
    if raw.phases.is_empty() && sweep.is_none() {
        return Err(err("phases", "a scenario needs at least one [[phases]] table"));
    }
    let mut phases = match &sweep {
        Some(sweep) => sweep
            .rates
            .iter()
            .enumerate()
            .map(|(i, &rate)| sweep.phase(i, rate, mix.len()))
            .collect(),
        None => Vec::with_capacity(raw.phases.len()),
    };
    for (i, p) in raw.phases.iter().enumerate() {
        let path = format!("phases[{i}]");
        let duration = match (p.duration_ms, p.duration_s) {
            (Some(_), Some(_)) => {
                return Err(err(
                    format!("{path}.duration-s"),
                    "give duration-ms or duration-s, not both",
                ));
            }
            (Some(ms), None) if ms > 0 => Duration::from_millis(ms),
            (None, Some(s)) if s.is_finite() && s > 0.0 => Duration::from_secs_f64(s),
            (None, None) => {
                return Err(err(
                    format!("{path}.duration-s"),
                    "a phase needs a duration (duration-s or duration-ms)",
                ));
            }
            _ => return Err(err(format!("{path}.duration-s"), "must be > 0")),
        };
        let load = match (&p.arrival, &p.users) {
            (Some(_), Some(_)) => {
                return Err(err(
                    format!("{path}.users"),
                    "give `arrival` (open loop) or `users` (closed loop), not both",
                ));
            }
            (None, None) => {
                return Err(err(
                    format!("{path}.arrival"),
                    "a phase needs `arrival` (open loop) or `users` (closed loop)",
                ));
            }
            (Some(a), None) => Load::Open(arrival(a, &format!("{path}.arrival"))?),
            (None, Some(u)) => Load::Closed {
                users: NonZeroU32::new(u.count)
                    .ok_or_else(|| err(format!("{path}.users.count"), "must be at least 1"))?,
                think: Duration::from_millis(u.think_ms.unwrap_or(0)),
            },
        };
        let max_in_flight = NonZeroU32::new(p.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT))
            .ok_or_else(|| err(format!("{path}.max-in-flight"), "must be at least 1"))?;
        let mix_indices = match &p.mix {
            None => (0..mix.len()).collect(),
            Some(names) => names
                .iter()
                .enumerate()
                .map(|(j, n)| {
                    mix.iter().position(|m| &m.name == n).ok_or_else(|| {
                        let hint = mock_providers::config::closest(n, mix.iter().map(|m| m.name.as_str()))
                            .map(|c| format!("; did you mean `{c}`?"))
                            .unwrap_or_default();
                        err(format!("{path}.mix[{j}]"), format!("no [[mix]] is named `{n}`{hint}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        if p.requests == Some(0) {
            return Err(err(
                format!("{path}.requests"),
                "must be at least 1 (leave it out for no cap)",
            ));
        }
        phases.push(Phase {
            name: p.name.clone().unwrap_or_else(|| format!("phase-{i}")),
            duration,
            max_requests: p.requests,
            load,
            max_in_flight,
            mix: mix_indices,
        });
    }
    let total: Duration = phases.iter().map(|p| p.duration).sum();

    let mut faults = Vec::with_capacity(raw.faults.len());
    for (i, f) in raw.faults.iter().enumerate() {
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
        validate_faults(&f.set, &format!("{path}.set"))?;
        faults.push(FaultStep {
            at,
            provider: f.provider.clone(),
            set: f.set.clone(),
        });
    }
    faults.sort_by_key(|f| f.at);

    let slo = match &raw.slo {
        None => Slo::default(),
        Some(s) => Slo {
            ttft: s.ttft_ms.map(|v| ms(v, "slo.ttft-ms")).transpose()?,
            e2e: s.e2e_ms.map(|v| ms(v, "slo.e2e-ms")).transpose()?,
            tpot: s.tpot_ms.map(|v| ms(v, "slo.tpot-ms")).transpose()?,
        },
    };

    let mut checks = Vec::with_capacity(raw.checks.len());
    for (i, c) in raw.checks.iter().enumerate() {
        let path = format!("checks[{i}]");
        let only = |field: &str, given: bool| -> Result<(), ConfigError> {
            if given {
                Err(err(format!("{path}.{field}"), "does not apply to this kind of check"))
            } else {
                Ok(())
            }
        };
        let rule = match c.kind {
            CheckKind::Latency => {
                only("max", c.max.is_some())?;
                only("min", c.min.is_some())?;
                let metric = c.metric.ok_or_else(|| {
                    err(
                        format!("{path}.metric"),
                        "a latency check needs `metric` (e2e, e2e-from-send, ttft, itl, tpot, dispatch, overhead)",
                    )
                })?;
                let percentile = c.percentile.unwrap_or(99.0);
                if !(percentile > 0.0 && percentile <= 100.0) {
                    return Err(err(
                        format!("{path}.percentile"),
                        format!("must be in (0, 100], got {percentile}"),
                    ));
                }
                let max = ms(
                    c.max_ms
                        .ok_or_else(|| err(format!("{path}.max-ms"), "a latency check needs `max-ms`"))?,
                    &format!("{path}.max-ms"),
                )?;
                Rule::Latency {
                    metric,
                    percentile,
                    max,
                }
            }
            CheckKind::ErrorRate => {
                only("metric", c.metric.is_some())?;
                only("max-ms", c.max_ms.is_some())?;
                let max = c.max.ok_or_else(|| {
                    err(
                        format!("{path}.max"),
                        "an error-rate check needs `max` (a share, 0 to 1)",
                    )
                })?;
                share(max, &format!("{path}.max"))?;
                Rule::ErrorRate { max }
            }
            CheckKind::Goodput => {
                only("metric", c.metric.is_some())?;
                let min = c
                    .min
                    .ok_or_else(|| err(format!("{path}.min"), "a goodput check needs `min` (a share, 0 to 1)"))?;
                share(min, &format!("{path}.min"))?;
                if slo == Slo::default() {
                    return Err(err(
                        format!("{path}.kind"),
                        "goodput counts requests meeting every [slo]; the scenario has no [slo] table",
                    ));
                }
                Rule::Goodput { min }
            }
            CheckKind::RunValid => Rule::RunValid,
            kind => {
                let rule = conformance(kind, c, &path, &raw)?;
                if rule.needs_router() && raw.router.is_none() {
                    return Err(err(
                        format!("{path}.kind"),
                        format!(
                            "`{}` judges the router against the prices, keys and policies of the [router] table; the scenario has none",
                            rule.kind()
                        ),
                    ));
                }
                Rule::Conformance(rule)
            }
        };
        if !matches!(rule, Rule::Conformance(Conformance::NoOverdraft { .. })) && c.keys.is_some() {
            return Err(err(format!("{path}.keys"), "only a no-overdraft check takes `keys`"));
        }
        let name = c.name.clone().unwrap_or_else(|| default_check_name(&rule));
        checks.push(Check { name, rule });
    }

    if sweep.is_some() {
        if let Some((i, _)) = checks
            .iter()
            .enumerate()
            .find(|(_, c)| matches!(c.rule, Rule::Conformance(_)))
        {
            return Err(err(
                format!("checks[{i}].kind"),
                "a [sweep] judges each step on latency, error-rate and goodput checks; run conformance checks in their own scenario",
            ));
        }
        if !checks.iter().any(|c| c.rule.is_slo()) {
            return Err(err(
                "checks",
                "a [sweep] steps the rate up until its SLO breaks: it needs at least one latency, error-rate or goodput check",
            ));
        }
    }
    let floor = match &raw.floor {
        None => None,
        Some(f) => {
            if sweep.is_some() {
                return Err(err(
                    "floor",
                    "a [sweep] does not measure a floor; remove one of the two",
                ));
            }
            let provider = raw.providers.iter().find(|p| p.name == f.provider).ok_or_else(|| {
                let hint = mock_providers::config::closest(&f.provider, raw.providers.iter().map(|p| p.name.as_str()))
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

    let report_dir = raw
        .report
        .and_then(|r| r.dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_REPORT_DIR));
    Ok(Scenario {
        file: file.to_path_buf(),
        meta,
        target,
        providers: raw.providers,
        router: raw.router,
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

/// The most steps a sweep may plan.
pub const MAX_SWEEP_STEPS: usize = 50;

/// Validates `[sweep]`: explicit `rates`, or `from`/`to` with a `factor` or
/// a `step`.
fn sweep(raw: &raw::RawSweep) -> Result<Sweep, ConfigError> {
    let rate = |v: f64, path: &str| -> Result<f64, ConfigError> {
        if v.is_finite() && v > 0.0 && v <= crate::load::arrival::MAX_RATE {
            Ok(v)
        } else {
            Err(err(
                path,
                format!("must be a rate above 0 (requests per second), got {v}"),
            ))
        }
    };
    let rates = match (&raw.rates, raw.from, raw.to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(err("sweep.rates", "give `rates`, or `from` and `to`, not both"));
        }
        (Some(list), None, None) => {
            if raw.factor.is_some() || raw.step.is_some() {
                return Err(err(
                    "sweep.rates",
                    "`factor` and `step` go with `from` and `to`, not `rates`",
                ));
            }
            let mut rates = Vec::with_capacity(list.len());
            for (i, &v) in list.iter().enumerate() {
                let v = rate(v, &format!("sweep.rates[{i}]"))?;
                if rates.last().is_some_and(|&last| v <= last) {
                    return Err(err(format!("sweep.rates[{i}]"), "rates must rise from step to step"));
                }
                rates.push(v);
            }
            rates
        }
        (None, Some(from), Some(to)) => {
            let from = rate(from, "sweep.from")?;
            let to = rate(to, "sweep.to")?;
            if to < from {
                return Err(err("sweep.to", format!("{to} is below `from` ({from})")));
            }
            let next: Box<dyn Fn(f64) -> f64> = match (raw.factor, raw.step) {
                (Some(_), Some(_)) => return Err(err("sweep.step", "give `factor` or `step`, not both")),
                (Some(f), None) if f.is_finite() && f > 1.0 => Box::new(move |r| r * f),
                (Some(f), None) => return Err(err("sweep.factor", format!("must be above 1, got {f}"))),
                (None, Some(s)) if s.is_finite() && s > 0.0 => Box::new(move |r| r + s),
                (None, Some(s)) => return Err(err("sweep.step", format!("must be above 0, got {s}"))),
                (None, None) => return Err(err("sweep.factor", "give `factor` (e.g. 2) or `step` (req/s)")),
            };
            let mut rates = vec![from];
            let mut r = next(from);
            // The last step is `to` itself (within rounding).
            while r < to * (1.0 + 1e-9) {
                rates.push(r);
                if rates.len() > MAX_SWEEP_STEPS {
                    break;
                }
                r = next(r);
            }
            if rates.last().is_some_and(|&last| last < to * (1.0 - 1e-9)) {
                rates.push(to);
            }
            rates
        }
        (None, _, _) => {
            return Err(err(
                "sweep.rates",
                "a sweep needs `rates = [...]`, or `from`, `to` and `factor` or `step`",
            ));
        }
    };
    if rates.is_empty() {
        return Err(err("sweep.rates", "needs at least one rate"));
    }
    if rates.len() > MAX_SWEEP_STEPS {
        return Err(err(
            "sweep.rates",
            format!("plans {} steps, more than {MAX_SWEEP_STEPS}", rates.len()),
        ));
    }
    let step_duration = match raw.step_duration_s {
        None => Duration::from_secs(10),
        Some(s) if s.is_finite() && s > 0.0 => Duration::from_secs_f64(s),
        Some(s) => return Err(err("sweep.step-duration-s", format!("must be above 0, got {s}"))),
    };
    let max_in_flight = NonZeroU32::new(raw.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT))
        .ok_or_else(|| err("sweep.max-in-flight", "must be at least 1"))?;
    let refine = raw.refine.unwrap_or(0);
    if refine > 10 {
        return Err(err("sweep.refine", format!("at most 10 bisection steps, got {refine}")));
    }
    let min_knee = raw.min_knee.map(|v| rate(v, "sweep.min-knee")).transpose()?;
    Ok(Sweep {
        rates,
        step_duration,
        poisson: raw.arrival == Some(raw::SweepArrival::Poisson),
        max_in_flight,
        refine,
        min_knee,
        keep_going: raw.keep_going.unwrap_or(false),
    })
}

/// Validates a conformance check's parameters.
fn conformance(kind: CheckKind, c: &raw::RawCheck, path: &str, raw: &RawScenario) -> Result<Conformance, ConfigError> {
    let refuse = |field: &str, given: bool| -> Result<(), ConfigError> {
        if given {
            Err(err(format!("{path}.{field}"), "does not apply to this kind of check"))
        } else {
            Ok(())
        }
    };
    refuse("metric", c.metric.is_some())?;
    refuse("min", c.min.is_some())?;
    let timed = matches!(kind, CheckKind::StreamChunkDelay | CheckKind::StreamTtftOverhead);
    if !timed {
        refuse("percentile", c.percentile.is_some())?;
        refuse("max-ms", c.max_ms.is_some())?;
    }
    if kind != CheckKind::RetryStorm {
        refuse("max", c.max.is_some())?;
    }
    let bound = || -> Result<(f64, Duration), ConfigError> {
        let percentile = c.percentile.unwrap_or(99.0);
        if !(percentile > 0.0 && percentile <= 100.0) {
            return Err(err(
                format!("{path}.percentile"),
                format!("must be in (0, 100], got {percentile}"),
            ));
        }
        let max = c
            .max_ms
            .ok_or_else(|| err(format!("{path}.max-ms"), "a stream timing check needs `max-ms`"))?;
        Ok((percentile, ms(max, &format!("{path}.max-ms"))?))
    };
    Ok(match kind {
        CheckKind::BillingExact => Conformance::BillingExact,
        CheckKind::BalanceDelta => Conformance::BalanceDelta,
        CheckKind::GenerationAgrees => Conformance::GenerationAgrees,
        CheckKind::NoOverdraft => {
            let keys = c.keys.clone().unwrap_or_default();
            if keys.is_empty() {
                return Err(err(
                    format!("{path}.keys"),
                    "a no-overdraft check needs `keys`: the keys whose credits the load exhausts",
                ));
            }
            for (i, key) in keys.iter().enumerate() {
                if !raw.mix.iter().any(|m| &m.key == key) {
                    return Err(err(
                        format!("{path}.keys[{i}]"),
                        format!("no [[mix]] entry uses key `{key}`"),
                    ));
                }
            }
            Conformance::NoOverdraft { keys }
        }
        CheckKind::KeyLimits => Conformance::KeyLimits,
        CheckKind::FreeQuota => Conformance::FreeQuota,
        CheckKind::RetryAfterRespected => Conformance::RetryAfterRespected,
        CheckKind::BackoffJitter => Conformance::BackoffJitter,
        CheckKind::RetryLimit => Conformance::RetryLimit,
        CheckKind::Cooldown => Conformance::Cooldown,
        CheckKind::RetryStorm => {
            let max = c.max.ok_or_else(|| {
                err(
                    format!("{path}.max"),
                    "a retry-storm check needs `max`: upstream attempts per client request, at most",
                )
            })?;
            if !(max.is_finite() && max >= 1.0) {
                return Err(err(format!("{path}.max"), format!("must be at least 1, got {max}")));
            }
            Conformance::RetryStorm { max }
        }
        CheckKind::Fallback => Conformance::Fallback,
        CheckKind::NoRetryAfterFirstByte => Conformance::NoRetryAfterFirstByte,
        CheckKind::StreamChunkDelay => {
            let (percentile, max) = bound()?;
            Conformance::StreamChunkDelay { percentile, max }
        }
        CheckKind::StreamTtftOverhead => {
            let (percentile, max) = bound()?;
            Conformance::StreamTtftOverhead { percentile, max }
        }
        CheckKind::StreamUsage => Conformance::StreamUsage,
        CheckKind::StreamIntegrity => Conformance::StreamIntegrity,
        CheckKind::StreamErrorChunk => Conformance::StreamErrorChunk,
        CheckKind::LifecycleGrace => Conformance::LifecycleGrace,
        CheckKind::LifecycleRemoved => Conformance::LifecycleRemoved,
        CheckKind::SystemPrefix => Conformance::SystemPrefix,
        CheckKind::ErrorShape => Conformance::ErrorShape,
        CheckKind::Latency | CheckKind::ErrorRate | CheckKind::Goodput | CheckKind::RunValid => {
            return Err(err(format!("{path}.kind"), "not a conformance check"));
        }
    })
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

fn arrival(raw: &RawArrival, path: &str) -> Result<Arrival, ConfigError> {
    let need = |field: &str, v: Option<f64>| {
        v.ok_or_else(|| {
            err(
                format!("{path}.{field}"),
                format!("kind = \"{}\" needs `{field}`", kind_name(raw.kind)),
            )
        })
    };
    let allowed: &[&str] = match raw.kind {
        ArrivalKind::Constant | ArrivalKind::Poisson => &["rate"],
        ArrivalKind::Gamma => &["rate", "burstiness"],
        ArrivalKind::Ramp => &["from", "to", "poisson"],
        ArrivalKind::Burst => &["count"],
    };
    let given = [
        ("rate", raw.rate.is_some()),
        ("burstiness", raw.burstiness.is_some()),
        ("from", raw.from.is_some()),
        ("to", raw.to.is_some()),
        ("poisson", raw.poisson.is_some()),
        ("count", raw.count.is_some()),
    ];
    if let Some((field, _)) = given.iter().find(|(f, g)| *g && !allowed.contains(f)) {
        return Err(err(
            format!("{path}.{field}"),
            format!("does not apply to kind = \"{}\"", kind_name(raw.kind)),
        ));
    }
    let arrival = match raw.kind {
        ArrivalKind::Constant => Arrival::Constant {
            rate: need("rate", raw.rate)?,
        },
        ArrivalKind::Poisson => Arrival::Poisson {
            rate: need("rate", raw.rate)?,
        },
        ArrivalKind::Gamma => Arrival::Gamma {
            rate: need("rate", raw.rate)?,
            burstiness: need("burstiness", raw.burstiness)?,
        },
        ArrivalKind::Ramp => Arrival::Ramp {
            from: need("from", raw.from)?,
            to: need("to", raw.to)?,
            poisson: raw.poisson.unwrap_or(false),
        },
        ArrivalKind::Burst => Arrival::Burst {
            count: raw
                .count
                .ok_or_else(|| err(format!("{path}.count"), "kind = \"burst\" needs `count`"))?,
        },
    };
    arrival.validate().map_err(|e| err(path, e.to_string()))?;
    Ok(arrival)
}

fn kind_name(kind: ArrivalKind) -> &'static str {
    match kind {
        ArrivalKind::Constant => "constant",
        ArrivalKind::Poisson => "poisson",
        ArrivalKind::Gamma => "gamma",
        ArrivalKind::Ramp => "ramp",
        ArrivalKind::Burst => "burst",
    }
}

fn default_check_name(rule: &Rule) -> String {
    match rule {
        Rule::Latency {
            metric,
            percentile,
            max,
        } => format!("{metric:?} p{percentile} <= {} ms", max.as_secs_f64() * 1000.0).to_lowercase(),
        Rule::ErrorRate { max } => format!("error rate <= {max}"),
        Rule::Goodput { min } => format!("goodput >= {min}"),
        Rule::RunValid => "run is valid".to_string(),
        Rule::Conformance(c) => c.kind().to_string(),
    }
}

/// Every `*.toml` under the given files and folders (folders recursively,
/// sorted), for `gauntlet validate` and `gauntlet run DIR`.
pub fn scenario_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for entry in entries {
                if entry.is_dir() {
                    out.extend(scenario_files(&[entry])?);
                } else if entry.extension().is_some_and(|e| e == "toml") {
                    out.push(entry);
                }
            }
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
schema = 1
[meta]
name = "t"
[[providers]]
name = "p"
dialect = "openai"
[router]
[[router.providers]]
name = "p"
dialect = "openai"
base-url = "mock:p"
api-key = "k"
[[router.models]]
id = "m/one"
providers = ["p"]
prompt = "1"
completion = "2"
[[router.keys]]
key = "sk"
credits = "1"
[[mix]]
name = "a"
model = "m/one"
key = "sk"
[[phases]]
duration-s = 1
arrival = { kind = "constant", rate = 5 }
"#;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(text, Path::new("t.toml"))
    }

    #[test]
    fn every_shipped_scenario_validates() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let files = scenario_files(&[root.join("scenarios")]).unwrap();
        assert!(!files.is_empty());
        for file in files {
            if let Err(e) = Scenario::load(&file) {
                panic!("{e}");
            }
        }
    }

    #[test]
    fn the_documented_example_validates() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/README.md")).unwrap();
        let start = readme.find("```toml\n").unwrap() + "```toml\n".len();
        let end = start + readme[start..].find("```").unwrap();
        let scenario = parse(&readme[start..end]).unwrap();
        assert_eq!(scenario.phases.len(), 2);
        assert_eq!(scenario.faults.len(), 2);
        assert_eq!(scenario.checks.len(), 8);
    }

    #[test]
    fn defaults_fill_in() {
        let s = parse(BASE).unwrap();
        assert_eq!(s.target, Target::Builtin);
        assert_eq!(s.phases[0].max_in_flight.get(), DEFAULT_MAX_IN_FLIGHT);
        assert_eq!(s.phases[0].mix, vec![0]);
        assert_eq!(s.report_dir, PathBuf::from(DEFAULT_REPORT_DIR));
        let config = s.router_config(|_| Some("http://127.0.0.1:9".into())).unwrap().unwrap();
        assert_eq!(&*config.providers[0].base_url, "http://127.0.0.1:9");
    }

    /// Each kind of mistake, by the field path its error names.
    #[test]
    fn mistakes_name_their_field() {
        let cases: &[(&str, &str, &str)] = &[
            ("schema = 1", "schema = 2", "schema"),
            ("name = \"t\"", "name = \"a b\"", "meta.name"),
            ("duration-s = 1", "duraton-s = 1", "phases[0].duraton-s"),
            (
                "base-url = \"mock:p\"",
                "base-url = \"mock:q\"",
                "router.providers[0].base-url",
            ),
            ("model = \"m/one\"", "model = \"m/onr\"", "mix[0].model"),
            ("key = \"sk\"\n[[phases]]", "key = \"nope\"\n[[phases]]", "mix[0].key"),
            ("duration-s = 1\n", "", "phases[0].duration-s"),
            (
                "arrival = { kind = \"constant\", rate = 5 }",
                "arrival = { kind = \"constant\", rate = 5 }\nusers = { count = 2 }",
                "phases[0].users",
            ),
            (
                "arrival = { kind = \"constant\", rate = 5 }",
                "arrival = { kind = \"constant\", rate = 5, count = 3 }",
                "phases[0].arrival.count",
            ),
            (
                "arrival = { kind = \"constant\", rate = 5 }",
                "arrival = { kind = \"gamma\", rate = 5 }",
                "phases[0].arrival.burstiness",
            ),
            (
                "arrival = { kind = \"constant\", rate = 5 }",
                "arrival = { kind = \"constant\", rate = -5 }",
                "phases[0].arrival",
            ),
        ];
        for (from, to, path) in cases {
            assert!(BASE.contains(from), "{from}");
            let text = BASE.replacen(from, to, 1);
            let e = parse(&text).unwrap_err();
            assert_eq!(e.0.path, *path, "{to}: {e}");
            assert_eq!(e.0.file.as_deref(), Some(Path::new("t.toml")));
        }
        let appended: &[(&str, &str)] = &[
            ("[[faults]]\nat-ms = 100\nprovider = \"q\"\n", "faults[0].provider"),
            ("[[faults]]\nat-ms = 5000\nprovider = \"p\"\n", "faults[0].at-ms"),
            (
                "[[faults]]\nat-ms = 100\nprovider = \"p\"\nset = [{ kind = \"cut\" }]\n",
                "faults[0].set[0].after-tokens",
            ),
            (
                "[[checks]]\nkind = \"latency\"\nmetric = \"ttft\"\n",
                "checks[0].max-ms",
            ),
            ("[[checks]]\nkind = \"goodput\"\nmin = 0.9\n", "checks[0].kind"),
            ("[[checks]]\nkind = \"error-rate\"\nmax = 2\n", "checks[0].max"),
            ("[target]\nkind = \"http\"\n", "target.url"),
            ("[[checks]]\nkind = \"no-overdraft\"\n", "checks[0].keys"),
            (
                "[[checks]]\nkind = \"no-overdraft\"\nkeys = [\"sk-other\"]\n",
                "checks[0].keys[0]",
            ),
            (
                "[[checks]]\nkind = \"billing-exact\"\nkeys = [\"sk\"]\n",
                "checks[0].keys",
            ),
            ("[[checks]]\nkind = \"retry-storm\"\n", "checks[0].max"),
            ("[[checks]]\nkind = \"retry-storm\"\nmax = 0.5\n", "checks[0].max"),
            ("[[checks]]\nkind = \"stream-chunk-delay\"\n", "checks[0].max-ms"),
            ("[[checks]]\nkind = \"stream-usage\"\nmax-ms = 5\n", "checks[0].max-ms"),
            (
                "[[checks]]\nkind = \"error-shape\"\nmetric = \"ttft\"\n",
                "checks[0].metric",
            ),
        ];
        for (extra, path) in appended {
            let e = parse(&format!("{BASE}{extra}")).unwrap_err();
            assert_eq!(e.0.path, *path, "{extra}: {e}");
        }
    }

    #[test]
    fn conformance_checks_that_judge_against_the_router_need_its_table() {
        let without_router = BASE
            .split("[router]")
            .next()
            .map(|head| {
                format!(
                    "{head}[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/v1\"\n[[mix]]\nmodel = \"m/one\"\nkey = \"sk\"\n[[phases]]\nduration-s = 1\narrival = {{ kind = \"constant\", rate = 5 }}\n"
                )
            })
            .unwrap();
        let e = parse(&format!("{without_router}[[checks]]\nkind = \"billing-exact\"\n")).unwrap_err();
        assert!(e.to_string().contains("the scenario has none"), "{e}");
        let ok = parse(&format!(
            "{BASE}[[checks]]\nkind = \"billing-exact\"\n[[checks]]\nkind = \"no-overdraft\"\nkeys = [\"sk\"]\n"
        ))
        .unwrap();
        assert_eq!(ok.checks[0].name, "billing-exact");
        assert_eq!(
            ok.checks[1].rule,
            Rule::Conformance(Conformance::NoOverdraft {
                keys: vec!["sk".into()]
            })
        );
    }

    #[test]
    fn typos_get_suggestions() {
        let e = parse(&BASE.replacen("arrival =", "arival =", 1)).unwrap_err();
        assert!(e.to_string().contains("did you mean `arrival`?"), "{e}");
        let e = parse(&BASE.replacen("model = \"m/one\"", "model = \"m/onr\"", 1)).unwrap_err();
        assert!(e.to_string().contains("did you mean `m/one`?"), "{e}");
        let e = parse(&BASE.replacen("kind = \"constant\"", "kind = \"constnt\"", 1)).unwrap_err();
        assert!(e.to_string().contains("did you mean `constant`?"), "{e}");
        assert!(e.to_string().starts_with("t.toml:"), "{e}");
    }

    #[test]
    fn an_external_router_needs_no_router_table() {
        let text = "schema = 1\n[meta]\nname = \"x\"\n[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:8080/api/v1\"\n[[mix]]\nmodel = \"any\"\nkey = \"k\"\n[[phases]]\nduration-ms = 100\nusers = { count = 1 }\n";
        let s = parse(text).unwrap();
        let Target::Http { ready_url, profile, .. } = &s.target else {
            panic!("{:?}", s.target)
        };
        assert_eq!(ready_url, "http://127.0.0.1:8080/api/v1/models");
        assert_eq!(*profile, Profile::Openrouter);
    }

    /// BASE with its phases replaced by `tail`.
    fn without_phases(tail: &str) -> String {
        let phases = BASE.find("[[phases]]").unwrap();
        format!("{}{tail}", &BASE[..phases])
    }

    const SLO: &str = "[[checks]]\nkind = \"error-rate\"\nmax = 0.01\n";

    #[test]
    fn a_sweep_plans_its_steps_as_phases() {
        let s = parse(&without_phases(&format!(
            "[sweep]\nfrom = 500\nto = 5000\nfactor = 2\nstep-duration-s = 3\n{SLO}"
        )))
        .unwrap();
        let sweep = s.sweep.as_ref().unwrap();
        assert_eq!(sweep.rates, [500.0, 1000.0, 2000.0, 4000.0, 5000.0]);
        assert_eq!(s.phases.len(), 5);
        assert_eq!(s.phases[1].name, "step-2-1000rps");
        assert_eq!(s.phases[1].load, Load::Open(Arrival::Constant { rate: 1000.0 }));
        assert_eq!(s.duration(), Duration::from_secs(15));
        let s = parse(&without_phases(&format!(
            "[sweep]\nfrom = 100\nto = 300\nstep = 100\narrival = \"poisson\"\n{SLO}"
        )))
        .unwrap();
        assert_eq!(s.sweep.as_ref().unwrap().rates, [100.0, 200.0, 300.0]);
        assert_eq!(s.phases[0].load, Load::Open(Arrival::Poisson { rate: 100.0 }));
    }

    #[test]
    fn sweep_and_floor_mistakes_name_their_field() {
        let cases: &[(String, &str, &str)] = &[
            (format!("[sweep]\nrates = [10, 5]\n{SLO}"), "sweep.rates[1]", "rise"),
            (
                format!("[sweep]\nrates = [10]\nfrom = 5\n{SLO}"),
                "sweep.rates",
                "not both",
            ),
            (format!("[sweep]\nfrom = 10\nto = 100\n{SLO}"), "sweep.factor", "factor"),
            (
                format!("[sweep]\nfrom = 10\nto = 100\nfactor = 1\n{SLO}"),
                "sweep.factor",
                "above 1",
            ),
            (
                format!("[sweep]\nfrom = 100\nto = 10\nstep = 5\n{SLO}"),
                "sweep.to",
                "below",
            ),
            (
                format!("[sweep]\nfrom = 1\nto = 1000\nstep = 1\n{SLO}"),
                "sweep.rates",
                "more than 50",
            ),
            (format!("[sweep]\nrates = [0]\n{SLO}"), "sweep.rates[0]", "above 0"),
            (
                format!("[sweep]\nrates = [10]\nrefine = 11\n{SLO}"),
                "sweep.refine",
                "at most 10",
            ),
            (
                "[sweep]\nrates = [10]\n[[checks]]\nkind = \"run-valid\"\n".into(),
                "checks",
                "SLO breaks",
            ),
            (
                format!("[sweep]\nrates = [10]\n{SLO}[[checks]]\nkind = \"stream-usage\"\n"),
                "checks[1].kind",
                "conformance",
            ),
            (
                format!("[sweep]\nrates = [10]\n{SLO}[[phases]]\nduration-s = 1\nusers = {{ count = 1 }}\n"),
                "phases",
                "plans its own",
            ),
        ];
        for (tail, path, words) in cases {
            let e = parse(&without_phases(tail)).unwrap_err().0;
            assert_eq!(e.path, *path, "{tail}: {e}");
            assert!(e.message.contains(words), "{tail}: {e}");
        }
        let floor = |provider: &str| format!("{BASE}[floor]\nprovider = \"{provider}\"\n");
        assert_eq!(parse(&floor("p")).unwrap().floor, Some(Floor { provider: "p".into() }));
        let e = parse(&floor("q")).unwrap_err().0;
        assert_eq!(e.path, "floor.provider");
        assert!(e.message.contains("did you mean `p`"), "{e}");
        let anthropic = floor("p").replacen("dialect = \"openai\"", "dialect = \"anthropic\"", 1);
        let e = parse(&anthropic).unwrap_err().0;
        assert!(e.path == "floor.provider" && e.message.contains("openai twin"), "{e}");
    }
}
