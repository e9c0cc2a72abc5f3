"""The usage page's cost on Postgres: synthetic hourly rollups and raw rows, then the page's
data for several periods (median of 5: every query the page runs, plus the HTML), each
aggregate query alone, and its plan's scan nodes.

    .venv/bin/python bench/ui_queries.py [--combos 300] [--raw 2000000] [--days 90]

`--combos` is the number of distinct (key, team, model, provider, api, thinking, status)
rollup rows per hour (and per day: every hour has the same ones): the page's aggregates read
days x combos daily rows (hours x combos for a period of up to 2 days), and the latency
histograms days x 24 x their groups; never raw rows (only the request log reads those, by
index). The rollups are written by SQL here,
not through the metering writer: this measures reading. Writes bench/RESULTS-ui-queries.md and
drops its scratch database (also on failure).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.dialects import postgresql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.api.usage_page import queries  # noqa: E402
from gateway.api.usage_page.html import usage_page  # noqa: E402
from gateway.api.usage_page.load import load  # noqa: E402
from gateway.db import migrate  # noqa: E402
from gateway.db.engine import create_engine  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS-ui-queries.md"

SEED_ROLLUPS = """
INSERT INTO usage_hourly (hour, key_id, team, model, provider, api, thinking, status,
  requests, failovers, prompt_tokens, cache_hit_tokens, completion_tokens, cost_usd,
  book_cost_usd, cache_savings_usd, latency_ms_sum)
SELECT h, 'k' || (c % 50), 't' || (c % 50 % 5),
       CASE (c / 50) % 2 WHEN 0 THEN 'deepseek-v4-flash' ELSE 'deepseek-v4-pro' END,
       (ARRAY['deepseek', 'openrouter', 'ollama'])[(c / 50) % 3 + 1],
       (ARRAY['openai.chat', 'anthropic.messages'])[(c / 300) % 2 + 1],
       (ARRAY['off', 'high'])[(c / 600) % 2 + 1],
       (ARRAY['ok', 'error', 'refused'])[(c / 1200) % 3 + 1],
       30, 1, 9000, 3000, 4000, 0.01, 0.01, 0.002, 30000
FROM generate_series(date_trunc('hour', now()) - make_interval(days => $1),
                     date_trunc('hour', now()), interval '1 hour') h,
     generate_series(0, $2 - 1) c
"""
SEED_DAILY = """
INSERT INTO usage_daily (day, key_id, team, model, provider, api, thinking, status,
  requests, failovers, prompt_tokens, cache_hit_tokens, completion_tokens, cost_usd,
  book_cost_usd, cache_savings_usd, latency_ms_sum)
SELECT CAST(timezone('UTC', hour) AS date), key_id, team, model, provider, api, thinking,
       status, sum(requests), sum(failovers), sum(prompt_tokens), sum(cache_hit_tokens),
       sum(completion_tokens), sum(cost_usd), sum(book_cost_usd), sum(cache_savings_usd),
       sum(latency_ms_sum)
FROM usage_hourly GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
"""
SEED_LATENCY = """
INSERT INTO usage_latency_hourly (hour, provider, model, api, metric, bucket, count)
SELECT h, p, m, 'openai.chat', metric, b, 10
FROM generate_series(date_trunc('hour', now()) - make_interval(days => $1),
                     date_trunc('hour', now()), interval '1 hour') h,
     unnest(ARRAY['deepseek', 'openrouter', 'ollama']) p,
     unnest(ARRAY['deepseek-v4-flash', 'deepseek-v4-pro']) m,
     unnest(ARRAY['latency', 'ttft']) metric, generate_series(20, 40) b
"""
SEED_RAW = """
INSERT INTO usage (id, ts, request_id, key_id, team, requested_model, model, provider,
  thinking, stream, status, attempts, latency_ms, api, prompt_tokens, cache_hit_tokens,
  cache_miss_tokens, completion_tokens, reasoning_tokens, cost_usd, peak, estimated)
SELECT md5(i::text), now() - (i * ($1 * 86400.0 / $2)) * interval '1 second',
       'req-' || i, 'k' || (i % 50), 't' || (i % 50 % 5), 'deepseek-chat',
       'deepseek-v4-flash', 'deepseek', 'off', false,
       CASE WHEN i % 100 = 0 THEN 'error' ELSE 'ok' END,
       CASE WHEN i % 100 = 0 THEN 'deepseek:503,openrouter:503' ELSE 'deepseek:200' END,
       500, 'openai.chat', 10, 0, 10, 10, 0, 0.001, false, false
FROM generate_series(1, $2) i
"""


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.0f}"


async def timed(run: Callable[[], Awaitable[Any]], repeat: int = 5) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await run()
        samples.append(time.perf_counter() - started)
    return samples


async def bench(server: str, combos: int, raw: int, days: int) -> list[str]:
    name = f"switchyard_bench_ui_{secrets.token_hex(4)}"
    base = server.rsplit("/", 1)[0]
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    engine = create_engine(f"postgresql+asyncpg://{base.split('://', 1)[1]}/{name}")
    out: list[str] = []
    try:
        await migrate.upgrade(engine)
        conn = await asyncpg.connect(f"{base}/{name}")
        started = time.monotonic()
        await conn.execute(SEED_ROLLUPS, days, combos)
        await conn.execute(SEED_DAILY)
        await conn.execute(SEED_LATENCY, days)
        await conn.execute(SEED_RAW, days, raw)
        await conn.execute("ANALYZE")
        sizes = {t: await conn.fetchval(f"SELECT count(*) FROM {t}")
                 for t in ("usage_hourly", "usage_daily", "usage_latency_hourly", "usage")}
        version = await conn.fetchval("SHOW server_version")
        await conn.close()
        out += [f"Seeded in {time.monotonic() - started:.0f} s: " + ", ".join(
            f"{n:,} rows in `{t}`" for t, n in sizes.items()) + f"; Postgres {version}.", ""]
        today = datetime.now(UTC).date()
        first = str(today - timedelta(days=days - 1))
        out += ["| page (load + HTML) | median of 5, ms |", "|---|---|"]
        for label, params, team in (
                ("default (30 days)", {}, None), ("today", {"range": "today"}, None),
                ("7 days", {"range": "7d"}, None), (f"{days} days", {"from": first}, None),
                (f"{days} days, a viewer's team", {"from": first}, "t1"),
                ("30 days, log filtered by key", {"key": "k7"}, None),
                ("30 days, log filtered by status=error", {"status": "error"}, None)):
            async def page(params: dict[str, str] = params, team: str | None = team) -> None:
                async with engine.connect() as c:
                    usage_page(await load(c, params, team, today))
            out.append(f"| {label} | {median_ms(await timed(page))} |")
        out += ["", *await per_query(engine, today, days)]
    finally:
        await engine.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return out


async def per_query(engine: Any, today: date, days: int) -> list[str]:
    """Each aggregate of the {days}-day page alone (tuned as the page runs it), and the scan
    nodes of its plan."""
    start = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), UTC)
    end = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC)
    scope, team_scope = queries.Scope(start, end), queries.Scope(start, end, "t1")
    checks: list[tuple[str, Callable[[Any], Awaitable[Any]]]] = [
        ("traffic (cards, providers, models, apis, thinking)",
         lambda c: queries.traffic(c, scope)),
        ("spend_over_time (the chart, by provider)",
         lambda c: queries.spend_over_time(c, scope, False, "provider")),
        ("by_subject (teams, keys)", lambda c: queries.by_subject(c, scope)),
        ("by_subject, a viewer's team", lambda c: queries.by_subject(c, team_scope)),
        ("spend_in_periods (budgets: today, this month)",
         lambda c: queries.spend_in_periods(c, today, None)),
        ("latency_buckets (p50/p95)", lambda c: queries.latency_buckets(c, scope)),
        ("keys (limits, last used)", lambda c: queries.keys(c, None)),
        ("request_log, newest 51 by key",
         lambda c: queries.request_log(c, scope, queries.LogFilter(key_id="k7"), None, 51)),
    ]
    lines = [f"| {days}-day query | median of 5, ms | plan's scans |", "|---|---|---|"]
    for label, run in checks:
        captured: list[Any] = []

        async def once(run: Callable[[Any], Awaitable[Any]] = run,
                       captured: list[Any] = captured) -> None:
            async with engine.connect() as c:
                await queries.tune(c)
                await run(_Spy(c, captured))
        samples = await timed(once)
        async with engine.connect() as c:
            await queries.tune(c)
            sql = str(captured[0].compile(dialect=postgresql.dialect(),
                                          compile_kwargs={"literal_binds": True}))
            plan = (await c.exec_driver_sql("EXPLAIN " + sql)).all()
        scans = sorted({row[0].strip().lstrip("-> ").split("  (")[0] for row in plan
                        if "Scan" in row[0]})
        lines.append(f"| {label} | {median_ms(samples)} | {'; '.join(scans)} |")
    return lines


class _Spy:
    """Passes statements through, keeping them for EXPLAIN."""

    def __init__(self, conn: Any, captured: list[Any]) -> None:
        self._conn, self._captured, self.dialect = conn, captured, conn.dialect

    async def execute(self, statement: Any) -> Any:
        self._captured.append(statement)
        return await self._conn.execute(statement)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--combos", type=int, default=300)
    parser.add_argument("--raw", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()
    lines = asyncio.run(bench(args.database_url, args.combos, args.raw, args.days))
    command = " ".join(["python", "bench/ui_queries.py", *sys.argv[1:]])
    load1, load5, _ = os.getloadavg()
    header = [
        "# Usage page: query cost on Postgres", "",
        f"Command: `.venv/bin/{command}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, load average {load1:.1f} / "
        f"{load5:.1f} at the end (shared with other work), {datetime.now(UTC):%Y-%m-%d %H:%M} "
        "UTC.", "",
        f"Synthetic data: {args.days} days x 24 hours x {args.combos} rollup rows per hour, "
        f"{args.raw:,} raw rows.", ""]
    RESULTS.write_text("\n".join(header + lines) + "\n")
    print("\n".join(header + lines))


if __name__ == "__main__":
    main()
