//! What a run's metrics come to: percentiles per metric, outcome counts,
//! chunk/token accounting, goodput, and the values latency checks need.

use hdrhistogram::Histogram;

use super::Metric;
use super::join::JoinSummary;
use crate::load::record::Outcome;
use crate::scenario::Slo;

/// What a latency check is evaluated on.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSummary {
    pub metric: Metric,
    pub percentile: f64,
    pub bound_us: u64,
    /// The metric at `percentile`, `None` without samples.
    pub value_us: Option<u64>,
    pub samples: u64,
    /// Requests above the bound.
    pub over: u64,
    /// The first of them.
    pub offenders: Vec<String>,
}

/// A histogram's percentiles, in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// Content chunks against usage tokens, over streamed requests that
/// reported usage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenAccounting {
    /// Streamed requests whose answer carried completion tokens in `usage`.
    pub streams_with_usage: u64,
    /// Streamed successful requests whose answer carried no usage.
    pub streams_without_usage: u64,
    pub content_chunks: u64,
    pub completion_tokens: u64,
    /// Requests whose content chunks and completion tokens differ.
    pub mismatched: u64,
    /// The first of them.
    pub mismatch_examples: Vec<String>,
}

/// Requests meeting every SLO.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Goodput {
    pub slo: Slo,
    pub good: u64,
    pub sent: u64,
}

impl Goodput {
    /// good / sent; `None` when nothing was sent.
    pub fn ratio(&self) -> Option<f64> {
        (self.sent > 0).then(|| self.good as f64 / self.sent as f64)
    }
}

/// Everything the checks and reports need of the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSummary {
    /// Records by outcome, in [`Outcome::ALL`] order.
    pub outcomes: [u64; Outcome::ALL.len()],
    /// Every request the schedule produced (sent or dropped).
    pub requests: u64,
    /// Requests actually sent (every outcome but dropped).
    pub sent: u64,
    /// Sent requests that failed ([`Outcome::is_error`]).
    pub errors: u64,
    /// Per metric, in [`Metric::ALL`] order.
    pub metrics: [Percentiles; Metric::ALL.len()],
    pub tokens: TokenAccounting,
    pub goodput: Goodput,
    pub join: JoinSummary,
    /// One per latency check of the scenario, in order.
    pub probes: Vec<ProbeSummary>,
    /// The first failed request ids.
    pub error_offenders: Vec<String>,
    /// Samples that could not be recorded (out of the histograms' range).
    pub unrecorded: u64,
    /// The earliest intended time and the latest completion seen.
    pub first_us: Option<u64>,
    pub last_us: Option<u64>,
}

impl MetricsSummary {
    pub fn metric(&self, metric: Metric) -> &Percentiles {
        &self.metrics[metric.index()]
    }

    pub fn outcome(&self, outcome: Outcome) -> u64 {
        self.outcomes[outcome.index()]
    }

    /// errors / sent; `None` when nothing was sent.
    pub fn error_rate(&self) -> Option<f64> {
        (self.sent > 0).then(|| self.errors as f64 / self.sent as f64)
    }

    /// The summary of the latency check `(metric, percentile, bound)`.
    pub fn probe(&self, metric: Metric, percentile: f64, bound_us: u64) -> Option<&ProbeSummary> {
        self.probes
            .iter()
            .find(|p| p.metric == metric && p.percentile == percentile && p.bound_us == bound_us)
    }
}
