"""From a page request's parameters to the page's data: validate, query, fold.

Parameters never raise: what is wrong becomes one message shown on the page, and the page
falls back to the default for that part (period, chart dimension, cursor). All queries run on
one connection, in one of the usage store's report slots (so page loads cannot take the
connections that authentication needs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.api.usage_page import queries, views
from gateway.api.usage_page.html import PageData
from gateway.api.usage_page.period import parse_period

BYS = ("provider", "model")
LOG_PAGE = 50
CSV_LOG_ROWS = 10_000
PARAM_MAX = 256
_FILTER_PARAMS = {"key": "key_id", "team": "team", "model": "model", "provider": "provider",
                  "status": "status", "request_id": "request_id"}


@dataclass(slots=True)
class Request:
    """A page request, checked: what to show and the messages about what could not be."""

    params: dict[str, str]
    errors: list[str] = field(default_factory=list)


def clean_params(raw: Mapping[str, str]) -> Request:
    """Drops values no column could hold (NUL, over PARAM_MAX characters), saying so."""
    request = Request({})
    for name, value in raw.items():
        if "\x00" in value or len(value) > PARAM_MAX:
            request.errors.append(f"{name}: invalid value (NUL, or over {PARAM_MAX} "
                                  "characters); ignored")
            continue
        request.params[name] = value.strip()
    return request


def log_filter(params: Mapping[str, str], team: str | None) -> queries.LogFilter:
    """The log's filters; a viewer's team replaces whatever team was asked for."""
    values = {column: params.get(name) or None for name, column in _FILTER_PARAMS.items()}
    if team is not None:
        values["team"] = team
    return queries.LogFilter(**values)


def cursor(value: str | None) -> tuple[datetime, str] | None:
    """`<iso ts>_<row id>` of the last row shown; raises ValueError when malformed."""
    if not value:
        return None
    ts, sep, row_id = value.rpartition("_")
    if not sep or not row_id.isalnum() or len(row_id) > 32:
        raise ValueError
    parsed = datetime.fromisoformat(ts)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)), row_id


def cursor_of(row: Mapping[str, object]) -> str:
    ts = row["ts"]
    assert isinstance(ts, datetime)
    return f"{ts.isoformat()}_{row['id']}"


async def load(conn: AsyncConnection, raw: Mapping[str, str], team: str | None,
               today: date, csv_table: str | None = None) -> PageData:
    """Everything the page shows, or what one of its CSV tables needs (the log's CSV runs no
    aggregate, an aggregate's CSV reads no raw row). `team`: a viewer's team, which scopes
    every query; None for the whole gateway."""
    request = clean_params(raw)
    params = request.params
    period, error = parse_period(params, today)
    if error:
        request.errors.append(error)
    by = params.get("by") or "provider"
    if by not in BYS:
        request.errors.append(f"by: expected one of {', '.join(BYS)}")
        by = "provider"
    try:
        before = cursor(params.get("before"))
    except ValueError:
        request.errors.append("before: not a position in the request log; showing the newest")
        before = None
    scope = queries.Scope(period.start, period.end, team)
    traffic: list[dict[str, Any]] = []
    subjects: list[dict[str, Any]] = []
    spend: list[dict[str, Any]] = []
    latency: list[dict[str, Any]] = []
    key_rows: list[dict[str, Any]] = []
    team_rows: list[dict[str, Any]] = []
    log: list[dict[str, Any]] = []
    points: list[dict[str, Any]] = []
    log_rows = CSV_LOG_ROWS if csv_table == "log" else LOG_PAGE
    if csv_table != "log":
        await queries.tune(conn)
        traffic = await queries.traffic(conn, scope)
        points = await queries.spend_over_time(conn, scope, period.hourly, by)
        subjects = await queries.by_subject(conn, scope)
        spend = await queries.spend_in_periods(conn, today, team)
        latency = await queries.latency_buckets(conn, scope)
        key_rows = await queries.keys(conn, team)
        team_rows = await queries.team_records(conn, team)
    if csv_table in (None, "log"):
        log = await queries.request_log(conn, scope, log_filter(params, team), before,
                                        log_rows + 1)
    older = cursor_of(log[log_rows - 1]) if len(log) > log_rows else None
    series = views.series(points, by, period)
    tables = [
        views.providers(traffic, latency),
        views.teams(subjects, team_rows, spend),
        views.keys(subjects, key_rows, spend),
        views.breakdown(traffic, "model", "models", "Models"),
        views.breakdown(traffic, "api", "apis", "Client APIs"),
        views.breakdown(traffic, "thinking", "thinking", "Thinking modes"),
    ]
    return PageData(period=period, by=by, totals=views.totals(traffic), series=series,
                    tables=tables,
                    log=views.log_table(log[:log_rows]), older=older, params=params,
                    viewer_team=team, error="; ".join(request.errors) or None)
