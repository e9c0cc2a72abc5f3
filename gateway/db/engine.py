"""Async engines for the two supported databases, from one URL.

Postgres when `DATABASE_URL` is set (any of `postgres://`, `postgresql://`, with or without a
driver), else a SQLite file: the same Core statements run on both, through asyncpg or
aiosqlite. Connect and command timeouts are short because the caller (the metering writer)
spools rather than waits: a database that does not answer must fail fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0


def async_url(database_url: str | None, sqlite_path: str | Path) -> str:
    """The SQLAlchemy async URL for a configured `database_url` (or the SQLite fallback)."""
    if not database_url:
        return f"sqlite+aiosqlite:///{Path(sqlite_path)}"
    url = make_url(database_url.replace("postgres://", "postgresql://", 1)
                   if database_url.startswith("postgres://") else database_url)
    backend = url.get_backend_name()
    if backend == "postgresql":
        url = url.set(drivername="postgresql+asyncpg")
    elif backend == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    else:
        raise ValueError(f"database_url: unsupported database {backend!r} (postgresql or sqlite)")
    return url.render_as_string(hide_password=False)


def redacted(url: str) -> str:
    """For logs: the URL without its password."""
    return make_url(url).render_as_string(hide_password=True)


def create_engine(url: str, *, pool_size: int = 2) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": CONNECT_TIMEOUT})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        # asyncpg's own executemany (one prepared statement, rows streamed) beats SQLAlchemy's
        # multi-VALUES rewriting by ~20% on usage batches; nothing here needs RETURNING.
        use_insertmanyvalues=False,
        pool_size=pool_size,
        max_overflow=2,
        # No pre-ping (a round trip per batch): a dead connection fails its insert, which is
        # retried from the spool, and SQLAlchemy drops the pool on disconnect errors.
        pool_recycle=1800,
        connect_args={"timeout": CONNECT_TIMEOUT, "command_timeout": COMMAND_TIMEOUT,
                      "server_settings": {"application_name": "switchyard"}},
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets `gateway usage` read while the gateway writes."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
