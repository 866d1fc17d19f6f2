//! The router's JSON answers that carry money: USD amounts are written as
//! exact decimal JSON numbers (never through `f64`), with OpenRouter's field
//! names for `GET /key`, `GET /generation` and `GET /models`.

use serde::ser::Error as _;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use super::catalog::Model;
use super::ledger::{Balance, GenerationRecord};
use super::pricing::{Picodollars, Prices};

/// USD as an exact JSON number (`0.000288`), from picodollars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usd(pub Picodollars);

impl Serialize for Usd {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.0.to_usd_string()).map_err(S::Error::custom)?;
        raw.serialize(serializer)
    }
}

/// `GET /key` → `{"data": KeyInfo}`.
#[derive(Debug, Serialize)]
pub struct KeyInfo<'a> {
    pub label: &'a str,
    /// Credits ever added to the key, in USD.
    pub limit: Usd,
    /// Settled spend, in USD.
    pub usage: Usd,
    /// What can still be spent: credits − spent − reserved − expired.
    pub limit_remaining: Usd,
    /// Held by requests in flight.
    pub reserved: Usd,
    /// What expired purchases had left unspent.
    pub expired: Usd,
    pub is_free_tier: bool,
    pub is_byok: bool,
    pub rate_limit: Option<RateLimitInfo>,
    /// The purchases the credits are, oldest first (charges draw from the
    /// oldest not yet expired).
    pub purchases: Vec<PurchaseInfo>,
}

/// One purchase in [`KeyInfo`].
#[derive(Debug, Serialize)]
pub struct PurchaseInfo {
    pub amount: Usd,
    /// What is left of it to spend; nothing can be spent of it once expired.
    pub remaining: Usd,
    pub purchased_at: String,
    /// `null`: never.
    pub expires_at: Option<String>,
    pub expired: bool,
}

fn calendar(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[derive(Debug, Serialize)]
pub struct RateLimitInfo {
    pub requests: u32,
    pub interval: &'static str,
}

impl<'a> KeyInfo<'a> {
    /// The key's information at `now_us` (the router's clock).
    pub fn new(balance: &'a Balance, is_byok: bool, rpm: Option<u32>, now_us: i64) -> Self {
        let mut purchases: Vec<_> = balance.purchases.iter().collect();
        purchases.sort_by_key(|p| p.at_us);
        KeyInfo {
            label: &balance.label,
            limit: Usd(balance.credits),
            usage: Usd(balance.spent),
            limit_remaining: Usd(balance.available),
            reserved: Usd(balance.reserved),
            expired: Usd(balance.expired),
            purchases: purchases
                .into_iter()
                .map(|p| PurchaseInfo {
                    amount: Usd(p.amount),
                    remaining: Usd(p.remaining()),
                    purchased_at: calendar(p.at_us),
                    expires_at: p.expires_us.map(calendar),
                    expired: p.expired(now_us),
                })
                .collect(),
            is_free_tier: balance.credits == Picodollars::ZERO,
            is_byok,
            rate_limit: rpm.map(|requests| RateLimitInfo {
                requests,
                interval: "1m",
            }),
        }
    }
}

/// `GET /generation?id=` → `{"data": GenerationInfo}`.
#[derive(Debug, Serialize)]
pub struct GenerationInfo<'a> {
    pub id: &'a str,
    pub model: &'a str,
    pub requested_model: &'a str,
    pub provider_name: &'a str,
    pub total_cost: Usd,
    pub upstream_inference_cost: Usd,
    pub is_byok: bool,
    pub tokens_prompt: u64,
    pub tokens_completion: u64,
    pub native_tokens_cached: u64,
    pub native_tokens_cache_write: u64,
    pub latency: u64,
    pub generation_time: u64,
    pub streamed: bool,
    pub finish_reason: Option<&'a str>,
    pub created_at: String,
}

impl<'a> From<&'a GenerationRecord> for GenerationInfo<'a> {
    fn from(r: &'a GenerationRecord) -> Self {
        let created_at = jiff::Timestamp::from_microsecond(r.created_at_us)
            .map(|t| t.to_string())
            .unwrap_or_default();
        GenerationInfo {
            id: &r.id,
            model: &r.model,
            requested_model: &r.requested_model,
            provider_name: &r.provider_name,
            total_cost: Usd(r.total_cost),
            upstream_inference_cost: Usd(r.upstream_cost),
            is_byok: r.is_byok,
            tokens_prompt: r.tokens_prompt,
            tokens_completion: r.tokens_completion,
            native_tokens_cached: r.cache_read_tokens,
            native_tokens_cache_write: r.cache_write_tokens,
            latency: r.latency_ms,
            generation_time: r.generation_time_ms,
            streamed: r.streamed,
            finish_reason: r.finish_reason.as_deref(),
            created_at,
        }
    }
}

/// One entry of `GET /models`.
#[derive(Debug, Serialize)]
pub struct ModelInfo<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub context_length: u32,
    pub pricing: ModelPricing,
    /// Set while a deprecation is announced: when it ends and what replaces it.
    pub deprecation: Option<DeprecationInfo<'a>>,
    /// Price changes announced and not yet in force, in the order they take
    /// effect; `pricing` is the price now.
    pub price_changes: Vec<PriceChangeInfo>,
}

#[derive(Debug, Serialize)]
pub struct PriceChangeInfo {
    pub at: String,
    pub announced: String,
    pub pricing: ModelPricing,
}

impl ModelPricing {
    fn of(prices: &Prices) -> Self {
        ModelPricing {
            prompt: Usd(prices.prompt.per_token()),
            completion: Usd(prices.completion.per_token()),
            input_cache_read: Usd(prices.cache_read.per_token()),
            input_cache_write: Usd(prices.cache_write.per_token()),
        }
    }
}

/// Prices as OpenRouter lists them: USD per token, as exact decimals.
#[derive(Debug, Serialize)]
pub struct ModelPricing {
    pub prompt: Usd,
    pub completion: Usd,
    pub input_cache_read: Usd,
    pub input_cache_write: Usd,
}

#[derive(Debug, Serialize)]
pub struct DeprecationInfo<'a> {
    pub announced: String,
    pub removed: String,
    pub replacement: &'a str,
}

impl<'a> ModelInfo<'a> {
    /// The model as listed at calendar time `now`.
    pub fn at(m: &'a Model, now: jiff::Timestamp) -> Self {
        ModelInfo {
            id: &m.id,
            name: &m.id,
            context_length: m.context_length,
            pricing: ModelPricing::of(&m.prices_at(now)),
            price_changes: m
                .upcoming_changes(now)
                .map(|c| PriceChangeInfo {
                    at: c.at.to_string(),
                    announced: c.announced.to_string(),
                    pricing: ModelPricing::of(&c.prices),
                })
                .collect(),
            deprecation: m.deprecation.as_ref().map(|d| DeprecationInfo {
                announced: d.announced.to_string(),
                removed: d.removed.to_string(),
                replacement: &d.replacement,
            }),
        }
    }
}

/// `{"data": value}` as JSON bytes.
pub fn data<T: Serialize>(value: &T) -> Vec<u8> {
    #[derive(Serialize)]
    struct Data<'a, T> {
        data: &'a T,
    }
    serde_json::to_vec(&Data { data: value }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usd_is_an_exact_json_number() {
        let json = serde_json::to_string(&Usd(Picodollars(288_000_000))).unwrap();
        assert_eq!(json, "0.000288");
        let json = serde_json::to_string(&Usd(Picodollars(1))).unwrap();
        assert_eq!(json, "0.000000000001");
    }
}
