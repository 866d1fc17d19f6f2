//! The official OpenAI and Anthropic Python SDKs against the built
//! `gauntlet mock` binary, and both SDKs against the built `gauntlet
//! router` in front of it (the Anthropic one through the Messages API): each test starts the binaries, runs one script of
//! `tests/sdk/` on a URL and expects it to exit 0.
//!
//! The interpreter is `GAUNTLET_SDK_PYTHON`, else `.venv/bin/python` of the
//! workspace (`.ci/run` creates it from `tests/sdk/requirements.txt`). With
//! neither, the tests say they were skipped, and fail under `CI`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{
    Mock, RouterProcess, SDK_ANTHROPIC_TOOLS, SDK_MESSAGES_MOCKS, SDK_MESSAGES_ROUTER, SDK_OPENAI_TOOLS, SDK_ROUTER,
    SDK_ROUTER_MOCKS, TempFile, edit,
};

/// The router `router` (a fixture) in front of the mocks at `oai` and `ant`.
fn router_config(router: &str, oai: &str, ant: &str) -> String {
    let toml = edit(router, "\"mock:oai\"", &format!("\"{oai}\""));
    edit(&toml, "\"mock:ant\"", &format!("\"{ant}\""))
}

/// Serves the `mocks` and the `router` in front of them, and runs `script` on the router.
fn sdk_against_router(mocks: &str, router: &str, script: &str) {
    let Some(python) = python() else { return };
    let mocks = TempFile::new("sdk-router-mocks", mocks);
    let mock = Mock::start(&["--config", mocks.path()]);
    let config = TempFile::new(
        "sdk-router",
        &router_config(router, mock.url_of("oai"), mock.url_of("ant")),
    );
    let router = RouterProcess::start(&["--config", config.path()]);
    run_script(&python, script, router.url(), None);
}

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The interpreter with the SDKs, or `None` (after saying so) when the test
/// should be skipped.
fn python() -> Option<PathBuf> {
    if let Some(python) = std::env::var_os("GAUNTLET_SDK_PYTHON").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(python));
    }
    let venv = workspace().join(".venv/bin/python");
    if venv.exists() {
        return Some(venv);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "no Python with the SDKs: set GAUNTLET_SDK_PYTHON or create {}; under CI, .ci/run must set up the venv",
            venv.display()
        );
    }
    // Straight to stderr: the test harness captures eprintln! of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: no Python with the SDKs (set GAUNTLET_SDK_PYTHON, or run .ci/run to create {})",
        venv.display()
    );
    None
}

/// Runs `tests/sdk/SCRIPT URL [EXTRA]` and asserts it exits 0.
fn run_script(python: &Path, script: &str, url: &str, extra: Option<&str>) {
    let script = workspace().join("tests/sdk").join(script);
    let output = Command::new(python)
        .arg(&script)
        .arg(url)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} {} {url} {} failed ({}):\n--- stdout\n{stdout}--- stderr\n{stderr}",
        python.display(),
        script.display(),
        extra.unwrap_or(""),
        output.status
    );
    print!("{stdout}");
}

fn sdk_against_dialect(dialect: &str, script: &str) {
    let Some(python) = python() else { return };
    let mock = Mock::start(&["--dialect", dialect, "--listen", "127.0.0.1:0"]);
    run_script(&python, script, mock.url(), None);
}

fn sdk_against_tools(config: &str, script: &str) {
    let Some(python) = python() else { return };
    let file = TempFile::new("sdk-tools", config);
    let mock = Mock::start(&["--config", file.path()]);
    run_script(&python, script, mock.url(), Some("tools"));
}

#[test]
fn openai_sdk_completes_streams_lists_and_errors() {
    sdk_against_dialect("openai", "openai_sdk.py");
}

#[test]
fn anthropic_sdk_creates_streams_lists_and_errors() {
    sdk_against_dialect("anthropic", "anthropic_sdk.py");
}

#[test]
fn openai_sdk_reassembles_a_streamed_tool_call() {
    sdk_against_tools(SDK_OPENAI_TOOLS, "openai_sdk.py");
}

#[test]
fn anthropic_sdk_reassembles_a_streamed_tool_use() {
    sdk_against_tools(SDK_ANTHROPIC_TOOLS, "anthropic_sdk.py");
}

#[test]
fn openai_sdk_against_the_router_completes_streams_and_errors() {
    sdk_against_router(SDK_ROUTER_MOCKS, SDK_ROUTER, "router_sdk.py");
}

#[test]
fn anthropic_sdk_against_the_routers_messages_api() {
    sdk_against_router(SDK_MESSAGES_MOCKS, SDK_MESSAGES_ROUTER, "router_messages_sdk.py");
}
