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
    send(client, router, "GET", path, key, None).await
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

/// `METHOD path` with a JSON `body` (none: empty) as `key` on the router
/// process: the status and the body.
async fn send(
    client: &HttpClient,
    router: &RouterProcess,
    method: &str,
    path: &str,
    key: &str,
    body: Option<serde_json::Value>,
) -> (StatusCode, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("{}{path}", router.url()))
        .header("authorization", format!("Bearer {key}"));
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let bytes = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let response = client
        .request(req.body(Full::new(bytes)).unwrap())
        .await
        .expect("the router answers");
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn field(text: &str, path: &[&str]) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    path.iter().fold(doc, |v, k| v[*k].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_made_through_the_admin_routes_survive_a_kill_9_and_a_clean_stop() {
    let raw: RawProvidersFile = parse_toml(LEDGER_MOCKS).unwrap();
    let mocks = MockSet::spawn(validate_providers(&raw.providers).unwrap())
        .await
        .unwrap();
    let dir = TempDir::new("ledger-admin-keys");
    let config = dir.join("router.toml");
    let toml = router_toml(
        &mocks.get("oai").unwrap().base_url(),
        &mocks.get("ant").unwrap().base_url(),
        &dir.join("ledger.redb"),
    )
    .replace("[router]\n", "[router]\noperator-key = \"sk-operator\"\n");
    std::fs::write(&config, toml).unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let http = client();
    let chat = json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]});

    let mut router = RouterProcess::start(&args);
    let (status, text) = send(
        &http,
        &router,
        "POST",
        "/api/v1/admin/keys",
        "sk-operator", Some(json!({"key": "sk-new", "label": "new", "credits": "5", "rpm": 600, "byok": {"provider": "ant", "api_key": "sk-own"}})))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let (status, text) = send(
        &http,
        &router,
        "PATCH",
        "/api/v1/admin/keys/sk-new",
        "sk-operator",
        Some(json!({"label": "renamed", "concurrency": 3, "byok": null})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(field(&text, &["data", "byok_provider"]), json!(null), "{text}");
    let (status, text) = send(
        &http,
        &router,
        "POST",
        "/api/v1/admin/keys/sk-new/credits",
        "sk-operator",
        Some(json!({"amount": "6"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (status, text) = send(
        &http,
        &router,
        "POST",
        "/api/v1/chat/completions",
        "sk-new",
        Some(chat.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let cost = picos_at(&text, &["usage", "cost"]);
    assert!(cost > 0);

    router.kill_9();
    let mut router = RouterProcess::start(&args);
    let mut paid = cost;
    for round in ["after kill -9", "after a clean stop"] {
        let (status, text) = get(&http, &router, "/api/v1/key", "sk-new").await;
        assert_eq!(status, StatusCode::OK, "{round}: {text}");
        assert_eq!(field(&text, &["data", "label"]), json!("renamed"), "{round}");
        assert_eq!(picos_at(&text, &["data", "limit"]), picos("11"), "{round}");
        assert_eq!(picos_at(&text, &["data", "usage"]), paid, "{round}");
        // The purchases, and what charges drew from each (the oldest first), are kept.
        assert_eq!(
            picos_at(&text, &["data", "purchases", "0", "amount"]),
            picos("5"),
            "{round}: {text}"
        );
        assert_eq!(
            picos_at(&text, &["data", "purchases", "1", "amount"]),
            picos("6"),
            "{round}: {text}"
        );
        assert_eq!(
            picos_at(&text, &["data", "purchases", "0", "remaining"])
                + picos_at(&text, &["data", "purchases", "1", "remaining"]),
            picos("11") - paid,
            "{round}: {text}"
        );
        assert_eq!(
            picos_at(&text, &["data", "purchases", "1", "remaining"]),
            picos("6"),
            "{round}: {text}"
        );
        let (status, text) = get(&http, &router, "/api/v1/admin/keys/sk-new", "sk-operator").await;
        assert_eq!(status, StatusCode::OK, "{round}: {text}");
        assert_eq!(
            (field(&text, &["data", "rpm"]), field(&text, &["data", "concurrency"])),
            (json!(600), json!(3)),
            "{round}: {text}"
        );
        // The key exists: creating it again is a conflict, not a fresh account.
        let (status, text) = send(
            &http,
            &router,
            "POST",
            "/api/v1/admin/keys",
            "sk-operator",
            Some(json!({"key": "sk-new", "credits": "100"})),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{round}: {text}");
        let (status, text) = send(
            &http,
            &router,
            "POST",
            "/api/v1/chat/completions",
            "sk-new",
            Some(chat.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{round}: {text}");
        let (_, text) = get(&http, &router, "/api/v1/key", "sk-new").await;
        let spent = picos_at(&text, &["data", "usage"]);
        assert!(spent > paid, "{round}");
        assert_eq!(router.interrupt(), Some(0), "{round}: a clean stop");
        router = RouterProcess::start(&args);
        let (_, text) = get(&http, &router, "/api/v1/key", "sk-new").await;
        assert_eq!(
            picos_at(&text, &["data", "usage"]),
            spent,
            "{round}: nothing lost by the stop"
        );
        paid = spent;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_input_that_could_never_work_is_a_4xx_with_the_reason() {
    let dir = TempDir::new("ledger-admin-input");
    let toml = router_toml("mock:oai", "mock:ant", &dir.join("ledger.redb"))
        // Purchases up to 9 million USD, to reach the overflow.
        .replace(
            "[router]\n",
            "[router]\noperator-key = \"sk-operator\"\npurchase-max = \"9000000\"\n",
        );
    let stack = Stack::start(&format!("{LEDGER_MOCKS}\n{toml}")).await;
    let admin = async |method: &str, path: &str, body: serde_json::Value| {
        stack.send(method, path, Some("sk-operator"), Some(&body), &[]).await
    };
    for key in [
        " sk-space",
        "sk-space ",
        "sk/slash",
        "sk\u{1}ctl",
        &"k".repeat(100_000),
        "",
    ] {
        let answer = admin("POST", "/api/v1/admin/keys", json!({"key": key, "credits": "1"})).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{key:?}: {}", answer.text);
        assert!(answer.text.contains("`key`"), "{}", answer.text);
    }
    let answer = admin(
        "POST",
        "/api/v1/admin/keys",
        json!({"key": "sk-big", "credits": "9000000"}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    // 9.2 million USD in picodollars is about i64::MAX: the next top-up overflows.
    let answer = admin(
        "POST",
        "/api/v1/admin/keys/sk-big/credits",
        json!({"amount": "9000000"}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert!(answer.text.contains("overflow"), "{}", answer.text);
    for change in [json!({"rpm": 0}), json!({"concurrency": 2_000_000})] {
        let answer = admin("PATCH", "/api/v1/admin/keys/sk-big", change.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{change}: {}", answer.text);
        assert!(answer.text.contains("must be between"), "{}", answer.text);
    }
    let answer = admin(
        "PATCH",
        "/api/v1/admin/keys/sk-big",
        json!({"byok": {"provider": "nope", "api_key": "x"}}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert!(answer.text.contains("nope"), "{}", answer.text);
    let answer = admin("PATCH", "/api/v1/admin/keys/sk-big", json!({"label": "a\nb"})).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    stack.router.ledger().clone().close().await.unwrap();
}

#[test]
fn a_kill_during_the_first_creation_leaves_no_ledger_or_a_whole_one() {
    use std::process::{Command, Stdio};

    let dir = TempDir::new("ledger-creation-kill");
    let mut outcomes = (0, 0);
    for round in 0..16u64 {
        let ledger = dir.join(&format!("ledger-{round}.redb"));
        let config = dir.write(
            &format!("router-{round}.toml"),
            &format!(
                "[router]\nlisten = \"127.0.0.1:0\"\nledger-path = \"{}\"\n",
                ledger.display()
            ),
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
            .args(["router", "--config", config.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kills spread over the creation, which takes a few milliseconds.
        std::thread::sleep(Duration::from_micros(round * 1_500));
        child.kill().unwrap();
        child.wait().unwrap();
        if !ledger.exists() {
            outcomes.0 += 1;
            continue;
        }
        outcomes.1 += 1;
        // Whatever is at the ledger's place is a whole ledger.
        let opened = gauntlet::router::ledger::Ledger::open(&ledger);
        assert!(opened.is_ok(), "round {round}: {:?}", opened.err());
    }
    // Later starts work on every one of them.
    for round in [0u64, 15] {
        let config = dir.join(&format!("router-{round}.toml"));
        let mut router = RouterProcess::start(&["--config", config.to_str().unwrap()]);
        assert_eq!(router.interrupt(), Some(0));
    }
    eprintln!("{} kills left no ledger, {} a whole one", outcomes.0, outcomes.1);
}
