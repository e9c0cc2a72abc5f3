"""Remembers the reasoning behind tool calls the gateway relayed.

DeepSeek answers 400 when a thinking-mode request replays an assistant tool-call turn without
its `reasoning_content`. Many apps rebuild that turn from `tool_calls` alone (and OpenRouter's or
Ollama's answers named the field differently), so the gateway keeps the reasoning it relayed,
keyed by tool call id, and puts it back. Bounded LRU: memory stays flat however long it runs.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class ReasoningMemory:
    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._by_call_id: OrderedDict[str, str] = OrderedDict()

    def remember(self, tool_calls: Any, reasoning: str) -> None:
        if not isinstance(tool_calls, list):
            return
        for call in tool_calls:
            call_id = call.get("id") if isinstance(call, dict) else None
            if isinstance(call_id, str) and call_id:
                self._by_call_id[call_id] = reasoning
                self._by_call_id.move_to_end(call_id)
        while len(self._by_call_id) > self._capacity:
            self._by_call_id.popitem(last=False)

    def recall(self, tool_calls: Any) -> str | None:
        if not isinstance(tool_calls, list):
            return None
        for call in tool_calls:
            call_id = call.get("id") if isinstance(call, dict) else None
            if isinstance(call_id, str) and call_id in self._by_call_id:
                return self._by_call_id[call_id]
        return None

    def __len__(self) -> int:
        return len(self._by_call_id)
