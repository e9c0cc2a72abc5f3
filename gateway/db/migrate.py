"""Alembic driven from code, so `gateway migrate` and the gateway's start-up upgrade work from
any directory and from an installed wheel: the scripts ship inside the package
(gateway/migrations) and no alembic.ini is needed."""

from __future__ import annotations

import logging
from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    location = str(resources.files("gateway").joinpath("migrations"))
    cfg.set_main_option("script_location", location.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> str:
    """Apply pending migrations (idempotent; Postgres serialises concurrent callers). Returns
    what was done, in words, for the caller's one log line."""
    async with engine.begin() as conn:
        return await conn.run_sync(_upgrade, revision)


async def pending(engine: AsyncEngine) -> bool:
    """True when the database is behind the newest migration."""
    async with engine.connect() as conn:
        return await conn.run_sync(_pending)


def _upgrade(connection: Connection, revision: str) -> str:
    """Alembic's own INFO lines (seven per start) are silenced; the result says it in one."""
    quiet = logging.getLogger("alembic")
    level = quiet.level
    quiet.setLevel(max(level, logging.WARNING))
    try:
        before = _current(connection)
        command.upgrade(alembic_config(connection), revision)
        after = _current(connection)
    finally:
        quiet.setLevel(level)
    if before == after:
        return f"schema current: {after or 'empty'}"
    return f"migrated from {before or 'empty'} to {after}"


def _current(connection: Connection) -> str:
    return ",".join(sorted(MigrationContext.configure(connection).get_current_heads()))


def _pending(connection: Connection) -> bool:
    current = MigrationContext.configure(connection).get_current_heads()
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    return set(current) != set(heads)
