"""What the anthropic SDK scripts share: the request they send, the tool they
offer, and how they report and check usage. The scripts run with their own
folder first on `sys.path`, so they import this by name.
"""

TOOL_NAME = "get_weather"
TOOL_INPUT = {"city": "Tokyo", "unit": "celsius"}

MAX_TOKENS = 256
MESSAGES = [{"role": "user", "content": "Say something."}]
TOOLS = [
    {
        "name": TOOL_NAME,
        "description": "The weather in a city.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city"],
        },
    }
]


def ok(case):
    print(f"ok: {case}", flush=True)


def check_usage(usage, where):
    assert usage is not None, f"{where}: no usage"
    assert usage.input_tokens is not None and usage.input_tokens >= 0, f"{where}: input_tokens {usage.input_tokens}"
    assert usage.output_tokens > 0, f"{where}: output_tokens {usage.output_tokens}"
    for field in ("cache_read_input_tokens", "cache_creation_input_tokens"):
        value = getattr(usage, field)
        assert value is not None and value >= 0, f"{where}: usage.{field} is {value!r}"
    prompt = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
    assert prompt > 0, f"{where}: no prompt tokens at all"
