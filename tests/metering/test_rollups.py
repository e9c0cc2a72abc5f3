"""The hourly rollups equal a GROUP BY over the raw rows, on SQLite and on real Postgres:
after random inserts through the writer, after an outage's spool is replayed (also rows the
database had already committed), after the same batch is stored twice, and after a rebuild."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from gateway.cli import cli
from gateway.db import migrate
from gateway.db.engine import async_url, create_engine
from gateway.db.queries import ceil_hour, floor_hour, latency_rows
from gateway.db.store import UsageStore
from gateway.db.tables import LATENCY_DIMENSIONS, usage
from gateway.metering.buckets import bucket_of
from gateway.metering.prices import PriceBook
from gateway.metering.rollups import aggregate, rebuild_rollups
from gateway.metering.rows import build_row
from gateway.metering.spool import Spool
from gateway.metering.writer import MeteringWriter
from gateway.usage import Usage, UsageEvent
from tests.db import pg
from tests.metering.rollup_oracle import assert_rollups_match, fetch
from tests.metering.test_writer import FlakyStore

pg_database = pg.pg_database
PRICES = PriceBook.load()
_DAY = timedelta(days=1)
PROVIDERS = ("deepseek", "openrouter", "ollama")


def random_event(rng: random.Random, i: int, now: float) -> UsageEvent:
    status = rng.choice(("ok", "ok", "ok", "error", "refused"))
    streamed = rng.random() < 0.5
    provider = rng.choice(PROVIDERS)
    attempts = [(p, rng.choice(("200", "429", "503"))) for p in
                rng.sample(PROVIDERS, rng.choice((1, 1, 2, 3)))]
    hit = rng.randrange(0, 5000)
    return UsageEvent(
        request_id=f"r{i}", requested_model="deepseek-chat",
        model=rng.choice(("deepseek-v4-flash", "deepseek-v4-pro")),
        thinking=rng.choice(("off", "high", "")), stream=streamed, status=status,
        provider=provider, attempts=attempts,
        usage=Usage(prompt_tokens=hit + 300, completion_tokens=rng.randrange(1, 900),
                    cache_hit_tokens=hit, cache_miss_tokens=300,
                    reasoning_tokens=rng.randrange(0, 50),
                    provider_cost_usd=0.001 if provider == "openrouter" else None),
        key_id=rng.choice((None, "k1", "k2", "k3")), team=rng.choice((None, "red", "blue")),
        started_at=now - rng.uniform(0, 3 * 86400),  # across hours, days and peak windows
        latency_s=rng.uniform(0.0005, 40.0), ttft_s=rng.uniform(0.01, 3) if streamed else None,
        api=rng.choice(("openai.chat", "anthropic.messages", "ollama.chat")),
    )


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path | str]]:
    """(async URL for the store, where the oracle reads: a SQLite path or a Postgres URL)."""
    if request.param == "sqlite":
        yield async_url(None, tmp_path / "usage.db"), tmp_path / "usage.db"
        return
    _, url = request.getfixturevalue("pg_database")
    pg.query(url, pg.EMPTY_USAGE)
    yield async_url(url, "unused"), url


def writer_for(url: str, tmp_path: Path, **kwargs: Any) -> tuple[MeteringWriter, FlakyStore]:
    store = FlakyStore(url)
    options = {"flush_interval": 0.01, "retry_max": 0.05, "batch_size": 37, **kwargs}
    return MeteringWriter(store, Spool(tmp_path / "spool"), PRICES, **options), store


async def test_random_inserts_then_an_outage_and_its_replay_count_each_row_once(
        database: tuple[str, Path | str], tmp_path: Path) -> None:
    url, where = database
    rng = random.Random(14)
    now = time.time()
    writer, store = writer_for(url, tmp_path)
    await writer.start()
    for i in range(400):
        writer.record(random_event(rng, i, now))
    assert await writer.flush()
    store.down = True  # an outage: rows go to the spool
    for i in range(400, 700):
        writer.record(random_event(rng, i, now))
    await writer.close()
    assert writer.spooled_rows == 300
    writer, store = writer_for(url, tmp_path)  # a restart replays the spool
    await writer.start()
    assert await writer.flush()
    await writer.close()
    assert assert_rollups_match(where, PRICES) == 700
    assert fetch(where, "SELECT sum(requests) AS n FROM usage_hourly")[0]["n"] == 700


async def test_a_batch_stored_again_adds_nothing(
        database: tuple[str, Path | str], tmp_path: Path) -> None:
    """What a replay after a timed-out (but committed) insert does: the same ids again, mixed
    with new ones and with a duplicate inside the batch."""
    url, where = database
    rng = random.Random(7)
    now = time.time()
    rows = [build_row(random_event(rng, i, now), PRICES) for i in range(120)]
    store = UsageStore(url)
    try:
        assert await store.insert(rows[:80], PRICES) == 80
        assert await store.insert(rows[40:] + rows[100:101], PRICES) == 40
        assert await store.insert(rows, PRICES) == 0
    finally:
        await store.close()
    assert assert_rollups_match(where, PRICES) == 120


async def test_a_rebuild_recomputes_the_same_rollups_and_keeps_pruned_hours(
        database: tuple[str, Path | str], tmp_path: Path) -> None:
    url, where = database
    rng = random.Random(3)
    now = time.time()
    rows = [build_row(random_event(rng, i, now), PRICES) for i in range(300)]
    store = UsageStore(url)
    try:
        await store.insert(rows, PRICES)
        before = fetch(where, "SELECT * FROM usage_hourly ORDER BY hour, key_id, team, model, "
                              "provider, api, thinking, status")
        # Damage the rollups, then rebuild: same tables as the writer's, twice over.
        await _execute(store, "UPDATE usage_hourly SET requests = requests + 5")
        await _execute(store, "DELETE FROM usage_latency_hourly WHERE metric = 'ttft'")
        written = await rebuild_rollups(store.engine, PRICES)
        assert written == len(before)
        assert await rebuild_rollups(store.engine, PRICES) == written
        assert_rollups_match(where, PRICES)
        # Rollups of hours whose raw rows are gone (retention) survive a rebuild.
        oldest = min(r["ts"] for r in rows)
        await _execute(store, "DELETE FROM usage WHERE ts < :cut",
                       cut=oldest.replace(minute=0, second=0, microsecond=0) + _DAY)
        await rebuild_rollups(store.engine, PRICES)
        after = fetch(where, "SELECT sum(requests) AS n FROM usage_hourly")[0]["n"]
        assert after == 300
    finally:
        await store.close()


async def _execute(store: UsageStore, sql: str, **params: Any) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(text(sql), params)


async def test_migrate_backfills_the_rollups_of_a_database_from_before_them(
        tmp_path: Path) -> None:
    """A database at revision 0005 with usage rows: `gateway migrate` upgrades it and fills
    the rollups from those rows; `gateway rollup rebuild` recomputes the same."""
    path = tmp_path / "old.db"
    engine = create_engine(async_url(None, path))
    rng = random.Random(5)
    rows = [build_row(random_event(rng, i, time.time()), PRICES) for i in range(150)]
    try:
        await migrate.upgrade(engine, "0005_usage_book_cost")
        async with engine.begin() as conn:
            await conn.execute(usage.insert(), rows)
    finally:
        await engine.dispose()
    env = {"DATABASE_URL": f"sqlite:///{path}", "GATEWAY_MASTER_KEY": None}
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["migrate"], env=env)
    assert result.exit_code == 0, result.output
    assert "backfilled" in result.output
    assert assert_rollups_match(path, PRICES) == 150
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["rollup", "rebuild"], env=env)
    assert result.exit_code == 0 and "rollups rebuilt" in result.output, result.output
    assert assert_rollups_match(path, PRICES) == 150
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["migrate"], env=env)
    assert "backfilled" not in result.output  # only once


async def test_reports_over_any_range_equal_the_raw_rows_in_it(
        database: tuple[str, Path | str]) -> None:
    """Whole days come from usage_daily and the edge hours from usage_hourly: for ranges that
    start and end anywhere (mid-hour, mid-day, open-ended), the report equals the raw rows
    between the range's hours."""
    url, _ = database
    rng = random.Random(11)
    now = time.time()
    rows = [build_row(random_event(rng, i, now), PRICES) for i in range(500)]
    store = UsageStore(url)
    try:
        await store.insert(rows, PRICES)
        newest = max(r["ts"] for r in rows)
        for _ in range(12):
            start = newest - timedelta(seconds=rng.uniform(0, 4 * 86400))
            end = start + timedelta(seconds=rng.uniform(0, 3 * 86400))
            for low, high in ((start, end), (None, end), (start, None)):
                got = {r["key"]: (r["requests"], r["cost_usd"]) for r in await store.report(
                    "key", low, high)}
                want: dict[str | None, tuple[int, float]] = {}
                for row in rows:
                    if (low is None or row["ts"] >= floor_hour(low)) and (
                            high is None or row["ts"] < ceil_hour(high)):
                        n, cost = want.get(row["key_id"], (0, 0.0))
                        want[row["key_id"]] = (n + 1, cost + row["cost_usd"])
                assert got.keys() == want.keys(), (low, high)
                for key, (n, cost) in want.items():
                    assert got[key][0] == n and got[key][1] == pytest.approx(cost), (low, high)
                histogram = latency_rows(store.dialect, low, high)
                async with store.engine.connect() as conn:
                    counted = await conn.scalar(select(func.sum(histogram.c.count)).where(
                        histogram.c.metric == "latency"))
                assert (counted or 0) == sum(n for n, _ in want.values()), (low, high)
    finally:
        await store.close()


def test_aggregate_puts_each_latency_in_the_bucket_bucket_of_gives() -> None:
    """`aggregate` computes the buckets inline: edges, sub-millisecond, huge and NaN values
    land where gateway.metering.buckets.bucket_of puts them."""
    rng = random.Random(21)
    now = time.time()
    values = [0.0, 0.2, 0.999, 1.0, 1.25, 1.2499999, 1.5625, 7.0, 250.0, 4e6, 1e9,
              float("nan"), *(rng.uniform(0, 5000) for _ in range(200))]
    rows = []
    for i, ms in enumerate(values):
        row = build_row(random_event(rng, i, now), PRICES)
        row["latency_ms"], row["ttft_ms"] = ms, values[-1 - i]
        rows.append(row)
    latency = aggregate(rows, PRICES).latency
    want: dict[tuple[str, int], int] = {}
    for row in rows:
        for metric, ms in (("latency", row["latency_ms"]), ("ttft", row["ttft_ms"])):
            want[metric, bucket_of(ms)] = want.get((metric, bucket_of(ms)), 0) + 1
    got: dict[tuple[str, int], int] = {}
    for key, count in latency.items():
        got[key[5], key[6]] = got.get((key[5], key[6]), 0) + count
    assert got == want


def test_the_postgres_payload_holds_the_rows_sqlite_upserts() -> None:
    """The arrays sent to Postgres (hourly, daily, latency hourly) are the dict rows the
    SQLite path upserts, column for column."""
    rng = random.Random(22)
    now = time.time()
    rollup = aggregate([build_row(random_event(rng, i, now), PRICES) for i in range(400)],
                       PRICES)
    hourly, daily, latency = rollup.payload()
    as_arrays = [[list(row.values()) for row in rows] for rows in (
        rollup.hourly_rows(), rollup.daily_rows())]
    as_arrays.append([[row["hour"], *(row[name] for name in LATENCY_DIMENSIONS), row["count"]]
                      for row in rollup.latency_rows()])
    assert sorted(map(repr, hourly)) == sorted(map(repr, as_arrays[0]))
    assert sorted(map(repr, daily)) == sorted(map(repr, as_arrays[1]))
    assert sorted(map(repr, latency)) == sorted(map(repr, as_arrays[2]))
    assert len({tuple(r[:8]) for r in daily}) == len(daily) > 3  # several days, no key twice


async def test_concurrent_writers_touching_the_same_rollup_rows_count_each_row_once(
        database: tuple[str, Path | str]) -> None:
    """Two stores upserting batches with the same keys at once (two gateway processes): each
    writer's rows go in key order, so neither deadlocks, and every row counts once."""
    url, where = database
    rng = random.Random(23)
    now = time.time()
    rows = [build_row(random_event(rng, i, now), PRICES) for i in range(600)]
    stores = [UsageStore(url), UsageStore(url)]
    try:
        await stores[0].prepare()

        async def write(store: UsageStore, part: list[dict[str, Any]]) -> None:
            for start in range(0, len(part), 50):
                await store.insert(part[start:start + 50], PRICES)

        await asyncio.gather(write(stores[0], rows[:300]), write(stores[1], rows[300:][::-1]))
    finally:
        for store in stores:
            await store.close()
    assert assert_rollups_match(where, PRICES) == 600
