//! The TOML fixtures under `tests/fixtures/`, read at compile time, and the
//! one way a test varies one: [`edit`].
//!
//! A router stack's file holds `[[providers]]` (mocks on `127.0.0.1:0`) and
//! a `[router]` whose providers say `base-url = "mock:NAME"`, which
//! [`crate::support::Stack::start`] resolves; a test that starts the mocks
//! itself edits `mock:NAME` into their URLs.

macro_rules! fixture {
    ($path:literal) => {
        include_str!(concat!("../fixtures/", $path))
    };
}

/// Two mocks (`oai`, `ant`) and a router with a key `sk-a`, for tests that
/// need nothing special. Delays are small.
pub const BASIC: &str = fixture!("router/basic.toml");
/// The router's HTTP API: a small body limit, a key with a label and one with no credit.
pub const API: &str = fixture!("router/api.toml");
/// Billing: seeded token counts, reasoning, silent and failing models, BYOK and poor keys.
pub const BILLING: &str = fixture!("router/billing.toml");
/// The deliberate defects: paced, limited and deprecated models on a fixed clock.
pub const DEFECTS: &str = fixture!("router/defects.toml");
/// The mock behind the limits tests; their `[router]` goes between it and [`LIMITS_ROUTES`].
pub const LIMITS_MOCKS: &str = fixture!("router/limits-mocks.toml");
/// The limits tests' router providers and models (one free).
pub const LIMITS_ROUTES: &str = fixture!("router/limits-routes.toml");
/// The mock behind the model-lifecycle tests.
pub const LIFECYCLE_MOCKS: &str = fixture!("router/lifecycle-mocks.toml");
/// Deprecated, removed and future models; the `[router]` with its clock goes before.
pub const LIFECYCLE_ROUTES: &str = fixture!("router/lifecycle-routes.toml");
/// Longer streams, for killing a router with some in flight.
pub const LEDGER_MOCKS: &str = fixture!("router/ledger-mocks.toml");
/// A router with a durable ledger at `{ledger}` and a key `sk-crash`.
pub const LEDGER_ROUTER: &str = fixture!("router/ledger-router.toml");
/// Slow enough mocks to see streaming pass through the in-process connector.
pub const IN_PROCESS_MOCKS: &str = fixture!("router/in-process-mocks.toml");
/// The router in front of [`IN_PROCESS_MOCKS`].
pub const IN_PROCESS_ROUTER: &str = fixture!("router/in-process-router.toml");
/// The models (and their faults) every mock of the streaming tests serves.
pub const STREAMING_MODELS: &str = fixture!("router/streaming-models.toml");

/// The tool-calling mock `openai_sdk.py tools` expects.
pub const SDK_OPENAI_TOOLS: &str = fixture!("sdk/openai-tools.toml");
/// The tool-calling mock `anthropic_sdk.py tools` expects.
pub const SDK_ANTHROPIC_TOOLS: &str = fixture!("sdk/anthropic-tools.toml");
/// The mocks behind the router of `router_sdk.py`.
pub const SDK_ROUTER_MOCKS: &str = fixture!("sdk/router-mocks.toml");
/// The router of `router_sdk.py` (its constants name these models and the key).
pub const SDK_ROUTER: &str = fixture!("sdk/router.toml");
/// The mocks behind the router of `router_messages_sdk.py` (tool-calling models in both dialects).
pub const SDK_MESSAGES_MOCKS: &str = fixture!("sdk/messages-mocks.toml");
/// The router of `router_messages_sdk.py` (its constants name these models and keys).
pub const SDK_MESSAGES_ROUTER: &str = fixture!("sdk/messages-router.toml");

/// A mock config with a misspelt key on line 7.
pub const CLI_TYPO: &str = fixture!("cli/typo.toml");
/// A mock config with a share out of range.
pub const CLI_OUT_OF_RANGE: &str = fixture!("cli/out-of-range.toml");

/// A two-second scenario: both dialects, streamed and whole, through the
/// built-in router, with checks that pass on any machine.
pub const RUN: &str = fixture!("scenarios/run.toml");
/// A scenario whose mock listens on `{provider_port}` and whose router (for
/// a separate `gauntlet router` process) on `{router_port}`.
pub const RUN_HTTP: &str = fixture!("scenarios/run-http.toml");
/// A warm-up phase the mock fails every request of (retried by the router),
/// then a measured phase with the fault cleared, and checks that would fail
/// on the warm-up's requests.
pub const WARM_UP: &str = fixture!("scenarios/warm-up.toml");
/// One mock `up` behind the built-in router, a key `sk`, one mix entry; a
/// test adds its phases or sweep and checks.
pub const CAPACITY: &str = fixture!("scenarios/capacity.toml");

/// `text` with every `from` replaced by `to`; fails the test if `text` has
/// no `from`, so a fixture that changes cannot silently drop an edit.
pub fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the fixture has no `{from}`:\n{text}");
    text.replace(from, to)
}
