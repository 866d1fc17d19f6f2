"""The official Anthropic Python SDK against the gauntlet reference router's
Messages API.

Usage: router_messages_sdk.py ROUTER_URL

ROUTER_URL is a `gauntlet router` (no path) whose config the Rust test
(tests/sdk/mod.rs, fixture sdk/messages-router.toml) writes with the
constants below: the key KEY, the key RPM_KEY limited to one request a
minute, ANTHROPIC_MODEL and OPENAI_MODEL served by an Anthropic- and an
OpenAI-dialect mock, the TOOL_MODELS answering TOOL_NAME(TOOL_INPUT), and
REMOVED_MODEL removed in favour of OPENAI_MODEL.

The SDK (2.12.0) sends its key as `Authorization: Bearer`; the x-api-key
case sets the header itself. Prints one `ok: ...` line per case; any failed
assert exits non-zero.
"""

import sys

import anthropic
from anthropic import Anthropic
from anthropic_common import MAX_TOKENS, MESSAGES, TOOL_INPUT, TOOL_NAME, TOOLS, check_usage, ok

KEY = "sk-gauntlet-sdk"
RPM_KEY = "sk-gauntlet-sdk-rpm"
ANTHROPIC_MODEL = "anthropic/claude-sonnet-4"
OPENAI_MODEL = "openai/gpt-4o-mini"
TOOL_MODELS = ["anthropic/claude-tools", "openai/gpt-4o-mini-tools"]
REMOVED_MODEL = "openai/gpt-3.5-turbo-0301"


def message(client, model):
    raw = client.messages.with_raw_response.create(model=model, max_tokens=MAX_TOKENS, messages=MESSAGES)
    cost = raw.headers.get("x-gauntlet-cost")
    assert cost and float(cost) > 0, f"x-gauntlet-cost is {cost!r}"
    m = raw.parse()
    assert m.type == "message" and m.role == "assistant", f"type {m.type!r}, role {m.role!r}"
    assert m.model == model, f"model is {m.model!r}, asked {model!r}"
    assert len(m.content) == 1 and m.content[0].type == "text", f"content is {m.content!r}"
    assert m.content[0].text, "no text"
    assert m.stop_reason == "end_turn", f"stop_reason is {m.stop_reason!r}"
    check_usage(m.usage, f"message of {model}")
    ok(f"messages.create {model}: {len(m.content[0].text)} chars, x-gauntlet-cost {cost}")


def stream_helper(client, model):
    deltas = 0
    with client.messages.stream(model=model, max_tokens=MAX_TOKENS, messages=MESSAGES) as stream:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                deltas += 1
        final = stream.get_final_message()
    assert final.model == model, f"model is {final.model!r}"
    assert final.stop_reason == "end_turn", f"stop_reason is {final.stop_reason!r}"
    text = "".join(b.text for b in final.content if b.type == "text")
    assert text, "the final message has no text"
    check_usage(final.usage, f"stream of {model}")
    assert final.usage.output_tokens == deltas, f"output_tokens {final.usage.output_tokens} != {deltas} text deltas"
    ok(f"messages.stream {model}: {deltas} text deltas = output_tokens")


def stream_raw(client, model):
    types = [e.type for e in client.messages.create(model=model, max_tokens=MAX_TOKENS, messages=MESSAGES, stream=True)]
    assert types and types[0] == "message_start", f"first event: {types}"
    assert types[-1] == "message_stop", f"last event: {types}"
    assert types.count("message_delta") == 1, f"message_delta events: {types}"
    assert "content_block_start" in types and "content_block_stop" in types, f"no content block: {types}"
    ok(f"stream=True {model}: {len(types)} events, message_start .. message_stop")


def tool_use(client, model):
    m = client.messages.create(model=model, max_tokens=MAX_TOKENS, messages=MESSAGES, tools=TOOLS)
    assert m.stop_reason == "tool_use", f"{model}: stop_reason is {m.stop_reason!r}"
    blocks = [b for b in m.content if b.type == "tool_use"]
    assert len(blocks) == 1, f"{model}: content is {m.content!r}"
    assert blocks[0].name == TOOL_NAME and blocks[0].input == TOOL_INPUT, f"tool_use block {blocks[0]!r}"

    # The tool's result goes back as the next turn, then a streamed answer.
    history = MESSAGES + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": blocks[0].id, "content": "sunny, 21 C"}]},
    ]
    with client.messages.stream(model=model, max_tokens=MAX_TOKENS, messages=history, tools=TOOLS) as stream:
        deltas = sum(
            1 for e in stream if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
        )
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use", f"{model}: stop_reason is {final.stop_reason!r}"
    blocks = [b for b in final.content if b.type == "tool_use"]
    assert len(blocks) == 1 and blocks[0].id, f"{model}: final content is {final.content!r}"
    assert blocks[0].name == TOOL_NAME and blocks[0].input == TOOL_INPUT, f"{model}: streamed {blocks[0]!r}"
    check_usage(final.usage, f"tool stream of {model}")
    ok(f"tool_use {model}: whole and streamed ({deltas} input_json deltas) -> {blocks[0].input}")


def rate_limited(base_url):
    limited = Anthropic(base_url=base_url, api_key=RPM_KEY, max_retries=0, timeout=30)
    limited.messages.create(model=OPENAI_MODEL, max_tokens=MAX_TOKENS, messages=MESSAGES)
    try:
        limited.messages.create(model=OPENAI_MODEL, max_tokens=MAX_TOKENS, messages=MESSAGES)
    except anthropic.RateLimitError as e:
        assert e.status_code == 429, f"status {e.status_code}"
        retry_after = e.response.headers.get("retry-after")
        assert retry_after and int(retry_after) >= 1, f"retry-after is {retry_after!r}"
        assert e.type == "rate_limit_error", f"error type {e.type!r} in {e.body!r}"
        remaining = e.response.headers.get("anthropic-ratelimit-requests-remaining")
        assert remaining == "0", f"anthropic-ratelimit-requests-remaining is {remaining!r}"
        ok(f"second request a minute -> RateLimitError, retry-after {retry_after}")
    else:
        raise AssertionError("the second request of a 1-rpm key was served, want a 429 (anthropic.RateLimitError)")


def removed_model(client):
    try:
        client.messages.create(model=REMOVED_MODEL, max_tokens=MAX_TOKENS, messages=MESSAGES)
    except anthropic.NotFoundError as e:
        assert e.status_code == 404, f"status {e.status_code}"
        assert e.type == "not_found_error", f"error type {e.type!r} in {e.body!r}"
        assert OPENAI_MODEL in str(e), f"the message does not name the replacement: {e}"
        ok(f"removed model -> NotFoundError: {e}")
    else:
        raise AssertionError(f"{REMOVED_MODEL} was served, want a 404 (anthropic.NotFoundError)")


def unknown_key(base_url):
    stranger = Anthropic(base_url=base_url, api_key="sk-nobody", max_retries=0, timeout=30)
    try:
        stranger.messages.create(model=OPENAI_MODEL, max_tokens=MAX_TOKENS, messages=MESSAGES)
    except anthropic.AuthenticationError as e:
        assert e.type == "authentication_error", f"error type {e.type!r}"
        ok("unknown key -> AuthenticationError")
    else:
        raise AssertionError("an unknown key was served, want a 401 (anthropic.AuthenticationError)")


def x_api_key(base_url):
    client = Anthropic(base_url=base_url, api_key=None, default_headers={"x-api-key": KEY}, max_retries=0, timeout=30)
    m = client.messages.create(model=ANTHROPIC_MODEL, max_tokens=MAX_TOKENS, messages=MESSAGES)
    assert m.content, "no content"
    ok("x-api-key instead of a bearer key")


def count_tokens(client):
    counted = client.messages.count_tokens(model=ANTHROPIC_MODEL, messages=MESSAGES, system="Be brief.")
    assert counted.input_tokens > 0, f"input_tokens {counted.input_tokens}"
    ok(f"messages.count_tokens: {counted.input_tokens}")


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} ROUTER_URL")
    root = sys.argv[1].rstrip("/")
    print(f"anthropic {anthropic.__version__} against {root}", flush=True)
    # The SDK appends /v1/messages to the base URL: the root serves /v1, and
    # ROOT/api serves /api/v1.
    for base_url in (root, root + "/api"):
        client = Anthropic(base_url=base_url, api_key=KEY, max_retries=0, timeout=30)
        for model in (ANTHROPIC_MODEL, OPENAI_MODEL):
            message(client, model)
            stream_helper(client, model)
            stream_raw(client, model)
    client = Anthropic(base_url=root, api_key=KEY, max_retries=0, timeout=30)
    for model in TOOL_MODELS:
        tool_use(client, model)
    count_tokens(client)
    removed_model(client)
    unknown_key(root)
    x_api_key(root)
    rate_limited(root)


if __name__ == "__main__":
    main()
