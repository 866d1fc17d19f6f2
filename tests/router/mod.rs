//! The reference router on loopback: real mock providers, the router served
//! on `127.0.0.1:0`, real HTTP requests, a module per area.

mod in_process;
mod streaming;
mod upstream;

mod api;
mod billing;
mod defects;
mod ledger;
mod lifecycle;
mod limits;
mod messages;
mod slow_clients;
mod terms;

mod smoke {
    use serde_json::json;

    use crate::support::{BASIC, Stack};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_is_served_and_billed() {
        let stack = Stack::start(BASIC).await;
        let body = json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]});
        let answer = stack.chat("sk-a", &body).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert!(answer.json["usage"]["cost"].as_f64().unwrap() > 0.0);
        let streamed = stack.stream("sk-a", &json!({"model": "anthropic/claude-sonnet-4", "stream": true, "messages": [{"role": "user", "content": "hi"}]})).await;
        assert!(streamed.done && streamed.usage_chunks().len() == 1, "{streamed:?}");
    }
}
