"""Canonical chunks as Anthropic's named SSE events (`event: <type>\\ndata: <json>\\n\\n`).

The sequence clients (the SDKs' accumulators, Claude Code) depend on:

    message_start                      once, with the first chunk (content [], input estimate)
    content_block_start                per block, indices 0, 1, ... in order
      content_block_delta ...          thinking_delta | text_delta | input_json_delta
      [signature_delta]                a thinking block's signature, just before its stop
    content_block_stop
    ...
    message_delta                      stop_reason, stop_sequence, the final usage
    message_stop

A block holds one kind of content: a new block opens whenever the kind changes, so a
thinking_delta is never sent inside a text block. The signature signs the whole text of its
thinking block (see signatures.py). Each tool call (by its canonical index) gets its own
`tool_use` block whose start carries the id and name and `input: {}`; its argument fragments
follow as `input_json_delta`. Upstreams send a call's fragments together; should fragments of
an already closed call arrive later, they are still sent with that call's block index (the
SDKs accumulate by index) rather than lost. Only choice 0 is shown.

DeepSeek ends a stream it can no longer serve with `finish_reason:
insufficient_system_resource`. Messages has no stop reason for "cut short by the provider",
and `max_tokens` would tell the client its own limit was hit, so that chunk ends the stream with
an `overloaded_error` event instead (which Claude Code and the SDKs retry); nothing follows it.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from gateway.core.answer import Chunk, Delta, ToolCallDelta
from gateway.core.call import Call
from gateway.errors import GatewayError
from gateway.surfaces.anthropic_messages.errors import error_event
from gateway.surfaces.anthropic_messages.render import (
    message_id,
    options_of,
    stop_reason,
    usage_object,
)
from gateway.surfaces.anthropic_messages.signatures import ThinkingSigner
from gateway.usage import Usage

PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_CUT_SHORT = "insufficient_system_resource"
_CUT_SHORT_MESSAGE = (
    "The upstream ran out of capacity in the middle of the answer "
    "(finish_reason insufficient_system_resource); retry the request."
)
_THINKING, _TEXT, _TOOL = "thinking", "text", "tool_use"


def _event(payload: dict[str, Any]) -> bytes:
    kind: str = payload["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class MessagesStream:
    """Per-call state of one streamed answer; implements gateway.core.surface.StreamRenderer."""

    verbatim = False  # every event is rewritten

    def __init__(self, call: Call, signer: ThinkingSigner,
                 ping_interval: float | None = 10.0) -> None:
        self.keepalive_interval = ping_interval  # `ping` after this long without a chunk
        self._options = options_of(call)
        self._signer = signer
        self._started = False
        self._next_index = 0  # the index the next content block gets
        self._open: str | None = None  # the kind of the open block
        self._open_index = -1
        self._thinking: list[str] = []  # the open thinking block's text so far
        self._tool_blocks: dict[int, int] = {}  # canonical tool call index -> block index
        self._finish_reason: str | None = None
        self._finish_native: Any = None
        self._usage: Usage | None = None
        self._failed = False  # an error event was sent: the stream is over

    # ---- StreamRenderer ------------------------------------------------------------------

    def chunk(self, chunk: Chunk) -> bytes:
        if self._failed:
            return b""
        out: list[bytes] = []
        if not self._started:
            native_id = chunk.native.get("id")
            out.append(self._message_start(native_id if isinstance(native_id, str) else None))
        for delta in chunk.deltas:
            if delta.index == 0:
                self._delta(delta, chunk, out)
                if self._failed:
                    break
        if chunk.usage is not None:
            self._usage = chunk.usage
        return b"".join(out)

    def finish(self, usage: Usage | None) -> bytes:
        if self._failed:
            return b""
        out: list[bytes] = []
        if not self._started:
            out.append(self._message_start(None))
        self._close(out)
        reason, sequence = stop_reason(
            self._finish_reason, bool(self._tool_blocks), self._finish_native,
            self._options.stop_sequences,
        )
        final = usage_object(usage or self._usage, self._options.input_tokens)
        out.append(_event({
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": sequence},
            "usage": {
                "input_tokens": final["input_tokens"],
                "cache_creation_input_tokens": final["cache_creation_input_tokens"],
                "cache_read_input_tokens": final["cache_read_input_tokens"],
                "output_tokens": final["output_tokens"],
            },
        }))
        out.append(_event({"type": "message_stop"}))
        return b"".join(out)

    def error(self, error: GatewayError) -> bytes:
        if self._failed:
            return b""
        self._failed = True
        return error_event(error)

    def keepalive(self) -> bytes:
        return PING

    # ---- blocks --------------------------------------------------------------------------

    def _message_start(self, upstream_id: str | None) -> bytes:
        self._started = True
        return _event({
            "type": "message_start",
            "message": {
                "id": message_id(upstream_id),
                "type": "message",
                "role": "assistant",
                "model": self._options.requested_model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": self._options.input_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 1,
                },
            },
        })

    def _delta(self, delta: Delta, chunk: Chunk, out: list[bytes]) -> None:
        if delta.reasoning:
            if self._open != _THINKING:
                self._start(_THINKING, {"type": "thinking", "thinking": "", "signature": ""}, out)
            self._thinking.append(delta.reasoning)
            out.append(self._block_delta({"type": "thinking_delta", "thinking": delta.reasoning}))
        if delta.content:
            if self._open != _TEXT:
                self._start(_TEXT, {"type": "text", "text": ""}, out)
            out.append(self._block_delta({"type": "text_delta", "text": delta.content}))
        for fragment in delta.tool_calls or ():
            self._tool_fragment(fragment, out)
        if delta.finish_reason == _CUT_SHORT:
            out.append(self.error(GatewayError(_CUT_SHORT_MESSAGE, status=503)))
            return
        if delta.finish_reason is not None:
            self._finish_reason = delta.finish_reason
            choices = chunk.native.get("choices")
            if isinstance(choices, list):
                self._finish_native = next(
                    (c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), None
                )

    def _tool_fragment(self, fragment: ToolCallDelta, out: list[bytes]) -> None:
        index = self._tool_blocks.get(fragment.index)
        if index is None:
            self._start(_TOOL, {
                "type": "tool_use",
                "id": fragment.id or "toolu_" + secrets.token_hex(12),
                "name": fragment.name or "",
                "input": {},
            }, out)
            self._tool_blocks[fragment.index] = index = self._open_index
        if fragment.arguments:
            out.append(_event({
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": fragment.arguments},
            }))

    def _start(self, kind: str, block: dict[str, Any], out: list[bytes]) -> None:
        self._close(out)
        self._open, self._open_index = kind, self._next_index
        self._next_index += 1
        out.append(_event(
            {"type": "content_block_start", "index": self._open_index, "content_block": block}
        ))

    def _close(self, out: list[bytes]) -> None:
        if self._open is None:
            return
        if self._open == _THINKING:
            signature = self._signer.sign("".join(self._thinking))
            out.append(self._block_delta({"type": "signature_delta", "signature": signature}))
            self._thinking = []
        out.append(_event({"type": "content_block_stop", "index": self._open_index}))
        self._open = None

    def _block_delta(self, delta: dict[str, Any]) -> bytes:
        return _event({"type": "content_block_delta", "index": self._open_index, "delta": delta})
