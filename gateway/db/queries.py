"""The statements metering needs: idempotent batch inserts and grouped usage reports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import Date, case, cast, func, literal_column, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from gateway.db.tables import COLUMNS, usage

GroupBy = Literal["model", "provider", "key", "team", "day", "api"]
GROUP_BYS: tuple[str, ...] = get_args(GroupBy)

REFUSED = "refused"  # the status of a call the gateway turned away

TOKEN_COLUMNS = ("prompt_tokens", "cache_hit_tokens", "cache_miss_tokens",
                 "completion_tokens", "reasoning_tokens")


async def insert_rows(conn: AsyncConnection,
                      rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stores the rows whose id is not stored yet (so replays are safe) and returns them: the
    rows the rollups must add, and only those."""
    if not rows:
        return []
    fresh = list({row["id"]: row for row in reversed(rows)}.values())[::-1]  # first of an id
    if conn.dialect.name == "postgresql":
        return await _insert_unnest(conn, fresh)
    known: set[str] = set()
    for i in range(0, len(fresh), _SQLITE_IN_MAX):
        ids = [row["id"] for row in fresh[i:i + _SQLITE_IN_MAX]]
        found = await conn.execute(select(usage.c.id).where(usage.c.id.in_(ids)))
        known.update(found.scalars())
    fresh = [row for row in fresh if row["id"] not in known]
    if fresh:
        await conn.execute(sqlite.insert(usage), fresh)
    return fresh


_SQLITE_IN_MAX = 500
# One statement per batch: every column as one array parameter, unnested server-side. Faster
# than an executemany of dicts (one round trip, no per-row binding) and it can say, through
# RETURNING, which ids were new.
_PG_TYPES = {
    "id": "text", "ts": "timestamptz", "stream": "boolean", "peak": "boolean",
    "estimated": "boolean", "prompt_tokens": "integer", "cache_hit_tokens": "integer",
    "cache_miss_tokens": "integer", "completion_tokens": "integer",
    "reasoning_tokens": "integer", "cost_usd": "float8", "provider_cost_usd": "float8",
    "book_cost_usd": "float8", "latency_ms": "float8", "ttft_ms": "float8",
}
# What a row without the column gets (rows spooled by older versions lack the newer ones).
_DEFAULTS: dict[str, Any] = {
    **{c.name: getattr(c.default, "arg", None) for c in usage.columns if c.default is not None},
    "api": "openai.chat",
}
_PG_INSERT = text(
    f"INSERT INTO usage ({', '.join(COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"CAST(:{name} AS {_PG_TYPES.get(name, 'text')}[])" for name in COLUMNS)
    + ") ON CONFLICT (id) DO NOTHING RETURNING id")


async def _insert_unnest(conn: AsyncConnection,
                         rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    params = {name: [row.get(name, _DEFAULTS.get(name)) for row in rows] for name in COLUMNS}
    stored = set((await conn.execute(_PG_INSERT, params)).scalars())
    return rows if len(stored) == len(rows) else [row for row in rows if row["id"] in stored]


def _group_column(group_by: GroupBy, dialect: str) -> ColumnElement[Any]:
    if group_by == "day":
        if dialect == "postgresql":
            return cast(func.timezone("UTC", usage.c.ts), Date)
        return func.date(usage.c.ts)
    column = {"model": usage.c.model, "provider": usage.c.provider,
              "key": usage.c.key_id, "team": usage.c.team, "api": usage.c.api}[group_by]
    return column


async def usage_report(
    conn: AsyncConnection, group_by: GroupBy, start: datetime | None, end: datetime | None,
    api: str | None = None, team: str | None = None,
) -> list[dict[str, Any]]:
    """Requests, tokens by type and cost per group, for rows with start <= ts < end (and, if
    given, served by that client API). `errors` counts calls that failed once accepted;
    `refused` the calls the gateway turned away (auth, limits, budgets, invalid requests),
    which `requests` includes too."""
    group = _group_column(group_by, conn.dialect.name).label("group")
    query = select(
        group,
        func.count().label("requests"),
        *(func.coalesce(func.sum(usage.c[name]), 0).label(name) for name in TOKEN_COLUMNS),
        func.coalesce(func.sum(usage.c.cost_usd), 0.0).label("cost_usd"),
        func.sum(usage.c.provider_cost_usd).label("provider_cost_usd"),
        func.sum(case((usage.c.status.in_(("ok", REFUSED)), 0), else_=1)).label("errors"),
        func.sum(case((usage.c.status == REFUSED, 1), else_=0)).label("refused"),
        func.sum(case((usage.c.estimated, 1), else_=0)).label("estimated"),
    )
    if start is not None:
        query = query.where(usage.c.ts >= start)
    if end is not None:
        query = query.where(usage.c.ts < end)
    if api is not None:
        query = query.where(usage.c.api == api)
    if team is not None:
        query = query.where(usage.c.team == team)
    query = query.group_by(literal_column("1")).order_by(literal_column("1"))
    result = await conn.execute(query)
    out = []
    for row in result.mappings():
        item = {group_by: _plain(row["group"]), "requests": int(row["requests"])}
        item.update({name: int(row[name]) for name in TOKEN_COLUMNS})
        item["cost_usd"] = round(float(row["cost_usd"]), 10)
        provider_cost = row["provider_cost_usd"]
        item["provider_cost_usd"] = None if provider_cost is None else round(
            float(provider_cost), 10)
        item["errors"] = int(row["errors"] or 0)
        item["refused"] = int(row["refused"] or 0)
        item["estimated"] = int(row["estimated"] or 0)
        out.append(item)
    return out


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


async def spend_since(conn: AsyncConnection, subject: str, since: datetime) -> float:
    """USD recorded for `key:<id>` or `team:<name>` from `since` on (budgets start here)."""
    kind, _, name = subject.partition(":")
    column = usage.c.key_id if kind == "key" else usage.c.team
    total = await conn.scalar(
        select(func.coalesce(func.sum(usage.c.cost_usd), 0.0))
        .where(column == name, usage.c.ts >= since)
    )
    return float(total or 0.0)
