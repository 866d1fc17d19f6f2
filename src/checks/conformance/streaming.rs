//! Streaming: `stream-chunk-delay`, `stream-ttft-overhead`, `stream-usage`,
//! `stream-integrity`, `stream-error-chunk`.
//!
//! The i-th content chunk the client received carries the i-th content
//! token the mock sent (the router relays chunk for chunk, transcoding
//! Anthropic events one to one; a tool call opens with one more delta, its
//! id and name), so the difference of their times — both on the run's one
//! clock — is the delay the router added to that token.

use std::time::Duration;

use mock_providers::{Outcome as MockOutcome, Record};

use super::{Index, Judging, broke_mid_stream, percentile};
use crate::checks::{CheckResult, Verdict as CheckVerdict};
use crate::load::plan::Api;
use crate::load::record::{Outcome, RequestRecord};
use crate::target::{Cost, Feature, RouterConfig};

/// Content chunks that may carry no token of the mock's: a tool call's
/// opening delta (its id and name, arguments empty), as OpenAI itself sends
/// it (an Anthropic `content_block_start` becomes one).
fn opening_chunks(r: &RequestRecord) -> usize {
    usize::from(r.conformance.tool_call.is_some())
}

/// The client's content-chunk arrival offsets that carry the mock's tokens,
/// one per token, in order.
fn token_chunks<'r>(r: &'r RequestRecord, a: &Record) -> &'r [u32] {
    let extra = r.content_offsets_us.len().saturating_sub(a.token_offsets_us.len());
    r.content_offsets_us.get(extra.min(opening_chunks(r))..).unwrap_or(&[])
}

/// The successful streams and the attempt that served each.
fn served_streams<'a>(ix: &'a Index<'_>) -> impl Iterator<Item = (&'a RequestRecord, Option<&'a Record>)> + 'a {
    ix.ev
        .records
        .iter()
        .filter(|r| r.stream && r.outcome == Outcome::Ok)
        .map(|r| (r, ix.served(&r.id)))
}

/// A timing bound over all samples at `pct`, with offenders: the requests
/// whose worst sample is above it.
fn timed(
    kind: &'static str,
    what: &str,
    mut samples: Vec<u64>,
    worst: Vec<(u64, &str)>,
    pct: f64,
    max: Duration,
) -> CheckResult {
    let bound_us = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
    let count = samples.len();
    let value = percentile(&mut samples, pct);
    let mut offenders: Vec<_> = worst.into_iter().filter(|(us, _)| *us > bound_us).collect();
    offenders.sort_unstable_by(|a, b| b.cmp(a));
    let over = offenders.len();
    CheckResult {
        detail: match value {
            None => format!("no {what} to judge: {}", super::UNEXERCISED),
            Some(v) => format!(
                "p{pct} {what} = {:.3} ms over {count} samples; {over} streams above {:.3} ms",
                v as f64 / 1000.0,
                bound_us as f64 / 1000.0
            ),
        },
        offenders: offenders
            .into_iter()
            .take(super::MAX_OFFENDERS)
            .map(|(_, id)| id.to_string())
            .collect(),
        verdict: match value {
            None => CheckVerdict::Skip,
            Some(v) => CheckVerdict::of(v <= bound_us),
        },
        ..crate::checks::result(
            kind,
            "ms",
            value.is_some_and(|v| v <= bound_us),
            value.unwrap_or(0) as f64 / 1000.0,
            bound_us as f64 / 1000.0,
        )
    }
}

/// `stream-chunk-delay`: from the mock sending a token (after the first) to
/// the client receiving the chunk that carries it, at `pct` over every
/// token of every successful stream, at most `max`: the router relays
/// unbuffered.
pub fn chunk_delay(ix: &Index<'_>, pct: f64, max: Duration) -> CheckResult {
    let mut samples = Vec::new();
    let mut worst = Vec::new();
    for (r, attempt) in served_streams(ix) {
        let Some(a) = attempt else { continue };
        let mut top = 0;
        for (client, mock) in token_chunks(r, a).iter().zip(&a.token_offsets_us).skip(1) {
            let received = r.sent_us + u64::from(*client);
            let sent = a.received_us + u64::from(*mock);
            let delay = received.saturating_sub(sent);
            top = top.max(delay);
            samples.push(delay);
        }
        worst.push((top, &*r.id));
    }
    timed("stream-chunk-delay", "per-chunk delay", samples, worst, pct, max)
}

/// `stream-ttft-overhead`: the TTFT the router added, at `pct`, at most
/// `max`. For each stream served by its first upstream attempt, the time to
/// first token the client saw (send to first content chunk) less the time
/// to first token of the mock that served it (request received to first
/// token sent): the floor of that very request from the same mock. So the
/// router's request path before it calls the upstream counts, and so does
/// any delay before it relays the first chunk (a mock that sends its role
/// chunk with the first token leaves nothing to hide such a delay behind).
/// Streams that needed a retry are left out: their wait is the backoff's.
pub fn ttft_overhead(ix: &Index<'_>, pct: f64, max: Duration) -> CheckResult {
    let mut samples = Vec::new();
    let mut worst = Vec::new();
    for (r, attempt) in served_streams(ix) {
        let Some(a) = attempt.filter(|_| ix.attempts_of(&r.id).len() == 1) else {
            continue;
        };
        let Some(client) = token_chunks(r, a).first().map(|offset| u64::from(*offset)) else {
            continue;
        };
        let Some(mock) = a.first_token_us.map(|t| t.saturating_sub(a.received_us)) else {
            continue;
        };
        let added = client.saturating_sub(mock);
        samples.push(added);
        worst.push((added, &*r.id));
    }
    timed("stream-ttft-overhead", "TTFT added", samples, worst, pct, max)
}

/// `stream-usage`: every successful stream carried usage exactly once, in
/// its last chunk (with `choices: []`) before `data: [DONE]`.
pub fn usage(ix: &Index<'_>) -> CheckResult {
    let mut v = Judging::new("stream-usage");
    // Some routers report cost in a header, or nowhere: not in usage.
    let cost_in_usage = ix.ev.scenario.target.profile().cost == Cost::Usage;
    for (r, _) in served_streams(ix) {
        v.judged();
        if !r.conformance.done {
            v.offend(&r.id, || "the stream did not end with data: [DONE]".into());
        } else if r.conformance.usage_chunks != 1 {
            v.offend(&r.id, || {
                format!("usage came in {} chunks, not exactly one", r.conformance.usage_chunks)
            });
        } else if !r.conformance.usage_last {
            v.offend(&r.id, || usage_misplaced(r));
        } else if cost_in_usage && r.cost.is_none() {
            v.offend(&r.id, || "the usage chunk carried no cost".into());
        }
    }
    v.finish("successful streams")
}

/// What is wrong with a usage chunk that is not last with `choices: []`.
fn usage_misplaced(r: &RequestRecord) -> String {
    let facts = &r.conformance;
    match (facts.chunks_after_usage, facts.usage_choices) {
        (n @ 1.., _) => format!("{n} chunk(s) came after the usage chunk, before [DONE]; it must be the last"),
        (0, Some(n @ 1..)) => format!("the usage chunk carried {n} choice(s); it must have choices: []"),
        (0, None) => "the usage chunk had no choices array; it must have choices: []".into(),
        (0, Some(0)) => "the usage chunk was not the last one before [DONE], with choices: []".into(),
    }
}

/// `stream-integrity`: every successful answer arrived whole: one content
/// chunk per token the mock sent, the mock's completion token count in its
/// usage, and for a tool call, the mock's tool call reassembled exactly
/// from its deltas.
pub fn integrity(ix: &Index<'_>, _router: &RouterConfig) -> CheckResult {
    let mut v = Judging::new("stream-integrity");
    for r in ix.ev.records.iter().filter(|r| r.outcome == Outcome::Ok) {
        let Some(a) = ix.served(&r.id) else { continue };
        v.judged();
        let extra = (r.content_chunks as usize).checked_sub(a.tokens_sent as usize);
        if r.stream && extra.is_none_or(|extra| extra > opening_chunks(r)) {
            v.offend(&r.id, || {
                format!(
                    "{} content chunks for the {} tokens the mock sent{}",
                    r.content_chunks,
                    a.tokens_sent,
                    if opening_chunks(r) > 0 {
                        " (and a tool call's opening delta)"
                    } else {
                        ""
                    }
                )
            });
            continue;
        }
        let mock_completion = a.usage.map(|u| u64::from(u.completion_tokens));
        if mock_completion.is_some() && r.completion_tokens != mock_completion {
            v.offend(&r.id, || {
                format!(
                    "usage says {} completion tokens, the mock reported {}",
                    r.completion_tokens.map_or_else(|| "no".into(), |n| n.to_string()),
                    mock_completion.unwrap_or(0)
                )
            });
            continue;
        }
        let offered = ix.mix(r).is_some_and(|m| m.tools);
        let Some(expected) = offered.then(|| mock_tool_call(ix, a)).flatten() else {
            continue;
        };
        if a.outcome != MockOutcome::Ok {
            continue;
        }
        match &r.conformance.tool_call {
            None => v.offend(&r.id, || {
                format!("the mock called `{}`; the answer has no tool call", expected.0)
            }),
            Some(call) if call.name != expected.0 || call.arguments != expected.1 => v.offend(&r.id, || {
                format!(
                    "tool call `{}({})` reassembled, the mock sent `{}({})`",
                    call.name, call.arguments, expected.0, expected.1
                )
            }),
            Some(_) => {}
        }
    }
    v.finish("successful answers")
}

/// The tool call the mock is configured to make for an attempt's model.
fn mock_tool_call<'a>(ix: &'a Index<'_>, a: &Record) -> Option<(&'a str, &'a str)> {
    let provider = ix
        .ev
        .scenario
        .mocks
        .iter()
        .map(|m| &m.config)
        .find(|p| p.name == a.provider)?;
    let model = provider.models.iter().find(|m| Some(&m.id) == a.model.as_ref())?;
    let call = model.tool_call.as_ref()?;
    Some((call.name.as_str(), call.arguments.as_str()))
}

/// `stream-error-chunk`: a stream whose upstream failed after its first
/// token ended with a chunk carrying a top-level `error`, and
/// `finish_reason: "error"` where the profile's routers promise it
/// ([`Feature::ErrorFinishReason`]) (whatever the router did next: the
/// client already had part of an answer that can no longer be completed).
pub fn error_chunk(ix: &Index<'_>) -> CheckResult {
    let mut v = Judging::new("stream-error-chunk");
    // `finish_reason: "error"` is OpenRouter's convention; an OpenAI-style
    // router ends with the top-level error alone (as OpenAI does, and as the
    // OpenAI SDKs read it).
    let finish_reason_owed = ix.ev.scenario.target.profile().has(Feature::ErrorFinishReason);
    for r in ix.ev.records.iter().filter(|r| r.stream) {
        // The first attempt that broke after streaming: the client had its
        // bytes, so nothing after it can make the stream whole again.
        let Some(last) = ix.attempts_of(&r.id).iter().find(|a| broke_mid_stream(a)) else {
            continue;
        };
        v.judged();
        if !r.conformance.error_chunk {
            v.offend(&r.id, || {
                format!(
                    "the upstream failed mid-stream ({:?}) but the stream carried no error chunk (outcome {})",
                    last.outcome,
                    r.outcome.name()
                )
            });
        } else if finish_reason_owed && r.conformance.finish_reason.as_deref() != Some("error") {
            v.offend(&r.id, || {
                format!(
                    "the error chunk's finish_reason is {:?}, not \"error\"",
                    r.conformance.finish_reason.as_deref()
                )
            });
        }
    }
    v.finish("streams whose upstream failed mid-stream")
}

/// `messages-events`: every successful Messages stream followed Anthropic's
/// event sequence — `message_start`; then each content block as
/// `content_block_start`, its deltas and `content_block_stop`, indexes
/// counting from 0; one `message_delta` carrying `usage` and the
/// `stop_reason`; `message_stop` last (`ping` anywhere after the start) —
/// and its `message_delta` reported the serving attempt's completion tokens.
pub fn messages_events(ix: &Index<'_>) -> CheckResult {
    let mut v = Judging::new("messages-events");
    for (r, attempt) in served_streams(ix) {
        if ix.mix(r).is_none_or(|m| m.api != Api::Messages) {
            continue;
        }
        v.judged();
        let completion = attempt.and_then(|a| a.usage).map(|u| u64::from(u.completion_tokens));
        if let Some(problem) = &r.conformance.event_sequence {
            v.offend(&r.id, || problem.clone());
        } else if r.conformance.finish_reason.is_none() {
            v.offend(&r.id, || "the message_delta carried no stop_reason".into());
        } else if completion.is_some() && r.completion_tokens != completion {
            v.offend(&r.id, || {
                format!(
                    "message_delta reported output_tokens {}, the upstream {}",
                    r.completion_tokens.map_or("none".into(), |n| n.to_string()),
                    completion.unwrap_or_default()
                )
            });
        }
    }
    v.finish("successful Messages streams")
}
