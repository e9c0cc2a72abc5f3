"""The statements metering needs: idempotent batch inserts and grouped usage reports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import Date, case, cast, func, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from gateway.db.tables import usage

GroupBy = Literal["model", "provider", "key", "team", "day", "api"]
GROUP_BYS: tuple[str, ...] = get_args(GroupBy)

REFUSED = "refused"  # the status of a call the gateway turned away

TOKEN_COLUMNS = ("prompt_tokens", "cache_hit_tokens", "cache_miss_tokens",
                 "completion_tokens", "reasoning_tokens")


async def insert_rows(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """One executemany; a row whose id is already stored is skipped, so replays are safe."""
    if not rows:
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    await conn.execute(insert(usage).on_conflict_do_nothing(index_elements=["id"]), rows)


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
    api: str | None = None,
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
