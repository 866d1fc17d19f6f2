//! `gauntlet run` under faults of its surroundings, as the built binary: a
//! report folder it cannot write, a full disk under its console, a target
//! with nothing listening (at readiness, and during the load).

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{RUN, TempDir, TempFile, free_port_block, free_ports};

/// `gauntlet run ARGS` to its end, with stdout going to `stdout`.
fn run(args: &[&str], stdout: Stdio) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether the tests run as root, for whom permission bits stop no write.
fn root() -> bool {
    let probe = TempFile::new("faults-uid", "");
    std::fs::metadata(probe.path()).unwrap().uid() == 0
}

/// A report folder that cannot be made (its parent is a file; and, unless
/// the tests run as root, a read-only folder) ends the run with exit 3 and
/// an error naming the folder.
#[test]
fn an_unwritable_report_folder_exits_3_naming_it() {
    let file = TempFile::new("faults-unwritable", RUN);
    let not_a_folder = TempFile::new("faults-unwritable-file", "a file, not a folder");
    let under_a_file = format!("{}/reports", not_a_folder.path());
    let mut parents = vec![under_a_file];
    let read_only = TempDir::new("faults-read-only");
    if !root() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(read_only.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
        parents.push(read_only.join("reports").to_str().unwrap().to_string());
    }
    for out in &parents {
        let output = run(&[file.path(), "--out", out], Stdio::piped());
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{out}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: cannot create {out}/run-e2e-")),
            "{out}: {stderr}"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(read_only.path(), std::fs::Permissions::from_mode(0o755));
}

/// The console on a full disk (stdout is `/dev/full`): the run still
/// writes its reports, then ends with exit 3 naming standard output, where
/// it used to panic (exit 101) at its first line.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_under_the_console_ends_the_run_with_exit_3() {
    let file = TempFile::new("faults-full", RUN);
    let out = TempDir::new("faults-full");
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let output = run(&[file.path(), "--out", out.path().to_str().unwrap()], Stdio::from(full));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("error: cannot write to standard output: No space left on device"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let dirs: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    for name in ["summary.json", "junit.xml", "summary.md", "report.html", "requests.csv"] {
        assert!(dirs[0].join(name).is_file(), "{name} missing in {}", dirs[0].display());
    }
}

/// `--target` at a port where nothing listens fails within 2 s (not the
/// 30 s ready timeout), saying that nothing listens there and naming the URL.
#[test]
fn a_refused_target_fails_within_2_s_naming_its_url() {
    let file = TempFile::new("faults-refused", RUN);
    let out = TempDir::new("faults-refused");
    let closed = free_ports(1)[0];
    let url = format!("http://127.0.0.1:{closed}/api/v1");
    let started = Instant::now();
    let output = run(
        &[file.path(), "--target", &url, "--out", out.path().to_str().unwrap()],
        Stdio::piped(),
    );
    let elapsed = started.elapsed();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}: {stderr}");
    assert!(
        stderr.contains(&format!("error: the target at {url}/models did not become ready"))
            && stderr.contains(&format!(
                "nothing listens at 127.0.0.1:{closed} (connection refused for 1 s)"
            )),
        "{stderr}"
    );
}

/// A target that refuses connections once the load runs (readiness asked
/// elsewhere): every request is a connect error at once, the error-rate
/// check fails, and the run ends in about its own length.
#[test]
fn requests_to_a_refused_target_are_connect_errors_at_once() {
    let file = TempFile::new("faults-refused-load", RUN);
    let out = TempDir::new("faults-refused-load");
    let base = free_port_block(2);
    let closed = free_ports(1)[0];
    let url = format!("http://127.0.0.1:{closed}/api/v1");
    let ready = format!("http://127.0.0.1:{base}/__gauntlet/journal");
    let started = Instant::now();
    let output = run(
        &[
            file.path(),
            "--mock-ports",
            &base.to_string(),
            "--target",
            &url,
            "--ready-url",
            &ready,
            "--out",
            out.path().to_str().unwrap(),
        ],
        Stdio::piped(),
    );
    let elapsed = started.elapsed();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    // Two phases of 1 s each, and the reports.
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let dir = std::fs::read_dir(out.path()).unwrap().next().unwrap().unwrap().path();
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let sent = doc["requests"]["sent"].as_u64().unwrap();
    assert!(sent >= 20, "{doc:#}");
    assert_eq!(doc["outcomes"]["connect_error"], sent, "{doc:#}");
    let error_rate = &doc["checks"][1];
    assert_eq!(error_rate["verdict"], "fail", "{error_rate:#}");
    assert!(
        error_rate["detail"].as_str().unwrap().contains("connect_error"),
        "{error_rate:#}"
    );
}
