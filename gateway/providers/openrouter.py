"""OpenRouter: `reasoning` object in, `reasoning` string out, usage always with `cost`."""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers.base import Provider
from gateway.thinking import Thinking


class OpenRouter(Provider):
    kind: ClassVar[str] = "openrouter"
    chat_path: ClassVar[str] = "/chat/completions"
    reasoning_field: ClassVar[str] = "reasoning"
    unsupported_params: ClassVar[frozenset[str]] = frozenset()  # it takes top_k
    # OpenRouter's efforts stop at xhigh, which it maps to DeepSeek V4's max reasoning. The
    # mode is always sent as an effort (never a budget) so it is the same as on DeepSeek.
    mode_values: ClassVar[dict[str, str]] = {"low": "low", "high": "high", "max": "xhigh"}

    def encode_thinking(self, payload: dict[str, Any], thinking: Thinking) -> None:
        mode = thinking.mode
        if mode == "off":
            payload["reasoning"] = {"enabled": False}
            return
        reasoning: dict[str, Any] = {"enabled": True, "effort": self.mode_value(mode)}
        if thinking.exclude:
            reasoning["exclude"] = True
        payload["reasoning"] = reasoning
