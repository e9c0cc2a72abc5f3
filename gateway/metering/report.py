"""What `gateway prices` prints: the price book's dated entries and today's effective price per
provider, as plain lines (so a test can read them and an operator can grep them)."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.config import GatewayConfig
from gateway.metering.prices import PriceBook
from gateway.metering.setup import price_book


def price_lines(config: GatewayConfig, at: datetime | None = None,
                book: PriceBook | None = None) -> list[str]:
    """The book per (provider, model), then the price in force at `at` (default: now) for
    every configured provider and model."""
    book = book or price_book(config)
    at = at or datetime.now(UTC)
    lines = ["price book (USD per 1M tokens: cache hit / cache miss / output; times UTC)"]
    for provider, model in book.books():
        lines.append(f"{provider} {model}")
        for entry in book.entries(provider, model):
            peak = f"  peak x{entry.peak.multiplier:g} ({entry.peak.windows})" if entry.peak \
                else ""
            note = f"  {entry.note}" if entry.note else ""
            source = f"  <{entry.source}>" if entry.source else ""
            lines.append(f"  from {entry.from_:%Y-%m-%d %H:%M}  {_money(entry.cache_hit)} / "
                         f"{_money(entry.cache_miss)} / {_money(entry.output)}{peak}{note}"
                         f"{source}")
    lines.append(f"in force at {at:%Y-%m-%d %H:%M} UTC")
    for name, account in config.providers.items():
        for model in config.models:
            if model not in account.models:
                continue
            price = book.price(name, model, at)
            if price is None:
                lines.append(f"  {name:12} {model:20} no price in the book")
                continue
            when = "peak" if price.peak else "off-peak"
            billing = f" ({account.billing})" if account.billing else ""
            lines.append(f"  {name:12} {model:20} {_money(price.cache_hit)} / "
                         f"{_money(price.cache_miss)} / {_money(price.output)}  {when}{billing}")
    return lines


def _money(value: float) -> str:
    return f"{value:.6g}"
