//! The demo scenario on another day. Its model lifecycle was written in
//! absolute dates against the real clock (a grace period until 2027-06-01),
//! so from that day on the demo failed: its grace-period model answered 404.
//! Its dates now count from the clock's start; these tests run it with the
//! clock a year ahead (`[router] clock.start`, which a scenario may set).

use std::path::Path;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

use gauntlet::Exit;
use gauntlet::checks::Verdict;
use gauntlet::run::{Run, RunOptions};
use gauntlet::scenario::Scenario;

use crate::support::{TempDir, edit};

const DEMO: &str = include_str!("../../scenarios/demo.toml");

/// The demo with its clock starting `ahead` from now, its mocks on free
/// ports (the router calls them by name instead of the fixed ports a
/// person runs the demo on).
fn demo(ahead: SignedDuration) -> Scenario {
    let start = Timestamp::now() + ahead;
    let text = edit(
        DEMO,
        "[router]\n",
        &format!("[router]\nclock = {{ start = \"{start}\" }}\n"),
    );
    let text = edit(&text, "listen = \"127.0.0.1:18001\"", "listen = \"127.0.0.1:0\"");
    let text = edit(&text, "listen = \"127.0.0.1:18002\"", "listen = \"127.0.0.1:0\"");
    let text = edit(
        &text,
        "base-url = \"http://127.0.0.1:18001\"",
        "base-url = \"mock:openai-like\"",
    );
    let text = edit(
        &text,
        "base-url = \"http://127.0.0.1:18002\"",
        "base-url = \"mock:anthropic-like\"",
    );
    Scenario::parse(&text, Path::new("scenarios/demo.toml")).unwrap_or_else(|e| panic!("{e}"))
}

const YEAR: SignedDuration = SignedDuration::from_hours(365 * 24);

/// A year ahead, the demo still validates with its grace-period model in
/// its grace period and its removed model removed, at the clock's start.
#[test]
fn the_demos_lifecycle_holds_a_year_ahead() {
    for ahead in [SignedDuration::ZERO, YEAR, YEAR * 3] {
        let scenario = demo(ahead);
        let config = &scenario.expect.as_ref().unwrap().config;
        let start = config.clock.start.unwrap();
        let lifecycle = |id: &str| config.catalog.get(id).unwrap().deprecation.clone().unwrap();
        let grace = lifecycle("openai/gpt-4-legacy");
        assert!(
            grace.announced <= start && start < grace.removed,
            "{ahead}: the clock starts at {start}, outside the grace period {} to {}",
            grace.announced,
            grace.removed
        );
        let removed = lifecycle("openai/gpt-3.5-turbo-0301");
        assert!(
            removed.removed <= start,
            "{ahead}: {start} is before {}",
            removed.removed
        );
    }
}

/// A year ahead, the demo (its phases cut to 2.5 s) runs with no request
/// failed: the grace-period model is served by its replacement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_a_year_ahead() {
    let mut scenario = demo(YEAR);
    for (phase, length) in scenario.phases.iter_mut().zip([500, 2000]) {
        phase.duration = Duration::from_millis(length);
    }
    let out = TempDir::new("demo-year-ahead");
    let options = RunOptions {
        out: Some(out.path().to_path_buf()),
        ..RunOptions::default()
    };
    let (_stop, stop) = watch::channel(false);
    let outcome = tokio::time::timeout(Duration::from_secs(60), Run::new(&scenario, options).execute(stop))
        .await
        .expect("the demo ends");
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    assert_ne!(outcome.exit, Exit::RunFailed);
    let errors = outcome
        .results
        .iter()
        .find(|c| c.kind == "error-rate")
        .expect("the demo checks its error rate");
    assert_eq!(errors.verdict, Verdict::Pass, "{}", errors.detail);
    assert_eq!(errors.measured, 0.0, "{}", errors.detail);
    let requests = std::fs::read_to_string(outcome.dir.unwrap().join("requests.csv")).unwrap();
    let header: Vec<&str> = requests.lines().next().unwrap().split(',').collect();
    let status = header.iter().position(|c| *c == "status").unwrap();
    let sent = requests.lines().skip(1).count();
    assert!(sent > 20, "{sent} requests");
    for row in requests.lines().skip(1) {
        assert_eq!(row.split(',').nth(status), Some("200"), "{row}");
    }
}
