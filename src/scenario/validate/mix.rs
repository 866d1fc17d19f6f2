//! `[[mix]]`: what each request asks for (model, key, stream, prompt size,
//! tokens, tools) and how often.

use std::collections::HashSet;

use mock_providers::config::ConfigError;

use super::{MAX_TOKENS, PROMPT_CHARS, WEIGHT, count, err};
use crate::scenario::MixEntry;
use crate::scenario::raw::RawMix;
use crate::target::{self, Expectations};

/// Validates `[[mix]]`; with a `[router]` table, each model and key must be
/// one of it.
pub fn mix(raw: &[RawMix], expect: Option<&Expectations>) -> Result<Vec<MixEntry>, ConfigError> {
    let router_models: Option<HashSet<String>> =
        expect.map(|e| e.config.catalog.models().iter().map(|m| m.id.to_string()).collect());
    let router_keys: Option<HashSet<String>> =
        expect.map(|e| e.config.keys.iter().map(|k| k.key.to_string()).collect());
    if raw.is_empty() {
        return Err(err(
            "mix",
            "a scenario needs at least one [[mix]] entry (model, key, ...)",
        ));
    }
    let mut mix = Vec::with_capacity(raw.len());
    let mut mix_names = HashSet::new();
    for (i, m) in raw.iter().enumerate() {
        let path = format!("mix[{i}]");
        let name = m.name.clone().unwrap_or_else(|| format!("mix-{i}"));
        if !mix_names.insert(name.clone()) {
            return Err(err(format!("{path}.name"), format!("`{name}` is used twice")));
        }
        let weight = count(&format!("{path}.weight"), WEIGHT, m.weight.unwrap_or(1))?;
        let prompt_chars = count(
            &format!("{path}.prompt-chars"),
            PROMPT_CHARS,
            m.prompt_chars.unwrap_or(64),
        )?;
        let max_tokens = m
            .max_tokens
            .map(|t| count(&format!("{path}.max-tokens"), MAX_TOKENS, t))
            .transpose()?;
        if let Some(models) = &router_models
            && !models.contains(&m.model)
        {
            let known: Vec<&str> = models.iter().map(String::as_str).collect();
            let hint = mock_providers::config::closest(&m.model, known)
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            return Err(err(
                format!("{path}.model"),
                format!("`{}` is not a [[router.models]] id{hint}", m.model),
            ));
        }
        if let Some(keys) = &router_keys
            && !keys.contains(&m.key)
        {
            return Err(err(
                format!("{path}.key"),
                format!("`{}` is not a [[router.keys]] key", m.key),
            ));
        }
        let api = m.api.unwrap_or_default();
        let cache_control = m.cache_control.unwrap_or(false);
        if cache_control && api != crate::load::plan::Api::Messages {
            return Err(err(
                format!("{path}.cache-control"),
                "`cache-control = true` applies to `api = \"messages\"` entries only",
            ));
        }
        let mut headers = Vec::new();
        for (name, value) in m.headers.iter().flatten() {
            let header =
                target::header(name, value).map_err(|e| err(format!("{path}.headers.{name}"), e.to_string()))?;
            headers.push(header);
        }
        mix.push(MixEntry {
            name,
            weight,
            api,
            model: m.model.clone(),
            key: m.key.clone(),
            stream: m.stream.unwrap_or(false),
            prompt_chars,
            system: m.system.clone(),
            max_tokens,
            tools: m.tools.unwrap_or(false),
            cache_control,
            headers,
        });
    }
    Ok(mix)
}
