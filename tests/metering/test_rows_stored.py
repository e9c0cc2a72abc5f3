"""What the writer's batch insert stores is exactly the row it was given, on SQLite and on real
Postgres (where the batch travels as one JSON array): awkward strings, exact floats, microsecond
timestamps, NULLs, and rows spooled by older versions that lack the newer columns."""

from __future__ import annotations

import os
import time
from typing import Any

from sqlalchemy import select

from gateway.db.store import UsageStore
from gateway.db.tables import COLUMNS, usage
from gateway.metering.prices import PriceBook
from gateway.metering.rows import build_row, row_id
from gateway.usage import Usage, UsageEvent
from tests.db import pg
from tests.metering import test_rollups

pg_database = pg.pg_database
database = test_rollups.database  # SQLite and Postgres, emptied for each test
PRICES = PriceBook.load()
AWKWARD = 'quote " backslash \\ tab \t newline \n emoji \U0001f600 accents éß 中文 </script>'


def awkward_event(i: int, **extra: Any) -> UsageEvent:
    return UsageEvent(
        request_id=f"req-{i}-{AWKWARD}"[:100], requested_model=AWKWARD[:60],
        model="deepseek-v4-flash", thinking="high", stream=bool(i % 2), status="ok",
        provider="openrouter", upstream_model="deepseek/deepseek-v4-flash",
        attempts=[("ollama", "503"), ("openrouter", "200")],
        usage=Usage(prompt_tokens=2_000_000_000, completion_tokens=7, cache_hit_tokens=3,
                    cache_miss_tokens=1_999_999_997, reasoning_tokens=5,
                    provider_cost_usd=0.1 + 0.2),
        key_id="k1", team=AWKWARD[:40], client_user=AWKWARD,
        started_at=1_767_225_600.123456 + i, latency_s=1 / 3, ttft_s=None, **extra)


async def stored_rows(url: str) -> list[dict[str, Any]]:
    store = UsageStore(url)
    try:
        async with store.engine.connect() as conn:
            result = await conn.execute(select(usage).order_by(usage.c.ts))
            return [dict(row._mapping) for row in result]
    finally:
        await store.close()


async def test_a_batch_comes_back_exactly_as_built(database: tuple[str, Any]) -> None:
    url, _ = database
    rows = [build_row(awkward_event(i), PRICES) for i in range(5)]
    store = UsageStore(url)
    try:
        assert await store.insert(rows, PRICES) == 5
    finally:
        await store.close()
    back = await stored_rows(url)
    assert len(back) == 5
    for sent, got in zip(rows, back, strict=True):
        for column in COLUMNS:
            if column == "ts":  # SQLite hands timestamps back naive (they are UTC)
                assert got["ts"].replace(tzinfo=None) == sent["ts"].replace(tzinfo=None)
            else:
                assert got[column] == sent[column], column


async def test_rows_from_before_the_newer_columns_get_their_defaults(
        database: tuple[str, Any]) -> None:
    url, _ = database
    old = build_row(awkward_event(1), PRICES)
    for column in ("api", "estimated", "reasoning_tokens", "book_cost_usd", "ttft_ms"):
        del old[column]
    new = build_row(awkward_event(2, api="anthropic.messages"), PRICES)
    store = UsageStore(url)
    try:
        assert await store.insert([old, new], PRICES) == 2
    finally:
        await store.close()
    first, second = await stored_rows(url)
    assert (first["api"], first["estimated"], first["reasoning_tokens"]) == (
        "openai.chat", False, 0)
    assert first["book_cost_usd"] is None and first["ttft_ms"] is None
    assert (second["api"], second["reasoning_tokens"]) == ("anthropic.messages", 5)


def test_row_ids_grow_with_time_and_never_repeat() -> None:
    now = time.time()
    ids = [row_id(now + i / 1000) for i in range(2000)]
    assert len(set(ids)) == 2000 and all(len(i) == 32 for i in ids)
    assert ids == sorted(ids)  # one a millisecond apart: strictly in time order
    same_ms = {row_id(now) for _ in range(1000)}
    assert len(same_ms) == 1000  # 80 random bits tell calls of one millisecond apart
    assert row_id(1_700_000_000.123).startswith(f"{1_700_000_000_123:012x}")
    assert all(int(i, 16) for i in same_ms)  # hex digits only


def test_a_forked_worker_mints_other_ids_than_its_parent() -> None:
    """Workers are forked: a child repeating its parent's random bits would mint the same ids,
    and the insert's ON CONFLICT DO NOTHING would silently drop one of the two rows."""
    now = time.time()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.write(write, "".join(row_id(now) for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read, "rb") as pipe:
        text = pipe.read().decode()
    theirs = {text[i:i + 32] for i in range(0, len(text), 32)}
    ours = {row_id(now) for _ in range(50)}
    assert len(theirs) == 50 and not theirs & ours
