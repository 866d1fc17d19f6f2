//! Streaming timing as a client sees it: lower bounds only, the machine is
//! shared and noisy.

use std::time::Duration;

use crate::support::{Mock, chat_stream, http_client, openai_content, stream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_arrive_no_sooner_than_ttft_and_itl() {
    let mock = Mock::start(
        r#"
[[providers]]
name = "timed"
dialect = "openai"
[providers.defaults]
ttft-ms = 30
itl-ms = 20
output-tokens = 10
"#,
    )
    .await;
    let client = http_client();
    let s = stream(&client, &mock.url("/v1/chat/completions"), &[], &chat_stream("m", "hi", None)).await;
    let arrivals: Vec<_> = s
        .events
        .iter()
        .filter(|t| t.event.json().as_ref().and_then(openai_content).is_some())
        .map(|t| t.at)
        .collect();
    assert_eq!(arrivals.len(), 10);

    // The schedule is absolute: token i is due 30 + 20 i ms after receipt.
    let ms = Duration::from_millis;
    for (i, at) in arrivals.iter().enumerate() {
        let due = ms(30) + ms(20) * i as u32;
        assert!(*at - s.sent >= due, "token {i} after {:?}, due at {due:?}", *at - s.sent);
    }
    // Gaps: a late token shortens the gap after it, so look at the median.
    let mut gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    assert!(median >= ms(19), "median gap {median:?}, gaps {gaps:?}");

    let record = &mock.records(1).await[0];
    for (i, offset) in record.token_offsets_us.iter().enumerate() {
        assert!(u64::from(*offset) >= 30_000 + 20_000 * i as u64, "token {i} sent at {offset} us");
    }
}
