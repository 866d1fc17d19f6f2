//! API keys: what a key string may be, the settings the ledger stores for
//! each key, and how the config file's keys meet the ones already stored.
//!
//! The ledger is the record of every key it has: its money and its settings
//! (label, limits, BYOK), whether the key came from the config file or from
//! `POST /admin/keys`, and whatever `PATCH /admin/keys/KEY` changed since. The
//! config file *seeds* a key the first time the router sees it (with its
//! `credits` as the first purchase). For a key the ledger already has, the
//! config file changes nothing: its credits are never reset, and where the
//! file's label, limits or BYOK differ from the stored ones, the stored ones
//! apply and the router says so at start, one line per difference. Change a
//! stored key with `PATCH /admin/keys/KEY`.

use std::num::NonZeroU32;
use std::sync::Arc;

use super::config::{Byok, KeyConfig, RouterConfig};
use super::ledger::{KeySettings, StoredByok};
use super::pricing::Picodollars;

/// The longest key accepted.
pub const MAX_KEY_BYTES: usize = 256;
/// The longest label accepted.
pub const MAX_LABEL_BYTES: usize = 256;

/// Why a key string cannot be a key: `None` if it can. A key travels in an
/// `Authorization: Bearer` header and in admin paths, so it is printable
/// ASCII without whitespace or `/`, and at most [`MAX_KEY_BYTES`] long.
pub fn key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("must not be empty".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return Some(format!("is {} bytes; at most {MAX_KEY_BYTES} are allowed", key.len()));
    }
    key.char_indices()
        .find(|&(_, c)| !c.is_ascii_graphic() || c == '/')
        .map(|(at, c)| {
            format!(
                "has {} at byte {at}: a key is printable ASCII without whitespace or `/`",
                c.escape_default()
            )
        })
}

/// Why a label cannot be a label: `None` if it can (no control characters,
/// at most [`MAX_LABEL_BYTES`]).
pub fn label_problem(label: &str) -> Option<String> {
    if label.len() > MAX_LABEL_BYTES {
        return Some(format!(
            "is {} bytes; at most {MAX_LABEL_BYTES} are allowed",
            label.len()
        ));
    }
    label
        .chars()
        .find(|c| c.is_control())
        .map(|c| format!("has the control character {}", c.escape_default()))
}

/// The settings the ledger stores for a configured key.
pub fn settings_of(key: &KeyConfig, config: &RouterConfig) -> KeySettings {
    KeySettings {
        label: key.label.clone(),
        rpm: key.rpm.map(NonZeroU32::get),
        concurrency: key.concurrency.map(NonZeroU32::get),
        in_flight_budget: key.in_flight_budget.map(|budget| budget.0),
        byok: key.byok.as_ref().map(|byok| StoredByok {
            provider: config
                .providers
                .get(byok.provider)
                .map_or_else(String::new, |p| p.name.to_string()),
            api_key: byok.api_key.to_string(),
        }),
    }
}

/// The key configuration the router serves `key` with, from its stored
/// settings; an error when they name a provider the config no longer has.
pub fn key_config(key: &Arc<str>, settings: &KeySettings, config: &RouterConfig) -> Result<KeyConfig, String> {
    let byok = match &settings.byok {
        None => None,
        Some(stored) => {
            let provider = config
                .providers
                .iter()
                .position(|p| *p.name == *stored.provider)
                .ok_or_else(|| {
                    format!(
                        "key `{key}` brings its own key for provider `{}`, which the config no longer has",
                        stored.provider
                    )
                })?;
            Some(Byok {
                provider,
                api_key: stored.api_key.as_str().into(),
            })
        }
    };
    Ok(KeyConfig {
        key: Arc::clone(key),
        label: settings.label.clone(),
        credits: Picodollars::ZERO,
        rpm: settings.rpm.and_then(NonZeroU32::new),
        concurrency: settings.concurrency.and_then(NonZeroU32::new),
        in_flight_budget: settings.in_flight_budget.map(Picodollars),
        byok,
    })
}

/// Where the config file says something else than the ledger about a
/// stored key: one line per setting.
pub fn differences(key: &str, file: &KeySettings, stored: &KeySettings) -> Vec<String> {
    fn show<T: std::fmt::Debug>(value: &Option<T>) -> String {
        value.as_ref().map_or_else(|| "none".to_string(), |v| format!("{v:?}"))
    }
    let mut lines = Vec::new();
    let mut differ = |what: &str, file: String, stored: String| {
        if file != stored {
            lines.push(format!(
                "key `{key}`: the config says {what} = {file} but the ledger has {stored}; the ledger's applies (change it with PATCH /admin/keys/{key})"
            ));
        }
    };
    differ("label", format!("{:?}", file.label), format!("{:?}", stored.label));
    differ("rpm", show(&file.rpm), show(&stored.rpm));
    differ("concurrency", show(&file.concurrency), show(&stored.concurrency));
    differ(
        "in-flight-budget",
        show(&file.in_flight_budget.map(|p| Picodollars(p).to_string())),
        show(&stored.in_flight_budget.map(|p| Picodollars(p).to_string())),
    );
    differ(
        "byok.provider",
        show(&file.byok.as_ref().map(|b| b.provider.clone())),
        show(&stored.byok.as_ref().map(|b| b.provider.clone())),
    );
    let secret = |s: &KeySettings| s.byok.as_ref().map(|b| b.api_key.clone());
    if file.byok.is_some() && stored.byok.is_some() && secret(file) != secret(stored) {
        lines.push(format!(
            "key `{key}`: the config's byok api-key differs from the ledger's; the ledger's applies"
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_could_never_be_sent_are_refused() {
        assert_eq!(key_problem("sk-or-v1-abc_DEF.123"), None);
        for bad in ["", " sk-a", "sk-a ", "sk a", "sk/a", "sk\u{7}a", "sk-é", "sk\ta"] {
            assert!(key_problem(bad).is_some(), "{bad:?}");
        }
        assert!(key_problem(&"k".repeat(MAX_KEY_BYTES)).is_none());
        let long = key_problem(&"k".repeat(100_000)).unwrap();
        assert!(long.contains("100000 bytes"), "{long}");
        assert!(key_problem("sk/a").unwrap().contains("byte 2"));
    }

    #[test]
    fn labels_are_bounded_and_printable() {
        assert_eq!(label_problem("Alice's key (prod)"), None);
        assert!(label_problem("a\nb").is_some());
        assert!(label_problem(&"x".repeat(MAX_LABEL_BYTES + 1)).is_some());
    }

    #[test]
    fn differences_name_each_setting_and_never_print_a_secret() {
        let file = KeySettings {
            label: "file".into(),
            rpm: Some(60),
            byok: Some(StoredByok {
                provider: "p".into(),
                api_key: "secret-1".into(),
            }),
            ..KeySettings::default()
        };
        let stored = KeySettings {
            label: "file".into(),
            rpm: Some(120),
            byok: Some(StoredByok {
                provider: "p".into(),
                api_key: "secret-2".into(),
            }),
            ..KeySettings::default()
        };
        let lines = differences("sk-a", &file, &stored);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("rpm = 60") && lines[0].contains("120"), "{lines:?}");
        assert!(lines.iter().all(|l| !l.contains("secret")), "{lines:?}");
        assert!(differences("sk-a", &file, &file).is_empty());
    }
}
