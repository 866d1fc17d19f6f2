//! What durability costs, and what a long-lived router holds in memory: the
//! reference router as a real process (`gauntlet router`, release build)
//! with its ledger in a file, side by side with the same router with its
//! ledger in memory, both in front of one `gauntlet mock` process (zero
//! delays), driven by a keep-alive HTTP/1.1 client in this process. Loopback
//! only; every process is stopped by its id at the end.
//!
//! - `latency`: open loop at 200 req/s for 8 s at each router, alternating
//!   memory / file for 3 rounds; the p50, p90 and p99 of each, and what the
//!   file adds at p50 (goal: at most 0.25 ms).
//! - `throughput`: 32 connections in a closed loop for 5 s at each router,
//!   alternating for 3 rounds; req/s of each and the ratio (goal: the file's
//!   at least 0.90 of memory's).
//! - `memory`: one million requests at 32 connections through the router
//!   with its ledger in a file; its resident memory (VmRSS) every 100,000
//!   (goal: under 200 MB, flat after warm-up).
//!
//! Run with `cargo bench --bench durability` (all three) or name the ones
//! to run: `cargo bench --bench durability -- latency throughput`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

const MOCK: &str = r#"
[[providers]]
name = "bench-mock"
dialect = "openai"
listen = "127.0.0.1:0"
[providers.defaults]
ttft-ms = 0
itl-ms = 0
output-tokens = 16
"#;

fn router_toml(mock: &str, ledger: Option<&Path>) -> String {
    let ledger = ledger.map_or_else(String::new, |p| format!("ledger-path = \"{}\"\n", p.display()));
    format!(
        r#"[router]
listen = "127.0.0.1:0"
{ledger}
[[router.providers]]
name = "bench-mock"
dialect = "openai"
base-url = "{mock}"
api-key = "sk-upstream"

[[router.models]]
id = "openai/bench"
providers = ["bench-mock"]
prompt = "0.15"
completion = "0.60"

[[router.keys]]
key = "sk-bench"
credits = "1000000"
"#
    )
}

/// A child process stopped (SIGKILL) and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `gauntlet ARGS` and returns it with the first `http://` URL it prints.
fn start(args: &[&str]) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start gauntlet");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut child = Proc(child);
    let mut line = String::new();
    loop {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let status = child.0.wait();
            panic!("gauntlet {args:?} ended: {status:?}");
        }
        if let Some(at) = line.find("http://127.0.0.1:") {
            let url = line[at..].split_whitespace().next().unwrap().to_string();
            // Keep draining stdout so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in stdout.lines() {});
            return (child, url);
        }
    }
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

type Http = Client<HttpConnector, Full<Bytes>>;

fn body() -> Bytes {
    Bytes::from(
        serde_json::json!({
            "model": "openai/bench",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "What is the capital of France?"}]
        })
        .to_string(),
    )
}

/// One request; its latency, or `None` if it did not answer 200.
async fn one(http: &Http, url: &str, body: &Bytes) -> Option<Duration> {
    let started = Instant::now();
    let req = Request::post(url)
        .header("authorization", "Bearer sk-bench")
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))
        .unwrap();
    let response = http.request(req).await.ok()?;
    let ok = response.status() == 200;
    response.into_body().collect().await.ok()?;
    ok.then(|| started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 * p / 100.0).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at].as_secs_f64() * 1e3
}

/// Open loop at `rate` req/s for `secs`: every latency, sorted, and the failures.
async fn open_loop(http: &Http, url: &str, rate: f64, secs: f64) -> (Vec<Duration>, usize) {
    let body = body();
    let n = (rate * secs) as usize;
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        tokio::time::sleep_until(started + Duration::from_secs_f64(i as f64 / rate)).await;
        let (http, url, body) = (http.clone(), url.to_string(), body.clone());
        tasks.spawn(async move { one(&http, &url, &body).await });
    }
    let mut latencies = Vec::with_capacity(n);
    let mut failed = 0;
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            Some(latency) => latencies.push(latency),
            None => failed += 1,
        }
    }
    latencies.sort();
    (latencies, failed)
}

/// `connections` clients in a closed loop for `secs` or until `limit`
/// requests in all: requests answered, failures, seconds taken.
async fn closed_loop(http: &Http, url: &str, connections: usize, secs: f64, limit: u64) -> (u64, u64, f64) {
    let body = body();
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (http, url, body) = (http.clone(), url.to_string(), body.clone());
        let (done, failed, issued) = (Arc::clone(&done), Arc::clone(&failed), Arc::clone(&issued));
        tasks.spawn(async move {
            while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < limit {
                match one(&http, &url, &body).await {
                    Some(_) => done.fetch_add(1, Ordering::Relaxed),
                    None => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    (
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    )
}

fn spread(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let shown: Vec<String> = values.iter().map(|v| format!("{v:.3}")).collect();
    format!("[{}] (min {min:.3}, max {max:.3})", shown.join(", "))
}

struct Routers {
    memory: (Proc, String),
    file: (Proc, String),
    _mock: Proc,
    dir: PathBuf,
}

impl Routers {
    fn start() -> Routers {
        let dir = std::env::temp_dir().join(format!("gauntlet-bench-durability-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mock_file = dir.join("mock.toml");
        std::fs::write(&mock_file, MOCK).unwrap();
        let (mock, mock_url) = start(&["mock", "--config", mock_file.to_str().unwrap()]);
        let memory_file = dir.join("memory.toml");
        std::fs::write(&memory_file, router_toml(&mock_url, None)).unwrap();
        let file_file = dir.join("file.toml");
        std::fs::write(&file_file, router_toml(&mock_url, Some(&dir.join("ledger.redb")))).unwrap();
        let memory = start(&["router", "--config", memory_file.to_str().unwrap()]);
        let file = start(&["router", "--config", file_file.to_str().unwrap()]);
        println!(
            "mock {mock_url}; router, ledger in memory: {}; router, ledger in a file: {}",
            memory.1, file.1
        );
        Routers {
            memory,
            file,
            _mock: mock,
            dir,
        }
    }

    fn url(&self, file: bool) -> String {
        let base = if file { &self.file.1 } else { &self.memory.1 };
        format!("{base}/api/v1/chat/completions")
    }
}

impl Drop for Routers {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn latency(routers: &Routers, http: &Http) {
    const RATE: f64 = 200.0;
    const SECS: f64 = 8.0;
    println!("\nlatency: open loop at {RATE} req/s for {SECS} s at each, alternating, 3 rounds");
    // Warm-up: connections and caches.
    for file in [false, true] {
        open_loop(http, &routers.url(file), RATE, 1.0).await;
    }
    let mut added = Vec::new();
    for round in 1..=3 {
        let mut p50 = [0.0; 2];
        for (i, file) in [false, true].into_iter().enumerate() {
            let (sorted, failed) = open_loop(http, &routers.url(file), RATE, SECS).await;
            p50[i] = percentile(&sorted, 50.0);
            println!(
                "  round {round} {:<16} p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  ({} answered, {failed} failed)",
                if file { "ledger in a file" } else { "ledger in memory" },
                p50[i],
                percentile(&sorted, 90.0),
                percentile(&sorted, 99.0),
                sorted.len()
            );
        }
        added.push(p50[1] - p50[0]);
    }
    println!("  the file adds at p50 (ms): {} (goal <= 0.250)", spread(&added));
}

async fn throughput(routers: &Routers, http: &Http) {
    const CONNECTIONS: usize = 32;
    const SECS: f64 = 5.0;
    println!("\nthroughput: {CONNECTIONS} connections, closed loop, {SECS} s at each, alternating, 3 rounds");
    for file in [false, true] {
        closed_loop(http, &routers.url(file), CONNECTIONS, 1.0, u64::MAX).await;
    }
    let mut ratios = Vec::new();
    for round in 1..=3 {
        let mut rates = [0.0; 2];
        for (i, file) in [false, true].into_iter().enumerate() {
            let (done, failed, secs) = closed_loop(http, &routers.url(file), CONNECTIONS, SECS, u64::MAX).await;
            rates[i] = done as f64 / secs;
            println!(
                "  round {round} {:<16} {:>8.0} req/s  ({done} answered, {failed} failed)",
                if file { "ledger in a file" } else { "ledger in memory" },
                rates[i]
            );
        }
        ratios.push(rates[1] / rates[0]);
    }
    println!("  file / memory: {} (goal >= 0.90)", spread(&ratios));
}

async fn memory(routers: &Routers, http: &Http) {
    const TOTAL: u64 = 1_000_000;
    const STEP: u64 = 100_000;
    let pid = routers.file.0.0.id();
    println!("\nmemory: {TOTAL} requests at 32 connections through the router with its ledger in a file (pid {pid})");
    println!("  {:>9} requests  RSS {:>7.1} MB", 0, rss_mb(pid));
    let mut sent = 0;
    let started = Instant::now();
    while sent < TOTAL {
        let (done, failed, _) = closed_loop(http, &routers.url(true), 32, 3600.0, STEP).await;
        sent += done + failed;
        println!(
            "  {sent:>9} requests  RSS {:>7.1} MB  ({failed} failed, {:.0} s)",
            rss_mb(pid),
            started.elapsed().as_secs_f64()
        );
    }
}

fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let runs = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let routers = Routers::start();
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let http: Http = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(connector);
    runtime.block_on(async {
        if runs("latency") {
            latency(&routers, &http).await;
        }
        if runs("throughput") {
            throughput(&routers, &http).await;
        }
        if runs("memory") {
            memory(&routers, &http).await;
        }
    });
}
