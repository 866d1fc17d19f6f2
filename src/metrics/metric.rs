//! The latency metrics and their per-request definitions (see the
//! [module documentation](super) for the definitions in words).

use crate::load::record::{Outcome, RequestRecord};
use crate::scenario::Slo;
use crate::scenario::raw::MetricName;

/// A latency metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    E2e,
    E2eFromSend,
    Ttft,
    TtftFromSend,
    Itl,
    Tpot,
    Dispatch,
    Overhead,
}

impl Metric {
    /// Every metric, in the order of [`Metric::index`].
    pub const ALL: [Metric; 8] = [
        Metric::E2e,
        Metric::E2eFromSend,
        Metric::Ttft,
        Metric::TtftFromSend,
        Metric::Itl,
        Metric::Tpot,
        Metric::Dispatch,
        Metric::Overhead,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The name in reports (and the HdrHistogram log tag).
    pub fn name(self) -> &'static str {
        match self {
            Metric::E2e => "e2e",
            Metric::E2eFromSend => "e2e_from_send",
            Metric::Ttft => "ttft",
            Metric::TtftFromSend => "ttft_from_send",
            Metric::Itl => "itl",
            Metric::Tpot => "tpot",
            Metric::Dispatch => "dispatch",
            Metric::Overhead => "overhead",
        }
    }

    /// What it measures, in a few words.
    pub fn describe(self) -> &'static str {
        match self {
            Metric::E2e => "last byte − intended send",
            Metric::E2eFromSend => "last byte − actual send",
            Metric::Ttft => "first content − intended send",
            Metric::TtftFromSend => "first content − actual send",
            Metric::Itl => "gap between content chunks, per token",
            Metric::Tpot => "(E2E − TTFT) / (tokens − 1)",
            Metric::Dispatch => "actual send − intended send",
            Metric::Overhead => "client time − mock time of the served attempt",
        }
    }
}

impl From<MetricName> for Metric {
    fn from(name: MetricName) -> Self {
        match name {
            MetricName::E2e => Metric::E2e,
            MetricName::E2eFromSend => Metric::E2eFromSend,
            MetricName::Ttft => Metric::Ttft,
            MetricName::Itl => Metric::Itl,
            MetricName::Tpot => Metric::Tpot,
            MetricName::Dispatch => Metric::Dispatch,
            MetricName::Overhead => Metric::Overhead,
        }
    }
}

/// The per-request values of the metrics, by the definitions above
/// (ITL, having many values per request, is [`itl_gaps`]; overhead needs
/// the journal).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    pub e2e_us: Option<u64>,
    pub e2e_from_send_us: Option<u64>,
    pub ttft_us: Option<u64>,
    pub ttft_from_send_us: Option<u64>,
    pub tpot_us: Option<u64>,
    pub dispatch_us: Option<u64>,
}

impl Timings {
    pub fn of(r: &RequestRecord) -> Timings {
        let dispatch_us = (r.outcome != Outcome::Dropped).then(|| r.sent_us.saturating_sub(r.intended_us));
        if r.outcome != Outcome::Ok {
            return Timings {
                dispatch_us,
                ..Timings::default()
            };
        }
        let first = r.first_content_us.filter(|_| r.stream);
        let tpot_us = match (first, r.last_byte_us, r.completion_tokens) {
            (Some(first), Some(last), Some(tokens)) if tokens >= 2 => {
                let gaps = tokens - 1;
                Some((last.saturating_sub(first) + gaps / 2) / gaps)
            }
            _ => None,
        };
        Timings {
            e2e_us: r.last_byte_us.map(|t| t.saturating_sub(r.intended_us)),
            e2e_from_send_us: r.last_byte_us.map(|t| t.saturating_sub(r.sent_us)),
            ttft_us: first.map(|t| t.saturating_sub(r.intended_us)),
            ttft_from_send_us: first.map(|t| t.saturating_sub(r.sent_us)),
            tpot_us,
            dispatch_us,
        }
    }

    /// The value of a per-request metric (`None` for ITL and overhead).
    pub fn get(&self, metric: Metric) -> Option<u64> {
        match metric {
            Metric::E2e => self.e2e_us,
            Metric::E2eFromSend => self.e2e_from_send_us,
            Metric::Ttft => self.ttft_us,
            Metric::TtftFromSend => self.ttft_from_send_us,
            Metric::Tpot => self.tpot_us,
            Metric::Dispatch => self.dispatch_us,
            Metric::Itl | Metric::Overhead => None,
        }
    }

    /// Whether a request with these timings meets every bound of `slo`.
    pub(super) fn meets(&self, r: &RequestRecord, slo: &SloUs) -> bool {
        let within = |value: Option<u64>, bound: Option<u64>| match (value, bound) {
            (_, None) => true,
            (Some(v), Some(b)) => v <= b,
            (None, Some(_)) => false,
        };
        r.outcome == Outcome::Ok
            && within(self.e2e_us, slo.e2e)
            && (!r.stream || within(self.ttft_us, slo.ttft))
            && (self.tpot_us.is_none() || within(self.tpot_us, slo.tpot))
    }
}

/// The ITL samples of a request, in µs (none unless it is a successful stream).
pub fn itl_gaps(r: &RequestRecord) -> impl Iterator<Item = u64> + '_ {
    let offsets: &[u32] = if r.stream && r.outcome == Outcome::Ok {
        &r.content_offsets_us
    } else {
        &[]
    };
    let chunks = offsets.len() as u64;
    // Mean tokens per content chunk, when chunks carried several tokens.
    let per_chunk = match r.completion_tokens {
        Some(tokens) if chunks > 0 && tokens > chunks => tokens as f64 / chunks as f64,
        _ => 1.0,
    };
    offsets.windows(2).map(move |w| {
        let gap = u64::from(w[1].saturating_sub(w[0]));
        if per_chunk > 1.0 {
            (gap as f64 / per_chunk).round() as u64
        } else {
            gap
        }
    })
}

/// The SLO bounds in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct SloUs {
    pub(super) ttft: Option<u64>,
    pub(super) e2e: Option<u64>,
    pub(super) tpot: Option<u64>,
}

pub(super) fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl From<&Slo> for SloUs {
    fn from(slo: &Slo) -> Self {
        SloUs {
            ttft: slo.ttft.map(micros),
            e2e: slo.e2e.map(micros),
            tpot: slo.tpot.map(micros),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::fixtures::stream;

    #[test]
    fn stream_definitions_ttft_itl_tpot() {
        // Intended 0, sent 500; content at 10, 30, 60, 100 ms after the send.
        let r = stream("s", 0, 500, &[10_000, 30_000, 60_000, 100_000], 4);
        let t = Timings::of(&r);
        assert_eq!(t.ttft_us, Some(10_500));
        assert_eq!(t.ttft_from_send_us, Some(10_000));
        assert_eq!(t.e2e_us, Some(100_500));
        // (E2E − TTFT)/(tokens − 1) = 90 ms / 3.
        assert_eq!(t.tpot_us, Some(30_000));
        assert_eq!(t.dispatch_us, Some(500));
        assert_eq!(itl_gaps(&r).collect::<Vec<_>>(), [20_000, 30_000, 40_000]);

        // Eight tokens in four chunks: each gap is spread over two tokens.
        let r = stream("s", 0, 0, &[10_000, 30_000, 60_000, 100_000], 8);
        assert_eq!(itl_gaps(&r).collect::<Vec<_>>(), [10_000, 15_000, 20_000]);
        // (90 ms)/(7) rounded.
        assert_eq!(Timings::of(&r).tpot_us, Some(12_857));

        // One token: no TPOT; one chunk: no ITL.
        let r = stream("s", 0, 0, &[10_000], 1);
        assert_eq!(Timings::of(&r).tpot_us, None);
        assert_eq!(itl_gaps(&r).count(), 0);

        // A failed stream contributes only its dispatch delay.
        let mut r = stream("s", 0, 7, &[10_000, 20_000], 2);
        r.outcome = Outcome::StreamError;
        assert_eq!(
            Timings::of(&r),
            Timings {
                dispatch_us: Some(7),
                ..Timings::default()
            }
        );
        assert_eq!(itl_gaps(&r).count(), 0);
    }
}
