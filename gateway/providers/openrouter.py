"""OpenRouter: `reasoning` object in, `reasoning` string out, usage always with `cost`."""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers.base import Provider
from gateway.thinking import Thinking

# OpenRouter's efforts stop at xhigh; DeepSeek's "max" is the nearest.
_EFFORT = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high",
           "xhigh": "xhigh", "max": "xhigh"}


class OpenRouter(Provider):
    kind: ClassVar[str] = "openrouter"
    chat_path: ClassVar[str] = "/chat/completions"
    reasoning_field: ClassVar[str] = "reasoning"
    unsupported_params: ClassVar[frozenset[str]] = frozenset()  # it takes top_k

    def encode_thinking(self, payload: dict[str, Any], thinking: Thinking) -> None:
        if not thinking.enabled:
            payload["reasoning"] = {"enabled": False}
            return
        reasoning: dict[str, Any] = {"enabled": True}
        if thinking.effort:
            reasoning["effort"] = _EFFORT[thinking.effort]
        elif thinking.max_tokens:
            reasoning["max_tokens"] = thinking.max_tokens
        if thinking.exclude:
            reasoning["exclude"] = True
        payload["reasoning"] = reasoning
