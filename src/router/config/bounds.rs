//! The range of every duration, rate and count of the `[router]` table,
//! checked when it is validated, so that whatever validates runs (a zero
//! keep-alive period or a clock too slow to wait on is refused, naming the
//! field and the value, instead of panicking once the router serves). The
//! table of ranges is in the module documentation of `config`.

pub use mock_providers::bounds::{Count, OutOfRange, Range};

/// Keep-alive comments while a stream waits for its first token.
pub const KEEP_ALIVE_MS: Count = Count::new(1, 3_600_000, "milliseconds");
/// The largest request body: 1 KiB to 1 GiB.
pub const MAX_BODY_BYTES: Count = Count::new(1024, 1 << 30, "bytes");
/// The BYOK fee: up to the whole normal cost.
pub const BYOK_FEE_BPS: Count = Count::new(0, 10_000, "basis points");
/// How much faster than real time the calendar runs.
pub const CLOCK_SPEED: Range = Range::new(0.001, 10_000_000.0, "times real time");
/// A key's requests a minute (the `:free` models' too): up to 10 million a second.
pub const PER_MINUTE: Count = Count::new(1, 600_000_000, "per minute");
/// The `:free` models' requests a day.
/// A purchase of credits lasts at most a hundred years.
pub const CREDIT_EXPIRY_DAYS: Count = Count::new(1, 36_525, "days");
/// Notice of a price change: up to ten years.
pub const PRICE_NOTICE_DAYS: Count = Count::new(0, 3_650, "days");
pub const PER_DAY: Count = Count::new(0, 1_000_000_000, "per day");
/// A key's requests in flight per model.
pub const CONCURRENCY: Count = Count::new(1, 1_000_000, "requests in flight");
/// A model's default and largest token counts.
pub const MAX_TOKENS: Count = Count::new(1, 1_000_000, "tokens");
pub const CONTEXT_LENGTH: Count = Count::new(1, 100_000_000, "tokens");
/// The first retry's backoff ceiling, and the largest.
pub const BACKOFF_MS: Count = Count::new(1, 3_600_000, "milliseconds");
/// How much the backoff ceiling grows from one retry to the next.
pub const BACKOFF_FACTOR: Range = Range::above(1.0, 1000.0, "");
/// Attempts on one provider before falling back.
pub const ATTEMPTS: Count = Count::new(1, 1000, "attempts");
/// The same, counted in retries.
pub const RETRIES: Count = Count::new(0, 999, "retries");
/// The whole request's deadline: up to a day.
pub const DEADLINE_MS: Count = Count::new(1, 86_400_000, "milliseconds");
/// Waiting for an upstream's first byte: up to an hour.
pub const FIRST_BYTE_TIMEOUT_MS: Count = Count::new(1, 3_600_000, "milliseconds");
/// Retries per request the budget allows.
pub const BUDGET_RATIO: Range = Range::new(0.0, 1000.0, "retries per request");
/// The retry budget's window: 10 ms (a millisecond per bucket) to a day.
pub const BUDGET_WINDOW_MS: Count = Count::new(10, 86_400_000, "milliseconds");
/// Retries the budget allows whatever the request count.
pub const BUDGET_MIN_RETRIES: Count = Count::new(0, 1_000_000, "retries");
/// 429s in a row that cool a provider down.
pub const COOLDOWN_AFTER: Count = Count::new(1, 1_000_000, "rate limits in a row");
/// How long a provider cools down: up to a day.
pub const COOLDOWN_MS: Count = Count::new(0, 86_400_000, "milliseconds");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_range() {
        assert_eq!(
            CLOCK_SPEED.check(f64::NAN).unwrap_err(),
            OutOfRange {
                value: "NaN".into(),
                expected: "must be a finite number of times real time between 0.001 and 10000000".into()
            }
        );
        assert_eq!(
            BACKOFF_FACTOR.to_string(),
            "must be a finite number above 1 and at most 1000"
        );
        assert_eq!(KEEP_ALIVE_MS.check(0u64).unwrap_err().value, "0");
        assert_eq!(KEEP_ALIVE_MS.check(3_600_000u64), Ok(3_600_000));
        assert_eq!(
            MAX_BODY_BYTES.check(usize::MAX).unwrap_err().value,
            usize::MAX.to_string()
        );
    }
}
