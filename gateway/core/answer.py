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
    """One stream chunk. `native` may be left unparsed (None) when `raw` is given: the
    decoder's fast path knows the deltas without parsing, and only a surface that reads
    `native` pays for the parse."""

    __slots__ = ("_native", "deltas", "raw", "usage")

    def __init__(self, deltas: list[Delta], usage: Usage | None,
                 native: dict[str, Any] | None, raw: bytes | None = None) -> None:
        self.deltas = deltas
        self.usage = usage  # set on the chunk that reported usage (often the last)
        self._native = native
        self.raw = raw  # the upstream's bytes when `native` is unchanged from them

    @property
    def native(self) -> dict[str, Any]:
        native = self._native
        if native is None:
            assert self.raw is not None, "a chunk needs its native form or its bytes"
            native = self._native = orjson.loads(self.raw)
        return native

    def __repr__(self) -> str:
        return f"Chunk({self.deltas!r}, {self.usage!r}, raw={self.raw!r})"
