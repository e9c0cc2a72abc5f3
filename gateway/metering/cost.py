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
        # once a minute, not once a request; the minute is [_from, _until) in epoch seconds.
        self._from = self._until = 0.0
        self._cache: dict[tuple[str, str], Price | None] = {}

    def record(self, event: UsageEvent) -> None:
        usage = event.usage
        provider = event.provider
        if (usage is not None and provider is not None
                and event.status != "refused"):  # a refusal is never charged
            started = event.started_at
            if not self._from <= started < self._until:
                self._new_minute(started)
            key = (provider, event.model)
            cache = self._cache
            price = cache[key] if key in cache else self._look_up(key, started)
            if price is not None:
                # cost_usd(usage, price), written out: this runs once a call
                hit = usage.cache_hit_tokens or 0
                miss = usage.cache_miss_tokens
                if miss is None:
                    miss = max(0, usage.prompt_tokens - hit)
                event.book_cost_usd = (
                    hit * price.cache_hit + miss * price.cache_miss
                    + usage.completion_tokens * price.output) / 1_000_000
                event.peak = price.peak
            # What the provider says it billed (OpenRouter's usage.cost) is the cost.
            reported = usage.provider_cost_usd
            event.cost_usd = reported if reported is not None else event.book_cost_usd
        self._inner.record(event)

    def _new_minute(self, timestamp: float) -> None:
        minute = int(timestamp // 60)
        self._from, self._until = minute * 60.0, (minute + 1) * 60.0
        self._cache.clear()

    def _look_up(self, key: tuple[str, str], timestamp: float) -> Price | None:
        at = datetime.fromtimestamp(int(timestamp // 60) * 60, UTC)
        price = self._cache[key] = self._prices.price(*key, at)
        return price
