"""Canonical chunks in, Ollama's NDJSON lines out."""

from __future__ import annotations

from collections.abc import Iterator

from gateway.core.answer import Chunk, Delta
from gateway.core.call import Call
from gateway.errors import UpstreamError
from gateway.surfaces.ollama.stream import NdjsonStream
from gateway.usage import Usage
from tests.surfaces.ollama.support import chat, chat_body, chunk, generate, lines, tool


class Clock:
    """Nanoseconds that advance by 1 ms on every read, from the call's own start."""

    def __init__(self, call: Call) -> None:
        assert call.options is not None
        self.now = call.options.started_ns
        self._ticks: Iterator[int] = iter(range(1, 10_000))

    def __call__(self) -> int:
        self.now += 1_000_000 * next(self._ticks)
        return self.now


def _run(call: Call, chunks: list[Chunk], usage: Usage | None = None) -> list[dict]:
    stream = NdjsonStream(call, Clock(call))
    return lines(b"".join(stream.chunk(c) for c in chunks) + stream.finish(usage))


def test_thinking_then_text_then_the_final_line() -> None:
    call = chat(chat_body(model="deepseek-v4-flash:cloud"))
    out = _run(call, [
        chunk(Delta(0, content="")),  # the role chunk: nothing to send
        chunk(Delta(0, reasoning="Think")),
        chunk(Delta(0, reasoning="ing.")),
        chunk(Delta(0, content="Hel")),
        chunk(Delta(0, content="lo.", finish_reason="stop")),
        chunk(usage=Usage(12, 30)),  # the usage chunk: no deltas
    ])
    for line in out:
        assert line.pop("model") == "deepseek-v4-flash:cloud"
        assert line.pop("created_at").endswith("Z")
    assert out[:-1] == [
        {"message": {"role": "assistant", "content": "", "thinking": "Think"}, "done": False},
        {"message": {"role": "assistant", "content": "", "thinking": "ing."}, "done": False},
        {"message": {"role": "assistant", "content": "Hel"}, "done": False},
        {"message": {"role": "assistant", "content": "lo."}, "done": False},
    ]
    final = out[-1]
    assert final == {
        "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
        # the clock: first token read at +1 ms, the end at +1+2 = +3 ms
        "total_duration": 3_000_000, "load_duration": 0,
        "prompt_eval_count": 12, "prompt_eval_duration": 1_000_000,
        "eval_count": 30, "eval_duration": 2_000_000,
    }


def test_tool_call_fragments_go_out_whole_when_the_choice_finishes() -> None:
    call = chat(chat_body())
    out = _run(call, [
        chunk(Delta(0, content="Checking.")),
        chunk(tool(0, "call_a", "get_weather", "")),
        chunk(tool(0, arguments='{"city": ')),
        chunk(tool(1, "call_b", "now", "")),
        chunk(tool(0, arguments='"Paris"}')),  # a late fragment of the first call
        chunk(Delta(0, finish_reason="tool_calls")),
    ], Usage(5, 9))
    texts, calls, final = out
    assert texts["message"] == {"role": "assistant", "content": "Checking."}
    assert calls["done"] is False
    assert calls["message"] == {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_a", "function": {"index": 0, "name": "get_weather",
                                      "arguments": {"city": "Paris"}}},
        {"id": "call_b", "function": {"index": 1, "name": "now", "arguments": {}}},
    ]}
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["eval_count"] == 9


def test_tool_calls_of_a_stream_that_never_said_it_finished_go_out_at_the_end() -> None:
    out = _run(chat(chat_body()), [chunk(tool(0, "call_a", "f", "{}"))])
    assert [line["done"] for line in out] == [False, True]
    assert out[0]["message"]["tool_calls"][0]["function"]["name"] == "f"


def test_generate_lines_carry_response_and_thinking() -> None:
    call = generate({"model": "deepseek-v4-flash", "prompt": "hi"})
    out = _run(call, [chunk(Delta(0, reasoning="hm", content="Hi")),
                      chunk(Delta(0, finish_reason="length"))], Usage(1, 2))
    first, final = out
    assert first["response"] == "Hi" and first["thinking"] == "hm" and first["done"] is False
    assert "message" not in first
    assert final["response"] == "" and final["done"] is True
    assert final["done_reason"] == "length"


def test_a_failure_mid_stream_is_one_last_error_line() -> None:
    call = chat(chat_body())
    stream = NdjsonStream(call, Clock(call))
    head = stream.chunk(chunk(Delta(0, content="partial")))
    failure = UpstreamError("ollama failed mid-answer: an error was encountered",
                            provider="ollama", upstream_status=None)
    tail = stream.error(failure)
    assert lines(tail) == [{"error": "ollama failed mid-answer: an error was encountered"}]
    assert stream.chunk(chunk(Delta(0, content="more"))) == b""
    assert stream.finish(None) == b"" and stream.error(failure) == b""
    assert lines(head)[0]["message"]["content"] == "partial"


def test_an_answer_the_provider_cut_short_ends_in_an_error_line() -> None:
    out = _run(chat(chat_body()), [
        chunk(Delta(0, content="half")),
        chunk(Delta(0, finish_reason="insufficient_system_resource")),
        chunk(Delta(0, content="never sent")),
    ])
    assert out[0]["message"]["content"] == "half"
    assert list(out[1]) == ["error"] and "capacity" in out[1]["error"]
    assert len(out) == 2


def test_only_choice_zero_and_no_keepalive() -> None:
    call = chat(chat_body())
    stream = NdjsonStream(call, Clock(call))
    assert stream.keepalive_interval is None
    assert stream.chunk(chunk(Delta(1, content="other choice"))) == b""
