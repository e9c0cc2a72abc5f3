"""Each user of the database has its own connections and timeouts (gateway/db/engine.py): a
writer or admin changes holding every write connection, and a report running, do not make a
key lookup wait; the request path's statements are cut by the server after 1 s."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gateway.db.engine import REQUEST_PATH, WRITES, async_url
from gateway.db.store import UsageStore
from gateway.keys.store import KeyStore
from tests.db import pg

pg_database = pg.pg_database
pg_url = pg.pg_url


async def test_busy_writes_and_reports_do_not_hold_a_key_lookup(pg_url: str) -> None:
    store = UsageStore(async_url(pg_url, "unused"))
    await store.prepare()
    busy: list[asyncio.Task[None]] = []
    holding = asyncio.Semaphore(0)

    async def hold(engine_name: str) -> None:
        engine = getattr(store, engine_name)
        async with engine.connect() as conn:
            holding.release()
            await conn.execute(text("SELECT pg_sleep(5)"))

    try:
        for name in ["engine"] * (WRITES.size + WRITES.overflow) + ["reports"]:
            busy.append(asyncio.create_task(hold(name)))
        for _ in busy:
            await asyncio.wait_for(holding.acquire(), 10)
        began = time.monotonic()
        assert await KeyStore(store).lookup("0" * 64) is None
        waited = time.monotonic() - began
        print(f"\nkey lookup with every write connection and a report busy: {waited:.3f} s")
        assert waited < 1.0
    finally:
        for task in busy:
            task.cancel()
        await asyncio.gather(*busy, return_exceptions=True)
        await store.close()


async def test_the_request_path_statements_stop_on_the_server(pg_url: str) -> None:
    store = UsageStore(async_url(pg_url, "unused"))
    try:
        async with store.request_path.connect() as conn:
            assert await conn.scalar(text("SHOW statement_timeout")) == "1s"
            assert await conn.scalar(text("SHOW application_name")) == (
                f"switchyard-{REQUEST_PATH.name}")
            with pytest.raises(DBAPIError, match="statement timeout"):
                await conn.execute(text("SELECT pg_sleep(3)"))
        async with store.engine.connect() as conn:  # the writes' own, unchanged
            assert await conn.scalar(text("SHOW statement_timeout")) == "0"
    finally:
        with contextlib.suppress(Exception):
            await store.close()
