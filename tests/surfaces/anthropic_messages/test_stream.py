"""Canonical chunks in, Anthropic's named SSE events out, in the exact order clients need."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.answer import Chunk, Delta, ToolCallDelta
from gateway.core.call import Call
from gateway.errors import RateLimited, UpstreamError
from gateway.surfaces.anthropic_messages.parse import MessagesOptions
from gateway.surfaces.anthropic_messages.stream import MessagesStream
from gateway.usage import Usage
from tests.surfaces.anthropic_messages.support import SIGNER, body, parse

Event = tuple[str, dict[str, Any]]


def events(raw: bytes) -> list[Event]:
    """Split SSE bytes into (event name, data) pairs, checking the framing on the way."""
    out: list[Event] = []
    assert raw.endswith(b"\n\n") or raw == b""
    for frame in raw.split(b"\n\n"):
        if not frame:
            continue
        lines = frame.split(b"\n")
        assert len(lines) == 2, frame
        assert lines[0].startswith(b"event: ") and lines[1].startswith(b"data: ")
        name = lines[0][len(b"event: "):].decode()
        data = orjson.loads(lines[1][len(b"data: "):])
        assert data["type"] == name
        out.append((name, data))
    return out


def _call(**fields: Any) -> Call:
    return parse(body(model="claude-sonnet-4-5", stream=True, **fields))


def _chunk(*deltas: Delta, usage: Usage | None = None, native: dict[str, Any] | None = None,
           ) -> Chunk:
    return Chunk(list(deltas), usage, native if native is not None else {"id": "chatcmpl-1"})


def _tool(index: int, id: str | None = None, name: str | None = None,
          arguments: str | None = None) -> Delta:
    return Delta(0, tool_calls=[ToolCallDelta(index, id, name, arguments)])


def _run(call: Call, chunks: list[Chunk], usage: Usage | None) -> list[Event]:
    stream = MessagesStream(call, SIGNER)
    raw = b"".join(stream.chunk(c) for c in chunks) + stream.finish(usage)
    return events(raw)


def _start(index: int, block: dict[str, Any]) -> Event:
    return ("content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block})


def _delta(index: int, delta: dict[str, Any]) -> Event:
    return ("content_block_delta", {"type": "content_block_delta", "index": index,
                                    "delta": delta})


def _stop(index: int) -> Event:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def test_thinking_then_text_then_tool_use_in_the_exact_order() -> None:
    call = _call()
    assert isinstance(call.options, MessagesOptions)
    chunks = [
        _chunk(Delta(0, content="")),  # the role chunk: no block for empty text
        _chunk(Delta(0, reasoning="Need ")),
        _chunk(Delta(0, reasoning="a file.")),
        _chunk(Delta(0, content="Reading")),
        _chunk(Delta(0, content=" it.")),
        _chunk(_tool(0, "call_a", "read", "")),
        _chunk(_tool(0, arguments='{"path":')),
        _chunk(_tool(0, arguments=' "/x"}')),
        _chunk(_tool(1, "call_b", "ls", "{}")),
        _chunk(Delta(0, finish_reason="tool_calls")),
        _chunk(usage=Usage(prompt_tokens=90, completion_tokens=12, cache_hit_tokens=64),
               native={"id": "chatcmpl-1", "choices": []}),
    ]
    got = _run(call, chunks, Usage(prompt_tokens=90, completion_tokens=12, cache_hit_tokens=64))
    assert got == [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_chatcmpl-1", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": [], "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": call.options.input_tokens,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                      "output_tokens": 1},
        }}),
        _start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        _delta(0, {"type": "thinking_delta", "thinking": "Need "}),
        _delta(0, {"type": "thinking_delta", "thinking": "a file."}),
        _delta(0, {"type": "signature_delta", "signature": SIGNER.sign("Need a file.")}),
        _stop(0),
        _start(1, {"type": "text", "text": ""}),
        _delta(1, {"type": "text_delta", "text": "Reading"}),
        _delta(1, {"type": "text_delta", "text": " it."}),
        _stop(1),
        _start(2, {"type": "tool_use", "id": "call_a", "name": "read", "input": {}}),
        _delta(2, {"type": "input_json_delta", "partial_json": '{"path":'}),
        _delta(2, {"type": "input_json_delta", "partial_json": ' "/x"}'}),
        _stop(2),
        _start(3, {"type": "tool_use", "id": "call_b", "name": "ls", "input": {}}),
        _delta(3, {"type": "input_json_delta", "partial_json": "{}"}),
        _stop(3),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                           "usage": {"input_tokens": 26, "cache_creation_input_tokens": 0,
                                     "cache_read_input_tokens": 64, "output_tokens": 12}}),
        ("message_stop", {"type": "message_stop"}),
    ]


def test_message_start_comes_once_with_the_first_chunk() -> None:
    stream = MessagesStream(_call(), SIGNER)
    first = events(stream.chunk(_chunk(Delta(0, content="a"))))
    second = events(stream.chunk(_chunk(Delta(0, content="b"))))
    assert [name for name, _ in first] == ["message_start", "content_block_start",
                                           "content_block_delta"]
    assert [name for name, _ in second] == ["content_block_delta"]


def test_a_first_chunk_without_deltas_still_starts_the_message() -> None:
    stream = MessagesStream(_call(), SIGNER)
    assert [n for n, _ in events(stream.chunk(_chunk()))] == ["message_start"]
    assert events(stream.chunk(_chunk())) == []


def test_thinking_after_text_opens_a_new_block_and_is_never_inside_text() -> None:
    got = _run(_call(), [
        _chunk(Delta(0, content="Hi")),
        _chunk(Delta(0, reasoning="hmm")),
        _chunk(Delta(0, content="there")),
        _chunk(Delta(0, finish_reason="stop")),
    ], None)
    blocks: dict[int, str] = {}
    for name, data in got:
        if name == "content_block_start":
            blocks[data["index"]] = data["content_block"]["type"]
        if name == "content_block_delta":
            kind = data["delta"]["type"]
            expected = {"text_delta": "text", "thinking_delta": "thinking",
                        "signature_delta": "thinking"}[kind]
            assert blocks[data["index"]] == expected
    assert blocks == {0: "text", 1: "thinking", 2: "text"}


def test_the_signature_covers_each_thinking_blocks_whole_text() -> None:
    got = _run(_call(), [
        _chunk(Delta(0, reasoning="one ")),
        _chunk(Delta(0, reasoning="two")),
        _chunk(Delta(0, content="x")),
        _chunk(Delta(0, reasoning="three")),
    ], None)
    signatures = [d["delta"]["signature"] for n, d in got
                  if n == "content_block_delta" and d["delta"]["type"] == "signature_delta"]
    assert len(signatures) == 2
    assert SIGNER.verify("one two", signatures[0])
    assert SIGNER.verify("three", signatures[1])
    # each signature_delta is the last event of its block before content_block_stop
    for i, (name, data) in enumerate(got):
        if name == "content_block_delta" and data["delta"]["type"] == "signature_delta":
            assert got[i + 1] == _stop(data["index"])


def test_a_stream_that_ends_inside_thinking_closes_it_with_a_signature() -> None:
    got = _run(_call(), [_chunk(Delta(0, reasoning="only thought"))], None)
    names = [n for n, _ in got]
    assert names[-4:] == ["content_block_delta", "content_block_stop", "message_delta",
                          "message_stop"]
    assert got[-4][1]["delta"] == {"type": "signature_delta",
                                   "signature": SIGNER.sign("only thought")}


def test_other_choices_are_ignored() -> None:
    got = _run(_call(), [_chunk(Delta(1, content="second"), Delta(0, content="first"))], None)
    texts = [d["delta"]["text"] for n, d in got
             if n == "content_block_delta" and d["delta"]["type"] == "text_delta"]
    assert texts == ["first"]


def test_finish_reasons_map_to_stop_reasons() -> None:
    def reason(finish: str | None) -> Any:
        got = _run(_call(), [_chunk(Delta(0, content="x", finish_reason=finish))], None)
        return got[-2][1]["delta"]["stop_reason"]

    assert reason("stop") == "end_turn"
    assert reason("length") == "max_tokens"
    assert reason("content_filter") == "refusal"
    assert reason(None) == "end_turn"


def test_a_reported_stop_sequence_is_named_in_message_delta() -> None:
    native = {"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop",
                                      "stop_reason": "END"}]}
    got = _run(_call(stop_sequences=["END"]),
               [_chunk(Delta(0, content="x")),
                _chunk(Delta(0, finish_reason="stop"), native=native)], None)
    assert got[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}


def test_usage_from_a_chunk_is_used_when_finish_gets_none() -> None:
    got = _run(_call(), [_chunk(Delta(0, content="x")),
                         _chunk(usage=Usage(prompt_tokens=10, completion_tokens=3))], None)
    assert got[-2][1]["usage"] == {"input_tokens": 10, "cache_creation_input_tokens": 0,
                                   "cache_read_input_tokens": 0, "output_tokens": 3}


def test_a_stream_with_no_chunks_is_still_a_complete_message() -> None:
    call = _call()
    assert isinstance(call.options, MessagesOptions)
    got = _run(call, [], None)
    assert [n for n, _ in got] == ["message_start", "message_delta", "message_stop"]
    assert got[1][1]["usage"]["input_tokens"] == call.options.input_tokens
    assert got[1][1]["usage"]["output_tokens"] == 0


def test_a_tool_call_without_an_id_gets_one() -> None:
    got = _run(_call(), [_chunk(_tool(0, None, "f", "{}"))], None)
    block = got[1][1]["content_block"]
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_")


def test_late_fragments_of_a_closed_tool_call_keep_its_index() -> None:
    got = _run(_call(), [
        _chunk(_tool(0, "a", "f", '{"x"')),
        _chunk(_tool(1, "b", "g", "{}")),
        _chunk(_tool(0, arguments=": 1}")),
    ], None)
    fragments = [(d["index"], d["delta"]["partial_json"]) for n, d in got
                 if n == "content_block_delta"]
    assert fragments == [(0, '{"x"'), (1, "{}"), (0, ": 1}")]
    assert [d["index"] for n, d in got if n == "content_block_start"] == [0, 1]


def test_error_is_one_error_event_in_anthropics_shape() -> None:
    stream = MessagesStream(_call(), SIGNER)
    stream.chunk(_chunk(Delta(0, content="partial")))
    err = UpstreamError("the upstream broke", provider="deepseek", upstream_status=500)
    assert events(stream.error(err)) == [
        ("error", {"type": "error",
                   "error": {"type": "api_error", "message": "the upstream broke"}}),
    ]
    assert events(MessagesStream(_call(), SIGNER).error(RateLimited("slow down"))) == [
        ("error", {"type": "error", "error": {"type": "rate_limit_error",
                                              "message": "slow down"}}),
    ]


def test_keepalive_is_a_ping_event() -> None:
    stream = MessagesStream(_call(), SIGNER)
    assert stream.keepalive_interval is not None and stream.keepalive_interval > 0
    assert events(stream.keepalive()) == [("ping", {"type": "ping"})]


def test_deepseek_cutting_the_answer_short_ends_the_stream_with_an_overloaded_error() -> None:
    stream = MessagesStream(_call(), SIGNER)
    raw = stream.chunk(_chunk(Delta(0, reasoning="thinking")))
    raw += stream.chunk(_chunk(Delta(0, content="", finish_reason="insufficient_system_resource")))
    raw += stream.chunk(_chunk(Delta(0, content="late")))
    raw += stream.finish(Usage(prompt_tokens=5, completion_tokens=1))
    raw += stream.error(UpstreamError("again", provider="deepseek", upstream_status=500))
    got = events(raw)
    assert [name for name, _ in got] == [
        "message_start", "content_block_start", "content_block_delta", "error"]
    assert got[-1][1]["error"]["type"] == "overloaded_error"


def test_nothing_follows_an_error_event() -> None:
    stream = MessagesStream(_call(), SIGNER)
    stream.chunk(_chunk(Delta(0, content="partial")))
    assert events(stream.error(RateLimited("slow down")))[0][0] == "error"
    assert stream.error(RateLimited("again")) == b""
    assert stream.chunk(_chunk(Delta(0, content="more"))) == b""
    assert stream.finish(None) == b""
