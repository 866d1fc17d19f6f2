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
//! # Bounded
//!
//! The join runs as the load does, so that its memory depends on the rate,
//! not on the run's length. Requests come from the record sink
//! ([`JoinTable::remember`]); attempts come from periodic drains of the mock
//! journals ([`JoinTable::absorb`]); either may come first. Each side waits
//! for the other in a table keyed by correlation id:
//!
//! - A **request** waits, gathering its 2xx attempts, until it *settles*: a
//!   drain began at least [`SETTLE_US`] after its last byte
//!   ([`JoinTable::settle`] with that drain's start as the watermark). The
//!   attempt that served it finished before the client's last byte (the
//!   router forwards what the mock sent) and the mock journals an attempt as
//!   it finishes, so by then its attempts have all been drained; the slack
//!   covers the mock's bookkeeping after its last byte. A settled request is
//!   matched (its overhead handed out at once) or counted unmatched, and
//!   forgotten.
//! - An **attempt** whose request has not arrived yet (the request record is
//!   still on its way to the sink, or the request failed and never will)
//!   waits, the latest-received per id, and is forgotten [`HORIZON_US`] after
//!   it finished, or at the end of the run ([`JoinTable::finish`]), counted
//!   as orphaned.
//!
//! Waiting requests are those of the last `SETTLE_US` plus one drain period,
//! waiting attempts those of failed requests over the last `HORIZON_US`:
//! about 90 B each (the id's allocation, ~40 B of entry, the hash table's
//! control byte and slack). On data where every attempt of a request is
//! journaled by `SETTLE_US` after its last byte and its request record
//! reaches the sink within `HORIZON_US`, the numbers equal those of a join
//! of every request with every attempt at the end of the run.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::num::NonZeroU64;

use mock_providers::Record;

use crate::load::record::{Outcome, RequestRecord};

/// How long after a request's last byte its attempts may still be joined:
/// a request settles at the first drain that begins this much later.
pub const SETTLE_US: u64 = 2_000_000;
/// How long after it finished an attempt waits for its request.
pub const HORIZON_US: u64 = 30_000_000;

/// A 2xx attempt: what the join needs of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Served {
    received_us: NonZeroU64,
    /// Mock finished − received, µs (saturates at ~71 minutes).
    mock_us: u32,
    finished_us: u64,
}

impl Served {
    /// The correlation id and served-attempt facts of a 2xx attempt.
    fn of(attempt: &Record) -> Option<(&str, Served)> {
        if !(200..300).contains(&attempt.status) {
            return None;
        }
        let id = attempt.correlation_id.as_deref()?;
        let received_us = NonZeroU64::new(attempt.received_us)?;
        Some((
            id,
            Served {
                received_us,
                mock_us: us32(attempt.finished_us.saturating_sub(attempt.received_us)),
                finished_us: attempt.finished_us,
            },
        ))
    }

    /// Keeps the latest-received of `self` and `new` (on a tie, `new`).
    fn update(slot: &mut Option<Served>, new: Served) {
        if slot.is_none_or(|s| new.received_us >= s.received_us) {
            *slot = Some(new);
        }
    }
}

/// A successful request waiting to settle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Waiting {
    /// Client last byte − sent, µs (saturates at ~71 minutes).
    client_us: u32,
    last_byte_us: u64,
    served: Option<Served>,
}

/// The requests and attempts waiting for each other, and the counts of
/// those already joined.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JoinTable {
    requests: HashMap<Box<str>, Waiting>,
    attempts: HashMap<Box<str>, Served>,
    done: JoinSummary,
    orphaned: u64,
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

/// Counts a settled request and hands out its overhead if it was matched.
fn resolve(done: &mut JoinSummary, id: &str, w: &Waiting, on_match: &mut impl FnMut(&str, u64)) {
    done.remembered += 1;
    match w.served {
        Some(s) => {
            done.matched += 1;
            done.negative += u64::from(s.mock_us > w.client_us);
            on_match(id, u64::from(w.client_us.saturating_sub(s.mock_us)));
        }
        None => done.unmatched += 1,
    }
}

impl JoinTable {
    /// Remembers a successful request's id and client duration, with the
    /// attempt already seen for it, if any.
    pub fn remember(&mut self, r: &RequestRecord) {
        let Some(last_byte_us) = r.last_byte_us else { return };
        if r.outcome != Outcome::Ok {
            return;
        }
        let mut served = self.attempts.remove(&*r.id);
        let waiting = match self.requests.entry(Box::from(&*r.id)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(Waiting {
                client_us: 0,
                last_byte_us,
                served: None,
            }),
        };
        // A repeated id (never in practice) replaces the times, keeps the attempts.
        if let Some(s) = waiting.served {
            Served::update(&mut served, s);
        }
        *waiting = Waiting {
            client_us: us32(last_byte_us.saturating_sub(r.sent_us)),
            last_byte_us,
            served,
        };
    }

    /// Takes in drained journal attempts (of any provider, in any order):
    /// each 2xx attempt goes to its waiting request, or waits for it.
    pub fn absorb(&mut self, attempts: &[Record]) {
        for attempt in attempts {
            if let Some((id, served)) = Served::of(attempt) {
                self.offer(id, served);
            }
        }
    }

    fn offer(&mut self, id: &str, served: Served) {
        if let Some(w) = self.requests.get_mut(id) {
            Served::update(&mut w.served, served);
        } else if let Some(s) = self.attempts.get_mut(id) {
            if served.received_us >= s.received_us {
                *s = served;
            }
        } else {
            self.attempts.insert(Box::from(id), served);
        }
    }

    /// Settles the requests whose last byte is at least [`SETTLE_US`] before
    /// `watermark_us` and forgets the attempts that finished at least
    /// [`HORIZON_US`] before it. `watermark_us` is when the latest drain of
    /// every journal began (everything journaled before it was absorbed).
    /// Calls `on_match(id, overhead_us)` for each request matched (overhead
    /// clamped to 0).
    pub fn settle(&mut self, watermark_us: u64, mut on_match: impl FnMut(&str, u64)) {
        let done = &mut self.done;
        self.requests.retain(|id, w| {
            let settled = w.last_byte_us.saturating_add(SETTLE_US) <= watermark_us;
            if settled {
                resolve(done, id, w, &mut on_match);
            }
            !settled
        });
        let orphaned = &mut self.orphaned;
        self.attempts.retain(|_, a| {
            let expired = a.finished_us.saturating_add(HORIZON_US) <= watermark_us;
            *orphaned += u64::from(expired);
            !expired
        });
    }

    /// Settles every waiting request and forgets every waiting attempt: the
    /// run is over and its journals drained.
    pub fn finish(&mut self, mut on_match: impl FnMut(&str, u64)) {
        for (id, w) in self.requests.drain() {
            resolve(&mut self.done, &id, &w, &mut on_match);
        }
        self.orphaned += self.attempts.len() as u64;
        self.attempts.clear();
        // What the run's peak needed is not needed any more.
        self.requests.shrink_to_fit();
        self.attempts.shrink_to_fit();
    }

    /// Adds another table's waiting entries and counts.
    pub fn merge(&mut self, other: JoinTable) {
        for (id, w) in other.requests {
            let mut served = self.attempts.remove(&id);
            if let Some(s) = w.served {
                Served::update(&mut served, s);
            }
            match self.requests.entry(id) {
                Entry::Occupied(mut e) => {
                    if let Some(s) = e.get().served {
                        Served::update(&mut served, s);
                    }
                    *e.get_mut() = Waiting { served, ..w };
                }
                Entry::Vacant(e) => {
                    e.insert(Waiting { served, ..w });
                }
            }
        }
        for (id, served) in other.attempts {
            self.offer(&id, served);
        }
        let (d, o) = (&mut self.done, other.done);
        d.remembered += o.remembered;
        d.matched += o.matched;
        d.unmatched += o.unmatched;
        d.negative += o.negative;
        self.orphaned += other.orphaned;
    }

    /// The counts of the requests settled so far (every request remembered,
    /// once [`finish`](JoinTable::finish) has run).
    pub fn summary(&self) -> JoinSummary {
        self.done
    }

    /// Requests waiting to settle and attempts waiting for their request.
    pub fn waiting(&self) -> (usize, usize) {
        (self.requests.len(), self.attempts.len())
    }

    /// 2xx attempts forgotten without their request ever being remembered
    /// (failed requests, mostly).
    pub fn orphaned(&self) -> u64 {
        self.orphaned
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::metrics::fixtures::{attempt, record};

    type Overheads = BTreeMap<String, u64>;

    fn settle(t: &mut JoinTable, watermark_us: u64) -> Overheads {
        let mut got = Overheads::new();
        t.settle(watermark_us, |id, o| {
            got.insert(id.to_string(), o);
        });
        got
    }

    fn finish(t: &mut JoinTable) -> Overheads {
        let mut got = Overheads::new();
        t.finish(|id, o| {
            got.insert(id.to_string(), o);
        });
        got
    }

    fn ok(id: &str, sent_us: u64, last_byte_us: u64) -> RequestRecord {
        let mut r = record(id, sent_us, sent_us);
        r.last_byte_us = Some(last_byte_us);
        r
    }

    fn counts(t: &JoinTable) -> (u64, u64, u64, u64) {
        let s = t.summary();
        (s.remembered, s.matched, s.unmatched, s.negative)
    }

    #[test]
    fn the_latest_served_attempt_is_subtracted() {
        let mut t = JoinTable::default();
        t.remember(&ok("a", 1_000, 51_000));
        let mut failed = record("b", 0, 0);
        failed.outcome = Outcome::ServerError;
        t.remember(&failed);
        // A 503 attempt, then the 200 that served it on another provider,
        // then an earlier 200 found later, which does not replace it.
        t.absorb(&[attempt("a", 503, 1_100, 1_200)]);
        t.absorb(&[attempt("a", 200, 2_000, 2_000 + 45_000), attempt("zzz", 200, 1, 2)]);
        t.absorb(&[attempt("a", 200, 1_500, 1_500 + 10_000)]);
        assert_eq!(t.waiting(), (1, 1));
        assert_eq!(finish(&mut t), Overheads::from([("a".into(), 5_000)]));
        assert_eq!(counts(&t), (1, 1, 0, 0));
        assert_eq!((t.waiting(), t.orphaned()), ((0, 0), 1));
    }

    #[test]
    fn unmatched_and_negative_are_counted() {
        let mut t = JoinTable::default();
        t.remember(&ok("a", 0, 10_000));
        t.remember(&ok("b", 0, 10_000));
        t.absorb(&[attempt("a", 200, 100, 100 + 20_000)]);
        assert_eq!(finish(&mut t), Overheads::from([("a".into(), 0)]));
        assert_eq!(counts(&t), (2, 1, 1, 1));
    }

    #[test]
    fn either_side_may_come_first_and_both_are_forgotten() {
        let mut t = JoinTable::default();
        // The attempt is drained before the request record reaches the sink.
        t.absorb(&[attempt("early", 200, 1_000, 3_000)]);
        // The request arrives before its attempt is drained.
        t.remember(&ok("late", 0, 10_000));
        assert_eq!(t.waiting(), (1, 1));
        t.remember(&ok("early", 500, 4_500));
        assert_eq!(t.waiting(), (2, 0), "the request took its attempt");
        // "late" has not settled: no drain began SETTLE_US after its last byte.
        assert_eq!(
            settle(&mut t, 10_000 + SETTLE_US - 1),
            Overheads::from([("early".into(), 2_000)])
        );
        assert_eq!(t.waiting(), (1, 0));
        t.absorb(&[attempt("late", 200, 2_000, 9_000)]);
        assert_eq!(
            settle(&mut t, 10_000 + SETTLE_US),
            Overheads::from([("late".into(), 3_000)])
        );
        assert_eq!(t.waiting(), (0, 0));
        assert_eq!(counts(&t), (2, 2, 0, 0));
    }

    #[test]
    fn a_settled_request_without_its_attempt_is_unmatched() {
        let mut t = JoinTable::default();
        t.remember(&ok("a", 0, 10_000));
        assert!(settle(&mut t, 10_000 + SETTLE_US).is_empty());
        assert_eq!((counts(&t), t.waiting()), ((1, 0, 1, 0), (0, 0)));
        // Its attempt, far too late, waits, then is forgotten.
        t.absorb(&[attempt("a", 200, 5_000, 9_000)]);
        assert_eq!(t.waiting(), (0, 1));
        assert!(finish(&mut t).is_empty());
        assert_eq!((counts(&t), t.orphaned()), ((1, 0, 1, 0), 1));
    }

    #[test]
    fn attempts_older_than_the_horizon_are_forgotten() {
        let mut t = JoinTable::default();
        t.absorb(&[attempt("old", 200, 1_000, 2_000), attempt("new", 200, 10_000, 20_000)]);
        assert!(settle(&mut t, 2_000 + HORIZON_US - 1).is_empty());
        assert_eq!(t.waiting(), (0, 2));
        settle(&mut t, 2_000 + HORIZON_US);
        assert_eq!((t.waiting(), t.orphaned()), ((0, 1), 1));
        // The evicted attempt's request, if it ever comes, is unmatched.
        t.remember(&ok("old", 0, 3_000));
        t.remember(&ok("new", 0, 30_000));
        assert_eq!(finish(&mut t), Overheads::from([("new".into(), 20_000)]));
        assert_eq!(counts(&t), (2, 1, 1, 0));
    }

    #[test]
    fn merged_tables_join_across_each_other() {
        let (mut a, mut b) = (JoinTable::default(), JoinTable::default());
        a.remember(&ok("x", 0, 10_000));
        b.absorb(&[attempt("x", 200, 1_000, 4_000), attempt("y", 200, 1_000, 2_000)]);
        a.absorb(&[attempt("y", 200, 3_000, 4_000)]);
        b.remember(&ok("z", 0, 1_000));
        settle(&mut b, 1_000 + SETTLE_US);
        a.merge(b);
        a.remember(&ok("y", 0, 5_000));
        assert_eq!(
            finish(&mut a),
            Overheads::from([("x".into(), 7_000), ("y".into(), 4_000)])
        );
        assert_eq!(counts(&a), (3, 2, 1, 0));
    }

    /// The join as it was: every request remembered, then every attempt of
    /// every journal, then the latest-received 2xx attempt per request.
    fn all_at_end(requests: &[RequestRecord], attempts: &[Record]) -> (Overheads, (u64, u64, u64, u64)) {
        let mut served: HashMap<&str, (u64, u64)> = HashMap::new();
        for a in attempts {
            let Some(id) = a.correlation_id.as_deref() else {
                continue;
            };
            if (200..300).contains(&a.status) && a.received_us > 0 {
                let e = served
                    .entry(id)
                    .or_insert((a.received_us, a.finished_us - a.received_us));
                if a.received_us >= e.0 {
                    *e = (a.received_us, a.finished_us - a.received_us);
                }
            }
        }
        let mut out = Overheads::new();
        let (mut remembered, mut negative) = (0, 0);
        for r in requests.iter().filter(|r| r.outcome == Outcome::Ok) {
            remembered += 1;
            if let Some(&(_, mock)) = served.get(&*r.id) {
                let client = r.last_byte_us.unwrap_or(0) - r.sent_us;
                negative += u64::from(mock > client);
                out.insert(r.id.to_string(), client.saturating_sub(mock));
            }
        }
        let matched = out.len() as u64;
        (out, (remembered, matched, remembered - matched, negative))
    }

    /// A request: sent at `sent`, its last byte `len` later; its attempts
    /// (status, received offset, duration, journal lag), each finishing by
    /// the last byte (plus a little, for the mock's bookkeeping) and
    /// journaled up to 1.9 s later (under SETTLE_US); and how long its record
    /// takes to reach the sink.
    #[derive(Debug, Clone)]
    struct Case {
        sent: u64,
        len: u64,
        ok: bool,
        attempts: Vec<(u16, u64, u64, u64)>,
        sink_lag: u64,
    }

    fn case() -> impl Strategy<Value = Case> {
        (
            0..60_000_000u64,
            1_000..3_000_000u64,
            prop::bool::weighted(0.8),
            prop::collection::vec(
                (
                    prop::sample::select(vec![200u16, 200, 429, 503]),
                    0..1_000u64,
                    0..1_000u64,
                    prop_oneof![3 => 0..1_000u64, 1 => 0..1_900_000u64],
                ),
                0..4,
            ),
            0..3_000_000u64,
        )
            .prop_map(|(sent, len, ok, shape, sink_lag)| {
                // Attempts one after another within the request, distinct
                // received times; the last may end up to 1 ms after the last byte.
                let n = shape.len() as u64;
                let attempts = shape
                    .into_iter()
                    .enumerate()
                    .map(|(i, (status, jitter, dur, lag))| {
                        let slot = len / n.max(1);
                        let at = i as u64 * slot + jitter.min(slot.saturating_sub(1));
                        (status, at, dur.min(len - at + 1_000), lag)
                    })
                    .collect();
                Case {
                    sent,
                    len,
                    ok,
                    attempts,
                    sink_lag,
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Drained every `tick` µs (attempts once journaled, requests once
        /// their record reaches the sink, either first), the bounded join
        /// ends with the numbers of the old one.
        #[test]
        fn the_bounded_join_equals_the_join_at_the_end(
            cases in prop::collection::vec(case(), 0..60),
            tick in 10_000..1_000_000u64,
            providers in 1..4usize,
        ) {
            const T0: u64 = 1_700_000_000_000_000;
            let mut requests = Vec::new();
            // (journaled, provider, record)
            let mut attempts = Vec::new();
            for (i, c) in cases.iter().enumerate() {
                let id = format!("r{i}");
                let sent = T0 + c.sent;
                let mut r = ok(&id, sent, sent + c.len);
                if !c.ok {
                    r.outcome = Outcome::ServerError;
                }
                requests.push((sent + c.len + c.sink_lag, r));
                for (k, &(status, at, dur, lag)) in c.attempts.iter().enumerate() {
                    let received = sent + at;
                    let a = attempt(&id, status, received, received + dur);
                    attempts.push((received + dur + lag, (i + k) % providers, a));
                }
            }
            let (want, want_counts) = all_at_end(
                &requests.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
                &attempts.iter().map(|(_, _, a)| a.clone()).collect::<Vec<_>>(),
            );
            requests.sort_by_key(|(at, _)| *at);
            attempts.sort_by_key(|(at, _, _)| *at);

            let mut t = JoinTable::default();
            let mut got = Overheads::new();
            let mut peak = 0;
            let (mut ri, mut ai) = (0, 0);
            let mut now = T0;
            while ri < requests.len() || ai < attempts.len() {
                now += tick;
                // Records reaching the sink before this drain.
                while ri < requests.len() && requests[ri].0 < now {
                    t.remember(&requests[ri].1);
                    ri += 1;
                }
                // The drain: each provider's journal, what was journaled before `now`.
                let end = ai + attempts[ai..].iter().take_while(|(f, _, _)| *f < now).count();
                for p in 0..providers {
                    let batch: Vec<Record> =
                        attempts[ai..end].iter().filter(|(_, q, _)| *q == p).map(|(_, _, a)| a.clone()).collect();
                    t.absorb(&batch);
                }
                ai = end;
                t.settle(now, |id, o| { got.insert(id.to_string(), o); });
                let (w, a) = t.waiting();
                peak = peak.max(w + a);
            }
            t.finish(|id, o| { got.insert(id.to_string(), o); });
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(counts(&t), want_counts);
            prop_assert_eq!(t.waiting(), (0, 0));
            prop_assert!(peak <= requests.len() + attempts.len());
        }
    }

    #[test]
    fn memory_is_bounded_by_the_rate_not_the_length() {
        // 1,000 req/s for 200 s, drained every 250 ms: the tables never hold
        // more than the last few seconds.
        const T0: u64 = 1_700_000_000_000_000;
        let mut t = JoinTable::default();
        let mut matched = 0u64;
        let mut peak = (0, 0);
        for tick in 0..800u64 {
            let now = T0 + tick * 250_000;
            let mut batch = Vec::new();
            for i in 0..250u64 {
                let n = tick * 250 + i;
                let sent = now + i * 1_000;
                let id = format!("r{n}");
                if n % 10 == 0 {
                    // A failed request whose 2xx attempt is an orphan.
                    batch.push(attempt(&id, 200, sent, sent + 500));
                    continue;
                }
                batch.push(attempt(&id, 200, sent + 100, sent + 2_000));
                t.remember(&ok(&id, sent, sent + 3_000));
            }
            t.absorb(&batch);
            t.settle(now + 250_000, |_, o| {
                assert_eq!(o, 1_100);
                matched += 1;
            });
            let (w, a) = t.waiting();
            peak = (peak.0.max(w), peak.1.max(a));
        }
        t.finish(|_, _| matched += 1);
        assert_eq!(matched, 180_000);
        assert_eq!(counts(&t), (180_000, 180_000, 0, 0));
        assert!(peak.0 <= 2_500, "{peak:?}");
        assert!(peak.1 <= 3_100, "{peak:?}");
    }
}
