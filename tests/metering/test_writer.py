"""The writer's promises, on a SQLite file: never blocks, spills instead of dropping, replays
in order after an outage, stores each row once, adopts spools left by dead processes."""

from __future__ import annotations

import asyncio
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
from tests.stubborn import drops_one_cancel

PRICES = PriceBook.load()


def event(i: int) -> UsageEvent:
    return UsageEvent(request_id=f"req-{i}", requested_model="deepseek-chat",
                      model="deepseek-v4-flash", thinking="off", stream=False, status="ok",
                      provider="deepseek", usage=Usage(prompt_tokens=10, completion_tokens=i))


class FlakyStore(UsageStore):
    """A real SQLite store whose inserts fail while `down` is set."""

    down = False

    async def insert(self, rows: Sequence[dict[str, Any]],
                     prices: PriceBook | None = None) -> int:
        if self.down:
            raise ConnectionRefusedError("database down")
        return await super().insert(rows, prices)


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


def refused(i: int, **extra: Any) -> UsageEvent:
    """A refusal before the model was known, as the pipeline records it (plus whatever a bug
    might leave on it: build_row stores a refusal as one whatever the event carries)."""
    fields: dict[str, Any] = {
        "request_id": f"req-{i}", "requested_model": "", "model": "", "thinking": "off",
        "stream": False, "status": "refused", "error_type": "invalid_api_key",
        "api": "anthropic.messages", **extra}
    return UsageEvent(**fields)


def test_a_refusal_row_has_no_provider_no_tokens_and_no_cost() -> None:
    row = build_row(refused(1, provider="deepseek", upstream_model="deepseek-v4-flash",
                            usage=Usage(prompt_tokens=10, completion_tokens=3,
                                        provider_cost_usd=0.5),
                            cost_usd=0.75, ttft_s=0.1, latency_s=0.0025), PRICES)
    assert (row["status"], row["error_type"], row["api"]) == (
        "refused", "invalid_api_key", "anthropic.messages")
    assert (row["model"], row["requested_model"]) == ("", "")  # NOT NULL columns: ""
    assert row["provider"] is None and row["upstream_model"] is None
    assert all(row[c] == 0 for c in ("prompt_tokens", "cache_hit_tokens", "cache_miss_tokens",
                                     "completion_tokens", "reasoning_tokens"))
    assert row["cost_usd"] == 0.0 and row["provider_cost_usd"] is None
    assert row["peak"] is False and row["estimated"] is False and row["ttft_ms"] is None
    assert row["latency_ms"] == 2.5  # how long refusing took


def test_rows_carry_the_api_clipped_to_its_column() -> None:
    assert build_row(event(1), PRICES)["api"] == "openai.chat"  # the event's default
    long = event(2)
    long.api = "x" * 40 + "\x00"
    assert build_row(long, PRICES)["api"] == "x" * 32


async def test_refusals_and_other_apis_are_stored(tmp_path: Path) -> None:
    writer, _ = make(tmp_path)
    await writer.start()
    served = event(1)
    served.api = "anthropic.messages"
    writer.record(served)
    writer.record(refused(2))
    writer.record(event(3))
    assert await writer.flush()
    await writer.close()
    with sqlite3.connect(tmp_path / "usage.db") as db:
        rows = db.execute("SELECT request_id, api, status, error_type, model, requested_model,"
                          " provider, prompt_tokens, cost_usd FROM usage ORDER BY rowid"
                          ).fetchall()
    assert rows[0][:3] == ("req-1", "anthropic.messages", "ok") and rows[0][7] == 10
    assert rows[1] == ("req-2", "anthropic.messages", "refused", "invalid_api_key", "", "",
                       None, 0, 0.0)
    assert rows[2][:3] == ("req-3", "openai.chat", "ok")


async def test_rows_spooled_before_the_api_column_replay_as_openai_chat(
    tmp_path: Path,
) -> None:
    """A gateway upgraded with rows still in its spool: those rows have no `api` (they were
    all OpenAI Chat calls); replayed in one batch with new rows, every row is stored."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    old = []
    for i in range(3):
        row = build_row(event(i), PRICES)
        del row["api"]
        old.append(row)
    new = build_row(event(3), PRICES)
    new["api"] = "anthropic.messages"
    lines = b"".join(orjson.dumps(r) + b"\n" for r in [*old, new])
    (spool_dir / "usage-999999.jsonl").write_bytes(lines)  # a dead worker's spool
    writer, _ = make(tmp_path)
    await writer.start()
    assert await writer.flush()
    await writer.close()
    with sqlite3.connect(tmp_path / "usage.db") as db:
        stored_apis = db.execute("SELECT request_id, api FROM usage ORDER BY request_id"
                                 ).fetchall()
    assert stored_apis == [("req-0", "openai.chat"), ("req-1", "openai.chat"),
                           ("req-2", "openai.chat"), ("req-3", "anthropic.messages")]
    assert writer.rows_rejected == 0


async def test_rows_that_trickle_in_are_batched_without_a_wake_up_per_row(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The writer waits once per batch, not once per row (each wait was a task and a timer),
    and still flushes a batch early when it is full."""
    import asyncio

    import gateway.metering.writer as writer_module

    waits: list[float] = []
    wait_for = asyncio.wait_for

    async def counted(awaitable: Any, timeout: float | None) -> Any:  # noqa: ASYNC109
        waits.append(timeout or 0.0)
        return await wait_for(awaitable, timeout)

    monkeypatch.setattr(writer_module.asyncio, "wait_for", counted)
    writer, store = make(tmp_path, flush_interval=0.3, batch_size=10)
    batches: list[int] = []
    waits_before_insert: list[int] = []
    insert = store.insert

    inserted_at: list[float] = []

    async def recorded(rows: Sequence[dict[str, Any]], prices: PriceBook | None = None) -> int:
        batches.append(len(rows))
        waits_before_insert.append(waits.count(0.3))
        inserted_at.append(asyncio.get_running_loop().time())
        return await insert(rows, prices)

    monkeypatch.setattr(store, "insert", recorded)
    await writer.start()
    waits.clear()
    for i in range(6):  # a row every 10 ms: one batch, one wait for its first row
        writer.record(event(i))
        await asyncio.sleep(0.01)
    assert await writer.flush(within=5)
    assert batches == [6]
    # the wait for the first row and the next batch's first row, not one per row
    assert waits_before_insert[0] <= 2
    started = asyncio.get_running_loop().time()
    for i in range(6, 16):  # a full batch goes at once, not after the interval
        writer.record(event(i))
    assert await writer.flush(within=5)
    assert batches[1] == 10 and inserted_at[1] - started < 0.25
    await writer.close()
    assert sorted(r[1] for r in stored(tmp_path)) == list(range(16))


class HungStore(FlakyStore):
    """A database that never answers an insert; with `stubborn`, the insert also loses its
    first cancel (what wait_for can make it do on Python 3.11)."""

    stubborn = False

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.inserting = asyncio.Event()

    async def insert(self, rows: Sequence[dict[str, Any]],
                     prices: PriceBook | None = None) -> int:
        self.inserting.set()
        if self.stubborn:
            await drops_one_cancel()
        await asyncio.Event().wait()
        return 0


async def close_with_a_batch_in_flight(tmp_path: Path, stubborn: bool) -> MeteringWriter:
    """Five rows in an insert that hangs, then close() with a short drain time."""
    store = HungStore(async_url(None, tmp_path / "usage.db"))
    store.stubborn = stubborn
    writer = MeteringWriter(store, Spool(tmp_path / "spool"), PRICES, flush_interval=0.01,
                            insert_timeout=60)
    await writer.start()
    for i in range(5):
        writer.record(event(i))
    async with asyncio.timeout(30):
        await store.inserting.wait()
    async with asyncio.timeout(30):  # far beyond what close() may take
        await writer.close(drain_seconds=0.2)
    return writer


async def test_close_after_the_drain_time_spools_the_batch_cut_short(tmp_path: Path) -> None:
    """The insert in flight when the drain time runs out is cancelled with the writer (which
    awaits it): its rows go to the spool (if they did commit, their ids dedupe), not nowhere."""
    writer = await close_with_a_batch_in_flight(tmp_path, stubborn=False)
    assert writer.spooled_rows == 5


async def test_close_after_the_drain_time_ends_when_the_insert_loses_a_cancel(
    tmp_path: Path
) -> None:
    """Cancelled once, the writer (through the insert it awaits) went on: close() waited
    forever."""
    writer = await close_with_a_batch_in_flight(tmp_path, stubborn=True)
    assert writer.spooled_rows == 5


async def test_close_ends_when_a_helper_task_loses_its_first_cancel(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The retention pruner (or the rollup backfill), cancelled once and awaited: one that
    lost that cancel kept close(), and the gateway's shutdown, waiting forever."""
    import gateway.metering.writer as writer_module

    running = asyncio.Event()

    async def retention(*_: object) -> None:
        running.set()
        await drops_one_cancel()

    monkeypatch.setattr(writer_module, "run_retention", retention)
    writer, _ = make(tmp_path, retention_days=30)
    await writer.start()
    writer.record(event(1))
    async with asyncio.timeout(30):
        await running.wait()
    async with asyncio.timeout(30):  # far beyond stop()'s 5 s
        await writer.close()
    assert [r[1] for r in stored(tmp_path)] == [1]
