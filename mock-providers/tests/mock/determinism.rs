//! Seeded determinism: the same seed and request ids give the same answers
//! and planned delays from separate mock sets; another seed does not.

use std::time::Duration;

use mock_providers::plan::{Plan, attempt_seed, plan};
use mock_providers::{Record, openai};
use serde_json::Value;

use crate::support::{Mock, chat_stream, configs, http_client, openai_content, stream};

const SEEDED: &str = r#"
[[providers]]
name = "seeded"
dialect = "openai"
seed = 42
[providers.defaults]
ttft-ms = { dist = "uniform", min = 1, max = 12 }
itl-ms = { dist = "uniform", min = 0.5, max = 3 }
output-tokens = { dist = "uniform", min = 3, max = 30 }
cache-read-share = 0.3
"#;

const IDS: [&str; 8] = ["d-0", "d-1", "d-2", "d-3", "d-4", "d-5", "d-6", "d-7"];

/// What a client and the journal saw for one request id.
#[derive(Debug, PartialEq)]
struct Seen {
    response_id: String,
    text: String,
    tokens_sent: u32,
    usage: Option<mock_providers::Usage>,
}

fn body() -> Value {
    chat_stream("m", "the same prompt", Some(true))
}

async fn run(toml: &str) -> (Vec<Seen>, Vec<Record>) {
    let mock = Mock::start(toml).await;
    let client = http_client();
    let url = mock.url("/v1/chat/completions");
    let mut seen = Vec::new();
    for id in IDS {
        let events = stream(&client, &url, &[("x-gauntlet-request-id", id)], &body())
            .await
            .events();
        let chunks: Vec<Value> = events.iter().filter_map(|e| e.json()).collect();
        seen.push(Seen {
            response_id: chunks[0]["id"].as_str().unwrap().to_string(),
            text: chunks.iter().filter_map(openai_content).collect(),
            tokens_sent: 0,
            usage: None,
        });
    }
    let records = mock.records(IDS.len()).await;
    for (s, r) in seen.iter_mut().zip(&records) {
        s.tokens_sent = r.tokens_sent;
        s.usage = r.usage;
    }
    (seen, records)
}

/// The plan the library makes for `id` under the config in `toml`.
fn planned(toml: &str, id: &str) -> Plan {
    let config = configs(toml).remove(0);
    let ask = openai::parse(&body()).unwrap();
    plan(
        attempt_seed(config.seed, &config.name, "m", id),
        1,
        &config.defaults,
        None,
        &ask,
    )
}

/// The planned send time of each token after receipt, in microseconds.
fn schedule(plan: &Plan) -> Vec<u128> {
    let mut at = plan.ttft;
    let mut out = vec![at.as_micros()];
    for gap in &plan.gaps {
        at += *gap;
        out.push(at.as_micros());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_answers_and_another_seed_does_not() {
    let (a, a_records) = run(SEEDED).await;
    let (b, b_records) = run(SEEDED).await;
    assert_eq!(a, b, "two mock sets with one seed answer alike");
    let counts: Vec<u32> = a.iter().map(|s| s.tokens_sent).collect();
    assert!(counts.iter().any(|&c| c != counts[0]), "lengths vary by id: {counts:?}");

    for (i, id) in IDS.iter().enumerate() {
        let plan = planned(SEEDED, id);
        assert_eq!(plan.text(), a[i].text, "{id}: the text is the seeded plan's");
        assert_eq!(Some(plan.usage), a[i].usage);
        let schedule = schedule(&plan);
        for records in [&a_records, &b_records] {
            let offsets = &records[i].token_offsets_us;
            assert_eq!(offsets.len(), schedule.len());
            for (sent, due) in offsets.iter().zip(&schedule) {
                assert!(
                    u128::from(*sent) >= *due,
                    "{id}: a token sent at {sent} us, planned at {due} us"
                );
            }
        }
    }

    let other = SEEDED.replace("seed = 42", "seed = 43");
    let (c, _) = run(&other).await;
    assert_ne!(
        a.iter().map(|s| &s.text).collect::<Vec<_>>(),
        c.iter().map(|s| &s.text).collect::<Vec<_>>()
    );
    assert_ne!(
        a.iter().map(|s| &s.response_id).collect::<Vec<_>>(),
        c.iter().map(|s| &s.response_id).collect::<Vec<_>>()
    );
    let delays = |toml: &str| {
        IDS.iter()
            .map(|id| {
                let p = planned(toml, id);
                (p.ttft, p.gaps)
            })
            .collect::<Vec<(Duration, Vec<Duration>)>>()
    };
    assert_ne!(delays(SEEDED), delays(&other), "another seed plans other delays");
}
