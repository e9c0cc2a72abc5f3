"""The official OpenAI SDK through a real gateway to each simulated provider."""

from __future__ import annotations

import json

import pytest

from gateway import __version__ as gateway_version
from tests.e2e.conftest import GatewayFactory, Upstreams

PROVIDERS = ["deepseek", "openrouter", "ollama"]
# One generation everywhere (issue 12): V4.1-Flash under each provider's own name for it.
UPSTREAM_MODEL = {"deepseek": "deepseek-flash", "openrouter": "deepseek/deepseek-v4.1-flash",
                  "ollama": "deepseek-v4.1-flash"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_plain_completion_comes_back_in_deepseeks_dialect(
    make_gateway: GatewayFactory, upstreams: Upstreams, provider: str
) -> None:
    gateway = make_gateway([provider])
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="deepseek-v4-flash",
        messages=[{"role": "system", "content": "be brief"},
                  {"role": "user", "content": "hello there"}],
        extra_headers={"x-request-id": "req-123"},
    )
    reply = raw.parse()
    assert raw.headers["x-gateway-provider"] == provider
    assert raw.headers["x-gateway-upstream-model"] == UPSTREAM_MODEL[provider]
    assert raw.headers["x-request-id"] == "req-123"
    message = reply.choices[0].message
    assert message.content == "echo: hello there"
    assert message.model_extra is not None
    assert message.model_extra["reasoning_content"] == "thinking about: hello there"
    assert "reasoning" not in message.model_extra
    assert reply.model == "deepseek-v4-flash"
    usage = reply.usage
    assert usage is not None
    assert usage.prompt_tokens == 4  # "be brief" + "hello there", one token a word
    assert usage.completion_tokens == 7  # "echo: hello there" + "thinking about: hello there"
    assert usage.total_tokens == 11
    if provider != "ollama":  # Ollama reports no reasoning or cache detail
        assert usage.completion_tokens_details is not None
        assert usage.completion_tokens_details.reasoning_tokens == 4
        assert usage.model_extra is not None
        assert usage.model_extra["prompt_cache_hit_tokens"] == 0
        assert usage.model_extra["prompt_cache_miss_tokens"] == 4
    sent = upstreams[provider].requests[-1].json
    assert sent["model"] == UPSTREAM_MODEL[provider]
    seen = {k.lower(): v for k, v in upstreams[provider].requests[-1].headers.items()}
    assert seen["user-agent"] == f"switchyard/{gateway_version}"  # ours, not aiohttp's
    assert seen["authorization"].startswith("Bearer ")
    [event] = gateway.sink.events
    assert (event.status, event.provider, event.request_id) == ("ok", provider, "req-123")
    assert event.usage is not None and event.usage.total_tokens == 11


def test_cache_hits_are_reported_on_a_repeated_prefix(make_gateway: GatewayFactory) -> None:
    client = make_gateway(["deepseek"]).openai()
    history = [{"role": "system", "content": "a long shared system prompt"},
               {"role": "user", "content": "first"}]
    client.chat.completions.create(model="deepseek-v4-flash", messages=history)
    reply = client.chat.completions.create(model="deepseek-v4-flash", messages=history)
    assert reply.usage is not None and reply.usage.model_extra is not None
    assert reply.usage.model_extra["prompt_cache_hit_tokens"] == 5
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 5


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("include_usage", [False, True])
def test_streaming_relays_chunks_in_deepseeks_dialect(
    make_gateway: GatewayFactory, upstreams: Upstreams, provider: str, include_usage: bool
) -> None:
    gateway = make_gateway([provider])
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = gateway.openai().chat.completions.create(
        model="deepseek-v4-flash", messages=[{"role": "user", "content": "count to three"}],
        stream=True, **options,  # type: ignore[arg-type]
    )
    content, reasoning, usage_chunks = [], [], []
    for chunk in stream:
        assert chunk.model == "deepseek-v4-flash"
        if chunk.usage is not None:
            usage_chunks.append(chunk.usage)
        for choice in chunk.choices:
            extra = choice.delta.model_extra or {}
            assert "reasoning" not in extra
            content.append(choice.delta.content or "")
            reasoning.append(extra.get("reasoning_content") or "")
    assert "".join(content) == "echo: count to three"
    assert "".join(reasoning) == "thinking about: count to three"
    # the gateway always asks the upstream for usage...
    assert upstreams[provider].requests[-1].json["stream_options"]["include_usage"] is True
    # ...but only a client that asked sees it
    if include_usage:
        [usage] = usage_chunks
        assert usage.completion_tokens == 9
    else:
        assert usage_chunks == []
    [event] = gateway.sink.events
    assert event.status == "ok" and event.stream
    assert event.usage is not None and event.usage.completion_tokens == 9
    assert event.ttft_s is not None and event.ttft_s >= 0


TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"echo": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"echo": {"type": "string"}}}}},
]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tool_calls_non_streamed(make_gateway: GatewayFactory, provider: str) -> None:
    client = make_gateway([provider]).openai()
    reply = client.chat.completions.create(
        model="deepseek-v4-flash", messages=[{"role": "user", "content": "weather in Oslo"}],
        tools=TOOLS,  # type: ignore[arg-type]
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"echo": "weather in Oslo"}  # type: ignore[union-attr]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_parallel_tool_calls_streamed_are_reassembled_by_the_sdk(
    make_gateway: GatewayFactory, provider: str
) -> None:
    """Ollama streams both calls at index 0; the SDK must still see two separate calls."""
    client = make_gateway([provider]).openai()
    with client.chat.completions.stream(
        model="deepseek-v4-flash", tools=TOOLS,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "parallel weather and time"}],
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    for call in calls:
        assert json.loads(call.function.arguments) == {"echo": "parallel weather and time"}
    assert len({c.id for c in calls}) == 2


THINKING_SENT = {
    "deepseek": (lambda b: b["thinking"]["type"] == "enabled",
                 lambda b: b["thinking"]["type"] == "disabled"),
    "openrouter": (lambda b: b["reasoning"]["enabled"] is True,
                   lambda b: b["reasoning"]["enabled"] is False),
    "ollama": (lambda b: b["reasoning_effort"] != "none",
               lambda b: b["reasoning_effort"] == "none"),
}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("model", "extra", "thinking"),
    [
        ("deepseek-chat", {}, False),
        ("deepseek-reasoner", {}, True),
        ("deepseek-v4-flash", {}, True),
        ("deepseek-v4-flash", {"thinking": {"type": "disabled"}}, False),
        ("deepseek-v4-flash", {"reasoning_effort": "none"}, False),
        ("deepseek-v4-flash", {"reasoning": {"enabled": False}}, False),
        ("deepseek-chat", {"reasoning_effort": "high"}, True),
    ],
)
def test_thinking_mode_reaches_each_provider_in_its_dialect(
    make_gateway: GatewayFactory, upstreams: Upstreams, provider: str, model: str,
    extra: dict, thinking: bool,
) -> None:
    client = make_gateway([provider]).openai()
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "think?"}], extra_body=extra,
    )
    sent = upstreams[provider].requests[-1].json
    is_on, is_off = THINKING_SENT[provider]
    assert (is_on if thinking else is_off)(sent)
    assert sent["model"] == UPSTREAM_MODEL[provider]
    reasoning = (reply.choices[0].message.model_extra or {}).get("reasoning_content")
    assert bool(reasoning) is thinking


@pytest.mark.parametrize("provider", PROVIDERS)
def test_multi_turn_tool_conversation_with_thinking(
    make_gateway: GatewayFactory, upstreams: Upstreams, provider: str
) -> None:
    """The app replays the tool-call turn without its reasoning (as many apps do). DeepSeek
    would answer 400; the gateway restores it, and sends it in each provider's own field."""
    client = make_gateway([provider]).openai()
    messages: list[dict] = [{"role": "user", "content": "weather in Oslo"}]
    first = client.chat.completions.create(model="deepseek-reasoner", messages=messages,
                                           tools=TOOLS)  # type: ignore[arg-type]
    call = (first.choices[0].message.tool_calls or [])[0]
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = client.chat.completions.create(model="deepseek-reasoner", messages=messages,
                                            tools=TOOLS)  # type: ignore[arg-type]
    assert second.choices[0].message.content == "echo: weather in Oslo"
    replayed = upstreams[provider].requests[-1].json["messages"][1]
    if provider == "deepseek":
        assert replayed["reasoning_content"] == "thinking about: weather in Oslo"
    else:
        assert "reasoning_content" not in replayed


@pytest.mark.parametrize("provider", ["openrouter", "ollama"])
def test_client_reasoning_content_is_sent_in_the_providers_field(
    make_gateway: GatewayFactory, upstreams: Upstreams, provider: str
) -> None:
    client = make_gateway([provider]).openai()
    client.chat.completions.create(model="deepseek-v4-flash", messages=[
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b", "reasoning_content": "because"},  # type: ignore[misc]
        {"role": "user", "content": "c"},
    ])
    turn = upstreams[provider].requests[-1].json["messages"][1]
    assert turn["reasoning"] == "because"
    assert "reasoning_content" not in turn


def test_openai_fields_pass_through_and_take_effect(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    client = make_gateway(["deepseek"]).openai()
    reply = client.chat.completions.create(
        model="deepseek-chat", messages=[{"role": "user", "content": "one two STOP three"}],
        n=2, seed=11, user="alice", logprobs=True, stop=["STOP"],
        extra_body={"future_field": {"x": 1}},
    )
    sent = upstreams.deepseek.requests[-1].json
    assert (sent["n"], sent["seed"], sent["user"], sent["stop"]) == (2, 11, "alice", ["STOP"])
    assert sent["future_field"] == {"x": 1}
    assert len(reply.choices) == 2
    assert reply.choices[0].message.content == "echo: one two "
    assert reply.choices[0].logprobs is not None
    json_reply = client.chat.completions.create(
        model="deepseek-chat", messages=[{"role": "user", "content": "as json"}],
        response_format={"type": "json_object"},
    )
    assert json.loads(json_reply.choices[0].message.content or "") == {"echo": "as json"}


def test_models_lists_every_accepted_name(make_gateway: GatewayFactory) -> None:
    client = make_gateway(["ollama"]).openai()
    names = {m.id for m in client.models.list()}
    assert {"deepseek-v4-flash", "deepseek-v4-pro", "deepseek-chat", "deepseek-reasoner",
            "deepseek/deepseek-v4-flash", "deepseek-v4-flash:cloud", "deepseek-flash"} <= names


def test_health_and_readiness(make_gateway: GatewayFactory) -> None:
    with make_gateway(["deepseek"]).http() as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["providers"] == ["deepseek"]
    with make_gateway([]).http() as http:
        assert http.get("/readyz").status_code == 503
