"""Reading an upstream's stream: server-sent events in, canonical chunks out.

`sse_batches` turns the upstream's byte stream into event payloads, skipping the comment and
keep-alive lines that DeepSeek (`: keep-alive`) and OpenRouter (`: OPENROUTER PROCESSING`)
send. `StreamDecoder` rewrites each chunk into the canonical dialect as it passes (reasoning in
`reasoning_content`, repaired tool-call indices, the canonical model name), keeping the
upstream's bytes when nothing changed, and remembers usage, progress and reasoning. Rendering
for a client is the surfaces' job.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.core.answer import Chunk, Delta, ToolCallDelta
from gateway.errors import UpstreamError
from gateway.providers.base import Provider
from gateway.thinking import Thinking
from gateway.usage import Usage

DONE = b"[DONE]"


async def sse_batches(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    """Yield, per network read, the `data` payloads of the events it completed.

    Events that arrived together are relayed together (one write instead of one per event)
    without ever waiting for more. Splits lines itself, so no line-length limit applies.
    """
    pending = b""
    data_lines: list[bytes] = []
    async for chunk in chunks:
        pending += chunk
        if b"\n" not in chunk:
            continue
        *lines, pending = pending.split(b"\n")
        batch: list[bytes] = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data_lines:
                    batch.append(data_lines[0] if len(data_lines) == 1 else b"\n".join(data_lines))
                    data_lines = []
            elif line.startswith(b"data:"):
                value = line[5:]
                data_lines.append(value[1:] if value.startswith(b" ") else value)
            # comments (":..."), "event:", "id:" and "retry:" lines carry nothing we relay
        if batch:
            yield batch
    if data_lines:
        yield [b"\n".join(data_lines)]


class StreamDecoder:
    """Per-attempt state of one streamed answer."""

    def __init__(self, provider: Provider, public_model: str, thinking: Thinking) -> None:
        self.provider = provider
        self.public_model = public_model
        self.thinking = thinking
        self.usage: Usage | None = None
        self.done = False
        self.finished = False
        self.cut_short: str | None = None  # the finish reason, if the provider cut it short
        self.first_token_at: float | None = None
        self.relayed_chars = 0
        field = provider.reasoning_field
        self._rename = field if field != "reasoning_content" else None
        self._reasoning: list[str] = []
        self._tool_calls: list[dict[str, Any]] = []
        # Tool-call index repair: Ollama streams parallel calls all at index 0 with different
        # ids. Each new id gets the next index of its choice; id-less fragments follow the
        # last id seen at their upstream index. For compliant providers this is the identity.
        self._index_of_id: dict[tuple[int, str], int] = {}
        self._current: dict[tuple[int, int], int] = {}
        self._next_index: dict[int, int] = {}

    def feed_batch(self, batch: list[bytes]) -> tuple[list[Chunk], UpstreamError | None]:
        """Decode events that arrived together; stops at [DONE] or at an in-band error,
        returning what was decoded before it."""
        out: list[Chunk] = []
        try:
            for data in batch:
                chunk = self.feed(data)
                if chunk is not None:
                    out.append(chunk)
                if self.done:
                    break
        except UpstreamError as err:
            return out, err
        return out, None

    def feed(self, data: bytes) -> Chunk | None:
        """Decode one event payload, or None for the end marker."""
        if data == DONE:
            self.done = True
            return None
        try:
            native = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise self.provider.invalid_answer("the stream sent a chunk that is not JSON") from None
        if not isinstance(native, dict):
            raise self.provider.invalid_answer("the stream sent a chunk that is not an object")
        if "error" in native:
            error = self.provider.error_in_chunk(native)
            if error is not None:
                raise error
        # Keep the upstream's bytes while nothing changes: a chunk already in the canonical
        # dialect (DeepSeek's own, under the public name) can go out as the bytes that came in.
        changed = False
        if native.get("model") != self.public_model:
            native["model"] = self.public_model
            changed = True
        deltas: list[Delta] = []
        choices = native.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, dict):
                    delta, choice_changed = self._decode_choice(choice)
                    deltas.append(delta)
                    if choice_changed:
                        changed = True
        usage: Usage | None = None
        raw_usage = native.get("usage")
        if raw_usage:
            usage = self.usage = self.provider.parse_usage(raw_usage)
            if usage is not None:
                native["usage"] = usage.to_openai()
            changed = True
        return Chunk(deltas, usage, native, None if changed else data)

    def _decode_choice(self, choice: dict[str, Any]) -> tuple[Delta, bool]:
        """Translate one choice's delta in place; True if anything changed. Called per event,
        so kept free of method calls on the common path."""
        changed = False
        index = choice.get("index", 0)
        if not isinstance(index, int):
            index = 0
        finish_reason = choice.get("finish_reason")
        if finish_reason:
            self.finished = True
            if finish_reason in self.provider.cut_short_reasons:
                self.cut_short = finish_reason
        out = Delta(index, finish_reason=finish_reason if isinstance(finish_reason, str) else None)
        delta = choice.get("delta")
        if isinstance(delta, dict):
            if self._rename is not None and self._rename in delta:
                delta["reasoning_content"] = delta.pop(self._rename)
                changed = True
            if "reasoning_details" in delta:
                del delta["reasoning_details"]
                changed = True
            if self.thinking.exclude and "reasoning_content" in delta:
                del delta["reasoning_content"]
                changed = True
            reasoning = delta.get("reasoning_content")
            content = delta.get("content")
            tool_calls = delta.get("tool_calls")
            if reasoning or content or tool_calls:
                if self.first_token_at is None:
                    self.first_token_at = time.monotonic()
                if isinstance(reasoning, str):
                    self._reasoning.append(reasoning)
                    self.relayed_chars += len(reasoning)
                    out.reasoning = reasoning
                if isinstance(content, str):
                    self.relayed_chars += len(content)
                    out.content = content
            if isinstance(tool_calls, list):
                out.tool_calls = []
                if self._repair_tool_calls(index, tool_calls, out.tool_calls):
                    changed = True
        return out, changed

    def _repair_tool_calls(
        self, choice_index: int, calls: list[Any], out: list[ToolCallDelta]
    ) -> bool:
        changed = False
        for call in calls:
            if not isinstance(call, dict):
                continue
            upstream_index = call.get("index", 0)
            if not isinstance(upstream_index, int):
                upstream_index = 0
            call_id = call.get("id")
            if isinstance(call_id, str) and call_id:
                key = (choice_index, call_id)
                if key not in self._index_of_id:
                    self._index_of_id[key] = self._next_index.get(choice_index, 0)
                    self._next_index[choice_index] = self._index_of_id[key] + 1
                    self._tool_calls.append({"id": call_id})
                index = self._index_of_id[key]
                self._current[(choice_index, upstream_index)] = index
            else:
                call_id = None
                index = self._current.get((choice_index, upstream_index), upstream_index)
            if call.get("index") != index:
                call["index"] = index
                changed = True
            function = call.get("function")
            name = arguments = None
            if isinstance(function, dict):
                name = function.get("name")
                arguments = function.get("arguments")
                if isinstance(arguments, str):
                    self.relayed_chars += len(arguments)
                else:
                    arguments = None
            out.append(ToolCallDelta(index, call_id, name if isinstance(name, str) else None,
                                     arguments))
        return changed

    def remember_reasoning(self) -> None:
        """Keep this answer's reasoning for later turns that replay its tool calls."""
        if self._tool_calls and self._reasoning:
            self.provider.memory.remember(self._tool_calls, "".join(self._reasoning))
