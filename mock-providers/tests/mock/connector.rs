//! The in-process connector: hyper-util's legacy client reaches a provider by
//! its bound authority without a socket.

use http::StatusCode;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mock_providers::{InProcessConnector, Outcome};

use crate::support::{Mock, chat, chat_stream, message, openai_content, post, request, stream, within};

const TWO: &str = r#"
[[providers]]
name = "inproc-openai"
dialect = "openai"
[providers.defaults]
ttft-ms = 1
itl-ms = 1
output-tokens = 7

[[providers]]
name = "inproc-anthropic"
dialect = "anthropic"
[providers.defaults]
ttft-ms = 1
itl-ms = 1
output-tokens = 4
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_answers_by_authority_without_the_socket() {
    let mock = Mock::start(TWO).await;
    let oa = mock.named("inproc-openai").clone();
    let an = mock.named("inproc-anthropic").clone();
    let connector: InProcessConnector = mock.set.connector();
    let client: Client<InProcessConnector, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build(connector);

    // Stop the TCP servers: from here on only the in-process path can answer.
    mock.set.shutdown().await;
    let refused = tokio::net::TcpStream::connect(oa.addr).await;
    assert!(refused.is_err(), "the listener at {} is gone", oa.addr);

    let oa_url = format!("http://{}/v1/chat/completions", oa.addr);
    let reply = post(&client, &oa_url, &[], &chat("m", "hi")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["usage"]["completion_tokens"], 7);

    let s = stream(&client, &oa_url, &[], &chat_stream("m", "hi", Some(true))).await;
    assert_eq!(s.status, StatusCode::OK);
    assert!(s.error.is_none());
    let events = s.events();
    assert!(events.last().unwrap().is_done());
    let chunks: Vec<serde_json::Value> = events.iter().filter_map(|e| e.json()).collect();
    assert_eq!(chunks.iter().filter_map(openai_content).count(), 7);
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 7);

    // The authority picks the provider.
    let an_url = format!("http://{}/v1/messages", an.addr);
    let mut body = message("claude", "hi", 100);
    body["stream"] = true.into();
    let names: Vec<String> = stream(&client, &an_url, &[], &body)
        .await
        .events()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    assert_eq!(names.iter().filter(|n| *n == "content_block_delta").count(), 4);

    // An authority no provider is bound to does not connect.
    let unknown = request(http::Method::GET, "http://127.0.0.1:1/v1/models", &[], None);
    let err = within("a connect error", client.request(unknown)).await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");

    assert_eq!(oa.journal().len(), 2);
    assert!(oa.journal().snapshot().iter().all(|r| r.outcome == Outcome::Ok));
    assert_eq!(an.journal().snapshot()[0].tokens_sent, 4);
}
