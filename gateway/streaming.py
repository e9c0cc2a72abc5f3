"""Server-sent events: reading the upstream's, translating each chunk, writing ours.

`sse_events` turns the upstream's byte stream into event payloads, skipping the comment and
keep-alive lines that DeepSeek (`: keep-alive`) and OpenRouter (`: OPENROUTER PROCESSING`)
send. `StreamTranslator` rewrites each chunk into DeepSeek's dialect as it passes, remembers the
usage, and hides the usage chunk from clients that did not ask for one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.errors import GatewayError, UpstreamError
from gateway.providers.base import Provider
from gateway.thinking import Thinking
from gateway.usage import Usage

DONE = b"[DONE]"
DONE_EVENT = b"data: [DONE]\n\n"


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


def error_event(error: GatewayError) -> bytes:
    """The one event that ends a stream that failed after it began (OpenAI's convention)."""
    return b"data: " + error.to_json() + b"\n\n"


class StreamTranslator:
    """Per-attempt state of one streamed answer."""

    def __init__(
        self, provider: Provider, public_model: str, thinking: Thinking, client_wants_usage: bool
    ) -> None:
        self.provider = provider
        self.public_model = public_model
        self.thinking = thinking
        self.client_wants_usage = client_wants_usage
        self.usage: Usage | None = None
        self.done = False
        self.finished = False
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

    def feed_batch(self, batch: list[bytes]) -> tuple[bytes, UpstreamError | None]:
        """Translate events that arrived together; stops at [DONE] or at an in-band error,
        returning what was translated before it."""
        out: list[bytes] = []
        try:
            for data in batch:
                piece = self.feed(data)
                if piece is not None:
                    out.append(piece)
                if self.done:
                    break
        except UpstreamError as err:
            return b"".join(out), err
        return b"".join(out), None

    def feed(self, data: bytes) -> bytes | None:
        """Translate one event payload into the bytes to send, or None to send nothing."""
        if data == DONE:
            self.done = True
            return None
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise self.provider.invalid_answer("the stream sent a chunk that is not JSON") from None
        if not isinstance(chunk, dict):
            raise self.provider.invalid_answer("the stream sent a chunk that is not an object")
        if "error" in chunk:
            error = self.provider.error_in_chunk(chunk)
            if error is not None:
                raise error
        # Re-serialise only what changed: a chunk already in the canonical dialect (DeepSeek's
        # own, when the upstream name is the public one) goes out as the bytes that came in.
        changed = False
        if chunk.get("model") != self.public_model:
            chunk["model"] = self.public_model
            changed = True
        choices = chunk.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, dict) and self._translate_choice(choice):
                    changed = True
        raw_usage = chunk.get("usage")
        if raw_usage:
            self.usage = self.provider.parse_usage(raw_usage)
            if not self.client_wants_usage:
                if not choices:
                    return None  # the usage-only chunk the client did not ask for
                del chunk["usage"]
            elif self.usage is not None:
                chunk["usage"] = self.usage.to_openai()
            changed = True
        elif self.client_wants_usage and "usage" not in chunk:
            chunk["usage"] = None  # OpenAI's clients expect null on every other chunk
            changed = True
        return b"data: " + (orjson.dumps(chunk) if changed else data) + b"\n\n"

    def _translate_choice(self, choice: dict[str, Any]) -> bool:
        """Translate one choice's delta in place; True if anything changed. Called per event,
        so kept free of method calls on the common path."""
        changed = False
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
            if reasoning or content or delta.get("tool_calls"):
                if self.first_token_at is None:
                    self.first_token_at = time.monotonic()
                if isinstance(reasoning, str):
                    self._reasoning.append(reasoning)
                    self.relayed_chars += len(reasoning)
                if isinstance(content, str):
                    self.relayed_chars += len(content)
            tool_calls = delta.get("tool_calls")
            if isinstance(tool_calls, list):
                index = choice.get("index", 0)
                if self._repair_tool_calls(index if isinstance(index, int) else 0, tool_calls):
                    changed = True
        if choice.get("finish_reason"):
            self.finished = True
        return changed

    def _repair_tool_calls(self, choice_index: int, calls: list[Any]) -> bool:
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
                index = self._current.get((choice_index, upstream_index), upstream_index)
            if call.get("index") != index:
                call["index"] = index
                changed = True
            arguments = (call.get("function") or {}).get("arguments")
            if isinstance(arguments, str):
                self.relayed_chars += len(arguments)
        return changed

    def remember_reasoning(self) -> None:
        """Keep this answer's reasoning for later turns that replay its tool calls."""
        if self._tool_calls and self._reasoning:
            self.provider.memory.remember(self._tool_calls, "".join(self._reasoning))
