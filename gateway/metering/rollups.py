"""Hourly rollups of the usage table, kept in step with it and rebuilt from it.

Every report reads `usage_hourly` and `usage_latency_hourly` (gateway/db/tables.py), never the
raw rows. The writer adds a batch's rows to them in the transaction that stores the rows, and
only the rows that transaction really inserted (a replayed or retried id is skipped by the raw
insert, so it adds nothing twice). The same `aggregate()` serves the writer and the rebuild, so
the two can never disagree on what a row contributes: cache savings are priced per row from the
price book at the row's own time, failovers are calls with more than one attempt.

`rebuild_rollups` recomputes the hours that still have raw rows, six hours at a time: each is
one short transaction that locks the rollup tables against concurrent upserts (Postgres), so a
gateway writing meanwhile neither loses nor double-counts a row. Hours older than the oldest raw
row (pruned by retention) keep their rollups.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from typing import Any, cast

import orjson
from sqlalchemy import Column, Table, delete, func, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import TextClause

from gateway.db.queries import day_of
from gateway.db.tables import (
    LATENCY_DIMENSIONS,
    ROLLUP_COUNTS,
    ROLLUP_DIMENSIONS,
    ROLLUP_SUMS,
    usage,
    usage_daily,
    usage_hourly,
    usage_latency_daily,
    usage_latency_hourly,
)
from gateway.metering.buckets import COUNT as BUCKETS
from gateway.metering.buckets import RATIO
from gateway.metering.prices import PriceBook

log = logging.getLogger("gateway.metering")

HourKey = tuple[Any, ...]   # (hour, *ROLLUP_DIMENSIONS)
LatencyKey = tuple[datetime, str, str, str, str, str, int]  # hour, *LATENCY_DIMENSIONS
_TOKENS = ("prompt_tokens", "cache_hit_tokens", "cache_miss_tokens", "completion_tokens",
           "reasoning_tokens")
_FIELDS = ROLLUP_COUNTS + ROLLUP_SUMS
_INDEX = {name: i for i, name in enumerate(_FIELDS)}
# The raw columns a rollup is computed from (what the rebuild reads).
SOURCE_COLUMNS = ("ts", *ROLLUP_DIMENSIONS, "attempts", *_TOKENS, "cost_usd", "book_cost_usd",
                  "provider_cost_usd", "latency_ms", "ttft_ms")


@dataclass(slots=True)
class Rollup:
    """What a set of raw rows adds to the two rollup tables."""

    hourly: dict[HourKey, list[float]] = field(default_factory=dict)
    latency: dict[LatencyKey, int] = field(default_factory=dict)

    def hourly_rows(self) -> list[dict[str, Any]]:
        """Sorted by key: concurrent upserts then lock rows in one order (no deadlocks)."""
        return [_as_row("hour", key, self.hourly[key]) for key in sorted(self.hourly)]

    def daily_rows(self) -> list[dict[str, Any]]:
        """The hourly sums summed again per UTC day (the hour keys are UTC)."""
        days = self._daily()
        return [_as_row("day", key, days[key]) for key in sorted(days)]

    def _daily(self) -> dict[HourKey, list[float]]:
        """Per (UTC day, dimensions), the hourly sums added in the hours' order."""
        days: dict[datetime, date] = {}
        daily: dict[HourKey, list[float]] = {}
        for key, values in self.hourly.items():
            hour = key[0]
            day = days.get(hour)
            if day is None:
                day = days[hour] = hour.date()
            day_key = (day, *key[1:])
            sums = daily.get(day_key)
            if sums is None:
                daily[day_key] = list(values)
            else:
                for i, value in enumerate(values):
                    sums[i] += value
        return daily

    def latency_rows(self) -> list[dict[str, Any]]:
        """Sorted by key, like `hourly_rows`."""
        return [_histogram_row("hour", k, n) for k, n in sorted(self.latency.items())]

    def payload(self) -> tuple[list[list[Any]], ...]:
        """The rows of usage_hourly, usage_daily and usage_latency_hourly as arrays (the key,
        then the sums: `_FIELDS` or the count), unsorted (the upsert sorts them), for the
        Postgres upsert; usage_latency_daily is summed from the third by the server (counts
        are integers: any order sums them exactly)."""
        return ([[*key, *values] for key, values in self.hourly.items()],
                [[*key, *values] for key, values in self._daily().items()],
                [[*key, count] for key, count in self.latency.items()])

    def latency_daily_rows(self) -> list[dict[str, Any]]:
        days: dict[tuple[Any, ...], int] = {}
        for key, count in self.latency.items():
            day_key = (key[0].date(), *key[1:])
            days[day_key] = days.get(day_key, 0) + count
        return [_histogram_row("day", k, n) for k, n in sorted(days.items())]


def _histogram_row(time_column: str, key: tuple[Any, ...], count: int) -> dict[str, Any]:
    row: dict[str, Any] = {time_column: key[0], "count": count}
    row.update(zip(LATENCY_DIMENSIONS, key[1:], strict=True))
    return row


def _as_row(time_column: str, key: HourKey, values: list[float]) -> dict[str, Any]:
    row: dict[str, Any] = {time_column: key[0]}
    row.update(zip(ROLLUP_DIMENSIONS, key[1:], strict=True))
    row.update((name, int(values[i])) for i, name in enumerate(ROLLUP_COUNTS))
    row.update((name, values[_INDEX[name]]) for name in ROLLUP_SUMS)
    return row


def hour_of(ts: datetime) -> datetime:
    """The UTC hour a timestamp falls in (SQLite hands timestamps back naive: they are UTC)."""
    ts = ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)
    return ts.replace(minute=0, second=0, microsecond=0)


def cache_savings_usd(prices: PriceBook, row: Mapping[str, Any]) -> float:
    """Cache-hit tokens times (miss price - hit price) at the row's time; 0 without a price."""
    hit = row.get("cache_hit_tokens") or 0
    provider = row.get("provider")
    if not hit or not provider:
        return 0.0
    price = prices.price(provider, row.get("model") or "", row["ts"])
    if price is None:
        return 0.0
    return hit * (price.cache_miss - price.cache_hit) / 1_000_000


_NAMES = ("ts", "key_id", "team", "model", "provider", "api", "thinking", "status", "attempts",
          *_TOKENS, "cost_usd", "book_cost_usd", "provider_cost_usd", "latency_ms", "ttft_ms")
_VALUES = itemgetter(*_NAMES)


class _Clock:
    """Per-batch memo of hours and savings rates: rows of a batch share a few hours and
    minutes, and this runs for every stored row (it is most of the writer's rollup cost)."""

    def __init__(self, prices: PriceBook) -> None:
        self._prices = prices
        self._hours: dict[int, datetime] = {}
        self._rates: dict[tuple[str, str, int], float] = {}

    def epoch(self, ts: datetime) -> float:
        return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()

    def hour(self, epoch: float) -> datetime:
        index = int(epoch // 3600)
        hour = self._hours.get(index)
        if hour is None:
            hour = self._hours[index] = datetime.fromtimestamp(index * 3600, UTC)
        return hour

    def savings_rate(self, provider: str, model: str, epoch: float) -> float:
        """USD saved per cache-hit token (prices change at most once a minute)."""
        key = (provider, model, int(epoch // 60))
        rate = self._rates.get(key)
        if rate is None:
            at = datetime.fromtimestamp(key[2] * 60, UTC)
            price = self._prices.price(provider, model, at)
            rate = self._rates[key] = 0.0 if price is None else (
                price.cache_miss - price.cache_hit) / 1_000_000
        return rate


def aggregate(rows: Iterable[Mapping[str, Any]], prices: PriceBook,
              into: Rollup | None = None) -> Rollup:
    """Sum raw rows (dicts with SOURCE_COLUMNS; missing ones count as none) into hourly
    rollups. It runs for every stored row: the hour and savings memos are read inline, the
    latency buckets computed inline (what `bucket_of` does), each sum added in row order."""
    out = into if into is not None else Rollup()
    hourly, latency = out.hourly, out.latency
    clock = _Clock(prices)
    hours, rates = clock._hours, clock._rates
    counts, width = len(ROLLUP_COUNTS), len(ROLLUP_SUMS)
    log_, ratio, last = math.log, math.log(RATIO), BUCKETS - 1
    for row in rows:
        try:
            values = _VALUES(row)
        except KeyError:  # a row spooled by an older version
            values = tuple(row.get(name) for name in _NAMES)
        (ts, key_id, team, model, provider, api, thinking, status, attempts, prompt, hit, miss,
         completion, reasoning, cost, book, reported, latency_ms, ttft) = values
        epoch = (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()
        hour = hours.get(int(epoch // 3600)) or clock.hour(epoch)
        provider = provider or ""
        model = model or ""
        api = api or ""
        team = team or ""
        key = (hour, key_id or "", team, model, provider, api, thinking or "", status or "")
        sums = hourly.get(key)
        if sums is None:
            sums = hourly[key] = [0] * counts + [0.0] * width
        sums[0] += 1
        if attempts and "," in attempts:
            sums[1] += 1
        sums[2] += prompt or 0
        sums[3] += hit or 0
        sums[4] += miss or 0
        sums[5] += completion or 0
        sums[6] += reasoning or 0
        sums[8] += cost or 0.0
        sums[9] += book or 0.0
        sums[10] += reported or 0.0
        if hit and provider:
            rate = rates.get((provider, model, int(epoch // 60)))
            if rate is None:
                rate = clock.savings_rate(provider, model, epoch)
            sums[11] += hit * rate
        ms = latency_ms or 0.0
        sums[12] += ms
        bucket = min(last, int(log_(ms) / ratio) + 1) if ms >= 1.0 else 0
        lat_key = (hour, team, provider, model, api, "latency", bucket)
        latency[lat_key] = latency.get(lat_key, 0) + 1
        if ttft is not None:
            sums[7] += 1
            sums[13] += ttft
            bucket = min(last, int(log_(ttft) / ratio) + 1) if ttft >= 1.0 else 0
            ttft_key = (hour, team, provider, model, api, "ttft", bucket)
            latency[ttft_key] = latency.get(ttft_key, 0) + 1
    return out


async def aggregate_in_slices(rows: Sequence[Mapping[str, Any]], prices: PriceBook,
                              size: int = 200) -> Rollup:
    """`aggregate`, giving the event loop back between slices of `size` rows."""
    out = Rollup()
    for start in range(0, len(rows), size):
        if start:
            await asyncio.sleep(0)
        aggregate(rows[start:start + size], prices, out)
    return out


assert _FIELDS[:8] == ("requests", "failovers", *_TOKENS, "ttft_count")
assert _FIELDS[8:] == ("cost_usd", "book_cost_usd", "provider_cost_usd", "cache_savings_usd",
                       "latency_ms_sum", "ttft_ms_sum")


async def add(conn: AsyncConnection, rollup: Rollup) -> None:
    """Upsert: existing (hour, dimensions) rows get the new counts added to theirs."""
    if not rollup.hourly:
        return
    if conn.dialect.name == "postgresql":  # one statement for the four tables
        await conn.execute(_PG_UPSERT, {"rollup": orjson.dumps(rollup.payload()).decode()})
        return
    tables = ((usage_hourly, rollup.hourly_rows()), (usage_daily, rollup.daily_rows()),
              (usage_latency_hourly, rollup.latency_rows()),
              (usage_latency_daily, rollup.latency_daily_rows()))
    for table, rows in tables:
        if not rows:
            continue
        stmt = sqlite.insert(table)
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=[c.name for c in table.primary_key],
            set_={c.name: c + stmt.excluded[c.name] for c in _sums(table)}), rows)


def _sums(table: Table) -> list[Column[Any]]:
    return [c for c in table.columns if not c.primary_key]


def _array_upsert(table: Table, part: int, names: Sequence[str]) -> str:
    """INSERT ... SELECT FROM the `part`th array of the payload (one array per rollup row,
    values in `names` order) ON CONFLICT DO UPDATE adding the sums. An executemany ran the
    upsert once per rollup row (hundreds a batch); arrays rather than objects: no column
    names to build in Python or to encode. Rows of one batch have distinct keys, as one
    statement needs; strings are assigned uncast (too long still fails, as it did)."""
    values = ", ".join(_element(table.c[name], i) for i, name in enumerate(names))
    return (f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {values} "
            f"FROM payload, json_array_elements(payload.rollup -> {part}) AS r "
            f"{_in_key_order(table, names)} {_adding(table)}")


def _in_key_order(table: Table, names: Sequence[str]) -> str:
    """Upserts lock their rows in the order they come: every writer taking them in the
    primary key's order (sorted by the server, not in Python) makes deadlocks impossible."""
    return "ORDER BY " + ", ".join(str(names.index(c.name) + 1) for c in table.primary_key)


def _adding(table: Table) -> str:
    keys = ", ".join(c.name for c in table.primary_key)
    sums = ", ".join(f"{c.name} = {table.name}.{c.name} + excluded.{c.name}"
                     for c in _sums(table))
    return f"ON CONFLICT ({keys}) DO UPDATE SET {sums}"


def _element(column: Column[Any], i: int) -> str:
    if column.name in ROLLUP_COUNTS or column.name == "count":
        return f"(r ->> {i})::float8::bigint"  # a count summed as a float still fits
    kind = {"hour": "timestamptz", "day": "date", "bucket": "smallint"}.get(column.name)
    if kind is None and column.name in ROLLUP_SUMS:
        kind = "float8"
    return f"(r ->> {i})::{kind}" if kind else f"r ->> {i}"


def _pg_upsert() -> TextClause:
    """One statement for the four tables; every writer runs the same one, so they take the
    tables in one order too. usage_latency_daily is the latency payload summed per UTC day:
    the hour's ISO text starts with its date."""
    hourly = ("hour", *ROLLUP_DIMENSIONS, *_FIELDS)
    daily = ("day", *ROLLUP_DIMENSIONS, *_FIELDS)
    latency = ("hour", *LATENCY_DIMENSIONS, "count")
    parts = [_array_upsert(usage_hourly, 0, hourly), _array_upsert(usage_daily, 1, daily),
             _array_upsert(usage_latency_hourly, 2, latency)]
    steps = ",\n".join(f"u{i} AS ({part})" for i, part in enumerate(parts))
    dims = ", ".join(f"r ->> {i + 1}" for i in range(len(LATENCY_DIMENSIONS) - 1))
    bucket = f"(r ->> {len(LATENCY_DIMENSIONS)})::smallint"
    count = f"(r ->> {len(LATENCY_DIMENSIONS) + 1})::float8::bigint"
    days_order = ("day", *LATENCY_DIMENSIONS)
    days = (f"INSERT INTO usage_latency_daily (day, {', '.join(LATENCY_DIMENSIONS)}, count) "
            f"SELECT left(r ->> 0, 10)::date, {dims}, {bucket}, sum({count}) "
            f"FROM payload, json_array_elements(payload.rollup -> 2) AS r "
            f"GROUP BY 1, 2, 3, 4, 5, 6, 7 {_in_key_order(usage_latency_daily, days_order)} "
            f"{_adding(usage_latency_daily)}")
    return text(f"WITH payload AS MATERIALIZED (SELECT CAST(:rollup AS json) AS rollup),\n"
                f"{steps}\n{days}")


_PG_UPSERT = _pg_upsert()


# ---- rebuild ------------------------------------------------------------------------------

# Six hours per transaction: the rollup lock it holds (writers wait) stays around 2 s at
# ~9,000 raw rows an hour (a day took 7.3 s at 20M rows on two cores: RESULTS-usage-scale).
REBUILD_CHUNK = timedelta(hours=6)


async def rebuild_rollups(engine: AsyncEngine, prices: PriceBook | None = None,
                          since: datetime | None = None) -> int:
    """Recompute the rollups of every hour that has raw rows (from `since` on, if given),
    six hours per transaction; idempotent. Returns the number of usage_hourly rows written."""
    prices = prices or PriceBook.load()
    async with engine.connect() as conn:
        first = await conn.scalar(select(func.min(usage.c.ts)))
        last = await conn.scalar(select(func.max(usage.c.ts)))
    if first is None or last is None:
        return 0
    start = hour_of(first)
    if since is not None:
        start = max(start, hour_of(since))
    end = hour_of(last) + timedelta(hours=1)
    written = 0
    while start < end:
        stop = min(start + REBUILD_CHUNK, end)
        async with engine.begin() as conn:
            written += await _rebuild_span(conn, prices, start, stop)
        start = stop
    log.info("rollups rebuilt: %d hourly rows", written)
    return written


async def _rebuild_span(conn: AsyncConnection, prices: PriceBook, start: datetime,
                        stop: datetime) -> int:
    if conn.dialect.name == "postgresql":
        # Writers' upserts wait until this commits: a row committed before is read below, a
        # row committed after adds itself on top of the recomputed sums.
        await conn.execute(text(
            "LOCK TABLE usage_hourly, usage_latency_hourly, usage_daily, usage_latency_daily "
            "IN SHARE ROW EXCLUSIVE MODE"))
    # Retention prunes whole hours from the oldest on (and waits for this lock): hours before
    # the oldest raw row left are pruned ones, whose rollups must stay as they are.
    first = await conn.scalar(select(func.min(usage.c.ts)))
    if first is None:
        return 0
    start = max(start, hour_of(first))
    if start >= stop:
        return 0
    for table in (usage_hourly, usage_latency_hourly):
        await conn.execute(delete(table).where(table.c.hour >= start, table.c.hour < stop))
    query = select(*(usage.c[name] for name in SOURCE_COLUMNS)).where(
        usage.c.ts >= start, usage.c.ts < stop)
    rollup = Rollup()
    result = await conn.stream(query.execution_options(yield_per=10_000))
    async for part in result.mappings().partitions():
        aggregate(cast(list[Mapping[str, Any]], part), prices, rollup)
    hourly = rollup.hourly_rows()
    if hourly:
        await conn.execute(usage_hourly.insert(), hourly)
    latency = rollup.latency_rows()
    if latency:
        await conn.execute(usage_latency_hourly.insert(), latency)
    await _recompute_days(conn, start, stop)
    return len(hourly)


async def _recompute_days(conn: AsyncConnection, start: datetime, stop: datetime) -> None:
    """usage_daily for the days [start, stop) touches, summed from usage_hourly (which holds
    every hour, pruned ones too)."""
    first = start.date()
    last = (stop - timedelta(microseconds=1)).date()
    low = datetime.combine(first, datetime.min.time(), UTC)
    high = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)
    for daily in (usage_daily, usage_latency_daily):
        await conn.execute(delete(daily).where(daily.c.day >= first, daily.c.day <= last))
    day = day_of(usage_hourly.c.hour, conn.dialect.name)
    dims = [usage_hourly.c[name] for name in ROLLUP_DIMENSIONS]
    await conn.execute(usage_daily.insert().from_select(
        ["day", *ROLLUP_DIMENSIONS, *_FIELDS],
        select(day, *dims, *(func.sum(usage_hourly.c[name]) for name in _FIELDS))
        .where(usage_hourly.c.hour >= low, usage_hourly.c.hour < high)
        .group_by(day, *dims)))
    h = usage_latency_hourly.c
    day = day_of(h.hour, conn.dialect.name)
    keys = [h[name] for name in LATENCY_DIMENSIONS]
    await conn.execute(usage_latency_daily.insert().from_select(
        ["day", *LATENCY_DIMENSIONS, "count"],
        select(day, *keys, func.sum(h.count)).where(h.hour >= low, h.hour < high)
        .group_by(day, *keys)))


async def backfill_needed(engine: AsyncEngine) -> bool:
    """Raw rows but no rollups at all: a database upgraded from before revision 0006."""
    async with engine.connect() as conn:
        has_rollups = await conn.scalar(select(usage_hourly.c.hour).limit(1))
        if has_rollups is not None:
            return False
        return await conn.scalar(select(usage.c.id).limit(1)) is not None
