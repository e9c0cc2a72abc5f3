"""The usage store: schema kept current, batch inserts, reports, through three engines.

Owned by the app (built in create_app, closed in the lifespan) and by the CLI; nothing here
is global. `prepare()` is retried by the writer until it succeeds, so a gateway started while
its database is down still migrates and catches up once the database is back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.db import migrate, queries
from gateway.db.engine import REPORTS, REQUEST_PATH, create_engine, redacted
from gateway.metering import rollups
from gateway.metering.prices import PriceBook

log = logging.getLogger("gateway.metering")

# Three engines, each with its own connections and timeouts (gateway/db/engine.py), so no user
# can take another's: `engine` for writes (the metering writer, admin changes, stored
# responses), `request_path` for key lookups and budget seeds (short timeouts: a hung database
# must not hold requests), `reports` for usage reports (REPORT_SLOTS at a time, REPORT_TIMEOUT
# at most: six concurrent 90-day pages on a shared pool once made a new key's first request
# wait 5.5 s). One by default: on 2 cores, 2 slots cut ten concurrent 90-day page loads from
# ~2.4-3.3 s to ~1.5-1.7 s each but moved chat p99 by +14..+43 ms (1 slot: -2..+8 ms; bound:
# 20), bench/RESULTS-usage-scale.md; `metering.report_slots` raises it where cores allow.
REPORT_SLOTS = 1
REPORT_TIMEOUT = REPORTS.command
# A request-path read (a budget's recorded spend) gives up after this long, waiting included.
REQUEST_PATH_TIMEOUT = 2.0


class ReportTimeout(Exception):
    """A report did not finish within REPORT_TIMEOUT (or waited that long for its turn)."""


class UsageStore:
    def __init__(self, url: str, *, auto_migrate: bool = True,
                 engine: AsyncEngine | None = None, report_slots: int = REPORT_SLOTS) -> None:
        self.url = url
        self.engine = engine or create_engine(url)
        self.request_path = create_engine(url, REQUEST_PATH)
        self.reports = create_engine(url, replace(REPORTS, size=report_slots))
        self._auto_migrate = auto_migrate
        self._prepared = False
        self._lock = asyncio.Lock()
        self._reports = asyncio.Semaphore(report_slots)
        self._default_prices: PriceBook | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def prepare(self) -> None:
        """Run pending migrations once (if auto_migrate); raise if the database is down."""
        if self._prepared:
            return
        async with self._lock:
            if self._prepared:
                return
            if self._auto_migrate:
                done = await migrate.upgrade(self.engine)
                log.info("usage database ready at %s (%s)", redacted(self.url), done)
            self._prepared = True

    async def insert(self, rows: Sequence[dict[str, Any]], prices: PriceBook | None = None,
                     ) -> int:
        """Stores the rows not stored yet and, in the same transaction, adds exactly those to
        the hourly rollups (priced with `prices`, default the shipped book). Returns how many
        were new."""
        await self.prepare()
        prices = prices or self._prices()
        unique = queries.unique_rows(rows)
        # Summed before the transaction, a slice at a time: a batch's sums take milliseconds
        # of the event loop that requests share, and row locks on the rollups are held for
        # less time. Every row is normally new; a replay re-sums the ones really stored.
        rollup = await rollups.aggregate_in_slices(unique, prices)
        async with self.engine.begin() as conn:
            fresh = await queries.insert_rows(conn, unique)
            if fresh:
                if len(fresh) != len(unique):
                    rollup = rollups.aggregate(fresh, prices)
                await rollups.add(conn, rollup)
        return len(fresh)

    def _prices(self) -> PriceBook:
        if self._default_prices is None:
            self._default_prices = PriceBook.load()
        return self._default_prices

    async def report(self, group_by: queries.GroupBy, start: datetime | None,
                     end: datetime | None, api: str | None = None,
                     within: float = REPORT_TIMEOUT, team: str | None = None,
                     ) -> list[dict[str, Any]]:
        """Raises ReportTimeout after `within` seconds, waiting for a slot included."""
        try:
            async with asyncio.timeout(within), self._reports, self.reports.connect() as conn:
                return await queries.usage_report(conn, group_by, start, end, api, team)
        except TimeoutError:
            raise ReportTimeout(f"the usage report took over {within:g} s") from None

    async def spend_since(self, subject: str, since: datetime) -> float:
        """Raises TimeoutError after REQUEST_PATH_TIMEOUT: a budget's first check waits on it."""
        async with asyncio.timeout(REQUEST_PATH_TIMEOUT):
            await self.prepare()
            async with self.request_path.connect() as conn:
                return await queries.spend_since(conn, subject, since)

    async def close(self) -> None:
        for engine in (self.engine, self.request_path, self.reports):
            await engine.dispose()

    @asynccontextmanager
    async def report_connection(
            self, within: float = REPORT_TIMEOUT) -> AsyncIterator[AsyncConnection]:
        """A connection in the report slot for a reader with several queries (the usage
        page); raises ReportTimeout after `within` seconds, waiting for the slot included."""
        try:
            async with asyncio.timeout(within), self._reports, self.reports.connect() as conn:
                yield conn
        except TimeoutError:
            raise ReportTimeout(f"the usage report took over {within:g} s") from None
