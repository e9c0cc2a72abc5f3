"""Whole canonical answers as Ollama's chat and generate objects."""

from __future__ import annotations

import re

import orjson
import pytest

from gateway.core.answer import Answer, Choice, ToolCall
from gateway.surfaces.ollama.render import arguments_object, done_reason, render_answer, stats
from gateway.usage import Usage
from tests.surfaces.ollama.support import chat, chat_body, generate

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def _answer(*choices: Choice, usage: Usage | None = None) -> Answer:
    return Answer("chatcmpl-1", 0, list(choices), usage, {})


def test_a_chat_answer_with_thinking_and_tool_calls() -> None:
    call = chat(chat_body(model="deepseek-v4-flash:cloud", stream=False))
    assert call.options is not None
    choice = Choice(0, "", "Need the weather.", [
        ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_2", "now", ""),
    ], "tool_calls")
    ended = call.options.started_ns + 2_000_000
    out = orjson.loads(render_answer(call, _answer(choice, usage=Usage(11, 7)), now_ns=ended))
    assert TIMESTAMP.match(out.pop("created_at"))
    assert out == {
        "model": "deepseek-v4-flash:cloud",  # the name asked for
        "message": {"role": "assistant", "content": "", "thinking": "Need the weather.",
                    "tool_calls": [
                        {"id": "call_1", "function": {"index": 0, "name": "get_weather",
                                                      "arguments": {"city": "Paris"}}},
                        {"id": "call_2", "function": {"index": 1, "name": "now",
                                                      "arguments": {}}}]},
        "done": True,
        "done_reason": "stop",  # a turn that called tools, as Ollama reports it
        "total_duration": 2_000_000,
        "load_duration": 0,
        "prompt_eval_count": 11,
        "prompt_eval_duration": 0,  # a whole answer has no first token to time
        "eval_count": 7,
        "eval_duration": 2_000_000,
    }


def test_a_generate_answer_has_response_and_thinking() -> None:
    call = generate({"model": "deepseek-v4-pro", "prompt": "hi", "stream": False})
    out = orjson.loads(render_answer(call, _answer(Choice(0, "Hello.", "greet", [], "length"))))
    assert out["response"] == "Hello." and out["thinking"] == "greet"
    assert "message" not in out
    assert out["done"] is True and out["done_reason"] == "length"
    assert out["prompt_eval_count"] == 0 and out["eval_count"] == 0  # no usage reported
    assert out["total_duration"] > 0 and out["eval_duration"] > 0


def test_no_thinking_key_without_reasoning_and_only_choice_zero() -> None:
    call = chat(chat_body(stream=False))
    out = orjson.loads(render_answer(call, _answer(Choice(1, "other", None, [], "stop"),
                                                   Choice(0, "first", None, [], "stop"))))
    assert out["message"] == {"role": "assistant", "content": "first"}


@pytest.mark.parametrize("finish, reason", [
    ("stop", "stop"), ("length", "length"), ("tool_calls", "stop"),
    ("content_filter", "stop"), ("insufficient_system_resource", "length"), (None, "stop"),
])
def test_done_reasons(finish: str | None, reason: str) -> None:
    assert done_reason(finish) == reason


def test_stats_split_the_wait_at_the_first_token() -> None:
    out = stats("stop", Usage(3, 5), started_ns=1_000, first_ns=4_000, ended_ns=10_000)
    assert out == {"done_reason": "stop", "total_duration": 9_000, "load_duration": 0,
                   "prompt_eval_count": 3, "prompt_eval_duration": 3_000,
                   "eval_count": 5, "eval_duration": 6_000}
    instant = stats("stop", None, started_ns=5, first_ns=5, ended_ns=5)
    assert instant["total_duration"] == 1 and instant["eval_duration"] == 1  # never 0


@pytest.mark.parametrize("text, value", [
    ('{"a": [1, 2]}', {"a": [1, 2]}),
    ("", {}),
    ("  ", {}),
    ("{broken", {"_raw": "{broken"}),
    ("[1, 2]", {"_raw": "[1, 2]"}),
])
def test_tool_arguments_are_always_an_object(text: str, value: dict[str, object]) -> None:
    assert arguments_object(text) == value
