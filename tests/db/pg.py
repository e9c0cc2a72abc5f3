"""A scratch Postgres database per test session (created, migrated, dropped), for the tests
that need the real thing. Skips clearly when no server answers."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

SERVER = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


# Every usage table: raw rows and their rollups.
EMPTY_USAGE = ("TRUNCATE usage, usage_hourly, usage_daily, usage_latency_hourly, "
               "usage_latency_daily")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(SERVER, timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _query(url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(url, timeout=3)
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


def query(url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = run(_query(url, sql, *args))
    return result


def admin(sql: str) -> None:
    run(_admin(sql))


def database_url(name: str) -> str:
    return SERVER.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def pg_database() -> Iterator[tuple[str, str]]:
    """(name, url) of a fresh, migrated database, dropped at the end of the session."""
    name = f"switchyard_test_{secrets.token_hex(4)}"
    try:
        admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(f"Postgres unreachable at {SERVER}: {exc}")
    url = database_url(name)
    from gateway.db import migrate
    from gateway.db.engine import async_url, create_engine

    async def up() -> None:
        engine = create_engine(async_url(url, "unused"))
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()

    run(up())
    yield name, url
    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_database: tuple[str, str]) -> str:
    """The session's database, emptied for this test."""
    url = pg_database[1]
    query(url, EMPTY_USAGE)
    return url
