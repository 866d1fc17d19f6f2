//! The live progress line: the record sink publishes a tally once a second
//! (fixed-size counts and the last second's latencies), and a task shows it
//! on stderr, rewritten in place on a terminal, a plain line every 5 s
//! otherwise.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::load::record::{Outcome, RequestRecord};
use crate::metrics::Timings;

/// How often the progress line is refreshed on a terminal.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Every how many refreshes a plain progress line is printed when stderr is
/// not a terminal (a log or CI): every 5 s.
const PLAIN_PROGRESS_EVERY: u64 = 5;
/// The largest e2e latency the progress window tells apart (10 minutes).
const WINDOW_MAX_US: u64 = 600_000_000;

/// What the record sink publishes once a second for the progress line.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    /// Sent requests whose record has arrived, over the run.
    completed: u64,
    /// Requests that failed, over the run.
    errors: u64,
    /// Arrivals dropped at the in-flight cap, over the run.
    dropped: u64,
    /// Sent requests completed per second over the last window.
    rate: f64,
    /// The 99th percentile e2e latency of the last window's successful requests.
    p99_e2e_us: Option<u64>,
}

/// The record sink's running counts and the current second's latencies:
/// fixed size, nothing allocated per request.
pub struct Window {
    totals: Tally,
    completed_in_window: u64,
    started: tokio::time::Instant,
    /// `None` only if the histogram could not be built (it always can).
    e2e: Option<hdrhistogram::Histogram<u64>>,
}

impl Window {
    pub fn new() -> Window {
        Window {
            totals: Tally::default(),
            completed_in_window: 0,
            started: tokio::time::Instant::now(),
            e2e: hdrhistogram::Histogram::new_with_bounds(1, WINDOW_MAX_US, 2).ok(),
        }
    }

    pub fn fold(&mut self, record: &RequestRecord) {
        if record.outcome == Outcome::Dropped {
            self.totals.dropped += 1;
            return;
        }
        self.totals.completed += 1;
        self.completed_in_window += 1;
        self.totals.errors += u64::from(record.outcome.is_error());
        if let (Some(h), Some(e2e)) = (self.e2e.as_mut(), Timings::of(record).e2e_us) {
            h.saturating_record(e2e.clamp(1, WINDOW_MAX_US));
        }
    }

    /// The tally so far, with the window's rate and p99; starts a new window.
    pub fn roll(&mut self) -> Tally {
        let now = tokio::time::Instant::now();
        let seconds = now.duration_since(self.started).as_secs_f64();
        let mut tally = self.totals;
        tally.rate = if seconds > 0.0 {
            self.completed_in_window as f64 / seconds
        } else {
            0.0
        };
        tally.p99_e2e_us = self
            .e2e
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| h.value_at_quantile(0.99));
        if let Some(h) = self.e2e.as_mut() {
            h.reset();
        }
        self.completed_in_window = 0;
        self.started = now;
        tally
    }
}

/// Shows each tally the sink publishes: on a terminal one line rewritten in
/// place every second, else a plain line every 5 s. Returns, leaving the
/// terminal's line clear, once the sink is done (the run ended or was stopped).
pub async fn show_progress(
    mut tally: watch::Receiver<Tally>,
    sent: Arc<AtomicU64>,
    phases: Vec<(String, Duration)>,
    terminal: bool,
) {
    let start = tokio::time::Instant::now();
    let total: Duration = phases.iter().map(|(_, d)| *d).sum();
    let mut ticks = 0u64;
    let mut shown = false;
    while tally.changed().await.is_ok() {
        ticks += 1;
        if !terminal && !ticks.is_multiple_of(PLAIN_PROGRESS_EVERY) {
            continue;
        }
        let now = *tally.borrow_and_update();
        let line = progress_line(&now, sent.load(Ordering::Relaxed), start.elapsed(), total, &phases);
        let mut err = std::io::stderr().lock();
        if terminal {
            // Back to the line's start, write, erase what a longer line left.
            let _ = write!(err, "\r{line}\x1b[K");
            shown = true;
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }
    if shown {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
    }
}

/// One progress line, e.g.
/// `[ 3/10 s] ramp: 20.0 req/s, 4 in flight, p99 e2e 45.2 ms, 0 errors, 0 dropped`.
fn progress_line(
    tally: &Tally,
    sent: u64,
    elapsed: Duration,
    total: Duration,
    phases: &[(String, Duration)],
) -> String {
    let mut phase = "draining";
    let mut end = Duration::ZERO;
    for (name, duration) in phases {
        end += *duration;
        if elapsed < end {
            phase = name;
            break;
        }
    }
    let p99 = tally
        .p99_e2e_us
        .map_or_else(|| "-".to_string(), |us| format!("{:.1} ms", us as f64 / 1000.0));
    format!(
        "[{:>3.0}/{:.0} s] {phase}: {:.1} req/s, {} in flight, p99 e2e {p99}, {} errors, {} dropped",
        elapsed.as_secs_f64(),
        total.as_secs_f64(),
        tally.rate,
        sent.saturating_sub(tally.completed),
        tally.errors,
        tally.dropped,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_names_the_phase_and_counts() {
        let phases = vec![
            ("warm".to_string(), Duration::from_secs(2)),
            ("ramp".to_string(), Duration::from_secs(8)),
        ];
        let tally = Tally {
            completed: 96,
            errors: 1,
            dropped: 2,
            rate: 20.0,
            p99_e2e_us: Some(45_230),
        };
        let line = progress_line(&tally, 100, Duration::from_secs(3), Duration::from_secs(10), &phases);
        assert_eq!(
            line,
            "[  3/10 s] ramp: 20.0 req/s, 4 in flight, p99 e2e 45.2 ms, 1 errors, 2 dropped"
        );
        let idle = progress_line(
            &Tally::default(),
            0,
            Duration::from_secs(11),
            Duration::from_secs(10),
            &phases,
        );
        assert!(idle.contains("draining") && idle.contains("p99 e2e -"), "{idle}");
    }
}
