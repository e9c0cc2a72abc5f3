"""Alembic environment. The gateway hands in an open connection (see gateway/db/migrate.py);
run standalone (`alembic -x url=...`), it connects to that URL or $DATABASE_URL itself."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from gateway.db.engine import async_url, create_engine
from gateway.db.tables import metadata

# Any constant works; every Switchyard process migrating the same database takes the same lock.
_ADVISORY_LOCK = 0x5317C4A2D


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK})"))
        context.run_migrations()


async def _run_standalone(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def _standalone_url() -> str:
    given = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "DATABASE_URL"
    )
    return async_url(given, "switchyard.db")


if context.is_offline_mode():
    context.configure(url=_standalone_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    given: Connection | None = context.config.attributes.get("connection")
    if given is not None:
        _run(given)
    else:
        asyncio.run(_run_standalone(_standalone_url()))
