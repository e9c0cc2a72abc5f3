"""The metering writer: the usage sink that stores every request's row without ever making a
request wait.

`record()` only puts the event on a bounded asyncio queue (or, if the queue is full or the
writer closed, appends its row to the spool file): it never awaits and never raises. One
background task builds rows, batches them (flush at `batch_size` rows or `flush_interval`
seconds) and inserts each batch with one executemany. When an insert fails or times out, the
batch goes to the spool and the database is retried with backoff; while anything is spooled,
new batches are appended behind it and the spool is replayed in order, so rows reach the
database in the order they were produced. Rows carry a unique id and inserts skip known ids:
a retry or a replay never stores a row twice. On shutdown the queue is drained into the
database or, failing that, the spool.

With a journal (gateway/metering/journal.py) each row is built and written to it in
`record()`, before the response's last byte, and trimmed once stored or spooled: a process
killed outright loses none of the rows still waiting in memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError

from gateway.db.store import UsageStore
from gateway.metering import rollups
from gateway.metering.journal import Journal
from gateway.metering.prices import PriceBook
from gateway.metering.retention import run_retention
from gateway.metering.rows import build_row
from gateway.metering.spool import Spool
from gateway.tasks import stop
from gateway.usage import UsageEvent

log = logging.getLogger("gateway.metering")

_RETRY_MIN = 0.25
_START_TIMEOUT = 5.0
_CLOSE_TIMEOUT = 10.0


class MeteringWriter:
    def __init__(
        self,
        store: UsageStore,
        spool: Spool,
        prices: PriceBook,
        *,
        batch_size: int = 1000,
        flush_interval: float = 0.5,
        queue_size: int = 10_000,
        retry_max: float = 10.0,
        insert_timeout: float = 10.0,
        journal: Journal | None = None,
        retention_days: int = 0,
        prune_interval: float = 3600.0,
    ) -> None:
        self.store = store
        self.journal = journal
        self.spool = spool
        self.prices = prices
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._retry_max = retry_max
        self._insert_timeout = insert_timeout
        # Rows with their journal segment (0: none), oldest first: a deque, not an
        # asyncio.Queue, whose put and get were a dozen Python calls a row; two events wake
        # the task instead (a first row or closing; a full batch or closing).
        self._queue: deque[tuple[dict[str, Any], int]] = deque()
        self._queue_size = queue_size
        self._has_rows = asyncio.Event()
        self._batch_ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._backfill: asyncio.Task[None] | None = None
        self._retention_days = retention_days
        self._prune_interval = prune_interval
        self._pruner: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._retry_at = 0.0
        self._backoff = _RETRY_MIN
        self._down = False
        self._busy = False
        self._inflight: tuple[asyncio.Task[None], list[dict[str, Any]], Counter[int]] | None = None
        self.rows_stored = 0
        self.rows_rejected = 0

    # ---- what the metrics engineer reads --------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def spooled_rows(self) -> int:
        return self.spool.pending

    @property
    def database_up(self) -> bool:
        return not self._down

    # ---- the sink -------------------------------------------------------------------------

    def record(self, event: UsageEvent) -> None:
        """Never blocks, never raises: the request is already answered."""
        try:
            row = build_row(event, self.prices)
            queue = self._queue
            if self._closing or len(queue) >= self._queue_size:
                self.spool.append([row])
            else:
                queue.append((row, self.journal.append(row) if self.journal is not None else 0))
                depth = len(queue)
                if depth == 1:
                    self._has_rows.set()
                if depth >= self._batch_size:
                    self._batch_ready.set()
        except Exception:
            log.exception("metering: could not queue or spool the row of %s", event.request_id)

    # ---- lifetime -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the spool, migrate (bounded: a down database must not stop the gateway
        from serving), and start the background task."""
        self.spool.open()
        try:
            await asyncio.wait_for(self.store.prepare(), _START_TIMEOUT)
        except Exception as exc:
            self._mark_down(exc)
        else:
            self._backfill = asyncio.create_task(self._backfill_rollups(), name="rollup-backfill")
        self._task = asyncio.create_task(self._run(), name="metering-writer")
        if self._retention_days > 0:
            self._pruner = asyncio.create_task(run_retention(
                self.store.engine, self._retention_days, self._prune_interval),
                name="usage-retention")

    async def _backfill_rollups(self) -> None:
        """A database upgraded from before the rollups (revision 0006) has raw rows and no
        rollups: rebuild them in the background, six hours per transaction, while rows are
        written. If the process stops half-way, `gateway rollup rebuild` finishes the job."""
        try:
            if await rollups.backfill_needed(self.store.engine):
                log.warning("metering: filling the hourly rollups from existing usage rows")
                await rollups.rebuild_rollups(self.store.engine, self.prices)
        except Exception:
            log.exception("metering: the rollup backfill failed; run `gateway rollup rebuild`")

    async def close(self, drain_seconds: float = _CLOSE_TIMEOUT) -> None:
        """Drain what is queued into the database (or the spool), then release everything."""
        if self._closed:
            return
        self._closing = True
        for helper in (self._backfill, self._pruner):  # stop(): one cancel may be lost
            await stop(helper)
        if self._task is not None:
            self._has_rows.set()  # wake the task
            self._batch_ready.set()
            try:
                # Not wait_for: on Python 3.11 it can drop a cancel of close() itself that
                # lands as the writer ends (gateway/tasks.py), as in gateway/auth.py.
                async with asyncio.timeout(drain_seconds):
                    await asyncio.shield(self._task)
            except Exception:
                await stop(self._task)
        if self._inflight is not None:  # cut short: spool it (if it did commit, ids dedupe)
            task, rows, segments = self._inflight
            await stop(task)
            # Cancelled (here, or with the writer, whose cancel reaches the insert it awaits)
            # or left running: not stored nor spooled yet. Ended on its own: it spooled what
            # it did not store.
            if not task.done() or task.cancelled():
                self.spool.append(rows)
                self._settled(segments)
            self._inflight = None
        self._spill_queue()
        self._closed = True
        if self.journal is not None:
            self.journal.close()
        self.spool.close()
        await self.store.close()

    async def flush(self, within: float = 10.0) -> bool:
        """Wait until nothing is queued or spooled (tests, benchmarks); False if that takes
        longer than `within` seconds."""
        deadline = time.monotonic() + within
        while self.queue_depth or self.spooled_rows or self._busy:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    # ---- the background task ----------------------------------------------------------------

    async def _run(self) -> None:
        """Collect a batch, price it, insert it; the next batch is collected and priced while
        the previous insert is in flight (at most one, so order and spooling stay simple)."""
        while True:
            items = await self._collect()
            self._busy = True
            try:
                rows = [row for row, _ in items]
                segments = Counter(segment for _, segment in items)
                if rows and self.journal is not None and self.journal.fsync_policy == "interval":
                    await asyncio.to_thread(self.journal.sync)  # once a batch
                await self._await_inflight()
                if rows and not self.spool.pending and time.monotonic() >= self._retry_at:
                    task = asyncio.create_task(self._insert_or_spool(rows, segments))
                    self._inflight = (task, rows, segments)
                elif rows:
                    await self._deliver(rows)
                    self._settled(segments)
                elif self.spool.pending and not self._closing:
                    await self._replay()
            except Exception:
                log.exception("metering: unexpected writer error")
            finally:
                self._busy = self._inflight is not None
            if self._closing and not self._queue:
                await self._await_inflight()
                return

    async def _await_inflight(self) -> None:
        if self._inflight is not None:
            await self._inflight[0]
            self._inflight = None

    async def _insert_or_spool(self, rows: list[dict[str, Any]], segments: Counter[int]) -> None:
        if not await self._insert(rows):
            self.spool.append(rows)
        self._settled(segments)

    def _settled(self, segments: Counter[int]) -> None:
        """Rows now in the database or the spool: the journal may let go of them."""
        if self.journal is not None:
            self.journal.settled(segments)

    async def _collect(self) -> list[tuple[dict[str, Any], int]]:
        """Up to batch_size rows; waits at most flush_interval after the first one."""
        queue = self._queue
        if not queue and not self._closing:
            self._has_rows.clear()
            try:
                async with asyncio.timeout(self._flush_interval):
                    await self._has_rows.wait()
            except TimeoutError:
                return []
        if not queue:
            return []
        self._busy = True  # a row out of the queue and not yet stored: `flush` waits
        # Let the batch fill for up to flush_interval without waking for each row (a wait
        # per row cost a task and a timer each): only a full batch or closing ends it early.
        if not self._closing and len(queue) < self._batch_size:
            self._batch_ready.clear()
            try:
                async with asyncio.timeout(self._flush_interval):
                    await self._batch_ready.wait()
            except TimeoutError:
                pass
        if self._closing or len(queue) <= self._batch_size:  # closing: the last pass
            events = list(queue)
            queue.clear()
            return events
        return [queue.popleft() for _ in range(self._batch_size)]

    async def _deliver(self, rows: list[dict[str, Any]]) -> None:
        if self.spool.pending or time.monotonic() < self._retry_at:
            self.spool.append(rows)  # behind what is already spooled, to keep the order
            if not self._closing:
                await self._replay()
            return
        if not await self._insert(rows):
            self.spool.append(rows)

    async def _replay(self) -> None:
        if time.monotonic() < self._retry_at:
            return
        chunk = max(self._batch_size, 2000)
        for file in self.spool.claim():
            finished = False
            while not finished:
                rows, offset = await asyncio.to_thread(Spool.read, file, chunk)
                if rows and not await self._insert(rows):
                    return  # still down: resume from file.offset next time
                finished = self.spool.advance(file, offset, len(rows))
        if not self.spool.pending:
            log.info("metering: spooled rows replayed")

    async def _insert(self, rows: Sequence[dict[str, Any]]) -> bool:
        try:
            await asyncio.wait_for(self.store.insert(rows, self.prices), self._insert_timeout)
        except (DataError, IntegrityError) as exc:
            await self._insert_one_by_one(rows, exc)
            return True
        except Exception as exc:
            self._mark_down(exc)
            return False
        self.rows_stored += len(rows)
        if self._down:
            log.warning("metering: database is back")
        self._down = False
        self._backoff = _RETRY_MIN
        self._retry_at = 0.0
        return True

    async def _insert_one_by_one(self, rows: Sequence[dict[str, Any]], exc: Exception) -> None:
        """A batch the database refuses as invalid: store what it accepts, keep the rest in
        the spool's rejected file rather than retrying it forever."""
        log.error("metering: the database refused a batch (%s); retrying row by row",
                  type(exc).__name__)
        for row in rows:
            try:
                await asyncio.wait_for(self.store.insert([row], self.prices),
                                       self._insert_timeout)
                self.rows_stored += 1
            except (DataError, IntegrityError):
                self.rows_rejected += 1
                self.spool.reject(row)

    def _mark_down(self, exc: BaseException) -> None:
        if not self._down:
            log.warning("metering: database unavailable (%s: %s); spooling rows to %s",
                        type(exc).__name__, str(exc)[:200] or "timeout", self.spool.directory)
        self._down = True
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self._retry_max)

    def _spill_queue(self) -> None:
        items = list(self._queue)
        self._queue.clear()
        if items:
            self.spool.append([row for row, _ in items])
            self._settled(Counter(segment for _, segment in items))
