"""A canonical answer in, an Anthropic message out (exact JSON)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.core.answer import Answer, Choice, ToolCall
from gateway.core.call import Call
from gateway.surfaces.anthropic_messages.parse import MessagesOptions
from gateway.surfaces.anthropic_messages.render import render_message
from gateway.usage import Usage
from tests.surfaces.anthropic_messages.support import SIGNER, body, parse


def _call(**fields: Any) -> Call:
    return parse(body(model="claude-opus-4-1", **fields))


def _answer(*choices: Choice, usage: Usage | None = None,
            native: dict[str, Any] | None = None, answer_id: str = "abc123") -> Answer:
    return Answer(answer_id, 1_700_000_000, list(choices), usage, native or {})


def _render(call: Call, answer: Answer) -> dict[str, Any]:
    result: dict[str, Any] = orjson.loads(render_message(call, answer, SIGNER))
    return result


def test_a_full_answer_renders_every_block_in_order() -> None:
    choice = Choice(
        0, "I will read it.", "The user wants the file.",
        [ToolCall("call_1", "read", '{"path": "/etc/hosts"}'), ToolCall("call_2", "ls", "")],
        "tool_calls",
    )
    usage = Usage(prompt_tokens=120, completion_tokens=30, cache_hit_tokens=100,
                  cache_miss_tokens=20)
    assert _render(_call(), _answer(choice, usage=usage)) == {
        "id": "msg_abc123",
        "type": "message",
        "role": "assistant",
        "model": "claude-opus-4-1",
        "content": [
            {"type": "thinking", "thinking": "The user wants the file.",
             "signature": SIGNER.sign("The user wants the file.")},
            {"type": "text", "text": "I will read it."},
            {"type": "tool_use", "id": "call_1", "name": "read",
             "input": {"path": "/etc/hosts"}},
            {"type": "tool_use", "id": "call_2", "name": "ls", "input": {}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 20, "output_tokens": 30, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 100},
    }


def test_the_thinking_signature_verifies_when_the_block_comes_back() -> None:
    rendered = _render(_call(), _answer(Choice(0, "Hi", "Let me think", [], "stop")))
    block = rendered["content"][0]
    assert SIGNER.verify(block["thinking"], block["signature"])
    back = parse(body(messages=[
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": rendered["content"]},
        {"role": "user", "content": "again"},
    ]))
    assert back.messages[1] == {"role": "assistant", "content": "Hi",
                                "reasoning_content": "Let me think"}


def test_a_plain_answer_without_usage() -> None:
    call = _call()
    assert isinstance(call.options, MessagesOptions)
    rendered = _render(call, _answer(Choice(0, "Paris.", None, [], "stop")))
    assert rendered["content"] == [{"type": "text", "text": "Paris."}]
    assert rendered["stop_reason"] == "end_turn"
    assert rendered["usage"] == {"input_tokens": call.options.input_tokens, "output_tokens": 0,
                                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def test_usage_without_cache_information_counts_all_input() -> None:
    rendered = _render(_call(), _answer(Choice(0, "x", None, [], "stop"),
                                        usage=Usage(prompt_tokens=50, completion_tokens=2)))
    assert rendered["usage"]["input_tokens"] == 50
    assert rendered["usage"]["cache_read_input_tokens"] == 0


@pytest.mark.parametrize(("finish", "reason"), [
    ("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal"),
    ("insufficient_system_resource", "max_tokens"), (None, "end_turn"),
])
def test_stop_reasons(finish: str | None, reason: str) -> None:
    rendered = _render(_call(), _answer(Choice(0, "x", None, [], finish)))
    assert (rendered["stop_reason"], rendered["stop_sequence"]) == (reason, None)


def test_tool_calls_mean_tool_use_whatever_the_finish_reason() -> None:
    choice = Choice(0, None, None, [ToolCall("c", "f", "{}")], "stop")
    assert _render(_call(), _answer(choice))["stop_reason"] == "tool_use"


def test_a_reported_stop_sequence_is_named() -> None:
    native = {"choices": [{"index": 0, "finish_reason": "stop", "stop_reason": "END"}]}
    rendered = _render(_call(stop_sequences=["END", "STOP"]),
                       _answer(Choice(0, "x", None, [], "stop"), native=native))
    assert (rendered["stop_reason"], rendered["stop_sequence"]) == ("stop_sequence", "END")


def test_a_stop_reason_that_is_not_a_requested_sequence_is_ignored() -> None:
    native = {"choices": [{"index": 0, "finish_reason": "stop", "stop_reason": 151645}]}
    rendered = _render(_call(stop_sequences=["END"]),
                       _answer(Choice(0, "x", None, [], "stop"), native=native))
    assert (rendered["stop_reason"], rendered["stop_sequence"]) == ("end_turn", None)


@pytest.mark.parametrize(("arguments", "expected"), [
    ('{"a": [1, 2]}', {"a": [1, 2]}),
    ("", {}),
    ("  ", {}),
    ('{"a": ', {"_raw": '{"a": '}),
    ("[1, 2]", {"_raw": "[1, 2]"}),
])
def test_tool_arguments_become_input(arguments: str, expected: dict[str, Any]) -> None:
    choice = Choice(0, None, None, [ToolCall("c", "f", arguments)], "tool_calls")
    assert _render(_call(), _answer(choice))["content"][0]["input"] == expected


def test_only_the_first_choice_is_rendered() -> None:
    rendered = _render(_call(), _answer(Choice(0, "first", None, [], "stop"),
                                        Choice(1, "second", None, [], "length")))
    assert rendered["content"] == [{"type": "text", "text": "first"}]
    assert rendered["stop_reason"] == "end_turn"


def test_ids() -> None:
    choice = Choice(0, "x", None, [], "stop")
    assert _render(_call(), _answer(choice, answer_id="msg_keep"))["id"] == "msg_keep"
    one = _render(_call(), _answer(choice, answer_id=""))["id"]
    two = _render(_call(), _answer(choice, answer_id=""))["id"]
    assert one.startswith("msg_") and two.startswith("msg_") and one != two


def test_empty_reasoning_and_content_render_no_blocks() -> None:
    rendered = _render(_call(), _answer(Choice(0, "", "", [], "stop")))
    assert rendered["content"] == []


def test_raw_arguments_go_back_to_the_model_as_they_were_written() -> None:
    broken = '{"path": "/tmp'
    choice = Choice(0, None, None, [ToolCall("c1", "read", broken)], "tool_calls")
    rendered = _render(_call(), _answer(choice))
    back = parse(body(messages=[
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": rendered["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1",
                                      "content": "bad input", "is_error": True}]},
    ]))
    assert back.messages[1]["tool_calls"][0]["function"]["arguments"] == broken
