"""Retention deletes raw rows older than the cut-off, in batches, and nothing else: the
rollups (and so every report) stay as they were. SQLite and real Postgres."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime
from pathlib import Path

from gateway.db.store import UsageStore
from gateway.metering.retention import cutoff, prune_raw_rows
from gateway.metering.rollups import rebuild_rollups
from gateway.metering.rows import build_row
from gateway.usage import UsageEvent
from tests.db import pg
from tests.metering.rollup_oracle import fetch
from tests.metering.test_rollups import PRICES, database, random_event, writer_for

pg_database = pg.pg_database
__all__ = ["database"]  # the fixture
_ROLLUPS = ("SELECT * FROM usage_hourly ORDER BY hour, key_id, team, model, provider, api, "
            "thinking, status")


def old_event(rng: random.Random, i: int, now: float) -> UsageEvent:
    """Spread over the last ten days."""
    event = random_event(rng, i, now)
    event.started_at = now - rng.uniform(0, 10 * 86400)
    return event


def test_the_cutoff_is_a_whole_hour_and_zero_days_keeps_everything() -> None:
    now = datetime(2026, 12, 7, 10, 42, 5, tzinfo=UTC)
    assert cutoff(3, now) == datetime(2026, 12, 4, 10, tzinfo=UTC)
    assert cutoff(0, now) is None


async def test_pruning_deletes_old_raw_rows_in_batches_and_keeps_the_rollups(
        database: tuple[str, Path | str]) -> None:
    url, where = database
    rng = random.Random(9)
    now = time.time()
    rows = [build_row(old_event(rng, i, now), PRICES) for i in range(400)]
    store = UsageStore(url)
    try:
        await store.insert(rows, PRICES)
        rollups = fetch(where, _ROLLUPS)
        before = cutoff(3)
        assert before is not None
        old = sum(1 for r in rows if r["ts"] < before)
        assert 0 < old < 400
        assert await prune_raw_rows(store.engine, before, batch=17, pause=0) == old
        left = fetch(where, "SELECT ts FROM usage")
        assert len(left) == 400 - old
        assert fetch(where, _ROLLUPS) == rollups  # reports still see all 400
        # a rebuild after pruning leaves the pruned hours' rollups alone
        await rebuild_rollups(store.engine, PRICES)
        assert fetch(where, "SELECT sum(requests) AS n FROM usage_hourly")[0]["n"] == 400
        assert await prune_raw_rows(store.engine, before, batch=17, pause=0) == 0
    finally:
        await store.close()


async def test_the_writer_prunes_in_the_background(
        database: tuple[str, Path | str], tmp_path: Path) -> None:
    url, where = database
    rng = random.Random(10)
    now = time.time()
    events = [old_event(rng, i, now) for i in range(200)]
    writer, _ = writer_for(url, tmp_path, retention_days=3, prune_interval=0.05)
    await writer.start()
    for event in events:
        writer.record(event)
    assert await writer.flush()
    cut = cutoff(3)
    assert cut is not None
    recent = sum(1 for e in events if datetime.fromtimestamp(e.started_at, UTC) >= cut)
    assert 0 < recent < 200
    deadline = time.monotonic() + 10
    while fetch(where, "SELECT count(*) AS n FROM usage")[0]["n"] > recent:
        assert time.monotonic() < deadline, "the writer did not prune"
        await asyncio.sleep(0.05)
    await writer.close()
    assert fetch(where, "SELECT count(*) AS n FROM usage")[0]["n"] == recent
    assert fetch(where, "SELECT sum(requests) AS n FROM usage_hourly")[0]["n"] == 200
