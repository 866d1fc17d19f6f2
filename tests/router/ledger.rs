//! The durable ledger: a router process killed with SIGKILL while streams
//! are in flight loses no settled charge and charges nothing twice, and a
//! restart keeps the stored balances instead of the configured ones.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use mock_providers::MockSet;
use mock_providers::config::{RawProvidersFile, parse_toml, validate_providers};
use serde_json::json;
use tokio::sync::{Notify, Semaphore};

use crate::support::{HttpClient, Stack, client, picos, picos_at, read_raw_stream};

const PROVIDERS: &str = r#"
[[providers]]
name = "oai"
dialect = "openai"
[providers.defaults]
ttft-ms = 5
itl-ms = 4
output-tokens = { dist = "uniform", min = 20, max = 40 }
cache-read-share = 0.5

[[providers]]
name = "ant"
dialect = "anthropic"
[providers.defaults]
ttft-ms = 5
itl-ms = 4
output-tokens = { dist = "uniform", min = 20, max = 40 }
cache-read-share = 0.25
cache-write-share = 0.25
"#;

/// A unique, empty directory under cargo's temporary directory for tests.
fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `[router]` table: two providers at `oai` and `ant`, a durable ledger
/// in `dir`, one key with 10 USD.
fn router_toml(oai: &str, ant: &str, ledger: &Path) -> String {
    format!(
        r#"
[router]
listen = "127.0.0.1:0"
ledger-path = "{ledger}"

[[router.providers]]
name = "oai"
dialect = "openai"
base-url = "{oai}"
api-key = "sk-up-oai"

[[router.providers]]
name = "ant"
dialect = "anthropic"
base-url = "{ant}"
api-key = "sk-up-ant"

[[router.models]]
id = "openai/gpt-4o-mini"
providers = ["oai"]
prompt = "0.15"
completion = "0.60"
cache-read = "0.075"

[[router.models]]
id = "anthropic/claude-sonnet-4"
providers = ["ant"]
prompt = "3"
completion = "15"
cache-read = "0.30"
cache-write = "3.75"

[[router.keys]]
key = "sk-crash"
credits = "10"
"#,
        ledger = ledger.display()
    )
}

/// `gauntlet router --config FILE`, killed with SIGKILL on drop.
struct RouterProcess {
    child: Child,
    addr: SocketAddr,
    _stdout: BufReader<ChildStdout>,
}

impl RouterProcess {
    /// Starts the built binary and reads the address from its
    /// "router listening on http://ADDR" line.
    async fn start(config: &Path) -> RouterProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
            .args(["router", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the gauntlet binary starts");
        let stdout = child.stdout.take().unwrap();
        let read = tokio::task::spawn_blocking(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            stdout.read_line(&mut line).map(|_| (line, stdout))
        });
        let (line, stdout) = match tokio::time::timeout(Duration::from_secs(10), read).await {
            Ok(Ok(Ok(read))) => read,
            other => {
                let _ = child.kill();
                panic!("the router did not say where it listens: {other:?}");
            }
        };
        let addr = line
            .strip_prefix("router listening on http://")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("unexpected first line: {line:?}")
            });
        RouterProcess {
            child,
            addr,
            _stdout: stdout,
        }
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reap the process.
    fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    async fn get(&self, client: &HttpClient, path: &str, key: &str) -> (StatusCode, String) {
        let req = Request::get(format!("http://{}{path}", self.addr))
            .header("authorization", format!("Bearer {key}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = client.request(req).await.expect("the router answers");
        let status = response.status();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one client saw: the generation id (from the head of the stream) and
/// the cost, if the final usage chunk reached it.
type Seen = (String, Option<i64>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_loses_no_settled_charge_and_charges_nothing_twice() {
    const REQUESTS: usize = 200;
    const IN_FLIGHT: usize = 40;
    const KILL_AFTER_TOLD: usize = 60;

    let raw: RawProvidersFile = parse_toml(PROVIDERS).unwrap();
    let mocks = MockSet::spawn(validate_providers(&raw.providers).unwrap())
        .await
        .unwrap();
    let dir = temp_dir("ledger-kill");
    let config = dir.join("router.toml");
    let toml = router_toml(
        &mocks.get("oai").unwrap().base_url(),
        &mocks.get("ant").unwrap().base_url(),
        &dir.join("ledger.redb"),
    );
    std::fs::write(&config, toml).unwrap();

    let mut router = RouterProcess::start(&config).await;
    let addr = router.addr;
    let http = client();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let told = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(Notify::new());
    let killed = Arc::new(AtomicBool::new(false));
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..REQUESTS {
        let (http, seen, told, progress, killed, slots) = (
            http.clone(),
            Arc::clone(&seen),
            Arc::clone(&told),
            Arc::clone(&progress),
            Arc::clone(&killed),
            Arc::clone(&slots),
        );
        clients.spawn(async move {
            let _slot = slots.acquire_owned().await.unwrap();
            if killed.load(Ordering::SeqCst) {
                return;
            }
            let model = if i % 2 == 0 { "openai/gpt-4o-mini" } else { "anthropic/claude-sonnet-4" };
            let body = json!({"model": model, "stream": true, "messages": [{"role": "user", "content": format!("request {i}")}]});
            let req = Request::post(format!("http://{addr}/api/v1/chat/completions"))
                .header("authorization", "Bearer sk-crash")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap();
            let Ok(response) = http.request(req).await else { return };
            let Some(id) = response.headers().get("x-generation-id").and_then(|v| v.to_str().ok()).map(String::from)
            else {
                assert!(killed.load(Ordering::SeqCst), "a stream without a generation id: {}", response.status());
                return;
            };
            let streamed = read_raw_stream(response).await;
            let cost = (streamed.usage_data().len() == 1).then(|| streamed.cost());
            seen.lock().unwrap().push((id, cost));
            if cost.is_some() {
                told.fetch_add(1, Ordering::SeqCst);
                progress.notify_one();
            }
        });
    }

    // Kill the router once enough clients were told a cost, with streams in flight.
    tokio::time::timeout(Duration::from_secs(10), async {
        while told.load(Ordering::SeqCst) < KILL_AFTER_TOLD {
            progress.notified().await;
        }
    })
    .await
    .expect("clients were told costs");
    killed.store(true, Ordering::SeqCst);
    router.kill_9();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(client) = clients.join_next().await {
            client.unwrap();
        }
    })
    .await
    .expect("every client ends once the router is gone");

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let told: Vec<(&str, i64)> = seen
        .iter()
        .filter_map(|(id, cost)| cost.map(|c| (id.as_str(), c)))
        .collect();
    let cut = seen.len() - told.len();
    assert!(told.len() >= KILL_AFTER_TOLD, "told {}", told.len());
    assert!(cut > 0, "the kill should cut streams in flight");
    let mut ids: Vec<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), seen.len(), "generation ids are unique");

    // Restart on the same ledger and compare with what the clients saw.
    let router = RouterProcess::start(&config).await;
    let mut settled_total = 0;
    let mut settled_cut = 0;
    for (id, cost) in &seen {
        let (status, text) = router
            .get(&http, &format!("/api/v1/generation?id={id}"), "sk-crash")
            .await;
        let settled = match status {
            StatusCode::OK => picos_at(&text, &["data", "total_cost"]),
            StatusCode::NOT_FOUND => 0,
            other => panic!("{other}: {text}"),
        };
        match cost {
            Some(cost) => assert_eq!(settled, *cost, "{id}: the cost the client was told is settled: {text}"),
            None if status == StatusCode::OK => settled_cut += 1,
            None => {}
        }
        settled_total += settled;
    }
    let (status, text) = router.get(&http, "/api/v1/key", "sk-crash").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (credits, spent, available) = (
        picos_at(&text, &["data", "limit"]),
        picos_at(&text, &["data", "usage"]),
        picos_at(&text, &["data", "limit_remaining"]),
    );
    assert_eq!(
        spent, settled_total,
        "spent is exactly the settled charges ({settled_cut} of {cut} cut streams settled)"
    );
    assert!(spent > 0);
    assert_eq!(credits, picos("10"), "the restart kept the credits");
    assert_eq!(available, credits - spent);
    drop(router);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_stored_balances_over_the_configured_ones() {
    let dir = temp_dir("ledger-restart");
    let ledger = dir.join("ledger.redb");
    let toml = |credits: &str| {
        format!(
            "{PROVIDERS}\n{}\n[[router.keys]]\nkey = \"sk-later\"\ncredits = \"{credits}\"\n",
            router_toml("mock:oai", "mock:ant", &ledger)
                .replace("credits = \"10\"", &format!("credits = \"{credits}\""))
        )
    };
    let body = json!({"model": "anthropic/claude-sonnet-4", "messages": [{"role": "user", "content": "hello"}]});

    let stack = Stack::start(&toml("10")).await;
    let answer = stack.chat("sk-crash", &body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let cost = picos_at(&answer.text, &["usage", "cost"]);
    let id = answer.header("x-generation-id").unwrap().to_string();
    assert!(cost > 0);
    stack.router.ledger().clone().close().await.unwrap();
    drop(stack);

    // The configuration now says 20 USD: the stored account wins.
    let stack = Stack::start(&toml("20")).await;
    assert_eq!(stack.money("sk-crash").await, (picos("10"), cost, picos("10") - cost));
    assert_eq!(
        stack.money("sk-later").await.0,
        picos("10"),
        "also created by the first start"
    );
    let generation = stack.generation("sk-crash", &id).await;
    assert_eq!(generation.status, StatusCode::OK, "{}", generation.text);
    assert_eq!(picos_at(&generation.text, &["data", "total_cost"]), cost);
    let (_, _, available) = stack.money("sk-crash").await;
    let next = stack.chat("sk-crash", &body).await;
    assert_eq!(next.status, StatusCode::OK);
    assert_eq!(
        stack.money("sk-crash").await.2,
        available - picos_at(&next.text, &["usage", "cost"])
    );
    stack.router.ledger().clone().close().await.unwrap();
    drop(stack);
    let _ = std::fs::remove_dir_all(&dir);
}
