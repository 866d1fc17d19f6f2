"""The official Anthropic Python SDK against a gauntlet mock provider.

Usage: anthropic_sdk.py BASE_URL [tools]

Without `tools`, BASE_URL is a `gauntlet mock --dialect anthropic` provider
(any model name, default behaviour). With `tools`, it is a provider whose
model TOOL_MODEL answers with the tool call TOOL_NAME(TOOL_INPUT); the Rust
test (tests/sdk.rs) writes that config with the same values.

Prints one `ok: ...` line per case; any failed assert exits non-zero.
"""

import sys

import anthropic
from anthropic import Anthropic
from anthropic_common import MAX_TOKENS, MESSAGES, TOOL_INPUT, TOOL_NAME, TOOLS, check_usage, ok

TOOL_MODEL = "gauntlet-tools"


def message(client, model):
    m = client.messages.create(model=model, max_tokens=MAX_TOKENS, messages=MESSAGES)
    assert m.type == "message" and m.role == "assistant", f"type {m.type!r}, role {m.role!r}"
    assert m.model == model, f"model is {m.model!r}, asked {model!r}"
    assert len(m.content) == 1 and m.content[0].type == "text", f"content is {m.content!r}"
    text = m.content[0].text
    assert isinstance(text, str) and text, f"text is {text!r}"
    assert m.stop_reason == "end_turn", f"stop_reason is {m.stop_reason!r}"
    check_usage(m.usage, "message")
    ok(f"messages.create: {len(text)} chars, usage in={m.usage.input_tokens} out={m.usage.output_tokens}")


def stream_helper(client, model):
    deltas = 0
    with client.messages.stream(model=model, max_tokens=MAX_TOKENS, messages=MESSAGES) as stream:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                deltas += 1
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn", f"stop_reason is {final.stop_reason!r}"
    text = "".join(b.text for b in final.content if b.type == "text")
    assert text, "the final message has no text"
    check_usage(final.usage, "messages.stream")
    assert final.usage.output_tokens == deltas, f"output_tokens {final.usage.output_tokens} != {deltas} text deltas"
    ok(f"messages.stream: {deltas} text deltas = output_tokens, {len(text)} chars")


def stream_raw(client, model):
    types = [e.type for e in client.messages.create(
        model=model, max_tokens=MAX_TOKENS, messages=MESSAGES, stream=True
    )]
    assert types, "the stream had no event"
    assert types[0] == "message_start", f"first event {types[0]!r}, want message_start: {types}"
    assert types[-1] == "message_stop", f"last event {types[-1]!r}, want message_stop: {types}"
    assert types.count("message_delta") == 1, f"{types.count('message_delta')} message_delta events: {types}"
    assert "content_block_start" in types and "content_block_stop" in types, f"no content block: {types}"
    ok(f"stream=True: {len(types)} events, message_start .. message_stop")


def models(client):
    page = client.models.list()
    ids = [m.id for m in page.data]
    ok(f"models.list: {len(ids)} models {ids}")
    return ids


def bad_request(client, model):
    # A missing max_tokens never leaves the SDK; a negative one does.
    try:
        client.messages.create(model=model, max_tokens=-1, messages=MESSAGES)
    except anthropic.BadRequestError as e:
        assert e.status_code == 400, f"status {e.status_code}"
        assert "max_tokens" in str(e), f"the message does not name max_tokens: {e}"
        ok(f"max_tokens=-1 -> BadRequestError: {e}")
    else:
        raise AssertionError("max_tokens=-1 was accepted, want a 400 (anthropic.BadRequestError)")


def tool_use(client):
    m = client.messages.create(model=TOOL_MODEL, max_tokens=MAX_TOKENS, messages=MESSAGES, tools=TOOLS)
    assert m.stop_reason == "tool_use", f"stop_reason is {m.stop_reason!r}"
    blocks = [b for b in m.content if b.type == "tool_use"]
    assert len(blocks) == 1, f"content is {m.content!r}"
    assert blocks[0].name == TOOL_NAME and blocks[0].input == TOOL_INPUT, f"tool_use block {blocks[0]!r}"
    ok(f"tool_use (whole): {TOOL_NAME}({blocks[0].input})")

    deltas = 0
    with client.messages.stream(model=TOOL_MODEL, max_tokens=MAX_TOKENS, messages=MESSAGES, tools=TOOLS) as stream:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                deltas += 1
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use", f"stop_reason is {final.stop_reason!r}"
    blocks = [b for b in final.content if b.type == "tool_use"]
    assert len(blocks) == 1, f"final content is {final.content!r}"
    block = blocks[0]
    assert block.id, "the streamed tool_use block has no id"
    assert block.name == TOOL_NAME, f"tool name {block.name!r}"
    assert block.input == TOOL_INPUT, f"input {block.input!r}, want {TOOL_INPUT!r}"
    check_usage(final.usage, "tool stream")
    assert final.usage.output_tokens == deltas, f"output_tokens {final.usage.output_tokens} != {deltas} json deltas"
    ok(f"tool_use (messages.stream final message): {deltas} input_json deltas -> {block.input}")


def main():
    if len(sys.argv) not in (2, 3) or (len(sys.argv) == 3 and sys.argv[2] != "tools"):
        sys.exit(f"usage: {sys.argv[0]} BASE_URL [tools]")
    base_url = sys.argv[1].rstrip("/")
    client = Anthropic(base_url=base_url, api_key="sk-test", max_retries=0, timeout=30)
    print(f"anthropic {anthropic.__version__} against {base_url}", flush=True)
    if len(sys.argv) == 3:
        ids = models(client)
        assert TOOL_MODEL in ids, f"{TOOL_MODEL} is not listed: {ids}"
        tool_use(client)
    else:
        model = "claude-sonnet-4"
        message(client, model)
        stream_helper(client, model)
        stream_raw(client, model)
        models(client)
        bad_request(client, model)


if __name__ == "__main__":
    main()
