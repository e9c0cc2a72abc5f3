"""DeepSeek's own API: the canonical dialect, so only thinking needs writing."""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers.base import Provider
from gateway.thinking import Thinking


class DeepSeek(Provider):
    kind: ClassVar[str] = "deepseek"
    chat_path: ClassVar[str] = "/chat/completions"
    reasoning_field: ClassVar[str] = "reasoning_content"
    requires_reasoning_on_tool_turns: ClassVar[bool] = True
    cut_short_reasons: ClassVar[frozenset[str]] = frozenset({"insufficient_system_resource"})
    # DeepSeek takes reasoning_effort low | high | max; `reasoning_effort` with thinking
    # disabled is a 400, so "off" sends none. No budget field exists on this endpoint.
    mode_values: ClassVar[dict[str, str]] = {"low": "low", "high": "high", "max": "max"}
    quota_statuses: ClassVar[dict[int, str]] = {402: "balance"}

    def encode_thinking(self, payload: dict[str, Any], thinking: Thinking) -> None:
        mode = thinking.mode
        payload["thinking"] = {"type": "disabled" if mode == "off" else "enabled"}
        if mode != "off":
            payload["reasoning_effort"] = self.mode_value(mode)
