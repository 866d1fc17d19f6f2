//! Scenario scripts: a TOML file (`schema = 1`) that says what to start,
//! what load to drive, which faults to inject when, and what to check.
//! Parsed into [`raw`] serde structs, then validated into a [`Scenario`];
//! every error names the file, the field path and what is wrong (with the
//! closest valid key for a misspelt one). The format is documented in
//! `scenarios/README.md`.

mod error;
mod ports;
pub mod raw;
mod validate;

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mock_providers::ProviderConfig;
use mock_providers::config::parse_toml;
use mock_providers::faults::Fault;

use crate::load::arrival::Arrival;
use crate::load::plan::Plan;
pub use crate::load::plan::{Load, MixEntry, Phase};
use crate::target::{Expectations, Profile, Target};
pub use error::{FieldError, ScenarioError};
pub use ports::{MIN_MOCK_PORT, MockPortsError, check_mock_ports, pin_mock_ports};
use raw::{MetricName, RawScenario};
pub use validate::MAX_SWEEP_STEPS;

/// The schema this version of gauntlet reads.
pub const SCHEMA: u32 = 1;
/// Where reports go unless `[report] dir` says otherwise.
pub const DEFAULT_REPORT_DIR: &str = "reports/runs";
/// The in-flight cap of a phase that sets none.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 1024;

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub file: PathBuf,
    pub meta: Meta,
    pub target: Target,
    /// `[profiles.NAME]`: the router profiles the scenario declares.
    pub profiles: Vec<Profile>,
    /// The mock providers, validated (they are started from this form).
    pub mocks: Vec<Mock>,
    /// The `[router]` table: the built-in router's configuration, or, for an
    /// external router, the prices, keys and lifecycle the checks expect.
    /// Provider `base-url`s may say `mock:NAME`, resolved at run time.
    pub expect: Option<Expectations>,
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

/// A mock provider of the scenario, validated.
#[derive(Debug, Clone)]
pub struct Mock {
    pub config: ProviderConfig,
    /// Whether its seed is its own; otherwise it is the scenario's, and
    /// [`Scenario::reseed`] moves it too.
    pub own_seed: bool,
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
            warm_up: false,
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

#[derive(Debug, Clone)]
pub struct FaultStep {
    pub at: Duration,
    pub provider: String,
    pub set: Vec<Fault>,
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
    NoChargeOnFailure,
    UsageAgrees,
    BalanceDelta,
    GenerationAgrees,
    /// The load is meant to exhaust these keys' credits.
    NoOverdraft {
        keys: Vec<String>,
    },
    KeyLimits,
    FreeQuota,
    CreditExpiry,
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
    MessagesEvents,
    LifecycleGrace,
    LifecycleRemoved,
    SystemPrefix,
    ErrorShape,
    ClientRetryAfter,
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
            Conformance::NoChargeOnFailure => "no-charge-on-failure",
            Conformance::UsageAgrees => "usage-agrees",
            Conformance::BalanceDelta => "balance-delta",
            Conformance::GenerationAgrees => "generation-agrees",
            Conformance::NoOverdraft { .. } => "no-overdraft",
            Conformance::KeyLimits => "key-limits",
            Conformance::FreeQuota => "free-quota",
            Conformance::CreditExpiry => "credit-expiry",
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
            Conformance::MessagesEvents => "messages-events",
            Conformance::LifecycleGrace => "lifecycle-grace",
            Conformance::LifecycleRemoved => "lifecycle-removed",
            Conformance::SystemPrefix => "system-prefix",
            Conformance::ErrorShape => "error-shape",
            Conformance::ClientRetryAfter => "client-retry-after",
        }
    }

    /// Whether judging it needs the scenario's `[router]` table (prices,
    /// keys, lifecycle, retry policy).
    pub fn needs_router(&self) -> bool {
        !matches!(
            self,
            Conformance::ErrorShape
                | Conformance::NoChargeOnFailure
                | Conformance::ClientRetryAfter
                | Conformance::StreamUsage
                | Conformance::NoRetryAfterFirstByte
                | Conformance::StreamChunkDelay { .. }
                | Conformance::StreamTtftOverhead { .. }
                | Conformance::StreamErrorChunk
                | Conformance::MessagesEvents
                | Conformance::RetryStorm { .. }
        )
    }
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(file: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(file).map_err(|source| ScenarioError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Self::parse(&text, file)
    }

    /// Validates scenario text; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = parse_toml(text).map_err(|e| ScenarioError::field(e, file, text))?;
        validate::validate(raw, file).map_err(|e| ScenarioError::field(e, file, text))
    }

    /// The profile called `name`: one the scenario declares, or a built-in one.
    pub fn profile_named(&self, name: &str) -> Option<Profile> {
        Profile::named(name, &self.profiles)
    }

    /// The same scenario under another seed: its own, and that of every
    /// mock that has no seed of its own.
    pub fn reseed(&mut self, seed: u64) {
        self.meta.seed = seed;
        for mock in self.mocks.iter_mut().filter(|m| !m.own_seed) {
            mock.config.seed = seed;
        }
    }

    /// The same scenario with its mocks, in declaration order, on
    /// `127.0.0.1:base`, `base + 1`, … (`--mock-ports`); `mock:NAME`
    /// upstreams follow them. A `base` out of range changes nothing.
    pub fn pin_mock_ports(&mut self, base: u16) -> Result<(), MockPortsError> {
        pin_mock_ports(self.mocks.iter_mut().map(|m| &mut m.config), base)
    }

    /// The load plan the engine runs.
    pub fn plan(&self) -> Plan<'_> {
        Plan {
            phases: &self.phases,
            mix: &self.mix,
        }
    }

    /// The whole run's planned length.
    pub fn duration(&self) -> Duration {
        self.phases.iter().map(|p| p.duration).sum()
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
mod tests;
