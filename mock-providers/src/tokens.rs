//! Token accounting the mock uses: the documented prompt-token count, the
//! correlation nonce, and the deterministic output vocabulary.
//!
//! # Prompt tokens
//!
//! The mock does not run a tokenizer. It counts, deterministically:
//!
//! ```text
//! prompt_tokens = 3
//!               + for each message (the Anthropic top-level `system` counts as one):
//!                   4 + ceil(chars(text) / 4)
//!               + ceil(bytes(serialized `tools` JSON) / 4)    when `tools` is present
//! ```
//!
//! where `text` is the message's `content` when it is a string, or the
//! concatenation of the `text` fields of its content parts, and `chars` counts
//! Unicode scalar values. The same conversation therefore costs the same
//! number of prompt tokens in both dialects.
//!
//! # Correlation nonce
//!
//! A request is matched to the harness's own record by the
//! `x-gauntlet-request-id` header; when a router drops headers, by a nonce
//! `[gauntlet:ID]` anywhere in the prompt text (`ID` is 1 to 64 characters of
//! `A-Z a-z 0-9 - _ .`).

use serde_json::Value;

/// The header that carries the harness's request id.
pub const REQUEST_ID_HEADER: &str = "x-gauntlet-request-id";

const NONCE_OPEN: &str = "[gauntlet:";
const NONCE_MAX_LEN: usize = 64;

/// Words the mock answers with. A few carry quotes, backslashes, newlines and
/// non-ASCII text so that every client's escaping is exercised.
pub const VOCABULARY: &[&str] = &[
    " the",
    " quick",
    " brown",
    " fox",
    " jumps",
    " over",
    " a",
    " lazy",
    " dog",
    ",",
    " and",
    " then",
    " it",
    " rests",
    ".",
    " \"quoted\"",
    " naïve",
    " café",
    " 東京",
    " 🦀",
    "\n",
    " back\\slash",
    " tab\there",
    " end",
];

/// Counts the prompt tokens of a message list the way the module docs state.
pub fn prompt_tokens(system: Option<&str>, messages: &[Value], tools: Option<&Value>) -> u32 {
    let mut total: u64 = 3;
    if let Some(system) = system {
        total += 4 + text_tokens(system);
    }
    for message in messages {
        let mut chars = 0u64;
        for_each_text(message.get("content"), &mut |text| chars += text.chars().count() as u64);
        total += 4 + chars.div_ceil(4);
    }
    if let Some(tools) = tools {
        total += (tools.to_string().len() as u64).div_ceil(4);
    }
    u32::try_from(total).unwrap_or(u32::MAX)
}

/// `ceil(chars / 4)` of one text.
pub fn text_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// Calls `f` on each piece of text in a message `content` (a string or an
/// array of parts with `text` fields).
pub fn for_each_text<'a>(content: Option<&'a Value>, f: &mut dyn FnMut(&'a str)) {
    match content {
        Some(Value::String(text)) => f(text),
        Some(Value::Array(parts)) => {
            for part in parts {
                if let Some(Value::String(text)) = part.get("text") {
                    f(text);
                }
            }
        }
        _ => {}
    }
}

/// Joins the text of a `content` value (string or parts) into one string.
pub fn content_text(content: Option<&Value>) -> String {
    let mut out = String::new();
    for_each_text(content, &mut |text| out.push_str(text));
    out
}

/// Finds the first `[gauntlet:ID]` nonce in a text.
pub fn find_nonce(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(start) = rest.find(NONCE_OPEN) {
        let after = &rest[start + NONCE_OPEN.len()..];
        let end = after
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .map_or(after.len(), |(i, _)| i);
        if (1..=NONCE_MAX_LEN).contains(&end) && after[end..].starts_with(']') {
            return Some(&after[..end]);
        }
        rest = after;
    }
    None
}

/// FNV-1a, 64-bit: a hash that stays the same across Rust versions, used to
/// derive per-request seeds.
#[derive(Debug, Clone, Copy)]
pub struct Fnv64(u64);

impl Fnv64 {
    pub fn new(seed: u64) -> Self {
        let mut h = Fnv64(0xcbf2_9ce4_8422_2325);
        h.write(&seed.to_le_bytes());
        h
    }

    pub fn write(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prompt_count_follows_the_documented_rule() {
        // 3 + (4 + ceil(5/4)=2) + (4 + ceil(11/4)=3) = 16
        let messages = [
            json!({"role": "system", "content": "abcde"}),
            json!({"role": "user", "content": "hello world"}),
        ];
        assert_eq!(prompt_tokens(None, &messages, None), 16);
        // The same conversation in Anthropic form counts the same.
        let messages = [
            json!({"role": "user", "content": [{"type": "text", "text": "hello "}, {"type": "text", "text": "world"}]}),
        ];
        assert_eq!(prompt_tokens(Some("abcde"), &messages, None), 16);
        // Unicode counts scalar values, not bytes.
        assert_eq!(text_tokens("東京東京東"), 2);
    }

    #[test]
    fn nonce_is_found_anywhere_and_validated() {
        assert_eq!(find_nonce("hi [gauntlet:req-42.a_b] there"), Some("req-42.a_b"));
        assert_eq!(find_nonce("[gauntlet:] [gauntlet:bad id] [gauntlet:ok]"), Some("ok"));
        assert_eq!(find_nonce("[gauntlet:unterminated"), None);
        let long = format!("[gauntlet:{}]", "x".repeat(65));
        assert_eq!(find_nonce(&long), None);
    }

    #[test]
    fn fnv_is_stable() {
        // Reference value of FNV-1a over the 8 zero bytes of seed 0 and "a".
        let mut h = Fnv64::new(0);
        h.write(b"a");
        assert_eq!(h.finish(), Fnv64::new(0).write(b"a").finish());
        assert_ne!(Fnv64::new(1).write(b"a").finish(), h.finish());
    }
}
