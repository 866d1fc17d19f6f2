//! The plain-text tables and lines `gauntlet compare` and `gauntlet baseline`
//! print: a comparison of two runs, runs judged against a baseline, and a
//! baseline made.

use std::fmt::Write as _;
use std::path::Path;

use super::baseline::{Baseline, MachineDependent, PERCENTILES, RECOMMENDED_RUNS, Spread};
use super::comparison::{Comparison, Row, Unit};
use super::pairing::{Pairing, Unmatched};
use super::rule::{Judgment, Rule, Tally, change_pct};

fn value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Micros => format!("{:.3} ms", v / 1000.0),
        Unit::PerSecond => format!("{v:.2} /s"),
        Unit::Share => format!("{:.3} %", v * 100.0),
    }
}

fn change(row: &Row) -> String {
    match row.unit {
        Unit::Share => format!("{:+.3} pp", (row.current - row.base) * 100.0),
        Unit::Micros | Unit::PerSecond => match change_pct(row.base, row.current) {
            Some(pct) => format!("{pct:+.1} %"),
            None => "n/a".to_owned(),
        },
    }
}

/// Lines of aligned columns: the first column left-aligned, the middle ones
/// right-aligned, the last unpadded.
fn columns<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |row: [&str; N]| {
        let last = N.saturating_sub(1);
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            // Writing to a String cannot fail.
            let _ = match i {
                0 => write!(out, "{cell:<w$}"),
                i if i == last => write!(out, "  {cell}"),
                _ => write!(out, "  {cell:>w$}"),
            };
        }
        out.push('\n');
    };
    line(header);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}

/// The comparison as a plain-text table (metric, base, current, change, verdict).
pub fn render_table(comparison: &Comparison) -> String {
    let cells: Vec<[String; 5]> = comparison
        .rows
        .iter()
        .map(|r| {
            [
                r.metric.clone(),
                value(r.unit, r.base),
                value(r.unit, r.current),
                change(r),
                r.verdict.name().to_owned(),
            ]
        })
        .collect();
    columns(["metric", "base", "current", "change", "verdict"], &cells)
}

/// A comparison of two runs as printed: the table, what was not compared,
/// and what regressed beyond `max_pct` percent.
pub fn render_comparison(comparison: &Comparison, max_pct: f64) -> String {
    let mut out = render_table(comparison);
    if !comparison.skipped.is_empty() {
        out.push_str(&format!(
            "not compared (no samples in one run): {}\n",
            comparison.skipped.join(", ")
        ));
    }
    let regressed: Vec<&str> = comparison.regressed().map(|r| r.metric.as_str()).collect();
    if regressed.is_empty() {
        out.push_str(&format!("no regression beyond {max_pct} %\n"));
    } else {
        out.push_str(&format!(
            "{} metric(s) regressed beyond {max_pct} %: {}\n",
            regressed.len(),
            regressed.join(", ")
        ));
    }
    out
}

/// A ratio spread as `median [min–max]`.
pub fn spread_text(s: Spread) -> String {
    format!("{:.3} [{:.3}–{:.3}]", s.median, s.min, s.max)
}

/// A judgment against a baseline as a plain-text table (metric, percentile,
/// baseline and current ratios, change of the medians, verdict).
pub fn render_ratio_table(judgment: &Judgment) -> String {
    let cells: Vec<[String; 7]> = judgment
        .rows
        .iter()
        .map(|r| {
            [
                r.metric.to_owned(),
                r.percentile.to_owned(),
                spread_text(r.baseline),
                spread_text(r.current),
                r.current_runs.to_string(),
                ratio_change(r.baseline.median, r.current.median),
                r.verdict.name().to_owned(),
            ]
        })
        .collect();
    let header = [
        "metric",
        "pct",
        "baseline median [min–max]",
        "current median [min–max]",
        "runs",
        "change",
        "verdict",
    ];
    columns(header, &cells)
}

/// The change of a median ratio in percent, with no `-0.0` for a change
/// smaller than its last digit.
fn ratio_change(base: f64, current: f64) -> String {
    match change_pct(base, current) {
        Some(pct) if pct.abs() < 0.05 => "+0.0 %".to_owned(),
        Some(pct) => format!("{pct:+.1} %"),
        None => "n/a".to_owned(),
    }
}

/// The machine-dependent figures of the current runs beside the baseline's.
pub fn render_machine_dependent(baseline: &MachineDependent, current: &MachineDependent) -> String {
    let us = |v: Option<f64>| match v {
        None => "n/a".to_owned(),
        Some(us) if us >= 1000.0 => format!("{:.2} ms", us / 1000.0),
        Some(us) => format!("{us:.0} µs"),
    };
    let pair = |name: &str, b: Option<f64>, c: Option<f64>| format!("{name} {} (baseline {})", us(c), us(b));
    format!(
        "machine-dependent, not judged: {}, {}; {}\n",
        pair(
            "router overhead p50",
            baseline.router_overhead_p50_us,
            current.router_overhead_p50_us
        ),
        pair("p99", baseline.router_overhead_p99_us, current.router_overhead_p99_us),
        pair("floor e2e p50", baseline.floor_e2e_p50_us, current.floor_e2e_p50_us),
    )
}

/// The line for runs a folder of baselines has no baseline for.
pub fn render_unmatched(u: &Unmatched) -> String {
    format!(
        "skipped {} ({} run(s)): no baseline {}\n",
        u.scenario,
        u.runs,
        u.expected.display()
    )
}

/// The line that opens a scenario's judgment: its runs, its baseline, the tolerance.
pub fn render_pairing_header(p: &Pairing, rule: &Rule) -> String {
    format!(
        "\n{}: {} run(s) against {} ({} run(s), made {}), tolerance {} %\n",
        p.baseline.scenario,
        p.runs.len(),
        p.file.display(),
        p.baseline.runs,
        p.baseline.created_at,
        rule.tolerance_pct
    )
}

/// Warnings (without their `warning: `) for too few runs on either side.
pub fn noise_warnings(p: &Pairing) -> Vec<String> {
    let mut warnings = Vec::new();
    if p.runs.len() < RECOMMENDED_RUNS {
        warnings.push(format!(
            "{}: {} run(s) judged, and the median of fewer than {RECOMMENDED_RUNS} is noisy; \
             judge {RECOMMENDED_RUNS} or more (`gauntlet run --repeat {RECOMMENDED_RUNS}`; \
             --min-runs {RECOMMENDED_RUNS} makes this an error)",
            p.baseline.scenario,
            p.runs.len()
        ));
    }
    if p.baseline.runs < RECOMMENDED_RUNS {
        warnings.push(format!(
            "{}: a baseline of {} run(s) is noisy; refresh it from {RECOMMENDED_RUNS} or more",
            p.file.display(),
            p.baseline.runs
        ));
    }
    warnings
}

/// A scenario's judgment as printed: notes on failed checks, the ratio
/// table, what was not compared, and the machine-dependent figures.
pub fn render_judgment(p: &Pairing, judgment: &Judgment) -> String {
    let mut out = String::new();
    for run in p.runs.iter().filter(|r| !r.passed) {
        out.push_str(&format!(
            "note: {}: a check failed in this run (passed: false); its ratios are judged all the same\n",
            run.file.display()
        ));
    }
    out.push_str(&render_ratio_table(judgment));
    if !judgment.skipped.is_empty() {
        out.push_str(&format!("not compared: {}\n", judgment.skipped.join(", ")));
    }
    out.push_str(&render_machine_dependent(
        &p.baseline.machine_dependent,
        &MachineDependent::median_of(&p.runs),
    ));
    out
}

/// The closing lines of a comparison with baselines: what improved, and
/// what regressed or that nothing did.
pub fn render_tally(tally: &Tally, rule: &Rule) -> String {
    let mut out = "\n".to_owned();
    if !tally.improved.is_empty() {
        out.push_str(&format!(
            "{} ratio(s) improved beyond the band: {} (refresh the baseline to keep the gain)\n",
            tally.improved.len(),
            tally.improved.join(", ")
        ));
    }
    if tally.regressed.is_empty() {
        out.push_str(&format!(
            "no regression: every median ratio within {} % of its baseline or its baseline's range\n",
            rule.tolerance_pct
        ));
    } else {
        out.push_str(&format!(
            "{} ratio(s) regressed beyond {} % and the baseline's range: {}\n",
            tally.regressed.len(),
            rule.tolerance_pct,
            tally.regressed.join(", ")
        ));
    }
    out
}

/// What `gauntlet baseline` prints of the baseline it wrote to `file`.
pub fn render_baseline(baseline: &Baseline, file: &Path) -> String {
    let mut out = format!(
        "wrote {}: scenario {}, {} run(s): {}\n",
        file.display(),
        baseline.scenario,
        baseline.runs,
        baseline.sources.join(", ")
    );
    for (metric, by_percentile) in &baseline.ratios {
        let cells: Vec<String> = PERCENTILES
            .iter()
            .filter_map(|p| by_percentile.get(*p).map(|s| format!("{p} {}", spread_text(*s))))
            .collect();
        out.push_str(&format!("  {metric:<15} {}\n", cells.join("  ")));
    }
    out
}

#[cfg(test)]
mod tests {
    // A test reports failure by panicking.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::regression::rule::{RatioRow, Verdict};

    #[test]
    fn the_ratio_table_shows_both_spreads_and_the_change() {
        let judgment = Judgment {
            rows: vec![RatioRow {
                metric: "e2e",
                percentile: "p99",
                baseline: Spread {
                    median: 2.0,
                    min: 1.9,
                    max: 2.2,
                },
                current: Spread {
                    median: 2.6,
                    min: 2.5,
                    max: 2.7,
                },
                current_runs: 3,
                verdict: Verdict::Regressed,
            }],
            skipped: Vec::new(),
        };
        let table = render_ratio_table(&judgment);
        let row = table.lines().nth(1).unwrap();
        assert_eq!(
            row.split_whitespace().take(2).collect::<Vec<_>>(),
            ["e2e", "p99"],
            "{table}"
        );
        assert!(
            row.contains("2.000 [1.900–2.200]") && row.contains("2.600 [2.500–2.700]"),
            "{table}"
        );
        assert!(row.contains("+30.0 %") && row.ends_with("REGRESSED"), "{table}");
    }
}
