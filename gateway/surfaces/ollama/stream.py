"""Canonical chunks as Ollama's NDJSON stream: one JSON object a line.

    {"model", "created_at", "message": {"role": "assistant", "content", "thinking"?}, "done": false}
    ...
    {"model", "created_at", "message": {"role": "assistant", "content": ""}, "done": true,
     "done_reason", "total_duration", "load_duration", "prompt_eval_count",
     "prompt_eval_duration", "eval_count", "eval_duration"}

(`/api/generate` lines carry `response` and `thinking` instead of `message`.) Text and
thinking go out as they arrive. Ollama sends each tool call whole, its arguments an object,
never in fragments, so fragments are gathered by call index and the calls go out together in
one line when the choice finishes (or at the end, if the upstream never said it finished).
Only choice 0 is shown. There is no keep-alive: every line must be a JSON object, and Ollama's
clients parse each one.

A failure after the stream began is one last `{"error": "..."}` line and nothing after it; so
is DeepSeek's `finish_reason: insufficient_system_resource` (the upstream cut the answer short:
a `done_reason` of `length` would blame the client's limit).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.core.answer import Chunk, Delta, ToolCallDelta
from gateway.core.call import Call
from gateway.errors import GatewayError
from gateway.surfaces.ollama.errors import error_line
from gateway.surfaces.ollama.parse import options_of
from gateway.surfaces.ollama.render import answer_line, done_reason, stats, tool_call
from gateway.usage import Usage

_CUT_SHORT = "insufficient_system_resource"
_CUT_SHORT_MESSAGE = (
    "The upstream ran out of capacity in the middle of the answer "
    "(finish_reason insufficient_system_resource); retry the request."
)


@dataclass(slots=True)
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class NdjsonStream:
    """Per-call state of one streamed answer; implements gateway.core.surface.StreamRenderer."""

    keepalive_interval: float | None = None
    verbatim = False  # every event is rewritten

    def __init__(self, call: Call, clock: Callable[[], int] = time.monotonic_ns) -> None:
        options = options_of(call)
        self._model = options.requested_model
        self._started = options.started_ns
        self._generate = options.generate
        self._clock = clock
        self._first: int | None = None
        self._calls: dict[int, _PendingCall] = {}
        self._finish_reason: str | None = None
        self._usage: Usage | None = None
        self._failed = False

    # ---- StreamRenderer ------------------------------------------------------------------

    def chunk(self, chunk: Chunk) -> bytes:
        if self._failed:
            return b""
        out: list[bytes] = []
        for delta in chunk.deltas:
            if delta.index == 0:
                self._delta(delta, out)
                if self._failed:
                    break
        if chunk.usage is not None:
            self._usage = chunk.usage
        return b"".join(out)

    def finish(self, usage: Usage | None) -> bytes:
        if self._failed:
            return b""
        out: list[bytes] = []
        self._flush_calls(out)
        ended = self._clock()
        reason = done_reason(self._finish_reason)
        final = self._line("", None, done=True)
        final.update(stats(reason, usage or self._usage, self._started, self._first, ended))
        out.append(orjson.dumps(final) + b"\n")
        return b"".join(out)

    def error(self, error: GatewayError) -> bytes:
        if self._failed:
            return b""
        self._failed = True
        return error_line(error)

    def keepalive(self) -> bytes:
        return b""

    # ---- lines ---------------------------------------------------------------------------

    def _delta(self, delta: Delta, out: list[bytes]) -> None:
        if self._first is None and (delta.content or delta.reasoning or delta.tool_calls):
            self._first = self._clock()
        if delta.content or delta.reasoning:
            line = self._line(delta.content or "", delta.reasoning, done=False)
            out.append(orjson.dumps(line) + b"\n")
        for fragment in delta.tool_calls or ():
            self._gather(fragment)
        if delta.finish_reason == _CUT_SHORT:
            out.append(self.error(GatewayError(_CUT_SHORT_MESSAGE, status=503)))
            return
        if delta.finish_reason is not None:
            self._finish_reason = delta.finish_reason
            self._flush_calls(out)

    def _gather(self, fragment: ToolCallDelta) -> None:
        pending = self._calls.get(fragment.index)
        if pending is None:
            pending = self._calls[fragment.index] = _PendingCall()
        if fragment.id:
            pending.id = fragment.id
        if fragment.name:
            pending.name = fragment.name
        if fragment.arguments:
            pending.arguments.append(fragment.arguments)

    def _flush_calls(self, out: list[bytes]) -> None:
        """The gathered tool calls, whole, in one line (chat only: generate has no tools)."""
        if not self._calls:
            return
        calls, self._calls = self._calls, {}
        if self._generate:
            return
        line = self._line("", None, done=False)
        line["message"]["tool_calls"] = [
            tool_call(k, pending.id or f"call_{k}", pending.name, "".join(pending.arguments))
            for k, (_, pending) in enumerate(sorted(calls.items()))
        ]
        out.append(orjson.dumps(line) + b"\n")

    def _line(self, content: str, reasoning: str | None, *, done: bool) -> dict[str, Any]:
        return answer_line(self._model, self._generate, content, reasoning, done=done)
