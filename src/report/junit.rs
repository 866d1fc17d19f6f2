//! `junit.xml`: one `<testcase>` per check, so CI systems show each check
//! as a test; a failed check carries a `<failure>` whose message is the
//! measured value against the bound and whose text is the detail and the
//! offending request ids. An invalid run (the generator fell behind), and a
//! run a stop cut short (its checks skipped), are noted in the suite's
//! `<system-out>`.

use std::fmt::Write as _;

use super::RunReport;
use super::markdown::value;
use super::markup::escape;
use crate::checks::{CheckResult, Verdict};

pub const JUNIT_XML: &str = "junit.xml";

/// `measured 12.3 ms, bound 10.0 ms`; `measured 97.0 %, bound 99.0 %`.
pub fn verdict(c: &CheckResult) -> String {
    format!(
        "measured {}, bound {}",
        value(c.measured, c.unit),
        value(c.bound, c.unit)
    )
}

pub fn render(run: &RunReport<'_>) -> String {
    let name = escape(&run.scenario.meta.name);
    let tests = run.checks.len();
    let failures = run.checks.iter().filter(|c| c.failed()).count();
    let skipped = run.checks.iter().filter(|c| c.verdict == Verdict::Skip).count();
    let time = run.duration_s();
    let mut out = String::with_capacity(512 + 256 * tests);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        r#"<testsuites name="gauntlet" tests="{tests}" failures="{failures}" errors="0" time="{time:.3}">"#
    );
    let _ = writeln!(
        out,
        r#"  <testsuite name="{name}" tests="{tests}" failures="{failures}" errors="0" skipped="{skipped}" time="{time:.3}" timestamp="{}">"#,
        escape(&super::json::timestamp(run.started_us).unwrap_or_default())
    );
    for c in run.checks {
        let _ = write!(
            out,
            r#"    <testcase classname="gauntlet.{name}" name="{}" time="0">"#,
            escape(&c.name)
        );
        if c.passed() {
            out.push_str("</testcase>\n");
            continue;
        }
        if c.verdict == Verdict::Skip {
            let _ = writeln!(out, "<skipped message=\"{}\"/></testcase>", escape(&c.detail));
            continue;
        }
        let mut text = c.detail.clone();
        if !c.offenders.is_empty() {
            let _ = write!(text, "\noffending requests: {}", c.offenders.join(", "));
        }
        let _ = writeln!(
            out,
            "\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
            escape(&verdict(c)),
            escape(c.kind),
            escape(&text)
        );
    }
    let mut notes = Vec::new();
    if !run.validity.valid {
        notes.push(format!(
            "the load generator fell behind (not the router's fault): {}",
            run.validity.problems.join("; ")
        ));
    }
    if let (Some(note), Some(_)) = (run.stop_note(), run.cut) {
        notes.push(note);
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "    <system-out>{}</system-out>", escape(&notes.join("\n")));
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
