//! An external router as a target: its own command started (when the
//! scenario gives one) and its readiness URL polled until it answers 2xx.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::TargetError;

/// How long one readiness request may take.
const READY_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause between readiness requests.
const READY_POLL: Duration = Duration::from_millis(100);

/// Starts `argv` (a program and its arguments); the process is killed when
/// its handle is dropped.
pub fn spawn(argv: &[String]) -> Result<tokio::process::Child, TargetError> {
    // Validation refuses an empty command; an empty one here starts nothing.
    let (program, rest) = argv.split_first().ok_or_else(|| TargetError::Spawn {
        program: String::new(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "target.command is empty"),
    })?;
    tokio::process::Command::new(program)
        .args(rest)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| TargetError::Spawn {
            program: program.clone(),
            source,
        })
}

/// Polls `url` until it answers 2xx, or gives up after `timeout`.
pub async fn wait_ready(url: &str, timeout: Duration) -> Result<(), TargetError> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let uri: http::Uri = url.parse().map_err(|_| TargetError::BadUrl(url.to_string()))?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::from("no answer");
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(READY_REQUEST_TIMEOUT, client.get(uri.clone())).await {
            Ok(Ok(r)) if r.status().is_success() => return Ok(()),
            Ok(Ok(r)) => last = format!("status {}", r.status()),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
        tokio::time::sleep(READY_POLL).await;
    }
    Err(TargetError::NotReady {
        url: url.to_string(),
        timeout,
        last,
    })
}
