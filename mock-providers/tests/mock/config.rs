//! Provider files on disk: errors name the file, the field path and the
//! problem; the demo scenario loads.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use mock_providers::distribution::Distribution;
use mock_providers::{ConfigError, Dialect, load_providers};

/// A file in a fresh directory under the system temp dir, removed on drop.
struct TempFile {
    dir: PathBuf,
    path: PathBuf,
}

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "gauntlet-mock-tests-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        TempFile { dir, path }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Loads `text` from a file and returns the error, checking that it names
/// the file and the field path, and that the message says `problem`.
fn load_error(text: &str, path: &str, problem: &str) -> ConfigError {
    let file = TempFile::new("providers.toml", text);
    let err = match load_providers(&file.path) {
        Ok(_) => panic!("expected an error at {path} for:\n{text}"),
        Err(e) => e,
    };
    assert_eq!(err.file.as_deref(), Some(file.path.as_path()));
    assert_eq!(err.path, path, "{err}");
    assert!(
        err.message.contains(problem),
        "message {:?} should say {problem:?}",
        err.message
    );
    let shown = err.to_string();
    assert!(shown.starts_with(&file.path.display().to_string()), "{shown}");
    assert!(shown.contains(path) && shown.contains(problem), "{shown}");
    err
}

#[test]
fn an_unknown_key_is_named_with_a_suggestion() {
    let err = load_error(
        "[[providers]]\nname = \"a\"\ndialect = \"openai\"\n\n[providers.defaults]\nitl-ms = 5\nouput-tokens = 3\n",
        "providers[0].defaults.ouput-tokens",
        "did you mean `output-tokens`?",
    );
    assert!(err.message.contains("unknown field `ouput-tokens`"), "{}", err.message);
    assert_eq!(err.line.map(|(line, _)| line), Some(7));
    assert!(err.to_string().contains(":7:"), "{err}");

    load_error(
        "[[providers]]\nname = \"a\"\ndialect = \"openai\"\n[[providers.keys]]\nkey = \"k\"\nrmp = 5\n",
        "providers[0].keys[0].rmp",
        "did you mean `rpm`?",
    );
    load_error(
        "[[providers]]\nname = \"a\"\ndialect = \"openai\"\n[[providers.faults]]\nkind = \"status\"\nstatus = 500\nprobabilty = 0.1\n",
        "providers[0].faults[0].probabilty",
        "did you mean `probability`?",
    );
}

#[test]
fn a_bad_dialect_is_named_with_a_suggestion() {
    load_error(
        "[[providers]]\nname = \"a\"\ndialect = \"antrhopic\"\n",
        "providers[0].dialect",
        "did you mean `anthropic`?",
    );
}

#[test]
fn bad_distributions_are_named() {
    load_error(
        "[[providers]]\nname = \"a\"\ndialect = \"openai\"\n[[providers.models]]\nid = \"m\"\nitl-ms = { dist = \"uniform\", min = 5, max = 1 }\n",
        "providers[0].models[0].itl-ms",
        "min <= max",
    );
    load_error(
        "[[providers]]\nname = \"a\"\ndialect = \"openai\"\n[providers.defaults]\nttft-ms = { dist = \"lognormal\", p50 = 100, mean = 3 }\n",
        "providers[0].defaults.ttft-ms",
        "`mean` does not apply to dist = \"lognormal\"",
    );
    load_error(
        "[[providers]]\nname = \"a\"\ndialect = \"openai\"\n[providers.defaults]\noutput-tokens = -4\n",
        "providers[0].defaults.output-tokens",
        "must be a finite number of tokens between 0 and 1000000",
    );
    let err = load_error(
        "[[providers]]\nname = \"a\"\ndialect = \"openai\"\n[providers.defaults]\nitl-ms = { dist = \"normal\", mean = 10, stddev = 1e20 }\n",
        "providers[0].defaults.itl-ms.stddev",
        "must be a finite number of milliseconds between 0 and 3600000",
    );
    assert_eq!(err.value.as_deref(), Some("1e20"));
    let err = load_error(
        "[[providers]]\nname = \"a\"\ndialect = \"openai\"\n[providers.defaults]\nttft-ms = { dist = \"lognormel\", p50 = 1, p99 = 2 }\n",
        "providers[0].defaults.ttft-ms.dist",
        "unknown variant `lognormel`",
    );
    assert!(err.message.contains("did you mean `lognormal`?"), "{}", err.message);
}

#[test]
fn a_duplicate_provider_name_is_named() {
    load_error(
        "[[providers]]\nname = \"twin\"\ndialect = \"openai\"\n\n[[providers]]\nname = \"twin\"\ndialect = \"anthropic\"\n",
        "providers[1].name",
        "provider `twin` is defined twice",
    );
}

#[test]
fn a_file_without_providers_is_refused() {
    load_error(
        "[router]\nurl = \"http://127.0.0.1:1\"\n",
        "providers",
        "no [[providers]] table",
    );
    load_error("# nothing here\n", "providers", "no [[providers]] table");
}

#[test]
fn other_problems_are_named() {
    load_error(
        "[[providers]]\nname = \"a\"\ndialect = \"openai\"\n[[providers.faults]]\nkind = \"hang\"\nafter-tokens = 2\n",
        "providers[0].faults[0].after-tokens",
        "does not apply",
    );
    load_error(
        "[[providers]]\nname = \"a\"\ndialect = \"openai\"\n[[providers.models]]\nid = \"m\"\n[[providers.models]]\nid = \"m\"\n",
        "providers[0].models[1].id",
        "listed twice",
    );
    let err = load_error("[[providers]\nname = \"a\"\n", "", "");
    assert!(err.line.is_some(), "a TOML syntax error has a line: {err}");
}

#[test]
fn a_missing_file_is_named() {
    let path = std::env::temp_dir().join(format!("gauntlet-mock-tests-{}-missing.toml", std::process::id()));
    let err = load_providers(&path).unwrap_err();
    assert_eq!(err.file.as_deref(), Some(path.as_path()));
    assert!(err.message.contains("cannot read"), "{err}");
}

#[test]
fn the_demo_scenario_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/demo.toml");
    let providers = load_providers(&path).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["openai-like", "anthropic-like"]);
    assert_eq!(providers[0].dialect, Dialect::OpenAi);
    assert_eq!(providers[1].dialect, Dialect::Anthropic);
    let removed: Vec<&str> = providers[0]
        .models
        .iter()
        .filter(|m| m.removed)
        .map(|m| m.id.as_str())
        .collect();
    assert_eq!(removed, ["gpt-3.5-turbo-0301"]);
    assert!(providers.iter().all(|p| !p.keys.is_empty()));
    assert!(matches!(providers[0].defaults.ttft_ms, Distribution::LogNormal { .. }));
}
