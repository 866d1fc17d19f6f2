//! Calendar time for the router: a clock that scenarios can warp (a start
//! date and a speed, e.g. one day per second) so that a 14-day grace period
//! or a daily quota is tested in seconds.
//!
//! A configuration writes a calendar time as a date (`2026-01-31`, midnight
//! UTC), a UTC time (`2026-01-31T12:00:00Z`), or an offset from an origin
//! ([`When`]: `+30d`, `-12h`; units `w`, `d`, `h`, `m`, `s`): lifecycle dates
//! count from the clock's start, the clock's start from the time the
//! configuration is read. Offsets keep a file true on any day: absolute dates
//! against the real clock turn into a time bomb.

use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;

/// A calendar clock: `start + elapsed × speed`, or the real time when not warped.
#[derive(Debug, Clone, Copy)]
pub struct CalendarClock {
    origin: Instant,
    start_us: i64,
    speed: f64,
}

/// Seconds in a day.
pub const DAY: Duration = Duration::from_secs(86_400);

/// The longest offset a [`When`] may say: a hundred years.
pub const MAX_OFFSET: Duration = Duration::from_secs(36_525 * 86_400);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClockError {
    #[error(
        "`{text}` is not a date (2026-01-31), a UTC time (2026-01-31T12:00:00Z) or an offset \
         (+30d, -12h: w, d, h, m or s, at most 100 years)"
    )]
    BadTime { text: String },
    #[error("`{text}` from {origin} is past the calendar's range")]
    OutOfRange { text: String, origin: Timestamp },
    #[error("speed must be a finite number > 0, got {0}")]
    BadSpeed(f64),
}

/// A calendar time as a configuration writes it: absolute, or an offset
/// from an origin the reader chooses (the clock's start for lifecycle
/// dates, the time of reading for the clock's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    At(Timestamp),
    /// `+30d` (after the origin), `-12h` (before it).
    After(SignedDuration),
}

impl When {
    /// Reads `2026-01-31`, `2026-01-31T12:00:00Z`, or `±N` and a unit (`w`,
    /// `d` of 24 hours, `h`, `m`, `s`) up to a hundred years.
    pub fn parse(text: &str) -> Result<When, ClockError> {
        let bad = || ClockError::BadTime { text: text.to_string() };
        let trimmed = text.trim();
        let sign = match trimmed.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return parse_time(trimmed).map(When::At),
        };
        let body = &trimmed[1..];
        let split = body.len().saturating_sub(1);
        let (digits, unit) = (body.get(..split).ok_or_else(bad)?, body.get(split..).ok_or_else(bad)?);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let unit_secs: u64 = match unit {
            "w" => 7 * 86_400,
            "d" => 86_400,
            "h" => 3_600,
            "m" => 60,
            "s" => 1,
            _ => return Err(bad()),
        };
        let secs = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit_secs))
            .filter(|secs| *secs <= MAX_OFFSET.as_secs())
            .and_then(|secs| i64::try_from(secs).ok())
            .ok_or_else(bad)?;
        Ok(When::After(SignedDuration::from_secs(sign * secs)))
    }

    /// The time this says, offsets counted from `origin`; `text` (what was
    /// written) names it in an error.
    pub fn at(self, origin: Timestamp, text: &str) -> Result<Timestamp, ClockError> {
        match self {
            When::At(at) => Ok(at),
            When::After(offset) => origin.checked_add(offset).map_err(|_| ClockError::OutOfRange {
                text: text.to_string(),
                origin,
            }),
        }
    }
}

/// Parses `2026-01-31` (midnight UTC) or an RFC 3339 time into a timestamp.
pub fn parse_time(text: &str) -> Result<Timestamp, ClockError> {
    let bad = || ClockError::BadTime { text: text.to_string() };
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts);
    }
    let date: Date = text.parse().map_err(|_| bad())?;
    date.to_zoned_datetime(TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(|_| bad())
}

impl CalendarClock {
    /// The real time.
    pub fn real() -> Self {
        CalendarClock {
            origin: Instant::now(),
            start_us: Timestamp::now().as_microsecond(),
            speed: 1.0,
        }
    }

    /// A clock that reads `start` now and runs `speed` times faster than real time.
    pub fn warped(start: Timestamp, speed: f64) -> Result<Self, ClockError> {
        if !speed.is_finite() || speed <= 0.0 {
            return Err(ClockError::BadSpeed(speed));
        }
        Ok(CalendarClock {
            origin: Instant::now(),
            start_us: start.as_microsecond(),
            speed,
        })
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// The calendar time now.
    pub fn now(&self) -> Timestamp {
        self.at(Instant::now())
    }

    /// The calendar time at a monotonic instant.
    pub fn at(&self, instant: Instant) -> Timestamp {
        let elapsed_us = instant.saturating_duration_since(self.origin).as_secs_f64() * 1e6 * self.speed;
        let us = self.start_us.saturating_add(elapsed_us as i64);
        Timestamp::from_microsecond(us).unwrap_or(Timestamp::MAX)
    }

    /// Real time until the calendar reaches `when` (zero if it has; the
    /// longest `Duration` if the clock is too slow to say).
    pub fn real_until(&self, when: Timestamp) -> Duration {
        let now_us = self.now().as_microsecond();
        let left_us = when.as_microsecond().saturating_sub(now_us).max(0) as f64;
        Duration::try_from_secs_f64(left_us / 1e6 / self.speed).unwrap_or(Duration::MAX)
    }

    /// The calendar day (days since the Unix epoch, UTC) at `instant`.
    pub fn day(&self, instant: Instant) -> i64 {
        self.at(instant).as_second().div_euclid(86_400)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_from_an_origin() {
        let origin = parse_time("2026-01-10").unwrap();
        let at = |text: &str| {
            When::parse(text)
                .and_then(|w| w.at(origin, text))
                .map(|t| t.to_string())
        };
        assert_eq!(at("+30d").unwrap(), "2026-02-09T00:00:00Z");
        assert_eq!(at("-2w").unwrap(), "2025-12-27T00:00:00Z");
        assert_eq!(at("+36h").unwrap(), "2026-01-11T12:00:00Z");
        assert_eq!(at("-90m").unwrap(), "2026-01-09T22:30:00Z");
        assert_eq!(at("+0s").unwrap(), "2026-01-10T00:00:00Z");
        assert_eq!(at("2027-06-01").unwrap(), "2027-06-01T00:00:00Z");
        for bad in [
            "+",
            "+d",
            "+30",
            "+30y",
            "+-3d",
            "++3d",
            "+3.5d",
            "30d",
            "+36526d",
            "+99999999999999999999d",
            "-é",
        ] {
            assert!(matches!(When::parse(bad), Err(ClockError::BadTime { .. })), "{bad}");
        }
        let end = When::parse("+36525d").unwrap().at(Timestamp::MAX, "+36525d");
        assert!(matches!(end, Err(ClockError::OutOfRange { .. })), "{end:?}");
    }

    #[test]
    fn dates_and_times_parse() {
        assert_eq!(parse_time("1970-01-02").unwrap().as_second(), 86_400);
        assert_eq!(parse_time("1970-01-01T00:01:00Z").unwrap().as_second(), 60);
        assert!(parse_time("yesterday").is_err());
    }

    /// A clock slow enough that the wait until a date overflows a
    /// `Duration` says the longest wait instead of panicking.
    #[test]
    fn a_wait_past_any_duration_saturates() {
        let clock = CalendarClock::warped(parse_time("2026-01-01").unwrap(), 1e-300).unwrap();
        assert_eq!(clock.real_until(parse_time("2026-01-02").unwrap()), Duration::MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn a_warped_clock_runs_fast() {
        let clock = CalendarClock::warped(parse_time("2026-01-01").unwrap(), 86_400.0).unwrap();
        let day0 = clock.day(Instant::now());
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(clock.day(Instant::now()), day0 + 1);
        assert_eq!(clock.now().to_string(), "2026-01-02T12:00:00Z");
        let until = clock.real_until(parse_time("2026-01-05").unwrap());
        assert_eq!(until, Duration::from_millis(2500));
        assert!(CalendarClock::warped(Timestamp::UNIX_EPOCH, 0.0).is_err());
    }
}
