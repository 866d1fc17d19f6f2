//! The range of every number a provider holds — delays, lengths, limits,
//! fault times — checked when it is validated, so that whatever validates
//! runs: a delay of `1e300` ms or a rate limit of 4 billion a minute is
//! refused naming its field and value, instead of panicking or stalling
//! the mock once it serves.
//!
//! | what | range |
//! |---|---|
//! | `ttft-ms`, `itl-ms` (every parameter of their distribution) | 0 to 3,600,000 ms (an hour) |
//! | `output-tokens` (every parameter) | 0 to 1,000,000 tokens |
//! | `reasoning-tokens` | 0 to 1,000,000 tokens |
//! | keys: `rpm`, `tpm` | 1 to 600,000,000 per minute (10 million a second) |
//! | keys: `concurrency` | 1 to 1,000,000 requests in flight |
//! | faults: `retry-after-ms` | 0 to 86,400,000 ms (a day) |
//! | faults: `delay-ms` | 0 to 3,600,000 ms (an hour) |
//! | faults: `from-ms`, `until-ms` | 0 to 604,800,000 ms (a week) |
//! | faults: `after-tokens` | 0 to 1,000,000 tokens |
//!
//! A sampled delay or length outside its range (a long log-normal tail) is
//! clamped into it.

use std::fmt;

/// The longest delay a model takes to its first token or between two.
pub const DELAY_MS: Range = Range::new(0.0, 3_600_000.0, "milliseconds");
/// The longest answer, in tokens.
pub const OUTPUT_TOKENS: Range = Range::new(0.0, 1_000_000.0, "tokens");
/// Reasoning tokens reported on top of the answer.
pub const REASONING_TOKENS: Count = Count::new(0, 1_000_000, "tokens");
/// A key's requests or tokens per minute: up to 10 million a second.
pub const PER_MINUTE: Count = Count::new(1, 600_000_000, "per minute").note("leave it out for no limit");
/// A key's requests in flight.
pub const CONCURRENCY: Count = Count::new(1, 1_000_000, "requests in flight").note("leave it out for no limit");
/// The `Retry-After` a status fault sends: up to a day.
pub const RETRY_AFTER_MS: Count = Count::new(0, 86_400_000, "milliseconds");
/// How long a hang or a slow first byte lasts: up to an hour.
pub const FAULT_DELAY_MS: Count = Count::new(0, 3_600_000, "milliseconds");
/// A fault's window, from when its list was installed: up to a week.
pub const FAULT_WINDOW_MS: Count = Count::new(0, 604_800_000, "milliseconds");
/// The tokens a mid-answer fault waits for.
pub const AFTER_TOKENS: Count = Count::new(0, 1_000_000, "tokens");

/// A range of real numbers: finite, from `min` (or above it) to `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub min: f64,
    pub max: f64,
    /// `min` itself is out of range (a rate must be above 0).
    pub above_min: bool,
    /// What the number counts, for messages: "milliseconds", "seconds"
    /// ("" for a plain number).
    pub unit: &'static str,
}

impl Range {
    /// From `min` to `max`, both included.
    pub const fn new(min: f64, max: f64, unit: &'static str) -> Self {
        Range {
            min,
            max,
            above_min: false,
            unit,
        }
    }

    /// Above `min` (excluded) and at most `max`.
    pub const fn above(min: f64, max: f64, unit: &'static str) -> Self {
        Range {
            min,
            max,
            above_min: true,
            unit,
        }
    }

    pub fn contains(&self, value: f64) -> bool {
        let low = if self.above_min {
            value > self.min
        } else {
            value >= self.min
        };
        value.is_finite() && low && value <= self.max
    }

    /// `value` when it is in the range; otherwise what is wrong with it.
    pub fn check(&self, value: f64) -> Result<f64, OutOfRange> {
        if self.contains(value) {
            Ok(value)
        } else {
            Err(OutOfRange {
                value: number(value),
                expected: self.to_string(),
            })
        }
    }

    /// `value` brought into the range (NaN to its lowest value): for
    /// sampled values, which a distribution's tail may take past it.
    pub fn clamp(&self, value: f64) -> f64 {
        if value.is_nan() {
            self.min
        } else {
            value.clamp(self.min, self.max)
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (min, max) = (number(self.min), number(self.max));
        let of = if self.unit.is_empty() {
            String::new()
        } else {
            format!(" of {}", self.unit)
        };
        if self.above_min {
            write!(f, "must be a finite number{of} above {min} and at most {max}")
        } else {
            write!(f, "must be a finite number{of} between {min} and {max}")
        }
    }
}

/// A range of whole numbers, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub min: u64,
    pub max: u64,
    /// What is counted, for messages: "milliseconds", "per minute" ("" for
    /// a plain number).
    pub unit: &'static str,
    /// Said after the range, when there is something to add.
    pub note: Option<&'static str>,
}

impl Count {
    pub const fn new(min: u64, max: u64, unit: &'static str) -> Self {
        Count {
            min,
            max,
            unit,
            note: None,
        }
    }

    /// The same range, its message ending with `(note)`.
    pub const fn note(mut self, note: &'static str) -> Self {
        self.note = Some(note);
        self
    }

    pub fn contains(&self, value: u64) -> bool {
        (self.min..=self.max).contains(&value)
    }

    /// `value` when it is in the range; otherwise what is wrong with it.
    /// Takes any integer (a `usize` too); one too wide for `u64` is out of range.
    pub fn check<T: Copy + TryInto<u64> + fmt::Display>(&self, value: T) -> Result<T, OutOfRange> {
        match value.try_into() {
            Ok(wide) if self.contains(wide) => Ok(value),
            _ => Err(OutOfRange {
                value: value.to_string(),
                expected: self.to_string(),
            }),
        }
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "must be between {} and {}", self.min, self.max)?;
        if !self.unit.is_empty() {
            write!(f, " {}", self.unit)?;
        }
        if let Some(note) = self.note {
            write!(f, " ({note})")?;
        }
        Ok(())
    }
}

/// A value out of its range: the value as it reads, and the range it must be in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value}: {expected}")]
pub struct OutOfRange {
    /// The value, written as a reader would: `1e300`, `inf`, `NaN`, `0.5`.
    pub value: String,
    /// What it must be: "must be a finite number of seconds between 0.001 and 604800".
    pub expected: String,
}

/// A number as a reader writes it: plain decimals for everyday magnitudes
/// (`3600000`, `0.5`), exponents for huge and tiny ones (`1e300`,
/// `5e-324`), and `inf`, `-inf`, `NaN`.
pub fn number(value: f64) -> String {
    if value == 0.0 || (value.is_finite() && (1e-4..1e16).contains(&value.abs())) {
        format!("{value}")
    } else {
        format!("{value:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_written() {
        let cases = [
            (1e300, "1e300"),
            (1e20, "1e20"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "NaN"),
            (3_600_000.0, "3600000"),
            (0.001, "0.001"),
            (-1.0, "-1"),
            (5e-324, "5e-324"),
            (0.0, "0"),
        ];
        for (value, text) in cases {
            assert_eq!(number(value), text);
        }
    }

    #[test]
    fn ranges_refuse_what_is_outside_and_say_why() {
        let seconds = Range::new(0.001, 604_800.0, "seconds");
        assert_eq!(seconds.check(0.001), Ok(0.001));
        assert_eq!(seconds.check(604_800.0), Ok(604_800.0));
        for bad in [0.0, 604_800.5, f64::INFINITY, f64::NAN, -1.0] {
            assert!(seconds.check(bad).is_err(), "{bad}");
        }
        assert_eq!(
            seconds.check(f64::INFINITY).unwrap_err().to_string(),
            "inf: must be a finite number of seconds between 0.001 and 604800"
        );
        let rate = Range::above(0.0, 1e7, "requests per second");
        assert!(rate.check(0.0).is_err());
        assert_eq!(
            rate.to_string(),
            "must be a finite number of requests per second above 0 and at most 10000000"
        );
        assert_eq!(
            Range::above(0.0, 100.0, "").to_string(),
            "must be a finite number above 0 and at most 100"
        );
        assert_eq!(Count::new(1, 9, "").to_string(), "must be between 1 and 9");
        assert_eq!(DELAY_MS.clamp(f64::INFINITY), 3_600_000.0);
        assert_eq!(DELAY_MS.clamp(f64::NAN), 0.0);
        assert_eq!(PER_MINUTE.check(0u32).unwrap_err().value, "0");
        assert_eq!(
            PER_MINUTE.to_string(),
            "must be between 1 and 600000000 per minute (leave it out for no limit)"
        );
        assert_eq!(FAULT_DELAY_MS.check(3_600_000u64), Ok(3_600_000));
    }
}
