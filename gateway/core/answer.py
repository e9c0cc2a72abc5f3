"""Canonical answers and stream chunks, as provider adapters produce them and surfaces render.

Typed fields (`Choice`, `Delta`) are what every surface reads. `native` is the same answer or
chunk as a chat-completion object in the canonical dialect (reasoning in `reasoning_content`,
usage in DeepSeek's shape, `model` the canonical name): a surface whose wire format *is* that
dialect (OpenAI Chat) renders from it, so fields the gateway does not model (logprobs,
system_fingerprint, ...) reach its clients untouched. `raw` is the upstream's own bytes when
`native` is byte-for-byte what arrived: the pass-through shortcut of the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.usage import Usage


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass(slots=True)
class Choice:
    index: int
    content: str | None
    reasoning: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    # stop | length | tool_calls | content_filter | insufficient_system_resource | None
    finish_reason: str | None = None


@dataclass(slots=True)
class Answer:
    id: str
    created: int
    choices: list[Choice]
    usage: Usage | None
    native: dict[str, Any]


@dataclass(slots=True)
class ToolCallDelta:
    """A fragment of a streamed tool call: `id` and `name` come in a call's first fragment,
    `arguments` text is appended by the later ones. `index` is unique per call (repaired)."""

    index: int
    id: str | None
    name: str | None
    arguments: str | None


@dataclass(slots=True)
class Delta:
    index: int  # the choice
    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    finish_reason: str | None = None


class Chunk:
    """One stream chunk. `native` may be left unparsed (None) when `raw` is given: only a
    surface that reads `native` pays for the parse. Likewise with `openai_usage`, `native`'s
    usage is still the upstream's until `native` is read, then `usage` in the OpenAI dialect:
    a Chat client that did not ask for usage is never shown the usage chunk, so it never pays
    for the conversion."""

    __slots__ = ("_deltas", "_native", "_usage_pending", "raw", "usage")

    def __init__(self, deltas: list[Delta], usage: Usage | None,
                 native: dict[str, Any] | None, raw: bytes | None = None, *,
                 openai_usage: bool = False) -> None:
        self._deltas = deltas
        self.usage = usage  # set on the chunk that reported usage (often the last)
        self._native = native
        self.raw = raw  # the upstream's bytes when `native` is unchanged from them
        self._usage_pending = openai_usage and usage is not None

    @property
    def deltas(self) -> list[Delta]:
        return self._deltas

    @property
    def native(self) -> dict[str, Any]:
        native = self._native
        if native is None:
            assert self.raw is not None, "a chunk needs its native form or its bytes"
            native = self._native = orjson.loads(self.raw)
        if self._usage_pending:
            self._usage_pending = False
            assert self.usage is not None
            native["usage"] = self.usage.to_openai()
        return native

    def __repr__(self) -> str:
        return f"Chunk({self.deltas!r}, {self.usage!r}, raw={self.raw!r})"


class TextRun(Chunk):
    """Events in a row that the decoder's fast path read (gateway/providers/stream.py): each
    one choice's plain text, at the same place in an envelope that is otherwise the same
    bytes, and each relayed unchanged. One object stands for all of them, so relaying them
    costs nothing per event: `raw` is their bytes joined as consecutive SSE events (what a
    Chat client is sent between the first `data: ` and the last blank line), and the deltas,
    one per event in order, are read from the bytes only if a surface asks for them. `native`
    is the first event's (the envelope, shared by all; a surface that needs each event's
    reads `events`)."""

    __slots__ = ("_end", "_index", "_read", "_reasoning", "_start", "events")

    def __init__(self, events: list[bytes], start: int, end: int, index: int,
                 reasoning: bool) -> None:
        # The text of each event is `event[start:-end]`: plain JSON string content (no quote,
        # backslash or control character), so its bytes are its UTF-8 encoding.
        self.events = events
        self.raw = events[0] if len(events) == 1 else b"\n\ndata: ".join(events)
        self.usage = None
        self._native = None
        self._usage_pending = False
        self._read: list[Delta] | None = None  # the deltas, once a surface asked
        self._start = start
        self._end = end
        self._index = index
        self._reasoning = reasoning

    @property
    def deltas(self) -> list[Delta]:
        deltas = self._read
        if deltas is None:
            start, end, index = self._start, self._end, self._index
            if self._reasoning:
                deltas = [Delta(index, None, event[start:-end].decode()) for event in self.events]
            else:
                deltas = [Delta(index, event[start:-end].decode()) for event in self.events]
            self._read = deltas
        return deltas

    @property
    def native(self) -> dict[str, Any]:
        native = self._native
        if native is None:
            native = self._native = orjson.loads(self.events[0])
        return native

    def __repr__(self) -> str:
        return f"TextRun({self.deltas!r}, events={self.events!r})"
