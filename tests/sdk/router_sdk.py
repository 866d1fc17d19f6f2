"""The official OpenAI Python SDK against the gauntlet reference router.

Usage: router_sdk.py ROUTER_URL

ROUTER_URL is a `gauntlet router` (no path) whose config the Rust test
(tests/sdk.rs) writes with the constants below: the key KEY with credits,
OPENAI_MODEL served by an OpenAI-dialect mock, ANTHROPIC_MODEL by an
Anthropic-dialect one, and REMOVED_MODEL removed in favour of OPENAI_MODEL.

Prints one `ok: ...` line per case; any failed assert exits non-zero.
"""

import sys

import openai
from openai import OpenAI

KEY = "sk-gauntlet-sdk"
OPENAI_MODEL = "openai/gpt-4o-mini"
ANTHROPIC_MODEL = "anthropic/claude-sonnet-4"
REMOVED_MODEL = "openai/gpt-3.5-turbo-0301"

MESSAGES = [{"role": "user", "content": "Say something."}]


def ok(case):
    print(f"ok: {case}", flush=True)


def cost_of(usage, where):
    """The router's `usage.cost` (USD), an extra field the SDK keeps."""
    assert usage is not None, f"{where}: no usage"
    extra = usage.model_extra or {}
    assert "cost" in extra, f"{where}: no usage.cost among the extra fields {extra!r}"
    assert getattr(usage, "cost") == extra["cost"], f"{where}: usage.cost differs from model_extra['cost']"
    cost = extra["cost"]
    assert isinstance(cost, (int, float)) and cost > 0, f"{where}: usage.cost is {cost!r}"
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0, f"{where}: usage {usage}"
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, f"{where}: usage {usage}"
    return cost


def completion(client):
    raw = client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=MESSAGES)
    generation = raw.headers.get("x-generation-id")
    assert generation, "no X-Generation-Id header"
    r = raw.parse()
    assert r.object == "chat.completion", f"object is {r.object!r}"
    assert r.model == OPENAI_MODEL, f"model is {r.model!r}"
    content = r.choices[0].message.content
    assert isinstance(content, str) and content, f"content is {content!r}"
    assert r.choices[0].finish_reason == "stop", f"finish_reason is {r.choices[0].finish_reason!r}"
    cost = cost_of(r.usage, "completion")
    ok(f"completion: {len(content)} chars, usage.cost {cost} (usage.model_extra and usage.cost), {generation}")
    return cost


def streaming(client, model, stream_options):
    where = f"stream of {model} with stream_options={stream_options}"
    extra = {} if stream_options is None else {"stream_options": stream_options}
    chunks = list(client.chat.completions.create(model=model, messages=MESSAGES, stream=True, **extra))
    assert chunks, f"{where}: no chunk"
    for c in chunks:
        assert c.object == "chat.completion.chunk", f"{where}: chunk object is {c.object!r}"
        assert c.model == model, f"{where}: chunk model is {c.model!r}"
    usage_chunks = [c for c in chunks if not c.choices]
    assert len(usage_chunks) == 1, f"{where}: {len(usage_chunks)} chunks with empty choices, want exactly 1"
    assert chunks[-1] is usage_chunks[0], f"{where}: the usage chunk is not the last one"
    for c in chunks[:-1]:
        assert c.usage is None, f"{where}: usage before the last chunk: {c.usage}"
    cost = cost_of(chunks[-1].usage, where)
    pieces = [c.choices[0].delta.content for c in chunks[:-1] if c.choices[0].delta.content]
    assert pieces, f"{where}: no content"
    finishes = [c.choices[0].finish_reason for c in chunks[:-1] if c.choices[0].finish_reason]
    assert finishes == ["stop"], f"{where}: finish reasons {finishes}"
    assert chunks[-1].usage.completion_tokens == len(pieces), (
        f"{where}: completion_tokens {chunks[-1].usage.completion_tokens} != {len(pieces)} content chunks"
    )
    ok(f"{where}: {len(chunks)} chunks, one usage chunk last, usage.cost {cost}")
    return cost


def removed_model(client):
    try:
        client.chat.completions.create(model=REMOVED_MODEL, messages=MESSAGES)
    except openai.NotFoundError as e:
        assert e.status_code == 404, f"status {e.status_code}"
        body = e.body if isinstance(e.body, dict) else {}
        availability = body.get("availability") or {}
        assert availability.get("code") == "model_deprecated", f"availability {availability!r} in {e.body!r}"
        assert availability.get("fallback_models") == [OPENAI_MODEL], f"fallback_models in {e.body!r}"
        ok(f"removed model -> NotFoundError naming {availability['fallback_models']}")
    else:
        raise AssertionError(f"{REMOVED_MODEL} was served, want a 404 (openai.NotFoundError)")


def unknown_key(base_url):
    stranger = OpenAI(base_url=base_url, api_key="sk-nobody", max_retries=0, timeout=30)
    try:
        stranger.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
    except openai.AuthenticationError as e:
        assert e.status_code == 401, f"status {e.status_code}"
        ok(f"unknown key -> AuthenticationError: {e}")
    else:
        raise AssertionError("an unknown key was served, want a 401 (openai.AuthenticationError)")


def key_usage(client, costs):
    key = client.get("/key", cast_to=object)
    usage = key["data"]["usage"]
    assert abs(usage - sum(costs)) < 1e-12, f"the key spent {usage}, the answers cost {costs} (sum {sum(costs)})"
    ok(f"GET /key: usage {usage} = the sum of the {len(costs)} costs")


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} ROUTER_URL")
    base_url = sys.argv[1].rstrip("/") + "/api/v1"
    client = OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=30)
    print(f"openai {openai.__version__} against {base_url}", flush=True)
    costs = [completion(client)]
    costs.append(streaming(client, OPENAI_MODEL, {"include_usage": True}))
    costs.append(streaming(client, OPENAI_MODEL, None))
    costs.append(streaming(client, ANTHROPIC_MODEL, {"include_usage": True}))
    removed_model(client)
    unknown_key(base_url)
    key_usage(client, costs)


if __name__ == "__main__":
    main()
