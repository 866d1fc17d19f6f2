//! A soak client for the mock's streaming path: opens N concurrent streaming
//! chat completions (one HTTP/1.1 connection each) over loopback, timestamps
//! every content chunk on arrival, and reports how far each inter-chunk gap
//! was from the configured one, plus the time to the first token.
//!
//! ```text
//! # against a mock in another process (itl-ms = 50 in its config):
//! cargo run --release -p mock-providers --example stream_soak -- \
//!     --url http://127.0.0.1:18001 --streams 5000 --itl-ms 50
//! # or with a mock served in this process:
//! cargo run --release -p mock-providers --example stream_soak -- \
//!     --spawn --streams 5000 --itl-ms 50 --ttft-ms 5 --tokens 150
//! ```
//!
//! Flags: `--url URL` (loopback only) or `--spawn`; `--streams N` (5000);
//! `--itl-ms MS` the configured gap (50); `--ramp-ms MS` over which the
//! streams are opened (1000); `--timeout-s S` for the whole run (120);
//! `--dialect openai|anthropic` (openai); `--model ID`; `--threads N` of the
//! client's runtime (2); `--journal` also reads the mock's journal (cleared
//! first) and reports the gaps between the send times the mock recorded, which
//! tells lateness of the mock from lateness of this client; with `--spawn`:
//! `--ttft-ms MS` (5) and `--tokens N` (150).
//!
//! Gaps are measured only between content chunks, so from a stream's first
//! token on: the role chunk, keep-alives and the tail do not count. Chunks
//! that arrive in one read share one timestamp (a gap near 0 then shows as a
//! deviation of a whole gap, as a client would see it).

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::header::{CONTENT_TYPE, HOST};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use mock_providers::config::{Behaviour, ProviderConfig};
use mock_providers::distribution::Distribution;
use mock_providers::{Dialect, MockSet, Record};

type BoxError = Box<dyn Error + Send + Sync>;

/// Histogram bounds: 1 µs to one hour, 3 significant digits.
const HIST_MAX_US: u64 = 3_600_000_000;

#[derive(Debug, Clone)]
struct Args {
    url: Option<String>,
    spawn: bool,
    streams: usize,
    itl_ms: f64,
    ramp_ms: u64,
    timeout_s: u64,
    dialect: Dialect,
    model: String,
    ttft_ms: f64,
    tokens: f64,
    journal: bool,
    threads: usize,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut args = Args {
            url: None,
            spawn: false,
            streams: 5000,
            itl_ms: 50.0,
            ramp_ms: 1000,
            timeout_s: 120,
            dialect: Dialect::OpenAi,
            model: "soak-model".to_string(),
            ttft_ms: 5.0,
            tokens: 150.0,
            journal: false,
            threads: 2,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            match flag.as_str() {
                "--spawn" => {
                    args.spawn = true;
                    continue;
                }
                "--journal" => {
                    args.journal = true;
                    continue;
                }
                _ => {}
            }
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
            match flag.as_str() {
                "--url" => args.url = Some(value.clone()),
                "--streams" => args.streams = value.parse().map_err(|e| bad(&e))?,
                "--itl-ms" => args.itl_ms = value.parse().map_err(|e| bad(&e))?,
                "--ramp-ms" => args.ramp_ms = value.parse().map_err(|e| bad(&e))?,
                "--timeout-s" => args.timeout_s = value.parse().map_err(|e| bad(&e))?,
                "--model" => args.model = value.clone(),
                "--ttft-ms" => args.ttft_ms = value.parse().map_err(|e| bad(&e))?,
                "--tokens" => args.tokens = value.parse().map_err(|e| bad(&e))?,
                "--threads" => args.threads = value.parse().map_err(|e| bad(&e))?,
                "--dialect" => {
                    args.dialect = match value.as_str() {
                        "openai" => Dialect::OpenAi,
                        "anthropic" => Dialect::Anthropic,
                        _ => return Err(bad(&"must be openai or anthropic")),
                    }
                }
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        if args.url.is_some() == args.spawn {
            return Err("give exactly one of --url URL or --spawn".to_string());
        }
        if args.threads == 0 {
            return Err("--threads must be at least 1".to_string());
        }
        if args.streams == 0 || !args.itl_ms.is_finite() || args.itl_ms < 0.0 {
            return Err("--streams must be at least 1 and --itl-ms not negative".to_string());
        }
        Ok(args)
    }
}

/// Where the streams go and what they send.
struct Target {
    addr: SocketAddr,
    authority: String,
    path: &'static str,
    dialect: Dialect,
}

/// Why a stream did not complete, as a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Connect,
    Handshake,
    Status,
    Body,
    /// The body ended before `[DONE]` / `message_stop`, or carried an error.
    Incomplete,
    Timeout,
}

const FAILURES: [Failure; 6] = [
    Failure::Connect,
    Failure::Handshake,
    Failure::Status,
    Failure::Body,
    Failure::Incomplete,
    Failure::Timeout,
];

/// What one completed stream saw.
struct StreamStats {
    ttft_us: u64,
    /// Observed gaps between consecutive content chunks, in µs.
    gaps_us: Vec<u64>,
}

fn request_body(dialect: Dialect, model: &str, i: usize) -> Bytes {
    let text = format!("Tell me a long story. [gauntlet:soak-{i}]");
    let body = match dialect {
        Dialect::OpenAi => serde_json::json!({
            "model": model,
            "messages": [{"role": "user", "content": text}],
            "stream": true,
            "stream_options": {"include_usage": true}
        }),
        Dialect::Anthropic => serde_json::json!({
            "model": model,
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": text}],
            "stream": true
        }),
    };
    Bytes::from(body.to_string())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Classifies one SSE event: a content chunk, the end, an error, or other.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Content,
    End,
    Error,
    Other,
}

fn classify(dialect: Dialect, event: &[u8]) -> Event {
    match dialect {
        Dialect::OpenAi => {
            if event == b"data: [DONE]" {
                Event::End
            } else if contains(event, b"\"delta\":{\"content\":") || contains(event, b"\"delta\":{\"tool_calls\":") {
                Event::Content
            } else if event.starts_with(b"data: {\"error\"") {
                Event::Error
            } else {
                Event::Other
            }
        }
        Dialect::Anthropic => {
            if event.starts_with(b"event: content_block_delta") {
                Event::Content
            } else if event.starts_with(b"event: message_stop") {
                Event::End
            } else if event.starts_with(b"event: error") {
                Event::Error
            } else {
                Event::Other
            }
        }
    }
}

/// Opens one stream, reads it to the end, and times its content chunks.
async fn one_stream(target: &Target, body: Bytes, deadline: Instant) -> Result<StreamStats, Failure> {
    let work = async {
        let tcp = TcpStream::connect(target.addr).await.map_err(|_| Failure::Connect)?;
        let _ = tcp.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp))
            .await
            .map_err(|_| Failure::Handshake)?;
        tokio::spawn(async move {
            // Ends when the response is read and the sender dropped.
            let _ = conn.await;
        });
        let request = Request::post(target.path)
            .header(HOST, target.authority.as_str())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|_| Failure::Handshake)?;
        let sent = Instant::now();
        let response = sender.send_request(request).await.map_err(|_| Failure::Body)?;
        if response.status() != StatusCode::OK {
            return Err(Failure::Status);
        }
        let mut body = response.into_body();
        let mut pending: Vec<u8> = Vec::with_capacity(1024);
        let mut gaps_us = Vec::with_capacity(256);
        let mut first: Option<Instant> = None;
        let mut last: Option<Instant> = None;
        let mut ended = false;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| Failure::Body)?;
            let now = Instant::now();
            let Ok(data) = frame.into_data() else { continue };
            pending.extend_from_slice(&data);
            let mut consumed = 0;
            while let Some(pos) = find_event_end(&pending[consumed..]) {
                let event = &pending[consumed..consumed + pos];
                match classify(target.dialect, event) {
                    Event::Content => {
                        if let Some(prev) = last {
                            gaps_us.push(micros(now.saturating_duration_since(prev)));
                        } else {
                            first = Some(now);
                        }
                        last = Some(now);
                    }
                    Event::End => ended = true,
                    Event::Error => return Err(Failure::Incomplete),
                    Event::Other => {}
                }
                consumed += pos + 2;
            }
            pending.drain(..consumed);
        }
        match (ended, first) {
            (true, Some(first)) => Ok(StreamStats {
                ttft_us: micros(first.saturating_duration_since(sent)),
                gaps_us,
            }),
            _ => Err(Failure::Incomplete),
        }
    };
    tokio::time::timeout_at(deadline, work)
        .await
        .unwrap_or(Err(Failure::Timeout))
}

fn find_event_end(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\n\n")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The soft limit on open files, from /proc (Linux), if readable.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// CPU seconds (user + system) this process has used, from /proc (Linux,
/// where the clock ticks of /proc are fixed at 100 a second).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / 100.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_string())
}

/// Resolves `--url` to a loopback socket address, or refuses.
fn resolve(url: &str) -> Result<(SocketAddr, String), BoxError> {
    let uri: Uri = url.parse()?;
    let authority = uri.authority().ok_or("the URL needs a host and port")?.to_string();
    let host = match uri.host() {
        Some("localhost") => "127.0.0.1",
        Some(host) => host.trim_start_matches('[').trim_end_matches(']'),
        None => return Err("the URL needs a host".into()),
    };
    let ip: std::net::IpAddr = host.parse().map_err(|_| "the URL host must be a loopback IP address")?;
    if !ip.is_loopback() {
        return Err("stream_soak only targets loopback addresses".into());
    }
    let port = uri.port_u16().unwrap_or(80);
    Ok((SocketAddr::new(ip, port), authority))
}

/// One request on a fresh connection; the body of a 2xx answer.
async fn control(target: &Target, method: http::Method, path: &str) -> Result<Bytes, BoxError> {
    let tcp = TcpStream::connect(target.addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, target.authority.as_str())
        .body(Full::new(Bytes::new()))?;
    let response = sender.send_request(request).await?;
    if !response.status().is_success() {
        return Err(format!("{path}: status {}", response.status()).into());
    }
    Ok(response.into_body().collect().await?.to_bytes())
}

/// The mock's own view: gaps between the send times it journaled for this
/// run's streams.
fn journal_gaps(records: &[Record], itl_us: u64) -> Result<(Histogram<u64>, usize), BoxError> {
    let mut deviation = Histogram::<u64>::new_with_bounds(1, HIST_MAX_US, 3)?;
    let mut streams = 0;
    for record in records {
        if !record.correlation_id.as_deref().is_some_and(|c| c.starts_with("soak-")) {
            continue;
        }
        streams += 1;
        for pair in record.token_offsets_us.windows(2) {
            if let [a, b] = pair {
                deviation.saturating_record(u64::from(b.saturating_sub(*a)).abs_diff(itl_us));
            }
        }
    }
    Ok((deviation, streams))
}

fn print_histogram(name: &str, h: &Histogram<u64>) {
    if h.is_empty() {
        println!("{name:<28} (no samples)");
        return;
    }
    println!(
        "{name:<28} n={:<9} p50={:<7} p90={:<7} p99={:<7} p99.9={:<7} max={:<7} mean={:.0}",
        h.len(),
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.90),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        h.mean()
    );
}

async fn run(args: Args) -> Result<(), BoxError> {
    let needed = args.streams as u64 * if args.spawn { 2 } else { 1 } + 64;
    match open_files_limit() {
        Some(limit) if limit < needed => {
            eprintln!("warning: the open-files limit is {limit}, {needed} are needed; raise it with `ulimit -n`");
        }
        _ => {}
    }

    // Keeps an in-process mock alive for the run.
    let mut served = None;
    let (addr, authority) = match &args.url {
        Some(url) => resolve(url)?,
        None => {
            let mut config = ProviderConfig::any_model("soak", args.dialect, SocketAddr::from(([127, 0, 0, 1], 0)));
            config.defaults = Behaviour {
                ttft_ms: Distribution::Constant(args.ttft_ms),
                itl_ms: Distribution::Constant(args.itl_ms),
                output_tokens: Distribution::Constant(args.tokens),
                ..Behaviour::default()
            };
            let mocks = MockSet::spawn(vec![config]).await?;
            let addr = mocks.providers().first().ok_or("the mock did not start")?.addr;
            served = Some(mocks);
            (addr, addr.to_string())
        }
    };
    let target = Arc::new(Target {
        addr,
        authority,
        path: match args.dialect {
            Dialect::OpenAi => "/v1/chat/completions",
            Dialect::Anthropic => "/v1/messages",
        },
        dialect: args.dialect,
    });
    let itl_us = (args.itl_ms * 1000.0).round() as u64;
    println!(
        "stream_soak: {} streams to http://{} ({}), ramp {} ms, configured gap {} µs, load before: {}",
        args.streams,
        target.authority,
        args.dialect,
        args.ramp_ms,
        itl_us,
        load_average()
    );

    if args.journal {
        match &served {
            Some(mocks) => mocks.providers().iter().for_each(|p| p.journal().clear()),
            None => {
                control(&target, http::Method::DELETE, "/__gauntlet/journal").await?;
            }
        }
    }
    let cpu_before = cpu_seconds();
    let open = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_s);
    let ramp = Duration::from_millis(args.ramp_ms);
    let mut tasks = Vec::with_capacity(args.streams);
    for i in 0..args.streams {
        let target = Arc::clone(&target);
        let (open, peak) = (Arc::clone(&open), Arc::clone(&peak));
        // A nonce per stream, so each one gets its own seeded answer.
        let body = request_body(args.dialect, &args.model, i);
        let start_at = started + ramp.mul_f64(i as f64 / args.streams as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start_at).await;
            let now_open = open.fetch_add(1, Ordering::Relaxed) + 1;
            peak.fetch_max(now_open, Ordering::Relaxed);
            let result = one_stream(&target, body, deadline).await;
            open.fetch_sub(1, Ordering::Relaxed);
            result
        }));
    }

    let mut deviation = Histogram::<u64>::new_with_bounds(1, HIST_MAX_US, 3)?;
    let mut gaps = Histogram::<u64>::new_with_bounds(1, HIST_MAX_US, 3)?;
    let mut ttft = Histogram::<u64>::new_with_bounds(1, HIST_MAX_US, 3)?;
    let mut completed = 0usize;
    let mut failures = [0usize; FAILURES.len()];
    for task in tasks {
        match task.await {
            Ok(Ok(stats)) => {
                completed += 1;
                ttft.saturating_record(stats.ttft_us);
                for gap in stats.gaps_us {
                    gaps.saturating_record(gap);
                    deviation.saturating_record(gap.abs_diff(itl_us));
                }
            }
            Ok(Err(failure)) => {
                if let Some(slot) = FAILURES.iter().position(|f| *f == failure) {
                    failures[slot] += 1;
                }
            }
            Err(_) => failures[FAILURES.len() - 1] += 1,
        }
    }
    let elapsed = started.elapsed();
    let cpu = match (cpu_before, cpu_seconds()) {
        (Some(before), Some(after)) => format!("{:.1} s", after - before),
        _ => "?".to_string(),
    };

    let failed: usize = failures.iter().sum();
    println!(
        "streams: {} requested, {completed} completed, {failed} failed, peak open {}, {:.1} s, client cpu {cpu}, load after: {}",
        args.streams,
        peak.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        load_average()
    );
    if failed > 0 {
        let classes: Vec<String> = FAILURES
            .iter()
            .zip(failures)
            .filter(|(_, n)| *n > 0)
            .map(|(f, n)| format!("{f:?}={n}"))
            .collect();
        println!("failures: {}", classes.join(" "));
    }
    print_histogram("|gap - configured| µs", &deviation);
    print_histogram("gap µs", &gaps);
    print_histogram("ttft µs", &ttft);
    if args.journal {
        let records: Vec<Record> = match &served {
            Some(mocks) => mocks.providers().iter().flat_map(|p| p.journal().snapshot()).collect(),
            None => {
                let ndjson = control(&target, http::Method::GET, "/__gauntlet/journal").await?;
                ndjson
                    .split(|b| *b == b'\n')
                    .filter(|line| !line.is_empty())
                    .map(serde_json::from_slice)
                    .collect::<Result<_, _>>()?
            }
        };
        let (deviation, streams) = journal_gaps(&records, itl_us)?;
        print_histogram(&format!("mock-side |gap - cfg| µs ({streams} streams)"), &deviation);
    }
    if let Some(mocks) = served {
        mocks.shutdown_handle().shutdown();
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}
