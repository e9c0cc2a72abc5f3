"""Canonical chunks as Responses events (`event: <type>\\ndata: <json>\\n\\n`, each with a
`sequence_number` counting from 0; no `[DONE]`).

The sequence clients depend on (the openai SDK's stream accumulator checks it strictly):

    response.created, response.in_progress             once, with the first chunk
    per output item, in the order the model produced them (output_index 0, 1, ...):
      response.output_item.added                      the item, empty, status in_progress
      reasoning:     response.reasoning_text.delta ... response.reasoning_text.done
      message:       response.content_part.added, response.output_text.delta ...,
                     response.output_text.done, response.content_part.done
      function_call: response.function_call_arguments.delta ...,
                     response.function_call_arguments.done
      response.output_item.done                       the item, whole
    response.completed | response.incomplete          the response, whole, with usage

One item is open at a time: a new one opens (and the open one is done) whenever the kind of
delta changes or a new tool call starts. Fragments of a tool call already done (upstreams do
not send them) still reach its arguments in the final response. Only choice 0 is shown.

A failure after the stream began (the relay's `error`, or DeepSeek's `finish_reason:
insufficient_system_resource`) ends it with an `error` event and then `response.failed`, whose
output holds what was produced so far (unfinished items `incomplete`); nothing follows. The
finished response (completed, incomplete or failed) is handed to `keep` for storing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from gateway.core.answer import Chunk, Delta, ToolCallDelta
from gateway.core.call import Call
from gateway.errors import GatewayError
from gateway.surfaces.openai_responses.errors import error_event_payload, response_error
from gateway.surfaces.openai_responses.ids import new_id
from gateway.surfaces.openai_responses.output import (
    CUT_SHORT,
    CUT_SHORT_MESSAGE,
    Item,
    function_call_item,
    message_item,
    new_call_id,
    reasoning_item,
    response_object,
    status_for,
    text_part,
)
from gateway.surfaces.openai_responses.render import options_of
from gateway.usage import Usage

KEEPALIVE = b": keep-alive\n\n"
_REASONING, _MESSAGE, _CALL = "reasoning", "message", "function_call"

Keep = Callable[[dict[str, Any]], None]


class _Open:
    """The item being streamed: its kind, output index, id and text (or arguments) so far."""

    __slots__ = ("call_id", "index", "item_id", "kind", "name", "parts")

    def __init__(self, kind: str, index: int, item_id: str, call_id: str = "",
                 name: str = "") -> None:
        self.kind = kind
        self.index = index
        self.item_id = item_id
        self.call_id = call_id
        self.name = name
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.parts)


class ResponsesStream:
    """Per-call state of one streamed response; implements core.surface.StreamRenderer."""

    keepalive_interval: float | None = 15.0
    verbatim = False  # every event is rewritten

    def __init__(self, call: Call, keep: Keep | None = None) -> None:
        self._options = options_of(call)
        self._keep = keep
        self._sequence = 0
        self._started = False
        self._ended = False
        self._output: list[Item] = []  # items done, by output index
        self._open: _Open | None = None
        self._calls: dict[int, _Open] = {}  # canonical tool-call index -> its item
        self._finish_reason: str | None = None
        self._usage: Usage | None = None

    # ---- StreamRenderer ------------------------------------------------------------------

    def chunk(self, chunk: Chunk) -> bytes:
        if self._ended:
            return b""
        out: list[bytes] = []
        self._start(out)
        if chunk.usage is not None:
            self._usage = chunk.usage
        for delta in chunk.deltas:
            if delta.index == 0:
                self._delta(delta, out)
                if self._ended:
                    break
        return b"".join(out)

    def finish(self, usage: Usage | None) -> bytes:
        if self._ended:
            return b""
        out: list[bytes] = []
        self._start(out)
        self._close(out)
        status, incomplete = status_for(self._finish_reason)
        response = response_object(self._options, status, self._output,
                                   usage or self._usage, incomplete=incomplete)
        out.append(self._event(
            "response.incomplete" if incomplete else "response.completed", response=response))
        self._end(response)
        return b"".join(out)

    def error(self, error: GatewayError) -> bytes:
        if self._ended:
            return b""
        out: list[bytes] = []
        self._start(out)
        output = list(self._output)
        if self._open is not None:  # its place holds nothing yet: it was not done
            output[self._open.index] = self._item(self._open, "incomplete")
        response = response_object(self._options, "failed", output, self._usage,
                                   error=response_error(error))
        out.append(self._event("error", **error_event_payload(error)))
        out.append(self._event("response.failed", response=response))
        self._end(response)
        return b"".join(out)

    def keepalive(self) -> bytes:
        return KEEPALIVE

    # ---- items ---------------------------------------------------------------------------

    def _delta(self, delta: Delta, out: list[bytes]) -> None:
        if delta.reasoning:
            self._text(_REASONING, delta.reasoning, out)
        if delta.content:
            self._text(_MESSAGE, delta.content, out)
        for fragment in delta.tool_calls or ():
            self._tool_fragment(fragment, out)
        if delta.finish_reason == CUT_SHORT:
            out.append(self.error(GatewayError(CUT_SHORT_MESSAGE, status=503,
                                               code="server_error")))
        elif delta.finish_reason is not None:
            self._finish_reason = delta.finish_reason

    def _text(self, kind: str, text: str, out: list[bytes]) -> None:
        item = self._open
        if item is None or item.kind != kind:
            item = self._begin(_Open(kind, len(self._output), new_id(
                "rs" if kind == _REASONING else "msg")), out)
            if kind == _MESSAGE:
                out.append(self._event("response.content_part.added", **self._at(item),
                                       content_index=0, part=text_part("")))
        item.parts.append(text)
        if kind == _REASONING:
            out.append(self._event("response.reasoning_text.delta", **self._at(item),
                                   content_index=0, delta=text))
        else:
            out.append(self._event("response.output_text.delta", **self._at(item),
                                   content_index=0, delta=text, logprobs=[]))

    def _tool_fragment(self, fragment: ToolCallDelta, out: list[bytes]) -> None:
        item = self._calls.get(fragment.index)
        if item is None:
            item = _Open(_CALL, len(self._output), new_id("fc"),
                         fragment.id or new_call_id(), fragment.name or "")
            self._calls[fragment.index] = item
            self._begin(item, out)
        if fragment.arguments:
            item.parts.append(fragment.arguments)
            if item is self._open:
                out.append(self._event("response.function_call_arguments.delta",
                                       **self._at(item), delta=fragment.arguments))
            else:  # a late fragment of a call already done: keep it for the final output
                self._output[item.index] = self._item(item, "completed")

    def _begin(self, item: _Open, out: list[bytes]) -> _Open:
        self._close(out)
        self._open = item
        self._output.append({})  # the item's place; filled when it is done
        out.append(self._event("response.output_item.added", output_index=item.index,
                               item=self._empty(item)))
        return item

    def _close(self, out: list[bytes]) -> None:
        item, self._open = self._open, None
        if item is None:
            return
        at = self._at(item)
        if item.kind == _REASONING:
            out.append(self._event("response.reasoning_text.done", **at, content_index=0,
                                   text=item.text))
        elif item.kind == _MESSAGE:
            out.append(self._event("response.output_text.done", **at, content_index=0,
                                   text=item.text, logprobs=[]))
            out.append(self._event("response.content_part.done", **at, content_index=0,
                                   part=text_part(item.text)))
        else:
            done = self._item(item, "completed")
            out.append(self._event("response.function_call_arguments.done", **at,
                                   name=done["name"], arguments=item.text))
        status = "incomplete" if item.kind == _MESSAGE and status_for(
            self._finish_reason)[1] else "completed"
        self._output[item.index] = self._item(item, status)
        out.append(self._event("response.output_item.done", output_index=item.index,
                               item=self._output[item.index]))

    def _item(self, item: _Open, status: str) -> Item:
        """The item as it stands, with `status`."""
        if item.kind == _REASONING:
            whole = reasoning_item(item.item_id, item.text, self._options)
        elif item.kind == _MESSAGE:
            whole = message_item(item.item_id, item.text)
        else:
            whole = function_call_item(item.item_id, item.call_id, item.name, item.text,
                                       self._options.namespaced)
        whole["status"] = status
        return whole

    def _empty(self, item: _Open) -> Item:
        """The item as `output_item.added` shows it: nothing produced yet."""
        empty = self._item(item, "in_progress")
        if item.kind == _REASONING:
            empty["content"] = []
            empty.pop("encrypted_content", None)
        elif item.kind == _MESSAGE:
            empty["content"] = []
        return empty

    # ---- events --------------------------------------------------------------------------

    def _start(self, out: list[bytes]) -> None:
        if self._started:
            return
        self._started = True
        snapshot = response_object(self._options, "in_progress", [], final=False)
        out.append(self._event("response.created", response=snapshot))
        out.append(self._event("response.in_progress", response=snapshot))

    def _end(self, response: dict[str, Any]) -> None:
        self._ended = True
        self._open = None
        if self._keep is not None:
            self._keep(response)

    def _at(self, item: _Open) -> dict[str, Any]:
        return {"item_id": item.item_id, "output_index": item.index}

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
