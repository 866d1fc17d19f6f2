//! `report.html`: one self-contained page (inline CSS and SVG, no script, no
//! URL) to look at a run: the verdict, the checks, latency percentiles over
//! time, the rate asked for against the rate achieved, latency
//! distributions, outcomes, and the numbers behind them.

use std::fmt::Write as _;

use super::RunReport;
use super::markdown::{compact_duration, duration, percent, value};
use super::markup::escape;
use super::svg::{Axis, Bar, BarChart, Line, LineChart, Scale};
use crate::load::record::Outcome;
use crate::metrics::{Metric, MetricsSummary, SecondRow};
use crate::target::Target;

pub const REPORT_HTML: &str = "report.html";

const PALETTE: [&str; 8] = [
    "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777",
];

const STYLE: &str = r#"
:root { color-scheme: light; --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --ok: #15803d; --bad: #b91c1c; --warn: #b45309; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); margin: 0; background: #f9fafb; }
main { max-width: 1080px; margin: 0 auto; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 10px; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-weight: 600; font-size: 13px; margin-right: 6px; color: white; }
.pass { background: var(--ok); } .fail { background: var(--bad); } .warn { background: var(--warn); }
.banner { border-left: 4px solid var(--warn); background: #fffbeb; padding: 10px 14px; margin: 14px 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 10px; margin: 16px 0; }
.card { background: white; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.card .v { font-size: 22px; font-weight: 600; } .card .k { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; width: 100%; background: white; border: 1px solid var(--line); }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f3f4f6; font-weight: 600; } td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td { background: #fef2f2; }
tr.warm-up td { color: var(--muted); background: #f3f4f6; }
.tag { font-size: 11px; padding: 0 6px; border: 1px solid var(--line); border-radius: 999px; }
.verdict { font-weight: 700; font-size: 12px; text-transform: uppercase; letter-spacing: 0.03em; }
.verdict.v-pass { color: #15803d; } .verdict.v-fail { color: #b91c1c; } .verdict.v-skip { color: #6b7280; }
code { font-size: 12px; background: #f3f4f6; padding: 1px 4px; border-radius: 4px; }
.charts { display: grid; gap: 14px; }
.chart { background: white; border: 1px solid var(--line); border-radius: 8px; max-width: 100%; height: auto; }
.chart .title { font-weight: 600; font-size: 14px; fill: var(--ink); }
.chart .grid { stroke: #eef0f3; } .chart .axis { stroke: #9ca3af; }
.chart .tick, .chart .legend { font-size: 11px; fill: #4b5563; } .chart .label { font-size: 12px; fill: var(--muted); }
.chart .empty { fill: var(--muted); }
footer { color: var(--muted); margin: 32px 0 8px; font-size: 12px; }
"#;

fn seconds(v: f64) -> String {
    format!("{v:.0} s")
}

pub(super) fn ms_axis(v: f64) -> String {
    compact_duration(v * 1_000.0)
}

pub(super) fn per_second(v: f64) -> String {
    format!("{v:.0}/s")
}

fn count(v: f64) -> String {
    format!("{v:.0}")
}

/// A point on the "1/(1 − q)" axis of a percentile plot as its percentile:
/// 10 → 90%, 1000 → 99.9%.
fn percentile_axis(v: f64) -> String {
    let q = 100.0 * (1.0 - 1.0 / v.max(1.0));
    let decimals = (v.max(1.0).log10().round() as usize).saturating_sub(2);
    format!("{q:.decimals$}%")
}

fn ms_or_gap(us: Option<u64>) -> f64 {
    us.map_or(f64::NAN, |us| us as f64 / 1_000.0)
}

fn latency_over_time(rows: &[SecondRow]) -> String {
    let line = |label, color, dashed, f: fn(&SecondRow) -> Option<u64>| Line {
        label,
        color,
        dashed,
        points: rows.iter().map(|r| (r.second as f64, ms_or_gap(f(r)))).collect(),
    };
    LineChart {
        title: "Latency over time (from the intended send)",
        x: Axis {
            label: "seconds since the start",
            scale: Scale::Linear,
            format: seconds,
        },
        y: Axis {
            label: "latency",
            scale: Scale::Linear,
            format: ms_axis,
        },
        lines: vec![
            line("e2e p50", PALETTE[0], false, |r| r.e2e_p50_us),
            line("e2e p99", PALETTE[0], true, |r| r.e2e_p99_us),
            line("ttft p50", PALETTE[1], false, |r| r.ttft_p50_us),
            line("ttft p99", PALETTE[1], true, |r| r.ttft_p99_us),
        ],
    }
    .render()
}

fn rate_over_time(rows: &[SecondRow]) -> String {
    let line = |label, color, dashed, f: fn(&SecondRow) -> u32| Line {
        label,
        color,
        dashed,
        points: rows.iter().map(|r| (r.second as f64, f64::from(f(r)))).collect(),
    };
    LineChart {
        title: "Rate: requested against achieved",
        x: Axis {
            label: "seconds since the start",
            scale: Scale::Linear,
            format: seconds,
        },
        y: Axis {
            label: "requests per second",
            scale: Scale::Linear,
            format: per_second,
        },
        // "requested" last, so its dashes show over a "sent" that keeps up.
        lines: vec![
            line("sent", PALETTE[0], false, |r| r.sent),
            line("completed", PALETTE[2], false, |r| r.completed),
            line("errors", PALETTE[1], false, |r| r.errors),
            line("dropped", "#6b7280", false, |r| r.dropped),
            line("requested", PALETTE[6], true, |r| r.intended),
        ],
    }
    .render()
}

fn distributions(run: &RunReport<'_>) -> String {
    let lines = Metric::ALL
        .iter()
        .zip(PALETTE)
        .filter(|(m, _)| !run.collector.histogram(**m).is_empty())
        .map(|(&metric, color)| {
            let h = run.collector.histogram(metric);
            // q = 1 − 10^(−k/4): four points a decade, up to what the count resolves.
            // The last point is the max, at q = 1 − 1/count.
            let count = (h.len() as f64).max(1.0);
            let mut xs: Vec<f64> = (0..=20)
                .map(|k| 10f64.powf(f64::from(k) / 4.0))
                .take_while(|&x| x < count)
                .collect();
            xs.push(count.min(1e5));
            let points = xs
                .into_iter()
                .map(|x| (x, h.value_at_quantile(1.0 - 1.0 / x) as f64 / 1_000.0))
                .collect();
            Line {
                label: metric.name(),
                color,
                dashed: false,
                points,
            }
        })
        .collect();
    LineChart {
        title: "Latency distributions (percentile curves)",
        x: Axis {
            label: "percentile",
            scale: Scale::Log,
            format: percentile_axis,
        },
        y: Axis {
            label: "latency",
            scale: Scale::Log,
            format: ms_axis,
        },
        lines,
    }
    .render()
}

fn outcome_color(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "#16a34a",
        Outcome::Dropped => "#6b7280",
        Outcome::RateLimited | Outcome::PaymentRequired => "#ea580c",
        Outcome::NotFound | Outcome::ClientError => "#ca8a04",
        _ => "#dc2626",
    }
}

fn outcomes(run: &RunReport<'_>) -> String {
    BarChart {
        title: "Outcomes",
        bars: Outcome::ALL
            .iter()
            .filter(|o| run.summary.outcome(**o) > 0 || **o == Outcome::Ok)
            .map(|&o| Bar {
                label: o.name(),
                value: run.summary.outcome(o) as f64,
                color: outcome_color(o),
            })
            .collect(),
        format: count,
    }
    .render()
}

fn card(out: &mut String, key: &str, value: &str) {
    let _ = write!(
        out,
        r#"<div class="card"><div class="v">{}</div><div class="k">{}</div></div>"#,
        escape(value),
        escape(key)
    );
}

fn checks_table(out: &mut String, run: &RunReport<'_>) {
    out.push_str("<h2>Checks</h2>");
    if run.checks.is_empty() {
        out.push_str(r#"<p class="muted">The scenario has no checks.</p>"#);
        return;
    }
    out.push_str(
        r#"<table><tr><th></th><th>check</th><th class="n">measured</th><th class="n">bound</th><th>detail</th></tr>"#,
    );
    for c in run.checks {
        let _ = write!(
            out,
            r#"<tr{}><td>{}</td><td>{}</td><td class="n">{}</td><td class="n">{}</td><td>{}"#,
            if c.failed() { r#" class="failed""# } else { "" },
            format_args!(r#"<span class="verdict v-{0}">{0}</span>"#, c.verdict.name()),
            escape(&c.name),
            escape(&value(c.measured, c.unit)),
            escape(&value(c.bound, c.unit)),
            escape(&c.detail)
        );
        if !c.offenders.is_empty() {
            out.push_str(r#"<br><span class="muted">offending requests:</span> "#);
            for id in &c.offenders {
                let _ = write!(out, "<code>{}</code> ", escape(id));
            }
        }
        out.push_str("</td></tr>");
    }
    out.push_str("</table>");
}

fn metrics_table(out: &mut String, run: &RunReport<'_>) {
    out.push_str(r#"<h2>Latency metrics</h2><table><tr><th>metric</th><th>definition</th><th class="n">count</th><th class="n">p50</th><th class="n">p90</th><th class="n">p99</th><th class="n">p99.9</th><th class="n">max</th><th class="n">mean</th></tr>"#);
    for metric in Metric::ALL {
        let p = run.summary.metric(metric);
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td class="muted">{}</td><td class="n">{}</td>"#,
            metric.name(),
            escape(metric.describe()),
            p.count
        );
        if p.count == 0 {
            out.push_str(r#"<td class="n muted" colspan="6">no samples</td></tr>"#);
            continue;
        }
        for v in [
            p.p50 as f64,
            p.p90 as f64,
            p.p99 as f64,
            p.p999 as f64,
            p.max as f64,
            p.mean,
        ] {
            let _ = write!(out, r#"<td class="n">{}</td>"#, escape(&duration(v)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// The router's figures against the floor's, measured in the same run.
fn floor_table(out: &mut String, run: &RunReport<'_>) {
    let Some(floor) = run.floor else { return };
    let _ = write!(
        out,
        r#"<h2>Router against the floor</h2><p class="muted">The floor: the same phases sent by the same engine straight at <code>{}</code>, no router, in this run just before the router was measured. A ratio of 1.00× means the router adds nothing measurable; <em>added</em> is router − floor.</p>"#,
        escape(&floor.provider)
    );
    if !floor.validity.valid {
        let _ = write!(
            out,
            r#"<div class="banner">The load generator fell behind at the floor: {}.</div>"#,
            escape(&floor.validity.problems.join("; "))
        );
    }
    out.push_str(r#"<table><tr><th>metric</th><th>quantile</th><th class="n">router</th><th class="n">floor</th><th class="n">ratio</th><th class="n">added</th></tr>"#);
    for a in floor.against(run.summary) {
        for (i, q) in a.quantiles().iter().enumerate() {
            let _ = write!(
                out,
                r#"<tr><td>{}</td><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
                if i == 0 { a.metric.name() } else { "" },
                q.name,
                duration(q.router_us as f64),
                duration(q.floor_us as f64),
                q.ratio_text(),
                super::markdown::signed_duration(q.added_us()),
            );
        }
    }
    out.push_str("</table>");
}

fn phases_table(out: &mut String, run: &RunReport<'_>) {
    if run.stats.phases.is_empty() {
        return;
    }
    out.push_str(r#"<h2>Phases</h2><table><tr><th>phase</th><th class="n">duration</th><th class="n">requested</th><th class="n">sent</th><th class="n">dropped</th><th class="n">completed</th><th class="n">rate asked</th><th class="n">rate achieved</th></tr>"#);
    for (i, p) in run.stats.phases.iter().enumerate() {
        let rate = |r: Option<f64>| r.map_or_else(|| "—".to_string(), |r| format!("{r:.1}/s"));
        let warm_up = crate::checks::warm_up(run.scenario, i);
        let _ = write!(
            out,
            r#"<tr{}><td>{}{}</td><td class="n">{:.1} s</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            if warm_up { r#" class="warm-up""# } else { "" },
            escape(&p.name),
            if warm_up {
                r#" <span class="tag">warm-up</span>"#
            } else {
                ""
            },
            p.ended_us.saturating_sub(p.started_us) as f64 / 1e6,
            p.requested,
            p.sent,
            p.dropped,
            p.completed,
            rate((p.expected_rate > 0.0).then_some(p.expected_rate)),
            rate(crate::checks::achieved_rate(p)),
        );
    }
    out.push_str("</table>");
}

/// The whole page: the header, the cards, the checks, the charts, the
/// sweep, the tables, the token and join notes, then the footer.
pub fn render(run: &RunReport<'_>) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>gauntlet · {}</title><style>{STYLE}</style></head><body><main>",
        escape(&run.scenario.meta.name)
    );
    header(&mut out, run);
    cards(&mut out, run.summary);
    checks_table(&mut out, run);
    charts(&mut out, run);
    if let Some(sweep) = run.sweep {
        super::sweep::html(&mut out, sweep);
    }
    floor_table(&mut out, run);
    metrics_table(&mut out, run);
    phases_table(&mut out, run);
    notes(&mut out, run.summary);
    let _ = writeln!(
        out,
        "<footer>gauntlet {} · latencies from the intended send time (coordinated omission corrected)</footer></main></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    out
}

/// The title, the description, the verdict badges, the run's line (when,
/// how long, what target, seed, file) and the fell-behind banner.
fn header(out: &mut String, run: &RunReport<'_>) {
    let s = run.scenario;
    let failed = run.checks.iter().filter(|c| c.failed()).count();
    let _ = write!(out, "<h1>{}</h1>", escape(&s.meta.name));
    if !s.meta.description.is_empty() {
        let _ = write!(out, r#"<div class="muted">{}</div>"#, escape(&s.meta.description));
    }
    out.push_str("<p>");
    let (class, verdict) = match (run.cut, failed) {
        (Some(_), _) => ("warn", format!("stopped, {} checks skipped", run.checks.len())),
        (None, 0) => ("pass", crate::checks::verdicts_line(run.checks)),
        (None, _) => ("fail", crate::checks::verdicts_line(run.checks)),
    };
    let _ = write!(out, r#"<span class="badge {class}">{verdict}</span>"#);
    if run.validity.valid {
        out.push_str(r#"<span class="badge pass">run valid</span>"#);
    } else {
        out.push_str(r#"<span class="badge warn">generator fell behind</span>"#);
    }
    if run.stats.stopped && run.cut.is_none() {
        out.push_str(r#"<span class="badge warn">stopped early</span>"#);
    }
    out.push_str("</p>");
    let target = match &s.target {
        Target::Builtin => "the built-in reference router".to_string(),
        Target::Http { url, .. } => url.clone(),
    };
    let _ = write!(
        out,
        r#"<div class="muted">{} · {:.1} s · target {} · seed {} · <code>{}</code></div>"#,
        escape(&super::json::timestamp(run.started_us).unwrap_or_default()),
        run.duration_s(),
        escape(&target),
        s.meta.seed,
        escape(&s.file.display().to_string())
    );
    if !run.validity.valid {
        let _ = write!(
            out,
            r#"<div class="banner"><strong>The load generator fell behind</strong>, so these latencies do not blame the router: {}.</div>"#,
            escape(&run.validity.problems.join("; "))
        );
    }
    if let (Some(note), Some(_)) = (run.stop_note(), run.cut) {
        let _ = write!(out, r#"<div class="banner">{}</div>"#, escape(&note));
    }
    if let Some(note) = run.warm_up_note() {
        let _ = write!(out, r#"<p class="muted">{}</p>"#, escape(&note));
    }
}

/// The key numbers as cards: sent, error rate, goodput, the p99s, dropped.
fn cards(out: &mut String, m: &MetricsSummary) {
    out.push_str(r#"<div class="cards">"#);
    card(out, "requests sent", &m.sent.to_string());
    card(out, "error rate", &m.error_rate().map_or_else(|| "—".into(), percent));
    if let Some(goodput) = m.goodput.ratio().filter(|_| m.goodput.slo != Default::default()) {
        card(out, "goodput (meeting every SLO)", &percent(goodput));
    }
    for (metric, key) in [
        (Metric::E2e, "e2e p99"),
        (Metric::Ttft, "ttft p99"),
        (Metric::Itl, "itl p99"),
        (Metric::Overhead, "router overhead p99"),
    ] {
        let p = m.metric(metric);
        if p.count > 0 {
            card(out, key, &duration(p.p99 as f64));
        }
    }
    card(out, "dropped", &m.outcome(Outcome::Dropped).to_string());
    out.push_str("</div>");
}

/// The charts: latency and rate over time, distributions, outcomes.
fn charts(out: &mut String, run: &RunReport<'_>) {
    let rows = run.collector.series().rows(Some(run.started_us));
    out.push_str(r#"<h2>Charts</h2><div class="charts">"#);
    out.push_str(&latency_over_time(&rows));
    out.push_str(&rate_over_time(&rows));
    out.push_str(&distributions(run));
    out.push_str(&outcomes(run));
    out.push_str("</div>");
}

/// What chunks and tokens showed, and how the overhead join went.
fn notes(out: &mut String, m: &MetricsSummary) {
    let t = &m.tokens;
    let _ = write!(
        out,
        r#"<h2>Chunks and tokens</h2><p>A chunk is not a token. Over {} streams that reported usage: {} content chunks for {} completion tokens; {} streams differ{}. {} successful streams reported no usage.</p>"#,
        t.streams_with_usage,
        t.content_chunks,
        t.completion_tokens,
        t.mismatched,
        if t.mismatch_examples.is_empty() {
            String::new()
        } else {
            format!(" (e.g. {})", escape(&t.mismatch_examples.join(", ")))
        },
        t.streams_without_usage
    );
    let j = &m.join;
    let _ = write!(
        out,
        r#"<p class="muted">Overhead join: {} successful requests, {} matched with the attempt that served them in the mock journals, {} unmatched.</p>"#,
        j.remembered, j.matched, j.unmatched
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_percentile_axis_reads_as_percentiles() {
        assert_eq!(percentile_axis(1.0), "0%");
        assert_eq!(percentile_axis(10.0), "90%");
        assert_eq!(percentile_axis(100.0), "99%");
        assert_eq!(percentile_axis(1_000.0), "99.9%");
        assert_eq!(percentile_axis(100_000.0), "99.999%");
    }
}
