"""The usage page's SQL: aggregates from the rollups, the request log from raw rows.

Every aggregate reads the rollups: whole days from `usage_daily`, hours from `usage_hourly`
(only for the hourly chart of short periods and the edges of a range), latency histograms the
same way from `usage_latency_daily` and `usage_latency_hourly` (per team: a viewer reads its
own, the master key the sum over teams); their primary keys start with the day or hour, and a
team scope uses the (team, day/hour) indexes (the histograms': team second in their primary
key). So an aggregate's cost grows with days x dimension combinations, never with requests.
Only the request log reads the raw `usage` table, newest first with a keyset cursor on
(ts, id) and a LIMIT, so a page of it is an index range scan whatever the table's size; a
filtered one first asks `usage_hourly` which hours hold its matches, so a rare combination
does not scan the whole period. Postgres and SQLite both: nothing here is dialect-specific
except the day truncation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import FromClause, Select, and_, case, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from gateway.db.queries import REFUSED, floor_hour, latency_rows, rollup_rows
from gateway.db.tables import (
    ROLLUP_DIMENSIONS,
    api_keys,
    teams,
    usage,
    usage_hourly,
)

NOT_ERRORS = ("ok", REFUSED)  # the rest failed once accepted, as /admin/usage counts them
TRAFFIC_DIMENSIONS = ("provider", "model", "api", "thinking", "status")
SUMS = ("requests", "failovers", "prompt_tokens", "cache_hit_tokens", "completion_tokens",
        "reasoning_tokens", "ttft_count", "cost_usd", "book_cost_usd", "provider_cost_usd",
        "cache_savings_usd", "latency_ms_sum", "ttft_ms_sum")
SUBJECT_SUMS = ("requests", "prompt_tokens", "completion_tokens", "cost_usd")  # what the
# team and key tables show: each column summed is time on every rollup row of the period
LOG_COLUMNS = ("id", "ts", "request_id", "key_id", "team", "requested_model", "model",
               "provider", "api", "thinking", "stream", "status", "error_type", "attempts",
               "prompt_tokens", "cache_hit_tokens", "completion_tokens", "reasoning_tokens",
               "cost_usd", "latency_ms", "ttft_ms")
LOG_DIMENSIONS = ("key_id", "team", "model", "provider", "status")  # its filters, but the id


@dataclass(frozen=True, slots=True)
class Scope:
    """What an aggregate covers: hours in [start, end) and, for a team's viewer, one team."""

    start: datetime
    end: datetime
    team: str | None = None


@dataclass(frozen=True, slots=True)
class LogFilter:
    """The request log's filters; None: any. `request_id` ignores the period (a request id
    pasted from a client's error is wanted wherever it falls)."""

    key_id: str | None = None
    team: str | None = None
    model: str | None = None
    provider: str | None = None
    status: str | None = None
    request_id: str | None = None


# Postgres' default work_mem (4 MB) makes a 90-day GROUP BY over the rollups sort on disk;
# 64 MB keeps it a hash aggregate in memory (2.2 s -> 0.7 s on 650k rollup rows, loaded box).
# Set for the page's own transaction only.
WORK_MEM = "64MB"


async def tune(conn: AsyncConnection) -> None:
    """Per-transaction settings for the page's aggregates (Postgres; SQLite needs none)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))


def _rows(conn: AsyncConnection, scope: Scope, hourly: bool) -> FromClause:
    """The rollup rows of the period: per hour from `usage_hourly` (the hourly chart of short
    periods), else whole days from `usage_daily` (and edge hours from `usage_hourly`, via
    gateway.db.queries.rollup_rows), so a 90-day page reads 90 x groups rows, not 2,160 x."""
    if hourly:
        h = usage_hourly.c
        return (select(h.hour.label("bucket"), *(h[name] for name in ROLLUP_DIMENSIONS),
                       *(h[name] for name in SUMS))
                .where(h.hour >= scope.start, h.hour < scope.end).subquery("hourly"))
    r = rollup_rows(conn.dialect.name, scope.start, scope.end)
    return select(r.c.day.label("bucket"), *(r.c[name] for name in ROLLUP_DIMENSIONS),
                  *(r.c[name] for name in SUMS)).subquery("daily")


def _sums(rows: FromClause, names: tuple[str, ...] = SUMS) -> list[ColumnElement[Any]]:
    return [func.coalesce(func.sum(rows.c[name]), 0).label(name) for name in names]


def _errors(rows: FromClause) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((rows.c.status.in_(NOT_ERRORS), 0),
                                       else_=rows.c.requests)), 0).label("errors")


def _team(query: Select[Any], rows: FromClause, team: str | None) -> Select[Any]:
    """A viewer's team (pushed down into the rollup tables' (team, hour/day) indexes)."""
    return query if team is None else query.where(rows.c.team == team)


async def traffic(conn: AsyncConnection, scope: Scope) -> list[dict[str, Any]]:
    """Sums per provider, model, api, thinking mode and status over the period: the cards and
    the provider, model, api and thinking tables fold these few rows (grouping is the
    database's job; the page's Python only adds up tens of rows)."""
    rows = _rows(conn, scope, hourly=False)
    dims = [rows.c[name] for name in TRAFFIC_DIMENSIONS]
    query = _team(select(*dims, *_sums(rows)), rows, scope.team).group_by(*dims)
    return [dict(row) for row in (await conn.execute(query)).mappings()]


async def spend_over_time(conn: AsyncConnection, scope: Scope, hourly: bool,
                          by: str) -> list[dict[str, Any]]:
    """Spend and requests per time bucket (hour or UTC day) x provider or model: the chart."""
    rows = _rows(conn, scope, hourly)
    dims = (rows.c.bucket, rows.c[by])
    query = _team(select(*dims, *_sums(rows, ("requests", "cost_usd"))), rows, scope.team)
    result = (await conn.execute(query.group_by(*dims))).mappings().all()
    return [{**row, "bucket": bucket_time(row["bucket"])} for row in result]


async def by_subject(conn: AsyncConnection, scope: Scope) -> list[dict[str, Any]]:
    """Requests, tokens, spend and errors per (team, key) in the period: the team and key
    tables."""
    rows = _rows(conn, scope, hourly=False)
    dims = (rows.c.team, rows.c.key_id)
    query = _team(select(*dims, *_sums(rows, SUBJECT_SUMS), _errors(rows)), rows, scope.team)
    return [dict(row) for row in (await conn.execute(query.group_by(*dims))).mappings()]


async def spend_in_periods(conn: AsyncConnection, today: date,
                           team: str | None) -> list[dict[str, Any]]:
    """Spend per (team, key) today and this calendar month (UTC): what budgets (per day or
    per month) are measured against, whatever period the page shows. Whole days: daily rows."""
    month = today.replace(day=1)
    rows = rollup_rows(conn.dialect.name, datetime.combine(month, time(), UTC), None)
    dims = (rows.c.team, rows.c.key_id)
    cost = rows.c.cost_usd
    query = select(
        *dims,
        func.coalesce(func.sum(case((rows.c.day >= today, cost), else_=0.0)), 0.0).label("day"),
        func.coalesce(func.sum(cost), 0.0).label("month"),
    )
    return [dict(row) for row in
            (await conn.execute(_team(query, rows, team).group_by(*dims))).mappings()]


async def latency_buckets(conn: AsyncConnection, scope: Scope) -> list[dict[str, Any]]:
    """Histogram counts per (provider, metric, bucket) in the period: a viewer's team's own,
    the whole gateway's (summed over teams) for the master key."""
    t = latency_rows(conn.dialect.name, scope.start, scope.end)  # whole days from the daily
    dims = (t.c.provider, t.c.metric, t.c.bucket)
    query = _team(select(*dims, func.sum(t.c.count).label("count")), t, scope.team)
    return [dict(row) for row in (await conn.execute(query.group_by(*dims))).mappings()]


async def keys(conn: AsyncConnection, team: str | None) -> list[dict[str, Any]]:
    """Every key (revoked ones too: their usage stays) with its limits and when it was last
    used, from `ix_usage_hourly_key_hour` (one index probe per key): never-used keys show."""
    last_used = (select(func.max(usage_hourly.c.hour))
                 .where(usage_hourly.c.key_id == api_keys.c.id)
                 .scalar_subquery().label("last_used"))
    query = select(api_keys.c.id, api_keys.c.name, api_keys.c.key_prefix, api_keys.c.team,
                   api_keys.c.rpm, api_keys.c.tpm, api_keys.c.budget_usd,
                   api_keys.c.budget_period, api_keys.c.revoked_at, api_keys.c.role, last_used
                   ).order_by(api_keys.c.name, api_keys.c.id)
    if team is not None:
        query = query.where(api_keys.c.team == team)
    rows = (await conn.execute(query)).mappings().all()
    return [{**row, "last_used": bucket_time(row["last_used"]),
             "revoked_at": bucket_time(row["revoked_at"])} for row in rows]


async def team_records(conn: AsyncConnection, team: str | None) -> list[dict[str, Any]]:
    query = select(teams.c.name, teams.c.rpm, teams.c.tpm, teams.c.budget_usd,
                   teams.c.budget_period).order_by(teams.c.name)
    if team is not None:
        query = query.where(teams.c.name == team)
    return [dict(row) for row in (await conn.execute(query)).mappings()]


async def request_log(conn: AsyncConnection, scope: Scope, where: LogFilter,
                      before: tuple[datetime, str] | None, limit: int) -> list[dict[str, Any]]:
    """The newest calls matching `where` (and the scope's team), older than the cursor
    `before` = (ts, id) of the last row already shown."""
    columns = [usage.c[name] for name in LOG_COLUMNS]
    query = select(*columns).order_by(usage.c.ts.desc(), usage.c.id.desc()).limit(limit)
    if where.request_id is not None:
        query = query.where(usage.c.request_id == where.request_id)
    else:
        start = scope.start
        if _filtered(scope, where):
            since = await _oldest_hour_needed(conn, scope, where, before, limit)
            if since is None:
                return []  # the rollups hold no matching call in the period
            start = max(start, since)
        query = query.where(usage.c.ts >= start, usage.c.ts < scope.end)
    if scope.team is not None:
        query = query.where(usage.c.team == scope.team)
    for name in LOG_DIMENSIONS:
        value = getattr(where, name)
        if value is not None:
            # "" is how the page names "none" (the master key's calls, no team)
            query = query.where(usage.c[name].is_(None) if value == "" else
                                usage.c[name] == value)
    if before is not None:
        ts, row_id = before
        # the tuple form (ts, id) < (x, y), spelled out: SQLite's planner and old Postgres
        # releases use the ts index for this shape too
        query = query.where(or_(usage.c.ts < ts, and_(usage.c.ts == ts, usage.c.id < row_id)))
    rows = (await conn.execute(query)).mappings().all()
    return [{**row, "ts": bucket_time(row["ts"])} for row in rows]


def _filtered(scope: Scope, where: LogFilter) -> bool:
    return scope.team is not None or any(getattr(where, name) is not None
                                         for name in LOG_DIMENSIONS)


async def _oldest_hour_needed(conn: AsyncConnection, scope: Scope, where: LogFilter,
                              before: tuple[datetime, str] | None,
                              limit: int) -> datetime | None:
    """The start of the oldest hour the newest `limit` matching calls can be in, from
    `usage_hourly` (same dimensions, "" for none; written in the raw rows' transaction); None
    when no hour of the period has one. A filtered log scans only those hours of raw rows:
    without this, a key with a model it never used scanned the whole period's `ix_usage_ts`
    range (6.9M rows, 3.3 s at 20M rows; bench/RESULTS-usage-scale.md)."""
    h = usage_hourly.c
    query = select(h.hour, func.sum(h.requests).label("calls")).where(
        h.hour >= floor_hour(scope.start), h.hour < scope.end)
    if before is not None:
        query = query.where(h.hour <= before[0])
    if scope.team is not None:
        query = query.where(h.team == scope.team)
    for name in LOG_DIMENSIONS:
        value = getattr(where, name)
        if value is not None:
            query = query.where(h[name] == value)
    # each hour listed holds at least one match, so `limit` hours always suffice, besides the
    # cursor's own (whose matches may all be above the cursor)
    query = query.group_by(h.hour).order_by(h.hour.desc()).limit(limit + 1)
    cursor_hour = floor_hour(before[0].astimezone(UTC)) if before is not None else None
    oldest, calls = None, 0
    for hour, count in (await conn.execute(query)).all():
        oldest = bucket_time(hour)
        if oldest != cursor_hour:  # that hour's calls may be above the cursor: not counted
            calls += count
        if calls >= limit:
            break
    return oldest


def bucket_time(value: Any) -> Any:
    """Datetimes as aware UTC (SQLite returns them naive), days as dates, None as None."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, str):  # SQLite's date()
        return date.fromisoformat(value[:10])
    return value

