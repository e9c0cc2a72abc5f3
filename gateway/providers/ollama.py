"""Ollama Cloud's OpenAI-compatible endpoint: `reasoning_effort` in, `reasoning` out,
errors as bare strings, parallel tool calls streamed all at index 0 (repaired by the shared
stream translator), and usage limits that take the account out for hours."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from gateway.errors import UpstreamError
from gateway.providers.base import Provider
from gateway.thinking import Thinking

# "you (user) have reached your session usage limit, upgrade ..." / "... weekly usage limit".
_LIMIT = re.compile(r"\b(session|weekly) usage limit\b", re.IGNORECASE)


class Ollama(Provider):
    kind: ClassVar[str] = "ollama"
    chat_path: ClassVar[str] = "/v1/chat/completions"
    reasoning_field: ClassVar[str] = "reasoning"
    # /v1 takes "none" for off; for DeepSeek V4.1 it reportedly takes low/high/max
    # (unconfirmed: set `mode_values: {max: high}` on the provider if "max" is refused).
    mode_values: ClassVar[dict[str, str]] = {
        "off": "none", "low": "low", "high": "high", "max": "max"}
    quota_statuses: ClassVar[dict[int, str]] = {402: "balance"}

    def encode_thinking(self, payload: dict[str, Any], thinking: Thinking) -> None:
        payload["reasoning_effort"] = self.mode_value(thinking.mode)

    def error_from_response(
        self, status: int, raw: bytes, headers: Any = None
    ) -> UpstreamError:
        error = super().error_from_response(status, raw, headers)
        if status == 429 and error.quota is None:
            found = _LIMIT.search(error.message)
            if found:
                error.quota = found.group(1).lower()
        return error
