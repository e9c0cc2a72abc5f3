"""Thinking mode: read it from any dialect a client speaks, into one neutral value.

Clients switch DeepSeek V4's reasoning on and off in three dialects: DeepSeek's
`thinking: {"type": ...}`, OpenAI's (and Ollama's) top-level `reasoning_effort`, and OpenRouter's
`reasoning: {...}` object. `extract_thinking` removes all three from the request body and
returns one `Thinking`; each provider adapter then writes it back in its own dialect. An explicit
field beats the model name's default (e.g. `deepseek-chat` means thinking off).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidRequest

EFFORTS = ("minimal", "low", "medium", "high", "xhigh", "max")
_OFF_EFFORT = "none"


@dataclass(frozen=True, slots=True)
class Thinking:
    """What the client asked of the model's reasoning, independent of any provider."""

    enabled: bool
    effort: str | None = None
    max_tokens: int | None = None
    exclude: bool = False

    @property
    def label(self) -> str:
        return "on" if self.enabled else "off"


def extract_thinking(body: dict[str, Any], default_enabled: bool) -> Thinking:
    """Pop every thinking field out of `body` and resolve them against the model's default.

    Precedence among explicit fields: DeepSeek's `thinking.type`, then OpenRouter's
    `reasoning.enabled` / `reasoning.effort`, then `reasoning_effort`.
    """
    deepseek = body.pop("thinking", None)
    openrouter = body.pop("reasoning", None)
    effort_field = body.pop("reasoning_effort", None)

    enabled: bool | None = None
    effort: str | None = None
    max_tokens: int | None = None
    exclude = False

    if effort_field is not None:
        effort_enabled, effort = _parse_effort(effort_field, "reasoning_effort")
        enabled = effort_enabled

    if openrouter is not None:
        or_enabled, or_effort, max_tokens, exclude = _parse_openrouter(openrouter)
        if or_effort is not None:
            effort = or_effort
        if or_enabled is not None:
            enabled = or_enabled

    if deepseek is not None:
        enabled = _parse_deepseek(deepseek)

    if enabled is None:
        enabled = default_enabled if effort is None and max_tokens is None else True
    if not enabled:
        return Thinking(enabled=False)
    return Thinking(enabled=True, effort=effort, max_tokens=max_tokens, exclude=exclude)


def _parse_effort(value: Any, param: str) -> tuple[bool, str | None]:
    if not isinstance(value, str):
        raise InvalidRequest(f"'{param}' must be a string", param=param)
    if value == _OFF_EFFORT:
        return False, None
    if value not in EFFORTS:
        allowed = ", ".join((_OFF_EFFORT, *EFFORTS))
        raise InvalidRequest(
            f"'{param}' must be one of {allowed}; got {value!r}", param=param
        )
    return True, value


def _parse_deepseek(value: Any) -> bool:
    if not isinstance(value, dict) or value.get("type") not in ("enabled", "disabled"):
        raise InvalidRequest(
            "'thinking' must be an object like {\"type\": \"enabled\"} or "
            "{\"type\": \"disabled\"}",
            param="thinking",
        )
    return bool(value["type"] == "enabled")


def _parse_openrouter(value: Any) -> tuple[bool | None, str | None, int | None, bool]:
    if not isinstance(value, dict):
        raise InvalidRequest("'reasoning' must be an object", param="reasoning")
    enabled = value.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise InvalidRequest("'reasoning.enabled' must be a boolean", param="reasoning.enabled")
    effort: str | None = None
    if value.get("effort") is not None:
        effort_on, effort = _parse_effort(value["effort"], "reasoning.effort")
        if not effort_on:
            enabled = False
    max_tokens = value.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise InvalidRequest(
            "'reasoning.max_tokens' must be a positive integer", param="reasoning.max_tokens"
        )
    if effort is not None and max_tokens is not None:
        raise InvalidRequest(
            "'reasoning.effort' and 'reasoning.max_tokens' cannot be used together",
            param="reasoning",
        )
    exclude = value.get("exclude", False)
    if not isinstance(exclude, bool):
        raise InvalidRequest("'reasoning.exclude' must be a boolean", param="reasoning.exclude")
    if enabled is None and (effort is not None or max_tokens is not None):
        enabled = True
    return enabled, effort, max_tokens, exclude
