//! The `[router]` table of a scenario file (and of `gauntlet router
//! --config`): raw serde structs, validated into a [`RouterConfig`].
//!
//! ```toml
//! [router]
//! listen = "127.0.0.1:18080"
//! operator-key = "sk-demo-admin"      # admin routes; none: admin routes are off
//! ledger-path = "target/demo-ledger.redb"   # none: in-memory ledger
//! byok-fee-bps = 500                  # BYOK fee, in basis points of the normal cost
//! keep-alive-ms = 1000                # `: PROCESSING` comments while waiting for a token
//! max-body-bytes = 1048576
//! header-timeout-ms = 10000           # a request head must arrive within this (idle keep-alive too)
//! body-timeout-ms = 10000             # the whole body, from its head; else 408 and the connection closes
//! max-connections = 10000             # served at once; more wait in the listen backlog
//! purchase-min = "5"                  # USD: the smallest and the largest top-up through the
//! purchase-max = "25000"              # admin routes (OpenRouter's); see `PurchaseBounds`
//! credit-expiry-days = 365            # a purchase expires this long after it was made (its unspent
//!                                     # rest is lost; charges draw oldest first); none: never
//! price-notice-days = 7              # a price change is announced at least this long ahead (default 0)
//! clock = { start = "2026-01-10", speed = 86400 }   # warp: one day per second; start may be
//!                                     # an offset from now ("+365d": a year ahead); none: now
//!
//! [[router.providers]]
//! name = "openai-like"
//! dialect = "openai"                  # openai | anthropic
//! base-url = "http://127.0.0.1:18001"
//! api-key = "sk-upstream-openai"
//!
//! [[router.models]]
//! id = "openai/gpt-4o-mini"
//! providers = ["openai-like", { name = "backup", model = "gpt-4o-mini-2024" }]
//! upstream-model = "gpt-4o-mini"      # default: the id after its last '/'
//! prompt = "0.15"                     # USD per million tokens (string or number, ≤ 6 decimals)
//! completion = "0.60"
//! cache-read = "0.075"                # default: the prompt price
//! cache-write = "0.1875"              # default: the prompt price
//! system-prefix = "You are served by gauntlet."
//! deprecation = { announced = "2026-01-01", removed = "2026-02-01", replacement = "openai/gpt-4o" }
//! # or counted from the clock's start (w, d, h, m, s), true on any day:
//! # deprecation = { announced = "-30d", removed = "+180d", replacement = "openai/gpt-4o" }
//! [[router.models.price-changes]]     # from `at` on, requests that start are billed at these
//! at = "2027-01-10T00:00:00Z"         # prices (cache prices default to this prompt price);
//! announced = "2027-01-01"            # at least `price-notice-days` before `at`; offsets too
//! prompt = "0.20"                     # (at = "+10d", announced = "-1d"); `GET /models` lists
//! completion = "0.80"                 # a change from its announcement until it applies
//!
//! [[router.keys]]
//! key = "sk-demo"
//! label = "demo"
//! credits = "10"                      # USD
//! rpm = 600
//! concurrency = 8                     # per key and model
//! in-flight-budget = "1"              # USD of reserved worst-case cost in flight
//! byok = { provider = "openai-like", api-key = "sk-byok-user-openai" }
//!
//! [router.retry]                      # see the retry module for the rules
//! base-ms = 200                       # the first retry's backoff ceiling
//! cap-ms = 5000                       # the largest ceiling
//! factor = 2                          # ceiling of retry k: min(cap, base × factor^(k−1))
//! attempts-per-provider = 3           # or retries-per-provider = 2 (not both)
//! deadline-ms = 30000
//! first-byte-timeout-ms = 20000
//! budget-ratio = 0.2                  # retries per request in the budget window
//! budget-window-ms = 10000
//! budget-min-retries = 10
//! cooldown-after = 3                  # 429s in a row that cool a provider down
//! cooldown-ms = 10000
//! ```
//!
//! A calendar time (`clock.start`, `deprecation.announced` and `.removed`,
//! a price change's `at` and `announced`)
//! is a date, a UTC time, or an offset (`+30d`, `-12h`; see the clock
//! module): lifecycle offsets count from the clock's start (`clock.start`,
//! else the moment the table is read), a `clock.start` offset from that
//! moment. Offsets keep a file true on any day; absolute dates against the
//! real clock change its verdicts on the day they pass.
//!
//! Every duration, rate and count has a range, checked here (so `gauntlet
//! router`, `gauntlet run` and `gauntlet validate` refuse alike): whatever
//! validates runs. A value outside it, `inf` and `nan` included, is refused
//! with its path and value, e.g. `router.keep-alive-ms = 0: must be between
//! 1 and 3600000 milliseconds`.
//!
//! | field | range |
//! |---|---|
//! | `keep-alive-ms` | 1 to 3,600,000 (an hour) |
//! | `max-body-bytes` | 1,024 to 1,073,741,824 (1 GiB) |
//! | `byok-fee-bps` | 0 to 10,000 |
//! | `clock.speed` | 0.001 to 10,000,000 times real time |
//! | `free.per-minute`; keys' `rpm` | 1 to 600,000,000 (10 million a second) |
//! | `free.per-day`, `free.per-day-after-purchase` | 0 to 1,000,000,000 |
//! | keys' `concurrency` | 1 to 1,000,000 |
//! | models' `default-max-tokens` | 1 to 1,000,000 |
//! | models' `context-length` | 1 to 100,000,000 |
//! | `retry.base-ms`, `retry.cap-ms` | 1 to 3,600,000, the cap at least the base |
//! | `retry.factor` | above 1, at most 1,000 |
//! | `retry.attempts-per-provider` (`retries-per-provider`) | 1 to 1,000 (0 to 999) |
//! | `retry.deadline-ms` | 1 to 86,400,000 (a day) |
//! | `retry.first-byte-timeout-ms` | 1 to 3,600,000 (an hour) |
//! | `retry.budget-ratio` | 0 to 1,000 retries per request |
//! | `retry.budget-window-ms` | 10 to 86,400,000 |
//! | `retry.budget-min-retries` | 0 to 1,000,000 |
//! | `retry.cooldown-after` | 1 to 1,000,000 |
//! | `retry.cooldown-ms` | 0 to 86,400,000 (a day) |
//! | `header-timeout-ms`, `body-timeout-ms` | 100 to 600,000 (default 10 s each) |
//! | `max-connections` | 1 to 1,000,000 (default 10,000) |
//! | `credit-expiry-days` | 1 to 36,525 (a hundred years; default: never) |
//! | `price-notice-days` | 0 to 3,650 (default 0) |
//! | `purchase-min`, `purchase-max` | above $0, the minimum at most the maximum (default $5 and $25,000) |
//!
//! What the connection limits guarantee against slow clients is on
//! [`ConnectionLimits`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

pub mod bounds;

use bounds::{Count, OutOfRange, Range};

use super::catalog::{Catalog, Deprecation, FREE_SUFFIX, MIN_GRACE, Model, PriceChange, Route};
use super::clock::When;
use super::defects::Defects;
use super::pricing::{Picodollars, Prices, TokenPrice};
use super::retry::RetryPolicy;

/// A validation error: the field path, the value when it is the problem
/// (one out of its range), and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}{}: {message}", .value.as_ref().map(|v| format!(" = {v}")).unwrap_or_default())]
pub struct ConfigError {
    pub path: String,
    pub value: Option<String>,
    pub message: String,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        value: None,
        message: message.into(),
    }
}

fn out_of_range(path: impl Into<String>, e: OutOfRange) -> ConfigError {
    ConfigError {
        path: path.into(),
        value: Some(e.value),
        message: e.expected,
    }
}

/// `value`, when given, in `range`.
fn count<T: Copy + TryInto<u64> + fmt::Display>(
    path: impl Into<String>,
    range: Count,
    value: Option<T>,
) -> Result<Option<T>, ConfigError> {
    value
        .map(|v| range.check(v).map_err(|e| out_of_range(path, e)))
        .transpose()
}

/// A number of milliseconds, when given, in `range`.
fn millis(path: impl Into<String>, range: Count, value: Option<u64>) -> Result<Option<Duration>, ConfigError> {
    Ok(count(path, range, value)?.map(Duration::from_millis))
}

/// A limit, when given, in `range` (whose lowest value is at least 1).
fn limit(path: impl Into<String>, range: Count, value: Option<u32>) -> Result<Option<NonZeroU32>, ConfigError> {
    Ok(count(path, range, value)?.and_then(NonZeroU32::new))
}

/// A real number, when given, in `range`.
fn real(path: impl Into<String>, range: Range, value: Option<f64>) -> Result<Option<f64>, ConfigError> {
    value
        .map(|v| range.check(v).map_err(|e| out_of_range(path, e)))
        .transpose()
}

/// A decimal written as a TOML string (`"0.15"`, exact) or number (`0.15`,
/// read back through its shortest decimal form, also exact for ≤ 15 digits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawDecimal(pub String);

impl<'de> Deserialize<'de> for RawDecimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DecimalVisitor;
        impl Visitor<'_> for DecimalVisitor {
            type Value = RawDecimal;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal number such as \"0.15\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDecimal, E> {
                Ok(RawDecimal(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDecimal, E> {
                Ok(RawDecimal(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDecimal, E> {
                Ok(RawDecimal(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawDecimal, E> {
                Ok(RawDecimal(format!("{v}")))
            }
        }
        deserializer.deserialize_any(DecimalVisitor)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum Dialect {
    #[serde(rename = "openai")]
    OpenAi,
    #[serde(rename = "anthropic")]
    Anthropic,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawRouter {
    pub listen: Option<String>,
    pub operator_key: Option<String>,
    pub ledger_path: Option<PathBuf>,
    pub byok_fee_bps: Option<u32>,
    pub keep_alive_ms: Option<u64>,
    pub max_body_bytes: Option<usize>,
    pub header_timeout_ms: Option<u64>,
    pub body_timeout_ms: Option<u64>,
    pub max_connections: Option<u32>,
    /// The smallest top-up, USD (default 5, OpenRouter's).
    pub purchase_min: Option<RawDecimal>,
    /// The largest top-up, USD (default 25,000, OpenRouter's).
    pub purchase_max: Option<RawDecimal>,
    /// Days a purchase of credits lasts; none: forever.
    pub credit_expiry_days: Option<u32>,
    /// Days a price change must be announced ahead (default 0).
    pub price_notice_days: Option<u32>,
    pub clock: Option<RawClock>,
    pub free: Option<RawFree>,
    pub retry: Option<RawRetry>,
    #[serde(default)]
    pub providers: Vec<RawUpstream>,
    #[serde(default)]
    pub models: Vec<RawModel>,
    #[serde(default)]
    pub keys: Vec<RawKey>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawClock {
    pub start: Option<String>,
    pub speed: Option<f64>,
}

/// Limits of `:free` models per key.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawFree {
    pub per_minute: Option<u32>,
    pub per_day: Option<u32>,
    pub per_day_after_purchase: Option<u32>,
    pub purchase_threshold: Option<RawDecimal>,
}

/// Retry policy fields; defaults live in the retry module.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawRetry {
    pub base_ms: Option<u64>,
    pub cap_ms: Option<u64>,
    /// How much the backoff ceiling grows per retry (default 2).
    pub factor: Option<f64>,
    pub attempts_per_provider: Option<u32>,
    /// The same limit counted in retries (attempts − 1), as LiteLLM's
    /// `num_retries` and Portkey's `retry.attempts` count it.
    pub retries_per_provider: Option<u32>,
    pub deadline_ms: Option<u64>,
    pub first_byte_timeout_ms: Option<u64>,
    pub budget_ratio: Option<f64>,
    pub budget_window_ms: Option<u64>,
    pub budget_min_retries: Option<u32>,
    pub cooldown_after: Option<u32>,
    pub cooldown_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawUpstream {
    pub name: String,
    pub dialect: Dialect,
    pub base_url: String,
    pub api_key: String,
}

impl RawRetry {
    /// Builds the policy; unset fields keep the retry module's defaults.
    /// Each field is checked against its range first, so the error names it.
    pub fn validate(&self, at: &str) -> Result<RetryPolicy, ConfigError> {
        let path = |field: &str| format!("{at}.{field}");
        let defaults = RetryPolicy::default();
        let mut b = RetryPolicy::builder();
        let base = millis(path("base-ms"), bounds::BACKOFF_MS, self.base_ms)?;
        let cap = millis(path("cap-ms"), bounds::BACKOFF_MS, self.cap_ms)?;
        let (lowest, highest) = (base.unwrap_or(defaults.base()), cap.unwrap_or(defaults.cap()));
        if highest < lowest {
            let (field, message) = match cap {
                Some(_) => (
                    "cap-ms",
                    format!("must be at least base-ms ({} ms)", lowest.as_millis()),
                ),
                None => (
                    "base-ms",
                    format!(
                        "is above the default cap-ms ({} ms): give cap-ms too",
                        highest.as_millis()
                    ),
                ),
            };
            return Err(err(path(field), message));
        }
        if let Some(v) = base {
            b = b.base(v);
        }
        if let Some(v) = cap {
            b = b.cap(v);
        }
        if let Some(v) = real(path("factor"), bounds::BACKOFF_FACTOR, self.factor)? {
            b = b.factor(v);
        }
        if let Some(v) = self.attempts_per_provider(at)? {
            b = b.attempts_per_provider(v);
        }
        if let Some(v) = millis(path("deadline-ms"), bounds::DEADLINE_MS, self.deadline_ms)? {
            b = b.deadline(v);
        }
        let first_byte = self.first_byte_timeout_ms;
        if let Some(v) = millis(path("first-byte-timeout-ms"), bounds::FIRST_BYTE_TIMEOUT_MS, first_byte)? {
            b = b.first_byte_timeout(v);
        }
        if let Some(v) = real(path("budget-ratio"), bounds::BUDGET_RATIO, self.budget_ratio)? {
            b = b.budget_ratio(v);
        }
        if let Some(v) = millis(
            path("budget-window-ms"),
            bounds::BUDGET_WINDOW_MS,
            self.budget_window_ms,
        )? {
            b = b.budget_window(v);
        }
        let min_retries = self.budget_min_retries;
        if let Some(v) = count(path("budget-min-retries"), bounds::BUDGET_MIN_RETRIES, min_retries)? {
            b = b.budget_min_retries(v);
        }
        if let Some(v) = limit(path("cooldown-after"), bounds::COOLDOWN_AFTER, self.cooldown_after)? {
            b = b.cooldown_after(v);
        }
        if let Some(v) = millis(path("cooldown-ms"), bounds::COOLDOWN_MS, self.cooldown_ms)? {
            b = b.cooldown(v);
        }
        b.build().map_err(|e| err(at, e.to_string()))
    }

    /// The attempt limit per provider, stated as attempts or as retries
    /// (not both).
    fn attempts_per_provider(&self, at: &str) -> Result<Option<NonZeroU32>, ConfigError> {
        match (self.attempts_per_provider, self.retries_per_provider) {
            (Some(_), Some(_)) => Err(err(
                format!("{at}.retries-per-provider"),
                "give `attempts-per-provider` or `retries-per-provider` (attempts − 1), not both",
            )),
            (attempts, None) => limit(format!("{at}.attempts-per-provider"), bounds::ATTEMPTS, attempts),
            (None, Some(retries)) => Ok(
                count(format!("{at}.retries-per-provider"), bounds::RETRIES, Some(retries))?
                    .and_then(|r| NonZeroU32::new(r.saturating_add(1))),
            ),
        }
    }
}

/// A provider of a model: its name, or a table naming the upstream model too.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawRoute {
    Name(String),
    Table(RawRouteTable),
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawRouteTable {
    pub name: String,
    pub model: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawModel {
    pub id: String,
    pub providers: Vec<RawRoute>,
    pub upstream_model: Option<String>,
    pub prompt: Option<RawDecimal>,
    pub completion: Option<RawDecimal>,
    pub cache_read: Option<RawDecimal>,
    pub cache_write: Option<RawDecimal>,
    pub system_prefix: Option<String>,
    pub deprecation: Option<RawDeprecation>,
    pub default_max_tokens: Option<u32>,
    pub context_length: Option<u32>,
    #[serde(default)]
    pub price_changes: Vec<RawPriceChange>,
}

/// `[[router.models.price-changes]]`: new prices from `at` on, announced at
/// `announced` (times as the lifecycle's: absolute or offsets from the
/// clock's start).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawPriceChange {
    pub at: String,
    pub announced: String,
    pub prompt: Option<RawDecimal>,
    pub completion: Option<RawDecimal>,
    pub cache_read: Option<RawDecimal>,
    pub cache_write: Option<RawDecimal>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawDeprecation {
    pub announced: String,
    pub removed: String,
    pub replacement: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawKey {
    pub key: String,
    pub label: Option<String>,
    pub credits: Option<RawDecimal>,
    pub rpm: Option<u32>,
    pub concurrency: Option<u32>,
    pub in_flight_budget: Option<RawDecimal>,
    pub byok: Option<RawByok>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawByok {
    pub provider: String,
    pub api_key: String,
}

/// An upstream provider the router calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub name: Arc<str>,
    pub dialect: Dialect,
    /// `scheme://authority` plus an optional path prefix, without a trailing slash.
    pub base_url: Arc<str>,
    pub api_key: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Byok {
    pub provider: usize,
    pub api_key: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyConfig {
    pub key: Arc<str>,
    pub label: String,
    pub credits: Picodollars,
    pub rpm: Option<NonZeroU32>,
    pub concurrency: Option<NonZeroU32>,
    pub in_flight_budget: Option<Picodollars>,
    pub byok: Option<Byok>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeLimits {
    pub per_minute: NonZeroU32,
    pub per_day: u32,
    pub per_day_after_purchase: u32,
    pub purchase_threshold: Picodollars,
}

impl Default for FreeLimits {
    /// OpenRouter's: 20 a minute; 50 a day, 1000 once 10 USD were bought.
    fn default() -> Self {
        FreeLimits {
            per_minute: NonZeroU32::MIN.saturating_add(19),
            per_day: 50,
            per_day_after_purchase: 1000,
            purchase_threshold: Picodollars(10 * super::pricing::PICOS_PER_USD),
        }
    }
}

/// The bounds of one purchase of credits: OpenRouter's terms take "$5
/// minimum, $25,000 maximum per transaction". The admin routes are where
/// purchases happen, so they refuse a top-up outside the bounds (and the
/// credits a created key starts with, unless none); a key of the config
/// file is the operator's own grant and is not bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurchaseBounds {
    pub min: Picodollars,
    pub max: Picodollars,
}

impl Default for PurchaseBounds {
    fn default() -> Self {
        PurchaseBounds {
            min: Picodollars(5 * super::pricing::PICOS_PER_USD),
            max: Picodollars(25_000 * super::pricing::PICOS_PER_USD),
        }
    }
}

/// A purchase outside [`PurchaseBounds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a purchase of {amount} is outside the bounds: it must be from {} to {}", .bounds.min, .bounds.max)]
pub struct PurchaseOutOfBounds {
    pub amount: Picodollars,
    pub bounds: PurchaseBounds,
}

impl PurchaseBounds {
    /// `amount` if it is a purchase these bounds allow.
    pub fn check(&self, amount: Picodollars) -> Result<Picodollars, PurchaseOutOfBounds> {
        if (self.min..=self.max).contains(&amount) {
            Ok(amount)
        } else {
            Err(PurchaseOutOfBounds { amount, bounds: *self })
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockConfig {
    /// Calendar time at router start; `None` is the real time.
    pub start: Option<Timestamp>,
    pub speed: f64,
}

/// The validated router configuration.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    pub listen: SocketAddr,
    pub operator_key: Option<Arc<str>>,
    pub ledger_path: Option<PathBuf>,
    pub byok_fee_bps: u32,
    pub keep_alive: Duration,
    pub max_body_bytes: usize,
    /// Slow and idle clients: the read timeouts and the connection bound.
    pub connections: ConnectionLimits,
    pub clock: ClockConfig,
    pub free: FreeLimits,
    /// The bounds of one purchase through the admin routes.
    pub purchases: PurchaseBounds,
    /// How long after it was made a purchase of credits expires (its
    /// unspent rest is then no longer available); `None`: never.
    pub credit_expiry: Option<jiff::SignedDuration>,
    /// How long ahead a price change must be announced.
    pub price_notice: jiff::SignedDuration,
    pub retry: RetryPolicy,
    pub providers: Vec<Upstream>,
    pub catalog: Catalog,
    pub keys: Vec<KeyConfig>,
    /// Deliberate misbehaviour, test-only: never read from TOML (validation
    /// sets the default, all off); the harness sets it programmatically.
    pub defects: Defects,
}

/// The default address of `gauntlet router`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:18080";
/// The default BYOK fee: 5 %.
pub const DEFAULT_BYOK_FEE_BPS: u32 = 500;
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_millis(1000);
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
pub const DEFAULT_CONTEXT_LENGTH: u32 = 128_000;

fn price(path: String, raw: &Option<RawDecimal>) -> Result<Option<TokenPrice>, ConfigError> {
    raw.as_ref()
        .map(|d| d.0.parse::<TokenPrice>().map_err(|e| err(path, e.to_string())))
        .transpose()
}

fn usd(path: String, raw: &Option<RawDecimal>) -> Result<Option<Picodollars>, ConfigError> {
    raw.as_ref()
        .map(|d| Picodollars::from_usd_decimal(&d.0).map_err(|e| err(path, e.to_string())))
        .transpose()
}

/// A calendar time: absolute, or an offset (`+30d`) from `origin`.
fn time(path: String, text: &str, origin: Timestamp) -> Result<Timestamp, ConfigError> {
    When::parse(text)
        .and_then(|when| when.at(origin, text))
        .map_err(|e| err(path, e.to_string()))
}

impl RawRouter {
    /// Validates the table found at `at` (usually `router`).
    pub fn validate(&self, at: &str) -> Result<RouterConfig, ConfigError> {
        let listen_text = self.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen_text.parse().map_err(|_| {
            err(
                format!("{at}.listen"),
                format!("`{listen_text}` is not an address like 127.0.0.1:18080"),
            )
        })?;
        if self.operator_key.as_deref().is_some_and(str::is_empty) {
            return Err(err(format!("{at}.operator-key"), "must not be empty"));
        }
        if let Some(problem) = self.operator_key.as_deref().and_then(super::keys::key_problem) {
            return Err(err(format!("{at}.operator-key"), problem));
        }
        let byok_fee_bps = count(format!("{at}.byok-fee-bps"), bounds::BYOK_FEE_BPS, self.byok_fee_bps)?
            .unwrap_or(DEFAULT_BYOK_FEE_BPS);
        let max_body_bytes = count(
            format!("{at}.max-body-bytes"),
            bounds::MAX_BODY_BYTES,
            self.max_body_bytes,
        )?
        .unwrap_or(DEFAULT_MAX_BODY_BYTES);
        let keep_alive = millis(format!("{at}.keep-alive-ms"), bounds::KEEP_ALIVE_MS, self.keep_alive_ms)?
            .unwrap_or(DEFAULT_KEEP_ALIVE);
        let connections = self.validate_connections(at)?;
        let now = Timestamp::now();
        let clock = match &self.clock {
            None => ClockConfig {
                start: None,
                speed: 1.0,
            },
            Some(c) => c.validate(at, now)?,
        };
        // Lifecycle offsets count from the clock's start: the one given, or
        // now (a clock without a start reads the real time from now on).
        let origin = clock.start.unwrap_or(now);
        let free = match &self.free {
            None => FreeLimits::default(),
            Some(f) => f.validate(at)?,
        };
        let purchases = self.validate_purchases(at)?;
        let (providers, names) = self.validate_providers(at)?;
        let notice_days = count(
            format!("{at}.price-notice-days"),
            bounds::PRICE_NOTICE_DAYS,
            self.price_notice_days,
        )?
        .unwrap_or(0);
        let price_notice = jiff::SignedDuration::from_hours(i64::from(notice_days) * 24);
        let models = self.validate_models(at, &names, origin, price_notice)?;
        let keys = self.validate_keys(at, &names)?;

        Ok(RouterConfig {
            listen,
            operator_key: self.operator_key.as_deref().map(Into::into),
            ledger_path: self.ledger_path.clone(),
            byok_fee_bps,
            keep_alive,
            max_body_bytes,
            connections,
            clock,
            free,
            purchases,
            credit_expiry: count(
                format!("{at}.credit-expiry-days"),
                bounds::CREDIT_EXPIRY_DAYS,
                self.credit_expiry_days,
            )?
            .map(|days| jiff::SignedDuration::from_hours(i64::from(days) * 24)),
            price_notice,
            retry: self
                .retry
                .as_ref()
                .map_or_else(|| Ok(RetryPolicy::default()), |r| r.validate(&format!("{at}.retry")))?,
            providers,
            catalog: Catalog::new(models),
            keys,
            defects: Defects::default(),
        })
    }

    /// `purchase-min` and `purchase-max`: each above zero, the minimum at
    /// most the maximum.
    fn validate_purchases(&self, at: &str) -> Result<PurchaseBounds, ConfigError> {
        let d = PurchaseBounds::default();
        let bound = |field: &str, raw: &Option<RawDecimal>, default: Picodollars| {
            let path = format!("{at}.{field}");
            match usd(path.clone(), raw)? {
                None => Ok(default),
                Some(amount) if amount > Picodollars::ZERO => Ok(amount),
                Some(amount) => Err(ConfigError {
                    path,
                    value: Some(format!("{amount}")),
                    message: "must be above zero".into(),
                }),
            }
        };
        let min = bound("purchase-min", &self.purchase_min, d.min)?;
        let max = bound("purchase-max", &self.purchase_max, d.max)?;
        if min > max {
            let (field, value) = match self.purchase_max {
                Some(_) => ("purchase-max", max),
                None => ("purchase-min", min),
            };
            return Err(ConfigError {
                path: format!("{at}.{field}"),
                value: Some(format!("{value}")),
                message: format!("purchase-min ({min}) must be at most purchase-max ({max})"),
            });
        }
        Ok(PurchaseBounds { min, max })
    }

    /// The `[[router.providers]]`, and each provider's index by name.
    fn validate_providers(&self, at: &str) -> Result<(Vec<Upstream>, HashMap<String, usize>), ConfigError> {
        let mut names = HashMap::new();
        let mut providers = Vec::with_capacity(self.providers.len());
        for (i, p) in self.providers.iter().enumerate() {
            let path = format!("{at}.providers[{i}]");
            if p.name.is_empty() {
                return Err(err(format!("{path}.name"), "must not be empty"));
            }
            if names.insert(p.name.clone(), i).is_some() {
                return Err(err(
                    format!("{path}.name"),
                    format!("provider `{}` is defined twice", p.name),
                ));
            }
            let base_url = p.base_url.trim_end_matches('/');
            let parsed: http::Uri = base_url
                .parse()
                .map_err(|_| err(format!("{path}.base-url"), format!("`{}` is not a URL", p.base_url)))?;
            if parsed.scheme_str() != Some("http") || parsed.authority().is_none() {
                return Err(err(
                    format!("{path}.base-url"),
                    format!("`{}` must be an http:// URL with a host and port", p.base_url),
                ));
            }
            providers.push(Upstream {
                name: p.name.as_str().into(),
                dialect: p.dialect,
                base_url: base_url.into(),
                api_key: p.api_key.as_str().into(),
            });
        }
        Ok((providers, names))
    }

    /// The `[[router.models]]`; `names` are the providers' indices by name,
    /// `origin` the clock's start that lifecycle offsets count from.
    fn validate_models(
        &self,
        at: &str,
        names: &HashMap<String, usize>,
        origin: Timestamp,
        notice: jiff::SignedDuration,
    ) -> Result<Vec<Model>, ConfigError> {
        let mut seen = HashSet::new();
        let mut models = Vec::with_capacity(self.models.len());
        for (i, m) in self.models.iter().enumerate() {
            let path = format!("{at}.models[{i}]");
            if m.id.is_empty() {
                return Err(err(format!("{path}.id"), "must not be empty"));
            }
            if !seen.insert(m.id.as_str()) {
                return Err(err(format!("{path}.id"), format!("model `{}` is listed twice", m.id)));
            }
            let routes = m.validate_routes(&path, names)?;
            let free = Model::is_free(&m.id);
            let prices = m.validate_prices(&path, free)?;
            let deprecation = match &m.deprecation {
                None => None,
                Some(d) => Some(self.validate_deprecation(&path, m, d, origin)?),
            };
            let price_changes = m.validate_price_changes(&path, free, origin, notice)?;
            models.push(Model {
                id: m.id.as_str().into(),
                routes,
                prices,
                price_changes,
                free,
                system_prefix: m.system_prefix.as_deref().map(Into::into),
                deprecation,
                default_max_tokens: count(
                    format!("{path}.default-max-tokens"),
                    bounds::MAX_TOKENS,
                    m.default_max_tokens,
                )?
                .unwrap_or(DEFAULT_MAX_TOKENS),
                context_length: count(
                    format!("{path}.context-length"),
                    bounds::CONTEXT_LENGTH,
                    m.context_length,
                )?
                .unwrap_or(DEFAULT_CONTEXT_LENGTH),
            });
        }
        Ok(models)
    }

    /// The deprecation of the model `m` at `path`: dates absolute or
    /// counted from `origin` (the clock's start), a grace period of at least
    /// [`MIN_GRACE`], and a replacement that is another model, itself not
    /// deprecated.
    fn validate_deprecation(
        &self,
        path: &str,
        m: &RawModel,
        d: &RawDeprecation,
        origin: Timestamp,
    ) -> Result<Deprecation, ConfigError> {
        let announced = time(format!("{path}.deprecation.announced"), &d.announced, origin)?;
        let removed = time(format!("{path}.deprecation.removed"), &d.removed, origin)?;
        let grace = removed.as_second() - announced.as_second();
        if grace < MIN_GRACE.as_secs() as i64 {
            return Err(err(
                format!("{path}.deprecation.removed"),
                format!(
                    "the grace period from {} to {} is {:.1} days; it must be at least 14 days",
                    d.announced,
                    d.removed,
                    grace as f64 / 86_400.0
                ),
            ));
        }
        if d.replacement == m.id {
            return Err(err(
                format!("{path}.deprecation.replacement"),
                "a model cannot replace itself",
            ));
        }
        if !self.models.iter().any(|o| o.id == d.replacement) {
            return Err(err(
                format!("{path}.deprecation.replacement"),
                format!("no [[router.models]] has id `{}`", d.replacement),
            ));
        }
        if self
            .models
            .iter()
            .any(|o| o.id == d.replacement && o.deprecation.is_some())
        {
            return Err(err(
                format!("{path}.deprecation.replacement"),
                format!("`{}` is itself deprecated; name its replacement instead", d.replacement),
            ));
        }
        Ok(Deprecation {
            announced,
            removed,
            replacement: d.replacement.as_str().into(),
        })
    }

    /// The `[[router.keys]]`; `names` are the providers' indices by name.
    fn validate_keys(&self, at: &str, names: &HashMap<String, usize>) -> Result<Vec<KeyConfig>, ConfigError> {
        let mut seen = HashSet::new();
        let mut keys = Vec::with_capacity(self.keys.len());
        for (i, k) in self.keys.iter().enumerate() {
            let path = format!("{at}.keys[{i}]");
            if let Some(problem) = super::keys::key_problem(&k.key) {
                return Err(err(format!("{path}.key"), format!("{problem}, got {:?}", k.key)));
            }
            if let Some(problem) = k.label.as_deref().and_then(super::keys::label_problem) {
                return Err(err(format!("{path}.label"), problem));
            }
            if !seen.insert(k.key.as_str()) || self.operator_key.as_deref() == Some(k.key.as_str()) {
                return Err(err(
                    format!("{path}.key"),
                    "this key is listed twice (or is the operator key)",
                ));
            }
            let byok = match &k.byok {
                None => None,
                Some(b) => Some(Byok {
                    provider: *names.get(&b.provider).ok_or_else(|| {
                        err(
                            format!("{path}.byok.provider"),
                            format!("no [[router.providers]] is named `{}`", b.provider),
                        )
                    })?,
                    api_key: b.api_key.as_str().into(),
                }),
            };
            keys.push(KeyConfig {
                key: k.key.as_str().into(),
                label: k.label.clone().unwrap_or_else(|| format!("key {i}")),
                credits: usd(format!("{path}.credits"), &k.credits)?.unwrap_or_default(),
                rpm: limit(format!("{path}.rpm"), bounds::PER_MINUTE, k.rpm)?,
                concurrency: limit(format!("{path}.concurrency"), bounds::CONCURRENCY, k.concurrency)?,
                in_flight_budget: usd(format!("{path}.in-flight-budget"), &k.in_flight_budget)?,
                byok,
            });
        }
        Ok(keys)
    }
}

impl RawClock {
    /// The clock; a `start` written as an offset counts from `now`.
    fn validate(&self, at: &str, now: Timestamp) -> Result<ClockConfig, ConfigError> {
        let speed = real(format!("{at}.clock.speed"), bounds::CLOCK_SPEED, self.speed)?.unwrap_or(1.0);
        let start = self
            .start
            .as_deref()
            .map(|s| time(format!("{at}.clock.start"), s, now))
            .transpose()?;
        Ok(ClockConfig { start, speed })
    }
}

impl RawFree {
    fn validate(&self, at: &str) -> Result<FreeLimits, ConfigError> {
        let d = FreeLimits::default();
        Ok(FreeLimits {
            per_minute: limit(format!("{at}.free.per-minute"), bounds::PER_MINUTE, self.per_minute)?
                .unwrap_or(d.per_minute),
            per_day: count(format!("{at}.free.per-day"), bounds::PER_DAY, self.per_day)?.unwrap_or(d.per_day),
            per_day_after_purchase: count(
                format!("{at}.free.per-day-after-purchase"),
                bounds::PER_DAY,
                self.per_day_after_purchase,
            )?
            .unwrap_or(d.per_day_after_purchase),
            purchase_threshold: usd(format!("{at}.free.purchase-threshold"), &self.purchase_threshold)?
                .unwrap_or(d.purchase_threshold),
        })
    }
}

impl RawModel {
    /// The model's routes; a route without its own upstream model name
    /// uses the model id's last segment without `:free`.
    fn validate_routes(&self, path: &str, names: &HashMap<String, usize>) -> Result<Vec<Route>, ConfigError> {
        let default_upstream = self.upstream_model.clone().unwrap_or_else(|| {
            let base = self.id.rsplit('/').next().unwrap_or(&self.id);
            base.strip_suffix(FREE_SUFFIX).unwrap_or(base).to_string()
        });
        if self.providers.is_empty() {
            return Err(err(format!("{path}.providers"), "a model needs at least one provider"));
        }
        let mut routes = Vec::with_capacity(self.providers.len());
        for (j, r) in self.providers.iter().enumerate() {
            let (name, upstream) = match r {
                RawRoute::Name(n) => (n, default_upstream.as_str()),
                RawRoute::Table(t) => (&t.name, t.model.as_deref().unwrap_or(&default_upstream)),
            };
            let provider = *names.get(name).ok_or_else(|| {
                err(
                    format!("{path}.providers[{j}]"),
                    format!("no [[router.providers]] is named `{name}`"),
                )
            })?;
            routes.push(Route {
                provider,
                upstream_model: upstream.into(),
            });
        }
        Ok(routes)
    }

    /// The model's scheduled price changes: each a full set of prices (the
    /// cache prices defaulting to its `prompt`), none for a `:free` model,
    /// in the order they take effect, and each announced at least `notice`
    /// before it does.
    fn validate_price_changes(
        &self,
        path: &str,
        free: bool,
        origin: Timestamp,
        notice: jiff::SignedDuration,
    ) -> Result<Vec<PriceChange>, ConfigError> {
        let mut changes: Vec<PriceChange> = Vec::with_capacity(self.price_changes.len());
        for (j, c) in self.price_changes.iter().enumerate() {
            let at = format!("{path}.price-changes[{j}]");
            if free {
                return Err(err(at, "a `:free` model has no price to change"));
            }
            let when = time(format!("{at}.at"), &c.at, origin)?;
            let announced = time(format!("{at}.announced"), &c.announced, origin)?;
            let ahead = when.duration_since(announced);
            if ahead < notice || ahead <= jiff::SignedDuration::ZERO {
                return Err(ConfigError {
                    path: format!("{at}.announced"),
                    value: Some(c.announced.clone()),
                    message: format!(
                        "the change at {} ({when}) is announced {announced}, {:.1} days ahead; price-notice-days requires at least {} days, and a change is announced before it takes effect",
                        c.at,
                        ahead.as_secs_f64() / 86_400.0,
                        notice.as_hours() / 24
                    ),
                });
            }
            if let Some(previous) = changes.last()
                && previous.at >= when
            {
                return Err(ConfigError {
                    path: format!("{at}.at"),
                    value: Some(c.at.clone()),
                    message: format!(
                        "price changes are listed in the order they take effect, and this one ({when}) is not after the one before ({})",
                        previous.at
                    ),
                });
            }
            let prices = prices_of(&at, false, [&c.prompt, &c.completion, &c.cache_read, &c.cache_write])?;
            changes.push(PriceChange {
                at: when,
                announced,
                prices,
            });
        }
        Ok(changes)
    }

    /// The model's prices: see [`prices_of`].
    fn validate_prices(&self, path: &str, free: bool) -> Result<Prices, ConfigError> {
        prices_of(
            path,
            free,
            [&self.prompt, &self.completion, &self.cache_read, &self.cache_write],
        )
    }
}

/// The prices at `path` (`prompt`, `completion`, `cache-read`,
/// `cache-write`): none for a `:free` model, and for a priced one `prompt`
/// and `completion`, the cache prices defaulting to `prompt`.
fn prices_of(path: &str, free: bool, raw: [&Option<RawDecimal>; 4]) -> Result<Prices, ConfigError> {
    let [prompt, completion, cache_read, cache_write] = raw;
    let prompt = price(format!("{path}.prompt"), prompt)?;
    let completion = price(format!("{path}.completion"), completion)?;
    if free {
        let paid = [(&prompt, "prompt"), (&completion, "completion")]
            .into_iter()
            .find(|(p, _)| p.is_some_and(|p| p != TokenPrice::default()));
        if let Some((_, field)) = paid {
            return Err(err(format!("{path}.{field}"), "a `:free` model must not have a price"));
        }
        return Ok(Prices::default());
    }
    let prompt = prompt.ok_or_else(|| err(format!("{path}.prompt"), "a priced model needs `prompt`"))?;
    let completion =
        completion.ok_or_else(|| err(format!("{path}.completion"), "a priced model needs `completion`"))?;
    Ok(Prices {
        prompt,
        completion,
        cache_read: price(format!("{path}.cache-read"), cache_read)?.unwrap_or(prompt),
        cache_write: price(format!("{path}.cache-write"), cache_write)?.unwrap_or(prompt),
    })
}

/// How the router defends itself against slow and idle clients (see
/// `serve`): a request must arrive within two timeouts, and connections are
/// served up to a bound.
///
/// - `header_timeout` bounds the time from the start of a request's head
///   (or of the wait for the next request on a kept-alive connection) until
///   the head is whole; past it the connection is closed without an answer
///   (hyper's `header_read_timeout`). An idle keep-alive connection is
///   therefore closed after it too.
/// - `body_timeout` bounds the time from a whole head until the whole body:
///   a deadline, not an idle timeout, so a client trickling a byte at a
///   time gains nothing. Past it the router answers 408 with an
///   OpenAI-shaped error and closes the connection. It covers reading the
///   request only, never the answer: a stream may last as long as it lasts.
/// - `max_connections` bounds the connections served at once. At the bound
///   the router stops accepting; new connections wait in the listen backlog
///   (the kernel refuses them once that is full) and are accepted in order
///   as served ones close. A client that sends nothing holds a slot for at
///   most the larger timeout, so behind `n` such connections a newcomer is
///   accepted within about ⌈n / max_connections⌉ × that timeout. It should
///   stay below the process's open-file limit less the upstream connections;
///   when accepting fails for want of descriptors (EMFILE) the router waits
///   for one of its connections to close (or 50 ms) and tries again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Above the 8192 requests in flight of the largest committed capacity sweep.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10_000;
/// The range of `header-timeout-ms` and `body-timeout-ms`: 100 ms to 10 minutes.
pub const TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 100..=600_000;
/// The range of `max-connections`.
pub const MAX_CONNECTIONS_RANGE: std::ops::RangeInclusive<u32> = 1..=1_000_000;

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS as usize,
        }
    }
}

impl RawRouter {
    /// `header-timeout-ms`, `body-timeout-ms` and `max-connections`.
    fn validate_connections(&self, at: &str) -> Result<ConnectionLimits, ConfigError> {
        let timeout = |field: &str, value: Option<u64>, default: Duration| match value {
            None => Ok(default),
            Some(ms) if TIMEOUT_MS_RANGE.contains(&ms) => Ok(Duration::from_millis(ms)),
            Some(ms) => Err(err(
                format!("{at}.{field}"),
                format!(
                    "must be from {} to {} (ms), got {ms}",
                    TIMEOUT_MS_RANGE.start(),
                    TIMEOUT_MS_RANGE.end()
                ),
            )),
        };
        let max_connections = match self.max_connections {
            None => DEFAULT_MAX_CONNECTIONS,
            Some(n) if MAX_CONNECTIONS_RANGE.contains(&n) => n,
            Some(n) => {
                return Err(err(
                    format!("{at}.max-connections"),
                    format!(
                        "must be from {} to {}, got {n}",
                        MAX_CONNECTIONS_RANGE.start(),
                        MAX_CONNECTIONS_RANGE.end()
                    ),
                ));
            }
        };
        Ok(ConnectionLimits {
            header_timeout: timeout("header-timeout-ms", self.header_timeout_ms, DEFAULT_HEADER_TIMEOUT)?,
            body_timeout: timeout("body-timeout-ms", self.body_timeout_ms, DEFAULT_BODY_TIMEOUT)?,
            max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
        })
    }
}

/// A file with a `[router]` table (a scenario or a router config).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawRouterFile {
    pub router: Option<RawRouter>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::clock::parse_time;

    fn parse(text: &str) -> Result<RouterConfig, ConfigError> {
        let file: RawRouterFile = toml::from_str(text).unwrap();
        file.router.unwrap().validate("router")
    }

    const BASE: &str = r#"
[router]
[[router.providers]]
name = "p"
dialect = "openai"
base-url = "http://127.0.0.1:1"
api-key = "k"
"#;

    #[test]
    fn prices_defaults_and_routes() {
        let config = parse(&format!(
            "{BASE}[[router.models]]\nid = \"openai/gpt-4o-mini\"\nproviders = [\"p\", {{ name = \"p\", model = \"other\" }}]\nprompt = 0.15\ncompletion = \"0.60\"\n"
        ))
        .unwrap();
        let model = config.catalog.get("openai/gpt-4o-mini").unwrap();
        assert_eq!(model.prices.prompt.per_token(), Picodollars(150_000));
        assert_eq!(model.prices.cache_read, model.prices.prompt);
        assert_eq!(&*model.routes[0].upstream_model, "gpt-4o-mini");
        assert_eq!(&*model.routes[1].upstream_model, "other");
        assert_eq!(config.byok_fee_bps, 500);
    }

    #[test]
    fn the_demo_router_validates() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/demo.toml")).unwrap();
        let config = parse(&text).unwrap();
        assert_eq!(config.listen.port(), 18080);
        assert_eq!(config.keys.len(), 3);
        assert!(
            config
                .catalog
                .get("openai/gpt-3.5-turbo-0301")
                .unwrap()
                .deprecation
                .is_some()
        );
        assert!(config.catalog.get("meta/llama-3-8b:free").unwrap().free);
    }

    #[test]
    fn the_example_routers_validate_as_their_terms_describe() {
        let example = |name: &str| {
            let path = format!("{}/examples/{name}.toml", env!("CARGO_MANIFEST_DIR"));
            parse(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        let usd = |text: &str| Picodollars::from_usd_decimal(text).unwrap();
        let openrouter = example("openrouter");
        assert_eq!(
            (openrouter.purchases.min, openrouter.purchases.max),
            (usd("5"), usd("25000"))
        );
        assert_eq!(
            openrouter.credit_expiry,
            Some(jiff::SignedDuration::from_hours(365 * 24))
        );
        assert_eq!(
            (
                openrouter.free.per_day,
                openrouter.free.per_day_after_purchase,
                openrouter.free.purchase_threshold
            ),
            (50, 1000, usd("10"))
        );
        assert_eq!(openrouter.byok_fee_bps, DEFAULT_BYOK_FEE_BPS);
        assert!(openrouter.catalog.get("meta/llama-3-8b:free").unwrap().free);

        let derouter = example("derouter");
        assert_eq!(derouter.credit_expiry, None);
        assert_eq!(derouter.price_notice, jiff::SignedDuration::from_hours(7 * 24));
        let claude = derouter.catalog.get("anthropic/claude-sonnet-4").unwrap();
        assert!(claude.system_prefix.is_some());
        assert_eq!(claude.price_changes.len(), 1);
    }

    #[test]
    fn the_retry_limit_is_stated_in_attempts_or_in_retries() {
        let retry = |table: &str| parse(&format!("{BASE}[router.retry]\n{table}")).map(|c| c.retry);
        assert_eq!(
            retry("retries-per-provider = 2\n")
                .unwrap()
                .attempts_per_provider()
                .get(),
            3
        );
        assert_eq!(
            retry("retries-per-provider = 0\n")
                .unwrap()
                .attempts_per_provider()
                .get(),
            1
        );
        assert_eq!(
            retry("attempts-per-provider = 2\n")
                .unwrap()
                .attempts_per_provider()
                .get(),
            2
        );
        let both = retry("attempts-per-provider = 3\nretries-per-provider = 2\n").unwrap_err();
        assert_eq!(both.path, "router.retry.retries-per-provider");
        assert!(both.message.contains("not both"), "{both}");
        let huge = retry(&format!("retries-per-provider = {}\n", u32::MAX)).unwrap_err();
        assert_eq!(huge.path, "router.retry.retries-per-provider");
    }

    #[test]
    fn the_backoff_factor_defaults_to_two_and_must_exceed_one() {
        let retry = |table: &str| parse(&format!("{BASE}[router.retry]\n{table}")).map(|c| c.retry);
        assert_eq!(retry("").unwrap().factor(), 2.0);
        let policy = retry("base-ms = 100\ncap-ms = 1000\nfactor = 3\n").unwrap();
        let ceilings: Vec<u128> = (1..=4).map(|k| policy.backoff_ceiling(k).as_millis()).collect();
        assert_eq!(ceilings, [100, 300, 900, 1000]);
        for bad in ["1", "0.5", "-2", "nan", "inf"] {
            let e = retry(&format!("factor = {bad}\n")).unwrap_err();
            assert_eq!(e.path, "router.retry.factor", "{bad}: {e}");
        }
    }

    /// `keep-alive-ms = 0` validated, then every stream answered 200 with
    /// an empty body (a zero-period interval panicked).
    #[test]
    fn keep_alive_out_of_range_is_refused_with_its_value() {
        let with = |line: &str| parse(&BASE.replacen("[router]\n", &format!("[router]\n{line}\n"), 1));
        for (line, shown) in [("keep-alive-ms = 0", "0"), ("keep-alive-ms = 3600001", "3600001")] {
            let e = with(line).unwrap_err();
            assert_eq!(e.path, "router.keep-alive-ms", "{e}");
            assert_eq!(
                e.to_string(),
                format!("router.keep-alive-ms = {shown}: must be between 1 and 3600000 milliseconds")
            );
        }
        assert_eq!(with("keep-alive-ms = 1").unwrap().keep_alive, Duration::from_millis(1));
    }

    /// Every duration, rate and count of the table has a range; the error
    /// names the field and the value.
    #[test]
    fn durations_rates_and_counts_out_of_range_are_refused() {
        let with = |table: &str| parse(&BASE.replacen("[router]\n", &format!("[router]\n{table}\n"), 1));
        let cases = [
            ("clock = { speed = 1e-300 }", "router.clock.speed", "1e-300"),
            ("clock = { speed = inf }", "router.clock.speed", "inf"),
            ("clock = { speed = nan }", "router.clock.speed", "NaN"),
            (
                "max-body-bytes = 9223372036854775807",
                "router.max-body-bytes",
                "9223372036854775807",
            ),
            (
                "free = { per-minute = 4000000000 }",
                "router.free.per-minute",
                "4000000000",
            ),
            ("free = { per-day = 4000000000 }", "router.free.per-day", "4000000000"),
            ("retry = { base-ms = 0 }", "router.retry.base-ms", "0"),
            (
                "retry = { cap-ms = 9223372036854775807 }",
                "router.retry.cap-ms",
                "9223372036854775807",
            ),
            ("retry = { factor = 1e300 }", "router.retry.factor", "1e300"),
            ("retry = { deadline-ms = 0 }", "router.retry.deadline-ms", "0"),
            (
                "retry = { first-byte-timeout-ms = 86400001 }",
                "router.retry.first-byte-timeout-ms",
                "86400001",
            ),
            ("retry = { budget-ratio = inf }", "router.retry.budget-ratio", "inf"),
            ("retry = { budget-window-ms = 1 }", "router.retry.budget-window-ms", "1"),
            (
                "retry = { budget-min-retries = 4000000000 }",
                "router.retry.budget-min-retries",
                "4000000000",
            ),
            (
                "retry = { attempts-per-provider = 4000000000 }",
                "router.retry.attempts-per-provider",
                "4000000000",
            ),
            (
                "retry = { cooldown-after = 4000000000 }",
                "router.retry.cooldown-after",
                "4000000000",
            ),
            (
                "retry = { cooldown-ms = 86400001 }",
                "router.retry.cooldown-ms",
                "86400001",
            ),
        ];
        for (table, path, shown) in cases {
            let e = with(table).unwrap_err();
            assert_eq!(e.path, path, "{table}: {e}");
            assert!(
                e.to_string().starts_with(&format!("{path} = {shown}: must be")),
                "{table}: {e}"
            );
        }
        let keys = [
            ("rpm = 4000000000", "router.keys[0].rpm"),
            ("concurrency = 4000000000", "router.keys[0].concurrency"),
        ];
        for (field, path) in keys {
            let e = parse(&format!("{BASE}[[router.keys]]\nkey = \"k\"\n{field}\n")).unwrap_err();
            assert_eq!(e.path, path, "{e}");
        }
        let models = [
            ("default-max-tokens = 0", "router.models[0].default-max-tokens"),
            ("context-length = 4000000000", "router.models[0].context-length"),
        ];
        for (field, path) in models {
            let e = parse(&format!(
                "{BASE}[[router.models]]\nid = \"m\"\nproviders = [\"p\"]\nprompt = 1\ncompletion = 1\n{field}\n"
            ))
            .unwrap_err();
            assert_eq!(e.path, path, "{e}");
        }
    }

    /// Lifecycle dates may count from the clock's start: the one given
    /// (itself possibly counted from now), or now.
    #[test]
    fn lifecycle_dates_count_from_the_clocks_start() {
        let models = "[[router.models]]\nid = \"m\"\nproviders = [\"p\"]\nprompt = 1\ncompletion = 1\n\
                      deprecation = { announced = \"-30d\", removed = \"+180d\", replacement = \"n\" }\n\
                      [[router.models]]\nid = \"n\"\nproviders = [\"p\"]\nprompt = 1\ncompletion = 1\n";
        let with_clock = |clock: &str| {
            parse(&format!(
                "{}{models}",
                BASE.replacen("[router]\n", &format!("[router]\n{clock}\n"), 1)
            ))
        };
        let dates = |config: &RouterConfig| {
            let d = config.catalog.get("m").unwrap().deprecation.clone().unwrap();
            (d.announced, d.removed)
        };
        let pinned = with_clock("clock = { start = \"2030-05-01\" }").unwrap();
        assert_eq!(
            dates(&pinned),
            (parse_time("2030-04-01").unwrap(), parse_time("2030-10-28").unwrap())
        );
        let before = Timestamp::now();
        for clock in ["", "clock = { start = \"+0s\", speed = 2 }"] {
            let config = with_clock(clock).unwrap();
            let (announced, _) = dates(&config);
            let from_now = announced.as_second() + 30 * 86_400 - before.as_second();
            assert!(
                (0..=5).contains(&from_now),
                "{clock}: announced {announced}, {from_now} s off"
            );
        }
        let ahead = with_clock("clock = { start = \"+365d\" }").unwrap();
        let start = ahead.clock.start.unwrap();
        assert!(start.as_second() - before.as_second() >= 365 * 86_400);
        assert_eq!(dates(&ahead).0.as_second(), start.as_second() - 30 * 86_400);
        let e = with_clock("clock = { start = \"+3 days\" }").unwrap_err();
        assert_eq!(e.path, "router.clock.start", "{e}");
        let e = parse(&format!("{BASE}{}", models.replace("-30d", "in a month"))).unwrap_err();
        assert_eq!(e.path, "router.models[0].deprecation.announced", "{e}");
        assert!(e.message.contains("+30d"), "{e}");
        let e = parse(&format!("{BASE}{}", models.replace("+180d", "-20d"))).unwrap_err();
        assert!(e.message.contains("at least 14 days"), "{e}");
    }

    #[test]
    fn connection_limits_default_and_are_checked_against_their_ranges() {
        let limits = |extra: &str| parse(&format!("[router]\n{extra}")).map(|c| c.connections);
        assert_eq!(limits("").unwrap(), ConnectionLimits::default());
        assert_eq!(
            limits("header-timeout-ms = 100\nbody-timeout-ms = 600000\nmax-connections = 1\n").unwrap(),
            ConnectionLimits {
                header_timeout: Duration::from_millis(100),
                body_timeout: Duration::from_secs(600),
                max_connections: 1,
            }
        );
        for (extra, path, value) in [
            ("header-timeout-ms = 99", "router.header-timeout-ms", "99"),
            ("header-timeout-ms = 600001", "router.header-timeout-ms", "600001"),
            ("body-timeout-ms = 0", "router.body-timeout-ms", "0"),
            ("body-timeout-ms = 99", "router.body-timeout-ms", "99"),
            ("max-connections = 0", "router.max-connections", "0"),
            ("max-connections = 1000001", "router.max-connections", "1000001"),
        ] {
            let e = limits(&format!("{extra}\n")).unwrap_err();
            assert_eq!(e.path, path, "{extra}: {e}");
            assert!(e.message.ends_with(&format!("got {value}")), "{extra}: {e}");
        }
    }

    #[test]
    fn purchase_bounds_default_to_openrouters_and_are_checked() {
        let config = parse(BASE).unwrap();
        assert_eq!(config.purchases, PurchaseBounds::default());
        let usd = |text: &str| Picodollars::from_usd_decimal(text).unwrap();
        assert_eq!((config.purchases.min, config.purchases.max), (usd("5"), usd("25000")));
        let config =
            parse(&BASE.replace("[router]\n", "[router]\npurchase-min = \"0.5\"\npurchase-max = 100\n")).unwrap();
        assert_eq!((config.purchases.min, config.purchases.max), (usd("0.5"), usd("100")));
        assert_eq!(config.purchases.check(usd("0.5")), Ok(usd("0.5")));
        assert_eq!(config.purchases.check(usd("100")), Ok(usd("100")));
        let below = config.purchases.check(usd("0.49")).unwrap_err();
        assert_eq!(
            below.to_string(),
            "a purchase of $0.49 is outside the bounds: it must be from $0.5 to $100"
        );
        assert!(config.purchases.check(usd("100.000001")).is_err());

        let refused = |fields: &str| parse(&BASE.replace("[router]\n", &format!("[router]\n{fields}\n"))).unwrap_err();
        let e = refused("purchase-min = \"0\"");
        assert_eq!(e.to_string(), "router.purchase-min = $0: must be above zero");
        let e = refused("purchase-max = \"-3\"");
        assert_eq!(e.path, "router.purchase-max");
        let e = refused("purchase-min = 10\npurchase-max = 6");
        assert_eq!(
            e.to_string(),
            "router.purchase-max = $6: purchase-min ($10) must be at most purchase-max ($6)"
        );
        // Above the default maximum, the minimum alone is named.
        let e = refused("purchase-min = 30000");
        assert_eq!(
            e.to_string(),
            "router.purchase-min = $30000: purchase-min ($30000) must be at most purchase-max ($25000)"
        );
    }

    #[test]
    fn price_changes_are_scheduled_announced_with_notice_and_in_order() {
        let model = |notice: &str, changes: &str| {
            parse(&BASE.replace(
                "[router]\n",
                &format!(
                    "[router]\nclock = {{ start = \"2027-01-01\" }}\n{notice}\n[[router.models]]\nid = \"m\"\nproviders = [\"p\"]\nprompt = 1\ncompletion = 2\n{changes}\n"
                ),
            ))
        };
        let change = |at: &str, announced: &str, prompt: &str| {
            format!(
                "[[router.models.price-changes]]\nat = \"{at}\"\nannounced = \"{announced}\"\nprompt = \"{prompt}\"\ncompletion = 4\n"
            )
        };
        let config = model(
            "price-notice-days = 7",
            &format!(
                "{}{}",
                change("2027-01-10", "2027-01-03", "1.5"),
                change("+30d", "+20d", "3")
            ),
        )
        .unwrap();
        let m = config.catalog.get("m").unwrap();
        let t = |text: &str| parse_time(text).unwrap();
        let usd_per_m = |prices: Prices| (prices.prompt.usd_per_million(), prices.completion.usd_per_million());
        assert_eq!(
            usd_per_m(m.prices_at(t("2027-01-09T23:59:59Z"))),
            ("1".into(), "2".into())
        );
        assert_eq!(usd_per_m(m.prices_at(t("2027-01-10"))), ("1.5".into(), "4".into()));
        assert_eq!(usd_per_m(m.prices_at(t("2027-01-31"))), ("3".into(), "4".into()));
        // The cache prices of a change default to its prompt price.
        assert_eq!(m.prices_at(t("2027-01-31")).cache_read.usd_per_million(), "3");
        // Shown from the announcement until it takes effect.
        let upcoming = |at: &str| m.upcoming_changes(t(at)).map(|c| c.at.to_string()).collect::<Vec<_>>();
        assert_eq!(upcoming("2027-01-02"), Vec::<String>::new());
        assert_eq!(upcoming("2027-01-03"), ["2027-01-10T00:00:00Z"]);
        assert_eq!(upcoming("2027-01-22"), ["2027-01-31T00:00:00Z"]);
        assert_eq!(upcoming("2027-01-31"), Vec::<String>::new());

        // Six days' notice where seven are required: refused, naming both dates.
        let e = model("price-notice-days = 7", &change("2027-01-10", "2027-01-04", "2")).unwrap_err();
        assert_eq!(e.path, "router.models[0].price-changes[0].announced");
        assert_eq!(e.value.as_deref(), Some("2027-01-04"));
        assert!(
            e.message.contains("2027-01-10")
                && e.message.contains("6.0 days ahead")
                && e.message.contains("at least 7 days"),
            "{e}"
        );
        // Without a notice, a change must still be announced before it applies.
        assert!(model("", &change("2027-01-10", "2027-01-09", "2")).is_ok());
        let e = model("", &change("2027-01-10", "2027-01-10", "2")).unwrap_err();
        assert_eq!(e.path, "router.models[0].price-changes[0].announced");
        let e = model(
            "",
            &format!(
                "{}{}",
                change("2027-02-01", "2027-01-01", "2"),
                change("2027-01-15", "2027-01-01", "3")
            ),
        )
        .unwrap_err();
        assert_eq!(e.path, "router.models[0].price-changes[1].at");
        let e = model("", &change("2027-01-10", "2027-01-01", "x")).unwrap_err();
        assert_eq!(e.path, "router.models[0].price-changes[0].prompt");
        let e = model("price-notice-days = 4000", "").unwrap_err();
        assert_eq!(e.path, "router.price-notice-days");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                "[[router.models]]\nid = \"m\"\nproviders = [\"nope\"]\nprompt = 1\ncompletion = 1\n",
                "router.models[0].providers[0]",
            ),
            (
                "[[router.models]]\nid = \"m\"\nproviders = [\"p\"]\ncompletion = 1\n",
                "router.models[0].prompt",
            ),
            (
                "[[router.models]]\nid = \"m:free\"\nproviders = [\"p\"]\nprompt = 1\n",
                "router.models[0].prompt",
            ),
            (
                "[[router.models]]\nid = \"m\"\nproviders = [\"p\"]\nprompt = \"0.0000001\"\ncompletion = 1\n",
                "router.models[0].prompt",
            ),
            (
                "[[router.models]]\nid = \"m\"\nproviders = [\"p\"]\nprompt = 1\ncompletion = 1\ndeprecation = { announced = \"2026-01-01\", removed = \"2026-01-10\", replacement = \"n\" }\n[[router.models]]\nid = \"n\"\nproviders = [\"p\"]\nprompt = 1\ncompletion = 1\n",
                "router.models[0].deprecation.removed",
            ),
            (
                "[[router.models]]\nid = \"m\"\nproviders = [\"p\"]\nprompt = 1\ncompletion = 1\ndeprecation = { announced = \"2026-01-01\", removed = \"2026-03-01\", replacement = \"x\" }\n",
                "router.models[0].deprecation.replacement",
            ),
            (
                "[[router.keys]]\nkey = \"k\"\nbyok = { provider = \"q\", api-key = \"x\" }\n",
                "router.keys[0].byok.provider",
            ),
            (
                "[[router.keys]]\nkey = \"k\"\ncredits = \"ten\"\n",
                "router.keys[0].credits",
            ),
        ];
        for (extra, path) in cases {
            let e = parse(&format!("{BASE}{extra}")).unwrap_err();
            assert_eq!(e.path, path, "{extra}: {e}");
        }
        let e = parse(&format!(
            "{BASE}[[router.models]]\nid = \"m\"\nproviders = [\"p\"]\nprompt = 1\ncompletion = 1\ndeprecation = {{ announced = \"2026-01-01\", removed = \"2026-01-10\", replacement = \"m\" }}\n"
        ))
        .unwrap_err();
        assert!(e.message.contains("14 days"), "{e}");
    }
}
