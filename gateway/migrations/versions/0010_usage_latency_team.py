"""usage_latency_hourly and usage_latency_daily per team: a viewer key's own percentiles

Revision ID: 0010_usage_latency_team
Revises: 0009_usage_failed_index
Create Date: 2026-12-07

The latency histograms had no team, so a team's viewer key (scoped to its team) could not be
shown its own p50/p95 latency and time to first token; its page showed means instead. Both
tables gain `team` ("" for a call with no team, like the other rollups) in their primary key,
right after the time column.

Backfill: every hour from the oldest raw row on is rebuilt from the raw rows, per team, with
the buckets the writer uses (gateway/metering/buckets.py; on Postgres the same log() in SQL,
on SQLite bucket_of itself). Hours older than the oldest raw row (pruned by retention) keep the
histograms they had, under team "": per team they cannot be recovered, and the whole gateway's
percentiles (the sum over teams) stay exactly what they were. usage_latency_daily is then
recomputed from usage_latency_hourly. On SQLite the rebuild runs in Python, row by row.

On Postgres it is a statement per day of raw rows, in the migration's one transaction, which
holds the histogram tables' lock throughout (writers wait, then spool): at 20M rows over 90
days that is minutes, more than a gateway's start-up allows its migration (5 s), so run
`gateway migrate` before starting upgraded gateways on a big database. A gateway of an older
version still running afterwards finds no key for its histogram upsert and spools until it is
upgraded (its rows replay then, counted once).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op

from gateway.metering.buckets import COUNT, RATIO, bucket_of

revision: str = "0010_usage_latency_team"
down_revision: str | None = "0009_usage_failed_index"
branch_labels: str | None = None
depends_on: str | None = None

HOURLY, DAILY = "usage_latency_hourly", "usage_latency_daily"
KEY = ("team", "provider", "model", "api", "metric", "bucket")
OLD_KEY = KEY[1:]


def _team() -> sa.Column[Any]:
    return sa.Column("team", sa.String(128), nullable=False, server_default="")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.add_column(HOURLY, _team())  # a constant default: no table rewrite
        op.drop_constraint(f"{HOURLY}_pkey", HOURLY, type_="primary")
        op.create_primary_key(f"{HOURLY}_pkey", HOURLY, ["hour", *KEY])
        _rebuild_postgres(bind)
    else:
        _recreate_sqlite(KEY)  # SQLite cannot change a primary key in place

        _rebuild_sqlite(bind)
    op.drop_table(DAILY)
    _create_daily(KEY)
    _fill_daily(KEY)
    if bind.dialect.name == "postgresql":
        # fresh statistics for the rewritten tables: without them the page's 90-day histogram
        # was sorted instead of hashed (172 vs 66 ms, bench/RESULTS-usage-scale.md)
        op.execute(f"ANALYZE {HOURLY}, {DAILY}")


# A day of raw rows per statement: each stays far below the client's 30 s command timeout
# (gateway/db/engine.py WRITES) where one statement over 20M rows would not.
_CHUNK = timedelta(days=1)


def _rebuild_postgres(bind: sa.Connection) -> None:
    first, last = bind.execute(sa.text(
        "SELECT date_trunc('hour', min(ts) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', max(ts) "
        "FROM usage")).one()
    if first is None:
        return
    # bucket_of in SQL: float8 log() is the C library's, as Python's math.log (so ln(1.25)
    # is taken as float8, not numeric); NaN sorts above everything in Postgres, bucket 0 here
    bucket = (f"CASE WHEN m.ms >= 1 AND m.ms <> 'NaN' THEN least({COUNT - 1}, "
              f"floor(ln(m.ms) / ln(CAST({RATIO} AS float8)))::int + 1) ELSE 0 END")
    rebuild = sa.text(f"""
        INSERT INTO {HOURLY} (hour, team, provider, model, api, metric, bucket, count)
        SELECT hour, team, provider, model, api, metric, bucket, count(*) FROM (
          SELECT date_trunc('hour', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour,
                 coalesce(team, '') AS team, coalesce(provider, '') AS provider,
                 coalesce(model, '') AS model, coalesce(api, '') AS api, m.metric,
                 {bucket} AS bucket
          FROM usage CROSS JOIN LATERAL
               (VALUES ('latency', coalesce(latency_ms, 0)), ('ttft', ttft_ms)) AS m(metric, ms)
          WHERE ts >= :start AND ts < :stop AND m.ms IS NOT NULL
        ) AS b GROUP BY 1, 2, 3, 4, 5, 6, 7""")
    start = first
    while start <= last:
        chunk = {"start": start, "stop": start + _CHUNK}
        bind.execute(sa.text(f"DELETE FROM {HOURLY} WHERE hour >= :start AND hour < :stop"),
                     chunk)
        bind.execute(rebuild, chunk)
        start += _CHUNK
    bind.execute(sa.text(f"DELETE FROM {HOURLY} WHERE hour >= :start"), {"start": start})


def _rebuild_sqlite(bind: sa.Connection) -> None:
    usage = sa.table("usage", sa.column("ts", sa.DateTime(timezone=True)),
                     *(sa.column(name, sa.String) for name in ("team", "provider", "model",
                                                                 "api")),
                     sa.column("latency_ms", sa.Float), sa.column("ttft_ms", sa.Float))
    hourly = sa.table(HOURLY, sa.column("hour", sa.DateTime(timezone=True)),
                      *(sa.column(name) for name in KEY), sa.column("count"))
    first = bind.scalar(sa.select(sa.func.min(usage.c.ts)))
    if first is None:
        return
    first = _hour(first)
    counts: Counter[tuple[Any, ...]] = Counter()
    rows = bind.execute(sa.select(*usage.c).execution_options(yield_per=10_000))
    for ts, team, provider, model, api, latency_ms, ttft_ms in rows:
        base = (_hour(ts), team or "", provider or "", model or "", api or "")
        counts[(*base, "latency", bucket_of(latency_ms or 0.0))] += 1
        if ttft_ms is not None:
            counts[(*base, "ttft", bucket_of(ttft_ms))] += 1
    bind.execute(sa.delete(hourly).where(hourly.c.hour >= first))
    if counts:
        bind.execute(sa.insert(hourly), [
            {"hour": key[0], **dict(zip(KEY, key[1:], strict=True)), "count": n}
            for key, n in sorted(counts.items())])


def _hour(ts: datetime) -> datetime:
    ts = ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)
    return ts.replace(minute=0, second=0, microsecond=0)


def _create(name: str, time: sa.Column[Any], key: tuple[str, ...]) -> None:
    """A histogram table keyed by `time` and `key` (with or without team)."""
    sizes = {"team": 128, "provider": 64, "model": 64, "api": 32}
    op.create_table(
        name,
        time,
        *(sa.Column(name, sa.String(sizes[name]), primary_key=True, server_default="")
          for name in key if name in sizes),
        sa.Column("metric", sa.String(8), primary_key=True),
        sa.Column("bucket", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("count", sa.BigInteger, nullable=False, server_default="0"),
    )


def _create_daily(key: tuple[str, ...]) -> None:
    _create(DAILY, sa.Column("day", sa.Date, primary_key=True), key)


def _recreate_sqlite(key: tuple[str, ...]) -> None:
    """usage_latency_hourly with `key` after the hour, its rows copied over (team "" when the
    new key has one): what alembic's batch mode does, but with the new primary key stated."""
    _create("_latency_0010", sa.Column("hour", sa.DateTime(timezone=True), primary_key=True),
            key)
    names = ", ".join(("hour", *OLD_KEY, "count"))
    op.execute(f"INSERT INTO _latency_0010 ({names}) SELECT {names} FROM {HOURLY}")
    op.drop_table(HOURLY)
    op.rename_table("_latency_0010", HOURLY)


def _fill_daily(key: tuple[str, ...]) -> None:
    """usage_latency_daily: usage_latency_hourly summed per UTC day (as revision 0008)."""
    day = ("CAST(timezone('UTC', hour) AS date)" if op.get_bind().dialect.name == "postgresql"
           else "date(hour)")
    names = ", ".join(key)
    op.execute(f"INSERT INTO {DAILY} (day, {names}, count) SELECT {day}, {names}, sum(count) "
               f"FROM {HOURLY} GROUP BY {day}, {names}")


def downgrade() -> None:
    """Back to one histogram for the whole gateway: the teams' counts summed."""
    names = ", ".join(OLD_KEY)
    op.execute(f"CREATE TEMPORARY TABLE latency_0009 AS SELECT hour, {names}, "
               f"sum(count) AS count FROM {HOURLY} GROUP BY hour, {names}")
    op.execute(f"DELETE FROM {HOURLY}")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(f"{HOURLY}_pkey", HOURLY, type_="primary")
        op.drop_column(HOURLY, "team")
        op.create_primary_key(f"{HOURLY}_pkey", HOURLY, ["hour", *OLD_KEY])
    else:
        _recreate_sqlite(OLD_KEY)
    op.execute(f"INSERT INTO {HOURLY} (hour, {names}, count) "
               f"SELECT hour, {names}, count FROM latency_0009")
    op.execute("DROP TABLE latency_0009")
    op.drop_table(DAILY)
    _create_daily(OLD_KEY)
    _fill_daily(OLD_KEY)
