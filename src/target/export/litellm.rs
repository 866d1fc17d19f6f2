//! A LiteLLM proxy `config.yaml` (`litellm --config FILE`).
//!
//! - Each route of a model is a deployment (`model_list` entry, its
//!   `litellm_params`: `model` = `openai/<upstream id>` or
//!   `anthropic/<upstream id>`, `api_base` at the mock (`/v1` for the
//!   OpenAI dialect, which LiteLLM appends `/chat/completions` to; the
//!   root for Anthropic, which it appends `/v1/messages` to), `api_key`,
//!   and every price per token: cache prices too, since without them LiteLLM
//!   prices cached tokens from its own cost map by the model's name).
//! - A model's first route keeps the model id as its `model_name`; each
//!   further route is a group of its own (`<id>@<provider>`) that
//!   `router_settings.fallbacks` lists, in order: LiteLLM retries a group
//!   `num_retries` times and then moves to its fallbacks, as the reference
//!   router retries a provider and then falls back.
//! - `router_settings`: `num_retries` (attempts per provider − 1), the
//!   cooldown (`allowed_fails_policy.RateLimitErrorAllowedFails` = the 429s
//!   a provider may give before it cools down, `cooldown_time`);
//!   `litellm_settings.request_timeout` from the deadline;
//!   `general_settings.master_key` = the scenario's key, or, for several
//!   keys (which LiteLLM knows only with its database), no key at all.
//!
//! Strings are written as JSON strings, which YAML reads as double-quoted
//! scalars; numbers as exact decimals.

use std::fmt::Write as _;

use super::{Source, Upstream, command_line, comment, not_expressible, per_token, seconds};
use crate::router::catalog::Model;
use crate::router::config::{Dialect, KeyConfig, RouterConfig};

/// The whole file.
pub(super) fn config(source: &Source<'_>, upstreams: &[Upstream]) -> String {
    let config = &source.expect.config;
    let mut out = String::with_capacity(4096);
    header(&mut out, source, upstreams);
    out.push_str("model_list:\n");
    for model in config.catalog.models() {
        deployments(&mut out, model, upstreams);
    }
    router_settings(&mut out, config, upstreams);
    litellm_settings(&mut out, config);
    general_settings(&mut out, config);
    out.push('\n');
    comment(
        &mut out,
        "Not expressible in a LiteLLM config (the checks that judge these will fail or be skipped against it):",
    );
    for note in not_expressible(config).iter().chain(&litellm_notes(config)) {
        comment(&mut out, &format!("- {note}."));
    }
    out
}

/// A string as YAML reads it: a JSON string is a double-quoted scalar.
fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// The comment lines at the top: what it is, where from, how to start it.
fn header(out: &mut String, source: &Source<'_>, upstreams: &[Upstream]) {
    let file = source.file.display();
    comment(
        out,
        &format!(
            "LiteLLM proxy configuration for the [router] table of {file}, written by `gauntlet export-config \
             --for litellm`."
        ),
    );
    for u in upstreams {
        comment(
            out,
            &format!("Upstream `{}` ({}): {}", u.name, dialect_name(u.dialect), u.root),
        );
    }
    comment(
        out,
        "Start the proxy, then the run (which starts the mocks where the proxy expects them):",
    );
    command_line(
        out,
        "LITELLM_LOCAL_MODEL_COST_MAP=True litellm --config THIS_FILE --host 127.0.0.1 --port 4000",
    );
    command_line(out, &source.run_command(PROXY_URL, "litellm", ""));
    comment(out, "To try the proxy by hand, serve the mocks alone:");
    command_line(out, &source.mock_command());
}

/// Where `litellm --port 4000` serves the OpenAI API.
const PROXY_URL: &str = "http://127.0.0.1:4000/v1";

fn dialect_name(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::OpenAi => "openai",
        Dialect::Anthropic => "anthropic",
    }
}

/// The name of the group of a model's route number `route` (0: the model's id).
fn group_name(model: &Model, route: usize, upstreams: &[Upstream]) -> String {
    match route {
        0 => model.id.to_string(),
        _ => {
            let provider = (model.routes.get(route))
                .and_then(|r| upstreams.get(r.provider))
                .map_or("?", |u| u.name.as_str());
            format!("{}@{provider}", model.id)
        }
    }
}

/// One `model_list` entry per route of `model`.
fn deployments(out: &mut String, model: &Model, upstreams: &[Upstream]) {
    if model.routes.len() > 1 {
        let _ = writeln!(
            out,
            "  # {}: {} providers, tried in this order (router_settings.fallbacks)",
            model.id,
            model.routes.len()
        );
    }
    let p = &model.prices;
    for (i, route) in model.routes.iter().enumerate() {
        let Some(upstream) = upstreams.get(route.provider) else {
            continue;
        };
        let (prefix, api_base) = match upstream.dialect {
            Dialect::OpenAi => ("openai", format!("{}/v1", upstream.root)),
            Dialect::Anthropic => ("anthropic", upstream.root.clone()),
        };
        let _ = writeln!(out, "  - model_name: {}", quoted(&group_name(model, i, upstreams)));
        out.push_str("    litellm_params:\n");
        let _ = writeln!(
            out,
            "      model: {}    # sends model {}",
            quoted(&format!("{prefix}/{}", route.upstream_model)),
            quoted(&route.upstream_model)
        );
        let _ = writeln!(out, "      api_base: {}", quoted(&api_base));
        let _ = writeln!(out, "      api_key: {}", quoted(&upstream.api_key));
        for (field, price, what) in [
            ("input_cost_per_token", p.prompt, "prompt"),
            ("output_cost_per_token", p.completion, "completion"),
            ("cache_read_input_token_cost", p.cache_read, "cache-read"),
            ("cache_creation_input_token_cost", p.cache_write, "cache-write"),
        ] {
            let _ = writeln!(
                out,
                "      {field}: {}    # {what} {} USD per million tokens",
                per_token(price),
                price.usd_per_million()
            );
        }
    }
}

/// `router_settings`: retries, fallbacks between a model's routes, cooldown.
fn router_settings(out: &mut String, config: &RouterConfig, upstreams: &[Upstream]) {
    let r = &config.retry;
    let attempts = r.attempts_per_provider().get();
    let after = r.cooldown_after().get();
    out.push_str("\nrouter_settings:\n");
    let _ = writeln!(
        out,
        "  num_retries: {}    # attempts-per-provider {attempts}: the first and {} retries",
        attempts - 1,
        attempts - 1
    );
    let fallbacks: Vec<String> = (config.catalog.models().iter())
        .filter(|m| m.routes.len() > 1)
        .map(|m| {
            let rest: Vec<String> = (1..m.routes.len())
                .map(|i| quoted(&group_name(m, i, upstreams)))
                .collect();
            format!("{{{}: [{}]}}", quoted(&m.id), rest.join(", "))
        })
        .collect();
    if !fallbacks.is_empty() {
        let _ = writeln!(out, "  fallbacks: [{}]", fallbacks.join(", "));
    }
    out.push_str(
        "  allowed_fails: 1000000    # other failures never cool a provider down (the scenario's router cools down \
         on 429s alone)\n",
    );
    out.push_str("  allowed_fails_policy:\n");
    let _ = writeln!(
        out,
        "    RateLimitErrorAllowedFails: {}    # cooldown-after {after}: {} 429s pass, the next cools the provider down",
        after - 1,
        after - 1
    );
    let _ = writeln!(
        out,
        "  cooldown_time: {}    # seconds (cooldown-ms)",
        seconds(r.cooldown())
    );
}

/// `litellm_settings.request_timeout`: the deadline.
fn litellm_settings(out: &mut String, config: &RouterConfig) {
    let _ = writeln!(
        out,
        "\nlitellm_settings:\n  request_timeout: {}    # seconds: the scenario's deadline (LiteLLM's is per upstream call)",
        seconds(config.retry.deadline())
    );
}

/// `general_settings`: the one key as the master key; with several, none.
/// LiteLLM without its database knows no key but its master key, and
/// refuses to start without one unless told that this is on purpose.
fn general_settings(out: &mut String, config: &RouterConfig) {
    let Some((first, others)) = config.keys.split_first() else {
        out.push_str("\ngeneral_settings:\n");
        out.push_str("  dangerously_permit_weak_or_unset_master_key: true    # the scenario has no [[router.keys]]\n");
        return;
    };
    out.push_str("\ngeneral_settings:\n");
    if others.is_empty() {
        let _ = writeln!(out, "  master_key: {}    # the scenario's key", quoted(&first.key));
        return;
    }
    comment(
        out,
        &format!(
            "The scenario's requests carry {} keys, and LiteLLM without its database knows none but its \
             master key: the proxy runs with no key at all, accepting any, which it does only with the next \
             line. Keep such a proxy on loopback.",
            config.keys.len()
        ),
    );
    out.push_str("  dangerously_permit_weak_or_unset_master_key: true\n");
    comment(
        out,
        &format!(
            "With its database (general_settings.database_url), set master_key: {} instead and create the \
             others with it:",
            quoted(&first.key)
        ),
    );
    for k in others {
        comment(
            out,
            &format!(
                "  curl -X POST http://127.0.0.1:4000/key/generate -H 'authorization: Bearer {}' -d '{}'",
                first.key,
                key_body(k)
            ),
        );
    }
}

/// The `/key/generate` body of a key: the key, its label, its limits.
fn key_body(k: &KeyConfig) -> String {
    let mut body = serde_json::json!({ "key": &*k.key, "key_alias": k.label });
    if let Some(rpm) = k.rpm {
        body["rpm_limit"] = rpm.get().into();
    }
    if let Some(n) = k.concurrency {
        body["max_parallel_requests"] = n.get().into();
    }
    body.to_string()
}

/// What LiteLLM does differently from the scenario's router.
fn litellm_notes(config: &RouterConfig) -> Vec<String> {
    let r = &config.retry;
    let mut notes = vec![
        format!(
            "the cooldown counts 429s per deployment over {} s (cooldown_time), successes between them \
             included, where the scenario's router counts {} in a row; other failures cool a deployment \
             down by LiteLLM's own rule",
            seconds(r.cooldown()),
            r.cooldown_after()
        ),
        format!(
            "the first-byte timeout of {} s per attempt: LiteLLM's request_timeout bounds each call",
            seconds(r.first_byte_timeout())
        ),
    ];
    let limited: Vec<&str> = (config.keys.iter())
        .filter(|k| k.rpm.is_some() || k.concurrency.is_some())
        .map(|k| &*k.key)
        .collect();
    match (config.keys.as_slice(), limited.as_slice()) {
        (_, []) => {}
        ([only], _) => notes.push(format!(
            "key `{}` is the master key, which no rpm or concurrency limit applies to",
            only.key
        )),
        _ => notes.push(format!(
            "the limits of key(s) {}: without its database the proxy has no keys to hold them",
            limited.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
        )),
    }
    if config.keys.iter().any(|k| k.concurrency.is_some()) {
        notes.push(
            "a key's concurrency is per key and model in the scenario's router, per key in LiteLLM \
             (max_parallel_requests)"
                .to_string(),
        );
    }
    notes
}
