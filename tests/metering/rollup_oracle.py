"""What the rollups must hold, computed independently of gateway/metering/rollups.py: a SQL
GROUP BY over the raw rows for every count and sum, and the price book and bucket function
applied row by row for cache savings and the latency histograms. Tests compare the rollup
tables with it on SQLite and Postgres."""

from __future__ import annotations

import asyncio
import math
import sqlite3
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from gateway.metering.buckets import bucket_of
from gateway.metering.prices import PriceBook

_HOUR = {"pg": "to_char(date_trunc('hour', {c} AT TIME ZONE 'UTC'), 'YYYY-MM-DD HH24')",
         "sqlite": "strftime('%Y-%m-%d %H', {c})"}
_RAW = """
SELECT {hour} AS hour, coalesce(key_id, '') AS key_id, coalesce(team, '') AS team, model,
       coalesce(provider, '') AS provider, api, thinking, status,
       count(*) AS requests,
       sum(CASE WHEN attempts LIKE '%,%' THEN 1 ELSE 0 END) AS failovers,
       sum(prompt_tokens) AS prompt_tokens, sum(cache_hit_tokens) AS cache_hit_tokens,
       sum(cache_miss_tokens) AS cache_miss_tokens, sum(completion_tokens) AS completion_tokens,
       sum(reasoning_tokens) AS reasoning_tokens,
       sum(CASE WHEN ttft_ms IS NULL THEN 0 ELSE 1 END) AS ttft_count,
       sum(cost_usd) AS cost_usd, coalesce(sum(book_cost_usd), 0) AS book_cost_usd,
       coalesce(sum(provider_cost_usd), 0) AS provider_cost_usd,
       sum(latency_ms) AS latency_ms_sum, coalesce(sum(ttft_ms), 0) AS ttft_ms_sum
FROM usage GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
"""
_ROLLUP = """
SELECT {hour} AS hour, key_id, team, model, provider, api, thinking, status, requests,
       failovers, prompt_tokens, cache_hit_tokens, cache_miss_tokens, completion_tokens,
       reasoning_tokens, ttft_count, cost_usd, book_cost_usd, provider_cost_usd,
       latency_ms_sum, ttft_ms_sum, cache_savings_usd
FROM usage_hourly
"""
_DIMS = ("hour", "key_id", "team", "model", "provider", "api", "thinking", "status")


def fetch(where: str | Path, sql: str) -> list[dict[str, Any]]:
    """Rows of `sql` from a SQLite file (a Path) or a Postgres URL (a str)."""
    if isinstance(where, Path):
        with sqlite3.connect(where) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(sql).fetchall()]

    async def run() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(where)
        try:
            return [dict(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:  # callable from inside a test's event loop too
        return pool.submit(asyncio.run, run()).result()


def _kind(where: str | Path) -> str:
    return "sqlite" if isinstance(where, Path) else "pg"


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def assert_rollups_match(where: str | Path, prices: PriceBook) -> int:
    """Raises unless usage_hourly and usage_latency_hourly are exactly what the raw rows say;
    returns the number of raw rows."""
    hour = _HOUR[_kind(where)]
    expected = {tuple(r[d] for d in _DIMS): r
                for r in fetch(where, _RAW.format(hour=hour.format(c="ts")))}
    actual = {tuple(r[d] for d in _DIMS): r
              for r in fetch(where, _ROLLUP.format(hour=hour.format(c="hour")))}
    assert set(actual) == set(expected), (set(actual) ^ set(expected))
    raw = fetch(where, "SELECT ts, provider, model, cache_hit_tokens "
                       f", {hour.format(c='ts')} AS hour FROM usage")
    savings: Counter[tuple[Any, ...]] = Counter()
    for row in raw:
        ts = row["ts"] if isinstance(row["ts"], datetime) else datetime.fromisoformat(row["ts"])
        ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
        price = prices.price(row["provider"], row["model"], ts) if row["provider"] else None
        if price is not None:
            savings[row["hour"], row["provider"], row["model"]] += (
                row["cache_hit_tokens"] * (price.cache_miss - price.cache_hit) / 1e6)
    got_savings: Counter[tuple[Any, ...]] = Counter()
    for key, row in actual.items():
        want = expected[key]
        for name, value in want.items():
            assert _close(row[name], value), (key, name, row[name], value)
        got_savings[row["hour"], row["provider"], row["model"]] += row["cache_savings_usd"]
    for key in set(savings) | set(got_savings):
        assert _close(got_savings[key], savings[key]), (key, got_savings[key], savings[key])
    assert_histograms_match(where)
    _assert_days_match(where)
    return len(raw)


_HISTOGRAM = ("hour", "team", "provider", "model", "api", "metric", "bucket")


def raw_histograms(where: str | Path, teams: bool = True) -> Counter[tuple[Any, ...]]:
    """What usage_latency_hourly must hold per (hour, team, provider, model, api, metric,
    bucket), from the raw rows; without `teams`, with team "" throughout: the whole gateway's
    histogram, all that the table held before revision 0010."""
    hour = _HOUR[_kind(where)]
    expected: Counter[tuple[Any, ...]] = Counter()
    for row in fetch(where, f"SELECT {hour.format(c='ts')} AS hour, team, provider, model, "
                            "api, latency_ms, ttft_ms FROM usage"):
        base = (row["hour"], (row["team"] or "") if teams else "", row["provider"] or "",
                row["model"], row["api"])
        expected[(*base, "latency", bucket_of(row["latency_ms"]))] += 1
        if row["ttft_ms"] is not None:
            expected[(*base, "ttft", bucket_of(row["ttft_ms"]))] += 1
    return expected


def _stored_histograms(where: str | Path) -> Counter[tuple[Any, ...]]:
    hour = _HOUR[_kind(where)]
    return Counter({tuple(row[name] for name in _HISTOGRAM): row["count"] for row in fetch(
        where, f"SELECT {hour.format(c='hour')} AS hour, {', '.join(_HISTOGRAM[1:])}, count "
               "FROM usage_latency_hourly")})


def assert_histograms_match(where: str | Path, since_oldest_raw_hour: bool = False) -> None:
    """usage_latency_hourly holds exactly the raw rows' histograms per team (only for the
    hours from the oldest raw row on, if asked: older ones are pruned hours)."""
    actual, expected = _stored_histograms(where), raw_histograms(where)
    if since_oldest_raw_hour:
        first = min((key[0] for key in expected), default="")
        actual = Counter({key: n for key, n in actual.items() if key[0] >= first})
    assert actual == expected, (actual - expected, expected - actual)


_DAY = {"pg": "to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD')", "sqlite": "date(hour)"}
_SUMMED = ("requests", "failovers", "prompt_tokens", "cache_hit_tokens", "cache_miss_tokens",
           "completion_tokens", "reasoning_tokens", "ttft_count", "cost_usd", "book_cost_usd",
           "provider_cost_usd", "cache_savings_usd", "latency_ms_sum", "ttft_ms_sum")


def _assert_days_match(where: str | Path) -> None:
    """usage_daily holds usage_hourly's sums per UTC day."""
    dims = "key_id, team, model, provider, api, thinking, status"
    sums = ", ".join(f"sum({name}) AS {name}" for name in _SUMMED)
    day = _DAY[_kind(where)]
    expected = {tuple(r[d] for d in ("day", *_DIMS[1:])): r for r in fetch(
        where, f"SELECT {day} AS day, {dims}, {sums} FROM usage_hourly GROUP BY {day}, {dims}")}
    stored_day = "to_char(day, 'YYYY-MM-DD')" if _kind(where) == "pg" else "day"
    actual = {tuple(r[d] for d in ("day", *_DIMS[1:])): r for r in fetch(
        where, f"SELECT {stored_day} AS day, {dims}, {', '.join(_SUMMED)} FROM usage_daily")}
    assert set(actual) == set(expected), set(actual) ^ set(expected)
    for key, row in actual.items():
        for name in _SUMMED:
            assert _close(row[name], expected[key][name]), (key, name)
    assert_histogram_days_match(where)


def assert_histogram_days_match(where: str | Path) -> None:
    """usage_latency_daily holds usage_latency_hourly's counts per UTC day and team."""
    day = _DAY[_kind(where)]
    stored_day = "to_char(day, 'YYYY-MM-DD')" if _kind(where) == "pg" else "day"
    histogram = "team, provider, model, api, metric, bucket"
    hourly = {tuple(r.values())[:-1]: r["n"] for r in fetch(
        where, f"SELECT {day} AS day, {histogram}, sum(count) AS n FROM usage_latency_hourly "
               f"GROUP BY {day}, {histogram}")}
    daily = {tuple(r.values())[:-1]: r["count"] for r in fetch(
        where, f"SELECT {stored_day} AS day, {histogram}, count FROM usage_latency_daily")}
    assert daily == hourly
