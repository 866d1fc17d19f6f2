//! `summary.json`: the machine-readable verdict of a run, described by the
//! JSON Schema checked in at `reports/schema.json` (which a test holds this
//! output to). Latencies are integer microseconds; rates are per second;
//! shares are 0 to 1.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use std::collections::BTreeMap;

use super::RunReport;
use crate::checks::sweep::SweepOutcome;
use crate::checks::{self, CheckResult};
use crate::load::record::Outcome;
use crate::metrics::{Metric, Percentiles};
use crate::scenario::Load;
use crate::target::Target;

pub const SUMMARY_JSON: &str = "summary.json";
/// The version of the document's shape (`schema_version`).
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
pub struct Summary<'a> {
    schema_version: u32,
    gauntlet_version: &'static str,
    scenario: ScenarioDoc<'a>,
    target: TargetDoc<'a>,
    started_us: u64,
    ended_us: u64,
    started_at: Option<String>,
    ended_at: Option<String>,
    duration_s: f64,
    /// The run was stopped before its end (Ctrl-C, SIGTERM).
    stopped: bool,
    /// What the stop cut short (`null` when none did).
    stop: Option<StopDoc<'a>>,
    /// Every check passed, and no stop cut the run short.
    passed: bool,
    /// The load generator kept up.
    valid: bool,
    validity: ValidityDoc<'a>,
    phases: Vec<PhaseDoc<'a>>,
    requests: RequestsDoc,
    outcomes: Outcomes,
    metrics: Metrics,
    tokens: TokensDoc<'a>,
    goodput: GoodputDoc,
    overhead_join: JoinDoc,
    unrecorded_samples: u64,
    checks: Vec<CheckDoc<'a>>,
    /// The same phases straight at a mock, no router (`[floor]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    floor: Option<FloorDoc<'a>>,
    /// A capacity sweep's steps and knee (`[sweep]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    sweep: Option<SweepDoc>,
}

#[derive(Serialize)]
struct StopDoc<'a> {
    reason: &'a str,
    cut_short: Option<&'a str>,
    not_started: &'a [String],
}

#[derive(Serialize)]
struct FloorDoc<'a> {
    provider: &'a str,
    url: &'a str,
    duration_s: f64,
    valid: bool,
    validity: ValidityDoc<'a>,
    requests: RequestsDoc,
    metrics: Metrics,
    /// router / floor, per metric and quantile.
    ratios: BTreeMap<&'static str, BTreeMap<&'static str, Option<f64>>>,
    /// router − floor, µs.
    added_us: BTreeMap<&'static str, BTreeMap<&'static str, i64>>,
}

#[derive(Serialize)]
struct SweepDoc {
    knee_rate: Option<f64>,
    broke_at_rate: Option<f64>,
    min_knee: Option<f64>,
    generator_kept_up: bool,
    steps: Vec<StepDoc>,
}

#[derive(Serialize)]
struct StepDoc {
    number: usize,
    rate: f64,
    refined: bool,
    achieved_rate: Option<f64>,
    sent: u64,
    errors: u64,
    error_rate: Option<f64>,
    dropped: u64,
    e2e: PercentilesDoc,
    ttft: PercentilesDoc,
    overhead: PercentilesDoc,
    dispatch_p99_us: u64,
    generator_kept_up: bool,
    generator_problems: Vec<String>,
    held: bool,
    broke_because: Vec<String>,
}

fn floor_doc<'a>(run: &'a RunReport<'a>) -> Option<FloorDoc<'a>> {
    let floor = run.floor?;
    let mut ratios = BTreeMap::new();
    let mut added_us = BTreeMap::new();
    for a in floor.against(run.summary) {
        let quantiles = a.quantiles();
        let name = a.metric.name();
        ratios.insert(
            name,
            quantiles
                .iter()
                .map(|q| (q.name, q.ratio().map(|r| (r * 1e4).round() / 1e4)))
                .collect(),
        );
        added_us.insert(name, quantiles.iter().map(|q| (q.name, q.added_us())).collect());
    }
    let m = &floor.summary;
    Some(FloorDoc {
        provider: &floor.provider,
        url: &floor.url,
        duration_s: floor.duration_s(),
        valid: floor.validity.valid,
        validity: ValidityDoc {
            problems: &floor.validity.problems,
            worst_rate_share: floor.validity.worst_rate_share,
            dispatch_p99_us: floor.validity.dispatch_p99_us,
            dropped: floor.validity.dropped,
        },
        requests: RequestsDoc {
            total: m.requests,
            sent: m.sent,
            errors: m.errors,
            error_rate: m.error_rate(),
        },
        metrics: Metrics(m.metrics),
        ratios,
        added_us,
    })
}

fn sweep_doc(sweep: &SweepOutcome) -> SweepDoc {
    SweepDoc {
        knee_rate: sweep.knee,
        broke_at_rate: sweep.broke_at,
        min_knee: sweep.min_knee,
        generator_kept_up: sweep.generator_kept_up(),
        steps: sweep
            .by_rate()
            .into_iter()
            .map(|s| StepDoc {
                number: s.number,
                rate: s.rate,
                refined: s.refined,
                achieved_rate: s.achieved_rate,
                sent: s.sent,
                errors: s.errors,
                error_rate: s.error_rate,
                dropped: s.dropped,
                e2e: PercentilesDoc::from(&s.e2e),
                ttft: PercentilesDoc::from(&s.ttft),
                overhead: PercentilesDoc::from(&s.overhead),
                dispatch_p99_us: s.dispatch_p99_us,
                generator_kept_up: s.generator_kept_up,
                generator_problems: s.generator_problems.clone(),
                held: s.held,
                broke_because: s.broke_because.clone(),
            })
            .collect(),
    }
}

#[derive(Serialize)]
struct ScenarioDoc<'a> {
    name: &'a str,
    file: String,
    description: &'a str,
    seed: u64,
    tags: &'a [String],
}

#[derive(Serialize)]
struct TargetDoc<'a> {
    kind: &'static str,
    url: Option<&'a str>,
}

#[derive(Serialize)]
struct ValidityDoc<'a> {
    problems: &'a [String],
    worst_rate_share: f64,
    dispatch_p99_us: u64,
    dropped: u64,
}

#[derive(Serialize)]
struct PhaseDoc<'a> {
    name: &'a str,
    kind: &'static str,
    /// A warm-up phase: its requests are in no other number of the document.
    warm_up: bool,
    started_us: u64,
    ended_us: u64,
    duration_s: f64,
    requested: u64,
    sent: u64,
    dropped: u64,
    completed: u64,
    expected_rate: Option<f64>,
    achieved_rate: Option<f64>,
}

#[derive(Serialize)]
struct RequestsDoc {
    total: u64,
    sent: u64,
    errors: u64,
    error_rate: Option<f64>,
}

/// Outcome counts as `{"ok": n, ...}`, every class, in [`Outcome::ALL`] order.
struct Outcomes([u64; Outcome::ALL.len()]);

impl Serialize for Outcomes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for outcome in Outcome::ALL {
            map.serialize_entry(outcome.name(), &self.0[outcome.index()])?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct PercentilesDoc {
    count: u64,
    min_us: u64,
    mean_us: f64,
    p50_us: u64,
    p90_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
}

impl From<&Percentiles> for PercentilesDoc {
    fn from(p: &Percentiles) -> Self {
        PercentilesDoc {
            count: p.count,
            min_us: p.min,
            mean_us: (p.mean * 10.0).round() / 10.0,
            p50_us: p.p50,
            p90_us: p.p90,
            p99_us: p.p99,
            p999_us: p.p999,
            max_us: p.max,
        }
    }
}

/// Every metric as `{"e2e": {...}, ...}`, in [`Metric::ALL`] order.
struct Metrics([Percentiles; Metric::ALL.len()]);

impl Serialize for Metrics {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for metric in Metric::ALL {
            map.serialize_entry(metric.name(), &PercentilesDoc::from(&self.0[metric.index()]))?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct TokensDoc<'a> {
    streams_with_usage: u64,
    streams_without_usage: u64,
    content_chunks: u64,
    completion_tokens: u64,
    mismatched: u64,
    mismatch_examples: &'a [String],
}

#[derive(Serialize)]
struct SloDoc {
    ttft_ms: Option<f64>,
    e2e_ms: Option<f64>,
    tpot_ms: Option<f64>,
}

#[derive(Serialize)]
struct GoodputDoc {
    slo: SloDoc,
    good: u64,
    sent: u64,
    ratio: Option<f64>,
}

#[derive(Serialize)]
struct JoinDoc {
    remembered: u64,
    matched: u64,
    unmatched: u64,
    negative: u64,
}

#[derive(Serialize)]
struct CheckDoc<'a> {
    name: &'a str,
    kind: &'static str,
    passed: bool,
    /// `pass`, `fail` or `skip`.
    verdict: &'static str,
    measured: f64,
    bound: f64,
    unit: &'static str,
    detail: &'a str,
    offenders: &'a [String],
}

impl<'a> From<&'a CheckResult> for CheckDoc<'a> {
    fn from(c: &'a CheckResult) -> Self {
        CheckDoc {
            name: &c.name,
            kind: c.kind,
            passed: c.passed(),
            verdict: c.verdict.name(),
            measured: c.measured,
            bound: c.bound,
            unit: c.unit,
            detail: &c.detail,
            offenders: &c.offenders,
        }
    }
}

/// RFC 3339 UTC of a Unix time in µs.
pub fn timestamp(us: u64) -> Option<String> {
    let us = i64::try_from(us).ok()?;
    jiff::Timestamp::from_microsecond(us).ok().map(|t| t.to_string())
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The summary document of a run.
pub fn document<'a>(run: &'a RunReport<'a>) -> Summary<'a> {
    let s = run.scenario;
    let m = run.summary;
    let target = match &s.target {
        Target::Builtin => TargetDoc {
            kind: "builtin",
            url: None,
        },
        Target::Http { url, .. } => TargetDoc {
            kind: "http",
            url: Some(url),
        },
    };
    let phases = run
        .stats
        .phases
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let open = s
                .phases
                .get(i)
                .map_or(p.expected_rate > 0.0, |sp| matches!(sp.load, Load::Open(_)));
            PhaseDoc {
                name: &p.name,
                kind: if open { "open" } else { "closed" },
                warm_up: checks::warm_up(s, i),
                started_us: p.started_us,
                ended_us: p.ended_us,
                duration_s: p.ended_us.saturating_sub(p.started_us) as f64 / 1e6,
                requested: p.requested,
                sent: p.sent,
                dropped: p.dropped,
                completed: p.completed,
                expected_rate: open.then_some(p.expected_rate),
                achieved_rate: checks::achieved_rate(p),
            }
        })
        .collect();
    Summary {
        schema_version: SCHEMA_VERSION,
        gauntlet_version: env!("CARGO_PKG_VERSION"),
        scenario: ScenarioDoc {
            name: &s.meta.name,
            file: s.file.display().to_string(),
            description: &s.meta.description,
            seed: s.meta.seed,
            tags: &s.meta.tags,
        },
        target,
        started_us: run.started_us,
        ended_us: run.ended_us,
        started_at: timestamp(run.started_us),
        ended_at: timestamp(run.ended_us),
        duration_s: run.duration_s(),
        stopped: run.stopped(),
        stop: run.cut.map(|cut| StopDoc {
            reason: &cut.reason,
            cut_short: cut.cut_short.as_deref(),
            not_started: &cut.not_started,
        }),
        passed: run.passed(),
        valid: run.validity.valid,
        validity: ValidityDoc {
            problems: &run.validity.problems,
            worst_rate_share: run.validity.worst_rate_share,
            dispatch_p99_us: run.validity.dispatch_p99_us,
            dropped: run.validity.dropped,
        },
        phases,
        requests: RequestsDoc {
            total: m.requests,
            sent: m.sent,
            errors: m.errors,
            error_rate: m.error_rate(),
        },
        outcomes: Outcomes(m.outcomes),
        metrics: Metrics(m.metrics),
        tokens: TokensDoc {
            streams_with_usage: m.tokens.streams_with_usage,
            streams_without_usage: m.tokens.streams_without_usage,
            content_chunks: m.tokens.content_chunks,
            completion_tokens: m.tokens.completion_tokens,
            mismatched: m.tokens.mismatched,
            mismatch_examples: &m.tokens.mismatch_examples,
        },
        goodput: GoodputDoc {
            slo: SloDoc {
                ttft_ms: m.goodput.slo.ttft.map(ms),
                e2e_ms: m.goodput.slo.e2e.map(ms),
                tpot_ms: m.goodput.slo.tpot.map(ms),
            },
            good: m.goodput.good,
            sent: m.goodput.sent,
            ratio: m.goodput.ratio(),
        },
        overhead_join: JoinDoc {
            remembered: m.join.remembered,
            matched: m.join.matched,
            unmatched: m.join.unmatched,
            negative: m.join.negative,
        },
        unrecorded_samples: m.unrecorded,
        checks: run.checks.iter().map(CheckDoc::from).collect(),
        floor: floor_doc(run),
        sweep: run.sweep.map(sweep_doc),
    }
}

/// The document as pretty JSON.
pub fn render(run: &RunReport<'_>) -> serde_json::Result<String> {
    serde_json::to_string_pretty(&document(run))
}
