//! Money: integer picodollars (1e-12 USD), exact decimal price parsing, and
//! the one cost formula. All money arithmetic in the router lives here.
//!
//! A price is written as decimal USD per million tokens with at most six
//! fractional digits, so it is a whole number of picodollars per token:
//! `$0.15/M = 0.15e-6 $/token = 150,000 p$/token`.

use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::str::FromStr;

/// Picodollars per USD.
pub const PICOS_PER_USD: i64 = 1_000_000_000_000;

/// An amount of money in picodollars. Signed so that a balance delta can be
/// negative; a charge or a price is never negative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Picodollars(pub i64);

impl Picodollars {
    pub const ZERO: Picodollars = Picodollars(0);

    pub fn from_usd_decimal(text: &str) -> Result<Self, MoneyError> {
        parse_decimal(text, 12).map(Picodollars)
    }

    /// [`Picodollars::from_usd_decimal`], also reading a leading `-` (a
    /// balance that went below zero, as a router reports it).
    pub fn from_signed_usd_decimal(text: &str) -> Result<Self, MoneyError> {
        let text = text.trim();
        match text.strip_prefix('-') {
            Some(magnitude) => Self::from_usd_decimal(magnitude).map(|p| Picodollars(-p.0)),
            None => Self::from_usd_decimal(text),
        }
    }

    /// `self × n`, or an error on overflow.
    pub fn times(self, n: u64) -> Result<Picodollars, MoneyError> {
        i64::try_from(n)
            .ok()
            .and_then(|n| self.0.checked_mul(n))
            .map(Picodollars)
            .ok_or(MoneyError::Overflow)
    }

    pub fn checked_add(self, other: Picodollars) -> Result<Picodollars, MoneyError> {
        self.0.checked_add(other.0).map(Picodollars).ok_or(MoneyError::Overflow)
    }

    /// `floor(self × bps / 10,000)` for a non-negative amount.
    pub fn basis_points(self, bps: u32) -> Result<Picodollars, MoneyError> {
        let product = i128::from(self.0) * i128::from(bps) / 10_000;
        i64::try_from(product)
            .map(Picodollars)
            .map_err(|_| MoneyError::Overflow)
    }

    /// The amount in USD as an exact decimal: up to 12 fractional digits,
    /// trailing zeros removed (`"0.0000015"`, `"10"`, `"-0.25"`).
    pub fn to_usd_string(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / PICOS_PER_USD as u64;
        let frac = abs % PICOS_PER_USD as u64;
        if frac == 0 {
            return format!("{sign}{whole}");
        }
        let digits = format!("{frac:012}");
        format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
    }
}

impl fmt::Display for Picodollars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", self.to_usd_string())
    }
}

impl Add for Picodollars {
    type Output = Picodollars;
    fn add(self, other: Picodollars) -> Picodollars {
        Picodollars(self.0.saturating_add(other.0))
    }
}

impl AddAssign for Picodollars {
    fn add_assign(&mut self, other: Picodollars) {
        *self = *self + other;
    }
}

impl Sub for Picodollars {
    type Output = Picodollars;
    fn sub(self, other: Picodollars) -> Picodollars {
        Picodollars(self.0.saturating_sub(other.0))
    }
}

impl SubAssign for Picodollars {
    fn sub_assign(&mut self, other: Picodollars) {
        *self = *self - other;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{text}` is not a decimal number like 0.15")]
    NotDecimal { text: String },
    #[error("`{text}` has more than {max} fractional digits")]
    TooPrecise { text: String, max: u32 },
    #[error("`{text}` must not be negative")]
    Negative { text: String },
    #[error("amount too large")]
    Overflow,
}

/// Parses a non-negative decimal into an integer scaled by 10^scale, exactly.
fn parse_decimal(text: &str, scale: u32) -> Result<i64, MoneyError> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(MoneyError::Negative { text: text.to_string() });
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits_ok(whole) || !digits_ok(frac) {
        return Err(MoneyError::NotDecimal { text: text.to_string() });
    }
    if frac.len() > scale as usize {
        return Err(MoneyError::TooPrecise {
            text: text.to_string(),
            max: scale,
        });
    }
    let mut value: i64 = 0;
    for b in whole
        .bytes()
        .chain(frac.bytes())
        .chain(std::iter::repeat_n(b'0', scale as usize - frac.len()))
    {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(MoneyError::Overflow)?;
    }
    Ok(value)
}

/// A price per token, from decimal USD per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenPrice(Picodollars);

impl TokenPrice {
    /// At most six fractional digits of USD per million tokens.
    pub const MAX_FRACTION_DIGITS: u32 = 6;

    pub fn per_token(self) -> Picodollars {
        self.0
    }

    pub fn from_picos_per_token(picos: i64) -> Self {
        TokenPrice(Picodollars(picos))
    }

    /// USD per million tokens, as written (`"0.15"`).
    pub fn usd_per_million(self) -> String {
        // p$/token ÷ 1e6 = USD/M with six fractional digits.
        let p = self.0.0;
        let whole = p / 1_000_000;
        let frac = p % 1_000_000;
        if frac == 0 {
            format!("{whole}")
        } else {
            format!("{whole}.{}", format!("{frac:06}").trim_end_matches('0'))
        }
    }
}

impl FromStr for TokenPrice {
    type Err = MoneyError;

    /// Parses decimal USD per million tokens (`"0.15"` → 150,000 p$/token).
    fn from_str(text: &str) -> Result<Self, MoneyError> {
        parse_decimal(text, Self::MAX_FRACTION_DIGITS).map(|v| TokenPrice(Picodollars(v)))
    }
}

/// What a model costs per token, by kind of token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prices {
    pub prompt: TokenPrice,
    pub completion: TokenPrice,
    pub cache_read: TokenPrice,
    pub cache_write: TokenPrice,
}

/// Usage normalised across dialects: the four kinds are disjoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BilledUsage {
    /// Prompt tokens neither read from nor written to the cache.
    pub uncached_prompt: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// Completion tokens, reasoning included.
    pub completion: u64,
}

impl BilledUsage {
    /// From OpenAI's counts: `prompt_tokens` includes the cached tokens.
    pub fn from_openai(prompt_tokens: u64, cached_tokens: u64, completion_tokens: u64) -> Self {
        BilledUsage {
            uncached_prompt: prompt_tokens.saturating_sub(cached_tokens),
            cache_read: cached_tokens.min(prompt_tokens),
            cache_write: 0,
            completion: completion_tokens,
        }
    }

    /// From Anthropic's counts: `input_tokens` excludes both cache counts.
    pub fn from_anthropic(input_tokens: u64, cache_read: u64, cache_write: u64, output_tokens: u64) -> Self {
        BilledUsage {
            uncached_prompt: input_tokens,
            cache_read,
            cache_write,
            completion: output_tokens,
        }
    }

    /// All prompt tokens, cached or not.
    pub fn prompt_total(&self) -> u64 {
        self.uncached_prompt + self.cache_read + self.cache_write
    }
}

impl Prices {
    /// The cost of an attempt: each kind of token at its price. Zero when no
    /// completion token was produced (zero-completion insurance) — the caller
    /// also passes `failed` for a `finish_reason: "error"` ending.
    pub fn cost(&self, usage: &BilledUsage, failed: bool) -> Result<Picodollars, MoneyError> {
        if failed || usage.completion == 0 {
            return Ok(Picodollars::ZERO);
        }
        self.prompt
            .per_token()
            .times(usage.uncached_prompt)?
            .checked_add(self.cache_read.per_token().times(usage.cache_read)?)?
            .checked_add(self.cache_write.per_token().times(usage.cache_write)?)?
            .checked_add(self.completion.per_token().times(usage.completion)?)
    }

    /// The most a request can cost: every prompt token at the dearest prompt
    /// price, and `max_completion` completion tokens.
    pub fn worst_case(&self, prompt_tokens: u64, max_completion: u64) -> Result<Picodollars, MoneyError> {
        let dearest = self.prompt.max(self.cache_read).max(self.cache_write);
        dearest
            .per_token()
            .times(prompt_tokens)?
            .checked_add(self.completion.per_token().times(max_completion)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn price(s: &str) -> TokenPrice {
        s.parse().unwrap()
    }

    #[test]
    fn prices_parse_exactly() {
        assert_eq!(price("0.15").per_token(), Picodollars(150_000));
        assert_eq!(price("0.60").per_token(), Picodollars(600_000));
        assert_eq!(price("3").per_token(), Picodollars(3_000_000));
        assert_eq!(price("0.000001").per_token(), Picodollars(1));
        assert_eq!(price("15.5").usd_per_million(), "15.5");
        assert!(matches!(
            "0.0000001".parse::<TokenPrice>(),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(matches!("-1".parse::<TokenPrice>(), Err(MoneyError::Negative { .. })));
        assert!(matches!(
            "1e-3".parse::<TokenPrice>(),
            Err(MoneyError::NotDecimal { .. })
        ));
        assert!(matches!(".".parse::<TokenPrice>(), Err(MoneyError::NotDecimal { .. })));
    }

    #[test]
    fn a_balance_may_be_read_negative() {
        assert_eq!(
            Picodollars::from_signed_usd_decimal("-0.25"),
            Ok(Picodollars(-250_000_000_000))
        );
        assert_eq!(
            Picodollars::from_signed_usd_decimal(" 1.5 "),
            Ok(Picodollars(1_500_000_000_000))
        );
        assert!(matches!(
            Picodollars::from_usd_decimal("-0.25"),
            Err(MoneyError::Negative { .. })
        ));
        assert!(Picodollars::from_signed_usd_decimal("--1").is_err());
    }

    #[test]
    fn dialects_normalise_to_the_same_cost() {
        let prices = Prices {
            prompt: price("3"),
            completion: price("15"),
            cache_read: price("0.3"),
            cache_write: price("3.75"),
        };
        // 100 prompt tokens of which 60 cached, 10 completion.
        let openai = BilledUsage::from_openai(100, 60, 10);
        let anthropic = BilledUsage::from_anthropic(40, 60, 0, 10);
        assert_eq!(openai, anthropic);
        let cost = prices.cost(&openai, false).unwrap();
        assert_eq!(cost, Picodollars(40 * 3_000_000 + 60 * 300_000 + 10 * 15_000_000));
        assert_eq!(cost.to_usd_string(), "0.000288");
    }

    #[test]
    fn zero_completion_and_errors_are_free() {
        let prices = Prices {
            prompt: price("1"),
            completion: price("1"),
            ..Prices::default()
        };
        assert_eq!(
            prices.cost(&BilledUsage::from_openai(100, 0, 0), false).unwrap(),
            Picodollars::ZERO
        );
        assert_eq!(
            prices.cost(&BilledUsage::from_openai(100, 0, 5), true).unwrap(),
            Picodollars::ZERO
        );
    }

    #[test]
    fn usd_strings_are_exact() {
        assert_eq!(Picodollars(1).to_usd_string(), "0.000000000001");
        assert_eq!(Picodollars(10 * PICOS_PER_USD).to_usd_string(), "10");
        assert_eq!(Picodollars(-250_000_000_000).to_usd_string(), "-0.25");
        assert_eq!(
            Picodollars::from_usd_decimal("10.5").unwrap(),
            Picodollars(10_500_000_000_000)
        );
        assert_eq!(Picodollars(1_000).basis_points(500).unwrap(), Picodollars(50));
    }

    proptest! {
        #[test]
        fn usd_string_round_trips(p in 0i64..i64::MAX / 2) {
            let back = Picodollars::from_usd_decimal(&Picodollars(p).to_usd_string()).unwrap();
            prop_assert_eq!(back, Picodollars(p));
        }

        #[test]
        fn price_text_round_trips(micro in 0i64..1_000_000_000_000) {
            let p = TokenPrice::from_picos_per_token(micro);
            prop_assert_eq!(p.usd_per_million().parse::<TokenPrice>().unwrap(), p);
        }
    }
}
