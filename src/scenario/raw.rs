//! The scenario file as written: serde structs with unknown keys refused and
//! kebab-case names. Only [`super::Scenario`], validated, leaves this module.

use std::path::PathBuf;

use mock_providers::config::RawProvider;
use mock_providers::faults::RawFault;
use serde::Deserialize;

use crate::target::{RawProfile, RawRouter};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawScenario {
    pub schema: u32,
    pub meta: RawMeta,
    pub target: Option<RawTarget>,
    /// `[profiles.NAME]`: the scenario's own router profiles.
    #[serde(default)]
    pub profiles: std::collections::BTreeMap<String, RawProfile>,
    #[serde(default)]
    pub providers: Vec<RawProvider>,
    pub router: Option<RawRouter>,
    #[serde(default)]
    pub phases: Vec<RawPhase>,
    #[serde(default)]
    pub mix: Vec<RawMix>,
    #[serde(default)]
    pub faults: Vec<RawFaultStep>,
    pub slo: Option<RawSlo>,
    #[serde(default)]
    pub checks: Vec<RawCheck>,
    pub report: Option<RawReport>,
    pub floor: Option<RawFloor>,
    pub sweep: Option<RawSweep>,
}

/// `[floor]`: the phases are first run straight at this mock, no router.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawFloor {
    pub provider: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SweepArrival {
    Constant,
    Poisson,
}

/// `[sweep]`: open-loop steps at rising rates until the checks break.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSweep {
    pub rates: Option<Vec<f64>>,
    pub from: Option<f64>,
    pub to: Option<f64>,
    pub factor: Option<f64>,
    pub step: Option<f64>,
    pub step_duration_s: Option<f64>,
    pub arrival: Option<SweepArrival>,
    pub max_in_flight: Option<u32>,
    pub refine: Option<u32>,
    pub min_knee: Option<f64>,
    pub keep_going: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawMeta {
    pub name: String,
    pub description: Option<String>,
    pub seed: Option<u64>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    Builtin,
    Http,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawTarget {
    pub kind: TargetKind,
    pub url: Option<String>,
    pub profile: Option<String>,
    pub command: Option<Vec<String>>,
    pub ready_url: Option<String>,
    pub ready_timeout_ms: Option<u64>,
    /// Sent with every request to the target: `{ "x-portkey-provider" = "openai" }`.
    pub headers: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawPhase {
    pub name: Option<String>,
    pub duration_ms: Option<u64>,
    pub duration_s: Option<f64>,
    pub requests: Option<u64>,
    pub arrival: Option<RawArrival>,
    pub users: Option<RawUsers>,
    pub max_in_flight: Option<u32>,
    pub mix: Option<Vec<String>>,
    /// Sent like any phase, but its requests are only written to
    /// `requests.csv` (marked): no metric or check sees them.
    pub warm_up: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArrivalKind {
    Constant,
    Poisson,
    Gamma,
    Ramp,
    Burst,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawArrival {
    pub kind: ArrivalKind,
    pub rate: Option<f64>,
    pub burstiness: Option<f64>,
    pub from: Option<f64>,
    pub to: Option<f64>,
    /// Ramp only: Poisson arrivals around the rising rate instead of even spacing.
    pub poisson: Option<bool>,
    pub count: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawUsers {
    pub count: u32,
    pub think_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawMix {
    pub name: Option<String>,
    pub weight: Option<u32>,
    /// `"chat"` (the default) or `"messages"`.
    pub api: Option<crate::load::plan::Api>,
    pub model: String,
    pub key: String,
    pub stream: Option<bool>,
    pub prompt_chars: Option<u32>,
    pub system: Option<String>,
    pub max_tokens: Option<u32>,
    pub tools: Option<bool>,
    /// With `api = "messages"`: mark the system prompt and the tool for
    /// caching, as Claude Code does.
    pub cache_control: Option<bool>,
    /// Sent with this entry's requests: `{ "x-portkey-provider" = "anthropic" }`.
    pub headers: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawFaultStep {
    pub at_ms: u64,
    pub provider: String,
    /// Replaces the provider's fault list at that moment; empty clears it.
    #[serde(default)]
    pub set: Vec<RawFault>,
}

/// Per-request service levels: a request meeting all of them counts toward goodput.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSlo {
    pub ttft_ms: Option<f64>,
    pub e2e_ms: Option<f64>,
    pub tpot_ms: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    /// A latency metric's percentile under a bound.
    Latency,
    /// The share of requests that failed, under a bound.
    ErrorRate,
    /// The share of requests meeting every `[slo]`, over a bound.
    Goodput,
    /// The load generator kept up: achieved rate and dispatch delay.
    RunValid,
    // Conformance: the router's behaviour, judged from what the client saw,
    // the mock journals and the router's own account (see `checks::conformance`).
    BillingExact,
    NoChargeOnFailure,
    UsageAgrees,
    BalanceDelta,
    GenerationAgrees,
    NoOverdraft,
    KeyLimits,
    FreeQuota,
    CreditExpiry,
    RetryAfterRespected,
    BackoffJitter,
    RetryLimit,
    Cooldown,
    RetryStorm,
    Fallback,
    NoRetryAfterFirstByte,
    StreamChunkDelay,
    StreamTtftOverhead,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetricName {
    E2e,
    E2eFromSend,
    Ttft,
    Itl,
    Tpot,
    Dispatch,
    Overhead,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawCheck {
    pub kind: CheckKind,
    pub name: Option<String>,
    pub metric: Option<MetricName>,
    pub percentile: Option<f64>,
    pub max_ms: Option<f64>,
    pub max: Option<f64>,
    pub min: Option<f64>,
    /// `no-overdraft`: the keys whose credits the load is meant to exhaust.
    pub keys: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawReport {
    pub dir: Option<PathBuf>,
}
