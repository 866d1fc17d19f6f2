//! The overhead join: what a request cost the client beyond what the mock
//! upstream spent on it.
//!
//! Router overhead of a request = (client last byte − client sent) −
//! (mock finished − mock received) of the attempt that served it: the
//! latest-received attempt with that correlation id that the mock answered
//! with a 2xx (earlier attempts were retried away; nothing is retried once a
//! stream's first byte is out). Only successful requests are remembered.
//! Client and mock times share one clock (the mocks run in the harness's
//! process), so the subtraction is meaningful; a negative difference (which
//! only clock skew could give) is clamped to 0 and counted.
//!
//! Records are not kept, so the table remembers, per request, its id and
//! its client duration, and later the served attempt: 32 bytes plus the id
//! itself (its length rounded up by the allocator) plus the hash table's
//! control byte and growth slack — about 60 B a request for 20-character
//! ids, ~60 MB for a million requests.

use std::collections::HashMap;
use std::num::NonZeroU64;

use mock_providers::Record;

use crate::load::record::{Outcome, RequestRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// Client last byte − sent, µs (saturates at ~71 minutes).
    client_us: u32,
    /// Mock finished − received of the served attempt, µs.
    mock_us: u32,
    /// When the served attempt was received; `None` until one is found.
    served_at_us: Option<NonZeroU64>,
}

/// Requests remembered for the join, and the attempts found for them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JoinTable {
    entries: HashMap<Box<str>, Entry>,
}

/// How the join went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinSummary {
    /// Successful requests remembered.
    pub remembered: u64,
    /// Of those, the ones a journal attempt was found for.
    pub matched: u64,
    /// Of those, the ones with no served attempt in any journal.
    pub unmatched: u64,
    /// Matched requests whose mock time exceeded the client time (clamped to 0).
    pub negative: u64,
}

fn us32(us: u64) -> u32 {
    u32::try_from(us).unwrap_or(u32::MAX)
}

impl JoinTable {
    /// Remembers a successful request's id and client duration.
    pub fn remember(&mut self, r: &RequestRecord) {
        let Some(last_byte_us) = r.last_byte_us else { return };
        if r.outcome != Outcome::Ok {
            return;
        }
        let entry = Entry {
            client_us: us32(last_byte_us.saturating_sub(r.sent_us)),
            mock_us: 0,
            served_at_us: None,
        };
        self.entries.insert(Box::from(&*r.id), entry);
    }

    /// Finds, in one provider's journal, the attempts that served remembered
    /// requests. Call it once per journal, in any order.
    pub fn absorb(&mut self, journal: &[Record]) {
        for attempt in journal {
            if !(200..300).contains(&attempt.status) {
                continue;
            }
            let Some(id) = attempt.correlation_id.as_deref() else {
                continue;
            };
            let Some(entry) = self.entries.get_mut(id) else {
                continue;
            };
            let Some(received) = NonZeroU64::new(attempt.received_us) else {
                continue;
            };
            if entry.served_at_us.is_none_or(|at| received >= at) {
                entry.served_at_us = Some(received);
                entry.mock_us = us32(attempt.finished_us.saturating_sub(attempt.received_us));
            }
        }
    }

    pub fn merge(&mut self, other: JoinTable) {
        self.entries.extend(other.entries);
    }

    /// Every matched request's overhead in µs (clamped to 0) and whether it
    /// was clamped, with its id.
    pub fn overheads(&self) -> impl Iterator<Item = (&str, u64, bool)> {
        self.entries.iter().filter_map(|(id, e)| {
            e.served_at_us?;
            let negative = e.mock_us > e.client_us;
            Some((&**id, u64::from(e.client_us.saturating_sub(e.mock_us)), negative))
        })
    }

    pub fn summary(&self) -> JoinSummary {
        let remembered = self.entries.len() as u64;
        let mut s = JoinSummary {
            remembered,
            ..JoinSummary::default()
        };
        for (_, _, negative) in self.overheads() {
            s.matched += 1;
            s.negative += u64::from(negative);
        }
        s.unmatched = remembered - s.matched;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::fixtures::{attempt, record};

    #[test]
    fn the_latest_served_attempt_is_subtracted() {
        let mut t = JoinTable::default();
        let mut r = record("a", 1_000, 1_000);
        r.last_byte_us = Some(1_000 + 50_000);
        t.remember(&r);
        let mut failed = record("b", 0, 0);
        failed.outcome = Outcome::ServerError;
        t.remember(&failed);
        // A 503 attempt, then the 200 that served it on another provider.
        t.absorb(&[attempt("a", 503, 1_100, 1_200)]);
        t.absorb(&[attempt("a", 200, 2_000, 2_000 + 45_000), attempt("zzz", 200, 1, 2)]);
        let got: Vec<_> = t.overheads().collect();
        assert_eq!(got, [("a", 5_000, false)]);
        // An earlier 200 found later does not replace it.
        t.absorb(&[attempt("a", 200, 1_500, 1_500 + 10_000)]);
        assert_eq!(t.overheads().next().map(|o| o.1), Some(5_000));
        let s = t.summary();
        assert_eq!((s.remembered, s.matched, s.unmatched, s.negative), (1, 1, 0, 0));
    }

    #[test]
    fn unmatched_and_negative_are_counted() {
        let mut t = JoinTable::default();
        for (id, client) in [("a", 10_000), ("b", 10_000)] {
            let mut r = record(id, 0, 0);
            r.last_byte_us = Some(client);
            t.remember(&r);
        }
        t.absorb(&[attempt("a", 200, 100, 100 + 20_000)]);
        let s = t.summary();
        assert_eq!((s.remembered, s.matched, s.unmatched, s.negative), (2, 1, 1, 1));
        assert_eq!(t.overheads().next().map(|o| o.1), Some(0));
    }
}
