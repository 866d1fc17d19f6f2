//! Tests of the lifecycle, system-prompt and error-body checks:
//! `lifecycle-grace`, `lifecycle-removed`, `system-prefix`, `error-shape`.

use mock_providers::Record;

use super::fixtures::*;
use crate::checks::conformance::*;
use crate::load::record::ErrorShape;

// ---------------------------------------------------------------------------
// lifecycle-grace, lifecycle-removed (one day per real second from
// 2027-01-29; `openai/legacy` removed on 2027-01-31, two seconds in)
// ---------------------------------------------------------------------------

/// A request for `openai/legacy` served by the replacement, sent at `sent_us`.
fn rerouted(id: &str, sent_us: u64) -> (RequestRecord, Record) {
    let mut r = sent_at(answer(id, LEGACY, MINI_MODEL, Some("0.00015")), sent_us);
    r.conformance.original_model = Some(LEGACY_MODEL.into());
    let a = Record {
        received_us: sent_us + MS,
        finished_us: sent_us + 2 * MS,
        ..served(id, "oa", "gpt-4o-mini", usage(1000, 400, 0, 50))
    };
    (r, a)
}

/// A 404 for `openai/legacy` as removed, sent at `sent_us`.
fn deprecated(id: &str, sent_us: u64) -> RequestRecord {
    let mut r = sent_at(error_answer(id, LEGACY, 404), sent_us);
    r.conformance.error_shape = Some(ErrorShape {
        ok: true,
        error_type: None,
        anthropic: false,
        availability_code: Some("model_deprecated".into()),
        fallback_models: vec![MINI_MODEL.into()],
    });
    r
}

#[test]
fn lifecycle_grace_passes_the_replacement_serving() {
    let result = case_of(vec![rerouted("g", T0 + S)]).judge(Conformance::LifecycleGrace);
    assert_passes(&result);
    assert!(result.detail.starts_with("all 1 "), "{}", result.detail);
}

#[test]
fn lifecycle_grace_fails_the_deprecated_model_serving() {
    let mut r = sent_at(answer("g", LEGACY, LEGACY_MODEL, Some("0.033")), T0 + S);
    r.conformance.original_model = Some(LEGACY_MODEL.into());
    let a = served("g", "oa", "gpt-4", usage(1000, 400, 0, 50));
    assert_fails(
        &Case::new(vec![r], vec![a]).judge(Conformance::LifecycleGrace),
        &["g"],
        "served as `openai/legacy`, not by the replacement `openai/gpt-4o-mini`",
    );
}

#[test]
fn lifecycle_grace_fails_a_refusal_during_grace() {
    let r = sent_at(error_answer("g", LEGACY, 404), T0 + S);
    assert_fails(
        &Case::new(vec![r], Vec::new()).judge(Conformance::LifecycleGrace),
        &["g"],
        "status 404 during the grace period of `openai/legacy`",
    );
}

#[test]
fn lifecycle_grace_fails_a_missing_original_model_header() {
    let (mut r, a) = rerouted("g", T0 + S);
    r.conformance.original_model = None;
    assert_fails(
        &case_of(vec![(r, a)]).judge(Conformance::LifecycleGrace),
        &["g"],
        "x-original-model is None, not `openai/legacy`",
    );
}

#[test]
fn lifecycle_grace_fails_an_answer_not_served_by_a_route_of_the_replacement() {
    let (r, a) = rerouted("g", T0 + S);
    let a = Record {
        model: Some("gpt-4".into()),
        ..a
    };
    assert_fails(
        &case_of(vec![(r, a)]).judge(Conformance::LifecycleGrace),
        &["g"],
        "no mock attempt on a route of the replacement served it",
    );
}

#[test]
fn lifecycle_grace_does_not_judge_requests_near_the_removal() {
    // 0.25 s of real time before the removal: either side.
    let near = sent_at(error_answer("near", LEGACY, 404), T0 + 1_750 * MS);
    let (good, a) = rerouted("g", T0 + S);
    let result = Case::new(vec![good, near], vec![a]).judge(Conformance::LifecycleGrace);
    assert_passes(&result);
    assert!(result.detail.starts_with("all 1 "), "{}", result.detail);

    // 0.35 s before it: judged.
    let judged = sent_at(error_answer("judged", LEGACY, 404), T0 + 1_650 * MS);
    let result = Case::new(vec![judged], Vec::new()).judge(Conformance::LifecycleGrace);
    assert_fails(&result, &["judged"], "status 404 during the grace period");
}

#[test]
fn lifecycle_removed_passes_a_404_model_deprecated() {
    let result = Case::new(vec![deprecated("x", T0 + 3 * S)], Vec::new()).judge(Conformance::LifecycleRemoved);
    assert_passes(&result);
    assert!(result.detail.starts_with("all 1 "), "{}", result.detail);
}

#[test]
fn lifecycle_removed_fails_another_status() {
    let r = sent_at(error_answer("x", LEGACY, 502), T0 + 3 * S);
    assert_fails(
        &Case::new(vec![r], Vec::new()).judge(Conformance::LifecycleRemoved),
        &["x"],
        "status 502 for `openai/legacy`, removed: expected 404",
    );
}

#[test]
fn lifecycle_removed_fails_a_removed_model_still_served() {
    let (r, a) = rerouted("x", T0 + 3 * S);
    assert_fails(
        &case_of(vec![(r, a)]).judge(Conformance::LifecycleRemoved),
        &["x"],
        "status 200 for `openai/legacy`, removed: expected 404",
    );
}

#[test]
fn lifecycle_removed_fails_a_404_without_the_availability_code() {
    let mut r = deprecated("x", T0 + 3 * S);
    r.conformance.error_shape = Some(ErrorShape {
        ok: true,
        error_type: None,
        anthropic: false,
        ..ErrorShape::default()
    });
    assert_fails(
        &Case::new(vec![r], Vec::new()).judge(Conformance::LifecycleRemoved),
        &["x"],
        "the 404 has no error.availability.code = \"model_deprecated\"",
    );
}

#[test]
fn lifecycle_removed_fails_a_404_not_naming_the_replacement() {
    let mut r = deprecated("x", T0 + 3 * S);
    if let Some(shape) = r.conformance.error_shape.as_mut() {
        shape.fallback_models = vec![LEGACY_MODEL.into()];
    }
    assert_fails(
        &Case::new(vec![r], Vec::new()).judge(Conformance::LifecycleRemoved),
        &["x"],
        "error.availability.fallback_models does not name `openai/gpt-4o-mini`",
    );
}

#[test]
fn lifecycle_removed_fails_an_upstream_attempt() {
    let attempts = vec![attempt("x", "oa", "gpt-4", 404, T0 + 3 * S, T0 + 3 * S + MS)];
    assert_fails(
        &Case::new(vec![deprecated("x", T0 + 3 * S)], attempts).judge(Conformance::LifecycleRemoved),
        &["x"],
        "an upstream attempt was made for a removed model",
    );
}

#[test]
fn lifecycle_removed_fails_a_charge() {
    let mut r = deprecated("x", T0 + 3 * S);
    r.cost = Some("0.001".into());
    assert_fails(
        &Case::new(vec![r], Vec::new()).judge(Conformance::LifecycleRemoved),
        &["x"],
        "a removed model's request was charged",
    );
}

#[test]
fn lifecycle_removed_does_not_judge_requests_near_the_removal() {
    // 0.25 s of real time after the removal: the router may still serve it.
    let (near, a) = rerouted("near", T0 + 2_250 * MS);
    let result = Case::new(vec![deprecated("x", T0 + 3 * S), near], vec![a]).judge(Conformance::LifecycleRemoved);
    assert_passes(&result);
    assert!(result.detail.starts_with("all 1 "), "{}", result.detail);
}

#[test]
fn lifecycle_follows_a_warped_clock_without_a_start() {
    // The router starts at 2027-01-29 (real time) and runs a day per second,
    // so 3 s in it is 2027-02-01: `openai/legacy` is removed.
    let toml = FIXTURE.replace(
        r#"clock = { start = "2027-01-29T00:00:00Z", speed = 86400 }"#,
        "clock = { speed = 86400 }",
    );
    let started: jiff::Timestamp = "2027-01-29T00:00:00Z".parse().unwrap();
    let started_us = u64::try_from(started.as_microsecond()).unwrap();
    let mut case = Case::of(&toml, vec![deprecated("x", started_us + 3 * S)], Vec::new());
    case.started_us = started_us;
    assert_passes(&case.judge(Conformance::LifecycleRemoved));
}

// ---------------------------------------------------------------------------
// system-prefix, error-shape
// ---------------------------------------------------------------------------

fn claude_attempt(id: &str, system: &str, received_us: u64) -> Record {
    Record {
        system_prompt: Some(system.into()),
        received_us,
        finished_us: received_us + MS,
        ..served(id, "an", "claude", usage(100, 0, 0, 5))
    }
}

#[test]
fn system_prefix_passes_the_prefix_then_the_callers_prompt() {
    let case = Case::new(
        vec![
            answer("c", CLAUDE, CLAUDE_MODEL, Some("0")),
            answer("m", MINI, MINI_MODEL, Some("0")),
        ],
        vec![
            claude_attempt("c", "You are Claude.\nBe brief.", T0),
            served("m", "oa", "gpt-4o-mini", usage(10, 0, 0, 5)),
        ],
    );
    let result = case.judge(Conformance::SystemPrefix);
    assert_passes(&result);
    assert!(result.detail.starts_with("all 1 "), "{}", result.detail);
}

#[test]
fn system_prefix_fails_a_prompt_without_the_prefix() {
    let case = Case::new(
        vec![answer("c", CLAUDE, CLAUDE_MODEL, Some("0"))],
        vec![claude_attempt("c", "Be brief.", T0)],
    );
    assert_fails(
        &case.judge(Conformance::SystemPrefix),
        &["c"],
        "`an` received the system prompt \"Be brief.\", without the prefix \"You are Claude.\"",
    );
}

#[test]
fn system_prefix_fails_a_prompt_that_lost_the_callers_own() {
    let case = Case::new(
        vec![answer("c", CLAUDE, CLAUDE_MODEL, Some("0"))],
        vec![claude_attempt("c", "You are Claude.", T0)],
    );
    assert_fails(
        &case.judge(Conformance::SystemPrefix),
        &["c"],
        "the caller's system prompt \"Be brief.\" is missing after the prefix",
    );
}

#[test]
fn system_prefix_judges_every_attempt_of_a_failed_request() {
    let case = Case::new(
        vec![error_answer("c", CLAUDE, 502)],
        vec![
            claude_attempt("c", "You are Claude.\nBe brief.", T0),
            claude_attempt("c", "Be brief.", T0 + 10 * MS),
        ],
    );
    let result = case.judge(Conformance::SystemPrefix);
    assert_fails(&result, &["c"], "1 of 2 upstream attempts");
}

#[test]
fn error_shape_passes_openai_shaped_errors() {
    let case = Case::new(
        vec![answer("a", MINI, MINI_MODEL, Some("0")), error_answer("e", MINI, 429)],
        Vec::new(),
    );
    let result = case.judge(Conformance::ErrorShape);
    assert_passes(&result);
    assert!(result.detail.starts_with("all 1 "), "{}", result.detail);
}

#[test]
fn error_shape_fails_another_body() {
    let mut bad = error_answer("e", MINI, 500);
    bad.conformance.error_shape = None;
    bad.error = Some("upstream exploded".into());
    let case = Case::new(vec![error_answer("ok", MINI, 429), bad], Vec::new());
    assert_fails(
        &case.judge(Conformance::ErrorShape),
        &["e"],
        "1 of 2 error answers do not conform; first: e: the 500 body is not an OpenAI-shaped error (upstream exploded)",
    );
}
