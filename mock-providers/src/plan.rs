//! What one attempt will receive, decided up front from the request and the
//! model's seeded behaviour: delays, output pieces, finish reason and usage.
//!
//! Everything here is drawn from a generator seeded by the provider's seed,
//! the model and the correlation id (or, without one, the provider's request
//! sequence number), so the same request under the same seed gets the same
//! answer, whatever else runs at the same time.

use std::borrow::Cow;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::bounds;
use crate::config::{Behaviour, ToolCall};
use crate::journal::Usage;
use crate::tokens::{Fnv64, VOCABULARY};

/// A request in dialect-neutral form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ask {
    pub model: String,
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`; Anthropic always reports usage.
    pub include_usage: bool,
    pub max_tokens: Option<u32>,
    pub system: Option<String>,
    pub prompt_tokens: u32,
    pub nonce: Option<String>,
    pub offers_tools: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Stop,
    Length,
    ToolCalls,
}

/// The tool call an answer carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolPlan {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub ttft: Duration,
    /// `gaps[i]` is the pause before piece `i + 1`.
    pub gaps: Vec<Duration>,
    /// Content pieces, one token each: words of text, or slices of the tool
    /// call's arguments.
    pub pieces: Vec<Cow<'static, str>>,
    pub tool: Option<ToolPlan>,
    pub finish: Finish,
    pub usage: Usage,
    /// A hex id unique to this attempt, used in response ids.
    pub id: String,
    /// Whether a stream's opening goes out with its first token (not at once).
    pub opening_with_first_token: bool,
}

impl Plan {
    /// Time from receipt to the last piece: what a non-streaming answer waits.
    pub fn generation_time(&self) -> Duration {
        self.ttft + self.gaps.iter().sum::<Duration>()
    }

    /// The whole text of the answer (empty for a tool call).
    pub fn text(&self) -> String {
        if self.tool.is_some() {
            String::new()
        } else {
            self.pieces.concat()
        }
    }
}

/// The seed of one attempt's generator.
pub fn attempt_seed(provider_seed: u64, provider: &str, model: &str, correlation: &str) -> u64 {
    Fnv64::new(provider_seed)
        .write(provider.as_bytes())
        .write(&[0])
        .write(model.as_bytes())
        .write(&[0])
        .write(correlation.as_bytes())
        .finish()
}

/// A uniform draw in [0, 1) for fault decisions, separate from the answer's
/// generator so a retry of the same request can roll differently.
pub fn fault_roll(seed: u64, attempt: u32) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(Fnv64::new(seed).write(b"fault").write(&attempt.to_le_bytes()).finish());
    rng.random::<f64>()
}

/// The longest delay a plan holds: the top of [`bounds::DELAY_MS`].
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// A sampled delay in milliseconds, clamped into [`bounds::DELAY_MS`] (a
/// distribution's tail, or one built in code, may reach past it).
fn ms(value: f64) -> Duration {
    let ms = bounds::DELAY_MS.clamp(value);
    Duration::try_from_secs_f64(ms / 1000.0).map_or(MAX_DELAY, |d| d.min(MAX_DELAY))
}

/// Splits a text into pieces of about four characters (on char boundaries).
pub fn split_pieces(text: &str) -> Vec<Cow<'static, str>> {
    let mut pieces = Vec::with_capacity(text.len() / 4 + 1);
    let mut current = String::new();
    for c in text.chars() {
        current.push(c);
        if current.chars().count() == 4 {
            pieces.push(Cow::Owned(std::mem::take(&mut current)));
        }
    }
    if !current.is_empty() {
        pieces.push(Cow::Owned(current));
    }
    pieces
}

/// Decides the answer to `ask` under `behaviour`.
pub fn plan(seed: u64, attempt: u32, behaviour: &Behaviour, tool_call: Option<&ToolCall>, ask: &Ask) -> Plan {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ttft = ms(behaviour.ttft_ms.sample(&mut rng));
    let sampled = bounds::OUTPUT_TOKENS
        .clamp(behaviour.output_tokens.sample(&mut rng))
        .round() as u64;
    // Reasoning tokens come first and count against max_tokens too.
    let reasoning = ask
        .max_tokens
        .map_or(behaviour.reasoning_tokens, |m| behaviour.reasoning_tokens.min(m));
    let cap = ask.max_tokens.map(|m| m.saturating_sub(reasoning) as usize);

    let (mut pieces, tool, natural_finish) = match tool_call.filter(|_| ask.offers_tools) {
        Some(call) => {
            let tool = ToolPlan {
                id: format!("call_{:016x}", seed.rotate_left(17)),
                name: call.name.clone(),
                arguments: call.arguments.clone(),
            };
            (split_pieces(&call.arguments), Some(tool), Finish::ToolCalls)
        }
        None => {
            let n = usize::try_from(sampled)
                .unwrap_or(usize::MAX)
                .min(cap.unwrap_or(usize::MAX))
                .min(1 << 20);
            let pieces = (0..n)
                .map(|_| Cow::Borrowed(VOCABULARY[rng.random_range(0..VOCABULARY.len())]))
                .collect();
            (pieces, None, Finish::Stop)
        }
    };
    let finish = match cap {
        Some(cap) if pieces.len() > cap || (tool.is_none() && sampled as usize > cap) => {
            pieces.truncate(cap);
            Finish::Length
        }
        _ => natural_finish,
    };
    let gaps = (1..pieces.len())
        .map(|_| ms(behaviour.itl_ms.sample(&mut rng)))
        .collect();

    let prompt = ask.prompt_tokens;
    let share = |s: f64| (f64::from(prompt) * s).floor() as u32;
    let usage = Usage {
        prompt_tokens: prompt,
        cache_read_tokens: share(behaviour.cache_read_share),
        cache_write_tokens: share(behaviour.cache_write_share),
        completion_tokens: u32::try_from(pieces.len())
            .unwrap_or(u32::MAX)
            .saturating_add(reasoning),
        reasoning_tokens: reasoning,
    };
    Plan {
        ttft,
        gaps,
        pieces,
        tool,
        finish,
        usage,
        id: format!("{seed:016x}{attempt:02x}"),
        opening_with_first_token: behaviour.role_chunk == crate::config::RoleChunk::WithFirstToken,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distribution::Distribution;

    fn ask(max_tokens: Option<u32>) -> Ask {
        Ask {
            model: "m".into(),
            prompt_tokens: 101,
            max_tokens,
            offers_tools: true,
            ..Ask::default()
        }
    }

    #[test]
    fn same_seed_same_plan_and_different_seed_differs() {
        let b = Behaviour {
            ttft_ms: Distribution::LogNormal { p50: 100.0, p99: 400.0 },
            output_tokens: Distribution::Uniform { min: 10.0, max: 100.0 },
            itl_ms: Distribution::Normal {
                mean: 20.0,
                stddev: 5.0,
            },
            ..Behaviour::default()
        };
        let a1 = plan(attempt_seed(1, "p", "m", "req-1"), 1, &b, None, &ask(None));
        let a2 = plan(attempt_seed(1, "p", "m", "req-1"), 1, &b, None, &ask(None));
        let other = plan(attempt_seed(2, "p", "m", "req-1"), 1, &b, None, &ask(None));
        assert_eq!(a1, a2);
        assert_ne!(a1, other);
    }

    #[test]
    fn max_tokens_caps_output_and_reports_length() {
        let b = Behaviour {
            output_tokens: Distribution::Constant(50.0),
            reasoning_tokens: 3,
            ..Behaviour::default()
        };
        let p = plan(7, 1, &b, None, &ask(Some(10)));
        assert_eq!(p.pieces.len(), 7);
        assert_eq!(p.finish, Finish::Length);
        assert_eq!(p.usage.completion_tokens, 10);
        assert_eq!(p.gaps.len(), 6);
    }

    #[test]
    fn reasoning_tokens_never_exceed_max_tokens() {
        let b = Behaviour {
            reasoning_tokens: 3,
            ..Behaviour::default()
        };
        let p = plan(7, 1, &b, None, &ask(Some(2)));
        assert_eq!(
            (p.pieces.len(), p.usage.completion_tokens, p.usage.reasoning_tokens),
            (0, 2, 2)
        );
        assert_eq!(p.finish, Finish::Length);
    }

    #[test]
    fn cache_shares_are_floored_and_tool_calls_are_pieced() {
        let b = Behaviour {
            cache_read_share: 0.5,
            cache_write_share: 0.25,
            ..Behaviour::default()
        };
        let call = ToolCall {
            name: "f".into(),
            arguments: "{\"city\":\"Paris\"}".into(),
        };
        let p = plan(7, 1, &b, Some(&call), &ask(None));
        assert_eq!((p.usage.cache_read_tokens, p.usage.cache_write_tokens), (50, 25));
        assert_eq!(p.pieces.concat(), call.arguments);
        assert_eq!(p.finish, Finish::ToolCalls);
        assert_eq!(p.usage.completion_tokens as usize, p.pieces.len());
    }

    /// A delay past any range (a distribution built in code, bypassing
    /// validation) is clamped to the longest delay, not a panic.
    #[test]
    fn delays_past_their_range_are_clamped() {
        let b = Behaviour {
            ttft_ms: Distribution::Constant(1e300),
            itl_ms: Distribution::Constant(1e20),
            output_tokens: Distribution::Constant(f64::INFINITY),
            ..Behaviour::default()
        };
        let hour = MAX_DELAY;
        let p = plan(7, 1, &b, None, &ask(Some(4)));
        assert_eq!(p.ttft, hour);
        assert_eq!(p.gaps, vec![hour; 3]);
        assert_eq!(p.generation_time(), hour * 4);
        let nan = Behaviour {
            ttft_ms: Distribution::Constant(f64::NAN),
            ..Behaviour::default()
        };
        assert_eq!(plan(7, 1, &nan, None, &ask(None)).ttft, Duration::ZERO);
    }

    #[test]
    fn fault_rolls_differ_by_attempt() {
        assert_ne!(fault_roll(9, 1), fault_roll(9, 2));
        assert_eq!(fault_roll(9, 1), fault_roll(9, 1));
    }
}
