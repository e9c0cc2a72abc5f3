"""Canonical chunks in, Responses events out: the exact sequences for text, reasoning and tool
calls, sequence numbers, and how a stream ends (completed, incomplete, failed)."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.answer import Chunk, Delta, ToolCallDelta
from gateway.core.call import Call
from gateway.errors import RateLimited, UpstreamError
from gateway.surfaces.openai_responses.stream import KEEPALIVE, ResponsesStream
from gateway.usage import Usage
from tests.surfaces.openai_responses.support import WEATHER, body, options, parse

Event = dict[str, Any]


def events(raw: bytes) -> list[Event]:
    """Split SSE bytes into event payloads, checking the framing and the numbering."""
    out: list[Event] = []
    assert raw.endswith(b"\n\n")
    for frame in raw.split(b"\n\n"):
        if not frame:
            continue
        name, data = frame.split(b"\n")
        assert name.startswith(b"event: ") and data.startswith(b"data: ")
        payload = orjson.loads(data[len(b"data: "):])
        assert payload["type"] == name[len(b"event: "):].decode()
        out.append(payload)
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    return out


def kinds(stream: list[Event]) -> list[str]:
    return [e["type"] for e in stream]


def _chunk(*deltas: Delta, usage: Usage | None = None) -> Chunk:
    return Chunk(list(deltas), usage, {"id": "chatcmpl-1"})


def _tool(index: int, id: str | None = None, name: str | None = None,
          arguments: str | None = None) -> Delta:
    return Delta(0, tool_calls=[ToolCallDelta(index, id, name, arguments)])


def _run(call: Call, chunks: list[Chunk], usage: Usage | None = None,
         kept: list[dict[str, Any]] | None = None) -> list[Event]:
    stream = ResponsesStream(call, kept.append if kept is not None else None)
    return events(b"".join(stream.chunk(c) for c in chunks) + stream.finish(usage))


def test_text_only() -> None:
    call = parse(body(stream=True, reasoning={"effort": "none"}))
    usage = Usage(prompt_tokens=3, completion_tokens=2)
    out = _run(call, [_chunk(Delta(0, content="")), _chunk(Delta(0, content="Hi")),
                      _chunk(Delta(0, content=" there", finish_reason="stop")),
                      _chunk(usage=usage)], usage)
    assert kinds(out) == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed",
    ]
    created = out[0]["response"]
    assert created["status"] == "in_progress" and created["output"] == []
    assert created["id"] == options(call).response_id and created["usage"] is None
    added = out[2]
    assert added["output_index"] == 0
    assert added["item"]["type"] == "message" and added["item"]["content"] == []
    assert added["item"]["status"] == "in_progress"
    item_id = added["item"]["id"]
    assert all(e["item_id"] == item_id for e in out[3:8])
    assert [e["delta"] for e in out[4:6]] == ["Hi", " there"]
    assert out[6]["text"] == "Hi there" and out[6]["logprobs"] == []
    assert out[7]["part"] == {"type": "output_text", "text": "Hi there", "annotations": [],
                              "logprobs": []}
    assert out[8]["item"]["status"] == "completed"
    final = out[9]["response"]
    assert final["status"] == "completed" and final["output"] == [out[8]["item"]]
    assert final["usage"]["input_tokens"] == 3 and final["usage"]["output_tokens"] == 2
    assert final["id"] == created["id"]


def test_reasoning_then_text() -> None:
    call = parse(body(stream=True, include=["reasoning.encrypted_content"]))
    out = _run(call, [_chunk(Delta(0, reasoning="Think ")), _chunk(Delta(0, reasoning="hard.")),
                      _chunk(Delta(0, content="Done.", finish_reason="stop"))])
    assert kinds(out) == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.reasoning_text.delta",
        "response.reasoning_text.delta", "response.reasoning_text.done",
        "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed",
    ]
    assert out[2]["item"]["type"] == "reasoning" and out[2]["item"]["content"] == []
    assert "encrypted_content" not in out[2]["item"]
    assert out[5]["text"] == "Think hard." and out[5]["content_index"] == 0
    thinking = out[6]["item"]
    assert thinking["content"] == [{"type": "reasoning_text", "text": "Think hard."}]
    assert thinking["encrypted_content"]
    assert [out[6]["output_index"], out[7]["output_index"]] == [0, 1]
    output = out[-1]["response"]["output"]
    assert [item["type"] for item in output] == ["reasoning", "message"]


def test_tool_calls_one_item_each() -> None:
    namespace = {"type": "namespace", "name": "agents",
                 "tools": [{"type": "function", "name": "spawn"}]}
    call = parse(body(stream=True, tools=[WEATHER, namespace]))
    out = _run(call, [
        _chunk(Delta(0, reasoning="Two calls.")),
        _chunk(_tool(0, "call_a", "get_weather", "")),
        _chunk(_tool(0, arguments='{"city":')),
        _chunk(_tool(0, arguments='"Paris"}')),
        _chunk(_tool(1, "call_b", "agents__spawn", "{}")),
        _chunk(Delta(0, finish_reason="tool_calls")),
    ])
    assert kinds(out) == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.reasoning_text.delta",
        "response.reasoning_text.done", "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]
    added = out[6]["item"]
    assert (added["type"], added["call_id"], added["name"], added["arguments"]) == (
        "function_call", "call_a", "get_weather", "")
    assert out[9]["arguments"] == '{"city":"Paris"}' and out[9]["name"] == "get_weather"
    spawn = out[11]["item"]
    assert (spawn["namespace"], spawn["name"], spawn["call_id"]) == ("agents", "spawn", "call_b")
    assert out[11]["output_index"] == 2
    final = out[-1]["response"]
    assert final["status"] == "completed"
    assert [(i["type"], i.get("name")) for i in final["output"]] == [
        ("reasoning", None), ("function_call", "get_weather"), ("function_call", "spawn")]


def test_a_late_fragment_still_reaches_the_final_arguments() -> None:
    call = parse(body(stream=True, tools=[WEATHER]))
    out = _run(call, [_chunk(_tool(0, "call_a", "get_weather", '{"city"')),
                      _chunk(Delta(0, content="Checking")),
                      _chunk(_tool(0, arguments=':"Rome"}')),
                      _chunk(Delta(0, finish_reason="tool_calls"))])
    assert kinds(out).count("response.function_call_arguments.delta") == 1
    final = out[-1]["response"]["output"]
    assert final[0]["arguments"] == '{"city":"Rome"}'


def test_max_tokens_ends_incomplete() -> None:
    call = parse(body(stream=True, reasoning={"effort": "none"}))
    out = _run(call, [_chunk(Delta(0, content="Cut", finish_reason="length"))])
    assert kinds(out)[-1] == "response.incomplete"
    final = out[-1]["response"]
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["status"] == "incomplete"


def test_a_failure_mid_stream_is_error_then_response_failed() -> None:
    call = parse(body(stream=True, reasoning={"effort": "none"}))
    kept: list[dict[str, Any]] = []
    stream = ResponsesStream(call, kept.append)
    raw = stream.chunk(_chunk(Delta(0, content="Half an ans")))
    failure = UpstreamError("deepseek broke off", provider="deepseek", upstream_status=None)
    raw += stream.error(failure)
    assert stream.finish(None) == b"" and stream.error(failure) == b""
    assert stream.chunk(_chunk(Delta(0, content="more"))) == b""
    out = events(raw)
    assert kinds(out)[-2:] == ["error", "response.failed"]
    assert out[-2]["code"] == "server_error" and out[-2]["message"] == "deepseek broke off"
    failed = out[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "server_error", "message": "deepseek broke off"}
    assert failed["output"][0]["status"] == "incomplete"
    assert failed["output"][0]["content"][0]["text"] == "Half an ans"
    assert kept == [failed]


def test_error_codes_and_a_failure_before_any_chunk() -> None:
    call = parse(body(stream=True))
    out = events(ResponsesStream(call).error(RateLimited("slow down")))
    assert kinds(out) == ["response.created", "response.in_progress", "error",
                          "response.failed"]
    assert out[2]["code"] == "rate_limit_exceeded"
    timeout = UpstreamError("late", provider="x", upstream_status=None, code="upstream_timeout")
    assert events(ResponsesStream(call).error(timeout))[2]["code"] == "upstream_timeout"


def test_deepseek_cutting_the_answer_short_fails_the_response() -> None:
    call = parse(body(stream=True, reasoning={"effort": "none"}))
    stream = ResponsesStream(call)
    raw = stream.chunk(_chunk(Delta(0, content="Partial")))
    raw += stream.chunk(_chunk(Delta(0, finish_reason="insufficient_system_resource")))
    assert stream.finish(Usage(prompt_tokens=1, completion_tokens=1)) == b""
    out = events(raw)
    assert kinds(out)[-2:] == ["error", "response.failed"]
    assert "retry" in out[-1]["response"]["error"]["message"]


def test_the_finished_response_is_kept_and_a_stream_with_no_chunks_still_completes() -> None:
    call = parse(body(stream=True))
    kept: list[dict[str, Any]] = []
    out = _run(call, [], Usage(prompt_tokens=2), kept)
    assert kinds(out) == ["response.created", "response.in_progress", "response.completed"]
    assert kept == [out[-1]["response"]]
    assert ResponsesStream(call).keepalive() == KEEPALIVE == b": keep-alive\n\n"


def test_only_choice_zero_is_shown() -> None:
    call = parse(body(stream=True, reasoning={"effort": "none"}))
    out = _run(call, [_chunk(Delta(0, content="zero"), Delta(1, content="one"))])
    final = out[-1]["response"]["output"]
    assert [item["content"][0]["text"] for item in final] == ["zero"]
