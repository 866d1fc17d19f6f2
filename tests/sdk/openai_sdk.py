"""The official OpenAI Python SDK against a gauntlet mock provider.

Usage: openai_sdk.py BASE_URL [tools]

Without `tools`, BASE_URL is a `gauntlet mock --dialect openai` provider
(any model name, default behaviour). With `tools`, it is a provider whose
model TOOL_MODEL answers with the tool call TOOL_NAME(TOOL_ARGUMENTS); the
Rust test (tests/sdk.rs) writes that config with the same values.

Prints one `ok: ...` line per case; any failed assert exits non-zero.
"""

import json
import sys

import openai
from openai import OpenAI

TOOL_MODEL = "gauntlet-tools"
TOOL_NAME = "get_weather"
TOOL_ARGUMENTS = {"city": "Paris", "unit": "celsius"}

MESSAGES = [{"role": "user", "content": "Say something."}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def ok(case):
    print(f"ok: {case}", flush=True)


def check_usage(usage, where):
    assert usage is not None, f"{where}: no usage"
    assert usage.prompt_tokens > 0, f"{where}: prompt_tokens = {usage.prompt_tokens}"
    assert usage.completion_tokens > 0, f"{where}: completion_tokens = {usage.completion_tokens}"
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, (
        f"{where}: total_tokens {usage.total_tokens} != prompt {usage.prompt_tokens}"
        f" + completion {usage.completion_tokens}"
    )
    details = usage.prompt_tokens_details
    assert details is not None, f"{where}: no usage.prompt_tokens_details"
    assert details.cached_tokens is not None, f"{where}: no prompt_tokens_details.cached_tokens"
    assert 0 <= details.cached_tokens <= usage.prompt_tokens, (
        f"{where}: cached_tokens {details.cached_tokens} outside 0..={usage.prompt_tokens}"
    )


def completion(client, model):
    r = client.chat.completions.create(model=model, messages=MESSAGES)
    assert r.object == "chat.completion", f"object is {r.object!r}"
    assert r.model == model, f"model is {r.model!r}, asked {model!r}"
    assert len(r.choices) == 1, f"{len(r.choices)} choices"
    content = r.choices[0].message.content
    assert isinstance(content, str) and content, f"content is {content!r}"
    assert r.choices[0].finish_reason == "stop", f"finish_reason is {r.choices[0].finish_reason!r}"
    check_usage(r.usage, "completion")
    ok(f"completion: {len(content)} chars, usage {r.usage.prompt_tokens}+{r.usage.completion_tokens}")


def streaming(client, model):
    stream = client.chat.completions.create(
        model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks, "the stream had no chunk"
    for c in chunks:
        assert c.object == "chat.completion.chunk", f"chunk object is {c.object!r}"
    usage_chunks = [c for c in chunks if not c.choices]
    assert len(usage_chunks) == 1, f"{len(usage_chunks)} chunks with empty choices, want exactly 1"
    assert chunks[-1] is usage_chunks[0], "the chunk with empty choices is not the last one"
    for c in chunks[:-1]:
        assert c.usage is None, f"usage on a chunk before the last: {c.usage}"
    usage = chunks[-1].usage
    check_usage(usage, "stream")
    pieces = [c.choices[0].delta.content for c in chunks[:-1] if c.choices[0].delta.content]
    text = "".join(pieces)
    assert text, "the streamed content is empty"
    finishes = [c.choices[0].finish_reason for c in chunks[:-1] if c.choices[0].finish_reason]
    assert finishes == ["stop"], f"finish reasons {finishes}, want ['stop']"
    assert usage.completion_tokens == len(pieces), (
        f"completion_tokens {usage.completion_tokens} != {len(pieces)} content chunks"
    )
    ok(f"stream: {len(chunks)} chunks, {len(pieces)} content chunks = completion_tokens, one usage chunk last")


def models(client):
    page = client.models.list()
    ids = [m.id for m in page.data]
    ok(f"models.list: {len(ids)} models {ids}")
    return ids


def bad_request(client, model):
    try:
        client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=-1)
    except openai.BadRequestError as e:
        assert e.status_code == 400, f"status {e.status_code}"
        assert "max_tokens" in str(e), f"the message does not name max_tokens: {e}"
        ok(f"max_tokens=-1 -> BadRequestError: {e}")
    else:
        raise AssertionError("max_tokens=-1 was accepted, want a 400 (openai.BadRequestError)")


def tool_call_whole(client):
    r = client.chat.completions.create(model=TOOL_MODEL, messages=MESSAGES, tools=TOOLS)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls", f"finish_reason is {choice.finish_reason!r}"
    calls = choice.message.tool_calls
    assert calls and len(calls) == 1, f"tool_calls is {calls!r}"
    assert calls[0].function.name == TOOL_NAME, f"tool name {calls[0].function.name!r}"
    args = json.loads(calls[0].function.arguments)
    assert args == TOOL_ARGUMENTS, f"arguments {args!r}, want {TOOL_ARGUMENTS!r}"
    check_usage(r.usage, "tool completion")
    ok(f"tool call (whole): {TOOL_NAME}({calls[0].function.arguments})")


def tool_call_stream(client):
    # By hand: accumulate the deltas by tool-call index.
    stream = client.chat.completions.create(
        model=TOOL_MODEL,
        messages=MESSAGES,
        tools=TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    calls = {}
    deltas = 0
    finish = None
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for d in choice.delta.tool_calls or []:
                deltas += 1
                call = calls.setdefault(d.index, {"id": None, "name": "", "arguments": ""})
                if d.id:
                    call["id"] = d.id
                if d.function and d.function.name:
                    call["name"] += d.function.name
                if d.function and d.function.arguments:
                    call["arguments"] += d.function.arguments
    assert finish == "tool_calls", f"finish_reason is {finish!r}"
    assert list(calls) == [0], f"tool-call indexes {list(calls)}"
    call = calls[0]
    assert call["id"], "the streamed tool call has no id"
    assert call["name"] == TOOL_NAME, f"tool name {call['name']!r}"
    args = json.loads(call["arguments"])
    assert args == TOOL_ARGUMENTS, f"arguments {args!r}, want {TOOL_ARGUMENTS!r}"
    check_usage(usage, "tool stream")
    assert usage.completion_tokens == deltas, f"completion_tokens {usage.completion_tokens} != {deltas} deltas"
    ok(f"tool call (stream, accumulated by hand): {deltas} deltas -> {call['arguments']}")

    # The SDK's own accumulation.
    with client.chat.completions.stream(model=TOOL_MODEL, messages=MESSAGES, tools=TOOLS) as s:
        final = s.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls and len(calls) == 1, f"the SDK's final tool_calls is {calls!r}"
    assert calls[0].function.name == TOOL_NAME, f"tool name {calls[0].function.name!r}"
    args = json.loads(calls[0].function.arguments)
    assert args == TOOL_ARGUMENTS, f"the SDK's arguments {args!r}, want {TOOL_ARGUMENTS!r}"
    ok("tool call (chat.completions.stream final completion)")


def main():
    if len(sys.argv) not in (2, 3) or (len(sys.argv) == 3 and sys.argv[2] != "tools"):
        sys.exit(f"usage: {sys.argv[0]} BASE_URL [tools]")
    base_url = sys.argv[1].rstrip("/")
    client = OpenAI(base_url=base_url + "/v1", api_key="sk-test", max_retries=0, timeout=30)
    print(f"openai {openai.__version__} against {base_url}", flush=True)
    if len(sys.argv) == 3:
        ids = models(client)
        assert TOOL_MODEL in ids, f"{TOOL_MODEL} is not listed: {ids}"
        tool_call_whole(client)
        tool_call_stream(client)
    else:
        model = "gpt-4o-mini"
        completion(client, model)
        streaming(client, model)
        models(client)
        bad_request(client, model)


if __name__ == "__main__":
    main()
