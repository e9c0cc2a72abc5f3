"""The official anthropic SDK against the surface (over a mock transport, no core): what it
sends parses, and what the surface renders is what the SDK's types and accumulators accept."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2
import orjson
import pytest

from gateway.config import load_config
from gateway.core.answer import Answer, Choice, Chunk, Delta, ToolCall, ToolCallDelta
from gateway.core.call import Call
from gateway.errors import GatewayError, RateLimited, UpstreamError
from gateway.surfaces.anthropic_messages.surface import COUNT_TOKENS_PATH, AnthropicMessages
from gateway.surfaces.anthropic_messages.tokens import HeuristicCounter
from tests.surfaces.anthropic_messages.support import CATALOGUE

WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
REASONING = "The user wants the weather; call the tool."


@dataclass
class Script:
    """What the fake core answers, and what it saw."""

    error: GatewayError | None = None
    calls: list[Call] = field(default_factory=list)


def _answer() -> Answer:
    choice = Choice(0, "Checking.", REASONING,
                    [ToolCall("call_1", "get_weather", '{"city": "Paris"}')], "tool_calls")
    return Answer("abc", 0, [choice], None, {})


def _chunks() -> list[Chunk]:
    def chunk(delta: Delta) -> Chunk:
        return Chunk([delta], None, {"id": "abc"})

    return [
        chunk(Delta(0, reasoning=REASONING[:10])),
        chunk(Delta(0, reasoning=REASONING[10:])),
        chunk(Delta(0, content="Check")),
        chunk(Delta(0, content="ing.")),
        chunk(Delta(0, tool_calls=[ToolCallDelta(0, "call_1", "get_weather", "")])),
        chunk(Delta(0, tool_calls=[ToolCallDelta(0, None, None, '{"city": ')])),
        chunk(Delta(0, tool_calls=[ToolCallDelta(0, None, None, '"Paris"}')])),
        chunk(Delta(0, finish_reason="tool_calls")),
    ]


@pytest.fixture
def surface() -> AnthropicMessages:
    config = load_config(env={"GATEWAY_MASTER_KEY": "sk-test"})
    return AnthropicMessages.from_config(config, CATALOGUE, counter=HeuristicCounter())


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def client(surface: AnthropicMessages, script: Script) -> Iterator[anthropic.Anthropic]:
    def handle(request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        try:
            if path in surface.local_paths:
                return httpx2.Response(200, content=surface.local_paths[path](request.content),
                                       headers={"content-type": "application/json"})
            if request.method == "GET" and path == "/v1/models":
                listing = surface.model_listing(dict(request.headers), ["deepseek-v4-flash"])
                assert listing is not None
                return httpx2.Response(200, content=listing,
                                       headers={"content-type": "application/json"})
            call = surface.parse(request.content)
            script.calls.append(call)
            if script.error is not None:
                raise script.error
        except GatewayError as err:
            status, headers, body = surface.render_error(err)
            return httpx2.Response(status, content=body,
                                   headers={**headers, "content-type": "application/json"})
        if call.stream:
            renderer = surface.stream_renderer(call)
            raw = b"".join(renderer.chunk(c) for c in _chunks()) + renderer.finish(None)
            return httpx2.Response(200, content=raw,
                                   headers={"content-type": "text/event-stream"})
        return httpx2.Response(200, content=surface.render_answer(call, _answer()),
                               headers={"content-type": "application/json"})

    http = httpx2.Client(transport=httpx2.MockTransport(handle))
    yield anthropic.Anthropic(api_key="sk-test", base_url="http://gateway.test",
                              http_client=http, max_retries=0)
    http.close()


REQUEST: dict[str, Any] = {
    "model": "claude-sonnet-4-5", "max_tokens": 500, "tools": [WEATHER],
    "messages": [{"role": "user", "content": "weather in Paris"}],
    "thinking": {"type": "enabled", "budget_tokens": 2000},
}


def _check(message: Any) -> None:
    assert message.model == "claude-sonnet-4-5"
    assert [block.type for block in message.content] == ["thinking", "text", "tool_use"]
    thinking, text, tool = message.content
    assert thinking.thinking == REASONING and thinking.signature
    assert text.text == "Checking."
    assert (tool.id, tool.name, tool.input) == ("call_1", "get_weather", {"city": "Paris"})
    assert message.stop_reason == "tool_use"


def test_create_gives_the_sdk_a_valid_message(client: anthropic.Anthropic,
                                              script: Script) -> None:
    _check(client.messages.create(**REQUEST))
    call = script.calls[-1]
    assert call.params["tools"][0]["function"]["name"] == "get_weather"
    assert call.thinking.enabled and call.thinking.effort == "low"


def test_the_streams_events_accumulate_into_the_same_message(client: anthropic.Anthropic,
                                                             ) -> None:
    with client.messages.stream(**REQUEST) as stream:
        streamed = stream.get_final_message()
    _check(streamed)
    assert streamed.content[0].signature == client.messages.create(  # type: ignore[union-attr]
        **REQUEST).content[0].signature


@pytest.mark.parametrize("streamed", [False, True])
def test_the_history_the_sdk_sends_back_carries_the_reasoning(
    client: anthropic.Anthropic, script: Script, streamed: bool
) -> None:
    if streamed:
        with client.messages.stream(**REQUEST) as stream:
            first = stream.get_final_message()
    else:
        first = client.messages.create(**REQUEST)
    tool = next(b for b in first.content if b.type == "tool_use")
    history = [*REQUEST["messages"],
               {"role": "assistant", "content": [b.model_dump() for b in first.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id,
                                             "content": "sunny"}]}]
    client.messages.create(**{**REQUEST, "messages": history})
    sent = script.calls[-1].messages
    assert sent[1]["reasoning_content"] == REASONING
    assert sent[1]["tool_calls"][0]["id"] == "call_1"
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


def test_count_tokens_answers_the_sdk(client: anthropic.Anthropic,
                                      surface: AnthropicMessages) -> None:
    body = {"model": "claude-sonnet-4-5", "messages": REQUEST["messages"], "tools": [WEATHER]}
    counted = client.messages.count_tokens(**body)
    expected = orjson.loads(surface.local_paths[COUNT_TOKENS_PATH](orjson.dumps(body)))
    assert counted.input_tokens == expected["input_tokens"] > 0


def test_models_list_in_anthropics_shape(client: anthropic.Anthropic) -> None:
    page = client.models.list()
    assert [(m.id, m.type) for m in page.data] == [("deepseek-v4-flash", "model")]


def test_model_listing_only_for_anthropic_clients(surface: AnthropicMessages) -> None:
    assert surface.model_listing({"accept": "application/json"}, ["x"]) is None
    assert surface.model_listing({"Anthropic-Version": "2023-06-01"}, ["x"]) is not None


@pytest.mark.parametrize(("error", "exception", "status"), [
    (UpstreamError("busy", provider="deepseek", upstream_status=503),
     anthropic.OverloadedError, 529),
    (RateLimited("slow down", headers={"retry-after": "3"}), anthropic.RateLimitError, 429),
    (UpstreamError("bad gateway", provider="deepseek", upstream_status=500),
     anthropic.InternalServerError, 502),
])
def test_errors_become_the_sdks_exceptions(
    client: anthropic.Anthropic, script: Script, error: GatewayError,
    exception: type[anthropic.APIStatusError], status: int,
) -> None:
    script.error = error
    with pytest.raises(exception) as info:
        client.messages.create(**REQUEST)
    assert info.value.status_code == status
    assert info.value.body["error"]["message"] == error.message  # type: ignore[index]


def test_a_server_tool_is_a_bad_request_for_the_sdk(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(**{**REQUEST, "tools": [
            {"type": "web_search_20250305", "name": "web_search"}]})
    assert "web_search" in info.value.message
