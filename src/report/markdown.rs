//! `summary.md`: the verdict for a CI job summary (GitHub's
//! `$GITHUB_STEP_SUMMARY` and the like): a table of checks with ✅/❌, then
//! the key numbers.

use std::fmt::Write as _;

use super::markup::md_cell;
use super::{FloorRun, RunReport};
use crate::load::record::Outcome;
use crate::metrics::{Metric, MetricsSummary};

pub const SUMMARY_MD: &str = "summary.md";

/// A latency in µs for people: `850 µs`, `12.3 ms`, `4.56 s`.
pub fn duration(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.1} ms", us / 1_000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

/// A latency in µs for an axis: as short as it can be (`150 ms`, `1.5 s`).
pub fn compact_duration(us: f64) -> String {
    let (value, unit) = if us < 1_000.0 {
        (us, "µs")
    } else if us < 1_000_000.0 {
        (us / 1_000.0, "ms")
    } else {
        (us / 1_000_000.0, "s")
    };
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} {unit}")
}

/// A share as a percentage: `97.3 %`.
pub fn percent(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

/// A check's value in its unit.
pub fn value(v: f64, unit: &str) -> String {
    match unit {
        "ms" => duration(v * 1_000.0),
        "share" => percent(v),
        "rate" => format!("{v:.0} req/s"),
        _ => format!("{v:.3} {unit}"),
    }
}

/// The whole `summary.md`: the verdict, the checks, the totals, the
/// latencies, the outcomes, then the floor and the sweep when there are.
pub fn render(run: &RunReport<'_>) -> String {
    let mut out = String::with_capacity(4096);
    heading(&mut out, run);
    checks_table(&mut out, run);
    totals(&mut out, run);
    latency_table(&mut out, run.summary);
    outcomes(&mut out, run.summary);
    if let Some(floor) = run.floor {
        floor_section(&mut out, floor, run.summary);
    }
    if let Some(sweep) = run.sweep {
        super::sweep::markdown(&mut out, sweep);
    }
    out
}

/// The title with the verdict, the description, and the warnings that the
/// generator fell behind or the run was stopped.
fn heading(out: &mut String, run: &RunReport<'_>) {
    let failed = run.checks.iter().filter(|c| c.failed()).count();
    let verdict = match (run.cut, failed) {
        (Some(_), _) => format!("⏹️ stopped, {} checks skipped", run.checks.len()),
        (None, 0) => format!("✅ {}", crate::checks::verdicts_line(run.checks)),
        (None, _) => format!("❌ {}", crate::checks::verdicts_line(run.checks)),
    };
    let _ = writeln!(out, "## gauntlet · {} — {verdict}\n", md_cell(&run.scenario.meta.name));
    if !run.scenario.meta.description.is_empty() {
        let _ = writeln!(out, "{}\n", md_cell(&run.scenario.meta.description));
    }
    if !run.validity.valid {
        let _ = writeln!(
            out,
            "> ⚠️ **The load generator fell behind** — these latencies do not blame the router: {}\n",
            md_cell(&run.validity.problems.join("; "))
        );
    }
    if let Some(note) = run.stop_note() {
        let _ = writeln!(out, "> ⏹️ {}\n", md_cell(&note));
    }
    if let Some(note) = run.warm_up_note() {
        let _ = writeln!(out, "{}\n", md_cell(&note));
    }
}

/// One row per check, ✅ or ❌, with a few offenders; nothing without checks.
fn checks_table(out: &mut String, run: &RunReport<'_>) {
    if run.checks.is_empty() {
        return;
    }
    out.push_str("| | check | measured | bound | detail |\n|---|---|---:|---:|---|\n");
    for c in run.checks {
        let mut detail = md_cell(&c.detail);
        if !c.offenders.is_empty() {
            let _ = write!(detail, " — e.g. `{}`", md_cell(&c.offenders.join("`, `")));
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {detail} |",
            crate::checks::mark(c.verdict),
            md_cell(&c.name),
            value(c.measured, c.unit),
            value(c.bound, c.unit),
        );
    }
    out.push('\n');
}

/// The line of totals: sent, failed, dropped, goodput, chunks and tokens.
fn totals(out: &mut String, run: &RunReport<'_>) {
    let m = run.summary;
    let _ = write!(
        out,
        "**{}** requests sent over {:.1} s, **{}** failed",
        m.sent,
        run.duration_s(),
        m.errors
    );
    if let Some(rate) = m.error_rate() {
        let _ = write!(out, " ({})", percent(rate));
    }
    let _ = write!(out, ", **{}** dropped", m.outcome(Outcome::Dropped));
    if let Some(goodput) = m.goodput.ratio() {
        let _ = write!(out, " · goodput **{}**", percent(goodput));
    }
    let t = &m.tokens;
    if t.streams_with_usage > 0 {
        let _ = write!(
            out,
            " · {} content chunks for {} completion tokens ({} streams differ)",
            t.content_chunks, t.completion_tokens, t.mismatched
        );
    }
    out.push_str("\n\n");
}

/// The percentiles of every metric that has samples.
fn latency_table(out: &mut String, m: &MetricsSummary) {
    out.push_str("| metric | count | p50 | p90 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for metric in Metric::ALL {
        let p = m.metric(metric);
        if p.count == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            metric.name(),
            p.count,
            duration(p.p50 as f64),
            duration(p.p90 as f64),
            duration(p.p99 as f64),
            duration(p.p999 as f64),
            duration(p.max as f64),
        );
    }
    out.push('\n');
}

/// The outcomes that occurred, with their counts, on one line.
fn outcomes(out: &mut String, m: &MetricsSummary) {
    let outcomes: Vec<String> = Outcome::ALL
        .iter()
        .filter(|o| m.outcome(**o) > 0)
        .map(|o| format!("{} {}", o.name(), m.outcome(*o)))
        .collect();
    if !outcomes.is_empty() {
        let _ = writeln!(out, "Outcomes: {}\n", outcomes.join(" · "));
    }
}

/// The router against the floor: ratios and added time at p50 and p99.
fn floor_section(out: &mut String, floor: &FloorRun, m: &MetricsSummary) {
    let _ = writeln!(
        out,
        "### Against the floor (the same phases straight at `{}`, same run)\n",
        md_cell(&floor.provider)
    );
    if !floor.validity.valid {
        let _ = writeln!(
            out,
            "> ⚠️ The generator fell behind at the floor: {}\n",
            md_cell(&floor.validity.problems.join("; "))
        );
    }
    out.push_str(
        "| metric | p50 router / floor | p99 router / floor | p50 added | p99 added |\n|---|---:|---:|---:|---:|\n",
    );
    for a in floor.against(m) {
        let [p50, _, p99, _] = a.quantiles();
        let _ = writeln!(
            out,
            "| {} | {} ({} / {}) | {} ({} / {}) | {} | {} |",
            a.metric.name(),
            p50.ratio_text(),
            duration(p50.router_us as f64),
            duration(p50.floor_us as f64),
            p99.ratio_text(),
            duration(p99.router_us as f64),
            duration(p99.floor_us as f64),
            signed_duration(p50.added_us()),
            signed_duration(p99.added_us()),
        );
    }
    out.push('\n');
}

/// A signed difference of µs: `+45 µs`, `−1.2 ms`.
pub fn signed_duration(us: i64) -> String {
    let sign = if us < 0 { "−" } else { "+" };
    format!("{sign}{}", duration(us.unsigned_abs() as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(850.0), "850 µs");
        assert_eq!(duration(12_345.0), "12.3 ms");
        assert_eq!(duration(4_560_000.0), "4.56 s");
        assert_eq!(compact_duration(150_000.0), "150 ms");
        assert_eq!(compact_duration(1_500_000.0), "1.5 s");
        assert_eq!(compact_duration(0.0), "0 µs");
        assert_eq!(value(0.25, "share"), "25.0 %");
        assert_eq!(value(12.5, "ms"), "12.5 ms");
    }
}
