//! Whatever validates runs. For each duration, rate and count of the mock,
//! router and scenario tables, a value is drawn across the whole range of
//! the field's raw type (f64: huge, tiny, negative, `inf`, `nan`, and
//! everyday magnitudes; integers: the full `u32` or `u64` range) and written
//! into a minimal file. Validation may refuse it (the error then names the
//! field); a value it accepts must run: the mock or the router served on
//! loopback and asked a request or two for about a second, the scenario run
//! with its phases cut to 300 ms and stopped after 1.5 s. No thread of the
//! case may panic, every answer that completes must be whole, and the case
//! must end within a bound.
//!
//! Beside the random draws, every mock and router field is tried at each
//! edge of its raw type (0, 1, the maximum; NaN, ±inf, -1, 0, the smallest
//! subnormal, 1e300), where a validation gap is most likely.
//!
//! Each case runs on a runtime of its own whose threads carry the test's
//! name, so a panic hook can tell its panics (inside a spawned task, where
//! nothing else would see them) from the rest of the test binary's.

use std::fmt::Write as _;
use std::sync::{Mutex, Once};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::Value;
use tokio::sync::{oneshot, watch};

use gauntlet::Exit;
use gauntlet::router::config::RawRouterFile;
use gauntlet::router::{Connector, Router, serve};
use gauntlet::run::{Run, RunOptions};
use gauntlet::scenario::{Load, Scenario};
use mock_providers::MockSet;
use mock_providers::config::{RawProvidersFile, parse_toml, validate_providers};

use crate::support::{HttpClient, TempDir, client};

/// How long a request may take before the case stops waiting for it.
const ANSWER_BOUND: Duration = Duration::from_secs(1);
/// How long the mocks or the router may take to stop.
const STOP_BOUND: Duration = Duration::from_secs(5);
/// How long a scenario phase runs, at most, in a case.
const PHASE_CAP: Duration = Duration::from_millis(300);
/// When a case's scenario run is told to stop.
const RUN_STOP: Duration = Duration::from_millis(1500);
/// How long a case's scenario run may take, stop included.
const RUN_BOUND: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Panics on a case's threads.

/// (thread name, message) of every panic on a thread named `values-…`.
static PANICS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
static HOOK: Once = Once::new();

/// Records panics on `values-…` threads, then lets the previous hook print.
fn watch_panics() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current().name().unwrap_or_default().to_string();
            if thread.starts_with("values-") {
                let mut panics = PANICS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                panics.push((thread, info.to_string()));
            }
            previous(info);
        }));
    });
}

/// The panics recorded on the threads named `name`, taken.
fn panics_of(name: &str) -> Vec<String> {
    let mut panics = PANICS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (mine, others): (Vec<_>, Vec<_>) = panics.drain(..).partition(|(thread, _)| thread == name);
    *panics = others;
    mine.into_iter().map(|(_, message)| message).collect()
}

/// Runs `case` on a runtime of its own (threads named `name`), shuts the
/// runtime down within a bound, and fails on any panic one of its threads had.
fn on_own_runtime<F: Future<Output = ()>>(name: &str, case: F) {
    watch_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(case);
    runtime.shutdown_timeout(STOP_BOUND);
    let panics = panics_of(name);
    assert!(panics.is_empty(), "{} panic(s): {panics:#?}", panics.len());
}

// ---------------------------------------------------------------------------
// Values across the raw types.

/// A value of the raw type a field is read as.
#[derive(Debug, Clone, Copy)]
enum Raw {
    Real(f64),
    Whole(u64),
}

/// How a field is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    F64,
    U32,
    U64,
}

impl Raw {
    /// As TOML writes it (an integer past `i64::MAX` cannot be: the parser
    /// refuses it, which is a refusal like any other).
    fn toml(self) -> String {
        match self {
            Raw::Real(v) if v.is_nan() => "nan".into(),
            Raw::Real(v) if v.is_infinite() => (if v > 0.0 { "inf" } else { "-inf" }).into(),
            Raw::Real(v) => format!("{v:?}"),
            Raw::Whole(v) => v.to_string(),
        }
    }
}

/// Every class of f64 — NaN, ±inf, subnormal, huge and tiny (proptest's
/// `any`) — and, more often, magnitudes across the fields' ranges (10^-4 to
/// 10^10, now and then negative), and the edges.
fn real() -> impl Strategy<Value = f64> {
    prop_oneof![
        1 => any::<f64>(),
        4 => (-4.0f64..10.0, prop::bool::weighted(0.15)).prop_map(|(e, negative)| {
            let v = 10f64.powf(e);
            if negative { -v } else { v }
        }),
        1 => prop::sample::select(vec![
            0.0,
            -0.0,
            0.001,
            1.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            1e300,
            1e308,
        ]),
    ]
}

/// The full range up to `max` (`u32::MAX` or `u64::MAX`) — and, more
/// often, every magnitude of it alike (log-uniform), and the edges.
fn whole(max: u64) -> impl Strategy<Value = u64> {
    let digits = (max as f64).log10();
    prop_oneof![
        1 => 0..=max,
        4 => (0.0..digits).prop_map(move |e| (10f64.powf(e) as u64).min(max)),
        1 => prop::sample::select(vec![0, 1, u64::from(u32::MAX).min(max), (i64::MAX as u64).min(max), max]),
    ]
}

/// A value of `kind`.
fn raw(kind: Kind) -> BoxedStrategy<Raw> {
    match kind {
        Kind::F64 => real().prop_map(Raw::Real).boxed(),
        Kind::U32 => whole(u64::from(u32::MAX)).prop_map(Raw::Whole).boxed(),
        Kind::U64 => whole(u64::MAX).prop_map(Raw::Whole).boxed(),
    }
}

/// A field of one of the tables: its name (for failures), its raw type,
/// and the TOML that sets it to a value.
struct Field<P> {
    name: &'static str,
    kind: Kind,
    place: P,
    toml: fn(&str) -> String,
}

impl<P> std::fmt::Debug for Field<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// A field of `fields` and a value for it.
fn field_and_value<P>(fields: &'static [Field<P>]) -> impl Strategy<Value = (&'static Field<P>, Raw)> {
    (0..fields.len()).prop_flat_map(move |i| raw(fields[i].kind).prop_map(move |v| (&fields[i], v)))
}

/// The values most likely to break a field, whatever its range: every
/// edge of its raw type, and the non-finite floats.
fn edges(kind: Kind) -> Vec<Raw> {
    match kind {
        Kind::F64 => [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0, 0.0, 5e-324, 1e300]
            .into_iter()
            .map(Raw::Real)
            .collect(),
        Kind::U32 => [0, 1, u64::from(u32::MAX)].into_iter().map(Raw::Whole).collect(),
        Kind::U64 => [0, 1, u64::MAX].into_iter().map(Raw::Whole).collect(),
    }
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        max_shrink_iters: 32,
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------
// HTTP.

/// A completed answer: status and whole body.
struct Reply {
    status: StatusCode,
    body: String,
}

/// What became of a request within [`ANSWER_BOUND`].
enum Asked {
    Answered(Reply),
    /// The connection failed or the body broke off.
    Broken(String),
    /// Still going when the case stopped waiting (a long delay validated).
    Waiting,
}

async fn ask(client: &HttpClient, url: &str, headers: &[(&str, &str)], body: Value) -> Asked {
    let mut request = Request::post(url).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let exchange = async {
        let response = client.request(request).await.map_err(|e| format!("{e:?}"))?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| format!("{e:?}"))?;
        Ok::<_, String>(Reply {
            status,
            body: String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        })
    };
    match tokio::time::timeout(ANSWER_BOUND, exchange).await {
        Ok(Ok(reply)) => Asked::Answered(reply),
        Ok(Err(e)) => Asked::Broken(e),
        Err(_) => Asked::Waiting,
    }
}

fn json(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok()
}

// ---------------------------------------------------------------------------
// The mock's fields.

/// Where a mock field goes does not matter: every snippet is whole.
type NoPlace = ();

const MOCK_FIELDS: &[Field<NoPlace>] = &[
    Field {
        name: "defaults.ttft-ms",
        kind: Kind::F64,
        place: (),
        toml: |v| format!("[providers.defaults]\nttft-ms = {v}\n"),
    },
    Field {
        name: "defaults.itl-ms",
        kind: Kind::F64,
        place: (),
        toml: |v| format!("[providers.defaults]\nitl-ms = {v}\noutput-tokens = 4\n"),
    },
    Field {
        name: "defaults.output-tokens",
        kind: Kind::F64,
        place: (),
        toml: |v| format!("[providers.defaults]\nttft-ms = 0\nitl-ms = 0\noutput-tokens = {v}\n"),
    },
    Field {
        name: "defaults.ttft-ms.p99 (lognormal)",
        kind: Kind::F64,
        place: (),
        toml: |v| format!("[providers.defaults]\nttft-ms = {{ dist = \"lognormal\", p50 = 1, p99 = {v} }}\n"),
    },
    Field {
        name: "defaults.itl-ms.stddev (normal)",
        kind: Kind::F64,
        place: (),
        toml: |v| {
            format!(
                "[providers.defaults]\nitl-ms = {{ dist = \"normal\", mean = 1, stddev = {v} }}\noutput-tokens = 4\n"
            )
        },
    },
    Field {
        name: "defaults.output-tokens.max (uniform)",
        kind: Kind::F64,
        place: (),
        toml: |v| {
            format!("[providers.defaults]\nitl-ms = 0\noutput-tokens = {{ dist = \"uniform\", min = 0, max = {v} }}\n")
        },
    },
    Field {
        name: "defaults.reasoning-tokens",
        kind: Kind::U32,
        place: (),
        toml: |v| format!("[providers.defaults]\nreasoning-tokens = {v}\n"),
    },
    Field {
        name: "models[0].itl-ms",
        kind: Kind::F64,
        place: (),
        toml: |v| format!("[[providers.models]]\nid = \"m\"\nitl-ms = {v}\noutput-tokens = 3\n"),
    },
    Field {
        name: "keys[0].rpm",
        kind: Kind::U32,
        place: (),
        toml: |v| format!("[[providers.keys]]\nkey = \"sk\"\nrpm = {v}\n"),
    },
    Field {
        name: "keys[0].tpm",
        kind: Kind::U32,
        place: (),
        toml: |v| format!("[[providers.keys]]\nkey = \"sk\"\ntpm = {v}\n"),
    },
    Field {
        name: "keys[0].concurrency",
        kind: Kind::U32,
        place: (),
        toml: |v| format!("[[providers.keys]]\nkey = \"sk\"\nconcurrency = {v}\n"),
    },
    Field {
        name: "faults[0].retry-after-ms",
        kind: Kind::U64,
        place: (),
        toml: |v| format!("[[providers.faults]]\nkind = \"status\"\nstatus = 429\nretry-after-ms = {v}\n"),
    },
    Field {
        name: "faults[0].delay-ms (hang)",
        kind: Kind::U64,
        place: (),
        toml: |v| format!("[[providers.faults]]\nkind = \"hang\"\ndelay-ms = {v}\n"),
    },
    Field {
        name: "faults[0].delay-ms (slow-first-byte)",
        kind: Kind::U64,
        place: (),
        toml: |v| format!("[[providers.faults]]\nkind = \"slow-first-byte\"\ndelay-ms = {v}\n"),
    },
    Field {
        name: "faults[0].after-tokens (cut)",
        kind: Kind::U32,
        place: (),
        toml: |v| format!("[[providers.faults]]\nkind = \"cut\"\nafter-tokens = {v}\n"),
    },
    Field {
        name: "faults[0].after-tokens (status)",
        kind: Kind::U32,
        place: (),
        toml: |v| format!("[[providers.faults]]\nkind = \"status\"\nstatus = 500\nafter-tokens = {v}\n"),
    },
    Field {
        name: "faults[0].from-ms",
        kind: Kind::U64,
        place: (),
        toml: |v| format!("[[providers.faults]]\nkind = \"status\"\nstatus = 503\nfrom-ms = {v}\n"),
    },
    Field {
        name: "faults[0].until-ms",
        kind: Kind::U64,
        place: (),
        toml: |v| format!("[[providers.faults]]\nkind = \"status\"\nstatus = 503\nuntil-ms = {v}\n"),
    },
    Field {
        name: "faults[0].max-hits",
        kind: Kind::U64,
        place: (),
        toml: |v| format!("[[providers.faults]]\nkind = \"status\"\nstatus = 500\nmax-hits = {v}\n"),
    },
    Field {
        name: "faults[0].probability",
        kind: Kind::F64,
        place: (),
        toml: |v| format!("[[providers.faults]]\nkind = \"status\"\nstatus = 500\nprobability = {v}\n"),
    },
];

/// Serves the mock `text` describes (if it validates) and asks it a
/// streamed and a whole question.
async fn mock_case(field: &Field<NoPlace>, value: Raw, anthropic: bool) {
    let dialect = if anthropic { "anthropic" } else { "openai" };
    let text = format!(
        "[[providers]]\nname = \"p\"\ndialect = \"{dialect}\"\n{}",
        (field.toml)(&value.toml())
    );
    let raw: RawProvidersFile = match parse_toml(&text) {
        Ok(raw) => raw,
        Err(e) => return assert!(!e.message.is_empty(), "{e}"),
    };
    let configs = match validate_providers(&raw.providers) {
        Ok(configs) => configs,
        Err(e) => {
            assert!(e.path.starts_with("providers[0]."), "{}: {e}", field.name);
            return;
        }
    };
    let mocks = MockSet::spawn(configs).await.unwrap();
    let base = mocks.providers()[0].base_url();
    let http = client();
    let (url, headers) = if anthropic {
        (format!("{base}/v1/messages"), [("x-api-key", "sk")])
    } else {
        (format!("{base}/v1/chat/completions"), [("authorization", "Bearer sk")])
    };
    let body = |stream: bool| {
        serde_json::json!({"model": "m", "stream": stream, "max_tokens": 16,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "Say something."}]})
    };
    let (streamed, whole) = tokio::join!(
        ask(&http, &url, &headers, body(true)),
        ask(&http, &url, &headers, body(false))
    );
    // Faults that cut, hang up or reset break answers on purpose.
    let breaks = field.name.contains("(cut)") || field.name.contains("(hang)") || field.name.contains("(status)");
    for (stream, asked) in [(true, streamed), (false, whole)] {
        match asked {
            Asked::Waiting => {}
            Asked::Broken(e) => assert!(breaks, "{}: stream {stream}: {e}", field.name),
            Asked::Answered(reply) if reply.status != StatusCode::OK => {
                assert!(
                    json(&reply.body).is_some(),
                    "{}: {} {}",
                    field.name,
                    reply.status,
                    reply.body
                );
            }
            Asked::Answered(reply) if stream => {
                let end = if anthropic { "message_stop" } else { "data: [DONE]" };
                assert!(breaks || reply.body.contains(end), "{}: {}", field.name, reply.body);
            }
            Asked::Answered(reply) => {
                assert!(breaks || json(&reply.body).is_some(), "{}: {}", field.name, reply.body);
            }
        }
    }
    tokio::time::timeout(STOP_BOUND, mocks.shutdown())
        .await
        .expect("the mocks stop");
}

/// Each mock field at each edge of its raw type: refused, or run.
#[test]
fn mock_edges_that_validate_run() {
    for (i, field) in MOCK_FIELDS.iter().enumerate() {
        for value in edges(field.kind) {
            on_own_runtime("values-mock-edges", mock_case(field, value, i % 2 == 1));
        }
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// Each mock field, at any value that validates: the mock answers (or
    /// is still answering a long delay) without a panic, and stops.
    #[test]
    fn mock_values_that_validate_run((field, value) in field_and_value(MOCK_FIELDS), anthropic in any::<bool>()) {
        on_own_runtime("values-mock", mock_case(field, value, anthropic));
    }
}

// ---------------------------------------------------------------------------
// The router's fields.

/// Where a router field's line goes in the `[router]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// `[router]` itself.
    Top,
    /// `[router.retry]`.
    Retry,
    /// The priced model's table.
    Model,
    /// The key's table.
    Key,
}

const ROUTER_FIELDS: &[Field<Place>] = &[
    Field {
        name: "keep-alive-ms",
        kind: Kind::U64,
        place: Place::Top,
        toml: |v| format!("keep-alive-ms = {v}"),
    },
    Field {
        name: "max-body-bytes",
        kind: Kind::U64,
        place: Place::Top,
        toml: |v| format!("max-body-bytes = {v}"),
    },
    Field {
        name: "byok-fee-bps",
        kind: Kind::U32,
        place: Place::Top,
        toml: |v| format!("byok-fee-bps = {v}"),
    },
    Field {
        name: "header-timeout-ms",
        kind: Kind::U64,
        place: Place::Top,
        toml: |v| format!("header-timeout-ms = {v}"),
    },
    Field {
        name: "body-timeout-ms",
        kind: Kind::U64,
        place: Place::Top,
        toml: |v| format!("body-timeout-ms = {v}"),
    },
    Field {
        name: "max-connections",
        kind: Kind::U32,
        place: Place::Top,
        toml: |v| format!("max-connections = {v}"),
    },
    Field {
        name: "clock.speed",
        kind: Kind::F64,
        place: Place::Top,
        toml: |v| format!("clock = {{ start = \"2026-01-01T23:59:59Z\", speed = {v} }}"),
    },
    Field {
        name: "free.per-minute",
        kind: Kind::U32,
        place: Place::Top,
        toml: |v| format!("free = {{ per-minute = {v} }}"),
    },
    Field {
        name: "free.per-day",
        kind: Kind::U32,
        place: Place::Top,
        toml: |v| format!("free = {{ per-day = {v} }}"),
    },
    Field {
        name: "retry.base-ms",
        kind: Kind::U64,
        place: Place::Retry,
        toml: |v| format!("base-ms = {v}"),
    },
    Field {
        name: "retry.cap-ms",
        kind: Kind::U64,
        place: Place::Retry,
        toml: |v| format!("cap-ms = {v}"),
    },
    Field {
        name: "retry.factor",
        kind: Kind::F64,
        place: Place::Retry,
        toml: |v| format!("factor = {v}"),
    },
    Field {
        name: "retry.attempts-per-provider",
        kind: Kind::U32,
        place: Place::Retry,
        toml: |v| format!("attempts-per-provider = {v}"),
    },
    Field {
        name: "retry.retries-per-provider",
        kind: Kind::U32,
        place: Place::Retry,
        toml: |v| format!("retries-per-provider = {v}"),
    },
    Field {
        name: "retry.deadline-ms",
        kind: Kind::U64,
        place: Place::Retry,
        toml: |v| format!("deadline-ms = {v}"),
    },
    Field {
        name: "retry.first-byte-timeout-ms",
        kind: Kind::U64,
        place: Place::Retry,
        toml: |v| format!("first-byte-timeout-ms = {v}"),
    },
    Field {
        name: "retry.budget-ratio",
        kind: Kind::F64,
        place: Place::Retry,
        toml: |v| format!("budget-ratio = {v}"),
    },
    Field {
        name: "retry.budget-window-ms",
        kind: Kind::U64,
        place: Place::Retry,
        toml: |v| format!("budget-window-ms = {v}"),
    },
    Field {
        name: "retry.budget-min-retries",
        kind: Kind::U32,
        place: Place::Retry,
        toml: |v| format!("budget-min-retries = {v}"),
    },
    Field {
        name: "retry.cooldown-after",
        kind: Kind::U32,
        place: Place::Retry,
        toml: |v| format!("cooldown-after = {v}"),
    },
    Field {
        name: "retry.cooldown-ms",
        kind: Kind::U64,
        place: Place::Retry,
        toml: |v| format!("cooldown-ms = {v}"),
    },
    Field {
        name: "models[0].default-max-tokens",
        kind: Kind::U32,
        place: Place::Model,
        toml: |v| format!("default-max-tokens = {v}"),
    },
    Field {
        name: "models[0].context-length",
        kind: Kind::U32,
        place: Place::Model,
        toml: |v| format!("context-length = {v}"),
    },
    Field {
        name: "keys[0].rpm",
        kind: Kind::U32,
        place: Place::Key,
        toml: |v| format!("rpm = {v}"),
    },
    Field {
        name: "keys[0].concurrency",
        kind: Kind::U32,
        place: Place::Key,
        toml: |v| format!("concurrency = {v}"),
    },
];

/// A mock `up` (every third answer a 429 with a Retry-After, so the retry
/// fields are used) and a router in front of it with `line` in `place`.
fn router_toml(place: Place, line: &str) -> String {
    let at = |p: Place| if p == place { format!("{line}\n") } else { String::new() };
    let mut toml = String::from(
        "[[providers]]\nname = \"up\"\ndialect = \"openai\"\n[providers.defaults]\nttft-ms = 5\nitl-ms = 2\noutput-tokens = 6\n\
         [[providers.faults]]\nkind = \"status\"\nstatus = 429\nretry-after-ms = 20\nprobability = 0.3\n",
    );
    let _ = write!(
        toml,
        "[router]\n{}[[router.providers]]\nname = \"up\"\ndialect = \"openai\"\nbase-url = \"mock:up\"\napi-key = \"k\"\n\
         [[router.models]]\nid = \"o/m\"\nproviders = [\"up\"]\nprompt = \"1\"\ncompletion = \"2\"\n{}\
         [[router.models]]\nid = \"o/m:free\"\nproviders = [{{ name = \"up\", model = \"m\" }}]\n\
         [[router.keys]]\nkey = \"sk\"\ncredits = \"10\"\n{}[router.retry]\n{}",
        at(Place::Top),
        at(Place::Model),
        at(Place::Key),
        at(Place::Retry),
    );
    toml
}

/// Serves the router `line` configures (if it validates) in front of its
/// mock, and asks a streamed, a whole and a free question and the key's
/// balance.
async fn router_case(field: &Field<Place>, value: Raw) {
    let text = router_toml(field.place, &(field.toml)(&value.toml()));
    let mut file: RawRouterFile = match parse_toml(&text) {
        Ok(file) => file,
        Err(e) => return assert!(!e.message.is_empty(), "{e}"),
    };
    let providers: RawProvidersFile = parse_toml(&text).unwrap();
    let mocks = MockSet::spawn(validate_providers(&providers.providers).unwrap())
        .await
        .unwrap();
    let mut raw = file.router.take().unwrap();
    raw.providers[0].base_url = mocks.get("up").unwrap().base_url();
    let mut config = match raw.validate("router") {
        Ok(config) => config,
        Err(e) => {
            assert!(e.path.starts_with("router."), "{}: {e}", field.name);
            mocks.shutdown().await;
            return;
        }
    };
    config.listen = "127.0.0.1:0".parse().unwrap();
    let router = Router::new(config, Connector::tcp()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/v1", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(serve(listener, router, async move {
        let _ = stopped.await;
    }));

    let http = client();
    let auth = [("authorization", "Bearer sk")];
    let chat = format!("{base}/chat/completions");
    let body = |model: &str, stream: bool| {
        serde_json::json!({"model": model, "stream": stream,
            "messages": [{"role": "user", "content": "Say something."}]})
    };
    let (streamed, whole, free) = tokio::join!(
        ask(&http, &chat, &auth, body("o/m", true)),
        ask(&http, &chat, &auth, body("o/m", false)),
        ask(&http, &chat, &auth, body("o/m:free", false)),
    );
    for (what, asked) in [("stream", streamed), ("whole", whole), ("free", free)] {
        match asked {
            Asked::Waiting => {}
            Asked::Broken(e) => panic!("{}: the router broke the {what} answer off: {e}", field.name),
            Asked::Answered(reply) if reply.status != StatusCode::OK => {
                let error = json(&reply.body).map(|j| j["error"].clone());
                assert!(
                    error.is_some_and(|e| e.is_object()),
                    "{}: {what}: {} {}",
                    field.name,
                    reply.status,
                    reply.body
                );
            }
            // A 200 stream always ends with [DONE] (a zero keep-alive once
            // made it empty).
            Asked::Answered(reply) if what == "stream" => assert!(
                reply.body.ends_with("data: [DONE]\n\n"),
                "{}: {what}: {:?}",
                field.name,
                reply.body
            ),
            Asked::Answered(reply) => assert!(
                json(&reply.body).is_some_and(|j| j["choices"].is_array()),
                "{}: {what}: {}",
                field.name,
                reply.body
            ),
        }
    }
    let key = tokio::time::timeout(ANSWER_BOUND, async {
        let request = Request::get(format!("{base}/key"))
            .header("authorization", "Bearer sk")
            .body(Full::new(Bytes::new()))
            .unwrap();
        http.request(request).await.map(|r| r.status())
    })
    .await;
    if let Ok(status) = key {
        assert_eq!(status.unwrap(), StatusCode::OK, "{}", field.name);
    }
    let _ = stop.send(());
    tokio::time::timeout(STOP_BOUND, served)
        .await
        .expect("the router stops")
        .unwrap();
    tokio::time::timeout(STOP_BOUND, mocks.shutdown())
        .await
        .expect("the mocks stop");
}

/// Each router field at each edge of its raw type: refused, or run (a
/// keep-alive of 0 ms once validated and emptied every stream).
#[test]
fn router_edges_that_validate_run() {
    for field in ROUTER_FIELDS {
        for value in edges(field.kind) {
            on_own_runtime("values-router-edges", router_case(field, value));
        }
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// Each router field, at any value that validates: the router answers
    /// a stream, a whole answer, a free model and the key's balance (or is
    /// still answering) without a panic, every answer whole, and stops.
    #[test]
    fn router_values_that_validate_run((field, value) in field_and_value(ROUTER_FIELDS)) {
        on_own_runtime("values-router", router_case(field, value));
    }
}

// ---------------------------------------------------------------------------
// The scenario's own fields.

/// Which part of the minimal scenario a field's TOML replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The one `[[phases]]` table (or a `[sweep]` in its place).
    Load,
    /// Lines added to the `[[mix]]` entry.
    Mix,
    /// Tables added at the end (`[slo]`, `[[checks]]`, `[[faults]]`).
    Extra,
}

const PHASE: &str = "[[phases]]\nduration-ms = 300\narrival = { kind = \"constant\", rate = 20 }\n";

const SCENARIO_FIELDS: &[Field<Part>] = &[
    Field {
        name: "phases[0].duration-s",
        kind: Kind::F64,
        place: Part::Load,
        toml: |v| format!("[[phases]]\nduration-s = {v}\narrival = {{ kind = \"constant\", rate = 20 }}\n"),
    },
    Field {
        name: "phases[0].duration-ms",
        kind: Kind::U64,
        place: Part::Load,
        toml: |v| format!("[[phases]]\nduration-ms = {v}\narrival = {{ kind = \"poisson\", rate = 20 }}\n"),
    },
    Field {
        name: "arrival.rate (constant)",
        kind: Kind::F64,
        place: Part::Load,
        toml: |v| format!("[[phases]]\nduration-ms = 300\narrival = {{ kind = \"constant\", rate = {v} }}\n"),
    },
    Field {
        name: "arrival.rate (poisson)",
        kind: Kind::F64,
        place: Part::Load,
        toml: |v| format!("[[phases]]\nduration-ms = 300\narrival = {{ kind = \"poisson\", rate = {v} }}\n"),
    },
    Field {
        name: "arrival.burstiness (gamma)",
        kind: Kind::F64,
        place: Part::Load,
        toml: |v| {
            format!("[[phases]]\nduration-ms = 300\narrival = {{ kind = \"gamma\", rate = 20, burstiness = {v} }}\n")
        },
    },
    Field {
        name: "arrival.from (ramp)",
        kind: Kind::F64,
        place: Part::Load,
        toml: |v| format!("[[phases]]\nduration-ms = 300\narrival = {{ kind = \"ramp\", from = {v}, to = 20 }}\n"),
    },
    Field {
        name: "arrival.to (ramp, poisson)",
        kind: Kind::F64,
        place: Part::Load,
        toml: |v| {
            format!(
                "[[phases]]\nduration-ms = 300\narrival = {{ kind = \"ramp\", from = 0, to = {v}, poisson = true }}\n"
            )
        },
    },
    Field {
        name: "arrival.count (burst)",
        kind: Kind::U64,
        place: Part::Load,
        toml: |v| format!("[[phases]]\nduration-ms = 300\narrival = {{ kind = \"burst\", count = {v} }}\n"),
    },
    Field {
        name: "users.count",
        kind: Kind::U32,
        place: Part::Load,
        toml: |v| format!("[[phases]]\nduration-ms = 300\nusers = {{ count = {v} }}\n"),
    },
    Field {
        name: "users.think-ms",
        kind: Kind::U64,
        place: Part::Load,
        toml: |v| format!("[[phases]]\nduration-ms = 300\nusers = {{ count = 2, think-ms = {v} }}\n"),
    },
    Field {
        name: "phases[0].max-in-flight",
        kind: Kind::U32,
        place: Part::Load,
        toml: |v| format!("{PHASE}max-in-flight = {v}\n"),
    },
    Field {
        name: "phases[0].requests",
        kind: Kind::U64,
        place: Part::Load,
        toml: |v| format!("{PHASE}requests = {v}\n"),
    },
    Field {
        name: "mix[0].weight",
        kind: Kind::U32,
        place: Part::Mix,
        toml: |v| format!("weight = {v}\n"),
    },
    Field {
        name: "mix[0].prompt-chars",
        kind: Kind::U32,
        place: Part::Mix,
        toml: |v| format!("prompt-chars = {v}\n"),
    },
    Field {
        name: "mix[0].max-tokens",
        kind: Kind::U32,
        place: Part::Mix,
        toml: |v| format!("max-tokens = {v}\n"),
    },
    Field {
        name: "slo.ttft-ms",
        kind: Kind::F64,
        place: Part::Extra,
        toml: |v| format!("[slo]\nttft-ms = {v}\n[[checks]]\nkind = \"goodput\"\nmin = 0\n"),
    },
    Field {
        name: "checks[0].max-ms",
        kind: Kind::F64,
        place: Part::Extra,
        toml: |v| format!("[[checks]]\nkind = \"latency\"\nmetric = \"e2e\"\nmax-ms = {v}\n"),
    },
    Field {
        name: "checks[0].percentile",
        kind: Kind::F64,
        place: Part::Extra,
        toml: |v| format!("[[checks]]\nkind = \"latency\"\nmetric = \"ttft\"\npercentile = {v}\nmax-ms = 1000\n"),
    },
    Field {
        name: "checks[0].max (retry-storm)",
        kind: Kind::F64,
        place: Part::Extra,
        toml: |v| format!("[[checks]]\nkind = \"retry-storm\"\nmax = {v}\n"),
    },
    Field {
        name: "faults[0].at-ms",
        kind: Kind::U64,
        place: Part::Extra,
        toml: |v| {
            format!("[[faults]]\nat-ms = {v}\nprovider = \"up\"\nset = [{{ kind = \"status\", status = 503 }}]\n")
        },
    },
    Field {
        name: "sweep.step-duration-s",
        kind: Kind::F64,
        place: Part::Load,
        toml: |v| format!("[sweep]\nrates = [10, 20]\nstep-duration-s = {v}\n"),
    },
    Field {
        name: "sweep.rates[1]",
        kind: Kind::F64,
        place: Part::Load,
        toml: |v| format!("[sweep]\nrates = [1, {v}]\nstep-duration-s = 0.2\n"),
    },
    Field {
        name: "sweep.factor",
        kind: Kind::F64,
        place: Part::Load,
        toml: |v| format!("[sweep]\nfrom = 5\nto = 40\nfactor = {v}\nstep-duration-s = 0.2\n"),
    },
];

/// A mock, the built-in router, one mix entry, one phase (or a sweep), an
/// error-rate check, and `text` in `part`.
fn scenario_toml(part: Part, text: &str) -> String {
    let at = |p: Part| if p == part { text } else { "" };
    let load = if part == Part::Load { text } else { PHASE };
    format!(
        "schema = 1\n[meta]\nname = \"values\"\nseed = 1\n\
         [[providers]]\nname = \"up\"\ndialect = \"openai\"\n[providers.defaults]\nttft-ms = 2\nitl-ms = 1\noutput-tokens = 4\n\
         [router]\n[[router.providers]]\nname = \"up\"\ndialect = \"openai\"\nbase-url = \"mock:up\"\napi-key = \"k\"\n\
         [[router.models]]\nid = \"o/m\"\nproviders = [\"up\"]\nprompt = \"1\"\ncompletion = \"2\"\n\
         [[router.keys]]\nkey = \"sk\"\ncredits = \"100\"\n\
         [[mix]]\nmodel = \"o/m\"\nkey = \"sk\"\nstream = true\n{}\
         {load}\
         [[checks]]\nkind = \"error-rate\"\nmax = 1\n{}",
        at(Part::Mix),
        at(Part::Extra),
    )
}

/// Validates the scenario with `text` in `part`; if it validates, runs it
/// with every phase cut to [`PHASE_CAP`] (two phases at most, a sweep to
/// two steps) and a stop after [`RUN_STOP`].
async fn scenario_case(field: &Field<Part>, value: Raw) {
    let text = scenario_toml(field.place, &(field.toml)(&value.toml()));
    let mut scenario = match Scenario::parse(&text, std::path::Path::new("values.toml")) {
        Ok(scenario) => scenario,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    scenario.phases.truncate(2);
    for phase in &mut scenario.phases {
        phase.duration = phase.duration.min(PHASE_CAP);
        if let Load::Closed { think, .. } = &mut phase.load {
            *think = (*think).min(PHASE_CAP);
        }
    }
    if let Some(sweep) = &mut scenario.sweep {
        sweep.rates.truncate(2);
        sweep.refine = 0;
        sweep.step_duration = sweep.step_duration.min(PHASE_CAP);
    }
    let out = TempDir::new("values-run");
    let options = RunOptions {
        out: Some(out.path().to_path_buf()),
        ..RunOptions::default()
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(RUN_STOP).await;
        let _ = stop_tx.send(true);
    });
    let outcome = tokio::time::timeout(RUN_BOUND, Run::new(&scenario, options).execute(stop_rx))
        .await
        .unwrap_or_else(|_| panic!("{}: the run outlived {RUN_BOUND:?}", field.name));
    stopper.abort();
    assert!(
        // The test's own stop at RUN_STOP makes a run that outlives it `Stopped`.
        matches!(outcome.exit, Exit::Success | Exit::CheckFailed | Exit::Stopped),
        "{}: {:?} {:?}",
        field.name,
        outcome.exit,
        outcome.error
    );
}

proptest! {
    #![proptest_config(config(32))]

    /// Each of a scenario's own fields, at any value that validates: the
    /// scenario runs (cut short) to a verdict, without a panic, in bounded
    /// time.
    #[test]
    fn scenario_values_that_validate_run((field, value) in field_and_value(SCENARIO_FIELDS)) {
        on_own_runtime("values-scenario", scenario_case(field, value));
    }
}
