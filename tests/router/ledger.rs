//! The durable ledger: a router process killed with SIGKILL while streams
//! are in flight loses no settled charge and charges nothing twice, and a
//! restart keeps the stored balances instead of the configured ones.

use std::path::Path;
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

use crate::support::{
    HttpClient, LEDGER_MOCKS, LEDGER_ROUTER, RouterProcess, Stack, TempDir, client, edit, picos, picos_at,
    read_raw_stream,
};

/// The `[router]` table: two providers at `oai` and `ant`, a durable ledger
/// at `ledger`, one key with 10 USD.
fn router_toml(oai: &str, ant: &str, ledger: &Path) -> String {
    let toml = edit(LEDGER_ROUTER, "{ledger}", &ledger.display().to_string());
    let toml = edit(&toml, "\"mock:oai\"", &format!("\"{oai}\""));
    edit(&toml, "\"mock:ant\"", &format!("\"{ant}\""))
}

/// `GET path` as `key` on the router process: the status and the body.
async fn get(client: &HttpClient, router: &RouterProcess, path: &str, key: &str) -> (StatusCode, String) {
    let req = Request::get(format!("{}{path}", router.url()))
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

/// What one client saw: the generation id (from the head of the stream) and
/// the cost, if the final usage chunk reached it.
type Seen = (String, Option<i64>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_loses_no_settled_charge_and_charges_nothing_twice() {
    const REQUESTS: usize = 200;
    const IN_FLIGHT: usize = 40;
    const KILL_AFTER_TOLD: usize = 60;

    let raw: RawProvidersFile = parse_toml(LEDGER_MOCKS).unwrap();
    let mocks = MockSet::spawn(validate_providers(&raw.providers).unwrap())
        .await
        .unwrap();
    let dir = TempDir::new("ledger-kill");
    let config = dir.join("router.toml");
    let toml = router_toml(
        &mocks.get("oai").unwrap().base_url(),
        &mocks.get("ant").unwrap().base_url(),
        &dir.join("ledger.redb"),
    );
    std::fs::write(&config, toml).unwrap();

    let mut router = RouterProcess::start(&["--config", config.to_str().unwrap()]);
    let url = router.url().to_string();
    let http = client();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let told = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(Notify::new());
    let killed = Arc::new(AtomicBool::new(false));
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..REQUESTS {
        let (http, url, seen, told, progress, killed, slots) = (
            http.clone(),
            url.clone(),
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
            let req = Request::post(format!("{url}/api/v1/chat/completions"))
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
    let router = RouterProcess::start(&["--config", config.to_str().unwrap()]);
    let mut settled_total = 0;
    let mut settled_cut = 0;
    for (id, cost) in &seen {
        let (status, text) = get(&http, &router, &format!("/api/v1/generation?id={id}"), "sk-crash").await;
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
    let (status, text) = get(&http, &router, "/api/v1/key", "sk-crash").await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_stored_balances_over_the_configured_ones() {
    let dir = TempDir::new("ledger-restart");
    let ledger = dir.join("ledger.redb");
    let toml = |credits: &str| {
        format!(
            "{LEDGER_MOCKS}\n{}\n[[router.keys]]\nkey = \"sk-later\"\ncredits = \"{credits}\"\n",
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
}
