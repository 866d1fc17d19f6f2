//! The exports of a small scenario: two mocks, a model with two routes, a
//! free model, a lifecycle, a system prefix, three keys; each output read
//! back (the Portkey config as TOML and JSON, the LiteLLM YAML line by line).

use std::net::SocketAddr;
use std::path::Path;

use super::*;
use crate::scenario::Scenario;

const SCENARIO: &str = r#"
schema = 1
[meta]
name = "export"
[[providers]]
name = "oai"
dialect = "openai"
listen = "127.0.0.1:18201"
[[providers]]
name = "ant"
dialect = "anthropic"
listen = "0.0.0.0:18202"
[router]
clock = { start = "2026-01-10", speed = 3600 }
[router.retry]
attempts-per-provider = 4
cooldown-after = 2
cooldown-ms = 1500
deadline-ms = 12000
[[router.providers]]
name = "oai"
dialect = "openai"
base-url = "mock:oai"
api-key = "sk-up-oai"
[[router.providers]]
name = "ant"
dialect = "anthropic"
base-url = "mock:ant"
api-key = "sk-up-ant"
[[router.providers]]
name = "real"
dialect = "openai"
base-url = "http://10.1.2.3:8000/prefix"
api-key = "sk-real"
[[router.models]]
id = "openai/gpt-4o-mini"
providers = ["oai", { name = "ant", model = "claude-haiku" }]
prompt = "0.15"
completion = "0.60"
cache-read = "0.075"
system-prefix = "Be kind."
[[router.models]]
id = "openai/gpt-4o"
providers = ["real"]
prompt = "2.5"
completion = "10"
cache-write = "3.125"
deprecation = { announced = "2026-01-01", removed = "2026-02-01", replacement = "openai/gpt-4o-mini" }
[[router.models]]
id = "meta/llama:free"
providers = ["oai"]
[[router.keys]]
key = "sk-first"
credits = "10"
rpm = 60
[[router.keys]]
key = "sk-second"
label = "second"
credits = "0.5"
concurrency = 4
[[router.keys]]
key = "sk-byok"
byok = { provider = "ant", api-key = "sk-mine" }
[[mix]]
model = "openai/gpt-4o-mini"
key = "sk-first"
[[phases]]
duration-s = 1
arrival = { kind = "constant", rate = 1 }
"#;

fn scenario(text: &str) -> Scenario {
    Scenario::parse(text, Path::new("scenarios/export.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// The export of `scenario` for `router`.
fn exported(router: ExportFor, scenario: &Scenario, mock_ports: Option<u16>) -> Result<String, ExportError> {
    let mocks: Vec<(&str, SocketAddr)> = (scenario.mocks.iter())
        .map(|m| (m.config.name.as_str(), m.config.listen))
        .collect();
    let source = Source {
        file: &scenario.file,
        expect: scenario.expect.as_ref().unwrap(),
        mocks: &mocks,
        mock_ports,
    };
    export(router, &source)
}

/// The lines of `text` without comments and trailing comments.
fn code_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split("    #").next().unwrap_or(l).trim_end().to_string())
        .collect()
}

#[test]
fn litellm_gets_deployments_prices_fallbacks_retries_and_the_master_key() {
    let yaml = exported(ExportFor::Litellm, &scenario(SCENARIO), None).unwrap();
    let code = code_lines(&yaml);
    let expected = [
        "model_list:",
        "  - model_name: \"openai/gpt-4o-mini\"",
        "    litellm_params:",
        "      model: \"openai/gpt-4o-mini\"",
        "      api_base: \"http://127.0.0.1:18201/v1\"",
        "      api_key: \"sk-up-oai\"",
        "      input_cost_per_token: 0.00000015",
        "      output_cost_per_token: 0.0000006",
        "      cache_read_input_token_cost: 0.000000075",
        "      cache_creation_input_token_cost: 0.00000015",
        "  - model_name: \"openai/gpt-4o-mini@ant\"",
        "    litellm_params:",
        "      model: \"anthropic/claude-haiku\"",
        // 0.0.0.0 is reached on loopback; Anthropic's base has no /v1.
        "      api_base: \"http://127.0.0.1:18202\"",
        "      api_key: \"sk-up-ant\"",
        "      input_cost_per_token: 0.00000015",
        "      output_cost_per_token: 0.0000006",
        "      cache_read_input_token_cost: 0.000000075",
        "      cache_creation_input_token_cost: 0.00000015",
        "  - model_name: \"openai/gpt-4o\"",
        "    litellm_params:",
        "      model: \"openai/gpt-4o\"",
        "      api_base: \"http://10.1.2.3:8000/prefix/v1\"",
        "      api_key: \"sk-real\"",
        "      input_cost_per_token: 0.0000025",
        "      output_cost_per_token: 0.00001",
        "      cache_read_input_token_cost: 0.0000025",
        "      cache_creation_input_token_cost: 0.000003125",
        "  - model_name: \"meta/llama:free\"",
        "    litellm_params:",
        "      model: \"openai/llama\"",
        "      api_base: \"http://127.0.0.1:18201/v1\"",
        "      api_key: \"sk-up-oai\"",
        "      input_cost_per_token: 0",
        "      output_cost_per_token: 0",
        "      cache_read_input_token_cost: 0",
        "      cache_creation_input_token_cost: 0",
        "router_settings:",
        "  num_retries: 3",
        "  fallbacks: [{\"openai/gpt-4o-mini\": [\"openai/gpt-4o-mini@ant\"]}]",
        "  allowed_fails: 1000000",
        "  allowed_fails_policy:",
        "    RateLimitErrorAllowedFails: 1",
        "  cooldown_time: 1.5",
        "litellm_settings:",
        "  request_timeout: 12",
        "general_settings:",
        "  dangerously_permit_weak_or_unset_master_key: true",
    ];
    assert_eq!(code, expected, "{yaml}");
    // What LiteLLM cannot do is said, not dropped.
    let comments = yaml.replace("\n#  ", "");
    for said in [
        "`openai/gpt-4o` is announced for removal",
        "the system prefix \"Be kind.\"",
        "`:free` models are limited to 20 a minute",
        "key `sk-second` has 0.5 USD of prepaid credits",
        "key `sk-byok` brings its own `ant` key",
        "the calendar starts at 2026-01-10T00:00:00Z and runs 3600× fast",
        "the limits of key(s) `sk-first`, `sk-second`: without its database the proxy has no keys to hold them",
        "set master_key: \"sk-first\" instead",
        r#"{"key":"sk-second","key_alias":"second","max_parallel_requests":4}"#,
        "gauntlet run scenarios/export.toml --target http://127.0.0.1:4000/v1 --profile litellm",
    ] {
        assert!(comments.contains(said), "{said}:\n{yaml}");
    }
}

#[test]
fn portkey_gets_one_conditional_config_in_a_target_table() {
    let mut s = scenario(SCENARIO);
    s.pin_mock_ports(19_300).unwrap();
    let text = exported(ExportFor::Portkey, &s, Some(19_300)).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let target = &table["target"];
    assert_eq!(target["kind"].as_str(), Some("http"));
    assert_eq!(target["url"].as_str(), Some("http://127.0.0.1:8787/v1"));
    assert_eq!(target["profile"].as_str(), Some("portkey"));
    assert!(target.get("ready-url").is_none(), "the portkey profile says where");
    let header = target["headers"]["x-portkey-config"].as_str().unwrap();
    let config: serde_json::Value = serde_json::from_str(header).unwrap();
    let retry = serde_json::json!({
        "attempts": 3,
        "on_status_codes": [429, 500, 502, 503, 504, 529],
        "use_retry_after_header": true,
    });
    let expected = serde_json::json!({
        "strategy": {
            "mode": "conditional",
            "conditions": [
                { "query": { "params.model": { "$eq": "openai/gpt-4o-mini" } }, "then": "openai/gpt-4o-mini" },
                { "query": { "params.model": { "$eq": "openai/gpt-4o" } }, "then": "openai/gpt-4o" },
                { "query": { "params.model": { "$eq": "meta/llama:free" } }, "then": "meta/llama:free" },
            ],
        },
        "targets": [
            {
                "name": "openai/gpt-4o-mini",
                "strategy": {
                    "mode": "fallback",
                    "on_status_codes": [401, 403, 404, 429, 500, 501, 502, 503, 504, 505, 529],
                },
                "targets": [
                    {
                        "provider": "openai",
                        "custom_host": "http://127.0.0.1:19300/v1",
                        "api_key": "sk-up-oai",
                        "override_params": { "model": "gpt-4o-mini" },
                        "retry": retry,
                    },
                    {
                        "provider": "anthropic",
                        "custom_host": "http://127.0.0.1:19301/v1",
                        "api_key": "sk-up-ant",
                        "override_params": { "model": "claude-haiku" },
                        "retry": retry,
                    },
                ],
            },
            {
                "name": "openai/gpt-4o",
                "provider": "openai",
                "custom_host": "http://10.1.2.3:8000/prefix/v1",
                "api_key": "sk-real",
                "override_params": { "model": "gpt-4o" },
                "retry": retry,
            },
            {
                "name": "meta/llama:free",
                "provider": "openai",
                "custom_host": "http://127.0.0.1:19300/v1",
                "api_key": "sk-up-oai",
                "override_params": { "model": "llama" },
                "retry": retry,
            },
        ],
    });
    assert_eq!(config, expected, "{text}");
    let comments = text.replace("\n#  ", "");
    for said in [
        "gauntlet mock --config scenarios/export.toml --mock-ports 19300",
        "--mock-ports 19300 --target http://127.0.0.1:8787/v1 --profile portkey --header 'x-portkey-config: {",
        "a provider that keeps answering 429 is not cooled down (cooldown-after 2, 1.5 s)",
        "`openai/gpt-4o` is announced for removal",
        "key `sk-first` has 10 USD of prepaid credits",
    ] {
        assert!(comments.contains(said), "{said}:\n{text}");
    }
}

#[test]
fn a_mock_on_a_random_port_cannot_be_pointed_at() {
    let text = SCENARIO.replace("listen = \"0.0.0.0:18202\"\n", "");
    let s = scenario(&text);
    for router in [ExportFor::Litellm, ExportFor::Portkey] {
        let e = exported(router, &s, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "router.providers[1] (`ant`) calls mock `ant`, which listens on a random port (127.0.0.1:0): \
             give the mock a fixed `listen`, or --mock-ports BASE here and to `gauntlet run` (or `gauntlet mock`)"
        );
    }
    // --mock-ports gives it one.
    let mut s = s;
    s.pin_mock_ports(30_000).unwrap();
    let yaml = exported(ExportFor::Litellm, &s, Some(30_000)).unwrap();
    assert!(yaml.contains("api_base: \"http://127.0.0.1:30001\""), "{yaml}");
}

#[test]
fn amounts_and_durations_are_exact_decimals() {
    let price = |text: &str| text.parse::<TokenPrice>().unwrap();
    assert_eq!(per_token(price("0.15")), "0.00000015");
    assert_eq!(per_token(price("3")), "0.000003");
    assert_eq!(per_token(price("0.000001")), "0.000000000001");
    assert_eq!(per_token(price("1234.5")), "0.0012345");
    assert_eq!(per_token(price("0")), "0");
    assert_eq!(seconds(Duration::from_millis(1500)), "1.5");
    assert_eq!(seconds(Duration::from_millis(10_000)), "10");
    assert_eq!(seconds(Duration::from_millis(40)), "0.04");
}

/// `scenarios/external/litellm.yaml` is what `gauntlet export-config --for
/// litellm scenarios/external/litellm.toml` writes (run it again after
/// changing either).
#[test]
fn the_shipped_litellm_config_is_the_export_of_its_scenario() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let s = Scenario::load(&root.join("scenarios/external/litellm.toml")).unwrap_or_else(|e| panic!("{e}"));
    let mocks: Vec<(&str, SocketAddr)> = (s.mocks.iter())
        .map(|m| (m.config.name.as_str(), m.config.listen))
        .collect();
    let source = Source {
        file: Path::new("scenarios/external/litellm.toml"),
        expect: s.expect.as_ref().unwrap(),
        mocks: &mocks,
        mock_ports: None,
    };
    let shipped = std::fs::read_to_string(root.join("scenarios/external/litellm.yaml")).unwrap();
    assert_eq!(export(ExportFor::Litellm, &source).unwrap(), shipped);
}
