"""Async engines for the two supported databases, from one URL.

Postgres when `DATABASE_URL` is set (any of `postgres://`, `postgresql://`, with or without a
driver), else a SQLite file: the same Core statements run on both, through asyncpg or
aiosqlite.

Each user of the database gets its own engine, so its own connections and timeouts (`Pool`):
the writes (usage rows, admin changes, stored responses), the request path (key lookups,
budget seeds) and the reports. A hung database then costs the request path at most its own
short timeouts, and six 90-day usage pages cannot take the connections a key lookup needs.
On Postgres the statement timeout is also set on the server (`statement_timeout`), so a
query the client gave up on does not keep running there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Pool:
    """One user's connections and how long it waits on the database (seconds)."""

    name: str              # in Postgres' application_name: switchyard-<name>
    size: int
    overflow: int          # extra connections opened under load, closed when idle
    wait: float            # for a free connection of this pool
    connect: float         # to open one (TCP and startup)
    command: float         # per statement, on the client
    statement: float | None  # per statement, on the server (Postgres)


# The metering writer (which spools rather than waits: insert_timeout bounds it), admin
# changes and stored responses.
WRITES = Pool("writes", size=2, overflow=2, wait=10.0, connect=5.0, command=30.0,
              statement=None)
# Key lookups and budget seeds, on the request path: short everything (gateway/auth.py serves
# the last known principal meanwhile). Two connections: the authenticator's two lookups. The
# server stops a statement first (a clear "statement timeout"); the client's limit, a little
# longer, is the backstop for a server that does not answer at all.
REQUEST_PATH = Pool("request-path", size=2, overflow=0, wait=1.0, connect=1.0, command=1.5,
                    statement=1.0)
# Usage reports (the /ui page, /admin/usage): `size` is the store's report slots
# (gateway/db/store.py, metering.report_slots).
REPORTS = Pool("reports", size=1, overflow=0, wait=15.0, connect=5.0, command=15.0,
               statement=15.0)


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


def create_engine(url: str, pool: Pool = WRITES) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    settings = {"application_name": f"switchyard-{pool.name}"}
    if pool.statement is not None:
        settings["statement_timeout"] = str(int(pool.statement * 1000))  # milliseconds
    return create_async_engine(
        url,
        # asyncpg's own executemany (one prepared statement, rows streamed) beats SQLAlchemy's
        # multi-VALUES rewriting by ~20% on usage batches; nothing here needs RETURNING.
        use_insertmanyvalues=False,
        pool_size=pool.size,
        max_overflow=pool.overflow,
        pool_timeout=pool.wait,
        # No pre-ping (a round trip per batch): a dead connection fails its insert, which is
        # retried from the spool, and SQLAlchemy drops the pool on disconnect errors.
        pool_recycle=1800,
        connect_args={"timeout": pool.connect, "command_timeout": pool.command,
                      "server_settings": settings},
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets `gateway usage` read while the gateway writes."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
