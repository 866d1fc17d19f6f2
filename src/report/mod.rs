//! Reports: the files a run leaves in its folder
//! (`reports/runs/<scenario>-<UTC time>/`, created by the run command).
//!
//! - [`json`]: `summary.json`, the verdict for machines (schema in
//!   `reports/schema.json`).
//! - [`tables`]: `requests.csv` (written as the run goes, see
//!   [`RequestsCsv`]) and `timeseries.csv`.
//! - [`attempts`]: `attempts.csv`, the mock journals' attempts (written as
//!   the run drains them, see [`AttemptsCsv`]).
//! - [`hlog`]: `latency.hlog`, the histograms as an HdrHistogram V2 interval
//!   log tagged per metric.
//! - [`junit`]: `junit.xml`, a test case per check.
//! - [`markdown`]: `summary.md`, for a CI job summary.
//! - [`html`]: `report.html`, self-contained, with [`svg`] charts.

pub mod attempts;
pub mod hlog;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod markup;
pub mod svg;
pub mod sweep;
pub mod tables;

use std::io;
use std::path::{Path, PathBuf};

use crate::checks::stopped::Cut;
use crate::checks::sweep::SweepOutcome;
use crate::checks::{self, CheckResult, Validity};
use crate::load::engine::RunStats;
use crate::metrics::{Collector, Metric, MetricsSummary, Percentiles};
use crate::scenario::Scenario;
pub use attempts::AttemptsCsv;
pub use tables::RequestsCsv;

/// Everything a report is written from.
#[derive(Debug)]
pub struct RunReport<'a> {
    pub scenario: &'a Scenario,
    pub summary: &'a MetricsSummary,
    pub checks: &'a [CheckResult],
    pub stats: &'a RunStats,
    /// The histograms and the per-second series.
    pub collector: &'a Collector,
    pub validity: Validity,
    /// The run's span, Unix µs: its first phase's start (or first intended
    /// send) to its last phase's end or last completion, whichever is later.
    pub started_us: u64,
    pub ended_us: u64,
    /// The same phases straight at a mock, measured first (`[floor]`).
    pub floor: Option<&'a FloorRun>,
    /// The steps of a capacity sweep (`[sweep]`).
    pub sweep: Option<&'a SweepOutcome>,
    /// Whether a skipped check fails the run (`--strict`).
    pub strict: bool,
    /// What a stop (Ctrl-C, SIGTERM) cut short, when one did: the checks
    /// are skipped, and every report says so.
    pub cut: Option<&'a Cut>,
}

/// The floor of a run: its phases sent by the same engine straight at a
/// mock, no router, in the same process just before the router is measured.
#[derive(Debug, Clone)]
pub struct FloorRun {
    pub provider: String,
    pub url: String,
    pub summary: MetricsSummary,
    pub stats: RunStats,
    pub validity: Validity,
}

/// A metric through the router against the same metric at the floor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgainstFloor {
    pub metric: Metric,
    pub router: Percentiles,
    pub floor: Percentiles,
}

/// The quantiles compared with the floor, by name.
pub const FLOOR_QUANTILES: [&str; 4] = ["p50", "p90", "p99", "p999"];

/// One quantile of a metric, through the router and at the floor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantileAgainstFloor {
    /// From [`FLOOR_QUANTILES`].
    pub name: &'static str,
    pub router_us: u64,
    pub floor_us: u64,
}

impl QuantileAgainstFloor {
    /// router / floor; `None` where the floor is 0.
    pub fn ratio(&self) -> Option<f64> {
        (self.floor_us > 0).then(|| self.router_us as f64 / self.floor_us as f64)
    }

    /// router − floor, µs.
    pub fn added_us(&self) -> i64 {
        i64::try_from(self.router_us).unwrap_or(i64::MAX) - i64::try_from(self.floor_us).unwrap_or(i64::MAX)
    }

    /// The ratio as `1.31×`, or `—` without one.
    pub fn ratio_text(&self) -> String {
        self.ratio().map_or_else(|| "—".into(), |r| format!("{r:.2}×"))
    }
}

impl AgainstFloor {
    /// The metric at each of [`FLOOR_QUANTILES`], in order.
    pub fn quantiles(&self) -> [QuantileAgainstFloor; 4] {
        let at = |p: &Percentiles| [p.p50, p.p90, p.p99, p.p999];
        let (router, floor) = (at(&self.router), at(&self.floor));
        std::array::from_fn(|i| QuantileAgainstFloor {
            name: FLOOR_QUANTILES[i],
            router_us: router[i],
            floor_us: floor[i],
        })
    }
}

impl FloorRun {
    /// Every metric with samples both through the router and at the floor,
    /// but dispatch delay (the generator's, not the router's), in
    /// [`Metric::ALL`] order.
    pub fn against(&self, router: &MetricsSummary) -> Vec<AgainstFloor> {
        Metric::ALL
            .into_iter()
            .filter(|&m| m != Metric::Dispatch)
            .map(|metric| AgainstFloor {
                metric,
                router: *router.metric(metric),
                floor: *self.summary.metric(metric),
            })
            .filter(|a| a.router.count > 0 && a.floor.count > 0)
            .collect()
    }

    pub fn duration_s(&self) -> f64 {
        let started = self.stats.phases.first().map_or(0, |p| p.started_us);
        let ended = self.stats.phases.last().map_or(0, |p| p.ended_us);
        ended.saturating_sub(started) as f64 / 1e6
    }
}

impl<'a> RunReport<'a> {
    pub fn new(
        scenario: &'a Scenario,
        summary: &'a MetricsSummary,
        checks: &'a [CheckResult],
        stats: &'a RunStats,
        collector: &'a Collector,
    ) -> Self {
        let started_us = stats
            .phases
            .first()
            .map(|p| p.started_us)
            .or(summary.first_us)
            .unwrap_or(0);
        let ended_us = stats
            .phases
            .last()
            .map(|p| p.ended_us)
            .max(summary.last_us)
            .unwrap_or(started_us)
            .max(started_us);
        RunReport {
            scenario,
            summary,
            checks,
            stats,
            collector,
            validity: checks::validity(scenario, summary, stats),
            started_us,
            ended_us,
            floor: None,
            sweep: None,
            strict: false,
            cut: None,
        }
    }

    pub fn duration_s(&self) -> f64 {
        (self.ended_us - self.started_us) as f64 / 1e6
    }

    /// No check failed (nor, when strict, was skipped), and no stop cut
    /// the run short.
    pub fn passed(&self) -> bool {
        self.cut.is_none() && checks::run_passed(self.checks, self.strict)
    }

    /// Whether the run was stopped before its end.
    pub fn stopped(&self) -> bool {
        self.stats.stopped || self.cut.is_some()
    }

    /// What the reports say of a stopped run, a sentence; `None` when it
    /// was not stopped.
    pub fn stop_note(&self) -> Option<String> {
        match self.cut {
            Some(cut) => Some(format!(
                "Stopped: {}. Its checks are skipped; the numbers cover what it saw.",
                cut.sentence()
            )),
            None if self.stats.stopped => {
                Some("Stopped: the run was stopped before its end; the numbers cover what it saw.".into())
            }
            None => None,
        }
    }

    /// The warm-up phases that ran, in a sentence (`None` without any): the
    /// reports say so next to numbers that leave them out.
    pub fn warm_up_note(&self) -> Option<String> {
        let phases: Vec<String> = (self.stats.phases.iter().enumerate())
            .filter(|(i, _)| checks::warm_up(self.scenario, *i))
            .map(|(_, p)| {
                format!(
                    "`{}` ({:.1} s, {} sent)",
                    p.name,
                    p.ended_us.saturating_sub(p.started_us) as f64 / 1e6,
                    p.sent
                )
            })
            .collect();
        let (last, rest) = phases.split_last()?;
        let named = if rest.is_empty() {
            format!("phase {last} was")
        } else {
            format!("phases {} and {last} were", rest.join(", "))
        };
        Some(format!(
            "Warm-up: {named} left out of every number and check; the requests are in requests.csv, marked warm_up."
        ))
    }
}

/// Writes the end-of-run reports of `run` into `dir` (which must exist):
/// `summary.json`, `timeseries.csv`, `latency.hlog`, `junit.xml`,
/// `summary.md`, `report.html`, and `sweep.csv` for a sweep. Returns the
/// files written. (`requests.csv` is written during the run by
/// [`RequestsCsv`], and `attempts.csv` by [`AttemptsCsv`].)
pub fn write_reports(dir: &Path, run: &RunReport<'_>) -> Result<Vec<PathBuf>, ReportError> {
    let (scenario, collector) = (run.scenario, run.collector);
    let at = |name: &'static str| move |source| ReportError::new(dir.join(name), source);
    let write = |name: &'static str, text: &str| -> Result<PathBuf, ReportError> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(at(name))?;
        Ok(path)
    };
    let mut written = Vec::with_capacity(7);
    let json = json::render(run).map_err(|e| ReportError::new(dir.join(json::SUMMARY_JSON), io::Error::other(e)))?;
    written.push(write(json::SUMMARY_JSON, &json)?);
    written.push(
        tables::write_timeseries(dir, &collector.series().rows(Some(run.started_us)))
            .map_err(at(tables::TIMESERIES_CSV))?,
    );
    written.push(
        hlog::write_hlog(dir, collector, &scenario.meta.name, run.started_us, run.ended_us).map_err(at(hlog::HLOG))?,
    );
    written.push(write(junit::JUNIT_XML, &junit::render(run))?);
    written.push(write(markdown::SUMMARY_MD, &markdown::render(run))?);
    written.push(write(html::REPORT_HTML, &html::render(run))?);
    if let Some(sweep) = run.sweep {
        written.push(sweep::write_csv(dir, sweep).map_err(at(sweep::SWEEP_CSV))?);
    }
    Ok(written)
}

/// A report file that could not be written: which, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct ReportError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl ReportError {
    pub fn new(path: PathBuf, source: io::Error) -> ReportError {
        ReportError { path, source }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::load::engine::PhaseStats;
    use crate::load::record::Outcome;
    use crate::metrics::fixtures::{attempt, failed, record, scenario, stream};

    /// A fresh folder under the system's temporary folder, removed on drop.
    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(name: &str) -> TempDir {
            let path = std::env::temp_dir().join(format!("gauntlet-test-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Every row of a CSV file, its header row first.
    pub fn read_csv(path: &Path) -> Vec<Vec<String>> {
        let mut r = csv::ReaderBuilder::new().has_headers(false).from_path(path).unwrap();
        r.records()
            .map(|row| row.unwrap().iter().map(String::from).collect())
            .collect()
    }

    const T0: u64 = 1_700_000_000_000_000;

    /// A small run: a scenario with an SLO and four checks (two failing),
    /// records over three seconds, a journal join.
    pub struct Sample {
        pub scenario: Scenario,
        pub collector: Collector,
        pub summary: MetricsSummary,
        pub checks: Vec<CheckResult>,
        pub stats: RunStats,
    }

    impl Sample {
        pub fn new() -> Sample {
            let scenario = scenario(
                "[slo]\nttft-ms = 50\ne2e-ms = 500\n\
                 [[checks]]\nname = \"ttft p99 < 40 ms & <fast>\"\nkind = \"latency\"\nmetric = \"ttft\"\nmax-ms = 40\n\
                 [[checks]]\nkind = \"error-rate\"\nmax = 0.5\n\
                 [[checks]]\nkind = \"goodput\"\nmin = 0.99\n\
                 [[checks]]\nkind = \"run-valid\"\n",
            );
            let mut collector = Collector::new(&scenario);
            let mut journal = Vec::new();
            for i in 0..30u64 {
                let at = T0 + i * 100_000;
                let id = format!("req-{i}");
                let r = match i % 10 {
                    0 => failed(&id, at, Outcome::ServerError),
                    1 => record(&id, at, at + 200),
                    _ => stream(&id, at, at + 100, &[(i as u32 + 1) * 2_000, 80_000, 120_000], 3),
                };
                collector.record(&r);
                collector.remember_for_join(&r);
                journal.push(attempt(&id, 200, at + 1_000, at + 1_500 + i * 100));
            }
            collector.join_journal(&journal);
            let summary = collector.summary();
            let stats = RunStats {
                phases: vec![PhaseStats {
                    name: "steady".into(),
                    started_us: T0,
                    ended_us: T0 + 3_000_000,
                    requested: 30,
                    expected_rate: 10.0,
                    sent: 30,
                    dropped: 0,
                    completed: 30,
                    schedule_done: false,
                }],
                stopped: false,
            };
            let checks = crate::checks::evaluate(&scenario, &summary, &stats, None);
            Sample {
                scenario,
                collector,
                summary,
                checks,
                stats,
            }
        }

        pub fn report(&self) -> RunReport<'_> {
            RunReport::new(
                &self.scenario,
                &self.summary,
                &self.checks,
                &self.stats,
                &self.collector,
            )
        }
    }

    #[test]
    fn the_sample_has_passing_and_failing_checks() {
        let s = Sample::new();
        let passed: Vec<bool> = s.checks.iter().map(|c| c.passed()).collect();
        assert_eq!(passed, [false, true, false, true], "{:#?}", s.checks);
    }

    #[test]
    fn a_report_that_cannot_be_written_names_its_file() {
        let s = Sample::new();
        let dir = TempDir::new("write-reports-blocked");
        // A folder where junit.xml should go: every write before it succeeds.
        std::fs::create_dir_all(dir.path().join(junit::JUNIT_XML).join("in-the-way")).unwrap();
        let run = RunReport::new(&s.scenario, &s.summary, &s.checks, &s.stats, &s.collector);
        let e = write_reports(dir.path(), &run).unwrap_err();
        assert_eq!(e.path, dir.path().join(junit::JUNIT_XML));
        assert!(
            e.to_string().starts_with(&format!("cannot write {}", e.path.display())),
            "{e}"
        );
        assert!(dir.path().join(json::SUMMARY_JSON).is_file());
    }

    /// A full disk (`summary.json` a link to `/dev/full`, where every write
    /// fails with ENOSPC) is an error naming the file.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_is_an_error_naming_the_file() {
        let s = Sample::new();
        let dir = TempDir::new("write-reports-full");
        std::os::unix::fs::symlink("/dev/full", dir.path().join(json::SUMMARY_JSON)).unwrap();
        let e = write_reports(dir.path(), &s.report()).unwrap_err();
        assert_eq!(e.path, dir.path().join(json::SUMMARY_JSON));
        assert_eq!(e.source.kind(), io::ErrorKind::StorageFull, "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("cannot write {}: No space left on device", e.path.display())),
            "{e}"
        );
    }

    #[test]
    fn write_reports_writes_every_file() {
        let s = Sample::new();
        let dir = TempDir::new("write-reports");
        let run = RunReport::new(&s.scenario, &s.summary, &s.checks, &s.stats, &s.collector);
        let written = write_reports(dir.path(), &run).unwrap();
        let names: Vec<_> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "summary.json",
                "timeseries.csv",
                "latency.hlog",
                "junit.xml",
                "summary.md",
                "report.html"
            ]
        );
        for path in &written {
            assert!(std::fs::metadata(path).unwrap().len() > 0, "{}", path.display());
        }
        let series = std::fs::read_to_string(dir.path().join("timeseries.csv")).unwrap();
        // A header and the run's three seconds (the last completions spill into a fourth).
        assert!(series.lines().count() >= 4, "{series}");
    }

    fn schema_validator() -> jsonschema::Validator {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/reports/schema.json")).unwrap();
        let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            jsonschema::meta::is_valid(&schema),
            "reports/schema.json is not a valid schema"
        );
        jsonschema::draft202012::new(&schema).unwrap()
    }

    #[test]
    fn summary_json_matches_the_checked_in_schema() {
        let validator = schema_validator();
        let s = Sample::new();
        let doc: serde_json::Value = serde_json::from_str(&json::render(&s.report()).unwrap()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        assert_eq!(doc["scenario"]["name"], "fixture");
        assert_eq!(doc["scenario"]["seed"], 7);
        assert_eq!(doc["passed"], false);
        assert_eq!(doc["valid"], true);
        assert_eq!(doc["outcomes"]["server_error"], 3);
        assert_eq!(doc["requests"]["sent"], 30);
        assert_eq!(doc["metrics"]["ttft"]["count"], 24);
        assert_eq!(doc["overhead_join"]["matched"], 27);
        assert_eq!(doc["checks"][0]["offenders"].as_array().unwrap().len(), 5);
        assert_eq!(doc["phases"][0]["achieved_rate"], 10.0);

        // An empty run (nothing recorded, no phase) is still a valid document.
        let empty = Collector::new(&s.scenario);
        let summary = empty.summary();
        let stats = RunStats {
            phases: vec![],
            stopped: true,
        };
        let checks = crate::checks::evaluate(&s.scenario, &summary, &stats, None);
        let run = RunReport::new(&s.scenario, &summary, &checks, &stats, &empty);
        let doc: serde_json::Value = serde_json::from_str(&json::render(&run).unwrap()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");

        // And the schema does reject a document that breaks it.
        let mut broken = doc.clone();
        broken["outcomes"]["ok"] = serde_json::json!("many");
        assert!(!validator.is_valid(&broken));
        let mut broken = doc;
        broken["surprise"] = serde_json::json!(1);
        assert!(!validator.is_valid(&broken));
    }

    #[test]
    fn junit_has_a_case_per_check_and_escapes() {
        let s = Sample::new();
        let xml = junit::render(&s.report());
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites"));
        assert_eq!(xml.matches("<testcase ").count(), 4);
        assert_eq!(xml.matches("<failure ").count(), 2);
        assert!(xml.contains(r#"<testsuites name="gauntlet" tests="4" failures="2""#));
        assert!(
            xml.contains(r#"name="ttft p99 &lt; 40 ms &amp; &lt;fast&gt;""#),
            "{xml}"
        );
        assert!(!xml.contains("<fast>"));
        assert!(xml.contains("offending requests: req-"));
        assert!(
            xml.contains(r#"<failure message="measured 70.0 %, bound 99.0 %" type="goodput">"#),
            "{xml}"
        );
        // Balanced: every opened element is closed.
        for tag in ["testsuites", "testsuite", "testcase", "failure"] {
            assert_eq!(
                xml.matches(&format!("<{tag} ")).count(),
                xml.matches(&format!("</{tag}>")).count(),
                "{tag}"
            );
        }
    }

    #[test]
    fn markdown_has_the_checks_table() {
        let s = Sample::new();
        let md = markdown::render(&s.report());
        assert!(
            md.starts_with("## gauntlet · fixture — ❌ 2 of 4 checks failed"),
            "{md}"
        );
        assert_eq!(md.matches("| ✅ |").count(), 2);
        assert_eq!(md.matches("| ❌ |").count(), 2);
        assert!(md.contains("ttft p99 &lt; 40 ms &amp; &lt;fast&gt;"));
        assert!(md.contains("| ttft | 24 |"), "{md}");
    }

    #[test]
    fn html_is_self_contained_with_charts() {
        let s = Sample::new();
        let html = html::render(&s.report());
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.matches("<svg").count() >= 4);
        assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
        assert!(html.contains("<polyline"));
        // Verdicts as words, not emoji (a machine without an emoji font shows boxes).
        assert_eq!(html.matches(r#"<span class="verdict v-fail">fail</span>"#).count(), 2);
        assert_eq!(html.matches(r#"<span class="verdict v-pass">pass</span>"#).count(), 2);
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "the report must not reach the network"
        );
        assert!(!html.contains("src=") && !html.contains("href="));
        assert!(!html.contains("<fast>"));
    }
}
