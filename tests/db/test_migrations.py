"""Migrations match the tables, run twice harmlessly, and the CLI migrates and reports."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection
from typer.testing import CliRunner

from gateway.cli import cli
from gateway.db import migrate
from gateway.db.engine import async_url, create_engine
from gateway.db.tables import metadata, usage
from gateway.metering.buckets import COUNT, RATIO
from gateway.metering.prices import PriceBook
from gateway.metering.rows import build_row
from tests.db import pg
from tests.metering.rollup_oracle import (
    assert_histogram_days_match,
    assert_histograms_match,
    fetch,
    raw_histograms,
)
from tests.metering.test_rollups import random_event

pg_database = pg.pg_database  # the session's scratch Postgres database
pg_url = pg.pg_url
PRICES = PriceBook.load()


def _differences(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


async def _check(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        await migrate.upgrade(engine)  # idempotent
        assert not await migrate.pending(engine)
        async with engine.connect() as conn:
            return await conn.run_sync(_differences)
    finally:
        await engine.dispose()


def test_postgres_schema_matches_the_tables(pg_url: str) -> None:
    assert asyncio.run(_check(async_url(pg_url, "unused"))) == []


def test_sqlite_schema_matches_the_tables(tmp_path: Path) -> None:
    assert asyncio.run(_check(async_url(None, tmp_path / "x" / "usage.db"))) == []


def test_cli_migrate_and_usage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()
    result = runner.invoke(cli, ["migrate"])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    result = runner.invoke(cli, ["usage", "--group-by", "provider", "--json"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "[]"
    result = runner.invoke(cli, ["usage", "--group-by", "day", "--from", "2026-01-01"])
    assert result.exit_code == 0 and "usage by day" in result.output
    assert runner.invoke(cli, ["usage", "--group-by", "nope"]).exit_code == 2


def test_unsupported_database_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        async_url("mysql://x@y/z", "unused")
    assert async_url("postgres://u:p@h/d", "x").startswith("postgresql+asyncpg://u:p@h/d")


# ---- 0003_usage_api: rows stored before it were all OpenAI Chat calls ----------------------

_OLD_ROW = {  # a usage row as 0001/0002 knew it (no `api`)
    "id": "old1", "ts": datetime(2026, 12, 1, 12, tzinfo=UTC), "request_id": "req-old",
    "requested_model": "deepseek-chat", "model": "deepseek-v4-flash", "provider": "deepseek",
    "thinking": "off", "stream": False, "status": "ok", "attempts": "deepseek:200",
    "prompt_tokens": 10, "cache_hit_tokens": 0, "cache_miss_tokens": 10,
    "completion_tokens": 5, "reasoning_tokens": 0, "cost_usd": 0.001, "peak": False,
    "estimated": False, "latency_ms": 12.5,
}


async def _insert(conn: AsyncConnection, row: dict[str, Any]) -> None:
    """Plain SQL naming only the row's columns, as a gateway of that revision wrote it."""
    names = ", ".join(row)
    values = ", ".join(f":{c}" for c in row)
    await conn.execute(text(f"INSERT INTO usage ({names}) VALUES ({values})"), row)


def _downgrade(connection: Connection, revision: str) -> None:
    command.downgrade(migrate.alembic_config(connection), revision)


async def _upgrade_from_0002(url: str) -> list[tuple[str, str, str]]:
    """Migrate to 0002, store an old row, migrate to head, store a refusal without naming
    `api` and one that names it; then down to 0002 and up again (both directions work)."""
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine, "0002_keys")
        async with engine.begin() as conn:
            await _insert(conn, _OLD_ROW)
        assert await migrate.pending(engine)
        await migrate.upgrade(engine)
        assert not await migrate.pending(engine)
        refused = {**_OLD_ROW, "id": "new1", "requested_model": "", "model": "",
                   "provider": None, "status": "refused", "error_type": "invalid_api_key",
                   "attempts": "", "prompt_tokens": 0, "cache_miss_tokens": 0,
                   "completion_tokens": 0, "cost_usd": 0.0}
        async with engine.begin() as conn:
            await _insert(conn, refused)
            await _insert(conn, {**refused, "id": "new2", "api": "anthropic.messages"})
            rows = [(r[0], r[1], r[2]) for r in await conn.execute(
                text("SELECT id, api, status FROM usage ORDER BY id"))]
            columns = await conn.run_sync(
                lambda c: {col["name"]: col for col in _inspect_columns(c)})
        api = columns["api"]
        assert api["nullable"] is False and "openai.chat" in str(api["default"])
        assert api["type"].length == 32
        async with engine.begin() as conn:
            await conn.run_sync(_downgrade, "0002_keys")
            kept = (await conn.execute(text("SELECT count(*) FROM usage"))).scalar()
            assert kept == 3
            names = await conn.run_sync(lambda c: {col["name"] for col in _inspect_columns(c)})
            assert "api" not in names
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            again = {r[0] for r in await conn.execute(text("SELECT DISTINCT api FROM usage"))}
            assert again == {"openai.chat"}  # a downgrade loses the column's values
        return rows
    finally:
        await engine.dispose()


def _inspect_columns(connection: Connection) -> list[dict[str, Any]]:
    from sqlalchemy import inspect

    return list(inspect(connection).get_columns("usage"))  # type: ignore[arg-type]


_EXPECTED_0003 = [("new1", "openai.chat", "refused"), ("new2", "anthropic.messages", "refused"),
                  ("old1", "openai.chat", "ok")]


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """An empty Postgres database of its own (the session's one is already at head)."""
    name = f"switchyard_mig_{secrets.token_hex(4)}"
    try:
        pg.admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(f"Postgres unreachable at {pg.SERVER}: {exc}")
    try:
        yield pg.database_url(name)
    finally:
        pg.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_postgres_0003_gives_existing_rows_the_openai_chat_api(fresh_pg_url: str) -> None:
    rows = asyncio.run(_upgrade_from_0002(async_url(fresh_pg_url, "unused")))
    assert rows == _EXPECTED_0003


def test_sqlite_0003_gives_existing_rows_the_openai_chat_api(tmp_path: Path) -> None:
    rows = asyncio.run(_upgrade_from_0002(async_url(None, tmp_path / "old.db")))
    assert rows == _EXPECTED_0003


# ---- 0010_usage_latency_team: the histograms per team, rebuilt from the raw rows ------------

_PRUNED_HOUR = datetime(2025, 3, 1, 10, tzinfo=UTC)  # older than every raw row: retention's


def _old_histogram() -> sa.TableClause:
    """usage_latency_hourly as revisions 0006-0009 knew it (no team)."""
    return sa.table("usage_latency_hourly", sa.column("hour", sa.DateTime(timezone=True)),
                    *(sa.column(name) for name in ("provider", "model", "api", "metric",
                                                   "bucket", "count")))


async def _upgrade_0010(url: str, where: str | Path) -> None:
    """At 0009: raw rows of three teams (and none) with their whole-gateway histograms, as
    the writer of then kept them, plus an hour pruned by retention. Then up to 0010."""
    rng = random.Random(10)
    now = time.time()
    rows = [build_row(random_event(rng, i, now), PRICES) for i in range(300)]
    # and latencies on the buckets' edges, where SQL's log() and Python's must agree exactly
    edges = [0.0, 0.999, 1.0, *(RATIO ** k for k in range(1, COUNT + 2))]
    rows += [{**rows[i], "id": f"edge{i}", "latency_ms": ms, "ttft_ms": ms * RATIO}
             for i, ms in enumerate(edges)]
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine, "0009_usage_failed_index")
        async with engine.begin() as conn:
            await conn.execute(usage.insert(), rows)
        whole = raw_histograms(where, teams=False)  # team "" throughout: the old key
        old = [{"hour": datetime.strptime(k[0], "%Y-%m-%d %H").replace(tzinfo=UTC),
                "provider": k[2], "model": k[3], "api": k[4], "metric": k[5], "bucket": k[6],
                "count": n} for k, n in whole.items()]
        old.append({"hour": _PRUNED_HOUR, "provider": "deepseek", "model": "deepseek-v4-flash",
                    "api": "openai.chat", "metric": "latency", "bucket": 30, "count": 7})
        async with engine.begin() as conn:
            await conn.execute(_old_histogram().insert(), old)
            await conn.execute(text(
                "INSERT INTO usage_latency_daily (day, provider, model, api, metric, bucket, "
                "count) VALUES ('2025-03-01', 'deepseek', 'deepseek-v4-flash', 'openai.chat', "
                "'latency', 30, 7)"))
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    assert_histograms_match(where, since_oldest_raw_hour=True)
    pruned = fetch(where, "SELECT team, bucket, count FROM usage_latency_hourly "
                          "WHERE metric = 'latency' AND bucket = 30 AND model = "
                          "'deepseek-v4-flash' AND api = 'openai.chat' AND provider = 'deepseek'")
    assert {"team": "", "bucket": 30, "count": 7} in pruned  # kept, with team ""
    assert {r["team"] for r in fetch(where, "SELECT team FROM usage_latency_daily")} == {
        "", "red", "blue"}
    assert_histogram_days_match(where)  # the daily histograms: the hourly ones summed per day


def test_postgres_0010_rebuilds_the_latency_histograms_per_team(fresh_pg_url: str) -> None:
    asyncio.run(_upgrade_0010(async_url(fresh_pg_url, "unused"), fresh_pg_url))


def test_sqlite_0010_rebuilds_the_latency_histograms_per_team(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    asyncio.run(_upgrade_0010(async_url(None, path), path))
