"""Stored responses (`store: true`) in the gateway's database, under the key that made them.

Shares the usage store's engine and migrations (table `responses`, migration 0004): one
database, one schema version, Postgres or SQLite. A row holds the response object as the
client saw it, this request's input items (`/input_items`) and the items before them
(`history`), so `previous_response_id` costs one read however long the conversation: the
next request starts from `history + input_items + output`.

Writes never make the client wait: the renderers hand the finished response to `keep`, which
inserts it from a background task; reading or deleting an id first waits for its pending write
in this process, so a client that asks for its response right after receiving it finds it.
(On another replica, a read racing the insert by milliseconds finds nothing yet.) A failed
write is logged; the client already has its answer. Rows expire `ttl` after creation: reads
ignore expired rows and `prune` deletes them (the surface runs it every `prune_interval`).
Ownership is exact: a gateway key sees only its own responses, and the master key (or a
loopback client without one) only those made without a gateway key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, delete, select
from sqlalchemy.sql.elements import ColumnElement

from gateway.db.store import UsageStore
from gateway.db.tables import responses
from gateway.keys.records import utc
from gateway.tasks import stop

log = logging.getLogger("gateway.responses")

DRAIN_SECONDS = 10.0  # at shutdown, how long the writes still pending may take

Item = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str
    owner: str | None  # the gateway key's id; None: the master key or a loopback client
    created_at: datetime
    expires_at: datetime
    response: dict[str, Any]
    input_items: list[Item]
    history: list[Item]

    def conversation(self) -> list[Item]:
        """Every item up to and including this response's output: where a continuation
        starts."""
        output = self.response.get("output")
        return [*self.history, *self.input_items, *(output if isinstance(output, list) else [])]


class ResponseStore:
    def __init__(self, database: UsageStore, ttl: timedelta,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._db = database
        self._ttl = ttl
        self._clock = clock
        self._pending: dict[str, asyncio.Task[None]] = {}

    # ---- writes ----------------------------------------------------------------------------

    def keep(self, response: dict[str, Any], owner: str | None, input_items: list[Item],
             history: list[Item]) -> None:
        """Store a finished response in the background (see the module docstring)."""
        created = self._clock()
        row = StoredResponse(str(response["id"]), owner, created, created + self._ttl,
                             response, input_items, history)
        try:
            task = asyncio.get_running_loop().create_task(self._insert(row))
        except RuntimeError:  # no loop: nothing can be stored (a synchronous caller)
            log.warning("response %s not stored: no running event loop", row.id)
            return
        self._pending[row.id] = task
        task.add_done_callback(lambda done: self._settled(row.id, done))

    async def insert(self, row: StoredResponse) -> None:
        """Store now (tests and tools; the gateway uses `keep`)."""
        await self._insert(row)

    async def _insert(self, row: StoredResponse) -> None:
        await self._db.prepare()
        async with self._db.engine.begin() as conn:
            await conn.execute(responses.insert().values(
                id=row.id, key_id=row.owner, created_at=row.created_at,
                expires_at=row.expires_at, status=str(row.response.get("status", "")),
                model=str(row.response.get("model", ""))[:128], response=row.response,
                input_items=row.input_items, history=row.history))

    def _settled(self, response_id: str, done: asyncio.Task[None]) -> None:
        if self._pending.get(response_id) is done:
            del self._pending[response_id]
        if not done.cancelled() and done.exception() is not None:
            log.warning("response %s could not be stored: %s", response_id,
                        type(done.exception()).__name__)

    async def drain(self, within: float = DRAIN_SECONDS) -> None:
        """Wait for every pending write (at shutdown, before the engine is closed), for
        `within` seconds at most: a database that hangs (no answer, no error) held this wait,
        and the process never exited on its own. What is left is stopped and logged."""
        if not self._pending:
            return
        pending = list(self._pending.values())
        _, left = await asyncio.wait(pending, timeout=within)
        if left:
            log.warning("responses not stored: %d; the database did not answer within "
                        "%g s of shutdown", len(left), within)
            await asyncio.gather(*(stop(task) for task in left))  # at once, not in turn

    # ---- reads -----------------------------------------------------------------------------

    async def get(self, response_id: str, owner: str | None) -> StoredResponse | None:
        """The caller's unexpired response with this id, else None."""
        await self._written(response_id)
        await self._db.prepare()
        async with self._db.engine.connect() as conn:
            row = (await conn.execute(select(responses).where(
                self._visible(response_id, owner)))).first()
        return _stored(row) if row is not None else None

    async def delete(self, response_id: str, owner: str | None) -> bool:
        await self._written(response_id)
        await self._db.prepare()
        async with self._db.engine.begin() as conn:
            result = await conn.execute(delete(responses).where(
                self._visible(response_id, owner)))
        return bool(result.rowcount)

    async def prune(self) -> int:
        """Delete every expired response; returns how many."""
        await self._db.prepare()
        async with self._db.engine.begin() as conn:
            result = await conn.execute(
                delete(responses).where(responses.c.expires_at <= self._clock()))
        return int(result.rowcount or 0)

    async def _written(self, response_id: str) -> None:
        pending = self._pending.get(response_id)
        if pending is not None:
            await asyncio.wait((pending,))

    def _visible(self, response_id: str, owner: str | None) -> ColumnElement[bool]:
        key = responses.c.key_id
        return and_(responses.c.id == response_id,
                    key.is_(None) if owner is None else key == owner,
                    responses.c.expires_at > self._clock())


def _stored(row: Row[Any]) -> StoredResponse:
    m = row._mapping
    created, expires = utc(m["created_at"]), utc(m["expires_at"])
    assert created is not None and expires is not None
    return StoredResponse(m["id"], m["key_id"], created, expires, dict(m["response"]),
                          list(m["input_items"]), list(m["history"]))


class Pruner:
    """Deletes expired responses every `interval` seconds while the app runs."""

    def __init__(self, store: ResponseStore, interval: float) -> None:
        self._store = store
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        task, self._task = self._task, None
        await stop(task)  # not one cancel and a wait: a prune may lose that cancel

    async def _run(self) -> None:
        while True:
            try:
                removed = await self._store.prune()
                if removed:
                    log.info("pruned %d expired stored responses", removed)
            except Exception as exc:  # database down: try again next time
                log.warning("cannot prune stored responses: %s", type(exc).__name__)
            await asyncio.sleep(self._interval)
