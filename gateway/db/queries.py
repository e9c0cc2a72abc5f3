"""The statements metering needs: idempotent batch inserts and grouped usage reports (read
from the daily and hourly rollups)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

import orjson
from sqlalchemy import (
    Date,
    Select,
    Subquery,
    Table,
    and_,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from gateway.db.tables import (
    COLUMNS,
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

GroupBy = Literal["model", "provider", "key", "team", "day", "api", "thinking", "status"]
GROUP_BYS: tuple[str, ...] = get_args(GroupBy)

REFUSED = "refused"  # the status of a call the gateway turned away

TOKEN_COLUMNS = ("prompt_tokens", "cache_hit_tokens", "cache_miss_tokens",
                 "completion_tokens", "reasoning_tokens")


def unique_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first row of each id, in order, each with every column: rows spooled by older
    versions lack the newer columns and get their defaults."""
    whole = len(COLUMNS)
    firsts = list({row["id"]: row for row in reversed(rows)}.values())[::-1]
    return [row if len(row) >= whole else {**_DEFAULTS, **row} for row in firsts]


async def insert_rows(conn: AsyncConnection,
                      rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stores the rows (from `unique_rows`) whose id is not stored yet, so replays are safe,
    and returns them: the rows the rollups must add, and only those."""
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        return await _insert_json(conn, rows)
    known: set[str] = set()
    for i in range(0, len(rows), _SQLITE_IN_MAX):
        ids = [row["id"] for row in rows[i:i + _SQLITE_IN_MAX]]
        found = await conn.execute(select(usage.c.id).where(usage.c.id.in_(ids)))
        known.update(found.scalars())
    fresh = [row for row in rows if row["id"] not in known]
    if fresh:
        await conn.execute(sqlite.insert(usage), fresh)
    return fresh


_SQLITE_IN_MAX = 500
# One statement per batch: the rows as one JSON array, turned back into `usage` records by the
# server. One round trip, no per-value binding in Python (asyncpg's array encoding checked
# every element against collections.abc: a fifth of the writer's CPU). The answer is one row:
# how many ids were new and, only when some were not, which (no row per id to build in
# Python). Objects rather than arrays: orjson writes a dict faster than Python makes a tuple.
_PG_INSERT = text(
    f"WITH new AS (INSERT INTO usage ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} "
    "FROM json_populate_recordset(NULL::usage, CAST(:rows AS json)) "
    "ON CONFLICT (id) DO NOTHING RETURNING id) "
    "SELECT count(*), CASE WHEN count(*) < :n THEN array_agg(id) END FROM new")
# What a row without the column gets (rows spooled by older versions lack the newer ones).
_DEFAULTS: dict[str, Any] = {
    **{str(c.name): getattr(c.default, "arg", None)
       for c in usage.columns if c.default is not None},
    "api": "openai.chat",
}


async def _insert_json(conn: AsyncConnection,
                       rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    payload = orjson.dumps(rows).decode()
    count, ids = (await conn.execute(_PG_INSERT, {"rows": payload, "n": len(rows)})).one()
    if count == len(rows):
        return rows
    stored = set(ids or ())
    return [row for row in rows if row["id"] in stored]


def floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def ceil_hour(at: datetime) -> datetime:
    floor = floor_hour(at)
    return floor if floor == at else floor + timedelta(hours=1)


def day_of(column: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """The UTC date of a timestamp column, in SQL."""
    if dialect == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


_ROLLUP_FIELDS = ROLLUP_COUNTS + ROLLUP_SUMS


def rollup_rows(dialect: str, start: datetime | None, end: datetime | None) -> Subquery:
    """The rollup rows covering [start, end) taken to the hour: whole UTC days from
    usage_daily, the hours at either edge from usage_hourly (so a 90-day report reads about
    90 x groups rows, not 2,160 x groups). Columns: day, the dimensions, every sum."""
    d, h = usage_daily.c, usage_hourly.c
    names = (*ROLLUP_DIMENSIONS, *_ROLLUP_FIELDS)
    return _covering(start, end, usage_daily, usage_hourly,
                     select(d.day.label("day"), *(d[name] for name in names)),
                     select(day_of(h.hour, dialect).label("day"), *(h[name] for name in names)),
                     "rollup")


def latency_rows(dialect: str, start: datetime | None, end: datetime | None) -> Subquery:
    """The latency histogram rows covering [start, end), split like `rollup_rows`: whole days
    from usage_latency_daily, edge hours from usage_latency_hourly. Columns: day, team,
    provider, model, api, metric, bucket, count (percentiles:
    gateway.metering.buckets.percentile; the whole gateway's: summed over teams)."""
    d, h = usage_latency_daily.c, usage_latency_hourly.c
    names = (*LATENCY_DIMENSIONS, "count")
    return _covering(start, end, usage_latency_daily, usage_latency_hourly,
                     select(d.day.label("day"), *(d[name] for name in names)),
                     select(day_of(h.hour, dialect).label("day"), *(h[name] for name in names)),
                     "latency")


def _covering(start: datetime | None, end: datetime | None, daily_table: Table,
              hourly_table: Table, daily: Select[Any], hourly: Select[Any],
              name: str) -> Subquery:
    hour, day = hourly_table.c.hour, daily_table.c.day
    low = floor_hour(start) if start is not None else None
    high = ceil_hour(end) if end is not None else None
    first_day = _ceil_day(low) if low is not None else None
    end_day = _floor_day(high) if high is not None else None
    if first_day is not None and end_day is not None and first_day >= end_day:
        if low is not None:
            hourly = hourly.where(hour >= low)
        if high is not None:
            hourly = hourly.where(hour < high)
        return hourly.subquery(name)
    edges = []
    if first_day is not None and low is not None:
        daily = daily.where(day >= first_day.date())
        edges.append(and_(hour >= low, hour < first_day))
    if end_day is not None and high is not None:
        daily = daily.where(day < end_day.date())
        edges.append(and_(hour >= end_day, hour < high))
    if not edges:
        return daily.subquery(name)
    return union_all(daily, hourly.where(or_(*edges))).subquery(name)


def _floor_day(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil_day(at: datetime) -> datetime:
    floor = _floor_day(at)
    return floor if floor == at else floor + timedelta(days=1)


_NONE_AS_EMPTY = frozenset({"key", "team", "provider"})  # "" in a rollup: none (master key...)
_GROUP_COLUMNS = {"day": "day", "model": "model", "provider": "provider", "key": "key_id",
                  "team": "team", "api": "api", "thinking": "thinking", "status": "status"}


def report_query(dialect: str, group_by: GroupBy, start: datetime | None,
                 end: datetime | None, api: str | None = None,
                 team: str | None = None) -> Select[Any]:
    """The report's one statement over the rollups (also what bench/usage_scale.py EXPLAINs)."""
    r = rollup_rows(dialect, start, end).c
    group = r[_GROUP_COLUMNS[group_by]].label("group")
    query = select(
        group,
        func.sum(r.requests).label("requests"),
        *(func.sum(r[name]).label(name) for name in TOKEN_COLUMNS),
        *(func.sum(r[name]).label(name) for name in _REPORT_SUMS),
        func.sum(r.failovers).label("failovers"),
        func.sum(case((r.status.in_(("ok", REFUSED)), 0), else_=r.requests)).label("errors"),
        func.sum(case((r.status == REFUSED, r.requests), else_=0)).label("refused"),
        func.sum(r.latency_ms_sum).label("latency_ms_sum"),
        func.sum(r.ttft_ms_sum).label("ttft_ms_sum"),
        func.sum(r.ttft_count).label("ttft_count"),
    )
    if api is not None:
        query = query.where(r.api == api)
    if team is not None:
        query = query.where(r.team == team)
    return query.group_by(literal_column("1")).order_by(literal_column("1"))


async def usage_report(
    conn: AsyncConnection, group_by: GroupBy, start: datetime | None, end: datetime | None,
    api: str | None = None, team: str | None = None,
) -> list[dict[str, Any]]:
    """Requests, tokens by type and cost per group, from the hourly rollups (never the raw
    rows: the cost grows with hours x groups, not with requests). Hour resolution: `start` is
    rounded down and `end` (exclusive) up to a whole hour. `errors` counts calls that failed
    once accepted; `refused` the calls the gateway turned away (auth, limits, budgets, invalid
    requests), which `requests` includes too; `failovers` the calls that tried more than one
    provider; `cache_savings_usd` what cache hits saved against the cache-miss price."""
    query = report_query(conn.dialect.name, group_by, start, end, api, team)
    result = await conn.execute(query)
    out = []
    for row in result.mappings():
        value = _plain(row["group"])
        if group_by in _NONE_AS_EMPTY and value == "":
            value = None
        requests = int(row["requests"])
        item: dict[str, Any] = {group_by: value, "requests": requests}
        item.update({name: int(row[name]) for name in TOKEN_COLUMNS})
        item.update({name: round(float(row[name]), 10) for name in _REPORT_SUMS})
        # Rollups sum the rows that had a provider-reported cost: 0 means none reported one.
        item["provider_cost_usd"] = item["provider_cost_usd"] or None
        item["errors"] = int(row["errors"] or 0)
        item["refused"] = int(row["refused"] or 0)
        item["failovers"] = int(row["failovers"] or 0)
        item["latency_ms_avg"] = round(float(row["latency_ms_sum"]) / requests, 3) \
            if requests else None
        ttft = int(row["ttft_count"] or 0)
        item["ttft_ms_avg"] = round(float(row["ttft_ms_sum"]) / ttft, 3) if ttft else None
        out.append(item)
    return out


_REPORT_SUMS = ("cost_usd", "book_cost_usd", "provider_cost_usd", "cache_savings_usd")


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


async def spend_since(conn: AsyncConnection, subject: str, since: datetime) -> float:
    """USD recorded for `key:<id>` or `team:<name>` from `since` on (budgets start here): the
    rollups' whole hours, plus the raw rows before the first whole hour if `since` is not on
    one (budget periods start at midnight UTC, so usually none), so raw-row retention never
    shortens a budget period."""
    kind, _, name = subject.partition(":")
    boundary = ceil_hour(since)
    column = usage_hourly.c.key_id if kind == "key" else usage_hourly.c.team
    total = await conn.scalar(
        select(func.coalesce(func.sum(usage_hourly.c.cost_usd), 0.0))
        .where(column == name, usage_hourly.c.hour >= boundary))
    if boundary > since:
        raw = usage.c.key_id if kind == "key" else usage.c.team
        total = (total or 0.0) + (await conn.scalar(
            select(func.coalesce(func.sum(usage.c.cost_usd), 0.0))
            .where(raw == name, usage.c.ts >= since, usage.c.ts < boundary)) or 0.0)
    return float(total or 0.0)
