//! The one boundary between the harness and a router under test: which
//! router a scenario targets ([`Target`]), starting it ([`start`]: the
//! reference router on a loopback socket, or an external router's own
//! command) and waiting until it answers, what the scenario's `[router]`
//! table expects of it ([`Expectations`]), and how its accounts are read
//! ([`AccountProbe`], per [`Profile`]).
//!
//! No other harness module names `crate::router`: what the harness needs of
//! the reference router's types reaches it from here (a test in
//! `tests/` holds that rule).

mod builtin;
mod expect;
mod external;
mod probe;

use std::time::Duration;

use serde::Deserialize;

pub use crate::router::Defects;
pub use expect::{Deprecation, Expectations, Model, Picodollars, RawRouter, RouterConfig};
pub use probe::{AccountProbe, Accounts, Generation, KeyAccount, ProbeError};

/// How long an external router may take to become ready, unless the
/// scenario says otherwise.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How the harness reads a router's charges and balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Cost in `usage.cost`, balance from `GET /api/v1/key`.
    Openrouter,
    /// Cost in the `x-litellm-response-cost` header, spend from `GET /key/info`.
    Litellm,
}

/// The router a scenario runs against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The reference router, started in-process on loopback.
    Builtin,
    /// A router at `url` (the API base, e.g. `http://127.0.0.1:8080/api/v1`).
    Http {
        url: String,
        profile: Profile,
        /// The program (and its arguments) that starts the router, if the
        /// harness should start it.
        command: Option<Vec<String>>,
        ready_url: String,
        ready_timeout: Duration,
    },
}

impl Target {
    /// How to read the target's charges and balances (the built-in router
    /// speaks OpenRouter's dialect).
    pub fn profile(&self) -> Profile {
        match self {
            Target::Builtin => Profile::Openrouter,
            Target::Http { profile, .. } => *profile,
        }
    }

    /// This target moved to `url` (`--target URL`): an HTTP target's profile
    /// and ready timeout still hold; readiness is asked of `{url}/models`.
    pub fn moved_to(&self, url: &str) -> Target {
        let ready_timeout = match self {
            Target::Http { ready_timeout, .. } => *ready_timeout,
            Target::Builtin => DEFAULT_READY_TIMEOUT,
        };
        let url = url.trim_end_matches('/');
        Target::Http {
            url: url.to_string(),
            profile: self.profile(),
            command: None,
            ready_url: format!("{url}/models"),
            ready_timeout,
        }
    }
}

/// Why a target could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("the built-in target needs a [router] table")]
    NoRouterTable,
    #[error("router: {0}")]
    Router(String),
    #[error("router: {0}")]
    Listen(#[source] std::io::Error),
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{0}` is not a URL")]
    BadUrl(String),
    #[error("the target at {url} did not become ready within {timeout:?} ({last})")]
    NotReady {
        url: String,
        timeout: Duration,
        last: String,
    },
}

/// A started target: where to send requests, and what to stop afterwards.
#[derive(Debug)]
pub struct Running {
    /// The API base requests go to, e.g. `http://127.0.0.1:8080/api/v1`.
    pub base_url: String,
    process: Process,
}

#[derive(Debug)]
enum Process {
    /// The reference router, serving until told to stop.
    Builtin(builtin::Serving),
    /// An external router the harness started (`target.command`).
    Child(tokio::process::Child),
    /// An external router someone else runs.
    Elsewhere,
}

/// Starts `target`: the reference router from `expect` (with `mock:NAME`
/// upstreams resolved by `mock_url`, and `defects` enabled), or an external
/// router's command; returns once the target answers.
pub async fn start(
    target: &Target,
    expect: Option<&Expectations>,
    mock_url: impl Fn(&str) -> Option<String>,
    defects: Defects,
) -> Result<Running, TargetError> {
    match target {
        Target::Builtin => {
            let expect = expect.ok_or(TargetError::NoRouterTable)?;
            let serving = builtin::start(expect.resolved(mock_url), defects).await?;
            Ok(Running {
                base_url: serving.base_url(),
                process: Process::Builtin(serving),
            })
        }
        Target::Http {
            url,
            command,
            ready_url,
            ready_timeout,
            ..
        } => {
            let child = command.as_deref().map(external::spawn).transpose()?;
            external::wait_ready(ready_url, *ready_timeout).await?;
            Ok(Running {
                base_url: url.clone(),
                process: child.map_or(Process::Elsewhere, Process::Child),
            })
        }
    }
}

impl Running {
    /// Stops what [`start`] started: the reference router (letting its
    /// connections finish), or the external router's process.
    pub async fn stop(self) {
        match self.process {
            Process::Builtin(serving) => serving.stop().await,
            Process::Child(mut child) => {
                let _ = child.kill().await;
            }
            Process::Elsewhere => {}
        }
    }
}

#[cfg(test)]
mod boundary {
    use std::path::{Path, PathBuf};

    /// The files outside `src/router/` and `src/target/` allowed to name
    /// the reference router: the crate root that declares it, and the
    /// `gauntlet router` command that serves it standalone.
    const ALLOWED: &[&str] = &["lib.rs", "command/router.rs"];

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn no_harness_module_names_the_router_but_the_target() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        assert!(
            files.len() > 20,
            "found only {} files under {}",
            files.len(),
            src.display()
        );
        let mut offenders = Vec::new();
        for file in &files {
            let relative = file.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
            if relative.starts_with("router/")
                || relative.starts_with("target/")
                || ALLOWED.contains(&relative.as_str())
            {
                continue;
            }
            let text = std::fs::read_to_string(file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if code.contains("crate::router") || code.contains("super::router") || code.contains("gauntlet::router")
                {
                    offenders.push(format!("src/{relative}:{}: {}", n + 1, line.trim()));
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "only src/target/ may use the reference router (re-export what the harness needs there):\n{}",
            offenders.join("\n")
        );
    }
}
