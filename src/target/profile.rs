//! What a kind of router has and how it says things: a [`Profile`].
//!
//! Four are built in — `openrouter` (what the reference router speaks),
//! `litellm`, `portkey` and `openai` (any OpenAI-compatible router) — and a
//! scenario may declare its own in a `[profiles.NAME]` table, starting from
//! a built-in one (`base`) and changing what differs:
//!
//! ```toml
//! [profiles.my-gateway]
//! base = "openai"
//! cost = { header = "x-gateway-cost" }
//! precision = "float"
//! ready = "/healthz"
//! features = ["provider-cooldown", "per-key-limits"]
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use mock_providers::bounds::{Count, OutOfRange, Range};
use serde::Deserialize;

use super::Precision;

/// A router feature a conformance check needs; a profile says which its
/// routers have, and a check of a feature they lack is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feature {
    /// A prepaid credit balance per key, read back (`limit_remaining`).
    PrepaidCredits,
    /// Each generation's cost looked up by its id.
    GenerationLookup,
    /// The cost of each answer, reported with it.
    ReportedCost,
    /// Each key's spend (or balance), read back.
    SpendReadout,
    /// Models deprecated on a date, rerouted during a grace period, then
    /// answered 404.
    ModelLifecycle,
    /// A per-model system prompt put before the caller's.
    SystemPrefix,
    /// A cap on retries as a share of requests (no retry storm).
    RetryBudget,
    /// A provider that keeps failing is left alone for a while.
    ProviderCooldown,
    /// Per-key request, token or concurrency limits, and daily free quotas.
    PerKeyLimits,
    /// Callers' own upstream keys, billed a fee.
    Byok,
    /// A stream that breaks after its first token ends with a chunk whose
    /// `finish_reason` is `"error"` (OpenRouter's convention) besides its
    /// top-level `error` (which every OpenAI-compatible router owes).
    ErrorFinishReason,
    /// Anthropic's Messages API (`POST {api}/messages`) beside chat
    /// completions, for every model: what Claude Code speaks.
    MessagesApi,
    /// Model prices that change at a scheduled time, a request billed at
    /// the price in force when it started.
    PriceSchedule,
    /// Credits that expire a set time after they were bought.
    CreditExpiry,
}

impl Feature {
    /// Every feature, in the order scenarios list them.
    pub const ALL: [Feature; 14] = [
        Feature::PrepaidCredits,
        Feature::GenerationLookup,
        Feature::ReportedCost,
        Feature::SpendReadout,
        Feature::ModelLifecycle,
        Feature::SystemPrefix,
        Feature::RetryBudget,
        Feature::ProviderCooldown,
        Feature::PerKeyLimits,
        Feature::Byok,
        Feature::ErrorFinishReason,
        Feature::MessagesApi,
        Feature::PriceSchedule,
        Feature::CreditExpiry,
    ];

    /// The feature in words, for a skip's reason.
    pub fn name(self) -> &'static str {
        match self {
            Feature::PrepaidCredits => "prepaid credit balances",
            Feature::GenerationLookup => "a per-generation cost lookup",
            Feature::ReportedCost => "cost reported with each answer",
            Feature::SpendReadout => "a readable spend or balance per key",
            Feature::ModelLifecycle => "model deprecation with a grace period",
            Feature::SystemPrefix => "per-model system prompt prefixes",
            Feature::RetryBudget => "a retry budget",
            Feature::ProviderCooldown => "provider cooldown",
            Feature::PerKeyLimits => "per-key limits",
            Feature::Byok => "bring-your-own-key billing",
            Feature::ErrorFinishReason => "finish_reason \"error\" on a stream that broke",
            Feature::MessagesApi => "Anthropic's Messages API (POST /v1/messages)",
            Feature::PriceSchedule => "scheduled price changes",
            Feature::CreditExpiry => "expiring credits",
        }
    }

    /// As scenarios spell it in `features`.
    pub fn key(self) -> &'static str {
        match self {
            Feature::PrepaidCredits => "prepaid-credits",
            Feature::GenerationLookup => "generation-lookup",
            Feature::ReportedCost => "reported-cost",
            Feature::SpendReadout => "spend-readout",
            Feature::ModelLifecycle => "model-lifecycle",
            Feature::SystemPrefix => "system-prefix",
            Feature::RetryBudget => "retry-budget",
            Feature::ProviderCooldown => "provider-cooldown",
            Feature::PerKeyLimits => "per-key-limits",
            Feature::Byok => "byok",
            Feature::ErrorFinishReason => "error-finish-reason",
            Feature::MessagesApi => "messages-api",
            Feature::PriceSchedule => "price-schedule",
            Feature::CreditExpiry => "credit-expiry",
        }
    }
}

/// Where a router writes each answer's cost.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cost {
    /// `usage.cost` in the body (the last usage of a stream).
    Usage,
    /// A response header (its name, lower case); `usage.cost` when an
    /// answer has no such header (LiteLLM sends it with whole answers, and
    /// puts a stream's cost in its last usage).
    Header(String),
    /// Nowhere.
    None,
}

/// Where a key's spend or balance is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Account {
    /// OpenRouter's `GET {api}/key` (`usage`, `limit_remaining`).
    Openrouter,
    /// LiteLLM's `GET /key/info` (`info.spend`), at the server's root.
    Litellm,
    /// Nowhere.
    None,
}

/// A router's own backoff between retries, which no configuration of it
/// changes: the k-th retry's wait is at most min(`cap`, `base` ×
/// `factor`^(k−1)). With one, `backoff-jitter` holds the router to it rather
/// than to the scenario's `[router.retry]` base, cap and factor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    /// `None`: the waits keep growing.
    pub cap: Option<Duration>,
    pub factor: f64,
}

// The factor is a finite number above 1 (checked where it is read), so
// equality is reflexive.
impl Eq for Backoff {}

impl Backoff {
    /// The longest wait of retry `k` (from 1): min(cap, base × factor^(k−1)).
    pub fn ceiling(&self, k: u32) -> Duration {
        let growth = self.factor.powi(i32::try_from(k.saturating_sub(1)).unwrap_or(i32::MAX));
        let nanos = self.base.as_nanos() as f64 * growth;
        let cap = self.cap.unwrap_or(Duration::MAX);
        if !nanos.is_finite() || nanos >= cap.as_nanos() as f64 {
            cap
        } else {
            Duration::from_nanos(nanos.round() as u64)
        }
    }
}

/// How the harness reads and judges one kind of router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// As scenarios and `--profile` name it.
    pub name: String,
    pub cost: Cost,
    /// How exactly its USD amounts are written.
    pub precision: Precision,
    pub account: Account,
    /// Whether `GET {api}/generation?id=` answers a generation's cost.
    pub generations: bool,
    /// Where readiness is asked: a path under the API base (`models`), or
    /// from the server's root when it starts with `/` (`/health`).
    pub ready: String,
    /// Whether readiness is asked with the target's headers (its auth).
    pub ready_auth: bool,
    /// Sent with every request, before the target's own headers.
    pub headers: Vec<(String, String)>,
    /// The router's own backoff, when its configuration cannot set one.
    pub backoff: Option<Backoff>,
    /// The features beyond cost, spend and generations.
    features: Vec<Feature>,
}

/// The built-in profiles' names.
pub const BUILT_IN: [&str; 4] = ["openrouter", "litellm", "portkey", "openai"];

impl Profile {
    /// OpenRouter's API, which the reference router speaks: every feature.
    pub fn openrouter() -> Profile {
        Profile {
            name: "openrouter".into(),
            cost: Cost::Usage,
            precision: Precision::Decimal,
            account: Account::Openrouter,
            generations: true,
            ready: "models".into(),
            ready_auth: true,
            headers: Vec::new(),
            backoff: None,
            features: Feature::ALL.to_vec(),
        }
    }

    /// A LiteLLM proxy: cost in `x-litellm-response-cost` (a binary float),
    /// provider cooldown; spend, budgets and per-key limits need its
    /// database and virtual keys, so a profile of one's own says so
    /// (`base = "litellm"`, `account = "litellm"`, `features = [...]`).
    ///
    /// Its backoff is fixed in its code (`litellm/utils.py`,
    /// `calculate_retry_after`; `litellm/constants.py`): retry k waits
    /// 0.5 s × 2^(k−1), at most 8 s, plus a random 0 to 0.75 s; its
    /// `router_settings.retry_after` only raises the floor. So the ceiling
    /// is min(8.75 s, 1.25 s × 2^(k−1)).
    pub fn litellm() -> Profile {
        Profile {
            name: "litellm".into(),
            cost: Cost::Header("x-litellm-response-cost".into()),
            precision: Precision::Float,
            account: Account::None,
            generations: false,
            ready: "/health/liveliness".into(),
            ready_auth: false,
            headers: Vec::new(),
            backoff: Some(Backoff {
                base: Duration::from_millis(1250),
                cap: Some(Duration::from_millis(8750)),
                factor: 2.0,
            }),
            features: vec![Feature::ProviderCooldown],
        }
    }

    /// Portkey's open-source gateway: routes, retries and falls back as each
    /// request's headers say; no cost, no accounts. Its backoff is
    /// `async-retry`'s with jitter turned off (`src/handlers/retryHandler.ts`,
    /// `randomize: false`): 1 s, 2 s, 4 s… without end.
    pub fn portkey() -> Profile {
        Profile {
            name: "portkey".into(),
            ready: "/".into(),
            ready_auth: false,
            backoff: Some(Backoff {
                base: Duration::from_secs(1),
                cap: None,
                factor: 2.0,
            }),
            ..Profile::openai()
        }
    }

    /// Any OpenAI-compatible router: answers only.
    pub fn openai() -> Profile {
        Profile {
            name: "openai".into(),
            cost: Cost::None,
            precision: Precision::Decimal,
            account: Account::None,
            generations: false,
            ready: "models".into(),
            ready_auth: true,
            headers: Vec::new(),
            backoff: None,
            features: Vec::new(),
        }
    }

    /// The built-in profile called `name`.
    pub fn built_in(name: &str) -> Option<Profile> {
        match name {
            "openrouter" => Some(Profile::openrouter()),
            "litellm" => Some(Profile::litellm()),
            "portkey" => Some(Profile::portkey()),
            "openai" => Some(Profile::openai()),
            _ => None,
        }
    }

    /// The profile called `name`: one of `declared` (a scenario's
    /// `[profiles]`), or a built-in one.
    pub fn named(name: &str, declared: &[Profile]) -> Option<Profile> {
        (declared.iter().find(|p| p.name == name).cloned()).or_else(|| Profile::built_in(name))
    }

    /// Every profile name [`Profile::named`] knows beside `declared`, the
    /// built-in ones first, for an error that lists them.
    pub fn known_names(declared: &[Profile]) -> String {
        let mut known: Vec<&str> = BUILT_IN.to_vec();
        known.extend(declared.iter().map(|p| p.name.as_str()));
        known.join(", ")
    }

    /// Whether routers of this profile have `feature`.
    pub fn has(&self, feature: Feature) -> bool {
        match feature {
            Feature::ReportedCost => self.cost != Cost::None,
            Feature::SpendReadout => self.account != Account::None,
            Feature::GenerationLookup => self.generations,
            other => self.features.contains(&other),
        }
    }

    /// The header that carries the cost, when one does.
    pub fn cost_header(&self) -> Option<&str> {
        match &self.cost {
            Cost::Header(name) => Some(name),
            _ => None,
        }
    }

    /// The readiness URL of a router whose API base is `api`.
    pub fn ready_url(&self, api: &str) -> String {
        let api = api.trim_end_matches('/');
        match self.ready.strip_prefix('/') {
            Some(path) => format!("{}/{path}", origin(api)),
            None => format!("{api}/{}", self.ready),
        }
    }
}

/// `scheme://authority` of a URL (where root paths are resolved).
pub fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => &url[..after_scheme + slash],
        None => url,
    }
}

/// A `[profiles.NAME]` table as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawProfile {
    /// The built-in profile it starts from (`openai` when not given).
    pub base: Option<String>,
    pub cost: Option<Cost>,
    pub precision: Option<RawPrecision>,
    pub account: Option<Account>,
    pub generation_lookup: Option<bool>,
    pub ready: Option<String>,
    pub ready_auth: Option<bool>,
    pub headers: Option<BTreeMap<String, String>>,
    /// The router's own backoff (replaces the base's).
    pub backoff: Option<RawBackoff>,
    /// Replaces the base's features.
    pub features: Option<Vec<Feature>>,
}

/// `backoff = { base-ms = 1000, cap-ms = 8000, factor = 2 }` as written.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawBackoff {
    pub base_ms: u64,
    pub cap_ms: Option<u64>,
    /// Default 2.
    pub factor: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RawPrecision {
    Decimal,
    Float,
}

/// What is wrong with a `[profiles.NAME]` table: the field, its value when
/// that is out of range, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    pub field: &'static str,
    pub value: Option<String>,
    pub message: String,
}

/// A router's own backoff base and cap: a millisecond to an hour.
const BACKOFF_MS: Count = Count::new(1, 3_600_000, "milliseconds");
/// Its growth from one retry to the next.
const BACKOFF_FACTOR: Range = Range::above(1.0, 1000.0, "");

impl RawBackoff {
    fn validate(&self) -> Result<Backoff, ProfileError> {
        let range = |field: &'static str, e: OutOfRange| ProfileError {
            field,
            value: Some(e.value),
            message: e.expected,
        };
        let base_ms = BACKOFF_MS
            .check(self.base_ms)
            .map_err(|e| range("backoff.base-ms", e))?;
        let cap_ms = (self.cap_ms)
            .map(|cap| BACKOFF_MS.check(cap).map_err(|e| range("backoff.cap-ms", e)))
            .transpose()?;
        let factor = BACKOFF_FACTOR
            .check(self.factor.unwrap_or(2.0))
            .map_err(|e| range("backoff.factor", e))?;
        if let Some(cap) = cap_ms.filter(|cap| *cap < base_ms) {
            return Err(ProfileError {
                field: "backoff.cap-ms",
                value: Some(cap.to_string()),
                message: format!("must be at least base-ms ({base_ms})"),
            });
        }
        Ok(Backoff {
            base: Duration::from_millis(base_ms),
            cap: cap_ms.map(Duration::from_millis),
            factor,
        })
    }
}

impl RawProfile {
    /// The profile `name` this table declares.
    pub fn validate(&self, name: &str) -> Result<Profile, ProfileError> {
        let bad = |field: &'static str, message: String| ProfileError {
            field,
            value: None,
            message,
        };
        if Profile::built_in(name).is_some() {
            return Err(bad(
                "base",
                format!("`{name}` is a built-in profile: give yours another name"),
            ));
        }
        let base = self.base.as_deref().unwrap_or("openai");
        let mut profile = Profile::built_in(base).ok_or_else(|| {
            bad(
                "base",
                format!("`{base}` is not a built-in profile ({})", BUILT_IN.join(", ")),
            )
        })?;
        profile.name = name.to_string();
        if let Some(cost) = &self.cost {
            if let Cost::Header(header) = cost {
                let (lower, _) =
                    super::header(header, "x").map_err(|e| bad("cost", format!("`header = \"{header}\"`: {e}")))?;
                profile.cost = Cost::Header(lower);
            } else {
                profile.cost = cost.clone();
            }
        }
        if let Some(precision) = self.precision {
            profile.precision = match precision {
                RawPrecision::Decimal => Precision::Decimal,
                RawPrecision::Float => Precision::Float,
            };
        }
        profile.account = self.account.unwrap_or(profile.account);
        profile.generations = self.generation_lookup.unwrap_or(profile.generations);
        if let Some(ready) = &self.ready {
            let ready = ready.trim();
            if ready.is_empty() || ready.contains("://") || ready.chars().any(char::is_whitespace) {
                return Err(bad(
                    "ready",
                    format!("`{ready}` is not a path (`models` under the API base, or `/health` from the root)"),
                ));
            }
            profile.ready = ready.to_string();
        }
        profile.ready_auth = self.ready_auth.unwrap_or(profile.ready_auth);
        for (header, value) in self.headers.iter().flatten() {
            let header = super::header(header, value).map_err(|e| bad("headers", e.to_string()))?;
            profile.headers.retain(|(n, _)| *n != header.0);
            profile.headers.push(header);
        }
        if let Some(b) = self.backoff {
            profile.backoff = Some(b.validate()?);
        }
        if let Some(features) = &self.features {
            let derived = [Feature::ReportedCost, Feature::SpendReadout, Feature::GenerationLookup];
            if let Some(f) = features.iter().find(|f| derived.contains(f)) {
                return Err(bad(
                    "features",
                    format!(
                        "`{}` follows from `cost`, `account` and `generation-lookup`; set those instead",
                        f.key()
                    ),
                ));
            }
            profile.features = features.clone();
        }
        Ok(profile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(origin("http://127.0.0.1:4000/v1"), "http://127.0.0.1:4000");
        assert_eq!(origin("http://127.0.0.1:4000"), "http://127.0.0.1:4000");
    }

    #[test]
    fn ready_urls_resolve_under_the_api_or_from_the_root() {
        let api = "http://127.0.0.1:4000/v1/";
        assert_eq!(Profile::openai().ready_url(api), "http://127.0.0.1:4000/v1/models");
        assert_eq!(
            Profile::litellm().ready_url(api),
            "http://127.0.0.1:4000/health/liveliness"
        );
        assert_eq!(Profile::portkey().ready_url(api), "http://127.0.0.1:4000/");
    }

    #[test]
    fn built_in_profiles_say_what_their_routers_have() {
        let openrouter = Profile::openrouter();
        assert!(Feature::ALL.iter().all(|f| openrouter.has(*f)));
        let litellm = Profile::litellm();
        assert!(litellm.has(Feature::ReportedCost) && litellm.has(Feature::ProviderCooldown));
        assert!(!litellm.has(Feature::PrepaidCredits) && !litellm.has(Feature::SpendReadout));
        assert_eq!(litellm.cost_header(), Some("x-litellm-response-cost"));
        for p in [Profile::portkey(), Profile::openai()] {
            assert!(Feature::ALL.iter().all(|f| !p.has(*f)), "{}", p.name);
        }
        for name in BUILT_IN {
            assert_eq!(Profile::built_in(name).unwrap().name, name);
        }
    }

    fn raw(text: &str) -> RawProfile {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_declared_profile_starts_from_its_base() {
        let p = raw(r#"
            base = "litellm"
            account = "litellm"
            features = ["per-key-limits", "provider-cooldown"]
            headers = { "X-Tenant" = "ci" }
            "#)
        .validate("mine")
        .unwrap();
        assert_eq!(p.name, "mine");
        assert_eq!(p.precision, Precision::Float);
        assert!(p.has(Feature::SpendReadout) && p.has(Feature::PerKeyLimits));
        assert!(!p.has(Feature::PrepaidCredits));
        assert_eq!(p.headers, vec![("x-tenant".to_string(), "ci".to_string())]);

        let p = raw(r#"cost = { header = "X-Cost" }"#).validate("gw").unwrap();
        assert_eq!(p.cost, Cost::Header("x-cost".into()));
        assert_eq!(p.precision, Precision::Decimal);
    }

    #[test]
    fn backoffs_grow_to_their_cap() {
        let litellm = Profile::litellm().backoff.unwrap();
        let ceilings: Vec<u128> = (1..=5).map(|k| litellm.ceiling(k).as_millis()).collect();
        assert_eq!(ceilings, [1250, 2500, 5000, 8750, 8750]);
        let portkey = Profile::portkey().backoff.unwrap();
        assert_eq!(portkey.ceiling(6).as_millis(), 32_000);
        assert_eq!(Profile::openai().backoff, None);
        let p = raw("backoff = { base-ms = 100, cap-ms = 300, factor = 3 }")
            .validate("gw")
            .unwrap();
        let ceilings: Vec<u128> = (1..=3).map(|k| p.backoff.unwrap().ceiling(k).as_millis()).collect();
        assert_eq!(ceilings, [100, 300, 300]);
        assert_eq!(
            raw("backoff = { base-ms = 100, factor = 1 }")
                .validate("gw")
                .unwrap_err()
                .field,
            "backoff.factor"
        );
        let e = raw("backoff = { base-ms = 100, cap-ms = 50 }")
            .validate("gw")
            .unwrap_err();
        assert_eq!((e.field, e.value.as_deref()), ("backoff.cap-ms", Some("50")));
    }

    #[test]
    fn a_declared_profile_is_checked() {
        let error = |text: &str, name: &str| raw(text).validate(name).unwrap_err();
        assert_eq!(error("", "litellm").field, "base");
        let e = error(r#"base = "vllm""#, "mine");
        assert!(e.message.contains("`vllm` is not a built-in profile"), "{}", e.message);
        assert_eq!(error(r#"ready = "http://x/health""#, "mine").field, "ready");
        let e = error(r#"features = ["reported-cost"]"#, "mine");
        assert!(e.message.contains("set those instead"), "{}", e.message);
        assert_eq!(error(r#"cost = { header = "bad header" }"#, "mine").field, "cost");
        assert!(toml::from_str::<RawProfile>(r#"features = ["teleport"]"#).is_err());
    }
}
