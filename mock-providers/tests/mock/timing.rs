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
    let ms = Duration::from_millis;
    // The schedule is absolute: token i is due 30 + 20 i ms after receipt.
    let due = |i: usize| ms(30) + ms(20) * i as u32;

    // A token delayed by a busy machine shortens the gap after it, so a bound
    // on every gap would be an upper bound on lateness in disguise. Each
    // stream must keep the absolute schedule; the gaps must be >= 19 ms at
    // the median in at least one of three streams.
    let mut medians = Vec::new();
    for attempt in 0..3 {
        let s = stream(
            &client,
            &mock.url("/v1/chat/completions"),
            &[],
            &chat_stream("m", "hi", None),
        )
        .await;
        let arrivals: Vec<_> = s
            .events
            .iter()
            .filter(|t| t.event.json().as_ref().and_then(openai_content).is_some())
            .map(|t| t.at)
            .collect();
        assert_eq!(arrivals.len(), 10);
        for (i, at) in arrivals.iter().enumerate() {
            assert!(
                *at - s.sent >= due(i),
                "token {i} after {:?}, due at {:?}",
                *at - s.sent,
                due(i)
            );
        }
        let record = &mock.records(attempt + 1).await[attempt];
        for (i, offset) in record.token_offsets_us.iter().enumerate() {
            assert!(
                u128::from(*offset) >= due(i).as_micros(),
                "token {i} sent at {offset} us"
            );
        }

        let mut gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
        gaps.sort();
        medians.push(gaps[gaps.len() / 2]);
        if gaps[gaps.len() / 2] >= ms(19) {
            return;
        }
    }
    panic!("the median gap between tokens was under 19 ms in every stream: {medians:?}");
}

/// `role-chunk = "with-first-token"`: nothing of the stream (no role chunk,
/// no `message_start`) arrives before the first token is due; by default
/// the opening arrives at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opening_can_wait_for_the_first_token() {
    let mock = Mock::start(
        r#"
[[providers]]
name = "late-opening"
dialect = "openai"
[providers.defaults]
ttft-ms = 60
itl-ms = 1
output-tokens = 3
role-chunk = "with-first-token"
[[providers.models]]
id = "held"
[[providers.models]]
id = "eager"
role-chunk = "at-once"
"#,
    )
    .await;
    let client = http_client();
    let url = mock.url("/v1/chat/completions");
    let held = stream(&client, &url, &[], &chat_stream("held", "hi", None)).await;
    let first = held.events.first().expect("an event").at - held.sent;
    assert!(first >= Duration::from_millis(60), "the opening came after {first:?}");
    let role = held.events[0].event.json().unwrap();
    assert_eq!(role["choices"][0]["delta"]["role"], "assistant", "{role}");

    let eager = stream(&client, &url, &[], &chat_stream("eager", "hi", None)).await;
    let first = eager.events.first().expect("an event").at - eager.sent;
    assert!(first < Duration::from_millis(60), "the opening came after {first:?}");
}
