"""DeepSeek's own API: the canonical dialect, so only thinking needs writing."""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers.base import Provider
from gateway.thinking import Thinking

# DeepSeek takes low | high | max and folds the rest (PROVIDERS.md); fold here so the request
# is valid whatever DeepSeek's leniency is this month.
_EFFORT = {"minimal": "low", "low": "low", "medium": "high", "high": "high",
           "xhigh": "high", "max": "max"}


class DeepSeek(Provider):
    kind: ClassVar[str] = "deepseek"
    chat_path: ClassVar[str] = "/chat/completions"
    reasoning_field: ClassVar[str] = "reasoning_content"
    requires_reasoning_on_tool_turns: ClassVar[bool] = True
    cut_short_reasons: ClassVar[frozenset[str]] = frozenset({"insufficient_system_resource"})

    def encode_thinking(self, payload: dict[str, Any], thinking: Thinking) -> None:
        payload["thinking"] = {"type": "enabled" if thinking.enabled else "disabled"}
        if thinking.enabled and thinking.effort:
            payload["reasoning_effort"] = _EFFORT[thinking.effort]
