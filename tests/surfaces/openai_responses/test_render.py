"""Whole canonical answers as response objects: items in order, status, usage, the echo."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.answer import Answer, Choice, ToolCall
from gateway.surfaces.openai_responses import reasoning
from gateway.surfaces.openai_responses.render import answer_response, render_response
from gateway.usage import Usage
from tests.surfaces.openai_responses.support import WEATHER, body, options, parse

NAMESPACE = {"type": "namespace", "name": "agents",
             "tools": [{"type": "function", "name": "spawn"}]}


def _answer(*, content: str | None = "Sunny.", thinking: str | None = "Look it up.",
            calls: tuple[ToolCall, ...] = (), finish: str = "stop",
            usage: Usage | None = None) -> Answer:
    return Answer("chatcmpl-1", 0, [Choice(0, content, thinking, list(calls), finish)], usage,
                  {})


def test_reasoning_then_message_then_calls_in_order() -> None:
    call = parse(body(tools=[WEATHER, NAMESPACE], instructions="Be brief.",
                      metadata={"k": "v"}, temperature=0.5))
    calls = (ToolCall("call_1", "get_weather", '{"city":"Paris"}'),
             ToolCall("call_2", "agents__spawn", "{}"))
    usage = Usage(prompt_tokens=10, completion_tokens=7, cache_hit_tokens=4,
                  reasoning_tokens=3)
    response = answer_response(call, _answer(calls=calls, finish="tool_calls", usage=usage))
    assert response["id"] == options(call).response_id and response["object"] == "response"
    assert response["status"] == "completed" and response["error"] is None
    assert response["model"] == "deepseek-v4-flash"
    kinds = [item["type"] for item in response["output"]]
    assert kinds == ["reasoning", "message", "function_call", "function_call"]
    thinking, message, first, second = response["output"]
    assert thinking["content"] == [{"type": "reasoning_text", "text": "Look it up."}]
    assert thinking["summary"] == [] and "encrypted_content" not in thinking
    assert message["role"] == "assistant" and message["status"] == "completed"
    assert message["content"] == [{"type": "output_text", "text": "Sunny.", "annotations": [],
                                   "logprobs": []}]
    assert (first["call_id"], first["name"], first["arguments"]) == (
        "call_1", "get_weather", '{"city":"Paris"}')
    assert "namespace" not in first
    assert (second["namespace"], second["name"]) == ("agents", "spawn")
    assert len({item["id"] for item in response["output"]}) == 4
    assert response["usage"] == {
        "input_tokens": 10, "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 3},
        "total_tokens": 17}
    assert response["instructions"] == "Be brief." and response["metadata"] == {"k": "v"}
    assert response["temperature"] == 0.5 and response["tools"][1] == NAMESPACE
    assert response["store"] is False  # nothing prepared it for storing


def test_encrypted_content_only_when_included() -> None:
    call = parse(body(include=["reasoning.encrypted_content"]))
    thinking = answer_response(call, _answer())["output"][0]
    assert reasoning.decode(thinking["encrypted_content"]) == "Look it up."


def test_max_tokens_is_incomplete_and_a_cut_answer_failed() -> None:
    call = parse(body())
    cut = answer_response(call, _answer(finish="length"))
    assert cut["status"] == "incomplete"
    assert cut["incomplete_details"] == {"reason": "max_output_tokens"}
    assert cut["output"][1]["status"] == "incomplete"
    filtered = answer_response(call, _answer(finish="content_filter"))
    assert filtered["incomplete_details"] == {"reason": "content_filter"}
    failed = answer_response(call, _answer(finish="insufficient_system_resource"))
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert "retry" in failed["error"]["message"]


def test_no_reasoning_no_usage_and_missing_call_ids() -> None:
    call = parse(body(reasoning={"effort": "none"}))
    response = answer_response(call, _answer(
        content=None, thinking=None, calls=(ToolCall("", "get_weather", "{}"),)))
    assert [item["type"] for item in response["output"]] == ["function_call"]
    assert response["output"][0]["call_id"].startswith("call_")
    assert response["usage"]["total_tokens"] == 0
    assert response["reasoning"] == {"effort": "none", "summary": None}


def test_render_is_the_json_of_the_response() -> None:
    call = parse(body())
    response = answer_response(call, _answer())
    decoded: dict[str, Any] = orjson.loads(render_response(response))
    assert decoded == response
