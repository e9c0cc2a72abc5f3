"""The official openai SDK against the surface (over a mock transport, no core): what it sends
parses, and what the surface renders is what the SDK's types and its strict stream
accumulator accept, tool calls and namespaces included."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest

from gateway.core.answer import Answer, Choice, Chunk, Delta, ToolCall, ToolCallDelta
from gateway.core.call import Call
from gateway.errors import GatewayError
from gateway.surfaces.openai_responses.surface import OpenAIResponses
from tests.surfaces.openai_responses.support import CATALOGUE, MODEL, WEATHER

REASONING = "The user wants the weather; call the tool."
NAMESPACE = {"type": "namespace", "name": "agents", "description": "Sub-agents",
             "tools": [{"type": "function", "name": "spawn",
                        "parameters": {"type": "object", "properties": {}}}]}


def _answer() -> Answer:
    calls = [ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
             ToolCall("call_2", "agents__spawn", "{}")]
    return Answer("abc", 0, [Choice(0, "Checking.", REASONING, calls, "tool_calls")], None, {})


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
        chunk(Delta(0, tool_calls=[ToolCallDelta(1, "call_2", "agents__spawn", "{}")])),
        chunk(Delta(0, finish_reason="tool_calls")),
    ]


@pytest.fixture
def calls() -> list[Call]:
    return []


@pytest.fixture
def client(calls: list[Call]) -> Iterator[openai.OpenAI]:
    surface = OpenAIResponses(CATALOGUE)

    def handle(request: httpx2.Request) -> httpx2.Response:
        try:
            call = surface.parse(request.content)
        except GatewayError as err:
            status, headers, body = surface.render_error(err)
            return httpx2.Response(status, content=body,
                                   headers={**headers, "content-type": "application/json"})
        calls.append(call)
        if call.stream:
            renderer = surface.stream_renderer(call)
            raw = b"".join(renderer.chunk(c) for c in _chunks()) + renderer.finish(None)
            return httpx2.Response(200, content=raw,
                                   headers={"content-type": "text/event-stream"})
        return httpx2.Response(200, content=surface.render_answer(call, _answer()),
                               headers={"content-type": "application/json"})

    http = httpx2.Client(transport=httpx2.MockTransport(handle))
    yield openai.OpenAI(api_key="sk-test", base_url="http://gateway.test/v1",
                        http_client=http, max_retries=0)
    http.close()


REQUEST: dict[str, Any] = {"model": MODEL, "input": "weather in Paris",
                           "tools": [WEATHER, NAMESPACE]}


def _check(response: Any) -> None:
    assert [item.type for item in response.output] == [
        "reasoning", "message", "function_call", "function_call"]
    thinking, message, weather, spawn = response.output
    assert thinking.content[0].text == REASONING
    assert message.content[0].text == "Checking." and response.output_text == "Checking."
    assert (weather.call_id, weather.name, weather.arguments) == (
        "call_1", "get_weather", '{"city": "Paris"}')
    assert (spawn.call_id, spawn.namespace, spawn.name) == ("call_2", "agents", "spawn")
    assert response.status == "completed"


def test_create_gives_the_sdk_a_valid_response(client: openai.OpenAI,
                                               calls: list[Call]) -> None:
    _check(client.responses.create(**REQUEST))
    names = [t["function"]["name"] for t in calls[-1].params["tools"]]
    assert names == ["get_weather", "agents__spawn"]


def test_the_stream_accumulates_into_the_same_response(client: openai.OpenAI) -> None:
    texts: list[str] = []
    with client.responses.stream(**REQUEST) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                texts.append(event.snapshot)
        final = stream.get_final_response()
    _check(final)
    assert texts == ["Check", "Checking."]


@pytest.mark.parametrize("streamed", [False, True])
def test_the_output_the_sdk_sends_back_is_the_same_turn(
    client: openai.OpenAI, calls: list[Call], streamed: bool
) -> None:
    if streamed:
        with client.responses.stream(**REQUEST) as stream:
            first = stream.get_final_response()
    else:
        first = client.responses.create(**REQUEST)
    history = [{"role": "user", "content": "weather in Paris"},
               *[item.model_dump(exclude_none=True) for item in first.output],
               {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
               {"type": "function_call_output", "call_id": "call_2", "output": "spawned"}]
    client.responses.create(model=MODEL, input=history, tools=[WEATHER, NAMESPACE])
    assistant = calls[-1].messages[1]
    assert assistant["reasoning_content"] == REASONING
    assert assistant["content"] == "Checking."
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == [
        "get_weather", "agents__spawn"]
    assert [m["role"] for m in calls[-1].messages] == ["user", "assistant", "tool", "tool"]


def test_a_refusal_is_the_sdks_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=MODEL, input="hi", tools=[{"type": "file_search",
                                                                 "vector_store_ids": ["v"]}])
    assert "'file_search'" in refused.value.message
