//! The engine against real mock providers on loopback (no router): what it
//! sends, what it records, and how it stops.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mock_providers::config::{Behaviour, ModelConfig, ToolCall};
use mock_providers::distribution::Distribution;
use mock_providers::faults::RawFault;
use mock_providers::journal::CorrelationSource;
use mock_providers::{Clock, Dialect, MockSet, ProviderConfig};
use tokio::sync::mpsc;

use super::arrival::Arrival;
use super::client::{HttpClient, Template};
use super::engine::{self, Endpoint, EngineConfig, RunStats};
use super::plan::Api;
use super::record::{ErrorShape, Outcome, RequestRecord, ToolCall as ClientToolCall};
use crate::scenario::{Load, Meta, MixEntry, Phase, Scenario, Slo};
use crate::target::Target as ScenarioTarget;

const MS: Duration = Duration::from_millis(1);

/// One OpenAI-dialect mock, shaped by `configure`.
async fn mock(configure: impl FnOnce(&mut ProviderConfig)) -> (MockSet, Endpoint, Clock) {
    let mut config = ProviderConfig::any_model("p", Dialect::OpenAi, "127.0.0.1:0".parse().unwrap());
    config.defaults = fast();
    configure(&mut config);
    let mocks = MockSet::spawn(vec![config]).await.unwrap();
    let provider = &mocks.providers()[0];
    let target = Endpoint {
        base_url: format!("{}/v1", provider.base_url()),
        headers: Vec::new(),
        cost_header: None,
    };
    let clock = *provider.journal().clock();
    (mocks, target, clock)
}

/// 10 ms to the first token, 2 ms between tokens, 5 tokens.
fn fast() -> Behaviour {
    Behaviour {
        ttft_ms: Distribution::Constant(10.0),
        itl_ms: Distribution::Constant(2.0),
        output_tokens: Distribution::Constant(5.0),
        ..Behaviour::default()
    }
}

fn entry(name: &str, model: &str, stream: bool) -> MixEntry {
    MixEntry {
        name: name.into(),
        weight: 1,
        api: Api::Chat,
        model: model.into(),
        key: "sk-test".into(),
        stream,
        prompt_chars: 200,
        system: None,
        max_tokens: None,
        tools: false,
        cache_control: false,
        headers: Vec::new(),
    }
}

fn open(name: &str, duration: Duration, arrival: Arrival, mix: Vec<usize>) -> Phase {
    Phase {
        name: name.into(),
        duration,
        max_requests: None,
        load: Load::Open(arrival),
        max_in_flight: NonZeroU32::new(1024).unwrap(),
        mix,
        warm_up: false,
    }
}

fn scenario(phases: Vec<Phase>, mix: Vec<MixEntry>) -> Scenario {
    Scenario {
        file: PathBuf::from("test.toml"),
        profiles: Vec::new(),
        meta: Meta {
            name: "test".into(),
            description: String::new(),
            seed: 0,
            tags: Vec::new(),
        },
        target: ScenarioTarget::Builtin,
        mocks: Vec::new(),
        expect: None,
        phases,
        mix,
        faults: Vec::new(),
        slo: Slo::default(),
        checks: Vec::new(),
        report_dir: PathBuf::from("reports"),
        floor: None,
        sweep: None,
    }
}

fn config(seed: u64) -> EngineConfig {
    EngineConfig {
        seed,
        request_timeout: Duration::from_secs(5),
        stop_grace: Duration::from_millis(100),
        first_phase: 0,
    }
}

/// Runs the engine, collecting every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_requests_are_sent_and_read_as_anthropic_speaks_them() {
    let mut config = ProviderConfig::any_model("a", Dialect::Anthropic, "127.0.0.1:0".parse().unwrap());
    config.defaults = fast();
    config.models = vec![ModelConfig {
        id: "claude-tooly".into(),
        removed: false,
        tool_call: Some(ToolCall {
            name: "get_weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        }),
        behaviour: fast(),
    }];
    config.models.push(ModelConfig {
        id: "claude-x".into(),
        removed: false,
        tool_call: None,
        behaviour: fast(),
    });
    let mocks = MockSet::spawn(vec![config]).await.unwrap();
    let provider = &mocks.providers()[0];
    let target = Endpoint {
        base_url: format!("{}/v1", provider.base_url()),
        headers: Vec::new(),
        cost_header: None,
    };
    let clock = *provider.journal().clock();
    let messages = |name: &str, model: &str, stream: bool| MixEntry {
        api: Api::Messages,
        system: Some("be brief".into()),
        max_tokens: Some(64),
        ..entry(name, model, stream)
    };
    let mut tools = messages("tools", "claude-tooly", true);
    tools.tools = true;
    let mix = vec![
        messages("streamed", "claude-x", true),
        messages("whole", "claude-x", false),
        tools,
        messages("missing", "no-such-model", false),
    ];
    let phases = (0..4)
        .map(|i| open(&format!("p{i}"), 10 * MS, Arrival::Burst { count: 1 }, vec![i]))
        .collect();
    let scenario = scenario(phases, mix);
    let (_, records) = run(&scenario, &target, clock).await;
    let by_phase = |phase: u16| records.iter().find(|r| r.phase == phase).unwrap();
    let journal = provider.journal();
    tokio::time::timeout(Duration::from_secs(2), journal.wait_for(4))
        .await
        .unwrap();
    let upstream_of = |record: &RequestRecord| {
        journal
            .snapshot()
            .into_iter()
            .find(|r| r.correlation_id.as_deref() == Some(&*record.id))
            .unwrap()
    };

    for phase in 0..3 {
        let record = by_phase(phase);
        assert_eq!(record.outcome, Outcome::Ok, "{record:?}");
        assert_sane_times(record);
        let upstream = upstream_of(record);
        assert_eq!(upstream.dialect, Dialect::Anthropic);
        assert_eq!(upstream.system_prompt.as_deref(), Some("be brief"));
        assert_eq!(upstream.max_tokens, Some(64));
        let usage = upstream.usage.unwrap();
        assert_eq!(record.prompt_tokens, Some(u64::from(usage.prompt_tokens)), "{record:?}");
        assert_eq!(record.completion_tokens, Some(u64::from(usage.completion_tokens)));
        if record.stream {
            assert!(record.conformance.done && record.conformance.usage_last, "{record:?}");
            assert_eq!(record.conformance.event_sequence, None, "{record:?}");
            assert_eq!(upstream.tokens_sent, record.content_chunks, "{record:?}");
            assert!(record.first_content_us.is_some());
        }
    }
    assert!(by_phase(0).conformance.content_chars > 0);
    assert_eq!(by_phase(0).conformance.finish_reason.as_deref(), Some("stop"));
    let tool = by_phase(2);
    let call = tool.conformance.tool_call.as_ref().unwrap();
    assert_eq!((&*call.name, &*call.arguments), ("get_weather", r#"{"city":"Paris"}"#));
    assert_eq!(tool.conformance.finish_reason.as_deref(), Some("tool_calls"));

    let missing = by_phase(3);
    assert_eq!(
        (missing.outcome, missing.status),
        (Outcome::NotFound, 404),
        "{missing:?}"
    );
    assert!(missing.conformance.error_shape.as_ref().unwrap().ok, "{missing:?}");
}

async fn run_with(
    scenario: &Scenario,
    target: &Endpoint,
    clock: Clock,
    config: EngineConfig,
    stop: impl Future<Output = ()>,
) -> (RunStats, Vec<RequestRecord>) {
    let (tx, mut rx) = mpsc::channel(16);
    let collect = async {
        let mut records = Vec::new();
        while let Some(record) = rx.recv().await {
            records.push(record);
        }
        records
    };
    tokio::join!(engine::run(scenario.plan(), target, clock, config, tx, stop), collect)
}

async fn run(scenario: &Scenario, target: &Endpoint, clock: Clock) -> (RunStats, Vec<RequestRecord>) {
    run_with(scenario, target, clock, config(0), std::future::pending()).await
}

fn assert_sane_times(record: &RequestRecord) {
    let times = [
        Some(record.intended_us),
        Some(record.sent_us),
        record.head_us,
        record.first_content_us,
        record.last_byte_us,
    ];
    let known: Vec<u64> = times.into_iter().flatten().collect();
    assert!(known.windows(2).all(|w| w[0] <= w[1]), "{record:?}");
    if let Some(last) = record.content_offsets_us.last() {
        assert!(record.content_offsets_us.windows(2).all(|w| w[0] <= w[1]));
        assert!(record.sent_us + u64::from(*last) <= record.last_byte_us.unwrap());
    }
}

fn fault(json: serde_json::Value) -> RawFault {
    serde_json::from_value(json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_sends_the_schedule_with_ids_the_journal_sees() {
    let (mocks, target, clock) = mock(|_| {}).await;
    let mix = vec![entry("whole", "gpt-x", false), entry("stream", "gpt-x", true)];
    let phases = vec![open("steady", 200 * MS, Arrival::Constant { rate: 100.0 }, vec![0, 1])];
    let scenario = scenario(phases, mix);
    let (stats, records) = run(&scenario, &target, clock).await;

    assert_eq!(records.len(), 20);
    let phase = &stats.phases[0];
    assert!(!stats.stopped);
    assert_eq!(
        (phase.requested, phase.sent, phase.dropped, phase.completed),
        (20, 20, 0, 20)
    );
    assert_eq!(phase.expected_rate, 100.0);
    assert_eq!(phase.ended_us - phase.started_us, 200_000);
    assert!(phase.schedule_done, "every arrival came due before the end");

    let ids: HashSet<&str> = records.iter().map(|r| &*r.id).collect();
    assert_eq!(ids.len(), 20);
    let journal = mocks.providers()[0].journal();
    tokio::time::timeout(Duration::from_secs(2), journal.wait_for(20))
        .await
        .unwrap();
    let seen: HashMap<String, mock_providers::Record> = journal
        .snapshot()
        .into_iter()
        .map(|r| (r.correlation_id.clone().unwrap(), r))
        .collect();
    assert_eq!(seen.len(), 20);

    let mut streams = 0;
    for record in &records {
        assert_eq!(record.outcome, Outcome::Ok, "{record:?}");
        assert_eq!(record.status, 200);
        assert_eq!(record.phase, 0);
        assert!(record.intended_us >= phase.started_us && record.intended_us < phase.ended_us);
        assert_sane_times(record);
        let upstream = &seen[&*record.id];
        assert_eq!(upstream.correlation_source, CorrelationSource::Header);
        assert_eq!(upstream.stream, record.stream);
        assert_eq!(record.stream, record.mix == 1);
        // The mock received it after the client sent it, on the same clock.
        assert!(upstream.received_us >= record.sent_us);
        let usage = upstream.usage.unwrap();
        assert_eq!(record.prompt_tokens, Some(u64::from(usage.prompt_tokens)));
        assert_eq!(record.completion_tokens, Some(5));
        assert_eq!(record.cached_tokens, Some(0));
        assert_eq!(record.model.as_deref(), Some("gpt-x"));
        if record.stream {
            streams += 1;
            assert_eq!(record.content_chunks, 5);
            assert_eq!(record.content_offsets_us.len(), 5);
            // Role, 5 pieces, finish, usage, [DONE].
            assert_eq!(record.chunks, 9);
            assert!(record.first_content_us.unwrap() < record.last_byte_us.unwrap());
            let c = &record.conformance;
            assert_eq!(
                (c.usage_chunks, c.usage_last, c.done, c.error_chunk),
                (1, true, true, false)
            );
        } else {
            assert_eq!((record.chunks, record.content_chunks), (0, 0));
            assert_eq!(record.first_content_us, record.last_byte_us);
            assert_eq!((record.conformance.usage_chunks, record.conformance.done), (0, false));
        }
        assert_eq!(record.conformance.finish_reason.as_deref(), Some("stop"));
        assert!(record.conformance.content_chars > 0);
        assert_eq!(record.conformance.error_shape, None);
    }
    assert!(streams > 0 && streams < 20, "{streams} streams");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_flight_cap_drops_instead_of_queueing() {
    let (_mocks, target, clock) = mock(|config| {
        config.defaults.ttft_ms = Distribution::Constant(300.0);
        config.defaults.output_tokens = Distribution::Constant(4.0);
    })
    .await;
    let mut phase = open("capped", 200 * MS, Arrival::Constant { rate: 50.0 }, vec![0]);
    phase.max_in_flight = NonZeroU32::new(1).unwrap();
    let scenario = scenario(vec![phase], vec![entry("slow", "slow", true)]);
    let (stats, records) = run(&scenario, &target, clock).await;

    let phase = &stats.phases[0];
    assert_eq!(
        (phase.requested, phase.sent, phase.dropped, phase.completed),
        (10, 1, 9, 1)
    );
    assert_eq!(records.len(), 10);
    let dropped: Vec<_> = records.iter().filter(|r| r.outcome == Outcome::Dropped).collect();
    assert_eq!(dropped.len(), 9);
    for record in dropped {
        assert_eq!(record.intended_us, record.sent_us);
        assert_eq!((record.status, record.head_us, record.chunks), (0, None, 0));
        assert!(record.stream);
    }
    let sent = records.iter().find(|r| r.outcome != Outcome::Dropped).unwrap();
    assert_eq!((&*sent.id, sent.outcome), ("r0-0", Outcome::Ok));
    assert!(sent.first_content_us.unwrap() - sent.sent_us >= 300_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_users_wait_and_think() {
    let (_mocks, target, clock) = mock(|_| {}).await;
    let closed = |max_requests| Phase {
        name: "users".into(),
        duration: 300 * MS,
        max_requests,
        load: Load::Closed {
            users: NonZeroU32::new(2).unwrap(),
            think: 20 * MS,
        },
        max_in_flight: NonZeroU32::new(1).unwrap(),
        mix: vec![0],
        warm_up: false,
    };
    let scenario = scenario(vec![closed(None), closed(Some(5))], vec![entry("whole", "m", false)]);
    let (stats, records) = run(&scenario, &target, clock).await;

    let [free, capped] = &stats.phases[..] else {
        panic!("{stats:?}")
    };
    assert_eq!(free.expected_rate, 0.0);
    assert_eq!((capped.requested, capped.sent, capped.completed), (5, 5, 5));
    assert_eq!(records.iter().filter(|r| r.phase == 1).count(), 5);
    // Each cycle takes ≥ 10 ms of answer + 20 ms of thinking: at most ~10
    // per user in 300 ms; and the users did keep going.
    let first: Vec<_> = records.iter().filter(|r| r.phase == 0).collect();
    assert_eq!(first.len() as u64, free.requested);
    assert!((6..=22).contains(&first.len()), "{}", first.len());
    assert_eq!(free.sent, free.completed);
    for record in &records {
        assert_eq!(record.outcome, Outcome::Ok);
        assert_eq!(record.intended_us, record.sent_us);
        assert_sane_times(record);
    }
    // Never more than the 2 users in flight (the cap of 1 does not apply).
    let mut edges: Vec<(u64, i32)> = first
        .iter()
        .flat_map(|r| [(r.sent_us, 1), (r.last_byte_us.unwrap(), -1)])
        .collect();
    edges.sort();
    let mut in_flight = 0;
    let mut peak = 0;
    for (_, step) in edges {
        in_flight += step;
        peak = peak.max(in_flight);
    }
    assert_eq!(peak, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_the_run_and_records_every_started_request() {
    let (mocks, target, clock) = mock(|_| {}).await;
    mocks.providers()[0]
        .provider
        .set_faults(&[fault(serde_json::json!({"kind": "hang", "delay-ms": 5000}))])
        .unwrap();
    let phases = vec![
        open(
            "long",
            10 * Duration::from_secs(1),
            Arrival::Constant { rate: 10.0 },
            vec![0],
        ),
        open(
            "never",
            Duration::from_secs(1),
            Arrival::Constant { rate: 20.0 },
            vec![0],
        ),
    ];
    let scenario = scenario(phases, vec![entry("stream", "m", true)]);
    let started = std::time::Instant::now();
    // Arrivals at 0, 100 and 200 ms; the next would be at 300.
    let stop = tokio::time::sleep(250 * MS);
    let (stats, records) = run_with(&scenario, &target, clock, config(0), stop).await;

    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(stats.stopped);
    assert_eq!(stats.phases.len(), 1);
    let phase = &stats.phases[0];
    assert!(phase.ended_us - phase.started_us < 1_000_000);
    assert_eq!(phase.requested, 3);
    assert_eq!((phase.sent, phase.completed), (3, 3));
    assert!(!phase.schedule_done, "stopped before the schedule was through");
    assert_eq!(records.len(), 3);
    for record in &records {
        assert_eq!(record.outcome, Outcome::Timeout);
        assert!(record.error.as_deref().unwrap().contains("stopped"));
        // Given the grace period after the stop, no more.
        let waited = clock.now_us() - record.sent_us;
        assert!(waited >= 100_000, "{waited}");
    }
}

/// A phase at a rate no generator keeps up with (the highest a scenario
/// accepts) used to go on sending its whole schedule, late, for minutes
/// after a 100 ms phase; the generator now gives up a second after the
/// phase's end, and the phase says it did not get through its schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generator_behind_its_schedule_gives_up_after_the_phase() {
    let (_mocks, target, clock) = mock(|_| {}).await;
    let mut phase = open(
        "flood",
        100 * MS,
        Arrival::Constant {
            rate: super::arrival::MAX_RATE,
        },
        vec![0],
    );
    phase.max_in_flight = NonZeroU32::new(4).unwrap();
    let scenario = scenario(vec![phase], vec![entry("whole", "m", false)]);
    let started = std::time::Instant::now();
    let (stats, records) = tokio::time::timeout(Duration::from_secs(20), run(&scenario, &target, clock))
        .await
        .expect("the run ends");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    let phase = &stats.phases[0];
    assert!(!phase.schedule_done, "{phase:?}");
    assert!(phase.requested < 1_000_000, "{phase:?}");
    assert_eq!(records.len() as u64, phase.requested);
}

/// A stop reaches a generator sending back to back behind its schedule
/// (it never waited, so it never looked at the stop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_reaches_a_generator_behind_its_schedule() {
    let (_mocks, target, clock) = mock(|_| {}).await;
    let phase = open(
        "flood",
        Duration::from_secs(60),
        Arrival::Constant {
            rate: super::arrival::MAX_RATE,
        },
        vec![0],
    );
    let scenario = scenario(vec![phase], vec![entry("whole", "m", false)]);
    let started = std::time::Instant::now();
    let stop = tokio::time::sleep(200 * MS);
    let (stats, _) = tokio::time::timeout(
        Duration::from_secs(20),
        run_with(&scenario, &target, clock, config(0), stop),
    )
    .await
    .expect("the run ends");
    assert!(stats.stopped);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_timeout_is_a_timeout() {
    let (mocks, target, clock) = mock(|_| {}).await;
    mocks.providers()[0]
        .provider
        .set_faults(&[fault(serde_json::json!({"kind": "hang", "delay-ms": 5000}))])
        .unwrap();
    let scenario = scenario(
        vec![open("burst", 10 * MS, Arrival::Burst { count: 2 }, vec![0])],
        vec![entry("whole", "m", false)],
    );
    let mut config = config(0);
    config.request_timeout = 150 * MS;
    let (stats, records) = run_with(&scenario, &target, clock, config, std::future::pending()).await;
    assert!(!stats.stopped);
    assert_eq!(records.len(), 2);
    for record in &records {
        assert_eq!((record.outcome, record.status), (Outcome::Timeout, 0));
        assert!(record.error.as_deref().unwrap().contains("150 ms"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let target = Endpoint {
        base_url: format!("http://{addr}/v1"),
        headers: Vec::new(),
        cost_header: None,
    };
    let scenario = scenario(
        vec![open("burst", 10 * MS, Arrival::Burst { count: 2 }, vec![0])],
        vec![entry("whole", "m", false)],
    );
    let (_, records) = run(&scenario, &target, Clock::new()).await;
    assert_eq!(records.len(), 2);
    for record in &records {
        assert_eq!((record.outcome, record.head_us), (Outcome::ConnectError, None));
        assert!(record.error.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mix_choice_is_deterministic_for_a_seed() {
    let (mocks, target, clock) = mock(|_| {}).await;
    let mix = vec![
        entry("a", "model-a", false),
        entry("b", "model-b", false),
        entry("c", "model-c", false),
    ];
    let scenario = scenario(
        vec![open("burst", 50 * MS, Arrival::Burst { count: 24 }, vec![0, 1, 2])],
        mix,
    );
    let choices = |records: Vec<RequestRecord>| -> HashMap<String, u16> {
        records.into_iter().map(|r| (r.id.to_string(), r.mix)).collect()
    };
    let first = choices(
        run_with(&scenario, &target, clock, config(7), std::future::pending())
            .await
            .1,
    );
    let again = choices(
        run_with(&scenario, &target, clock, config(7), std::future::pending())
            .await
            .1,
    );
    let other = choices(
        run_with(&scenario, &target, clock, config(8), std::future::pending())
            .await
            .1,
    );
    assert_eq!(first.len(), 24);
    assert_eq!(first, again);
    assert_ne!(first, other);
    assert!(first.values().collect::<HashSet<_>>().len() > 1);

    // The mock was asked for the model of the chosen entry.
    let journal = mocks.providers()[0].journal();
    tokio::time::timeout(Duration::from_secs(2), journal.wait_for(72))
        .await
        .unwrap();
    let asked: HashMap<String, String> = journal
        .snapshot()
        .into_iter()
        .take(24)
        .map(|r| (r.correlation_id.unwrap(), r.model.unwrap()))
        .collect();
    for (id, mix) in &first {
        assert_eq!(asked[id], scenario.mix[usize::from(*mix)].model);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_models_404_and_tool_calls_stream_as_content() {
    let (mocks, target, clock) = mock(|config| {
        config.models = vec![ModelConfig {
            id: "tooly".into(),
            removed: false,
            tool_call: Some(ToolCall {
                name: "get_weather".into(),
                arguments: r#"{"city":"Paris"}"#.into(),
            }),
            behaviour: fast(),
        }];
    })
    .await;
    let mut tools = entry("tools", "tooly", true);
    tools.tools = true;
    tools.system = Some("be brief".into());
    tools.max_tokens = Some(64);
    let mix = vec![entry("missing", "no-such-model", false), tools];
    let phases = vec![
        open("missing", 10 * MS, Arrival::Burst { count: 1 }, vec![0]),
        open("tools", 10 * MS, Arrival::Burst { count: 1 }, vec![1]),
    ];
    let scenario = scenario(phases, mix);
    let (_, records) = run(&scenario, &target, clock).await;
    let by_phase = |phase: u16| records.iter().find(|r| r.phase == phase).unwrap();

    let missing = by_phase(0);
    assert_eq!((missing.outcome, missing.status), (Outcome::NotFound, 404));
    assert!(
        missing.error.as_deref().unwrap().contains("does not exist"),
        "{missing:?}"
    );
    assert_eq!(missing.first_content_us, None);
    let shape = missing.conformance.error_shape.as_ref().unwrap();
    assert!(shape.ok && shape.availability_code.is_none(), "{shape:?}");

    let tool = by_phase(1);
    assert_eq!(tool.outcome, Outcome::Ok, "{tool:?}");
    assert!(tool.content_chunks > 0);
    assert_eq!(tool.content_offsets_us.len() as u32, tool.content_chunks);
    assert!(tool.completion_tokens.is_some());
    assert_sane_times(tool);
    let call = tool.conformance.tool_call.as_ref().unwrap();
    assert_eq!((&*call.name, &*call.arguments), ("get_weather", r#"{"city":"Paris"}"#));
    assert_eq!(tool.conformance.finish_reason.as_deref(), Some("tool_calls"));

    let journal = mocks.providers()[0].journal();
    tokio::time::timeout(Duration::from_secs(2), journal.wait_for(2))
        .await
        .unwrap();
    let upstream = journal
        .snapshot()
        .into_iter()
        .find(|r| r.correlation_id.as_deref() == Some(&*tool.id))
        .unwrap();
    assert_eq!(upstream.system_prompt.as_deref(), Some("be brief"));
    assert_eq!(upstream.max_tokens, Some(64));
    assert_eq!(upstream.tokens_sent, tool.content_chunks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_streams_are_classified() {
    let (mocks, target, clock) = mock(|_| {}).await;
    mocks.providers()[0]
        .provider
        .set_faults(&[
            fault(serde_json::json!({"kind": "status", "status": 500, "after-tokens": 3, "model": "errs"})),
            fault(serde_json::json!({"kind": "cut", "after-tokens": 2, "model": "cuts"})),
            fault(serde_json::json!({"kind": "malformed-chunk", "after-tokens": 1, "model": "garbles"})),
            fault(serde_json::json!({"kind": "status", "status": 503, "model": "refuses"})),
        ])
        .unwrap();
    let mix = vec![
        entry("errs", "errs", true),
        entry("cuts", "cuts", true),
        entry("garbles", "garbles", true),
        entry("refuses", "refuses", true),
    ];
    let phases = (0..4)
        .map(|i| open(&format!("p{i}"), 10 * MS, Arrival::Burst { count: 1 }, vec![i]))
        .collect();
    let scenario = scenario(phases, mix);
    let (_, records) = run(&scenario, &target, clock).await;
    let by_mix = |mix: u16| records.iter().find(|r| r.mix == mix).unwrap();

    let errs = by_mix(0);
    assert_eq!((errs.outcome, errs.status), (Outcome::StreamError, 200), "{errs:?}");
    assert_eq!(errs.content_chunks, 3);
    assert!(errs.error.is_some());
    // The bare mock ends an errored stream without [DONE].
    assert!(errs.conformance.error_chunk && !errs.conformance.done);
    assert_sane_times(errs);

    // The bare mock cuts by breaking the chunked body: the connection broke.
    // (A clean end without [DONE] is a stream error: see the client's tests.)
    let cuts = by_mix(1);
    assert_eq!(cuts.outcome, Outcome::Reset, "{cuts:?}");
    assert_eq!(cuts.content_chunks, 2);
    assert!(cuts.error.is_some());

    let garbles = by_mix(2);
    assert_eq!(garbles.outcome, Outcome::StreamError, "{garbles:?}");
    assert!(garbles.error.as_deref().unwrap().contains("malformed"));

    let refuses = by_mix(3);
    assert_eq!(
        (refuses.outcome, refuses.status),
        (Outcome::ServerError, 503),
        "{refuses:?}"
    );
    assert!(refuses.error.is_some());
    assert!(refuses.conformance.error_shape.as_ref().unwrap().ok);
}

/// A loopback server answering each request id with its own canned answer.
async fn canned(answers: Vec<(&str, wiremock::ResponseTemplate)>) -> wiremock::MockServer {
    use wiremock::matchers::{header, method, path};
    let server = wiremock::MockServer::start().await;
    for (id, answer) in answers {
        wiremock::Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(header("x-gauntlet-request-id", id))
            .respond_with(answer)
            .mount(&server)
            .await;
    }
    server
}

fn sse(events: &[&str]) -> wiremock::ResponseTemplate {
    let body: String = events.iter().map(|event| format!("{event}\n\n")).collect();
    wiremock::ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")
}

fn json_answer(status: u16, body: &str) -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(status).set_body_raw(body.to_owned(), "application/json")
}

/// Sends request `id` (streamed or not) through the load client.
async fn exchange(server: &wiremock::MockServer, id: &str, stream: bool) -> RequestRecord {
    let clock = Clock::new();
    let client = HttpClient::new(&format!("{}/v1", server.uri()), clock, Duration::from_secs(1));
    let call = Template::new(0, &entry("e", "m", stream)).call(Arc::from(id), 0);
    let now = clock.now_us();
    let mut record = call.record(now, now, Outcome::Timeout);
    client.exchange(call, &mut record).await;
    record
}

#[tokio::test]
async fn the_client_records_how_streams_end() {
    let role = r#"data: {"model":"early","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#;
    let finish_stop = r#"data: {"model":"early","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
    let server = canned(vec![
        (
            "final-usage",
            sse(&[
                role,
                r#"data: {"model":"early","choices":[{"index":0,"delta":{"content":"Hé\n"},"finish_reason":null}],"usage":null}"#,
                r#"data: {"model":"early","choices":[{"index":0,"delta":{"content":"llo"}}]}"#,
                finish_stop,
                r#"data: {"model":"served","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4},"cost":0.000001250}}"#,
                "data: [DONE]",
            ])
            .insert_header("x-original-model", "old/model")
            .insert_header("retry-after", "9"),
        ),
        (
            "inline-usage",
            sse(&[
                role,
                r#"data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}"#,
                r#"data: {"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"cost":"0.5"}}"#,
                "data: [DONE]",
            ]),
        ),
        (
            "no-usage",
            sse(&[role, r#"data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}"#, finish_stop, "data: [DONE]"]),
        ),
        (
            "error-chunk",
            sse(&[
                r#"data: {"choices":[{"index":0,"delta":{"content":"par"}}]}"#,
                r#"data: {"error":{"message":"upstream died","code":502},"choices":[{"index":0,"delta":{},"finish_reason":"error"}]}"#,
                "data: [DONE]",
            ]),
        ),
        (
            "keepalive",
            sse(&[
                ": PROCESSING",
                ": PROCESSING",
                ":",
                r#"data: {"choices":[{"index":0,"delta":{"content":"x"}}]}"#,
                finish_stop,
                r#"data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
                "data: [DONE]",
            ]),
        ),
    ])
    .await;

    let r = exchange(&server, "final-usage", true).await;
    assert_eq!((r.outcome, r.status), (Outcome::Ok, 200), "{r:?}");
    assert_eq!((r.chunks, r.content_chunks), (6, 2));
    // Tokens, cost and model are the usage chunk's.
    assert_eq!(
        (r.prompt_tokens, r.completion_tokens, r.cached_tokens),
        (Some(12), Some(2), Some(4))
    );
    assert_eq!(r.cost.as_deref(), Some("0.000001250"));
    assert_eq!(r.model.as_deref(), Some("served"));
    let c = &r.conformance;
    assert_eq!(
        (c.usage_chunks, c.usage_last, c.done, c.error_chunk),
        (1, true, true, false)
    );
    assert_eq!(c.finish_reason.as_deref(), Some("stop"));
    assert_eq!(c.content_chars, 6);
    assert_eq!(c.original_model.as_deref(), Some("old/model"));
    // Retry-After is read of refusals only; a 2xx has no error shape.
    assert_eq!((&c.retry_after, &c.error_shape, &c.tool_call), (&None, &None, &None));
    assert_eq!(c.keepalive_comments, 0);

    let r = exchange(&server, "inline-usage", true).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    let c = &r.conformance;
    assert_eq!((c.usage_chunks, c.usage_last, c.done), (1, false, true));
    assert_eq!(c.finish_reason.as_deref(), Some("length"));
    assert_eq!((r.completion_tokens, r.cost.as_deref()), (Some(1), Some("0.5")));
    assert_eq!(c.original_model, None);

    let r = exchange(&server, "no-usage", true).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    let c = &r.conformance;
    assert_eq!((c.usage_chunks, c.usage_last, c.done), (0, false, true));
    assert_eq!((r.completion_tokens, &r.cost), (None, &None));

    let r = exchange(&server, "error-chunk", true).await;
    assert_eq!((r.outcome, r.status), (Outcome::StreamError, 200), "{r:?}");
    assert_eq!(r.error.as_deref(), Some("upstream died"));
    let c = &r.conformance;
    assert!(c.error_chunk && c.done && !c.usage_last);
    assert_eq!(c.finish_reason.as_deref(), Some("error"));
    assert_eq!((c.content_chars, c.usage_chunks), (3, 0));

    let r = exchange(&server, "keepalive", true).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    let c = &r.conformance;
    assert_eq!(c.keepalive_comments, 3);
    assert_eq!((c.usage_chunks, c.usage_last, c.done), (1, true, true));
    // Comments are not chunks.
    assert_eq!(r.chunks, 4);
}

#[tokio::test]
async fn the_client_reassembles_tool_calls() {
    let server = canned(vec![
        (
            "streamed",
            sse(&[
                r#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}"#,
                r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}"#,
                r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"ci"}}]}}]}"#,
                r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"name":"other","arguments":"{}"}}]}}]}"#,
                r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"ignored","arguments":"ty\":\"Paris\"}"}}]}}]}"#,
                r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
                r#"data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":4}}"#,
                "data: [DONE]",
            ]),
        ),
        (
            "whole",
            json_answer(
                200,
                r#"{"choices":[{"finish_reason":"tool_calls","index":0,"message":{"content":null,"role":"assistant","tool_calls":[{"function":{"arguments":"{\"city\":\"Oslo\"}","name":"get_weather"},"id":"c","type":"function"},{"function":{"arguments":"{}","name":"second"}}]}}],"model":"m","usage":{"prompt_tokens":1,"completion_tokens":3}}"#,
            ),
        ),
        (
            "text",
            json_answer(
                200,
                r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Bonjour, ça va?"},"finish_reason":"stop"}],"model":"m","usage":{"prompt_tokens":1,"completion_tokens":3}}"#,
            )
            .insert_header("x-original-model", "old/m"),
        ),
    ])
    .await;

    let r = exchange(&server, "streamed", true).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    let expected = |arguments: &str| {
        Some(ClientToolCall {
            name: "get_weather".into(),
            arguments: arguments.into(),
        })
    };
    assert_eq!(r.conformance.tool_call, expected(r#"{"city":"Paris"}"#));
    assert_eq!(r.conformance.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!((r.content_chunks, r.conformance.content_chars), (4, 0));

    let r = exchange(&server, "whole", false).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(r.conformance.tool_call, expected(r#"{"city":"Oslo"}"#));
    assert_eq!(r.conformance.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(r.conformance.content_chars, 0);

    let r = exchange(&server, "text", false).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    let c = &r.conformance;
    assert_eq!((c.content_chars, c.finish_reason.as_deref()), (15, Some("stop")));
    assert_eq!((&c.tool_call, c.done, c.usage_chunks), (&None, false, 0));
    assert_eq!(c.original_model.as_deref(), Some("old/m"));
}

#[tokio::test]
async fn the_client_records_refusal_shapes() {
    let server = canned(vec![
        (
            "removed",
            json_answer(
                404,
                r#"{"error":{"message":"model x-old was removed","type":"invalid_request_error","code":404,"availability":{"code":"model_deprecated","fallback_models":["x"]}}}"#,
            ),
        ),
        (
            "limited",
            json_answer(
                429,
                r#"{"error":{"message":"rate limit exceeded","type":"rate_limit_error","code":"rate_limited"}}"#,
            )
            .insert_header("retry-after", "3")
            .insert_header("x-original-model", "asked/model"),
        ),
        (
            "gateway",
            wiremock::ResponseTemplate::new(502).set_body_raw("<html>Bad Gateway</html>", "text/html"),
        ),
    ])
    .await;

    let r = exchange(&server, "removed", false).await;
    assert_eq!((r.outcome, r.status), (Outcome::NotFound, 404));
    assert_eq!(r.error.as_deref(), Some("model x-old was removed"));
    assert_eq!(
        r.conformance.error_shape,
        Some(ErrorShape {
            ok: true,
            error_type: Some("invalid_request_error".into()),
            anthropic: false,
            availability_code: Some("model_deprecated".into()),
            fallback_models: vec!["x".into()],
        })
    );
    assert_eq!(r.conformance.retry_after, None);

    let r = exchange(&server, "limited", true).await;
    assert_eq!((r.outcome, r.status), (Outcome::RateLimited, 429));
    let c = &r.conformance;
    assert_eq!(c.retry_after.as_deref(), Some("3"));
    assert_eq!(c.original_model.as_deref(), Some("asked/model"));
    let shape = c.error_shape.as_ref().unwrap();
    assert!(shape.ok && shape.availability_code.is_none() && shape.fallback_models.is_empty());
    // A refused stream never started.
    assert_eq!((r.chunks, c.done, c.usage_chunks), (0, false, 0));

    let r = exchange(&server, "gateway", false).await;
    assert_eq!((r.outcome, r.status), (Outcome::ServerError, 502));
    assert_eq!(r.error.as_deref(), Some("<html>Bad Gateway</html>"));
    assert_eq!(r.conformance.error_shape, Some(ErrorShape::default()));
}

/// The target's headers go with every request, beside the call's own key.
#[tokio::test]
async fn the_client_sends_the_targets_headers() {
    use wiremock::matchers::{header, method, path};
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("x-portkey-provider", "openai"))
        .and(header("authorization", "Bearer sk-test"))
        .respond_with(json_answer(
            200,
            r#"{"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
        ))
        .mount(&server)
        .await;
    let clock = Clock::new();
    let plain = HttpClient::new(&format!("{}/v1", server.uri()), clock, Duration::from_secs(1));
    let routed = plain
        .clone()
        .with_headers(&[("x-portkey-provider".into(), "openai".into())]);
    let mut outcomes = Vec::new();
    for client in [&plain, &routed] {
        let call = Template::new(0, &entry("e", "m", false)).call(Arc::from("h1"), 0);
        let now = clock.now_us();
        let mut record = call.record(now, now, Outcome::Timeout);
        client.exchange(call, &mut record).await;
        outcomes.push(record.outcome);
    }
    assert_ne!(outcomes[0], Outcome::Ok, "the mock only answers with the header");
    assert_eq!(outcomes[1], Outcome::Ok);

    // A mix entry's own header goes too, and wins over the target's.
    wiremock::Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("x-portkey-provider", "anthropic"))
        .respond_with(json_answer(
            200,
            r#"{"model":"claude","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
        ))
        .mount(&server)
        .await;
    let own = MixEntry {
        headers: vec![("x-portkey-provider".into(), "anthropic".into())],
        ..entry("e", "m", false)
    };
    let call = Template::new(0, &own).call(Arc::from("h2"), 0);
    let now = clock.now_us();
    let mut record = call.record(now, now, Outcome::Timeout);
    routed.exchange(call, &mut record).await;
    assert_eq!((record.outcome, record.model.as_deref()), (Outcome::Ok, Some("claude")));
}

/// A profile that writes the charge in a header: the client reads it there,
/// and not `usage.cost`; without one, `usage.cost` is read.
#[tokio::test]
async fn the_charge_is_read_where_the_profile_says() {
    use wiremock::matchers::method;
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(method("POST"))
        .respond_with(
            json_answer(
                200,
                r#"{"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"cost":"9"}}"#,
            )
            .insert_header("x-gw-cost", "1.3049999999999999e-05"),
        )
        .mount(&server)
        .await;
    let clock = Clock::new();
    let plain = HttpClient::new(&format!("{}/v1", server.uri()), clock, Duration::from_secs(1));
    let mut costs = Vec::new();
    for client in [plain.clone(), plain.with_cost_header(Some("x-gw-cost"))] {
        let call = Template::new(0, &entry("e", "m", false)).call(Arc::from("c"), 0);
        let now = clock.now_us();
        let mut record = call.record(now, now, Outcome::Timeout);
        client.exchange(call, &mut record).await;
        costs.push(record.cost);
    }
    assert_eq!(costs[0].as_deref(), Some("9"));
    assert_eq!(costs[1].as_deref(), Some("1.3049999999999999e-05"));
    // An answer without the header: its usage.cost.
    let call = Template::new(0, &entry("e", "m", false)).call(Arc::from("d"), 0);
    let now = clock.now_us();
    let mut record = call.record(now, now, Outcome::Timeout);
    let missing = HttpClient::new(&format!("{}/v1", server.uri()), clock, Duration::from_secs(1))
        .with_cost_header(Some("x-other-cost"));
    missing.exchange(call, &mut record).await;
    assert_eq!(record.cost.as_deref(), Some("9"));
}
