//! Tests of the streaming checks: `stream-error-chunk`,
//! `stream-chunk-delay`, `stream-ttft-overhead`, `stream-usage`,
//! `stream-integrity`.

use mock_providers::Record;

use super::fixtures::*;
use crate::checks::conformance::*;
use crate::load::record::{Facts, Outcome, ToolCall};

// ---------------------------------------------------------------------------
// stream-error-chunk
// ---------------------------------------------------------------------------

/// A stream that ended with an error chunk whose `finish_reason` is `finish`.
fn errored_stream(id: &str, error_chunk: bool, finish: Option<&str>) -> RequestRecord {
    let mut r = streamed(id, MINI_STREAM, MINI_MODEL, &[6_000, 7_000, 8_000]);
    r.outcome = Outcome::StreamError;
    r.conformance = Facts {
        error_chunk,
        finish_reason: finish.map(Into::into),
        ..Facts::default()
    };
    r
}

#[test]
fn stream_error_chunk_passes_an_error_chunk_ending() {
    let case = Case::new(
        vec![errored_stream("s", true, Some("error"))],
        vec![broken_stream("s", 3, T0)],
    );
    assert_passes(&case.judge(Conformance::StreamErrorChunk));
}

#[test]
fn stream_error_chunk_fails_a_stream_without_one() {
    let case = Case::new(vec![errored_stream("s", false, None)], vec![broken_stream("s", 3, T0)]);
    assert_fails(
        &case.judge(Conformance::StreamErrorChunk),
        &["s"],
        "the upstream failed mid-stream (FaultStreamError) but the stream carried no error chunk (outcome stream_error)",
    );
}

#[test]
fn stream_error_chunk_fails_another_finish_reason() {
    let case = Case::new(
        vec![errored_stream("s", true, Some("stop"))],
        vec![broken_stream("s", 3, T0)],
    );
    assert_fails(
        &case.judge(Conformance::StreamErrorChunk),
        &["s"],
        "the error chunk's finish_reason is Some(\"stop\"), not \"error\"",
    );
}

/// The fixture scenario, its target a router of `profile`.
fn with_profile(profile: &str) -> String {
    FIXTURE.replacen(
        "[meta]",
        &format!("[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:4000/v1\"\nprofile = \"{profile}\"\n[meta]"),
        1,
    )
}

#[test]
fn stream_error_chunk_wants_finish_reason_error_only_of_routers_that_promise_it() {
    // OpenAI's own way, which LiteLLM and Portkey follow: `data: {"error": …}`
    // and the stream ends, no finish_reason.
    for profile in ["litellm", "portkey", "openai"] {
        let case = Case::of(
            &with_profile(profile),
            vec![errored_stream("s", true, None)],
            vec![broken_stream("s", 3, T0)],
        );
        assert_passes(&case.judge(Conformance::StreamErrorChunk));
        // The error chunk itself is still owed.
        let case = Case::of(
            &with_profile(profile),
            vec![errored_stream("s", false, None)],
            vec![broken_stream("s", 3, T0)],
        );
        assert_fails(
            &case.judge(Conformance::StreamErrorChunk),
            &["s"],
            "carried no error chunk",
        );
    }
}

#[test]
fn stream_error_chunk_does_not_judge_a_failure_before_the_first_token() {
    let case = Case::new(vec![errored_stream("s", false, None)], vec![broken_stream("s", 0, T0)]);
    assert_fails(
        &case.judge(Conformance::StreamErrorChunk),
        &[],
        "no streams whose upstream failed",
    );
}

// ---------------------------------------------------------------------------
// stream-chunk-delay, stream-ttft-overhead
// ---------------------------------------------------------------------------

/// The mock received the request 1 ms after the client sent it and sent
/// four tokens 5, 6, 7 and 8 ms later.
const MOCK_TOKENS: [u32; 4] = [5_000, 6_000, 7_000, 8_000];
/// Each token reached the client 0.5 ms after the mock sent it.
const RELAYED: [u32; 4] = [6_500, 7_500, 8_500, 9_500];

fn relayed_stream(id: &str, client_offsets: &[u32]) -> (RequestRecord, Record) {
    (
        streamed(id, MINI_STREAM, MINI_MODEL, client_offsets),
        served_stream(id, "gpt-4o-mini", T0 + MS, &MOCK_TOKENS),
    )
}

/// A tool-call stream: the first content chunk is the call's opening delta
/// (its id and name), then one chunk per token.
fn tool_stream(id: &str, client_offsets: &[u32]) -> (RequestRecord, Record) {
    let mut r = streamed(id, TOOLS, TOOLS_MODEL, client_offsets);
    r.completion_tokens = Some(MOCK_TOKENS.len() as u64);
    r.conformance.tool_call = Some(ToolCall {
        name: "get_weather".into(),
        arguments: r#"{"city": "Paris"}"#.into(),
    });
    (r, served_stream(id, "gpt-tools", T0 + MS, &MOCK_TOKENS))
}

#[test]
fn stream_chunk_delay_passes_a_relay_without_buffering() {
    let result = case_of(vec![relayed_stream("s", &RELAYED)]).judge(stream_chunk_delay());
    assert_passes(&result);
    assert_eq!(result.measured, 0.5);
    assert!(result.detail.contains("over 3 samples"), "{}", result.detail);
}

#[test]
fn stream_chunk_delay_fails_a_buffered_stream() {
    // 15 ms between tokens, all relayed at once after the last.
    let tokens = [30_000, 45_000, 60_000, 75_000];
    let buffered = (
        streamed("late", MINI_STREAM, MINI_MODEL, &[76_500, 76_510, 76_520, 76_530]),
        served_stream("late", "gpt-4o-mini", T0 + MS, &tokens),
    );
    let result = case_of(vec![relayed_stream("s", &RELAYED), buffered]).judge(stream_chunk_delay());
    assert_fails(
        &result,
        &["late"],
        "p99 per-chunk delay = 30.510 ms over 6 samples; 1 streams above 25.000 ms",
    );
}

#[test]
fn stream_chunk_delay_skips_a_tool_calls_opening_delta() {
    let result = case_of(vec![tool_stream("t", &[6_200, 6_500, 7_500, 8_500, 9_500])]).judge(stream_chunk_delay());
    assert_passes(&result);
    assert_eq!(result.measured, 0.5, "aligned on the tokens: {}", result.detail);
}

#[test]
fn stream_chunk_delay_fails_a_delayed_tool_call() {
    let result = case_of(vec![tool_stream("t", &[6_200, 6_500, 37_500, 38_500, 39_500])]).judge(stream_chunk_delay());
    assert_fails(&result, &["t"], "p99 per-chunk delay = 30.500 ms");
}

#[test]
fn stream_ttft_overhead_passes_a_prompt_first_chunk() {
    let result = case_of(vec![relayed_stream("s", &RELAYED)]).judge(stream_ttft_overhead());
    assert_passes(&result);
    // 6.5 ms to the first token at the client, 5 ms at the mock: the 1 ms
    // before the mock got the request counts, and the 0.5 ms relay.
    assert_eq!(result.measured, 1.5);
}

/// A retried stream's wait is the backoff's, not TTFT the router added.
#[test]
fn stream_ttft_overhead_leaves_out_a_stream_served_after_a_retry() {
    let (record, served) = relayed_stream("late", &[46_000, 47_000, 48_000, 49_000]);
    let first = failure("late", 429, T0 + MS / 2, T0 + MS / 2);
    let mut case = case_of(vec![relayed_stream("s", &RELAYED), (record, served)]);
    case.attempts.push(first);
    let result = case.judge(stream_ttft_overhead());
    assert_passes(&result);
    assert!(result.detail.contains("over 1 samples"), "{}", result.detail);
}

#[test]
fn stream_ttft_overhead_fails_a_late_first_chunk() {
    let result = case_of(vec![
        relayed_stream("s", &RELAYED),
        relayed_stream("late", &[46_000, 47_000, 48_000, 49_000]),
    ])
    .judge(stream_ttft_overhead());
    assert_fails(&result, &["late"], "p99 TTFT added = 41.000 ms over 2 samples");
}

#[test]
fn stream_ttft_overhead_times_the_first_token_not_a_tool_calls_opening_delta() {
    let prompt = case_of(vec![tool_stream("t", &[6_200, 6_500, 7_500, 8_500, 9_500])]);
    let result = prompt.judge(stream_ttft_overhead());
    assert_passes(&result);
    assert_eq!(result.measured, 1.5);

    // The opening delta goes out at once; the first token 40 ms late.
    let late = case_of(vec![tool_stream("t", &[1_500, 46_000, 47_000, 48_000, 49_000])]);
    assert_fails(
        &late.judge(stream_ttft_overhead()),
        &["t"],
        "p99 TTFT added = 41.000 ms",
    );
}

// ---------------------------------------------------------------------------
// stream-usage, stream-integrity
// ---------------------------------------------------------------------------

#[test]
fn stream_usage_passes_usage_once_in_the_last_chunk() {
    let whole = answer("w", MINI, MINI_MODEL, Some("0"));
    let result = Case::new(
        vec![streamed("s", MINI_STREAM, MINI_MODEL, &RELAYED), whole],
        Vec::new(),
    )
    .judge(Conformance::StreamUsage);
    assert_passes(&result);
    assert!(result.detail.starts_with("all 1 "), "{}", result.detail);
}

#[test]
fn stream_usage_fails_a_stream_without_usage() {
    let mut r = streamed("s", MINI_STREAM, MINI_MODEL, &RELAYED);
    r.conformance.usage_chunks = 0;
    r.conformance.usage_last = false;
    assert_fails(
        &Case::new(vec![r], Vec::new()).judge(Conformance::StreamUsage),
        &["s"],
        "usage came in 0 chunks, not exactly one",
    );
}

#[test]
fn stream_usage_fails_usage_twice() {
    let mut r = streamed("s", MINI_STREAM, MINI_MODEL, &RELAYED);
    r.conformance.usage_chunks = 2;
    assert_fails(
        &Case::new(vec![r], Vec::new()).judge(Conformance::StreamUsage),
        &["s"],
        "usage came in 2 chunks",
    );
}

#[test]
fn stream_usage_fails_usage_before_the_last_chunk() {
    let mut r = streamed("s", MINI_STREAM, MINI_MODEL, &RELAYED);
    r.conformance.usage_last = false;
    assert_fails(
        &Case::new(vec![r.clone()], Vec::new()).judge(Conformance::StreamUsage),
        &["s"],
        "the usage chunk was not the last one before [DONE], with choices: []",
    );
    // Each way it can be wrong, said exactly.
    for (after, choices, says) in [
        (
            2,
            Some(0),
            "2 chunk(s) came after the usage chunk, before [DONE]; it must be the last",
        ),
        (
            0,
            Some(1),
            "the usage chunk carried 1 choice(s); it must have choices: []",
        ),
        (
            0,
            None,
            "the usage chunk had no choices array; it must have choices: []",
        ),
    ] {
        r.conformance.chunks_after_usage = after;
        r.conformance.usage_choices = choices;
        assert_fails(
            &Case::new(vec![r.clone()], Vec::new()).judge(Conformance::StreamUsage),
            &["s"],
            says,
        );
    }
}

#[test]
fn stream_usage_fails_a_usage_chunk_without_cost() {
    let mut r = streamed("s", MINI_STREAM, MINI_MODEL, &RELAYED);
    r.cost = None;
    assert_fails(
        &Case::new(vec![r], Vec::new()).judge(Conformance::StreamUsage),
        &["s"],
        "the usage chunk carried no cost",
    );
}

#[test]
fn stream_usage_fails_a_stream_without_done() {
    let mut r = streamed("s", MINI_STREAM, MINI_MODEL, &RELAYED);
    r.conformance.done = false;
    assert_fails(
        &Case::new(vec![r], Vec::new()).judge(Conformance::StreamUsage),
        &["s"],
        "the stream did not end with data: [DONE]",
    );
}

#[test]
fn stream_integrity_passes_one_chunk_per_token() {
    let result = case_of(vec![relayed_stream("s", &RELAYED)]).judge(Conformance::StreamIntegrity);
    assert_passes(&result);
}

#[test]
fn stream_integrity_fails_a_lost_chunk() {
    let result = case_of(vec![relayed_stream("s", &RELAYED[..3])]).judge(Conformance::StreamIntegrity);
    assert_fails(&result, &["s"], "3 content chunks for the 4 tokens the mock sent");
}

#[test]
fn stream_integrity_fails_an_extra_chunk_without_a_tool_call() {
    let result =
        case_of(vec![relayed_stream("s", &[6_200, 6_500, 7_500, 8_500, 9_500])]).judge(Conformance::StreamIntegrity);
    assert_fails(&result, &["s"], "5 content chunks for the 4 tokens the mock sent");
}

#[test]
fn stream_integrity_fails_other_completion_tokens_than_the_mock_reported() {
    let (mut r, a) = relayed_stream("s", &RELAYED);
    r.completion_tokens = Some(3);
    assert_fails(
        &case_of(vec![(r, a)]).judge(Conformance::StreamIntegrity),
        &["s"],
        "usage says 3 completion tokens, the mock reported 4",
    );
}

#[test]
fn stream_integrity_passes_a_tool_call_with_its_opening_delta() {
    let result =
        case_of(vec![tool_stream("t", &[6_200, 6_500, 7_500, 8_500, 9_500])]).judge(Conformance::StreamIntegrity);
    assert_passes(&result);
}

#[test]
fn stream_integrity_fails_a_tool_call_reassembled_wrong() {
    let (mut r, a) = tool_stream("t", &[6_200, 6_500, 7_500, 8_500, 9_500]);
    if let Some(call) = r.conformance.tool_call.as_mut() {
        call.arguments = r#"{"city": "Lyon"}"#.into();
    }
    assert_fails(
        &case_of(vec![(r, a)]).judge(Conformance::StreamIntegrity),
        &["t"],
        r#"tool call `get_weather({"city": "Lyon"})` reassembled, the mock sent `get_weather({"city": "Paris"})`"#,
    );
}

#[test]
fn stream_integrity_fails_a_lost_tool_call() {
    let (mut r, a) = tool_stream("t", &RELAYED);
    r.conformance.tool_call = None;
    assert_fails(
        &case_of(vec![(r, a)]).judge(Conformance::StreamIntegrity),
        &["t"],
        "the mock called `get_weather`; the answer has no tool call",
    );
}
