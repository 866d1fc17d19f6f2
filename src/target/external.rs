//! An external router as a target: its own command started (when the
//! scenario gives one, with its output in a log file of the run), and its
//! readiness URL polled until it answers 2xx — giving up early on a definite
//! answer: a 4xx held for [`DEFINITE_FOR`] (its body shown), a connection
//! refused for [`REFUSED_FOR`] when nothing is starting (so a wrong URL or a
//! router that is not running fails within 2 s, saying that nothing listens
//! there), or the command's exit (its last output shown). While a command
//! starts the router, a refused connection is only "not yet".

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::TargetError;

/// How long one readiness request may take.
const READY_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause between readiness requests.
const READY_POLL: Duration = Duration::from_millis(100);
/// How long a definite "no" (a 4xx) must last before readiness gives up.
pub const DEFINITE_FOR: Duration = Duration::from_secs(2);
/// How long connections may be refused (or otherwise fail to connect)
/// before readiness gives up, when the run started no command: a router
/// launched a moment before the run gets this long to listen, and a run
/// against a port where nothing listens fails within 2 s.
pub const REFUSED_FOR: Duration = Duration::from_secs(1);
/// How much of an answer's body an error quotes.
const QUOTED_BODY_CHARS: usize = 300;
/// How many of the command's last output lines an error quotes.
const QUOTED_LOG_LINES: usize = 10;
/// How long the check that nothing already serves the target's port waits
/// for a connection.
const PORT_PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// The router process the harness started, and where its output goes.
#[derive(Debug)]
pub struct Launched {
    pub child: tokio::process::Child,
    /// Its standard output and error, together.
    pub log: std::path::PathBuf,
}

/// Refuses to start a router on `url`'s port when something already serves
/// it: the run would measure that instead, silently.
pub async fn ensure_port_free(url: &str) -> Result<(), TargetError> {
    let uri: http::Uri = url.parse().map_err(|_| TargetError::BadUrl(url.to_string()))?;
    let (Some(host), Some(port)) = (uri.host(), uri.port_u16()) else {
        return Ok(());
    };
    let connect = tokio::net::TcpStream::connect((host, port));
    match tokio::time::timeout(PORT_PROBE_TIMEOUT, connect).await {
        Ok(Ok(_)) => Err(TargetError::PortTaken(format!("{host}:{port}"))),
        _ => Ok(()),
    }
}

/// Starts `argv` (a program and its arguments) with its output going to
/// `log`; the process is killed when its handle is dropped.
pub fn spawn(argv: &[String], log: &Path) -> Result<Launched, TargetError> {
    // Validation refuses an empty command; an empty one here starts nothing.
    let (program, rest) = argv.split_first().ok_or_else(|| TargetError::Spawn {
        program: String::new(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "target.command is empty"),
    })?;
    let spawn_error = |source| TargetError::Spawn {
        program: program.clone(),
        source,
    };
    let log_error = |source| TargetError::Log {
        path: log.to_path_buf(),
        source,
    };
    let out = File::create(log).map_err(log_error)?;
    let err = out.try_clone().map_err(log_error)?;
    let child = tokio::process::Command::new(program)
        .args(rest)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_error)?;
    Ok(Launched {
        child,
        log: log.to_path_buf(),
    })
}

/// Polls `url` (with `headers`) until it answers 2xx; gives up after
/// `timeout`, or early on a definite answer, or as soon as `launched` exits.
pub async fn wait_ready(
    url: &str,
    headers: &[(String, String)],
    timeout: Duration,
    mut launched: Option<&mut Launched>,
) -> Result<(), TargetError> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let uri: http::Uri = url.parse().map_err(|_| TargetError::BadUrl(url.to_string()))?;
    let not_ready = |why: String| TargetError::NotReady {
        url: url.to_string(),
        why,
    };
    let start = tokio::time::Instant::now();
    // Since when the answer has been a definite "no", and for how long one counts.
    let mut definite_since: Option<tokio::time::Instant> = None;
    loop {
        if let Some(launched) = launched.as_deref_mut()
            && let Ok(Some(status)) = launched.child.try_wait()
        {
            return Err(not_ready(format!(
                "its command exited ({status}) before it answered{}",
                log_tail(&launched.log)
            )));
        }
        let mut request = http::Request::get(uri.clone());
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .body(Empty::new())
            .map_err(|_| TargetError::BadUrl(url.to_string()))?;
        // `hold`: how long this answer must last to be definite, if it can be.
        let (hold, last) = match tokio::time::timeout(READY_REQUEST_TIMEOUT, client.request(request)).await {
            Ok(Ok(r)) if r.status().is_success() => return Ok(()),
            Ok(Ok(r)) => {
                let status = r.status();
                let body = r.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                let body: String = String::from_utf8_lossy(&body).chars().take(QUOTED_BODY_CHARS).collect();
                (
                    status.is_client_error().then_some(DEFINITE_FOR),
                    format!("it answered {status}: {}", body.trim()),
                )
            }
            Ok(Err(e)) => {
                let last = if refused(&e) {
                    let port = uri.port_u16().unwrap_or(80);
                    format!(
                        "nothing listens at {}:{port} (connection refused for {}); is the router running there?",
                        uri.host().unwrap_or_default(),
                        humantime(REFUSED_FOR)
                    )
                } else {
                    let cause = std::error::Error::source(&e).map_or_else(String::new, |c| format!(": {c}"));
                    format!("{e}{cause}")
                };
                // Refused while a command starts the router is not yet an answer.
                ((launched.is_none() && e.is_connect()).then_some(REFUSED_FOR), last)
            }
            Err(_) => (None, format!("no answer within {READY_REQUEST_TIMEOUT:?}")),
        };
        let now = tokio::time::Instant::now();
        definite_since = hold.and(definite_since.or(Some(now)));
        if let (Some(hold), Some(since)) = (hold, definite_since)
            && now.duration_since(since) >= hold
        {
            return Err(not_ready(last));
        }
        if now.duration_since(start) >= timeout {
            return Err(not_ready(format!("no 2xx within {timeout:?}; last: {last}")));
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// Whether a request failed because its connection was refused (nothing
/// listens on the port).
fn refused(e: &hyper_util::client::legacy::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        cause = c.source();
    }
    false
}

/// `1 s`, `500 ms`.
fn humantime(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// The last lines of a log, as a suffix for an error.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(QUOTED_LOG_LINES)..];
    if tail.is_empty() {
        format!("; it printed nothing ({})", log.display())
    } else {
        format!("; its last output ({}):\n  {}", log.display(), tail.join("\n  "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn temp_log(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("gauntlet-target-{}-{name}.log", std::process::id()))
    }

    #[tokio::test]
    async fn a_4xx_gives_up_soon_and_shows_the_body() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/models"))
            .respond_with(ResponseTemplate::new(401).set_body_string("{\"error\":\"master key required\"}"))
            .mount(&server)
            .await;
        let url = format!("{}/v1/models", server.uri());
        let started = std::time::Instant::now();
        let e = wait_ready(&url, &[], Duration::from_secs(30), None).await.unwrap_err();
        let message = e.to_string();
        assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
        assert!(message.contains("did not become ready"), "{message}");
        assert!(
            message.contains("401") && message.contains("master key required"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn readiness_sends_the_targets_headers() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/models"))
            .and(header("authorization", "Bearer sk-master"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let url = format!("{}/v1/models", server.uri());
        let headers = [("authorization".to_string(), "Bearer sk-master".to_string())];
        wait_ready(&url, &headers, Duration::from_secs(5), None).await.unwrap();
        assert!(wait_ready(&url, &[], Duration::from_secs(30), None).await.is_err());
    }

    /// Refused for [`REFUSED_FOR`] with nothing starting: given up well
    /// within 2 s, saying nothing listens there.
    #[tokio::test]
    async fn a_refused_connection_with_nothing_starting_gives_up_within_2_s() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let started = std::time::Instant::now();
        let e = wait_ready(
            &format!("http://127.0.0.1:{port}/v1/models"),
            &[],
            Duration::from_secs(30),
            None,
        )
        .await
        .unwrap_err();
        let elapsed = started.elapsed();
        assert!(
            elapsed >= REFUSED_FOR && elapsed < Duration::from_secs(2),
            "{elapsed:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "the target at http://127.0.0.1:{port}/v1/models did not become ready: nothing listens at \
                 127.0.0.1:{port} (connection refused for 1 s); is the router running there?"
            )
        );
    }

    /// A log file that cannot be created is named, not blamed on the command.
    #[test]
    fn a_log_that_cannot_be_created_is_named() {
        let log = std::env::temp_dir().join(format!("gauntlet-no-such-dir-{}/target.log", std::process::id()));
        let argv = ["sh", "-c", "exit 0"].map(String::from);
        let e = spawn(&argv, &log).unwrap_err().to_string();
        assert!(e.starts_with(&format!("cannot create {}: ", log.display())), "{e}");
    }

    #[tokio::test]
    async fn a_command_that_exits_ends_the_wait_with_its_output() {
        let log = temp_log("exits");
        let argv = ["sh", "-c", "echo 'config error: no such model' >&2; exit 3"].map(String::from);
        let mut launched = spawn(&argv, &log).unwrap();
        let started = std::time::Instant::now();
        let e = wait_ready(
            "http://127.0.0.1:9/v1/models",
            &[],
            Duration::from_secs(30),
            Some(&mut launched),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert!(e.contains("exited") && e.contains("config error: no such model"), "{e}");
        let _ = std::fs::remove_file(&log);
    }

    #[tokio::test]
    async fn a_port_already_served_is_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let e = ensure_port_free(&format!("http://127.0.0.1:{port}/v1"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
        drop(listener);
        ensure_port_free(&format!("http://127.0.0.1:{port}/v1")).await.unwrap();
    }
}
