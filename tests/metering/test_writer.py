"""The writer's promises, on a SQLite file: never blocks, spills instead of dropping, replays
in order after an outage, stores each row once, adopts spools left by dead processes."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from gateway.db.engine import async_url
from gateway.db.store import UsageStore
from gateway.metering.prices import PriceBook
from gateway.metering.rows import build_row
from gateway.metering.spool import Spool
from gateway.metering.writer import MeteringWriter
from gateway.usage import Usage, UsageEvent

PRICES = PriceBook.load()


def event(i: int) -> UsageEvent:
    return UsageEvent(request_id=f"req-{i}", requested_model="deepseek-chat",
                      model="deepseek-v4-flash", thinking="off", stream=False, status="ok",
                      provider="deepseek", usage=Usage(prompt_tokens=10, completion_tokens=i))


class FlakyStore(UsageStore):
    """A real SQLite store whose inserts fail while `down` is set."""

    down = False

    async def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        if self.down:
            raise ConnectionRefusedError("database down")
        await super().insert(rows)


def make(tmp_path: Path, **kwargs: Any) -> tuple[MeteringWriter, FlakyStore]:
    store = FlakyStore(async_url(None, tmp_path / "usage.db"))
    options = {"flush_interval": 0.01, "retry_max": 0.05, **kwargs}
    return MeteringWriter(store, Spool(tmp_path / "spool"), PRICES, **options), store


def stored(tmp_path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(tmp_path / "usage.db") as db:
        return db.execute(
            "SELECT request_id, completion_tokens FROM usage ORDER BY rowid").fetchall()


async def test_a_full_queue_spills_and_every_row_arrives_once(tmp_path: Path) -> None:
    writer, _ = make(tmp_path, queue_size=5, batch_size=50)
    await writer.start()
    for i in range(300):  # no await in between: the queue fills at once
        writer.record(event(i))
    assert writer.queue_depth == 5 and writer.spooled_rows == 295
    assert await writer.flush(within=10)
    await writer.close()
    rows = stored(tmp_path)
    assert sorted(r[1] for r in rows) == list(range(300))


async def test_an_outage_spools_in_order_and_replays_in_order(tmp_path: Path) -> None:
    writer, store = make(tmp_path, batch_size=10)
    await writer.start()
    for i in range(20):
        writer.record(event(i))
    assert await writer.flush()
    store.down = True
    for i in range(20, 80):
        writer.record(event(i))
    while writer.spooled_rows < 60:
        await writer.flush(within=0.05)
    assert not writer.database_up
    store.down = False
    for i in range(80, 100):
        writer.record(event(i))
    assert await writer.flush()
    await writer.close()
    assert [r[1] for r in stored(tmp_path)] == list(range(100))
    assert not list((tmp_path / "spool").glob("*.jsonl"))


async def test_closing_drains_the_queue_and_spools_when_the_database_is_down(
    tmp_path: Path,
) -> None:
    writer, store = make(tmp_path, flush_interval=5)
    await writer.start()
    for i in range(10):
        writer.record(event(i))
    await writer.close()
    assert len(stored(tmp_path)) == 10
    writer, store = make(tmp_path)
    await writer.start()
    store.down = True
    for i in range(10, 15):
        writer.record(event(i))
    await writer.close()
    writer.record(event(15))  # after close: straight to the spool, never lost
    assert writer.spooled_rows == 6


async def test_a_restart_adopts_the_spool_and_a_replay_stores_nothing_twice(
    tmp_path: Path,
) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    rows = [build_row(event(i), PRICES) for i in range(30)]
    lines = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    (spool_dir / "usage-999999.jsonl").write_bytes(lines)  # a dead worker's spool
    (spool_dir / "replay-999998-000001.jsonl").write_bytes(lines[: len(lines) // 2])
    writer, _ = make(tmp_path)
    await writer.start()
    assert writer.spooled_rows > 30
    assert await writer.flush()
    await writer.close()
    assert sorted(r[1] for r in stored(tmp_path)) == list(range(30))
