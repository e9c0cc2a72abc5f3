"""Answers and stream chunks as Chat Completions: the canonical dialect is this API's own, so
answers are the adapter's `native` object and unchanged chunks go out as the upstream's bytes."""

from __future__ import annotations

import orjson

from gateway.core.answer import Answer, Chunk, TextRun
from gateway.core.call import Call
from gateway.errors import GatewayError
from gateway.surfaces.openai_chat.errors import error_event
from gateway.surfaces.openai_chat.parse import ChatOptions
from gateway.usage import Usage

DONE_EVENT = b"data: [DONE]\n\n"


def render_answer(call: Call, answer: Answer) -> bytes:
    return orjson.dumps(answer.native)


class ChatStream:
    """`chat.completion.chunk` events, then `[DONE]`. The usage chunk (always requested
    upstream, for metering) is shown only to clients that asked for `include_usage`; those
    clients get `usage: null` on every other chunk, as OpenAI sends it."""

    __slots__ = ("_wants_usage", "verbatim")

    keepalive_interval: float | None = None

    def __init__(self, call: Call) -> None:
        options = call.options
        self._wants_usage = isinstance(options, ChatOptions) and options.include_usage
        self.verbatim = not self._wants_usage  # see `chunk`'s first branch

    def chunk(self, chunk: Chunk) -> bytes:
        raw = chunk.raw
        if raw is not None and chunk.usage is None and not self._wants_usage:
            # The upstream's bytes (a TextRun's: its events'); `native` left unparsed.
            return b"data: " + raw + b"\n\n"
        if isinstance(chunk, TextRun):
            return b"".join([_with_usage_null(event) for event in chunk.events])
        usage = chunk.usage
        if usage is not None and not self._wants_usage and not chunk.deltas:
            return b""  # the usage-only chunk the client did not ask for (`native` unread)
        native = chunk.native
        if usage is not None:
            if not self._wants_usage:
                del native["usage"]
            return b"data: " + orjson.dumps(native) + b"\n\n"
        if self._wants_usage and "usage" not in native:
            native["usage"] = None
            return b"data: " + orjson.dumps(native) + b"\n\n"
        return b"data: " + (raw if raw is not None else orjson.dumps(native)) + b"\n\n"

    def finish(self, usage: Usage | None) -> bytes:
        return DONE_EVENT

    def error(self, error: GatewayError) -> bytes:
        return error_event(error)

    def keepalive(self) -> bytes:
        return b": keep-alive\n\n"


def _with_usage_null(raw: bytes) -> bytes:
    """An unchanged chunk for a client that asked for usage: `usage: null` unless it has one."""
    native = orjson.loads(raw)
    if "usage" in native:
        return b"data: " + raw + b"\n\n"
    native["usage"] = None
    return b"data: " + orjson.dumps(native) + b"\n\n"
