"""A usage event becomes one priced, database-ready row.

Built once, in the writer (off the hot path) or when spilling: the row's `id` is minted here,
so a row that is spooled and replayed, or retried after a timeout, is stored exactly once.
Strings are clipped to their column and stripped of NULs, because one unstorable value would
otherwise fail its whole batch forever. No header, key or body is copied: upstream keys can
never reach a row.

A refused call (status "refused": the gateway said no before any upstream answered) is stored
as such whatever else the event carries: no provider, no tokens, cost 0, so no budget is ever
charged for it; `error_type` is the refusal's reason and `model`/`requested_model` may be ""."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from gateway.metering.cost import cost_usd, split_prompt
from gateway.metering.prices import PriceBook
from gateway.usage import Usage, UsageEvent

REFUSED = "refused"


def build_row(event: UsageEvent, prices: PriceBook) -> dict[str, Any]:
    """Every request's row, on its path (the journal writes it before the answer's last byte):
    kept to plain lookups: the price PricingSink found is reused (else one lookup by Unix
    time), and no datetime round trips."""
    started = event.started_at
    refused = event.status == REFUSED
    provider = None if refused else event.provider
    reported = None if refused else event.usage
    usage = reported or _NO_USAGE
    hit, miss = split_prompt(usage) if reported is not None else (0, 0)
    cost = 0.0 if refused else event.cost_usd
    book: float | None = event.book_cost_usd
    if reported is not None and book is not None:
        # priced by PricingSink at this instant's price, whose peak it kept: no second look-up
        peak = event.peak if provider else False
    else:
        price = prices.price_at(provider, event.model, started) if provider else None
        book = None if refused or reported is None else (
            cost_usd(usage, price) if price is not None else None)
        peak = price.peak if price is not None else False
    ttft = event.ttft_s
    return {
        "id": row_id(started),
        "ts": datetime.fromtimestamp(started, UTC),
        "request_id": _clip(event.request_id, 128) or "",
        "key_id": _clip(event.key_id, 64),
        "team": _clip(event.team, 128),
        "client_user": _clip(event.client_user, 256),
        "requested_model": _clip(event.requested_model, 128) or "",
        "model": _clip(event.model, 64) or "",
        "provider": _clip(provider, 64),
        "upstream_model": None if refused else _clip(event.upstream_model, 128),
        "thinking": _clip(event.thinking, 32) or "",
        "stream": event.stream,
        "status": _clip(event.status, 20) or "",
        "error_type": _clip(event.error_type, 64),
        "attempts": ",".join([f"{p}:{o}" for p, o in event.attempts]),
        "prompt_tokens": usage.prompt_tokens,
        "cache_hit_tokens": hit,
        "cache_miss_tokens": miss,
        "completion_tokens": usage.completion_tokens,
        "reasoning_tokens": usage.reasoning_tokens or 0,
        "cost_usd": (
            cost if cost is not None
            else usage.provider_cost_usd if usage.provider_cost_usd is not None
            else book if book is not None else 0.0
        ),
        "provider_cost_usd": usage.provider_cost_usd,
        "book_cost_usd": book,
        "peak": peak,
        "estimated": usage.estimated,
        "latency_ms": round(event.latency_s * 1000, 3),
        "ttft_ms": None if ttft is None or refused else round(ttft * 1000, 3),
        "api": _clip(event.api, 32) or "",
    }


_NO_USAGE = Usage()  # read only: a call with no usage counts zeros


def row_id(started_at: float) -> str:
    """32 hex digits: the call's start in milliseconds, then 80 random bits. Ids that grow with
    time keep the primary key's inserts on its rightmost pages; random ones (md5-like) land on
    a random leaf each, which at tens of millions of rows no longer fits in the cache. The bits
    come from `random` (seeded from the OS, reseeded in a forked child), not a getrandom()
    call per row: uniqueness needs no secrecy, and the syscall was a third of the row's cost."""
    return ((int(started_at * 1000) & 0xFFFFFFFFFFFF) << 80
            | random.getrandbits(80)).to_bytes(16, "big").hex()


def _clip(value: str | None, length: int) -> str | None:
    if value is None or (len(value) <= length and "\x00" not in value):
        return value
    return value.replace("\x00", "")[:length]
