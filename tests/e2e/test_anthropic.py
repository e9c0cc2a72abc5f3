"""The official anthropic SDK through a real gateway to each simulated provider: the Anthropic
Messages surface on the same core (failover, metering, thinking memory) as OpenAI Chat."""

from __future__ import annotations

import anthropic
import httpx
import orjson
import pytest

from tests.e2e.conftest import GatewayFactory, RunningGateway, Upstreams
from tests.upstream.common import Faults

PROVIDERS = ["deepseek", "openrouter", "ollama"]
REASONING_FIELD = {"deepseek": "reasoning_content", "openrouter": "reasoning",
                   "ollama": "reasoning"}
WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}


def client(gateway: RunningGateway, **kwargs: object) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key="unused-on-loopback",
                               max_retries=0, timeout=20, **kwargs)  # type: ignore[arg-type]


def sent(upstreams: Upstreams, provider: str) -> dict:
    """The last chat request the simulated provider received from the gateway."""
    body: dict = upstreams[provider].requests[-1].json
    return body


@pytest.mark.parametrize("provider", PROVIDERS)
def test_plain_message_through_each_provider(
    make_gateway: GatewayFactory, upstreams: Upstreams, provider: str
) -> None:
    gateway = make_gateway([provider])
    message = client(gateway).messages.create(
        model="claude-sonnet-4-5", max_tokens=200, system="be brief",
        messages=[{"role": "user", "content": "hello there"}],
        thinking={"type": "disabled"},
    )
    assert message.model == "claude-sonnet-4-5"  # echoed, not the canonical name
    assert message.role == "assistant" and message.type == "message"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "echo: hello there"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 4  # "be brief" + "hello there": one token a word
    assert message.usage.output_tokens == 3
    upstream = sent(upstreams, provider)
    assert upstream["messages"][0] == {"role": "system", "content": "be brief"}
    events = [e for e in gateway.sink.events if e.request_id]
    assert events[-1].api == "anthropic.messages" and events[-1].status == "ok"
    assert events[-1].model == "deepseek-v4-flash" and events[-1].provider == provider


@pytest.mark.parametrize("provider", PROVIDERS)
def test_streamed_message_assembles_the_same_text_and_thinking(
    make_gateway: GatewayFactory, upstreams: Upstreams, provider: str
) -> None:
    gateway = make_gateway([provider])
    with client(gateway).messages.stream(
        model="claude-sonnet-4-5", max_tokens=500,
        messages=[{"role": "user", "content": "stream this please"}],
        thinking={"type": "enabled", "budget_tokens": 2000},
    ) as stream:
        text = stream.get_final_text()
        final = stream.get_final_message()
    assert text == "echo: stream this please"
    assert [block.type for block in final.content] == ["thinking", "text"]
    thinking = final.content[0]
    assert thinking.thinking == "thinking about: stream this please"  # type: ignore[union-attr]
    assert thinking.signature  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    assert upstreams[provider].requests[-1].json["stream"] is True


def test_stream_event_sequence_is_anthropics(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(["deepseek"])
    body = {"model": "claude-haiku-4-5", "max_tokens": 300, "stream": True,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [{"role": "user", "content": "what is up"}]}
    with httpx.Client(base_url=gateway.url, timeout=20) as http:
        response = http.post("/v1/messages", json=body,
                             headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line[len("event: "):] for line in response.text.splitlines()
              if line.startswith("event: ")]
    events = [e for e in events if e != "ping"]
    assert events[0] == "message_start" and events.count("message_start") == 1
    assert events[-2:] == ["message_delta", "message_stop"]
    blocks = events[1:-2]
    # a thinking block, its signature just before its stop, then a text block
    assert blocks[0] == "content_block_start"
    first_stop = blocks.index("content_block_stop")
    deltas = [orjson.loads(line[len("data: "):])["delta"]["type"]
              for line in response.text.splitlines()
              if line.startswith("data: ") and '"content_block_delta"' in line]
    assert deltas.index("signature_delta") == len(
        [d for d in deltas if d == "thinking_delta"])  # right after every thinking delta
    assert "text_delta" in deltas and deltas[-1] == "text_delta"
    assert blocks[first_stop + 1] == "content_block_start"
    assert blocks.count("content_block_start") == blocks.count("content_block_stop") == 2


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("streamed", [False, True])
def test_tool_use_loop_with_tool_result(
    make_gateway: GatewayFactory, upstreams: Upstreams, provider: str, streamed: bool
) -> None:
    gateway = make_gateway([provider])
    api = client(gateway)
    messages: list[dict] = [{"role": "user", "content": "weather in Paris"}]
    kwargs = {"model": "claude-sonnet-4-5", "max_tokens": 500, "tools": [WEATHER],
              "messages": messages}
    if streamed:
        with api.messages.stream(**kwargs) as stream:  # type: ignore[arg-type]
            first = stream.get_final_message()
    else:
        first = api.messages.create(**kwargs)  # type: ignore[arg-type]
    assert first.stop_reason == "tool_use"
    tool_use = [b for b in first.content if b.type == "tool_use"]
    assert len(tool_use) == 1
    assert tool_use[0].name == "get_weather"
    assert tool_use[0].input == {"echo": "weather in Paris"}  # the simulator's arguments
    messages.append({"role": "assistant", "content": [b.model_dump() for b in first.content]})
    messages.append({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": tool_use[0].id, "content": "sunny, 21 C"}]})
    second = api.messages.create(**kwargs)  # type: ignore[arg-type]
    assert second.stop_reason == "end_turn"
    upstream = sent(upstreams, provider)["messages"]
    assert upstream[-1] == {"role": "tool", "tool_call_id": tool_use[0].id,
                            "content": "sunny, 21 C"}
    assert upstream[-2]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert orjson.loads(upstream[-2]["tool_calls"][0]["function"]["arguments"]) == {
        "echo": "weather in Paris"}
    # the thinking block came back signed, so the provider got the reasoning in its field
    assert upstream[-2][REASONING_FIELD[provider]] == "thinking about: weather in Paris"


def test_signed_thinking_history_satisfies_deepseeks_reasoning_rule_on_a_fresh_gateway(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    """The reasoning comes back from the client's signed block, not the gateway's memory: a
    second gateway (same signing secret, empty memory) serves the follow-up."""
    yaml = "anthropic: {signing_secret: test-secret-1}\n"
    first_gateway = make_gateway(["deepseek"], yaml=yaml)
    messages: list[dict] = [{"role": "user", "content": "weather in Oslo"}]
    first = client(first_gateway).messages.create(
        model="deepseek-v4-flash", max_tokens=500, tools=[WEATHER], messages=messages,  # type: ignore[arg-type]
        thinking={"type": "enabled", "budget_tokens": 8000})
    call = next(b for b in first.content if b.type == "tool_use")
    messages += [{"role": "assistant", "content": [b.model_dump() for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                               "content": "cold"}]}]
    second_gateway = make_gateway(["deepseek"], yaml=yaml)
    second = client(second_gateway).messages.create(
        model="deepseek-v4-flash", max_tokens=500, tools=[WEATHER], messages=messages,  # type: ignore[arg-type]
        thinking={"type": "enabled", "budget_tokens": 8000})
    assert second.stop_reason == "end_turn"
    assert sent(upstreams, "deepseek")["messages"][1]["reasoning_content"] == (
        "thinking about: weather in Oslo")
    # a forged signature is not ours: the block is dropped, not forwarded as reasoning
    forged = [dict(b) for b in messages[1]["content"]]
    forged[0] = {**forged[0], "thinking": "forged thoughts"}
    messages[1] = {"role": "assistant", "content": forged}
    client(first_gateway).messages.create(
        model="deepseek-v4-flash", max_tokens=500, tools=[WEATHER], messages=messages,  # type: ignore[arg-type]
        thinking={"type": "enabled", "budget_tokens": 8000})
    assert "forged" not in sent(upstreams, "deepseek")["messages"][1]["reasoning_content"]


@pytest.mark.parametrize(
    ("thinking", "provider", "expected"),
    [
        ({"type": "disabled"}, "deepseek", {"thinking": {"type": "disabled"}}),
        ({"type": "enabled", "budget_tokens": 2000}, "deepseek",
         {"thinking": {"type": "enabled"}, "reasoning_effort": "low"}),
        ({"type": "enabled", "budget_tokens": 8000}, "deepseek",
         {"thinking": {"type": "enabled"}, "reasoning_effort": "high"}),
        ({"type": "enabled", "budget_tokens": 32000}, "deepseek",
         {"thinking": {"type": "enabled"}, "reasoning_effort": "max"}),
        ({"type": "enabled", "budget_tokens": 32000}, "openrouter",
         {"reasoning": {"enabled": True, "effort": "xhigh"}}),
        ({"type": "disabled"}, "ollama", {"reasoning_effort": "none"}),
    ],
)
def test_thinking_reaches_each_provider_in_its_dialect(
    make_gateway: GatewayFactory, upstreams: Upstreams, thinking: dict, provider: str,
    expected: dict,
) -> None:
    gateway = make_gateway([provider])
    client(gateway).messages.create(model="claude-sonnet-4-5", max_tokens=64000,
                                    messages=[{"role": "user", "content": "hi"}],
                                    thinking=thinking)  # type: ignore[arg-type]
    upstream = sent(upstreams, provider)
    for key, value in expected.items():
        assert upstream[key] == value
    assert "budget_tokens" not in orjson.dumps(upstream).decode()


def test_claude_opus_names_mean_pro_and_the_model_is_echoed(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    gateway = make_gateway(["deepseek"])
    message = client(gateway).messages.create(
        model="claude-opus-4-1", max_tokens=100,
        messages=[{"role": "user", "content": "hi"}])
    assert message.model == "claude-opus-4-1"
    assert sent(upstreams, "deepseek")["model"] == "deepseek-v4-pro"


def test_errors_are_anthropic_shaped(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(["deepseek"], env={"GATEWAY_MASTER_KEY": "sk-master"})
    with httpx.Client(base_url=gateway.url, timeout=20) as http:
        cases = [
            ({"x-api-key": "wrong"}, {"model": "claude-x", "max_tokens": 5,
                                      "messages": [{"role": "user", "content": "hi"}]},
             401, "authentication_error"),
            ({"x-api-key": "sk-master"}, {"model": "gpt-4o", "max_tokens": 5,
                                          "messages": [{"role": "user", "content": "hi"}]},
             404, "not_found_error"),
            ({"authorization": "Bearer sk-master"},
             {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]},
             400, "invalid_request_error"),
            ({"x-api-key": "sk-master"},
             {"model": "claude-x", "max_tokens": 5, "messages": [
                 {"role": "user", "content": "hi"}],
              "tools": [{"type": "web_search_20250305", "name": "web_search"}]},
             400, "invalid_request_error"),
        ]
        for headers, body, status, kind in cases:
            response = http.post("/v1/messages", json=body, headers=headers)
            assert response.status_code == status, response.text
            data = response.json()
            assert data["type"] == "error" and data["error"]["type"] == kind
            assert isinstance(data["error"]["message"], str)
        too_big = http.post("/v1/messages", content=b"x" * (11 * 1024 * 1024),
                            headers={"x-api-key": "sk-master"})
        assert too_big.status_code == 413
        assert too_big.json()["error"]["type"] == "request_too_large"
        web_search = http.post("/v1/messages", json=cases[3][1], headers=cases[3][0])
        assert "web_search" in web_search.json()["error"]["message"]
    refused = [e for e in gateway.sink.events if e.status == "refused"]
    assert {e.error_type for e in refused} >= {"invalid_api_key", "model_not_found",
                                               "request_too_large"}
    assert all(e.api == "anthropic.messages" for e in refused)


def test_every_provider_out_of_capacity_is_529_overloaded(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    gateway = make_gateway(["ollama", "deepseek"])
    upstreams.ollama.faults = Faults(status=503)
    upstreams.deepseek.faults = Faults(status=503)
    with pytest.raises(anthropic.APIStatusError) as info:
        client(gateway).messages.create(model="claude-sonnet-4-5", max_tokens=10,
                                        messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 529
    assert info.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


@pytest.mark.parametrize("streamed", [False, True])
def test_failover_before_the_first_token(
    make_gateway: GatewayFactory, upstreams: Upstreams, streamed: bool
) -> None:
    gateway = make_gateway(["ollama", "deepseek"])
    upstreams.ollama.faults = Faults(status=429)
    api = client(gateway)
    request = {"model": "claude-sonnet-4-5", "max_tokens": 100,
               "messages": [{"role": "user", "content": "fail over"}]}
    if streamed:
        with api.messages.with_streaming_response.create(**request, stream=True) as raw:  # type: ignore[call-overload]
            headers = raw.headers
            body = raw.read().decode()
        assert "echo: fail over" in "".join(
            orjson.loads(line[6:])["delta"].get("text", "") for line in body.splitlines()
            if line.startswith("data: ") and '"text_delta"' in line)
    else:
        raw = api.messages.with_raw_response.create(**request)  # type: ignore[arg-type]
        headers = raw.headers
        assert raw.parse().content[-1].text == "echo: fail over"  # type: ignore[union-attr]
    assert headers["x-gateway-attempts"] == "ollama:429,deepseek:200"


def test_a_failure_after_the_first_token_is_one_error_event(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    gateway = make_gateway(["deepseek"])
    upstreams.deepseek.faults = Faults(midstream_error_after=3)
    with httpx.Client(base_url=gateway.url, timeout=20) as http:
        response = http.post("/v1/messages", json={
            "model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
            "messages": [{"role": "user", "content": "one two three four five six"}]})
    lines = response.text.splitlines()
    assert lines[-3:-1] == ["event: error", lines[-2]] and lines[-2].startswith("data: ")
    error = orjson.loads(lines[-2][6:])
    assert error["type"] == "error" and error["error"]["type"] in ("api_error",
                                                                   "overloaded_error")
    assert "message_stop" not in response.text
    assert gateway.sink.events[-1].status == "interrupted"


def test_count_tokens_estimates_the_prompt_the_provider_reports(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    gateway = make_gateway(["deepseek"])
    upstreams.deepseek.tokenizer = True  # prompt tokens as DeepSeek's tokenizer counts them
    api = client(gateway)
    conversations = [
        [{"role": "user", "content": "Write a function that reverses a linked list in Python, "
                                     "and explain its complexity in two sentences."}],
        [{"role": "user", "content": "Summarise the plot of Hamlet."},
         {"role": "assistant", "content": "A prince avenges his father, and almost everyone "
                                          "dies in the last act."},
         {"role": "user", "content": "Now do it as a limerick, with a rhyme on Denmark."}],
    ]
    for messages in conversations:
        estimate = api.messages.count_tokens(model="claude-sonnet-4-5", system="You are terse.",
                                             messages=messages)  # type: ignore[arg-type]
        reply = api.messages.create(model="claude-sonnet-4-5", system="You are terse.",
                                    max_tokens=50, messages=messages,  # type: ignore[arg-type]
                                    thinking={"type": "disabled"})
        reported = reply.usage.input_tokens + (reply.usage.cache_read_input_tokens or 0)
        assert abs(estimate.input_tokens - reported) <= 0.15 * reported, (estimate, reported)


def test_models_in_anthropics_shape_when_asked_the_anthropic_way(
    make_gateway: GatewayFactory,
) -> None:
    gateway = make_gateway(["deepseek"])
    page = client(gateway).models.list()
    ids = [model.id for model in page.data]
    assert "deepseek-v4-flash" in ids and all(m.type == "model" for m in page.data)
    with httpx.Client(base_url=gateway.url, timeout=20) as http:
        assert http.get("/v1/models").json()["object"] == "list"  # OpenAI's shape otherwise


def test_pings_keep_a_silent_stream_alive(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    gateway = make_gateway(["deepseek"], yaml="anthropic: {ping_interval: 0.05}\n")
    upstreams.deepseek.faults = Faults(chunk_delay_ms=300)
    with httpx.Client(base_url=gateway.url, timeout=20) as http:
        response = http.post("/v1/messages", json={
            "model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
            "thinking": {"type": "disabled"},
            "messages": [{"role": "user", "content": "slow answer"}]})
    events = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]
    first_delta = events.index("content_block_delta")
    assert "ping" in events[first_delta:]  # sent in the upstream's pauses after the first token
    assert events[-1] == "message_stop"
    text = "".join(orjson.loads(line[6:])["delta"].get("text", "")
                   for line in response.text.splitlines()
                   if line.startswith("data: ") and '"text_delta"' in line)
    assert text == "echo: slow answer"
