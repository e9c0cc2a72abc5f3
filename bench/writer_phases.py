"""Where one metering batch's time goes: its sums, the raw insert, the rollup upserts, the commit.

    .venv/bin/python bench/writer_phases.py postgresql://postgres@127.0.0.1:5432/DATABASE

Writes 15 batches of 1,000 bench/writer.py events into DATABASE (an existing, migrated one, e.g.
usage_scale.py's 20M-row database; the rows stay) the way UsageStore.insert does, timing each
step, and prints the medians.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import writer  # bench/writer.py: the events

from gateway.db import queries
from gateway.db.engine import async_url
from gateway.db.store import UsageStore
from gateway.metering import rollups
from gateway.metering.prices import PriceBook
from gateway.metering.rows import build_row


async def main(url: str, batches: int = 15) -> None:
    prices = PriceBook.load()
    store = UsageStore(async_url(url, "unused"))
    await store.prepare()
    steps: dict[str, list[float]] = {"sums": [], "raw insert": [], "rollup upserts": [],
                                     "commit": []}
    try:
        for b in range(batches):
            rows = queries.unique_rows(
                [build_row(writer.event(b * 1000 + i), prices) for i in range(1000)])
            t0 = time.perf_counter()
            rollup = await rollups.aggregate_in_slices(rows, prices)
            t1 = time.perf_counter()
            async with store.engine.begin() as conn:
                t2 = time.perf_counter()
                await queries.insert_rows(conn, rows)
                t3 = time.perf_counter()
                await rollups.add(conn, rollup)
                t4 = time.perf_counter()
            t5 = time.perf_counter()
            for name, seconds in zip(steps, (t1 - t0, t3 - t2, t4 - t3, t5 - t4), strict=True):
                steps[name].append(seconds * 1000)
    finally:
        await store.close()
    print(", ".join(f"{name} {statistics.median(ms):.1f} ms" for name, ms in steps.items())
          + f" (medians of {batches} batches of 1,000 rows; {len(rollup.hourly)} hourly and "
          f"{len(rollup.latency)} latency rollup rows in the last)")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
