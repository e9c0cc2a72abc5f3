"""Tokens times prices. Reasoning tokens are already inside completion tokens (all providers
bill them as output); a provider that gives no cache split (Ollama) has every prompt token
counted as a cache miss."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.metering.prices import Price, PriceBook
from gateway.usage import Usage, UsageEvent, UsageSink


def split_prompt(usage: Usage) -> tuple[int, int]:
    """(cache-hit, cache-miss) prompt tokens."""
    hit = usage.cache_hit_tokens or 0
    miss = usage.cache_miss_tokens
    if miss is None:
        miss = max(0, usage.prompt_tokens - hit)
    return hit, miss


def cost_usd(usage: Usage, price: Price) -> float:
    hit, miss = split_prompt(usage)
    return (
        hit * price.cache_hit + miss * price.cache_miss + usage.completion_tokens * price.output
    ) / 1_000_000


class PricingSink:
    """Prices each event once, before it fans out, so metrics, budgets and usage rows all
    carry the same cost."""

    def __init__(self, prices: PriceBook, inner: UsageSink) -> None:
        self._prices = prices
        self._inner = inner

    def record(self, event: UsageEvent) -> None:
        if event.usage is not None and event.provider is not None:
            at = datetime.fromtimestamp(event.started_at, UTC)
            price = self._prices.price(event.provider, event.model, at)
            if price is not None:
                event.cost_usd = cost_usd(event.usage, price)
        self._inner.record(event)
