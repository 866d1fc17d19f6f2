//! The one boundary between the harness and a router under test: which
//! router a scenario targets ([`Target`], with the headers it needs), starting
//! it ([`start`]: the reference router on a loopback socket, or an external
//! router's own command) and waiting until it answers, what the scenario's
//! `[router]` table expects of it ([`Expectations`]), what its kind of router
//! has and how it writes money ([`Profile`], [`Feature`], [`usd`]), and how
//! its accounts are read ([`AccountProbe`]); and another router's own
//! configuration written from that table ([`export`]).
//!
//! No other harness module names `crate::router`: what the harness needs of
//! the reference router's types reaches it from here (the `boundary` test at
//! the end of this file holds that rule).

mod amount;
mod builtin;
mod expect;
pub mod export;
mod external;
mod probe;
mod profile;

use std::time::Duration;

use std::sync::LazyLock;

pub use crate::router::Defects;
pub use amount::{Precision, usd};
pub use expect::{Deprecation, Expectations, Model, Picodollars, RawRouter, RouterConfig};
pub use probe::{AccountProbe, Accounts, Generation, KeyAccount, ProbeError};
pub use profile::{Account, Cost, Feature, Profile, ProfileError, RawProfile};

/// How long an external router may take to become ready, unless the
/// scenario says otherwise.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The router a scenario runs against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The reference router, started in-process on loopback.
    Builtin,
    /// A router at `url` (the API base, e.g. `http://127.0.0.1:8080/api/v1`).
    Http {
        url: String,
        profile: Box<Profile>,
        /// The program (and its arguments) that starts the router, if the
        /// harness should start it.
        command: Option<Vec<String>>,
        /// Where to ask whether it is ready, when the scenario says (the
        /// profile's path under `url` otherwise).
        ready_url: Option<String>,
        ready_timeout: Duration,
        /// Sent with every request, the readiness checks and the account
        /// probes included (auth, routing headers), after the profile's.
        headers: Vec<(String, String)>,
    },
}

/// The reference router's profile.
static BUILTIN: LazyLock<Profile> = LazyLock::new(Profile::openrouter);

impl Target {
    /// How to read the target's charges and balances, and what it has (the
    /// built-in router speaks OpenRouter's dialect).
    pub fn profile(&self) -> &Profile {
        match self {
            Target::Builtin => &BUILTIN,
            Target::Http { profile, .. } => profile,
        }
    }

    /// Where readiness is asked: the scenario's `ready-url`, or the
    /// profile's path under the API base.
    pub fn ready_url(&self) -> Option<String> {
        match self {
            Target::Builtin => None,
            Target::Http {
                url,
                profile,
                ready_url,
                ..
            } => Some(ready_url.clone().unwrap_or_else(|| profile.ready_url(url))),
        }
    }

    /// This target moved to `url` (`--target URL`): an HTTP target's
    /// profile, headers and ready timeout still hold, and a ready URL the
    /// scenario gave moves along when it lay under the old URL or on its
    /// server; otherwise readiness is asked where the profile says. Whoever
    /// moved it starts the router.
    pub fn moved_to(&self, url: &str) -> Target {
        let url = url.trim_end_matches('/');
        let (ready_url, ready_timeout, headers) = match self {
            Target::Http {
                url: old,
                ready_url,
                ready_timeout,
                headers,
                ..
            } => (
                ready_url.as_deref().map(|ready| rebase(ready, old, url)),
                *ready_timeout,
                headers.clone(),
            ),
            Target::Builtin => (None, DEFAULT_READY_TIMEOUT, Vec::new()),
        };
        Target::Http {
            url: url.to_string(),
            profile: Box::new(self.profile().clone()),
            command: None,
            ready_url,
            ready_timeout,
            headers,
        }
    }

    /// This HTTP target with `extra` headers too (replacing ones of the same
    /// name) and, when given, another profile; `None` for the built-in one,
    /// which takes neither.
    pub fn amended(&self, extra: &[(String, String)], profile: Option<&Profile>) -> Option<Target> {
        let mut target = self.clone();
        let Target::Http {
            headers, profile: p, ..
        } = &mut target
        else {
            return None;
        };
        for (name, value) in extra {
            headers.retain(|(n, _)| n != name);
            headers.push((name.clone(), value.clone()));
        }
        if let Some(profile) = profile {
            **p = profile.clone();
        }
        Some(target)
    }

    /// This HTTP target polled for readiness at `url` (`--ready-url`);
    /// `None` for the built-in one, which is ready when it starts.
    pub fn ready_at(&self, url: &str) -> Option<Target> {
        let mut target = self.clone();
        let Target::Http { ready_url, .. } = &mut target else {
            return None;
        };
        *ready_url = Some(url.to_string());
        Some(target)
    }

    /// The headers sent with every request to the target: the profile's,
    /// then the target's own (which replace a profile's of the same name).
    pub fn headers(&self) -> Vec<(String, String)> {
        match self {
            Target::Builtin => Vec::new(),
            Target::Http { profile, headers, .. } => {
                let mut all: Vec<(String, String)> = (profile.headers.iter())
                    .filter(|(name, _)| !headers.iter().any(|(n, _)| n == name))
                    .cloned()
                    .collect();
                all.extend(headers.iter().cloned());
                all
            }
        }
    }

    /// The headers readiness is asked with: all of them, or none when the
    /// profile's readiness route takes no auth.
    pub fn ready_headers(&self) -> Vec<(String, String)> {
        if self.profile().ready_auth {
            self.headers()
        } else {
            Vec::new()
        }
    }
}

/// `ready`, a URL of the router that lived at `old`, for the router now at
/// `new`: under the old API base, under the new one; on the old server, on
/// the new one; elsewhere (a health service of its own), unchanged.
fn rebase(ready: &str, old: &str, new: &str) -> String {
    if let Some(rest) = ready.strip_prefix(old) {
        return format!("{new}{rest}");
    }
    match ready.strip_prefix(profile::origin(old)) {
        Some(path) if path.is_empty() || path.starts_with('/') => format!("{}{path}", profile::origin(new)),
        _ => ready.to_string(),
    }
}

/// A header to send to the target, checked: `name` a valid header name,
/// `value` a valid value.
pub fn header(name: &str, value: &str) -> Result<(String, String), HeaderError> {
    let name = name.trim();
    http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| HeaderError::Name(name.to_string()))?;
    http::HeaderValue::from_str(value.trim()).map_err(|_| HeaderError::Value(name.to_string()))?;
    Ok((name.to_ascii_lowercase(), value.trim().to_string()))
}

/// `--header 'Name: value'`, checked.
pub fn header_line(line: &str) -> Result<(String, String), HeaderError> {
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| HeaderError::Line(line.to_string()))?;
    header(name, value)
}

/// A header that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("`{0}` is not a valid header name")]
    Name(String),
    #[error("the value of `{0}` is not a valid header value (control characters?)")]
    Value(String),
    #[error("`{0}` is not a header: write it as `Name: value`")]
    Line(String),
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
    #[error("cannot create {}: {source}", path.display())]
    Log {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{0}` is not a URL")]
    BadUrl(String),
    #[error("the target at {url} did not become ready: {why}")]
    NotReady { url: String, why: String },
    #[error(
        "something already serves {0}, before target.command started: stop it, or leave out target.command to test it"
    )]
    PortTaken(String),
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
    Child(external::Launched),
    /// An external router someone else runs.
    Elsewhere,
}

/// The file an external router's output goes to, in the run's folder.
pub const TARGET_LOG: &str = "target.log";

/// Starts `target`: the reference router from `expect` (with `mock:NAME`
/// upstreams resolved by `mock_url`, and `defects` enabled), or an external
/// router's command (its output in `dir`/[`TARGET_LOG`]); returns once the
/// target answers.
pub async fn start(
    target: &Target,
    expect: Option<&Expectations>,
    mock_url: impl Fn(&str) -> Option<String>,
    defects: Defects,
    dir: &std::path::Path,
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
            ready_timeout,
            ..
        } => {
            let mut launched = match command {
                Some(argv) => {
                    external::ensure_port_free(url).await?;
                    Some(external::spawn(argv, &dir.join(TARGET_LOG))?)
                }
                None => None,
            };
            let ready_url = target.ready_url().unwrap_or_default();
            let headers = target.ready_headers();
            external::wait_ready(&ready_url, &headers, *ready_timeout, launched.as_mut()).await?;
            Ok(Running {
                base_url: url.clone(),
                process: launched.map_or(Process::Elsewhere, Process::Child),
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
            Process::Child(mut launched) => {
                // Already gone is as good as stopped.
                let _ = launched.child.kill().await;
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
