//! Slow clients on loopback: request bodies and heads that stall, silent
//! connections, and more of them than the router's connection bound or its
//! file descriptors allow, while normal requests keep being answered.
//!
//! Each stalled connection is a raw TCP stream that sends part of a request
//! and then nothing; a reader waits for the router to answer and close it.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::support::{BASIC, HttpClient, RouterProcess, Stack, TempFile, assert_error_shape, edit};

/// The body and header timeouts of these tests' routers.
const TIMEOUT: Duration = Duration::from_millis(1000);

/// A chat completion whose head promises 100 bytes of body and whose body
/// stops after four.
const STALLED_BODY: &str = "POST /api/v1/chat/completions HTTP/1.1\r\nhost: router\r\nauthorization: Bearer sk-a\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"mo";

/// A head that stops after its first header.
const STALLED_HEAD: &str = "POST /api/v1/chat/completions HTTP/1.1\r\nhost: router\r\n";

/// The BASIC stack with `extra` lines in its `[router]` table.
async fn stack(extra: &str) -> Stack {
    Stack::start(&edit(
        BASIC,
        "operator-key = \"sk-admin\"\n",
        &format!("operator-key = \"sk-admin\"\n{extra}"),
    ))
    .await
}

/// Raises this process's soft limit on open files towards `wanted` (never
/// lowers it), and fails the test if the hard limit is below it.
fn raise_open_files(wanted: u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|c| c < wanted) {
        let raised = rustix::process::Rlimit {
            current: limit.maximum.map(|m| m.min(wanted.max(limit.current.unwrap_or(0)))),
            maximum: limit.maximum,
        };
        let _ = setrlimit(Resource::Nofile, raised);
    }
    let now = getrlimit(Resource::Nofile).current;
    assert!(
        now.is_none_or(|c| c >= wanted),
        "this test needs {wanted} open files; the limit is {now:?} (raise `ulimit -n`)"
    );
}

/// A client that opens a new connection for every request, so each one must
/// be accepted by the router.
fn fresh_client() -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(http)
}

fn hello() -> Value {
    json!({"model": "openai/gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "hello"}]})
}

fn chat_request(addr: SocketAddr) -> Request<Full<Bytes>> {
    Request::post(format!("http://{addr}/api/v1/chat/completions"))
        .header("host", addr.to_string())
        .header("authorization", "Bearer sk-a")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(hello().to_string())))
        .unwrap()
}

/// One normal chat completion on `client`: its status and latency.
async fn timed_chat(client: &HttpClient, addr: SocketAddr) -> (StatusCode, Duration) {
    let sent = Instant::now();
    let status = match tokio::time::timeout(Duration::from_secs(10), client.request(chat_request(addr))).await {
        Ok(Ok(response)) => {
            let status = response.status();
            let _ = response.into_body().collect().await;
            status
        }
        Ok(Err(_)) => StatusCode::BAD_GATEWAY,
        Err(_) => StatusCode::GATEWAY_TIMEOUT,
    };
    (status, sent.elapsed())
}

/// Normal chat completions from `lanes` sequential loops on new
/// connections, until `until`.
async fn normal_until(addr: SocketAddr, lanes: usize, until: Instant) -> Vec<(StatusCode, Duration)> {
    let mut set = JoinSet::new();
    for _ in 0..lanes {
        set.spawn(async move {
            let client = fresh_client();
            let mut out = Vec::new();
            while Instant::now() < until {
                out.push(timed_chat(&client, addr).await);
            }
            out
        });
    }
    let mut all = Vec::new();
    while let Some(lane) = set.join_next().await {
        all.extend(lane.unwrap());
    }
    all
}

/// `n` normal chat completions, one after another, on new connections.
async fn normal_n(addr: SocketAddr, n: usize) -> Vec<(StatusCode, Duration)> {
    let client = fresh_client();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(timed_chat(&client, addr).await);
    }
    out
}

/// The median and the largest latency, in milliseconds.
fn p50_max(answers: &[(StatusCode, Duration)]) -> (f64, f64) {
    let mut ms: Vec<f64> = answers.iter().map(|(_, d)| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[ms.len() - 1])
}

fn assert_all_ok(what: &str, answers: &[(StatusCode, Duration)]) {
    let failed: Vec<_> = answers.iter().filter(|(s, _)| *s != StatusCode::OK).collect();
    assert!(
        failed.is_empty(),
        "{what}: {} of {} normal requests failed: {failed:?}",
        failed.len(),
        answers.len()
    );
}

/// How a stalled connection ended.
#[derive(Debug)]
struct Ending {
    /// From the moment its bytes were sent until the router closed it;
    /// `None`: still open when the reader gave up.
    closed_after: Option<Duration>,
    /// When the router closed it.
    closed_at: Option<Instant>,
    /// What the router wrote before closing.
    answer: Vec<u8>,
}

/// Connects, writes `bytes` (possibly none) and leaves the connection
/// stalled; a task reads it until the router closes it or `patience` passes
/// from the moment the bytes were sent.
async fn stall(set: &mut JoinSet<Ending>, addr: SocketAddr, bytes: &'static str, patience: Duration) {
    let mut stream = TcpStream::connect(addr).await.expect("a stalled client connects");
    stream
        .write_all(bytes.as_bytes())
        .await
        .expect("a stalled client writes");
    let sent = Instant::now();
    set.spawn(async move {
        let mut answer = Vec::new();
        let mut buffer = [0u8; 2048];
        loop {
            match tokio::time::timeout_at(sent + patience, stream.read(&mut buffer)).await {
                Err(_) => {
                    return Ending {
                        closed_after: None,
                        closed_at: None,
                        answer,
                    };
                }
                Ok(Ok(0) | Err(_)) => {
                    return Ending {
                        closed_after: Some(sent.elapsed()),
                        closed_at: Some(Instant::now()),
                        answer,
                    };
                }
                Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
            }
        }
    });
}

async fn endings(mut set: JoinSet<Ending>) -> Vec<Ending> {
    let mut out = Vec::with_capacity(set.len());
    while let Some(ending) = set.join_next().await {
        out.push(ending.unwrap());
    }
    out
}

/// Asserts that `ending` is a 408 with an OpenAI-shaped JSON body, then the
/// connection closed.
fn assert_408(ending: &Ending) {
    let text = String::from_utf8_lossy(&ending.answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer before the close: {text:?}"));
    assert!(head.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(
        head.to_ascii_lowercase().contains("\r\nconnection: close"),
        "the 408 says the connection closes: {text}"
    );
    let json: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"));
    let error = assert_error_shape(StatusCode::REQUEST_TIMEOUT, &json, &text);
    assert!(
        error["message"].as_str().unwrap().contains("1000 ms"),
        "the message names the timeout: {text}"
    );
}

/// How many `endings` closed within `bound` of being sent, and a summary of
/// the close times.
fn closed_within(endings: &[Ending], bound: Duration) -> (usize, String) {
    let mut closed: Vec<f64> = endings
        .iter()
        .filter_map(|e| e.closed_after)
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    closed.sort_by(f64::total_cmp);
    let within = endings
        .iter()
        .filter(|e| e.closed_after.is_some_and(|d| d <= bound))
        .count();
    let summary = match (closed.first(), closed.last()) {
        (Some(first), Some(last)) => format!(
            "{} of {} closed, after {first:.0}..{last:.0} ms",
            closed.len(),
            endings.len()
        ),
        _ => format!("none of {} closed", endings.len()),
    };
    (within, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_stalled_bodies_get_408_and_are_closed_while_normal_requests_are_answered() {
    const STALLED: usize = 1000;
    raise_open_files(2 * STALLED as u64 + 1024);
    let stack = stack("body-timeout-ms = 1000\nheader-timeout-ms = 1000\n").await;
    let addr = stack.addr;
    let calm = normal_n(addr, 30).await;
    assert_all_ok("without stalled clients", &calm);

    let patience = TIMEOUT + Duration::from_millis(2500);
    let mut set = JoinSet::new();
    let started = Instant::now();
    for _ in 0..STALLED {
        stall(&mut set, addr, STALLED_BODY, patience).await;
    }
    let opened = started.elapsed();
    // Until the first stalled body is due to be timed out, all of them are
    // held open by the router while normal requests come on new connections.
    let during = normal_until(addr, 2, started + TIMEOUT * 9 / 10).await;
    let endings = endings(set).await;

    let (calm_p50, calm_max) = p50_max(&calm);
    let (p50, max) = p50_max(&during);
    let (within, closes) = closed_within(&endings, patience);
    println!(
        "{STALLED} stalled bodies opened in {opened:?}; normal requests: {} without them p50 {calm_p50:.1} ms max {calm_max:.1} ms, {} during the stall p50 {p50:.1} ms max {max:.1} ms; {closes}",
        calm.len(),
        during.len()
    );
    assert!(
        !during.is_empty(),
        "opening {STALLED} connections took {opened:?}, leaving no time for normal requests"
    );
    assert_all_ok("during the stall", &during);
    assert!(
        max < 750.0,
        "normal requests are answered promptly during the stall: max {max:.1} ms"
    );
    assert_eq!(within, STALLED, "every stalled body is closed by the router: {closes}");
    for ending in &endings {
        assert_408(ending);
        let after = ending.closed_after.unwrap();
        assert!(
            after >= TIMEOUT * 9 / 10,
            "closed after the timeout, not before: {after:?}"
        );
    }
    // The router is as good as new.
    assert_all_ok("after the stall", &normal_n(addr, 5).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_heads_and_silent_connections_are_closed_after_the_header_timeout() {
    let stack = stack("body-timeout-ms = 1000\nheader-timeout-ms = 1000\n").await;
    let patience = TIMEOUT + Duration::from_millis(2500);
    let mut set = JoinSet::new();
    for _ in 0..100 {
        stall(&mut set, stack.addr, STALLED_HEAD, patience).await;
        stall(&mut set, stack.addr, "", patience).await;
    }
    // A keep-alive connection that served a request and then idles is
    // closed after the same timeout.
    let mut idle = TcpStream::connect(stack.addr).await.unwrap();
    let health = "GET /health HTTP/1.1\r\nhost: router\r\n\r\n";
    idle.write_all(health.as_bytes()).await.unwrap();
    let sent = Instant::now();
    let mut buffer = vec![0u8; 4096];
    let n = idle.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200 "));
    let idle_closed = tokio::time::timeout(patience, async {
        while idle.read(&mut buffer).await.is_ok_and(|n| n > 0) {}
        sent.elapsed()
    })
    .await;

    let endings = endings(set).await;
    let (within, closes) = closed_within(&endings, patience);
    println!(
        "stalled heads and silent connections: {closes}; an idle keep-alive connection closed after {idle_closed:?}"
    );
    assert_eq!(within, endings.len(), "every stalled head is closed: {closes}");
    for ending in &endings {
        let after = ending.closed_after.unwrap();
        assert!(
            after >= TIMEOUT * 9 / 10,
            "closed after the timeout, not before: {after:?}"
        );
    }
    let idle_closed = idle_closed.expect("an idle keep-alive connection is closed after the header timeout");
    assert!(idle_closed >= TIMEOUT * 9 / 10, "{idle_closed:?}");
    assert_all_ok("after the stall", &normal_n(stack.addr, 3).await);
}

/// A keep-alive connection opened before an attack: requests sent on it one
/// after another, each with its status and latency.
async fn kept_connection(addr: SocketAddr, until: Instant) -> Vec<(StatusCode, Duration)> {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut out = Vec::new();
    loop {
        let sent = Instant::now();
        let status = match sender.ready().await {
            Ok(()) => match sender.send_request(chat_request(addr)).await {
                Ok(response) => {
                    let status = response.status();
                    let _ = response.into_body().collect().await;
                    status
                }
                Err(_) => StatusCode::BAD_GATEWAY,
            },
            Err(_) => StatusCode::BAD_GATEWAY,
        };
        out.push((status, sent.elapsed()));
        if Instant::now() >= until || status != StatusCode::OK {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_bound_attackers_wait_their_turn_and_are_evicted_by_the_timeout() {
    const BOUND: usize = 200;
    const ATTACKERS: usize = 2 * BOUND;
    raise_open_files(2 * ATTACKERS as u64 + 1024);
    let stack = stack(&format!(
        "body-timeout-ms = 1000\nheader-timeout-ms = 1000\nmax-connections = {BOUND}\n"
    ))
    .await;
    let addr = stack.addr;
    // A client connected before the attack keeps its connection.
    let started = Instant::now();
    let kept = tokio::spawn(kept_connection(addr, started + TIMEOUT * 3));
    tokio::time::sleep(Duration::from_millis(100)).await;

    let patience = 2 * TIMEOUT + Duration::from_millis(2500);
    let mut set = JoinSet::new();
    let attack = Instant::now();
    for _ in 0..ATTACKERS {
        stall(&mut set, addr, STALLED_BODY, patience).await;
    }
    let opened = attack.elapsed();
    // New clients arrive behind every attacker: they wait in the listen
    // backlog until the timeout has evicted the attackers ahead of them.
    let newcomers: Vec<_> = (0..5)
        .map(|_| tokio::spawn(async move { timed_chat(&fresh_client(), addr).await }))
        .collect();
    let mut late = Vec::new();
    for newcomer in newcomers {
        late.push(newcomer.await.unwrap());
    }
    let endings = endings(set).await;
    let kept = kept.await.unwrap();

    // An attacker not accepted at first can only be accepted once the
    // first ones are evicted, a timeout after the attack began, and is
    // evicted a timeout later: those closed before then were served at once.
    let second_wave = attack + 2 * TIMEOUT - Duration::from_millis(100);
    let first_wave = endings
        .iter()
        .filter(|e| e.closed_at.is_some_and(|at| at < second_wave))
        .count();
    let (all, closes) = closed_within(&endings, patience);
    let (kept_p50, kept_max) = p50_max(&kept);
    let (late_p50, late_max) = p50_max(&late);
    println!(
        "{ATTACKERS} attackers against max-connections {BOUND} (opened in {opened:?}): {first_wave} evicted in the first timeout, {closes}; the kept connection: {} requests p50 {kept_p50:.1} ms max {kept_max:.1} ms; {} newcomers p50 {late_p50:.1} ms max {late_max:.1} ms",
        kept.len(),
        late.len()
    );
    assert_eq!(all, ATTACKERS, "every attacker is evicted: {closes}");
    for ending in &endings {
        assert_408(ending);
    }
    assert!(
        (1..BOUND).contains(&first_wave),
        "at most {BOUND} connections (one is the kept client's) are served at once: {first_wave} attackers were evicted in the first timeout; {closes}"
    );
    assert_all_ok("the connection kept through the attack", &kept);
    assert!(
        kept.len() >= 10 && kept_max < 750.0,
        "the kept connection is served throughout: {kept:?}"
    );
    assert_all_ok("newcomers behind the attackers", &late);
    // 2 × 199 attackers are served before them, so they are accepted when
    // the second round of attackers is evicted, two timeouts in.
    assert!(
        late_max < 2.0 * TIMEOUT.as_secs_f64() * 1e3 + 1500.0,
        "newcomers are answered once the attackers ahead of them are evicted: {late:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_out_of_file_descriptors_recovers_once_the_stalled_bodies_are_evicted() {
    // The report: 300 stalled bodies against a router allowed 256 open
    // files. The connection bound is left at its default, far above the
    // limit, so accepting fails with EMFILE.
    const STALLED: usize = 300;
    let config = TempFile::new(
        "slow-clients-router",
        "[router]\nbody-timeout-ms = 1000\nheader-timeout-ms = 1000\n\n[[router.keys]]\nkey = \"sk-a\"\ncredits = \"1\"\n",
    );
    let router = RouterProcess::start_with_open_files(256, &["--config", config.path(), "--listen", "127.0.0.1:0"]);
    let addr: SocketAddr = router.url().trim_start_matches("http://").parse().unwrap();
    let health = |client: HttpClient| async move {
        let sent = Instant::now();
        let request = Request::get(format!("http://{addr}/health"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let status = match tokio::time::timeout(Duration::from_secs(10), client.request(request)).await {
            Ok(Ok(response)) => response.status(),
            _ => StatusCode::GATEWAY_TIMEOUT,
        };
        (status, sent.elapsed())
    };
    assert_eq!(health(fresh_client()).await.0, StatusCode::OK);

    let patience = 2 * TIMEOUT + Duration::from_millis(2500);
    let mut set = JoinSet::new();
    for _ in 0..STALLED {
        stall(&mut set, addr, STALLED_BODY, patience).await;
    }
    let behind = health(fresh_client()).await;
    let endings = endings(set).await;
    let (all, closes) = closed_within(&endings, patience);
    println!("{STALLED} stalled bodies against 256 open files: {closes}; a request behind them: {behind:?}");
    assert_eq!(
        behind.0,
        StatusCode::OK,
        "a request behind the stalled bodies is answered: {behind:?}"
    );
    assert!(
        behind.1 < 2 * TIMEOUT + Duration::from_millis(1500),
        "…once the stalled bodies are evicted: {behind:?}"
    );
    assert_eq!(all, STALLED, "every stalled body is closed: {closes}");
    let after = health(fresh_client()).await;
    assert_eq!(after.0, StatusCode::OK, "{after:?}");
    assert!(
        after.1 < Duration::from_millis(500),
        "the router is as good as new: {after:?}"
    );
}
