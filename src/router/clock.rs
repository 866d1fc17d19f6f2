//! Calendar time for the router: a clock that scenarios can warp (a start
//! date and a speed, e.g. one day per second) so that a 14-day grace period
//! or a daily quota is tested in seconds.

use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
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

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClockError {
    #[error("`{text}` is not a date (2026-01-31) or a UTC time (2026-01-31T12:00:00Z)")]
    BadTime { text: String },
    #[error("speed must be a finite number > 0, got {0}")]
    BadSpeed(f64),
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
