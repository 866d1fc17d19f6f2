//! `gauntlet run` stopped by a signal, as the built binary: SIGINT (what
//! Ctrl-C sends) during a phase and during a folder run, SIGTERM while
//! waiting for the target; and `Run::execute` stopped in-process. The run exits 130, says on stderr what it did not run, skips
//! the checks it cut short and leaves its reports marked stopped.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{RUN, TempDir, edit, report_schema};

/// How long a stopped run may take to end: the engine's 2 s grace for the
/// requests in flight, the reports, and a loaded machine's slack.
const STOP_BOUND: Duration = Duration::from_secs(30);

/// The [`RUN`] scenario named `name`, its open-loop phase `steady` lasting
/// `steady_s` seconds and its closed-loop phase named `closed`.
fn scenario(name: &str, steady_s: u32) -> String {
    let text = edit(RUN, "name = \"run-e2e\"", &format!("name = \"{name}\""));
    let text = edit(
        &text,
        "[[phases]]\nduration-s = 1\narrival",
        &format!("[[phases]]\nname = \"steady\"\nduration-s = {steady_s}\narrival"),
    );
    edit(
        &text,
        "[[phases]]\nduration-s = 1\nusers",
        "[[phases]]\nname = \"closed\"\nduration-s = 1\nusers",
    )
}

/// A `gauntlet run` in flight: stdout read line by line on a thread,
/// stderr collected whole; killed on drop.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
            .arg("run")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start the gauntlet binary");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut stderr = child.stderr.take().unwrap();
        let (line_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = line_tx.send(line);
            }
        });
        let (err_tx, err_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            let _ = err_tx.send(text);
        });
        Running {
            child,
            lines,
            stderr: err_rx,
        }
    }

    /// Waits for a stdout line starting with `prefix`.
    fn wait_for_line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + STOP_BOUND;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("no line starting {prefix:?} on stdout; saw {seen:#?}");
    }

    /// Sends SIGINT, as Ctrl-C does, by the process id.
    fn interrupt(&self) {
        self.signal("INT");
    }

    /// Sends `SIG<name>` by the process id.
    fn signal(&self, name: &str) {
        let status = Command::new("sh")
            .args(["-c", &format!("kill -{name} {}", self.child.id())])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed: {status}");
    }

    /// Waits for the process to end (within [`STOP_BOUND`]): its exit code
    /// and stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + STOP_BOUND;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the run still runs {STOP_BOUND:?} after SIGINT"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let stderr = self.stderr.recv_timeout(STOP_BOUND).unwrap_or_default();
        (status.code(), stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The run folders under `out`.
fn run_dirs(out: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    dirs
}

/// The run's `summary.json`, held to the schema.
fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let errors: Vec<String> = report_schema()
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    doc
}

/// Every report of a stopped run says so, and its checks are skipped with
/// `reason`, not judged.
fn assert_reported_stopped(dir: &Path, reason: &str, cut_short: Option<&str>, not_started: &[&str]) {
    let doc = summary(dir);
    assert_eq!(doc["stopped"], true, "{doc:#}");
    assert_eq!(doc["passed"], false, "a stopped run did not pass: {doc:#}");
    assert_eq!(doc["stop"]["reason"], reason, "{doc:#}");
    assert_eq!(doc["stop"]["cut_short"], serde_json::json!(cut_short), "{doc:#}");
    assert_eq!(doc["stop"]["not_started"], serde_json::json!(not_started), "{doc:#}");
    let checks = doc["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3, "{doc:#}");
    for check in checks {
        assert_eq!(check["verdict"], "skip", "{check:#}");
        assert!(check["detail"].as_str().unwrap().starts_with(reason), "{check:#}");
    }
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(
        junit.contains("skipped=\"3\"") && !junit.contains("<failure"),
        "{junit}"
    );
    assert!(junit.contains(reason), "{junit}");
    let markdown = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(markdown.contains("⏹️") && markdown.contains(reason), "{markdown}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("stopped") && html.contains(reason), "{html}");
}

/// SIGINT during the first phase: exit 130, stderr names the phase cut
/// short and the one that did not start, and the reports say so with every
/// check skipped.
#[test]
fn sigint_during_a_phase_exits_130_and_skips_the_checks_it_cut_short() {
    let out = TempDir::new("stop-phase");
    let file = out.write("scenarios/stop-phase.toml", &scenario("stop-phase", 30));
    let reports = out.join("reports");
    let run = Running::start(&[file.to_str().unwrap(), "--out", reports.to_str().unwrap()]);
    run.wait_for_line("running stop-phase");
    // Some requests of `steady` are answered, some in flight.
    std::thread::sleep(Duration::from_millis(700));
    let stopped_at = Instant::now();
    run.interrupt();
    let (code, stderr) = run.finish();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stopped_at.elapsed() < Duration::from_secs(15),
        "{:?}",
        stopped_at.elapsed()
    );
    let reason = "the run was stopped before phase `steady` finished";
    assert!(
        stderr.contains(&format!(
            "stopped: stop-phase: {reason}; not started: `closed`; 3 checks skipped"
        )),
        "{stderr}"
    );
    let dirs = run_dirs(&reports);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    assert_reported_stopped(&dirs[0], reason, Some("steady"), &["closed"]);
    let doc = summary(&dirs[0]);
    assert!(doc["requests"]["sent"].as_u64().unwrap() > 0, "{doc:#}");
    assert_eq!(doc["phases"].as_array().unwrap().len(), 1, "{doc:#}");
}

/// A folder run stopped during its first scenario names the scenarios it
/// did not run, and runs none of them.
#[test]
fn sigint_during_a_folder_run_lists_the_scenarios_not_run() {
    let out = TempDir::new("stop-folder");
    out.write("scenarios/a.toml", &scenario("stop-a", 30));
    out.write("scenarios/b.toml", &scenario("stop-b", 1));
    out.write("scenarios/c.toml", &scenario("stop-c", 1));
    let reports = out.join("reports");
    let folder = out.join("scenarios");
    let run = Running::start(&[folder.to_str().unwrap(), "--out", reports.to_str().unwrap()]);
    run.wait_for_line("running stop-a");
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, stderr) = run.finish();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("stopped: stop-a: the run was stopped before phase `steady` finished"),
        "{stderr}"
    );
    assert!(stderr.contains("stopped: not run: stop-b, stop-c"), "{stderr}");
    let dirs = run_dirs(&reports);
    assert_eq!(dirs.len(), 1, "only the first scenario ran: {dirs:?}");
    assert!(dirs[0].file_name().unwrap().to_str().unwrap().starts_with("stop-a-"));
}

/// SIGTERM (what a cancelled CI job sends) while the run waits for its
/// target to become ready (a port that takes connections and never
/// answers) ends the wait at once, as SIGINT would: no phase started, and
/// the reports say so.
#[test]
fn sigterm_while_waiting_for_the_target_stops_before_the_load() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/v1", silent.local_addr().unwrap());
    let out = TempDir::new("stop-ready");
    let file = out.write("stop-ready.toml", &scenario("stop-ready", 30));
    let reports = out.join("reports");
    let run = Running::start(&[
        file.to_str().unwrap(),
        "--target",
        &url,
        "--out",
        reports.to_str().unwrap(),
    ]);
    // The mocks start, then readiness waits (30 s by default).
    std::thread::sleep(Duration::from_millis(1500));
    let stopped_at = Instant::now();
    run.signal("TERM");
    let (code, stderr) = run.finish();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stopped_at.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopped_at.elapsed()
    );
    let reason = "the run was stopped before its load started";
    assert!(
        stderr.contains(&format!(
            "stopped: stop-ready: {reason}; not started: `steady`, `closed`"
        )),
        "{stderr}"
    );
    let dirs = run_dirs(&reports);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    assert_reported_stopped(&dirs[0], reason, None, &["steady", "closed"]);
    drop(silent);
}

/// The library call: a stop sent during the load ends `Run::execute` with
/// the exit class `Stopped`, the cut in the outcome and every check skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_library_run_says_what_it_cut() {
    use gauntlet::Exit;
    use gauntlet::checks::Verdict;
    use gauntlet::run::{Run, RunOptions};
    let out = TempDir::new("stop-library");
    let file = out.write("stop-library.toml", &scenario("stop-library", 30));
    let scenario = gauntlet::scenario::Scenario::load(&file).unwrap();
    let options = RunOptions {
        out: Some(out.join("reports")),
        ..RunOptions::default()
    };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let stopper = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop_tx.send(true).unwrap();
    };
    let run = Run::new(&scenario, options);
    let (outcome, ()) = tokio::join!(run.execute(stop), stopper);
    assert_eq!(outcome.exit, Exit::Stopped, "{:?}", outcome.error);
    let cut = outcome.cut.expect("what the stop cut");
    assert_eq!(cut.reason, "the run was stopped before phase `steady` finished");
    assert_eq!(
        (cut.cut_short.as_deref(), cut.not_started.as_slice()),
        (Some("steady"), &["closed".to_string()][..])
    );
    assert_eq!(outcome.results.len(), 3);
    assert!(
        outcome.results.iter().all(|c| c.verdict == Verdict::Skip),
        "{:#?}",
        outcome.results
    );
    assert_reported_stopped(&outcome.dir.unwrap(), &cut.reason, Some("steady"), &["closed"]);
}
