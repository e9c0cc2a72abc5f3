"""Tokens times prices. Reasoning tokens are already inside completion tokens (all providers
bill them as output); a provider that gives no cache split (Ollama) has every prompt token
counted as a cache miss."""

from __future__ import annotations

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

    def record(self, event: UsageEvent) -> None:
        usage = event.usage
        provider = event.provider
        if (usage is not None and provider is not None
                and event.status != "refused"):  # a refusal is never charged
            # The book memoizes each (provider, model) per minute: prices change only at
            # minute boundaries (dates, peak windows).
            price = self._prices.price_at(provider, event.model, event.started_at)
            if price is not None:
                event.book_cost_usd = cost_usd(usage, price)
                event.peak = price.peak
            # What the provider says it billed (OpenRouter's usage.cost) is the cost.
            reported = usage.provider_cost_usd
            event.cost_usd = reported if reported is not None else event.book_cost_usd
        self._inner.record(event)
