"""Ollama Cloud's OpenAI-compatible endpoint: `reasoning_effort` in, `reasoning` out,
errors as bare strings, and parallel tool calls streamed all at index 0 (repaired by the
shared stream translator)."""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers.base import Provider
from gateway.thinking import Thinking

# Ollama's /v1 takes high | medium | low | none. DeepSeek's default effort is high, so an
# unspecified effort asks for high to keep the model's meaning.
_EFFORT = {"minimal": "low", "low": "low", "medium": "medium", "high": "high",
           "xhigh": "high", "max": "high"}


class Ollama(Provider):
    kind: ClassVar[str] = "ollama"
    chat_path: ClassVar[str] = "/v1/chat/completions"
    reasoning_field: ClassVar[str] = "reasoning"

    def encode_thinking(self, payload: dict[str, Any], thinking: Thinking) -> None:
        payload["reasoning_effort"] = (
            _EFFORT[thinking.effort or "high"] if thinking.enabled else "none"
        )
