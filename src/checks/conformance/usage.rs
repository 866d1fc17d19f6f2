//! `usage-agrees`: the token counts a router reports match what the
//! upstream reported for the attempt that served the answer. For a router
//! that reports no cost this is what is left to compare; for one that does,
//! it tells a wrong count apart from a wrong price.

use mock_providers::Usage;

use super::{Index, Judging};
use crate::checks::CheckResult;
use crate::load::record::{Outcome, RequestRecord};

/// `usage-agrees`: every answer's `usage` has the serving attempt's prompt
/// tokens (cache reads and writes included), completion tokens (reasoning
/// included), and, where the upstream reported them, its cache reads
/// (`prompt_tokens_details.cached_tokens`), cache writes
/// (`prompt_tokens_details.cache_write_tokens` or
/// `cache_creation_input_tokens`) and reasoning tokens
/// (`completion_tokens_details.reasoning_tokens`).
pub fn agrees(ix: &Index<'_>) -> CheckResult {
    let mut v = Judging::new("usage-agrees");
    for r in ix.ev.records.iter().filter(|r| r.outcome == Outcome::Ok) {
        let Some(usage) = ix.served(&r.id).and_then(|a| a.usage) else {
            continue;
        };
        v.judged();
        if let Some(wrong) = disagreement(r, &usage) {
            v.offend(&r.id, || wrong);
        }
    }
    v.finish("answers")
}

/// What `r`'s reported usage gets wrong against the upstream's, if anything.
fn disagreement(r: &RequestRecord, upstream: &Usage) -> Option<String> {
    let (Some(prompt), Some(completion)) = (r.prompt_tokens, r.completion_tokens) else {
        return Some("the answer reports no usage (prompt_tokens and completion_tokens)".into());
    };
    let facts = &r.conformance;
    let counts = [
        (
            "prompt_tokens",
            Some(prompt),
            upstream.prompt_tokens,
            "cache reads and writes included",
        ),
        (
            "completion_tokens",
            Some(completion),
            upstream.completion_tokens,
            "reasoning included",
        ),
        (
            "cached_tokens",
            r.cached_tokens,
            upstream.cache_read_tokens,
            "cache reads",
        ),
        (
            "cache write tokens",
            facts.cache_write_tokens,
            upstream.cache_write_tokens,
            "cache writes",
        ),
        (
            "reasoning_tokens",
            facts.reasoning_tokens,
            upstream.reasoning_tokens,
            "reasoning",
        ),
    ];
    let wrong: Vec<String> = counts
        .into_iter()
        .filter_map(|(field, reported, expected, what)| {
            let expected = u64::from(expected);
            match reported {
                Some(n) if n == expected => None,
                // A count the upstream had none of may go unreported.
                None if expected == 0 => None,
                Some(n) => Some(format!("{field} {n}, the upstream reported {expected} ({what})")),
                None => Some(format!("no {field}; the upstream reported {expected} ({what})")),
            }
        })
        .collect();
    (!wrong.is_empty()).then(|| wrong.join("; "))
}
