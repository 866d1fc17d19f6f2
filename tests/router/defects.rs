//! Deliberate router defects: each one, switched on, makes the router answer
//! the same request differently from the clean router, in exactly the way its
//! name says, so that the harness's checks have something to catch. Every
//! test runs the same request against a clean stack and a defective one (the
//! mocks seed their answers by `x-gauntlet-request-id` and their own seed, so
//! both stacks see the same usage).

use http::StatusCode;
use serde_json::{Value, json};

use gauntlet::router::Defects;

use crate::support::{
    Answer, DEFECTS, Price, Stack, assert_error_shape, patiently, picos, picos_at, raw_json_at, records_for,
    served_record,
};

const REQUEST_ID: &str = "x-gauntlet-request-id";

/// `openai/gpt-4o-mini`: 0.15 / 0.60, cache reads 0.075.
const MINI: Price = Price {
    prompt: 150_000,
    completion: 600_000,
    cache_read: 75_000,
    cache_write: 150_000,
};
/// `openai/gpt-4-legacy`: 30 / 60.
const LEGACY: Price = Price {
    prompt: 30_000_000,
    completion: 60_000_000,
    cache_read: 30_000_000,
    cache_write: 30_000_000,
};
/// `anthropic/claude-sonnet-4`: 3 / 15, cache reads 0.30, writes 3.75.
const SONNET: Price = Price {
    prompt: 3_000_000,
    completion: 15_000_000,
    cache_read: 300_000,
    cache_write: 3_750_000,
};

/// Like [`Stack::start`], with the named defects switched on (they are set
/// programmatically, never from TOML).
async fn start(toml: &str, defects: &[&str]) -> Stack {
    Stack::start_with(toml, |config| {
        assert_eq!(config.defects, Defects::default(), "never read from TOML");
        for name in defects {
            config.defects.enable(name).unwrap();
        }
    })
    .await
}

/// A clean stack and one with `defect`.
async fn pair(defect: &str) -> (Stack, Stack) {
    (start(DEFECTS, &[]).await, start(DEFECTS, &[defect]).await)
}

const PROMPT: &str = "Tell me, in a few words, why integer picodollars beat floating point dollars for money.";

fn body(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "max_tokens": 100, "messages": [{"role": "user", "content": PROMPT}]})
}

async fn whole(stack: &Stack, key: &str, model: &str, id: &str) -> Answer {
    stack
        .send(
            "POST",
            "/api/v1/chat/completions",
            Some(key),
            Some(&body(model, false)),
            &[(REQUEST_ID, id)],
        )
        .await
}

/// Settled spend of `key`, in picodollars.
async fn spent(stack: &Stack, key: &str) -> i64 {
    stack.money(key).await.1
}

#[test]
fn names_are_in_order_and_unknown_names_list_them() {
    assert_eq!(
        Defects::NAMES,
        [
            "charge-failed-requests",
            "double-count-cached-tokens",
            "bill-requested-model",
            "ignore-retry-after",
            "no-jitter",
            "retry-forever",
            "retry-after-first-byte",
            "cap-retry-after",
            "no-retry-after-on-give-up",
            "buffer-stream",
            "drop-final-usage",
            "serve-removed-model",
            "removed-model-502",
            "no-overdraft-guard",
            "skip-system-prefix",
            "delay-first-chunk",
            "misreport-usage",
            "no-retry-after-on-limits",
            "openai-errors-on-messages",
            "bill-at-end-price",
            "credits-never-expire",
        ]
    );
    let mut defects = Defects::default();
    for name in Defects::NAMES {
        defects.enable(name).unwrap();
    }
    assert_eq!(defects.enabled(), Defects::NAMES);
    let retry = defects.retry();
    assert!(retry.ignore_retry_after && retry.no_jitter && retry.retry_forever && retry.retry_after_first_byte);
    assert!(retry.cap_retry_after);
    let error = Defects::default().enable("charge-everything").unwrap_err().to_string();
    assert!(
        error.contains("charge-everything") && error.contains(&Defects::NAMES.join(", ")),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charge_failed_requests_charges_the_reservation_of_failures() {
    let (clean, defective) = pair("charge-failed-requests").await;
    // At least max_tokens (100) completion tokens at 0.60 $/M are held.
    let least_held = 100 * MINI.completion;
    for stack in [&clean, &defective] {
        let is_defective = std::ptr::eq(stack, &defective);
        // Every retry exhausted.
        let before = spent(stack, "sk-a").await;
        let answer = whole(stack, "sk-a", "openai/broken", "cf-broken").await;
        assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.text);
        assert_eq!(records_for(stack.journal("oai"), "cf-broken", 2).await.len(), 2);
        let charged = spent(stack, "sk-a").await - before;
        // Zero completion tokens.
        let silent = whole(stack, "sk-a", "openai/silent", "cf-silent").await;
        assert_eq!(silent.status, StatusCode::OK, "{}", silent.text);
        let silent_cost = picos_at(&silent.text, &["usage", "cost"]);
        // A stream that ends with an upstream error.
        let before = spent(stack, "sk-a").await;
        let streamed = stack
            .stream_raw("sk-a", &body("openai/midfail", true), &[(REQUEST_ID, "cf-midfail")])
            .await;
        assert_eq!(streamed.status, StatusCode::OK);
        assert!(streamed.data.iter().any(|d| d.contains("\"error\"")), "{streamed:?}");
        let stream_charged = spent(stack, "sk-a").await - before;
        assert_eq!(streamed.cost(), stream_charged, "told what was settled");
        let (credits, spent, available) = stack.money("sk-a").await;
        assert_eq!(available, credits - spent, "nothing left reserved");
        if is_defective {
            assert!(charged >= least_held, "exhausted retries charged {charged}");
            assert!(silent_cost >= least_held, "zero completion charged {silent_cost}");
            assert!(stream_charged >= least_held, "failed stream charged {stream_charged}");
        } else {
            assert_eq!((charged, silent_cost, stream_charged), (0, 0, 0));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_count_cached_tokens_bills_cached_prompt_tokens_twice() {
    let (clean, defective) = pair("double-count-cached-tokens").await;
    for (model, provider, price) in [
        ("openai/gpt-4o-mini", "oai", MINI),
        ("anthropic/claude-sonnet-4", "ant", SONNET),
    ] {
        let id = format!("dc-{provider}");
        let mut costs = Vec::new();
        for stack in [&clean, &defective] {
            let before = spent(stack, "sk-a").await;
            let answer = whole(stack, "sk-a", model, &id).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
            let cost = picos_at(&answer.text, &["usage", "cost"]);
            assert_eq!(spent(stack, "sk-a").await - before, cost, "told what was settled");
            let usage = served_record(stack.journal(provider), &id).await.usage.unwrap();
            costs.push((cost, usage));
        }
        let [(clean_cost, usage), (defective_cost, same)] = costs.try_into().unwrap();
        assert_eq!(usage, same, "both stacks saw the same usage");
        let cached = i64::from(usage.cache_read_tokens + usage.cache_write_tokens);
        assert!(cached > 0, "{usage:?}");
        assert_eq!(clean_cost, price.cost(&usage), "{model}");
        assert_eq!(defective_cost, price.cost(&usage) + cached * price.prompt, "{model}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bill_requested_model_bills_the_deprecated_models_price_in_grace() {
    let (clean, defective) = pair("bill-requested-model").await;
    let mut costs = Vec::new();
    for stack in [&clean, &defective] {
        let answer = whole(stack, "sk-a", "openai/gpt-4-legacy", "brm").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(answer.json["model"], "openai/gpt-4o-mini", "served by the replacement");
        let usage = served_record(stack.journal("oai"), "brm").await.usage.unwrap();
        costs.push((picos_at(&answer.text, &["usage", "cost"]), usage));
    }
    assert_eq!(costs[0].0, MINI.cost(&costs[0].1), "clean: the replacement's price");
    assert_eq!(
        costs[1].0,
        LEGACY.cost(&costs[1].1),
        "defective: the requested model's price"
    );
    assert_ne!(costs[0].0, costs[1].0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_stream_holds_every_chunk_until_the_upstream_ends() {
    let (clean, defective) = pair("buffer-stream").await;
    let mut texts = Vec::new();
    for stack in [&clean, &defective] {
        let streamed = stack
            .stream_with_headers("sk-a", &body("openai/paced", true), &[(REQUEST_ID, "bs")])
            .await;
        assert!(streamed.done && !streamed.broken, "{streamed:?}");
        assert_eq!(streamed.usage_chunks().len(), 1);
        let record = served_record(stack.journal("oai"), "bs").await;
        let last_sent_us = record.received_us + u64::from(*record.token_offsets_us.last().unwrap());
        let first_content = streamed
            .chunks
            .iter()
            .find(|(_, c)| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty())
            })
            .map(|(at, _)| stack.journal("oai").clock().at_us(*at))
            .unwrap();
        if std::ptr::eq(stack, &defective) {
            assert!(
                first_content >= last_sent_us,
                "buffered: the first content arrived before the last token was sent"
            );
        } else {
            assert!(
                first_content < last_sent_us,
                "relayed: the first content came at the end"
            );
        }
        texts.push(streamed.text());
    }
    assert!(!texts[0].is_empty());
    assert_eq!(texts[0], texts[1], "the buffered content is complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_final_usage_leaves_the_usage_chunk_out_but_still_bills() {
    let (clean, defective) = pair("drop-final-usage").await;
    let mut charges = Vec::new();
    for stack in [&clean, &defective] {
        let streamed = stack
            .stream_raw("sk-a", &body("openai/gpt-4o-mini", true), &[(REQUEST_ID, "dfu")])
            .await;
        assert_eq!(streamed.status, StatusCode::OK);
        assert!(streamed.done, "[DONE] is still sent: {streamed:?}");
        let expected = usize::from(!std::ptr::eq(stack, &defective));
        assert_eq!(streamed.usage_data().len(), expected, "{streamed:?}");
        charges.push(spent(stack, "sk-a").await);
    }
    assert!(charges[0] > 0);
    assert_eq!(charges[0], charges[1], "billing is unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_removed_model_keeps_serving_after_removal() {
    let (clean, defective) = pair("serve-removed-model").await;
    let gone = whole(&clean, "sk-a", "openai/gpt-3.5-old", "srm").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.text);
    let served = whole(&defective, "sk-a", "openai/gpt-3.5-old", "srm").await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.text);
    assert_eq!(served.json["model"], "openai/gpt-4o-mini");
    assert_eq!(served.header("x-original-model"), Some("openai/gpt-3.5-old"));
    let usage = served_record(defective.journal("oai"), "srm").await.usage.unwrap();
    assert_eq!(
        picos_at(&served.text, &["usage", "cost"]),
        MINI.cost(&usage),
        "the replacement's price"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_model_502_answers_a_removed_model_with_502() {
    let (clean, defective) = pair("removed-model-502").await;
    let gone = whole(&clean, "sk-a", "openai/gpt-3.5-old", "rm502").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.text);
    assert_eq!(gone.json["error"]["availability"]["code"], "model_deprecated");
    let before = defective.money("sk-a").await;
    let answer = whole(&defective, "sk-a", "openai/gpt-3.5-old", "rm502").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.text);
    let error = assert_error_shape(answer.status, &answer.json, &answer.text);
    assert!(error.get("availability").is_none(), "{}", answer.text);
    assert!(defective.journal("oai").is_empty(), "no upstream attempt");
    assert_eq!(defective.money("sk-a").await, before, "no charge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_overdraft_guard_forwards_what_the_balance_cannot_cover() {
    let (clean, defective) = pair("no-overdraft-guard").await;
    let refused = whole(&clean, "sk-poor", "openai/gpt-4o-mini", "nog").await;
    assert_eq!(refused.status, StatusCode::PAYMENT_REQUIRED, "{}", refused.text);
    assert!(clean.journal("oai").is_empty());

    let answer = whole(&defective, "sk-poor", "openai/gpt-4o-mini", "nog").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let cost = picos_at(&answer.text, &["usage", "cost"]);
    let usage = served_record(defective.journal("oai"), "nog").await.usage.unwrap();
    assert_eq!(cost, MINI.cost(&usage));
    let info = defective.send("GET", "/api/v1/key", Some("sk-poor"), None, &[]).await;
    let field = |name: &str| raw_json_at(&info.text, &["data", name]).unwrap();
    let credits = picos(&field("limit"));
    assert!(
        cost > credits,
        "the request costs {cost}, more than the {credits} credits"
    );
    assert_eq!(picos(&field("usage")), cost, "charged in full");
    let remaining = field("limit_remaining");
    let debt = remaining
        .strip_prefix('-')
        .unwrap_or_else(|| panic!("not overdrawn: {remaining}"));
    assert_eq!(picos(debt), cost - credits, "the balance went below zero");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_system_prefix_forwards_the_system_prompt_untouched() {
    let (clean, defective) = pair("skip-system-prefix").await;
    for (model, provider) in [("anthropic/claude-sonnet-4", "ant"), ("openai/gpt-4o-mini", "oai")] {
        let request = json!({"model": model, "max_tokens": 20,
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]});
        let mut prompts = Vec::new();
        for stack in [&clean, &defective] {
            let id = format!("ssp-{provider}");
            let answer = stack
                .send(
                    "POST",
                    "/api/v1/chat/completions",
                    Some("sk-a"),
                    Some(&request),
                    &[(REQUEST_ID, &id)],
                )
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
            let record = served_record(stack.journal(provider), &id).await;
            prompts.push(record.system_prompt.unwrap_or_default());
        }
        assert!(
            prompts[0].starts_with("PREFIX.") && prompts[0].contains("Be brief."),
            "{model}: {prompts:?}"
        );
        assert_eq!(prompts[1], "Be brief.", "{model}: the prefix is missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_defects_reach_the_retrier() {
    // A short deadline bounds `retry-forever` (the deadline still holds).
    let toml = DEFECTS.replace("deadline-ms = 1000", "deadline-ms = 300");
    let clean = start(&toml, &[]).await;
    let defective = start(&toml, &["retry-forever", "ignore-retry-after"]).await;
    for stack in [&clean, &defective] {
        let is_defective = std::ptr::eq(stack, &defective);
        // Always 500: retried up to attempts-per-provider, or until the deadline.
        let answer = patiently("a failing request", whole(stack, "sk-a", "openai/broken", "rf")).await;
        assert!(answer.status.is_server_error(), "{}", answer.json["error"]["message"]);
        // The journal may write the last attempt just after the router answered.
        let made = records_for(stack.journal("oai"), "rf", if is_defective { 3 } else { 2 })
            .await
            .len();
        if is_defective {
            assert!(made > 2, "retry-forever retried past the limit: {made} attempts");
        } else {
            assert_eq!(made, 2, "attempts-per-provider");
        }
        // Always 429 with Retry-After: 100 ms.
        let answer = patiently("a limited request", whole(stack, "sk-a", "openai/limited", "ra")).await;
        // Retried forever, it ends at (or just short of) the deadline instead.
        let expected: &[u16] = if is_defective { &[429, 504] } else { &[429] };
        let message = &answer.json["error"]["message"];
        assert!(
            expected.contains(&answer.status.as_u16()),
            "{}: {message}",
            answer.status
        );
        let records = records_for(stack.journal("oai"), "ra", 2).await;
        let gap_us = records[1].received_us - records[0].received_us;
        if is_defective {
            assert!(gap_us < 50_000, "Retry-After ignored, yet waited {gap_us} µs");
        } else {
            assert!(gap_us >= 100_000, "Retry-After honoured, yet waited only {gap_us} µs");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_retry_after_on_give_up_leaves_the_header_off_a_given_up_429() {
    let (clean, defective) = pair("no-retry-after-on-give-up").await;
    for (stack, id) in [(&clean, "gu-clean"), (&defective, "gu-bent")] {
        // Always 429 with Retry-After: 100 ms: given up after two attempts.
        let answer = patiently("a limited request", whole(stack, "sk-a", "openai/limited", id)).await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{}", answer.text);
        assert_error_shape(answer.status, &answer.json, &answer.text);
        let header = answer.header("retry-after");
        if std::ptr::eq(stack, &defective) {
            assert_eq!(header, None, "the defect leaves Retry-After off");
        } else {
            assert_eq!(header, Some("1"), "100 ms, rounded up to a whole second");
        }
    }
}
