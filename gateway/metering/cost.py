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
    carry the same cost: the amount a provider reports it billed when it reports one
    (OpenRouter), else the price book's figure, which is kept beside it either way."""

    def __init__(self, prices: PriceBook, inner: UsageSink) -> None:
        self._prices = prices
        self._inner = inner
        # Prices change at most at minute boundaries (dates, peak windows): look each one up
        # once a minute, not once a request.
        self._minute = -1
        self._cache: dict[tuple[str, str], Price | None] = {}

    def record(self, event: UsageEvent) -> None:
        usage = event.usage
        if (usage is not None and event.provider is not None
                and event.status != "refused"):  # a refusal is never charged
            price = self._price(event.provider, event.model, event.started_at)
            if price is not None:
                event.book_cost_usd = cost_usd(usage, price)
            # What the provider says it billed (OpenRouter's usage.cost) is the cost.
            reported = usage.provider_cost_usd
            event.cost_usd = reported if reported is not None else event.book_cost_usd
        self._inner.record(event)

    def _price(self, provider: str, model: str, timestamp: float) -> Price | None:
        minute = int(timestamp // 60)
        if minute != self._minute:
            self._minute = minute
            self._cache.clear()
        key = (provider, model)
        if key not in self._cache:
            at = datetime.fromtimestamp(minute * 60, UTC)
            self._cache[key] = self._prices.price(provider, model, at)
        return self._cache[key]
