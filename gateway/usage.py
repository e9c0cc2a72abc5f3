"""Token usage in one canonical shape, and the event each finished request produces.

Providers report usage in three dialects (DeepSeek's cache hit/miss counts, OpenRouter's
`cached_tokens` and `cost`, Ollama's bare counts). Adapters turn them into `Usage`; the client
sees it in DeepSeek's dialect; the usage event carries it to metering and metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gateway.keys.principal import Principal


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hit_tokens: int | None = None
    cache_miss_tokens: int | None = None
    reasoning_tokens: int | None = None
    provider_cost_usd: float | None = None
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_openai(self) -> dict[str, Any]:
        """DeepSeek's usage dialect, plus OpenAI's `prompt_tokens_details` that SDKs read."""
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cache_hit_tokens is not None:
            out["prompt_cache_hit_tokens"] = self.cache_hit_tokens
            out["prompt_cache_miss_tokens"] = (
                self.cache_miss_tokens
                if self.cache_miss_tokens is not None
                else self.prompt_tokens - self.cache_hit_tokens
            )
            out["prompt_tokens_details"] = {"cached_tokens": self.cache_hit_tokens}
        if self.reasoning_tokens is not None:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return out


@dataclass(slots=True)
class UsageEvent:
    """Everything known about one request when it ends; metering and metrics consume it."""

    request_id: str
    requested_model: str
    model: str
    thinking: str
    stream: bool
    status: str  # ok | error | interrupted | client_cancelled | refused | shutdown
    provider: str | None = None
    upstream_model: str | None = None
    usage: Usage | None = None
    attempts: list[tuple[str, str]] = field(default_factory=list)
    error_type: str | None = None  # for `refused`: the reason (a gateway-chosen code)
    client_user: str | None = None
    key_id: str | None = None  # the gateway key (None: master key or loopback)
    team: str | None = None
    started_at: float = field(default_factory=time.time)
    latency_s: float = 0.0
    ttft_s: float | None = None
    overhead_s: float | None = None
    cost_usd: float | None = None  # what was billed: the provider's reported cost, else the book's
    book_cost_usd: float | None = None  # the price book's figure, kept beside a reported cost
    peak: bool = False  # the book's price was a peak-time one (set with book_cost_usd)
    principal: Principal | None = None  # whose limits and budgets this request is charged to
    api: str = "openai.chat"  # the surface that served the call (gateway/surfaces)


class UsageSink(Protocol):
    """Takes a finished request's event without ever making the client wait."""

    def record(self, event: UsageEvent) -> None: ...


class FanOutSink:
    """Hands each event to several sinks (metrics, the metering writer, a test's collector)."""

    def __init__(self, sinks: list[UsageSink]) -> None:
        self._sinks = sinks
        self._records = tuple(sink.record for sink in sinks)  # bound once, not per call

    def record(self, event: UsageEvent) -> None:
        for record in self._records:
            record(event)
