//! A capacity sweep's reports: `sweep.csv` (one row per step, by rate) and
//! the curve of latency and errors against the offered rate for
//! `report.html` and `summary.md`.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::html::{ms_axis, per_second};
use super::markdown::{duration, percent};
use super::markup::escape;
use super::svg::{Axis, Line, LineChart, Scale};
use crate::checks::sweep::{Step, SweepOutcome};

pub const SWEEP_CSV: &str = "sweep.csv";

#[derive(Serialize)]
struct Row {
    step: usize,
    rate: f64,
    refined: bool,
    achieved_rate: Option<f64>,
    sent: u64,
    errors: u64,
    error_rate: Option<f64>,
    dropped: u64,
    e2e_p50_ms: Option<f64>,
    e2e_p90_ms: Option<f64>,
    e2e_p99_ms: Option<f64>,
    ttft_p50_ms: Option<f64>,
    ttft_p99_ms: Option<f64>,
    overhead_p50_ms: Option<f64>,
    overhead_p99_ms: Option<f64>,
    dispatch_p99_ms: f64,
    generator_kept_up: bool,
    held: bool,
    broke_because: String,
}

fn ms(count: u64, us: u64) -> Option<f64> {
    (count > 0).then_some(us as f64 / 1_000.0)
}

/// Writes `dir/sweep.csv`: one row per step, by rising rate.
pub fn write_csv(dir: &Path, sweep: &SweepOutcome) -> io::Result<PathBuf> {
    let path = dir.join(SWEEP_CSV);
    let mut writer = csv::Writer::from_path(&path)?;
    for s in sweep.by_rate() {
        writer.serialize(Row {
            step: s.number,
            rate: s.rate,
            refined: s.refined,
            achieved_rate: s.achieved_rate.map(|r| (r * 10.0).round() / 10.0),
            sent: s.sent,
            errors: s.errors,
            error_rate: s.error_rate,
            dropped: s.dropped,
            e2e_p50_ms: ms(s.e2e.count, s.e2e.p50),
            e2e_p90_ms: ms(s.e2e.count, s.e2e.p90),
            e2e_p99_ms: ms(s.e2e.count, s.e2e.p99),
            ttft_p50_ms: ms(s.ttft.count, s.ttft.p50),
            ttft_p99_ms: ms(s.ttft.count, s.ttft.p99),
            overhead_p50_ms: ms(s.overhead.count, s.overhead.p50),
            overhead_p99_ms: ms(s.overhead.count, s.overhead.p99),
            dispatch_p99_ms: s.dispatch_p99_us as f64 / 1_000.0,
            generator_kept_up: s.generator_kept_up,
            held: s.held,
            broke_because: s.broke_because.join("; "),
        })?;
    }
    writer.flush()?;
    Ok(path)
}

fn percent_axis(v: f64) -> String {
    format!("{v:.0}%")
}

/// Whether the rates grow by a factor (then a log axis spreads them evenly).
fn geometric(steps: &[&Step]) -> bool {
    match (steps.first(), steps.last()) {
        (Some(a), Some(b)) => b.rate / a.rate >= 8.0,
        _ => false,
    }
}

/// The charts: latency percentiles against the offered rate, and error
/// rate and achieved rate against it.
pub fn charts(sweep: &SweepOutcome) -> String {
    let steps = sweep.by_rate();
    let scale = if geometric(&steps) { Scale::Log } else { Scale::Linear };
    let x = Axis {
        label: "offered rate (requests per second)",
        scale,
        format: per_second,
    };
    let latency = |label, color, dashed, f: fn(&Step) -> Option<f64>| Line {
        label,
        color,
        dashed,
        points: steps.iter().map(|s| (s.rate, f(s).unwrap_or(f64::NAN))).collect(),
    };
    let mut out = LineChart {
        title: "Capacity: latency against offered rate",
        x,
        y: Axis {
            label: "latency",
            scale: Scale::Log,
            format: ms_axis,
        },
        lines: vec![
            latency("e2e p50", "#2563eb", false, |s| ms(s.e2e.count, s.e2e.p50)),
            latency("e2e p99", "#2563eb", true, |s| ms(s.e2e.count, s.e2e.p99)),
            latency("ttft p99", "#dc2626", true, |s| ms(s.ttft.count, s.ttft.p99)),
            latency("overhead p99", "#16a34a", true, |s| {
                ms(s.overhead.count, s.overhead.p99)
            }),
        ],
    }
    .render();
    let share = |label, color, dashed, f: fn(&Step) -> f64| Line {
        label,
        color,
        dashed,
        points: steps.iter().map(|s| (s.rate, f(s))).collect(),
    };
    out.push_str(
        &LineChart {
            title: "Capacity: errors and achieved rate against offered rate",
            x,
            y: Axis {
                label: "percent",
                scale: Scale::Linear,
                format: percent_axis,
            },
            lines: vec![
                share("errors (of sent)", "#dc2626", false, |s| {
                    s.error_rate.unwrap_or(0.0) * 100.0
                }),
                share("dropped (of asked)", "#6b7280", false, |s| {
                    s.dropped as f64 * 100.0 / s.phase.requested.max(1) as f64
                }),
                share("achieved (of offered)", "#16a34a", true, |s| {
                    s.achieved_rate.unwrap_or(0.0) * 100.0 / s.rate
                }),
            ],
        }
        .render(),
    );
    out
}

fn opt_duration(count: u64, us: u64) -> String {
    if count > 0 { duration(us as f64) } else { "—".into() }
}

/// The sweep's section of `report.html`: the knee, the charts, the steps.
pub fn html(out: &mut String, sweep: &SweepOutcome) {
    out.push_str("<h2>Capacity sweep</h2>");
    let knee = sweep
        .knee
        .map_or_else(|| "no rate held".to_string(), |k| format!("{k:.0} req/s"));
    let broke = sweep.broke_at.map_or_else(
        || "the SLO never broke".to_string(),
        |b| format!("broke at {b:.0} req/s"),
    );
    let _ = write!(
        out,
        r#"<p><strong>Knee: {knee}</strong> — the highest offered rate that held every SLO check with nothing dropped; {broke}. {}</p>"#,
        if sweep.generator_kept_up() {
            "The load generator kept up at every step that decided it."
        } else {
            "<strong>The load generator fell behind at some step</strong> (see the table): there, the latencies do not blame the router."
        }
    );
    out.push_str(r#"<div class="charts">"#);
    out.push_str(&charts(sweep));
    out.push_str("</div>");
    out.push_str(
        r#"<table><tr><th class="n">offered</th><th class="n">achieved</th><th class="n">sent</th><th class="n">errors</th><th class="n">dropped</th><th class="n">e2e p50</th><th class="n">e2e p99</th><th class="n">ttft p99</th><th class="n">overhead p99</th><th class="n">dispatch p99</th><th>generator</th><th>verdict</th></tr>"#,
    );
    for s in sweep.by_rate() {
        let _ = write!(
            out,
            r#"<tr{}><td class="n">{:.0}/s{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td>{}</td><td>{}</td></tr>"#,
            if s.held { "" } else { r#" class="failed""# },
            s.rate,
            if s.refined { " (bisect)" } else { "" },
            s.achieved_rate.map_or_else(|| "—".into(), |r| format!("{r:.0}/s")),
            s.sent,
            s.error_rate.map_or_else(|| "—".into(), percent),
            s.dropped,
            opt_duration(s.e2e.count, s.e2e.p50),
            opt_duration(s.e2e.count, s.e2e.p99),
            opt_duration(s.ttft.count, s.ttft.p99),
            opt_duration(s.overhead.count, s.overhead.p99),
            duration(s.dispatch_p99_us as f64),
            if s.generator_kept_up {
                "kept up".to_string()
            } else {
                format!("fell behind: {}", escape(&s.generator_problems.join("; ")))
            },
            if s.held {
                "held".to_string()
            } else {
                format!("broke: {}", escape(&s.broke_because.join("; ")))
            },
        );
    }
    out.push_str("</table>");
}

/// The sweep's section of `summary.md`.
pub fn markdown(out: &mut String, sweep: &SweepOutcome) {
    let _ = writeln!(out, "\n### Capacity sweep\n");
    let _ = writeln!(
        out,
        "Knee: **{}**; {}.\n",
        sweep
            .knee
            .map_or_else(|| "no rate held".to_string(), |k| format!("{k:.0} req/s")),
        sweep.broke_at.map_or_else(
            || "the SLO never broke".to_string(),
            |b| format!("broke at {b:.0} req/s")
        )
    );
    let _ = writeln!(
        out,
        "| offered | achieved | errors | dropped | e2e p99 | ttft p99 | dispatch p99 | generator | verdict |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for s in sweep.by_rate() {
        let _ = writeln!(
            out,
            "| {:.0}/s | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.rate,
            s.achieved_rate.map_or_else(|| "—".into(), |r| format!("{r:.0}/s")),
            s.error_rate.map_or_else(|| "—".into(), percent),
            s.dropped,
            opt_duration(s.e2e.count, s.e2e.p99),
            opt_duration(s.ttft.count, s.ttft.p99),
            duration(s.dispatch_p99_us as f64),
            if s.generator_kept_up { "kept up" } else { "fell behind" },
            if s.held { "held" } else { "broke" },
        );
    }
}
