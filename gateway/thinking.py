"""Thinking mode: read it from any dialect a client speaks, into one neutral value.

DeepSeek V4 has three reasoning levels plus "off": Non-Thinking, Thinking (High, the default),
Think Max, and a `low` effort. Clients ask for them in several dialects, and the same word does
not mean the same level in each (`xhigh` is High on DeepSeek, Max on OpenRouter), so every
dialect is folded here, once, into one `mode` (off / low / high / max). Each provider adapter
then writes the value that gives that mode on its side, so a failover never changes the mode.

Dialects read by `extract_thinking` (the OpenAI-format surfaces): DeepSeek's
`thinking: {"type": ..., "budget_tokens": N}` (the seed's examples: a budget picks the level by
`BUDGET_TIERS`), top-level `reasoning_effort` (DeepSeek's folding, `ultra` included) and
OpenRouter's `reasoning: {effort | max_tokens}`. The Anthropic, Responses and Ollama surfaces
map their own fields with `mode_for_budget` and the fold tables below. An explicit field beats
the model name's default (e.g. `deepseek-chat` means thinking off).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from gateway.errors import InvalidRequest

Mode = Literal["off", "low", "high", "max"]
MODES: tuple[Mode, ...] = ("off", "low", "high", "max")
DEFAULT_EFFORT = "high"  # DeepSeek's: thinking without an effort is Thinking (High)

# A thinking budget in tokens picks the level: up to 4k low, up to 16k high, above that max.
# (Anthropic-style budgets: Claude Code's small background budgets stay cheap, the seed's
# `budget_tokens: 32000` is Think Max.)
BUDGET_TIERS: tuple[tuple[int, str], ...] = ((4096, "low"), (16384, "high"))

# `reasoning_effort` as DeepSeek folds it (PROVIDERS.md): minimal->low, medium/xhigh->high,
# ultra->max. "none" is off (OpenAI's and Ollama's word).
DEEPSEEK_EFFORTS: dict[str, str] = {
    "minimal": "low", "low": "low", "medium": "high", "high": "high", "xhigh": "high",
    "max": "max", "ultra": "max",
}
# OpenRouter's `reasoning.effort` (and OpenAI Responses' `reasoning.effort`, the same scale):
# for DeepSeek V4 OpenRouter maps xhigh to max reasoning, so xhigh is Think Max here.
OPENROUTER_EFFORTS: dict[str, str] = {**DEEPSEEK_EFFORTS, "xhigh": "max"}
_OFF_EFFORT = "none"


@dataclass(frozen=True, slots=True)
class Thinking:
    """What the client asked of the model's reasoning, independent of any provider.

    `effort` is already folded to low | high | max (None: the default, high); `max_tokens` is
    a reasoning budget the client gave (its level is in `effort`)."""

    enabled: bool
    effort: str | None = None
    max_tokens: int | None = None
    exclude: bool = False

    @property
    def mode(self) -> Mode:
        if not self.enabled:
            return "off"
        folded = DEEPSEEK_EFFORTS.get(self.effort or DEFAULT_EFFORT, DEFAULT_EFFORT)
        return folded  # type: ignore[return-value]  # always low | high | max

    @property
    def label(self) -> str:
        """The mode, for the usage row and the metrics label."""
        return self.mode


def mode_for_budget(budget: int) -> str:
    """The level a reasoning budget in tokens asks for (`BUDGET_TIERS`)."""
    for limit, effort in BUDGET_TIERS:
        if budget <= limit:
            return effort
    return "max"


def default_thinking(enabled: bool, effort: str | None = None) -> Thinking:
    """A model name's default (an alias such as `deepseek-v4-flash-max` carries an effort)."""
    return Thinking(enabled=True, effort=effort) if enabled else Thinking(enabled=False)


def extract_thinking(
    body: dict[str, Any], default_enabled: bool, default_effort: str | None = None
) -> Thinking:
    """Pop every thinking field out of `body` and resolve them against the model's default.

    Precedence among explicit fields: DeepSeek's `thinking`, then OpenRouter's `reasoning`,
    then `reasoning_effort`; an effort given anywhere beats a budget's tier.
    """
    deepseek = body.pop("thinking", None)
    openrouter = body.pop("reasoning", None)
    effort_field = body.pop("reasoning_effort", None)

    enabled: bool | None = None
    effort: str | None = None
    max_tokens: int | None = None
    exclude = False

    if effort_field is not None:
        enabled, effort = _parse_effort(effort_field, "reasoning_effort", DEEPSEEK_EFFORTS)

    if openrouter is not None:
        or_enabled, or_effort, max_tokens, exclude = _parse_openrouter(openrouter)
        if or_effort is not None:
            effort = or_effort
        if or_enabled is not None:
            enabled = or_enabled

    if deepseek is not None:
        enabled, budget = _parse_deepseek(deepseek)
        if budget is not None and effort_field is None:
            effort = mode_for_budget(budget)

    if enabled is None:
        if effort is None and max_tokens is None:
            return default_thinking(default_enabled, default_effort)
        enabled = True
    if not enabled:
        return Thinking(enabled=False)
    return Thinking(enabled=True, effort=effort, max_tokens=max_tokens, exclude=exclude)


def _parse_effort(
    value: Any, param: str, folds: dict[str, str]
) -> tuple[bool, str | None]:
    if not isinstance(value, str):
        raise InvalidRequest(f"'{param}' must be a string", param=param)
    if value == _OFF_EFFORT:
        return False, None
    if value not in folds:
        allowed = ", ".join((_OFF_EFFORT, *folds))
        raise InvalidRequest(
            f"'{param}' must be one of {allowed}; got {value!r}", param=param
        )
    return True, folds[value]


def _parse_deepseek(value: Any) -> tuple[bool, int | None]:
    if not isinstance(value, dict) or value.get("type") not in ("enabled", "disabled"):
        raise InvalidRequest(
            "'thinking' must be an object like {\"type\": \"enabled\"} or "
            "{\"type\": \"disabled\"}",
            param="thinking",
        )
    budget = value.get("budget_tokens")
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, int) or budget < 1
    ):
        raise InvalidRequest(
            "'thinking.budget_tokens' must be a positive integer", param="thinking.budget_tokens"
        )
    return bool(value["type"] == "enabled"), budget


def _parse_openrouter(value: Any) -> tuple[bool | None, str | None, int | None, bool]:
    if not isinstance(value, dict):
        raise InvalidRequest("'reasoning' must be an object", param="reasoning")
    enabled = value.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise InvalidRequest("'reasoning.enabled' must be a boolean", param="reasoning.enabled")
    effort: str | None = None
    if value.get("effort") is not None:
        effort_on, effort = _parse_effort(value["effort"], "reasoning.effort", OPENROUTER_EFFORTS)
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
    if max_tokens is not None:
        effort = mode_for_budget(max_tokens)
    exclude = value.get("exclude", False)
    if not isinstance(exclude, bool):
        raise InvalidRequest("'reasoning.exclude' must be a boolean", param="reasoning.exclude")
    if enabled is None and (effort is not None or max_tokens is not None):
        enabled = True
    return enabled, effort, max_tokens, exclude
