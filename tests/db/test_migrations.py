"""Migrations match the tables, run twice harmlessly, and the CLI migrates and reports."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from typer.testing import CliRunner

from gateway.cli import cli
from gateway.db import migrate
from gateway.db.engine import async_url, create_engine
from gateway.db.tables import metadata
from tests.db import pg

pg_database = pg.pg_database  # the session's scratch Postgres database
pg_url = pg.pg_url


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
