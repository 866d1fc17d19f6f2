//! Metrics: every [`RequestRecord`] folded, as it arrives, into HDR
//! histograms (microseconds, 3 significant digits), outcome counts, a
//! per-second series, chunk/token accounting and goodput. Memory does not
//! grow with the number of requests: the overhead join keeps only the
//! requests and attempts of the last few seconds (see [`join`]).
//!
//! # Definitions
//!
//! Written down once here and used by histograms, goodput, checks and
//! reports alike. "Start" is the *intended* send time (the schedule's, for
//! open loop; the user's decision, for closed loop), so a slow generator or
//! a stalled target cannot hide latency (coordinated omission corrected);
//! the same quantities from the actual send are kept beside them.
//!
//! - **E2E** = last byte − intended (`e2e`); last byte − sent (`e2e_from_send`).
//! - **TTFT** = first chunk with content − intended (`ttft`); − sent
//!   (`ttft_from_send`). Role-only chunks carry no content and do not count.
//! - **ITL** = the gaps between consecutive content chunks (the TTFT gap
//!   excluded), per token: when usage reports more completion tokens than
//!   content chunks, each gap is divided by the mean tokens per chunk.
//! - **TPOT** = (E2E − TTFT)/(completion tokens − 1), for at least 2 tokens.
//! - **Dispatch** = sent − intended, for every request sent in an open-loop
//!   phase (a closed-loop user sends when it means to: nothing to measure).
//! - **Overhead** = client time − mock time of the attempt that served the
//!   request (see [`join`]).
//!
//! Latencies are those of successful requests ([`Outcome::Ok`]); failures
//! are counted by class instead. TTFT, ITL and TPOT are those of streamed
//! requests: a whole answer's "first content" is its body, which says
//! nothing about tokens. A request is **good** when it succeeded and meets
//! every [`Slo`] bound that is set (E2E and TTFT from the intended time; a
//! bound on a quantity the request does not have — TTFT or TPOT of a
//! non-streamed answer, TPOT of a one-token answer — does not apply);
//! goodput = good / sent. A chunk is not a token: content chunks and usage
//! tokens of streamed requests are summed side by side and the requests
//! where they differ are counted.

pub mod join;
mod metric;
pub mod series;
pub mod sketch;
mod summary;

#[cfg(test)]
pub(crate) mod fixtures;

use std::sync::Arc;

use hdrhistogram::Histogram;
use mock_providers::Record;

use crate::load::record::{Outcome, RequestRecord};
use crate::scenario::{Check, Rule, Scenario, Slo};
pub use join::{JoinSummary, JoinTable};
pub use metric::{Metric, Timings, itl_gaps};
use metric::{SloUs, micros};
pub use series::{Second, SecondRow, Series};
pub use summary::{Goodput, MetricsSummary, Percentiles, ProbeSummary, TokenAccounting};

/// Significant decimal digits of every latency histogram.
pub const SIGFIG: u8 = 3;
/// How many offending request ids are kept per check.
pub const OFFENDERS: usize = 5;

/// A latency check's bound, watched while recording so the first offending
/// request ids are known without keeping records.
#[derive(Debug, Clone, PartialEq)]
struct Probe {
    metric: Metric,
    percentile: f64,
    bound_us: u64,
    /// Requests whose value exceeded the bound (for ITL: any of its gaps).
    over: u64,
    offenders: Vec<Arc<str>>,
}

/// An empty auto-resizing histogram with [`SIGFIG`] digits.
fn histogram() -> Histogram<u64> {
    // `Histogram::new(3)` only fails for more than 5 digits; the empty sum
    // is defined as exactly that histogram, without an `expect` here.
    std::iter::empty::<Histogram<u64>>().sum()
}

fn keep(offenders: &mut Vec<Arc<str>>, id: &Arc<str>) {
    if offenders.len() < OFFENDERS {
        offenders.push(Arc::clone(id));
    }
}

/// Keeps the [`OFFENDERS`] smallest ids, sorted: the overhead join settles
/// requests in no stable order, so its offenders are chosen by id.
fn keep_smallest(offenders: &mut Vec<Arc<str>>, id: &str) {
    let at = offenders.partition_point(|o| **o < *id);
    if at < OFFENDERS && offenders.get(at).is_none_or(|o| **o != *id) {
        offenders.insert(at, Arc::from(id));
        offenders.truncate(OFFENDERS);
    }
}

/// Folds one matched request's overhead into its histogram and probes.
fn fold_overhead(h: &mut Histogram<u64>, probes: &mut [Probe], unrecorded: &mut u64, id: &str, overhead: u64) {
    if h.record(overhead).is_err() {
        *unrecorded += 1;
    }
    for probe in probes.iter_mut().filter(|p| p.metric == Metric::Overhead) {
        if overhead > probe.bound_us {
            probe.over += 1;
            keep_smallest(&mut probe.offenders, id);
        }
    }
}

/// Folds request records into metrics. One per load worker, merged at the end.
#[derive(Debug, Clone)]
pub struct Collector {
    histograms: [Histogram<u64>; Metric::ALL.len()],
    outcomes: [u64; Outcome::ALL.len()],
    series: Series,
    tokens: TokenAccounting,
    slo: Slo,
    slo_us: SloUs,
    good: u64,
    probes: Vec<Probe>,
    error_offenders: Vec<Arc<str>>,
    join: JoinTable,
    unrecorded: u64,
    first_us: Option<u64>,
    last_us: Option<u64>,
    /// Per phase: closed loop, where a request is sent when it is meant to be
    /// and dispatch delay means nothing (it is not recorded).
    closed_phases: Vec<bool>,
}

impl Collector {
    /// A collector for `scenario`: its SLO for goodput, its latency checks'
    /// bounds for offenders.
    pub fn new(scenario: &Scenario) -> Collector {
        let mut collector = Collector::with(scenario.slo, &scenario.checks);
        collector.closed_phases = scenario
            .phases
            .iter()
            .map(|p| matches!(p.load, crate::scenario::Load::Closed { .. }))
            .collect();
        collector
    }

    /// A collector for `scenario` run by an engine that numbers its phases
    /// from `first_phase` (see [`crate::load::engine::EngineConfig::first_phase`]).
    pub fn numbered_from(scenario: &Scenario, first_phase: u16) -> Collector {
        let mut collector = Collector::new(scenario);
        collector
            .closed_phases
            .splice(0..0, std::iter::repeat_n(false, usize::from(first_phase)));
        collector
    }

    /// A collector for an SLO and checks (only latency checks matter here).
    pub fn with(slo: Slo, checks: &[Check]) -> Collector {
        let probes = checks
            .iter()
            .filter_map(|c| match c.rule {
                Rule::Latency {
                    metric,
                    percentile,
                    max,
                } => Some(Probe {
                    metric: metric.into(),
                    percentile,
                    bound_us: micros(max),
                    over: 0,
                    offenders: Vec::new(),
                }),
                _ => None,
            })
            .collect();
        Collector {
            histograms: std::array::from_fn(|_| histogram()),
            outcomes: [0; Outcome::ALL.len()],
            series: Series::default(),
            tokens: TokenAccounting::default(),
            slo,
            slo_us: SloUs::from(&slo),
            good: 0,
            probes,
            error_offenders: Vec::new(),
            join: JoinTable::default(),
            unrecorded: 0,
            first_us: None,
            last_us: None,
            closed_phases: Vec::new(),
        }
    }

    fn sample(&mut self, metric: Metric, value_us: u64) {
        if self.histograms[metric.index()].record(value_us).is_err() {
            self.unrecorded += 1;
        }
    }

    /// Folds one request in.
    pub fn record(&mut self, r: &RequestRecord) {
        self.outcomes[r.outcome.index()] += 1;
        let sent = r.outcome != Outcome::Dropped;
        let mut timings = Timings::of(r);
        if self.closed_phases.get(usize::from(r.phase)).copied().unwrap_or(false) {
            timings.dispatch_us = None;
        }

        for metric in Metric::ALL {
            if let Some(v) = timings.get(metric) {
                self.sample(metric, v);
            }
        }
        let mut itl_max = None::<u64>;
        for gap in itl_gaps(r) {
            self.sample(Metric::Itl, gap);
            itl_max = itl_max.max(Some(gap));
        }
        for probe in &mut self.probes {
            let value = match probe.metric {
                Metric::Itl => itl_max,
                m => timings.get(m),
            };
            if value.is_some_and(|v| v > probe.bound_us) {
                probe.over += 1;
                keep(&mut probe.offenders, &r.id);
            }
        }

        if r.outcome.is_error() {
            keep(&mut self.error_offenders, &r.id);
        }
        if sent && timings.meets(r, &self.slo_us) {
            self.good += 1;
        }

        if r.stream && sent {
            match r.completion_tokens {
                Some(tokens) => {
                    let t = &mut self.tokens;
                    t.streams_with_usage += 1;
                    t.content_chunks += u64::from(r.content_chunks);
                    t.completion_tokens += tokens;
                    if u64::from(r.content_chunks) != tokens {
                        t.mismatched += 1;
                        if t.mismatch_examples.len() < OFFENDERS {
                            t.mismatch_examples.push(String::from(&*r.id));
                        }
                    }
                }
                None if r.outcome == Outcome::Ok => self.tokens.streams_without_usage += 1,
                None => {}
            }
        }

        self.series.at(r.intended_us).intended += 1;
        let ended_us = if sent {
            self.series.at(r.sent_us).sent += 1;
            let ended_us = r.last_byte_us.or(r.first_content_us).or(r.head_us).unwrap_or(r.sent_us);
            let ended = self.series.at(ended_us);
            ended.completed += 1;
            ended.errors += u32::from(r.outcome.is_error());
            if let Some(v) = timings.e2e_us {
                ended.e2e.record(v);
            }
            if let Some(v) = timings.ttft_us {
                ended.ttft.record(v);
            }
            ended_us
        } else {
            self.series.at(r.intended_us).dropped += 1;
            r.intended_us
        };
        self.first_us = Some(self.first_us.map_or(r.intended_us, |f| f.min(r.intended_us)));
        self.last_us = Some(self.last_us.map_or(ended_us, |l| l.max(ended_us)));
    }

    /// Remembers what the overhead join needs of a request (its id and
    /// client duration; successful requests only) until it settles. See
    /// [`join`] for the cost.
    pub fn remember_for_join(&mut self, r: &RequestRecord) {
        self.join.remember(r);
    }

    /// Takes in attempts drained from a mock journal (any provider, any
    /// order) for the overhead join.
    pub fn absorb_attempts(&mut self, attempts: &[Record]) {
        self.join.absorb(attempts);
    }

    /// Settles the overhead join up to `watermark_us`, when the latest drain
    /// of every journal began (see [`JoinTable::settle`]): the overhead of
    /// each request matched goes into its histogram now.
    pub fn settle_join(&mut self, watermark_us: u64) {
        let h = &mut self.histograms[Metric::Overhead.index()];
        let (probes, unrecorded) = (&mut self.probes, &mut self.unrecorded);
        self.join.settle(watermark_us, |id, overhead| {
            fold_overhead(h, probes, unrecorded, id, overhead)
        });
    }

    /// Settles every request still waiting in the overhead join: call it
    /// once the run is over and the journals drained a last time.
    pub fn finish_join(&mut self) {
        let h = &mut self.histograms[Metric::Overhead.index()];
        let (probes, unrecorded) = (&mut self.probes, &mut self.unrecorded);
        self.join
            .finish(|id, overhead| fold_overhead(h, probes, unrecorded, id, overhead));
    }

    /// Joins a journal holding every attempt of the run with the requests
    /// remembered, and settles them all: [`absorb_attempts`] then
    /// [`finish_join`]. For a run joined at its end (one call).
    ///
    /// [`absorb_attempts`]: Collector::absorb_attempts
    /// [`finish_join`]: Collector::finish_join
    pub fn join_journal(&mut self, journal: &[Record]) {
        self.absorb_attempts(journal);
        self.finish_join();
    }

    /// The overhead join, for its waiting and orphan counts.
    pub fn join(&self) -> &JoinTable {
        &self.join
    }

    /// Adds another worker's collector (built for the same scenario).
    pub fn merge(&mut self, other: Collector) {
        for metric in Metric::ALL {
            let (ours, theirs) = (&mut self.histograms[metric.index()], &other.histograms[metric.index()]);
            if ours.add(theirs).is_err() {
                self.unrecorded += theirs.len();
            }
        }
        for (ours, theirs) in self.outcomes.iter_mut().zip(other.outcomes) {
            *ours += theirs;
        }
        self.series.merge(&other.series);
        let t = &mut self.tokens;
        t.streams_with_usage += other.tokens.streams_with_usage;
        t.streams_without_usage += other.tokens.streams_without_usage;
        t.content_chunks += other.tokens.content_chunks;
        t.completion_tokens += other.tokens.completion_tokens;
        t.mismatched += other.tokens.mismatched;
        t.mismatch_examples.extend(other.tokens.mismatch_examples);
        t.mismatch_examples.truncate(OFFENDERS);
        self.good += other.good;
        for (ours, theirs) in self.probes.iter_mut().zip(other.probes) {
            ours.over += theirs.over;
            if ours.metric == Metric::Overhead {
                for id in &theirs.offenders {
                    keep_smallest(&mut ours.offenders, id);
                }
            } else {
                ours.offenders.extend(theirs.offenders);
                ours.offenders.truncate(OFFENDERS);
            }
        }
        self.error_offenders.extend(other.error_offenders);
        self.error_offenders.truncate(OFFENDERS);
        self.unrecorded += other.unrecorded;
        self.first_us = match (self.first_us, other.first_us) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_us = self.last_us.max(other.last_us);
        self.join.merge(other.join);
    }

    pub fn histogram(&self, metric: Metric) -> &Histogram<u64> {
        &self.histograms[metric.index()]
    }

    pub fn series(&self) -> &Series {
        &self.series
    }

    pub fn summary(&self) -> MetricsSummary {
        let sent = self.outcomes.iter().sum::<u64>() - self.outcomes[Outcome::Dropped.index()];
        let errors = Outcome::ALL
            .iter()
            .filter(|o| o.is_error())
            .map(|o| self.outcomes[o.index()])
            .sum();
        let probes = self
            .probes
            .iter()
            .map(|p| {
                let h = self.histogram(p.metric);
                ProbeSummary {
                    metric: p.metric,
                    percentile: p.percentile,
                    bound_us: p.bound_us,
                    value_us: (!h.is_empty()).then(|| h.value_at_percentile(p.percentile)),
                    samples: h.len(),
                    over: p.over,
                    offenders: p.offenders.iter().map(|id| String::from(&**id)).collect(),
                }
            })
            .collect();
        MetricsSummary {
            outcomes: self.outcomes,
            requests: self.outcomes.iter().sum(),
            sent,
            errors,
            metrics: std::array::from_fn(|i| Percentiles::of(&self.histograms[i])),
            tokens: self.tokens.clone(),
            goodput: Goodput {
                slo: self.slo,
                good: self.good,
                sent,
            },
            join: self.join.summary(),
            probes,
            error_offenders: self.error_offenders.iter().map(|id| String::from(&**id)).collect(),
            unrecorded: self.unrecorded,
            first_us: self.first_us,
            last_us: self.last_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::fixtures::{attempt, failed, record, scenario, stream};
    use super::*;

    #[test]
    fn closed_loop_requests_have_no_dispatch_delay() {
        let scenario = fixtures::scenario("[[phases]]\nname = \"users\"\nduration-s = 1\nusers = { count = 2 }\n");
        let mut c = Collector::new(&scenario);
        c.record(&fixtures::record("open", 1_000, 1_500));
        let mut closed = fixtures::record("closed", 2_000, 2_000);
        closed.phase = 1;
        c.record(&closed);
        let s = c.summary();
        assert_eq!(s.metric(Metric::Dispatch).count, 1, "only the open-loop request counts");
        assert_eq!(s.metric(Metric::E2e).count, 2);
    }

    #[test]
    fn the_histogram_is_three_digits_and_grows() {
        let mut h = histogram();
        assert_eq!(h.sigfig(), SIGFIG);
        h.record(3_600_000_000).unwrap();
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn percentiles_of_known_records() {
        let mut c = Collector::with(Slo::default(), &[]);
        // e2e from intended = 1..=1000 ms; sent 1 ms after intended.
        for i in 1..=1000u64 {
            let mut r = record(&format!("r{i}"), 0, 1_000);
            r.last_byte_us = Some(i * 1_000);
            c.record(&r);
        }
        let s = c.summary();
        let e2e = s.metric(Metric::E2e);
        assert_eq!(e2e.count, 1000);
        assert_eq!(e2e.min, 1_000);
        let near = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 0.001;
        assert!(near(e2e.p50, 500_000), "{}", e2e.p50);
        assert!(near(e2e.p90, 900_000), "{}", e2e.p90);
        assert!(near(e2e.p99, 990_000), "{}", e2e.p99);
        assert!(near(e2e.max, 1_000_000), "{}", e2e.max);
        assert!((e2e.mean - 500_500.0).abs() < 500.0, "{}", e2e.mean);
        assert!(near(s.metric(Metric::E2eFromSend).p50, 499_000));
        assert_eq!(s.metric(Metric::Dispatch).p99, 1_000);
        // Non-streamed answers have no TTFT, ITL or TPOT.
        assert_eq!(s.metric(Metric::Ttft).count, 0);
        assert_eq!(s.metric(Metric::Itl).count, 0);
        assert_eq!(s.metric(Metric::Tpot).count, 0);
        assert_eq!((s.requests, s.sent, s.errors), (1000, 1000, 0));
    }

    #[test]
    fn outcomes_errors_and_dropped() {
        let mut c = Collector::with(Slo::default(), &[]);
        c.record(&record("ok", 0, 0));
        c.record(&failed("rl", 0, Outcome::RateLimited));
        c.record(&failed("5xx", 0, Outcome::ServerError));
        c.record(&failed("drop", 0, Outcome::Dropped));
        let s = c.summary();
        assert_eq!(s.outcome(Outcome::Ok), 1);
        assert_eq!(s.outcome(Outcome::RateLimited), 1);
        assert_eq!(s.outcome(Outcome::Dropped), 1);
        assert_eq!((s.requests, s.sent, s.errors), (4, 3, 2));
        assert_eq!(s.error_rate(), Some(2.0 / 3.0));
        assert_eq!(s.error_offenders, ["rl", "5xx"]);
        // The dropped request has no dispatch delay.
        assert_eq!(s.metric(Metric::Dispatch).count, 3);
    }

    #[test]
    fn goodput_needs_every_bound_that_is_set() {
        let slo = Slo {
            ttft: Some(Duration::from_millis(50)),
            e2e: Some(Duration::from_millis(200)),
            tpot: Some(Duration::from_millis(20)),
        };
        let mut c = Collector::with(slo, &[]);
        // Good: ttft 10 ms, e2e 50 ms, tpot 10 ms.
        c.record(&stream("good", 0, 0, &[10_000, 20_000, 30_000, 40_000, 50_000], 5));
        // TTFT too slow.
        c.record(&stream("slow-ttft", 0, 0, &[60_000, 70_000], 2));
        // TPOT too slow: (150 − 10)/(2 − 1).
        c.record(&stream("slow-tpot", 0, 0, &[10_000, 150_000], 2));
        // E2E measured from the intended time: 190 ms of dispatch delay.
        c.record(&stream("late", 0, 190_000, &[10_000, 20_000], 2));
        // A whole answer is judged on E2E only.
        c.record(&record("whole", 0, 0));
        c.record(&failed("failed", 0, Outcome::ServerError));
        c.record(&failed("dropped", 0, Outcome::Dropped));
        let g = c.summary().goodput;
        assert_eq!((g.good, g.sent), (2, 6));
        assert_eq!(g.ratio(), Some(2.0 / 6.0));
    }

    #[test]
    fn chunk_and_token_accounting() {
        let mut c = Collector::with(Slo::default(), &[]);
        c.record(&stream("same", 0, 0, &[1, 2, 3], 3));
        c.record(&stream("more-tokens", 0, 0, &[1, 2], 5));
        let mut no_usage = stream("no-usage", 0, 0, &[1], 1);
        no_usage.completion_tokens = None;
        c.record(&no_usage);
        c.record(&record("whole", 0, 0));
        let t = c.summary().tokens;
        assert_eq!(t.streams_with_usage, 2);
        assert_eq!(t.streams_without_usage, 1);
        assert_eq!((t.content_chunks, t.completion_tokens), (5, 8));
        assert_eq!(t.mismatched, 1);
        assert_eq!(t.mismatch_examples, ["more-tokens"]);
    }

    #[test]
    fn time_series_buckets_by_second() {
        let mut c = Collector::with(Slo::default(), &[]);
        let base = 1_700_000_000_000_000;
        // Intended in second 0, sent in second 0, done in second 1.
        let mut r = record("a", base + 100_000, base + 200_000);
        r.last_byte_us = Some(base + 1_300_000);
        c.record(&r);
        // Intended in second 1, sent late in second 2, done in second 2.
        let mut r = stream("b", base + 1_900_000, base + 2_100_000, &[100_000, 200_000], 2);
        r.last_byte_us = Some(base + 2_400_000);
        c.record(&r);
        c.record(&failed("c", base + 2_500_000, Outcome::Timeout));
        c.record(&failed("d", base + 2_600_000, Outcome::Dropped));
        let rows = c.series().rows(Some(base));
        assert_eq!(rows.len(), 3);
        let col = |f: fn(&SecondRow) -> u32| rows.iter().map(f).collect::<Vec<_>>();
        assert_eq!(col(|r| r.intended), [1, 1, 2]);
        assert_eq!(col(|r| r.sent), [1, 0, 2]);
        assert_eq!(col(|r| r.dropped), [0, 0, 1]);
        assert_eq!(col(|r| r.completed), [0, 1, 2]);
        assert_eq!(col(|r| r.errors), [0, 0, 1]);
        assert_eq!(rows[1].e2e_p50_us, Some(1_200_000));
        assert_eq!(rows[2].e2e_p99_us, Some(500_000));
        assert_eq!(rows[2].ttft_p50_us, Some(300_000));
        assert_eq!(rows[1].ttft_p50_us, None);
        let s = c.summary();
        assert_eq!((s.first_us, s.last_us), (Some(base + 100_000), Some(base + 2_600_000)));
    }

    #[test]
    fn latency_checks_keep_their_first_offenders() {
        let s = scenario(
            "[[checks]]\nkind = \"latency\"\nmetric = \"e2e\"\npercentile = 50\nmax-ms = 5\n\
             [[checks]]\nkind = \"latency\"\nmetric = \"itl\"\nmax-ms = 15\n\
             [[checks]]\nkind = \"latency\"\nmetric = \"overhead\"\nmax-ms = 1\n",
        );
        let mut c = Collector::new(&s);
        for i in 0..10u64 {
            let mut r = record(&format!("r{i}"), 0, 0);
            r.last_byte_us = Some(i * 1_000);
            c.record(&r);
            c.remember_for_join(&r);
        }
        c.record(&stream("itl-ok", 0, 0, &[1_000, 10_000], 2));
        c.record(&stream("itl-slow", 0, 0, &[1_000, 10_000, 30_000], 3));
        // Mock time 0 for every request: overhead = client time.
        let journal: Vec<_> = (0..10).map(|i| attempt(&format!("r{i}"), 200, 5, 5)).collect();
        c.join_journal(&journal);
        let sum = c.summary();
        let e2e = sum.probe(Metric::E2e, 50.0, 5_000).unwrap();
        // r6..r9 and both streams (e2e 10 and 30 ms) exceed 5 ms.
        assert_eq!(e2e.over, 6);
        assert_eq!(e2e.offenders, ["r6", "r7", "r8", "r9", "itl-ok"]);
        assert_eq!(e2e.samples, 12);
        let itl = sum.probe(Metric::Itl, 99.0, 15_000).unwrap();
        assert_eq!(
            (itl.over, itl.offenders.as_slice()),
            (1, ["itl-slow".to_string()].as_slice())
        );
        let overhead = sum.probe(Metric::Overhead, 99.0, 1_000).unwrap();
        assert_eq!(overhead.over, 8);
        assert_eq!(overhead.offenders, ["r2", "r3", "r4", "r5", "r6"]);
        assert_eq!(sum.metric(Metric::Overhead).count, 10);
        assert_eq!(sum.join.unmatched, 0);
    }

    #[test]
    fn merging_workers_equals_one_collector() {
        let s = scenario("[[checks]]\nkind = \"latency\"\nmetric = \"ttft\"\nmax-ms = 20\n");
        let records: Vec<_> = (0..40u64)
            .map(|i| match i % 4 {
                0 => failed(&format!("f{i}"), i * 100_000, Outcome::ServerError),
                _ => stream(
                    &format!("s{i}"),
                    i * 100_000,
                    i * 100_000 + 50,
                    &[i as u32 * 1_000, 50_000],
                    3,
                ),
            })
            .collect();
        let mut one = Collector::new(&s);
        let (mut a, mut b) = (Collector::new(&s), Collector::new(&s));
        for (i, r) in records.iter().enumerate() {
            one.record(r);
            one.remember_for_join(r);
            let worker = if i % 2 == 0 { &mut a } else { &mut b };
            worker.record(r);
            worker.remember_for_join(r);
        }
        a.merge(b);
        let journal: Vec<_> = records.iter().map(|r| attempt(&r.id, 200, 1, 100)).collect();
        one.join_journal(&journal);
        a.join_journal(&journal);
        let (mut x, mut y) = (one.summary(), a.summary());
        assert_eq!(x.join.matched, 30);
        // Which ids are the first few depends on which worker saw them.
        for s in [&mut x, &mut y] {
            assert_eq!(s.probes[0].offenders.len(), OFFENDERS);
            assert_eq!(s.error_offenders.len(), OFFENDERS);
            assert_eq!(s.tokens.mismatch_examples.len(), OFFENDERS);
            s.probes[0].offenders.clear();
            s.error_offenders.clear();
            s.tokens.mismatch_examples.clear();
        }
        assert_eq!(x, y);
        assert_eq!(one.series().rows(None), a.series().rows(None));
    }
}
