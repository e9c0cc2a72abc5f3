"""Usage reports at scale: tens of millions of raw rows, their rollups, every report timed.

    .venv/bin/python bench/usage_scale.py generate [--rows 20000000] [--days 90]
    .venv/bin/python bench/usage_scale.py measure  [--runs 5] [--chats 300] [--slots 1,2]
    .venv/bin/python bench/usage_scale.py drop

`generate` creates the scratch database `switchyard_usage_scale` on the Postgres server of
--url (check `df -h` first: ~650 bytes a raw row with its indexes), migrates it, and fills
`usage` with synthetic rows over the last --days days with `generate_series`, a day per
statement: 50 keys in 5 teams, each key with its own model, client API and thinking mode (as
real apps have), 90% of calls served by the primary provider and the rest by a fallback (half
of those after a failover), 2% errors, 1% refusals, streamed calls with a time to first token.
Secondary indexes are built after the load (as for any bulk load), then the rollups are
computed from the raw rows by one SQL GROUP BY per day (the same sums the writer keeps; cache
savings at each provider's current off-peak rates, so peak hours are not modelled), and the
daily ones from the hourly ones.
`gateway rollup rebuild` (the Python path) is timed on one day.

`measure` seeds the 50 keys and 5 teams, starts a simulated DeepSeek and a real `gateway
serve` on that database, then times (medians of --runs): every `/admin/usage` group_by for the
last 30 and 90 days, `/ui` for 30 and 90 days (also as a team's viewer) and with request-log
filters, EXPLAIN ANALYZE of the report query; the p99 of chat requests idle and while 10
clients load the 90-day page in a loop, once per `metering.report_slots` in --slots (a gateway
each); the metering writer's rows/s into the big table.
`drop` drops the database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.db import migrate  # noqa: E402
from gateway.db.engine import async_url, create_engine  # noqa: E402
from gateway.metering.prices import PriceBook  # noqa: E402

NAME = "switchyard_usage_scale"
MASTER = "sk-bench-master"
SECONDARY = ("ix_usage_ts", "ix_usage_request_id", "ix_usage_key_ts", "ix_usage_team_ts",
             "ix_usage_model_ts", "ix_usage_provider_ts", "ix_usage_failed_ts")

# One day of synthetic rows: $1 day start, $2 first g, $3 rows that day, $4 seed text.
DAY_SQL = """
INSERT INTO usage (id, ts, request_id, key_id, team, client_user, requested_model, model,
    provider, upstream_model, thinking, stream, status, error_type, attempts, prompt_tokens,
    cache_hit_tokens, cache_miss_tokens, completion_tokens, reasoning_tokens, cost_usd,
    provider_cost_usd, book_cost_usd, peak, estimated, latency_ms, ttft_ms, api)
SELECT md5($4 || g::text), ts, 'req-' || g, 'key-' || k, 'team-' || (k % 5), NULL,
    model, model, provider, model, thinking, stream, status,
    CASE WHEN status = 'refused' THEN 'rate_limit_exceeded'
         WHEN status = 'error' THEN 'upstream_error' END,
    CASE WHEN provider IS NULL THEN ''
         WHEN provider <> 'deepseek' AND w < 0.5 THEN 'deepseek:503,' || provider || ':200'
         ELSE provider || ':200' END,
    prompt, hit, prompt - hit, completion, completion / 4,
    (hit * 0.028 + (prompt - hit) * 0.28 + completion * 0.42) / 1e6,
    CASE WHEN provider = 'openrouter' THEN (prompt * 0.3 + completion * 0.45) / 1e6 END,
    (hit * 0.028 + (prompt - hit) * 0.28 + completion * 0.42) / 1e6,
    false, false, latency, CASE WHEN stream THEN latency / 5 END, api
FROM (
  SELECT g, k, ts, w, stream,
    CASE WHEN k % 7 = 0 THEN 'deepseek-v4-pro' ELSE 'deepseek-v4-flash' END AS model,
    (ARRAY['openai.chat', 'anthropic.messages', 'openai.responses', 'ollama.chat'])[k % 4 + 1]
        AS api,
    (ARRAY['off', 'high', 'max'])[k % 3 + 1] AS thinking,
    CASE WHEN v < 0.97 THEN 'ok' WHEN v < 0.99 THEN 'error' ELSE 'refused' END AS status,
    CASE WHEN v >= 0.99 THEN NULL WHEN u < 0.9 THEN 'deepseek'
         WHEN u < 0.97 THEN 'openrouter' ELSE 'ollama' END AS provider,
    CASE WHEN v >= 0.99 THEN 0 ELSE 200 + (u * 7919)::int % 6000 END AS prompt,
    CASE WHEN v >= 0.99 THEN 0 ELSE (w * 4000)::int END AS completion,
    CASE WHEN v >= 0.99 THEN 0 ELSE ((u * 7919)::int % 6000) * (k % 4) / 4 END AS hit,
    CASE WHEN v >= 0.99 THEN 2.0 ELSE 150 + w * w * 30000 END AS latency
  FROM (
    SELECT g, g % 50 AS k, $1::timestamptz + (g - $2) * (86400.0 / $3) * interval '1 second'
           AS ts, random() AS u, random() AS v, random() AS w, (g % 2 = 0) AS stream
    FROM generate_series($2::bigint, $2::bigint + $3 - 1) AS g
  ) AS base
) AS row
"""

# The writer's sums (gateway/metering/rollups.py) as SQL, for [$1, $2): savings per provider.
ROLLUP_SQL = """
INSERT INTO usage_hourly (hour, key_id, team, model, provider, api, thinking, status, requests,
    failovers, prompt_tokens, cache_hit_tokens, cache_miss_tokens, completion_tokens,
    reasoning_tokens, ttft_count, cost_usd, book_cost_usd, provider_cost_usd,
    cache_savings_usd, latency_ms_sum, ttft_ms_sum)
SELECT date_trunc('hour', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', coalesce(key_id, ''),
    coalesce(team, ''), model, coalesce(provider, ''), api, thinking, status, count(*),
    count(*) FILTER (WHERE attempts LIKE '%,%'), sum(prompt_tokens), sum(cache_hit_tokens),
    sum(cache_miss_tokens), sum(completion_tokens), sum(reasoning_tokens), count(ttft_ms),
    sum(cost_usd), coalesce(sum(book_cost_usd), 0), coalesce(sum(provider_cost_usd), 0),
    sum(cache_hit_tokens * CASE provider WHEN 'deepseek' THEN $3::float8
        WHEN 'openrouter' THEN $4::float8 WHEN 'ollama' THEN $5::float8 ELSE 0 END),
    sum(latency_ms), coalesce(sum(ttft_ms), 0)
FROM usage WHERE ts >= $1 AND ts < $2
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
"""
LATENCY_SQL = """
INSERT INTO usage_latency_hourly (hour, team, provider, model, api, metric, bucket, count)
SELECT hour, team, provider, model, api, metric, bucket, count(*) FROM (
  SELECT date_trunc('hour', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour,
         coalesce(team, '') AS team, coalesce(provider, '') AS provider, model, api, m.metric,
         CASE WHEN m.ms >= 1
              THEN least(71, floor(ln(m.ms) / ln(CAST(1.25 AS float8)))::int + 1) ELSE 0 END
             AS bucket
  FROM usage CROSS JOIN LATERAL (VALUES ('latency', latency_ms), ('ttft', ttft_ms)) AS m(metric, ms)
  WHERE ts >= $1 AND ts < $2 AND m.ms IS NOT NULL
) AS b GROUP BY 1, 2, 3, 4, 5, 6, 7
"""

_SUMMED = ("requests, failovers, prompt_tokens, cache_hit_tokens, cache_miss_tokens, "
           "completion_tokens, reasoning_tokens, ttft_count, cost_usd, book_cost_usd, "
           "provider_cost_usd, cache_savings_usd, latency_ms_sum, ttft_ms_sum")
_DIMS = "key_id, team, model, provider, api, thinking, status"
DAILY_SQL = (  # what migration 0007 and the writer keep: usage_hourly summed per UTC day
    f"INSERT INTO usage_daily (day, {_DIMS}, {_SUMMED}) "
    f"SELECT CAST(timezone('UTC', hour) AS date), {_DIMS}, "
    + ", ".join(f"sum({name})" for name in _SUMMED.split(", "))
    + f" FROM usage_hourly GROUP BY 1, {_DIMS}")

LATENCY_DAILY_SQL = (  # migration 0010's (0008's, per team)
    "INSERT INTO usage_latency_daily (day, team, provider, model, api, metric, bucket, count) "
    "SELECT CAST(timezone('UTC', hour) AS date), team, provider, model, api, metric, bucket, "
    "sum(count) FROM usage_latency_hourly GROUP BY 1, 2, 3, 4, 5, 6, 7")


def server_url(url: str, database: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + database


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def savings_rates() -> tuple[float, float, float]:
    book = PriceBook.load()
    now = datetime.now(UTC).replace(hour=12)
    rates = []
    for provider in ("deepseek", "openrouter", "ollama"):
        price = book.price(provider, "deepseek-v4-flash", now)
        rates.append(0.0 if price is None else (price.cache_miss - price.cache_hit) / 1e6)
    return rates[0], rates[1], rates[2]


async def generate(url: str, rows: int, days: int) -> None:
    admin = await asyncpg.connect(url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{NAME}"')
    await admin.close()
    target = server_url(url, NAME)
    engine = create_engine(async_url(target, "unused"))
    await migrate.upgrade(engine)
    await engine.dispose()
    conn = await asyncpg.connect(target, command_timeout=None)
    await conn.execute("SET work_mem = '256MB'; SET maintenance_work_mem = '512MB'")
    for index in SECONDARY:
        await conn.execute(f"DROP INDEX {index}")
    per_day = rows // days
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = today - timedelta(days=days - 1)
    started = time.perf_counter()
    for day in range(days):
        at = first_day + timedelta(days=day)
        await conn.execute(DAY_SQL, at, day * per_day, per_day, "s")
        if day % 10 == 9 or day == days - 1:
            done = (day + 1) * per_day
            elapsed = time.perf_counter() - started
            log(f"raw rows: {done:,} in {elapsed:.0f} s ({done / elapsed:,.0f} rows/s)")
    load = time.perf_counter() - started
    started = time.perf_counter()
    for index, definition in (
            ("ix_usage_ts", "(ts)"), ("ix_usage_request_id", "(request_id)"),
            ("ix_usage_key_ts", "(key_id, ts)"), ("ix_usage_team_ts", "(team, ts)"),
            ("ix_usage_model_ts", "(model, ts)"), ("ix_usage_provider_ts", "(provider, ts)"),
            ("ix_usage_failed_ts", "(ts) WHERE status <> 'ok'")):
        await conn.execute(f"CREATE INDEX {index} ON usage {definition}")
    indexes = time.perf_counter() - started
    rates = savings_rates()
    started = time.perf_counter()
    for day in range(days):
        at = first_day + timedelta(days=day)
        await conn.execute(ROLLUP_SQL, at, at + timedelta(days=1), *rates)
        await conn.execute(LATENCY_SQL, at, at + timedelta(days=1))
    await conn.execute(DAILY_SQL)
    await conn.execute(LATENCY_DAILY_SQL)
    rollups = time.perf_counter() - started
    await conn.execute("VACUUM ANALYZE usage_daily")
    await conn.execute("VACUUM ANALYZE usage_hourly")
    await conn.execute("VACUUM ANALYZE usage_latency_hourly")
    await conn.execute("VACUUM ANALYZE usage_latency_daily")  # no statistics: a sort, not a
    # hash, for the page's 90-day histogram (172 -> 66 ms) until autovacuum gets to it
    await conn.execute("ANALYZE usage")
    sizes = await conn.fetchrow(
        "SELECT pg_total_relation_size('usage') AS raw, "
        "pg_total_relation_size('usage_hourly') AS hourly, "
        "pg_total_relation_size('usage_latency_hourly') AS latency, "
        "(SELECT count(*) FROM usage_hourly) AS hourly_rows, "
        "(SELECT count(*) FROM usage_latency_hourly) AS latency_rows")
    await conn.close()
    log(f"loaded {per_day * days:,} raw rows over {days} days: load {load:.0f} s, "
        f"indexes {indexes:.0f} s, rollups {rollups:.0f} s")
    log(f"sizes: usage {sizes['raw'] / 1e9:.2f} GB, usage_hourly {sizes['hourly'] / 1e6:.0f} MB "
        f"({sizes['hourly_rows']:,} rows), usage_latency_hourly "
        f"{sizes['latency'] / 1e6:.0f} MB ({sizes['latency_rows']:,} rows)")
    await time_rebuild(target, first_day + timedelta(days=days // 2))


async def time_rebuild(target: str, day: datetime) -> None:
    """`rebuild_rollups` (the Python path of `gateway rollup rebuild`) on one day's rows."""
    from gateway.metering import rollups

    engine = create_engine(async_url(target, "unused"))
    prices = PriceBook.load()
    try:
        started = time.perf_counter()
        async with engine.begin() as conn:
            written = await rollups._rebuild_span(conn, prices, day, day + timedelta(days=1))
        elapsed = time.perf_counter() - started
        async with engine.connect() as conn:
            from sqlalchemy import func, select

            from gateway.db.tables import usage
            count = await conn.scalar(select(func.count()).select_from(usage).where(
                usage.c.ts >= day, usage.c.ts < day + timedelta(days=1)))
        log(f"rollup rebuild of one day ({count:,} raw rows -> {written:,} hourly rows): "
            f"{elapsed:.1f} s ({(count or 0) / elapsed:,.0f} rows/s)")
    finally:
        await engine.dispose()


# ---- measure -----------------------------------------------------------------------------

def start_gateway(db_url: str, workdir: Path, upstream: Any,
                  report_slots: int) -> tuple[subprocess.Popen[bytes], str]:
    from tests.e2e.process import free_port

    port = free_port()
    config = workdir / "gateway.yaml"
    config.write_text(
        f"metering: {{retention_days: 0, spool_path: {workdir / 'spool'}, "
        f"report_slots: {report_slots}}}\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT),  # this checkout's gateway
           "DATABASE_URL": db_url, "GATEWAY_MASTER_KEY": MASTER,
           "DEEPSEEK_API_KEY": upstream.key, "DEEPSEEK_BASE_URL": upstream.base_url}
    for name in ("OPENROUTER_API_KEY", "OLLAMA_API_KEY", "REDIS_URL"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config), "--port",
         str(port), "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL,
        stderr=(workdir / "gateway.log").open("wb"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the gateway did not start: " + (workdir / "gateway.log").read_text())


def stop_gateway(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(30)


def timed(client: httpx.Client, path: str, runs: int, params: dict[str, str] | None = None,
          headers: dict[str, str] | None = None) -> tuple[float, int]:
    """Median ms of `runs` GETs (after one warm-up), and the response size."""
    response = client.get(path, params=params, headers=headers)
    assert response.status_code == 200, (path, params, response.status_code, response.text[:300])
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(path, params=params, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return statistics.median(times), len(response.content)


def chat_latencies(url: str, count: int) -> list[float]:
    body = {"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "hi"}]}
    out = []
    with httpx.Client(base_url=url, timeout=30,
                      headers={"authorization": f"Bearer {MASTER}"}) as client:
        for _ in range(count):
            started = time.perf_counter()
            response = client.post("/v1/chat/completions", json=body)
            out.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
            time.sleep(0.01)
    return out


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


# The request log's filters timed on the 30-day page: each narrows the newest-first scan.
LOG_FILTERS = ({"key": "key-7"}, {"model": "deepseek-v4-pro"}, {"provider": "ollama"},
               {"status": "error"}, {"status": "refused"}, {"key": "key-7", "status": "error"},
               {"model": "deepseek-v4-pro", "provider": "ollama", "status": "error"},
               {"key": "key-1", "model": "deepseek-v4-pro"},  # a model that key never used
               {"request_id": "req-1000"})


async def seed_keys(db_url: str) -> None:
    """The 50 keys and 5 teams the synthetic rows name (the page lists every key with its
    last use: one probe of `ix_usage_hourly_key_hour` each). Idempotent."""
    conn = await asyncpg.connect(db_url)
    try:
        now = datetime.now(UTC)
        await conn.executemany(
            "INSERT INTO teams (name, metadata, created_at) VALUES ($1, '{}', $2) "
            "ON CONFLICT DO NOTHING", [(f"team-{t}", now) for t in range(5)])
        await conn.executemany(
            "INSERT INTO api_keys (id, name, key_hash, key_prefix, team, metadata, created_at) "
            "VALUES ($1::text, $1::text, md5($1::text) || md5($1::text), 'sk-bench', $2, '{}', $3) "
            "ON CONFLICT DO NOTHING", [(f"key-{k}", f"team-{k % 5}", now) for k in range(50)])
    finally:
        await conn.close()


def time_reports(client: httpx.Client, viewer: str, runs: int) -> None:
    today = datetime.now(UTC).date()
    for days in (30, 90):
        span = {"from": (today - timedelta(days=days - 1)).isoformat(), "to": today.isoformat()}
        for group in ("model", "provider", "key", "team", "day", "api", "thinking", "status"):
            ms, size = timed(client, "/admin/usage", runs, {"group_by": group, **span})
            log(f"/admin/usage group_by={group} {days} d: {ms:.0f} ms ({size:,} B)")
        ms, size = timed(client, "/admin/usage", runs, {"group_by": "key", "format": "csv", **span})
        log(f"/admin/usage group_by=key format=csv {days} d: {ms:.0f} ms")
        ms, size = timed(client, "/ui", runs, span)
        log(f"/ui {days} d: {ms:.0f} ms ({size:,} B)")
        ms, size = timed(client, "/ui", runs, span, {"authorization": f"Bearer {viewer}"})
        log(f"/ui {days} d, a viewer of team-1: {ms:.0f} ms ({size:,} B)")
    ms, size = timed(client, "/ui", runs)
    log(f"/ui default period: {ms:.0f} ms ({size:,} B)")
    for where in LOG_FILTERS:
        ms, size = timed(client, "/ui", runs, where)
        log(f"/ui default period, log filtered by {where}: {ms:.0f} ms ({size:,} B)")


def chats_under_page_loads(gateway: str, chats: int) -> tuple[list[float], list[float],
                                                               list[float]]:
    """Chat latencies idle, then while 10 clients load the 90-day page in a loop; and those
    page loads' times."""
    today = datetime.now(UTC).date()
    idle = chat_latencies(gateway, chats)
    # Page loaders are curl processes, so the chat client here shares no GIL with them.
    query = f"from={today - timedelta(days=89)}&to={today}"
    loaders = [subprocess.Popen(
        ["bash", "-c", "while :; do curl -s -o /dev/null -w '%{time_total}\\n' "
         f"-H 'authorization: Bearer {MASTER}' '{gateway}/ui?{query}'; done"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        for _ in range(10)]
    time.sleep(1)
    busy = chat_latencies(gateway, chats)
    loads: list[float] = []
    for loader in loaders:
        os.killpg(loader.pid, signal.SIGTERM)
        out, _ = loader.communicate(timeout=30)
        loads += [float(x) * 1000 for x in out.decode().split()]
    return idle, busy, loads


def measure(url: str, runs: int, chats: int, slots: list[int]) -> None:
    from tests.upstream.deepseek import SimulatedDeepSeek

    db_url = server_url(url, NAME)
    asyncio.run(migrate_timed(db_url))
    asyncio.run(seed_keys(db_url))
    upstream = SimulatedDeepSeek()
    upstream.start()
    try:
        for index, report_slots in enumerate(slots):
            with tempfile.TemporaryDirectory() as tmp:
                proc, gateway = start_gateway(db_url, Path(tmp), upstream, report_slots)
                try:
                    if index == 0:
                        with httpx.Client(base_url=gateway, timeout=120, headers={
                                "authorization": f"Bearer {MASTER}"}) as client:
                            made = client.post("/admin/keys", json={
                                "name": "bench viewer", "team": "team-1", "role": "viewer"})
                            assert made.status_code == 201, made.text
                            time_reports(client, made.json()["key"], runs)
                    idle, busy, loads = chats_under_page_loads(gateway, chats)
                    log(f"report_slots={report_slots}: chat p99 idle {p99(idle):.1f} ms "
                        f"(median {statistics.median(idle):.1f}); with 10 clients loading the "
                        f"90-day /ui: p99 {p99(busy):.1f} ms (median "
                        f"{statistics.median(busy):.1f}); delta p99 "
                        f"{p99(busy) - p99(idle):+.1f} ms; page loads meanwhile: {len(loads)}, "
                        f"median {statistics.median(loads):.0f} ms, max {max(loads):.0f} ms")
                finally:
                    stop_gateway(proc)
    finally:
        upstream.stop()
    asyncio.run(explain(db_url))
    asyncio.run(writer_rate(db_url))


async def migrate_timed(db_url: str) -> None:
    """`gateway migrate` (a database generated before revision 0007 gets usage_daily here)."""
    engine = create_engine(async_url(db_url, "unused"))
    try:
        started = time.perf_counter()
        done = await migrate.upgrade(engine)
        log(f"migrate: {done} in {time.perf_counter() - started:.1f} s")
    finally:
        await engine.dispose()


async def explain(db_url: str) -> None:
    """EXPLAIN ANALYZE of the report query as the gateway sends it (group_by key, 90 days)."""
    from sqlalchemy.dialects import postgresql

    from gateway.db import queries

    engine = create_engine(async_url(db_url, "unused"))
    try:
        async with engine.connect() as conn:
            now = datetime.now(UTC)
            for group in ("key", "day"):
                query = queries.report_query("postgresql", group, now - timedelta(days=90), now)
                sql = str(query.compile(dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
                                        compile_kwargs={"literal_binds": True}))
                raw = await conn.get_raw_connection()
                plan = await raw.driver_connection.fetch(  # type: ignore[union-attr]
                    "EXPLAIN (ANALYZE, BUFFERS) " + sql)
                log(f"EXPLAIN ANALYZE report group_by={group}, 90 days:\n" + "\n".join(
                    "    " + r[0] for r in plan))
    finally:
        await engine.dispose()


async def writer_rate(db_url: str, rows: int = 100_000) -> None:
    """The metering writer into the 20M-row table (bench/writer.py's loop, rollups on)."""
    from bench.writer import drive
    from gateway.db.store import UsageStore
    from gateway.metering.spool import Spool
    from gateway.metering.writer import MeteringWriter

    with tempfile.TemporaryDirectory() as spool_dir:
        writer = MeteringWriter(UsageStore(async_url(db_url, "unused")), Spool(spool_dir),
                                PriceBook.load(), flush_interval=0.05, queue_size=200_000)
        elapsed = await drive(writer, rows)
        await writer.close()
    log(f"writer into the big table, rollups on: {rows:,} rows in {elapsed:.1f} s = "
        f"{rows / elapsed:,.0f} rows/s")


async def drop(url: str) -> None:
    admin = await asyncpg.connect(url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
    await admin.close()
    log(f"dropped {NAME}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("generate", "measure", "drop"))
    parser.add_argument("--url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--chats", type=int, default=300)
    parser.add_argument("--slots", default="1,2",
                        help="metering.report_slots settings, each its own loaded run")
    args = parser.parse_args()
    if args.command == "generate":
        asyncio.run(generate(args.url, args.rows, args.days))
    elif args.command == "measure":
        measure(args.url, args.runs, args.chats, [int(n) for n in args.slots.split(",")])
    else:
        asyncio.run(drop(args.url))


if __name__ == "__main__":
    main()
