"""Stored responses in real databases (SQLite and Postgres): ownership, expiry and pruning,
writes in the background that reads wait for, and migration 0004 both ways."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from gateway.db import migrate
from gateway.db.engine import async_url, create_engine
from gateway.db.store import UsageStore
from gateway.surfaces.openai_responses.store import Pruner, ResponseStore, StoredResponse
from tests.db import pg
from tests.stubborn import drops_one_cancel

pg_database = pg.pg_database

START = datetime(2026, 12, 1, 12, tzinfo=UTC)
TTL = timedelta(days=30)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def _response(response_id: str, text: str = "hi") -> dict[str, Any]:
    return {"id": response_id, "object": "response", "status": "completed",
            "model": "deepseek-v4-flash",
            "output": [{"type": "message", "id": "msg_o", "role": "assistant",
                        "content": [{"type": "output_text", "text": text}]}]}


def _row(response_id: str, owner: str | None, created: datetime = START) -> StoredResponse:
    return StoredResponse(response_id, owner, created, created + TTL, _response(response_id),
                          [{"type": "message", "id": "msg_in", "role": "user",
                            "content": [{"type": "input_text", "text": "q"}]}],
                          [{"type": "message", "id": "msg_old", "role": "user",
                            "content": [{"type": "input_text", "text": "before"}]}])


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return async_url(None, tmp_path / "responses.db")
    _, url = request.getfixturevalue("pg_database")
    pg.query(url, "TRUNCATE responses")
    return async_url(url, "unused")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(database_url: str, clock: Clock) -> AsyncIterator[ResponseStore]:
    usage = UsageStore(database_url)
    yield ResponseStore(usage, TTL, clock)
    await usage.close()


async def test_a_stored_response_round_trips_for_its_owner_only(store: ResponseStore) -> None:
    await store.insert(_row("resp_a", "key_1"))
    await store.insert(_row("resp_m", None))
    found = await store.get("resp_a", "key_1")
    assert found is not None
    assert found.response == _response("resp_a") and found.owner == "key_1"
    assert found.created_at == START and found.expires_at == START + TTL
    assert [item["id"] for item in found.conversation()] == ["msg_old", "msg_in", "msg_o"]
    assert await store.get("resp_a", "key_2") is None
    assert await store.get("resp_a", None) is None  # the master key made none of key_1's
    assert (await store.get("resp_m", None)) is not None
    assert await store.get("resp_m", "key_1") is None
    assert await store.get("resp_nope", "key_1") is None


async def test_delete_is_the_owners_only(store: ResponseStore) -> None:
    await store.insert(_row("resp_a", "key_1"))
    assert await store.delete("resp_a", "key_2") is False
    assert await store.delete("resp_a", "key_1") is True
    assert await store.get("resp_a", "key_1") is None
    assert await store.delete("resp_a", "key_1") is False


async def test_expired_responses_are_invisible_then_pruned(store: ResponseStore,
                                                           clock: Clock) -> None:
    await store.insert(_row("resp_old", "k", START - timedelta(days=31)))
    await store.insert(_row("resp_new", "k"))
    assert await store.get("resp_old", "k") is None
    assert await store.get("resp_new", "k") is not None
    assert await store.prune() == 1
    assert await store.prune() == 0
    clock.now = START + TTL + timedelta(seconds=1)
    assert await store.get("resp_new", "k") is None
    assert await store.prune() == 1


async def test_keep_writes_in_the_background_and_reads_wait_for_it(
        store: ResponseStore, clock: Clock) -> None:
    store.keep(_response("resp_k"), "key_1", [{"type": "message", "id": "m"}], [])
    found = await store.get("resp_k", "key_1")  # no sleep: the read waits for the write
    assert found is not None and found.expires_at == clock.now + TTL
    store.keep(_response("resp_d"), "key_1", [], [])
    assert await store.delete("resp_d", "key_1") is True
    store.keep(_response("resp_z"), None, [], [])
    await store.drain()
    assert await store.get("resp_z", None) is not None


async def test_a_failed_write_is_logged_not_raised(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    # never migrated: the insert fails on the missing table
    usage = UsageStore(async_url(None, tmp_path / "empty.db"), auto_migrate=False)
    store = ResponseStore(usage, TTL)
    with caplog.at_level(logging.WARNING, logger="gateway.responses"):
        store.keep(_response("resp_lost"), None, [], [])
        await store.drain()
        await asyncio.sleep(0)
    assert any("resp_lost could not be stored" in r.getMessage() for r in caplog.records)
    await usage.close()


def test_keep_without_a_running_loop_stores_nothing(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    store = ResponseStore(UsageStore(async_url(None, tmp_path / "x.db")), TTL)
    with caplog.at_level(logging.WARNING, logger="gateway.responses"):
        store.keep(_response("resp_sync"), None, [], [])
    assert any("no running event loop" in r.getMessage() for r in caplog.records)


async def test_the_pruner_deletes_expired_rows_until_closed(store: ResponseStore) -> None:
    await store.insert(_row("resp_old", "k", START - timedelta(days=40)))
    pruner = Pruner(store, interval=0.01)
    pruner.start()
    for _ in range(200):
        if await store.prune() == 0 and not await _exists(store, "resp_old"):
            break
        await asyncio.sleep(0.01)
    await pruner.close()
    assert not await _exists(store, "resp_old")
    await pruner.close()  # idempotent


async def _exists(store: ResponseStore, response_id: str) -> bool:
    """Whether the row is still there, expired or not (the store's reads hide expired rows)."""
    from sqlalchemy import func, select

    from gateway.db.tables import responses

    async with store._db.engine.connect() as conn:  # a test looking inside
        count = await conn.scalar(select(func.count()).select_from(responses).where(
            responses.c.id == response_id))
    return bool(count)


def tables(connection: Any) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_migration_0004_creates_and_drops_the_table(tmp_path: Path) -> None:
    engine = create_engine(async_url(None, tmp_path / "mig.db"))
    try:
        await migrate.upgrade(engine, "0003_usage_api")
        async with engine.connect() as conn:
            assert "responses" not in await conn.run_sync(tables)
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            assert "responses" in await conn.run_sync(tables)
            indexes = await conn.run_sync(
                lambda c: [i["name"] for i in inspect(c).get_indexes("responses")])
            assert indexes == ["ix_responses_expires_at"]
        async with engine.begin() as conn:
            await conn.run_sync(
                lambda c: migrate.command.downgrade(migrate.alembic_config(c), "0003_usage_api"))
        async with engine.connect() as conn:
            assert "responses" not in await conn.run_sync(tables)
            assert "usage" in await conn.run_sync(tables)
    finally:
        await engine.dispose()


async def test_closing_the_pruner_ends_a_prune_that_lost_its_cancel() -> None:
    class Stubborn:
        async def prune(self) -> int:
            await drops_one_cancel()
            return 0

    pruner = Pruner(Stubborn(), interval=60)  # type: ignore[arg-type]
    pruner.start()
    await asyncio.sleep(0.01)
    async with asyncio.timeout(30):
        await pruner.close()


async def test_draining_gives_up_on_a_database_that_never_answers(
        caplog: pytest.LogCaptureFixture) -> None:
    """At shutdown the gateway waits for the responses still being stored. A database that
    hangs (no answer, no error) held that wait, and the process never exited on its own."""
    class Hung:
        async def prepare(self) -> None:
            await asyncio.Event().wait()

    store = ResponseStore(Hung(), TTL)  # type: ignore[arg-type]
    store.keep(_response("resp_hung"), None, [], [])
    with caplog.at_level(logging.WARNING, logger="gateway.responses"):
        async with asyncio.timeout(10):
            await store.drain(within=0.2)
    assert any("responses not stored: 1;" in r.getMessage() for r in caplog.records)
