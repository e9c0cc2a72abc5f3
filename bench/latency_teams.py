"""What per-team latency histograms (migration 0010) cost the usage page at 20M rows / 90 days.

    .venv/bin/python bench/latency_teams.py [--url postgresql://postgres@127.0.0.1:5432/postgres]
                                            [--runs 9] [--keep]

The 20M-row database of bench/usage_scale.py is not needed (nor touched): only the histograms
matter here, so this builds them alone in a scratch database `switchyard_latency_teams`, from
the same synthetic calls as usage_scale.py's `generate` (222,222 a day for 90 days, 50 keys in
5 teams, each key with its own model and client API, the same providers and latencies), never
storing the raw rows. Schema `after` holds them per team (as 0010 keeps them), schema `before`
the same counts summed over teams (as 0006-0009 kept them, team ""). Then the page's own query
(gateway.api.usage_page.queries.latency_buckets, with the page's work_mem) is timed for the
master key and for a viewer of team-1, over the last 90 and 30 days, before and after
interleaved, medians of --runs. The database is dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.api.usage_page import queries  # noqa: E402
from gateway.db import migrate  # noqa: E402
from gateway.db.engine import async_url, create_engine  # noqa: E402

NAME = "switchyard_latency_teams"
PER_DAY = 222_222
DAYS = 90

# usage_scale.py's DAY_SQL, only the columns a histogram keeps, aggregated as 0010 does.
# $1 day start, $2 first g.
HISTOGRAM_SQL = f"""
INSERT INTO after.usage_latency_hourly (hour, team, provider, model, api, metric, bucket, count)
SELECT hour, team, provider, model, api, metric, bucket, count(*) FROM (
  SELECT date_trunc('hour', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour, team,
         coalesce(provider, '') AS provider, model, api, m.metric,
         CASE WHEN m.ms >= 1
              THEN least(71, floor(ln(m.ms) / ln(CAST(1.25 AS float8)))::int + 1) ELSE 0 END
             AS bucket
  FROM (
    SELECT ts, 'team-' || (k % 5) AS team, stream,
      CASE WHEN k % 7 = 0 THEN 'deepseek-v4-pro' ELSE 'deepseek-v4-flash' END AS model,
      (ARRAY['openai.chat', 'anthropic.messages', 'openai.responses', 'ollama.chat'])[k % 4 + 1]
          AS api,
      CASE WHEN v >= 0.99 THEN NULL WHEN u < 0.9 THEN 'deepseek'
           WHEN u < 0.97 THEN 'openrouter' ELSE 'ollama' END AS provider,
      CASE WHEN v >= 0.99 THEN 2.0 ELSE 150 + w * w * 30000 END AS latency
    FROM (
      SELECT g % 50 AS k, $1::timestamptz + (g - $2) * (86400.0 / {PER_DAY}) * interval '1 second'
             AS ts, random() AS u, random() AS v, random() AS w, (g % 2 = 0) AS stream
      FROM generate_series($2::bigint, $2::bigint + {PER_DAY} - 1) AS g
    ) AS base
  ) AS call CROSS JOIN LATERAL
    (VALUES ('latency', latency), ('ttft', CASE WHEN stream THEN latency / 5 END)) AS m(metric, ms)
  WHERE m.ms IS NOT NULL
) AS b GROUP BY 1, 2, 3, 4, 5, 6, 7
"""
_KEY = "provider, model, api, metric, bucket"


async def build(server: str, target: str) -> None:
    admin = await asyncpg.connect(server)
    await admin.execute(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{NAME}"')
    await admin.close()
    engine = create_engine(async_url(target, "unused"))
    await migrate.upgrade(engine)
    await engine.dispose()
    conn = await asyncpg.connect(target, command_timeout=None)
    try:
        for schema in ("before", "after"):
            await conn.execute(f"CREATE SCHEMA {schema}")
            for table in ("usage_latency_hourly", "usage_latency_daily"):
                await conn.execute(f"CREATE TABLE {schema}.{table} "
                                   f"(LIKE public.{table} INCLUDING ALL)")
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        first = today - timedelta(days=DAYS - 1)
        started = time.perf_counter()
        for day in range(DAYS):
            await conn.execute(HISTOGRAM_SQL, first + timedelta(days=day), day * PER_DAY)
        print(f"histograms of {DAYS * PER_DAY:,} calls: {time.perf_counter() - started:.0f} s")
        await conn.execute(
            f"INSERT INTO before.usage_latency_hourly (hour, team, {_KEY}, count) "
            f"SELECT hour, '', {_KEY}, sum(count) FROM after.usage_latency_hourly "
            f"GROUP BY hour, {_KEY}")
        for schema in ("before", "after"):
            await conn.execute(
                f"INSERT INTO {schema}.usage_latency_daily (day, team, {_KEY}, count) "
                f"SELECT CAST(timezone('UTC', hour) AS date), team, {_KEY}, sum(count) "
                f"FROM {schema}.usage_latency_hourly GROUP BY 1, team, {_KEY}")
            for table in ("usage_latency_hourly", "usage_latency_daily"):
                await conn.execute(f"VACUUM ANALYZE {schema}.{table}")
                count = await conn.fetchval(f"SELECT count(*) FROM {schema}.{table}")
                size = await conn.fetchval(f"SELECT pg_total_relation_size('{schema}.{table}')")
                print(f"{schema}.{table}: {count:,} rows, {size / 1e6:.0f} MB")
    finally:
        await conn.close()


async def measure(target: str, runs: int) -> None:
    engines = {schema: create_async_engine(
        async_url(target, "unused"),
        connect_args={"server_settings": {"search_path": f"{schema},public"}})
        for schema in ("before", "after")}
    now = datetime.now(UTC)
    end = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    cases = [(f"{days} d, {who}", queries.Scope(end - timedelta(days=days), end, team))
             for days in (90, 30) for who, team in (("master", None), ("viewer", "team-1"))]
    times: dict[tuple[str, str], list[float]] = {}
    try:
        for run in range(runs + 1):  # the first is a warm-up
            for label, scope in cases:
                for schema, engine in engines.items():
                    if schema == "before" and scope.team is not None:
                        continue  # before 0010 a viewer's page read no histogram
                    async with engine.begin() as conn:
                        await queries.tune(conn)
                        started = time.perf_counter()
                        rows = await queries.latency_buckets(conn, scope)
                        took = (time.perf_counter() - started) * 1000
                    assert rows
                    if run:
                        times.setdefault((label, schema), []).append(took)
    finally:
        for engine in engines.values():
            await engine.dispose()
    print(f"load average: {os.getloadavg()}")
    for label, _ in cases:
        after = statistics.median(times[(label, "after")])
        before = times.get((label, "before"))
        if before:
            was = statistics.median(before)
            print(f"{label}: before {was:.0f} ms, after {after:.0f} ms ({after / was:.2f}x)")
        else:
            print(f"{label}: after {after:.0f} ms (before: no histogram read)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get(
        "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    target = args.url.rsplit("/", 1)[0] + "/" + NAME
    await build(args.url, target)
    try:
        await measure(target, args.runs)
    finally:
        if not args.keep:
            admin = await asyncpg.connect(args.url)
            await admin.execute(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
