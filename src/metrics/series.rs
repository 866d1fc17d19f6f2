//! The per-second time series: for each second of the run, the arrivals the
//! schedule asked for, the requests sent and dropped, the requests that
//! completed and failed, and the p50/p99 of E2E and TTFT of the requests
//! that completed in it.
//!
//! Seconds are Unix seconds on the run's clock (the records' clock), so
//! per-worker series merge without knowing when the run started; reports
//! number them from the run start. Arrivals and drops count in their intended
//! second, sends in their send second, completions (and their latencies) in
//! the second of their last byte. Memory grows with the run's length in
//! seconds (a few hundred bytes each), never with its number of requests.

use std::collections::BTreeMap;

use super::sketch::Sketch;

/// One second of the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Second {
    /// Arrivals the schedule meant to send in this second (dropped included).
    pub intended: u32,
    /// Requests actually sent in this second.
    pub sent: u32,
    /// Arrivals of this second not sent (in-flight cap reached).
    pub dropped: u32,
    /// Requests that ended in this second (any outcome but dropped).
    pub completed: u32,
    /// Of those, the failed ones.
    pub errors: u32,
    /// E2E (from the intended time) of the successful requests ending here.
    pub e2e: Sketch,
    /// TTFT (from the intended time) of the successful streams ending here.
    pub ttft: Sketch,
}

/// A row of the series as reports show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondRow {
    /// Seconds since the run start (negative only for a clock that went back).
    pub second: i64,
    pub unix_second: u64,
    pub intended: u32,
    pub sent: u32,
    pub dropped: u32,
    pub completed: u32,
    pub errors: u32,
    pub e2e_p50_us: Option<u64>,
    pub e2e_p99_us: Option<u64>,
    pub ttft_p50_us: Option<u64>,
    pub ttft_p99_us: Option<u64>,
}

/// The whole run's seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    seconds: BTreeMap<u64, Second>,
}

/// The Unix second of a time in µs.
pub fn second_of(us: u64) -> u64 {
    us / 1_000_000
}

impl Series {
    /// The second holding `us`, created empty if needed.
    pub fn at(&mut self, us: u64) -> &mut Second {
        self.seconds.entry(second_of(us)).or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.seconds.is_empty()
    }

    /// The first and last Unix seconds that saw anything.
    pub fn span(&self) -> Option<(u64, u64)> {
        Some((*self.seconds.keys().next()?, *self.seconds.keys().next_back()?))
    }

    pub fn merge(&mut self, other: &Series) {
        for (&second, theirs) in &other.seconds {
            let ours = self.seconds.entry(second).or_default();
            ours.intended += theirs.intended;
            ours.sent += theirs.sent;
            ours.dropped += theirs.dropped;
            ours.completed += theirs.completed;
            ours.errors += theirs.errors;
            ours.e2e.merge(&theirs.e2e);
            ours.ttft.merge(&theirs.ttft);
        }
    }

    /// One row per second from the run start (or the first second seen, if
    /// earlier) to the last second seen, quiet seconds included as zeros.
    pub fn rows(&self, run_start_us: Option<u64>) -> Vec<SecondRow> {
        let Some((first, last)) = self.span() else {
            return Vec::new();
        };
        let start = run_start_us.map_or(first, second_of);
        let from = first.min(start);
        let empty = Second::default();
        (from..=last)
            .map(|unix_second| {
                let s = self.seconds.get(&unix_second).unwrap_or(&empty);
                SecondRow {
                    second: i64::try_from(unix_second).unwrap_or(i64::MAX) - i64::try_from(start).unwrap_or(i64::MAX),
                    unix_second,
                    intended: s.intended,
                    sent: s.sent,
                    dropped: s.dropped,
                    completed: s.completed,
                    errors: s.errors,
                    e2e_p50_us: s.e2e.quantile(0.5),
                    e2e_p99_us: s.e2e.quantile(0.99),
                    ttft_p50_us: s.ttft.quantile(0.5),
                    ttft_p99_us: s.ttft.quantile(0.99),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_fill_quiet_seconds_and_number_from_the_start() {
        let mut s = Series::default();
        s.at(10_000_000).intended += 2;
        s.at(12_500_000).completed += 1;
        s.at(12_999_999).e2e.record(40_000);
        let rows = s.rows(Some(9_200_000));
        assert_eq!(rows.len(), 4);
        assert_eq!(rows.iter().map(|r| r.second).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(rows[1].intended, 2);
        assert_eq!(rows[2].completed, 0);
        assert_eq!(rows[3].completed, 1);
        assert_eq!(rows[3].e2e_p50_us, Some(40_000));
        assert_eq!(rows[2].e2e_p50_us, None);
        assert!(Series::default().rows(None).is_empty());
    }

    #[test]
    fn merge_adds_second_by_second() {
        let (mut a, mut b) = (Series::default(), Series::default());
        a.at(1_000_000).sent += 1;
        b.at(1_500_000).sent += 2;
        b.at(3_000_000).errors += 1;
        a.merge(&b);
        let rows = a.rows(None);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].sent, 3);
        assert_eq!(rows[2].errors, 1);
    }
}
