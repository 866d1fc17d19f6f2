//! Portkey's gateway: it reads no file of models; each request carries its
//! routing in an `x-portkey-config` header (a JSON config). The export is
//! the scenario `[target]` table that sends that header with every request:
//!
//! - one config for every model: `strategy.mode = "conditional"`, routing on
//!   the request's `params.model` to a target named after the model id;
//! - a model's target: its route (`provider` `openai` or `anthropic`,
//!   `custom_host` = the mock's root + `/v1`, which Portkey appends
//!   `/chat/completions` or `/messages` to, `api_key`,
//!   `override_params.model` = the upstream id, and `retry` with `attempts`
//!   = attempts per provider − 1 on the statuses the reference router
//!   retries, honouring a 429's Retry-After), or, for several routes, a
//!   `fallback` strategy over them in order, on the statuses the reference
//!   router falls back on.
//!
//! Each model's own config (for a `[[mix]]` entry's headers) and the
//! combined one, indented, follow as comments.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Source, Upstream, command_line, comment, not_expressible, seconds, shell_quoted};
use crate::router::catalog::{Model, Route};
use crate::router::config::{Dialect, RouterConfig};

/// Where the gateway listens by default.
pub const GATEWAY_URL: &str = "http://127.0.0.1:8787/v1";
/// The statuses the reference router retries on one provider.
const RETRY_ON: [u16; 6] = [429, 500, 502, 503, 504, 529];
/// The statuses the reference router falls back to the next provider on
/// (after its retries, for those it retries).
const FALL_BACK_ON: [u16; 11] = [401, 403, 404, 429, 500, 501, 502, 503, 504, 505, 529];

/// The whole output: comments, then the `[target]` table.
pub(super) fn config(source: &Source<'_>, upstreams: &[Upstream]) -> String {
    let config = &source.expect.config;
    let combined = combined(config, upstreams);
    let mut out = String::with_capacity(8192);
    header(&mut out, source, upstreams);
    out.push_str("[target]\nkind = \"http\"\n");
    let _ = writeln!(out, "url = \"{GATEWAY_URL}\"    # where the gateway listens by default");
    out.push_str("profile = \"portkey\"    # no cost, no balance (the billing checks are skipped); ready at /\n");
    let header = toml::Value::String(combined.to_string());
    let _ = writeln!(out, "headers = {{ \"x-portkey-config\" = {header} }}");
    out.push('\n');
    comment(
        &mut out,
        "Or, without editing the scenario, start the gateway and then the run:",
    );
    // The npm package alone answers every stream 500: install it with its own
    // locked dependencies and patches (gauntlet's .ci/install-routers does).
    command_line(
        &mut out,
        "node node_modules/@portkey-ai/gateway/build/start-server.js --port=8787 --headless",
    );
    let flag = shell_quoted(&format!("x-portkey-config: {combined}"));
    command_line(
        &mut out,
        &source.run_command(GATEWAY_URL, "portkey", &format!(" --header {flag}")),
    );
    out.push('\n');
    comment(&mut out, "The config, indented:");
    let pretty = serde_json::to_string_pretty(&combined).unwrap_or_default();
    for line in pretty.lines() {
        let _ = writeln!(out, "#   {line}");
    }
    out.push('\n');
    comment(
        &mut out,
        "Each model's own config, for the headers of the [[mix]] entries that ask for it instead:",
    );
    for model in config.catalog.models() {
        let _ = writeln!(out, "#   {}: {}", model.id, model_target(model, config, upstreams));
    }
    out.push('\n');
    comment(&mut out, "Not expressible in a Portkey gateway config:");
    for note in not_expressible(config).iter().chain(&portkey_notes(config)) {
        comment(&mut out, &format!("- {note}."));
    }
    out
}

/// The comment lines at the top: what it is, where from, how to use it.
fn header(out: &mut String, source: &Source<'_>, upstreams: &[Upstream]) {
    let file = source.file.display();
    comment(
        out,
        &format!(
            "Portkey gateway settings for the [router] table of {file}, written by `gauntlet export-config \
             --for portkey`. The gateway reads no file of models: every request carries its routing in an \
             x-portkey-config header, which the [target] table below sends. Replace the [target] table of \
             the scenario with it (or pass the header with `gauntlet run --header`)."
        ),
    );
    for u in upstreams {
        comment(out, &format!("Upstream `{}`: {}", u.name, u.root));
    }
    comment(
        out,
        "The run starts the mocks where the config expects them; to try the gateway by hand, serve them alone:",
    );
    command_line(out, &source.mock_command());
    out.push('\n');
}

/// One config for every model, routing on the request's model.
fn combined(config: &RouterConfig, upstreams: &[Upstream]) -> Value {
    let models = config.catalog.models();
    let conditions: Vec<Value> = (models.iter())
        .map(|m| json!({ "query": { "params.model": { "$eq": &*m.id } }, "then": &*m.id }))
        .collect();
    let targets: Vec<Value> = (models.iter())
        .map(|m| {
            let mut target = model_target(m, config, upstreams);
            if let Value::Object(fields) = &mut target {
                fields.insert("name".into(), Value::from(&*m.id));
            }
            target
        })
        .collect();
    json!({ "strategy": { "mode": "conditional", "conditions": conditions }, "targets": targets })
}

/// A model's target: its one route, or a fallback over its routes.
fn model_target(model: &Model, config: &RouterConfig, upstreams: &[Upstream]) -> Value {
    let retries = config.retry.attempts_per_provider().get() - 1;
    let leaves: Vec<Value> = (model.routes.iter())
        .filter_map(|route| Some(leaf(upstreams.get(route.provider)?, route, retries)))
        .collect();
    match <[Value; 1]>::try_from(leaves) {
        Ok([one]) => one,
        Err(leaves) => json!({
            "strategy": { "mode": "fallback", "on_status_codes": FALL_BACK_ON },
            "targets": leaves,
        }),
    }
}

/// One route: a provider at the mock, its key, the upstream model, retries.
fn leaf(upstream: &Upstream, route: &Route, retries: u32) -> Value {
    let provider = match upstream.dialect {
        Dialect::OpenAi => "openai",
        Dialect::Anthropic => "anthropic",
    };
    let mut leaf = json!({
        "provider": provider,
        "custom_host": format!("{}/v1", upstream.root),
        "api_key": upstream.api_key,
        "override_params": { "model": &*route.upstream_model },
    });
    if retries > 0 {
        // Without `use_retry_after_header` the gateway ignores the
        // upstream's Retry-After and waits its own 1 s, 2 s, 4 s…
        leaf["retry"] = json!({ "attempts": retries, "on_status_codes": RETRY_ON, "use_retry_after_header": true });
    }
    leaf
}

/// What Portkey's gateway does differently from the scenario's router.
fn portkey_notes(config: &RouterConfig) -> Vec<String> {
    let r = &config.retry;
    vec![
        format!(
            "a provider that keeps answering 429 is not cooled down (cooldown-after {}, {} s): the open-source \
             gateway has no cooldown",
            r.cooldown_after(),
            seconds(r.cooldown())
        ),
        "the backoff: retries wait 1 s, 2 s, 4 s… (async-retry without jitter), whatever the scenario's \
         [router.retry] says; a 429's Retry-After replaces the wait (`use_retry_after_header`, which needs the \
         gateway's own patches/ applied: the npm package alone answers such a 429 with a 500), and one of 60 s \
         or more ends the retries"
            .to_string(),
        format!(
            "the deadline of {} s per request and the first-byte timeout of {} s per attempt: \
             `request_timeout` would bound a whole attempt, streamed body included",
            seconds(r.deadline()),
            seconds(r.first_byte_timeout())
        ),
        "a model the config does not name is refused by the gateway (no target resolves), not answered 404".to_string(),
        "the keys: the gateway sends each upstream's own key and ignores the client's, so no key is refused \
         and no key limit applies"
            .to_string(),
    ]
}
