//! The router as a service without sockets: requests handed to
//! [`Router::handle`], upstreams reached through the mock providers'
//! in-process connector. Time is paused, so the mocks' delays cost nothing.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use mock_providers::config::{RawProvidersFile, parse_toml, validate_providers};
use mock_providers::{MockSet, Outcome, RunningProvider};
use serde_json::{Value, json};
use tokio::time::Instant;

use gauntlet::router::config::RawRouterFile;
use gauntlet::router::{Connector, Router, RouterBody};

use crate::support::{IN_PROCESS_MOCKS, IN_PROCESS_ROUTER, edit, read_sse};

/// The router over the mocks of [`IN_PROCESS_MOCKS`], reaching them only through the
/// in-process connector: the mocks' listeners are shut before the router is
/// built. The base-urls are the mocks' real addresses, which the connector
/// routes by.
async fn in_process() -> (Router, RunningProvider, RunningProvider) {
    let raw: RawProvidersFile = parse_toml(IN_PROCESS_MOCKS).unwrap();
    let mocks = MockSet::spawn(validate_providers(&raw.providers).unwrap())
        .await
        .unwrap();
    let connector = Connector::from_service(mocks.connector());
    let (oai, ant) = (mocks.get("oai").unwrap().clone(), mocks.get("ant").unwrap().clone());
    let toml = edit(IN_PROCESS_ROUTER, "mock:oai", &oai.base_url());
    let toml = edit(&toml, "mock:ant", &ant.base_url());
    mocks.shutdown().await;
    let file: RawRouterFile = parse_toml(&toml).unwrap();
    let config = file.router.unwrap().validate("router").unwrap();
    let router = Router::new(config, connector).await.expect("the router starts");
    (router, oai, ant)
}

fn request(method: &str, path: &str, body: Option<Value>, id: Option<&str>) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", "Bearer sk-a");
    if let Some(id) = id {
        req = req.header("x-gauntlet-request-id", id);
    }
    let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    req.body(Full::new(bytes)).unwrap()
}

async fn json_of(response: Response<RouterBody>) -> Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello"}]})
}

/// `GET /generation?id=` of the generation named in `response`'s headers.
async fn generation(router: &Router, response: &Response<RouterBody>) -> Value {
    let id = response.headers()["x-generation-id"].to_str().unwrap();
    let answer = router
        .handle(request("GET", &format!("/api/v1/generation?id={id}"), None, None))
        .await;
    assert_eq!(answer.status(), 200);
    json_of(answer).await["data"].clone()
}

#[tokio::test(start_paused = true)]
async fn whole_and_streamed_answers_are_served_and_billed_without_sockets() {
    let (router, oai, ant) = in_process().await;

    let whole = router
        .handle(request(
            "POST",
            "/api/v1/chat/completions",
            Some(chat("openai/gpt-4o-mini", false)),
            Some("ip-whole"),
        ))
        .await;
    assert_eq!(whole.status(), 200);
    let whole_generation = generation(&router, &whole).await;
    let whole = json_of(whole).await;
    assert!(
        whole["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{whole}"
    );
    let whole_cost = whole["usage"]["cost"].as_f64().unwrap();
    assert!(whole_cost > 0.0, "{whole}");
    assert_eq!(whole_generation["total_cost"].as_f64(), Some(whole_cost));

    let mut costs = vec![whole_cost];
    for (model, id) in [
        ("openai/gpt-4o-mini", "ip-stream-oai"),
        ("anthropic/claude-sonnet-4", "ip-stream-ant"),
    ] {
        let response = router
            .handle(request(
                "POST",
                "/api/v1/chat/completions",
                Some(chat(model, true)),
                Some(id),
            ))
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let (parts, body) = response.into_parts();
        let generation_id = parts.headers["x-generation-id"].to_str().unwrap().to_string();
        let streamed = read_sse(Instant::now(), parts.status, parts.headers, body).await;
        assert!(streamed.done && streamed.leftover.is_empty(), "{model}: {streamed:?}");
        assert!(!streamed.text().is_empty(), "{model}: {streamed:?}");
        let usage = streamed.usage_chunks();
        assert_eq!(usage.len(), 1, "{model}: {streamed:?}");
        let cost = usage[0]["usage"]["cost"].as_f64().unwrap();
        assert!(cost > 0.0, "{model}: {}", usage[0]);
        let answer = router
            .handle(request(
                "GET",
                &format!("/api/v1/generation?id={generation_id}"),
                None,
                None,
            ))
            .await;
        assert_eq!(
            json_of(answer).await["data"]["total_cost"].as_f64(),
            Some(cost),
            "{model}"
        );
        costs.push(cost);
    }

    // The key paid for all three.
    let key = json_of(router.handle(request("GET", "/api/v1/key", None, None)).await).await;
    let spent = key["data"]["usage"].as_f64().unwrap();
    let sum: f64 = costs.iter().sum();
    assert!((spent - sum).abs() < 1e-12, "spent {spent}, the answers cost {costs:?}");

    // And the mocks saw each attempt, through the connector alone.
    let records = oai.journal().snapshot();
    let seen: Vec<(Option<&str>, bool, Outcome)> = records
        .iter()
        .map(|r| (r.correlation_id.as_deref(), r.stream, r.outcome))
        .collect();
    assert_eq!(
        seen,
        [
            (Some("ip-whole"), false, Outcome::Ok),
            (Some("ip-stream-oai"), true, Outcome::Ok)
        ]
    );
    let records = ant.journal().snapshot();
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].correlation_id.as_deref(), records[0].stream),
        (Some("ip-stream-ant"), true)
    );
    assert_eq!(records[0].outcome, Outcome::Ok);
    assert_eq!(u64::from(records[0].tokens_sent), 12);
}
