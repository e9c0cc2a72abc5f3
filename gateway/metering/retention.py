"""Raw usage rows are the request log: kept `metering.retention_days` (default 90; 0 keeps them
forever) and then deleted, while the hourly rollups, which every report reads, stay.

Deletion runs in small batches, each its own short transaction (Postgres skips rows another
pruner has locked), so neither the writer nor a report ever waits behind one long DELETE. The
cut-off is a whole hour: an hour is either wholly in the raw table or wholly gone, which is
what `rebuild_rollups` relies on to leave the rollups of pruned hours alone."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.queries import floor_hour
from gateway.db.tables import usage

log = logging.getLogger("gateway.metering")

PRUNE_BATCH = 5000
PRUNE_PAUSE = 0.05  # between batches: other writers and readers get their turn


def cutoff(retention_days: int, now: datetime | None = None) -> datetime | None:
    """Raw rows before this are pruned; None when they are kept forever."""
    if retention_days <= 0:
        return None
    return floor_hour((now or datetime.now(UTC)) - timedelta(days=retention_days))


async def prune_raw_rows(engine: AsyncEngine, before: datetime, batch: int = PRUNE_BATCH,
                         pause: float = PRUNE_PAUSE) -> int:
    """Delete raw usage rows with ts < before, `batch` rows per transaction; returns how many."""
    doomed = (select(usage.c.id).where(usage.c.ts < before).limit(batch)
              .with_for_update(skip_locked=True))
    total = 0
    while True:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # never while a rollup rebuild runs
                await conn.execute(text("LOCK TABLE usage_hourly IN ROW EXCLUSIVE MODE"))
            deleted = (await conn.execute(delete(usage).where(usage.c.id.in_(doomed)))).rowcount
        total += deleted
        if deleted < batch:
            return total
        await asyncio.sleep(pause)


async def run_retention(engine: AsyncEngine, retention_days: int, interval: float) -> None:
    """Prune now and then every `interval` seconds, for the writer's lifetime (cancelled on
    close). A failure (the database is down) is logged and retried next time."""
    while True:
        before = cutoff(retention_days)
        if before is None:
            return
        try:
            pruned = await prune_raw_rows(engine, before)
            if pruned:
                log.info("metering: pruned %d usage rows older than %s (rollups kept)",
                         pruned, before.isoformat())
        except Exception as exc:
            log.warning("metering: pruning old usage rows failed (%s); retrying later",
                        type(exc).__name__)
        await asyncio.sleep(interval)
