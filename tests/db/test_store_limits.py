"""The usage store's report limit: `report_slots` reports at a time, and a clear timeout, so
pages cannot take the connections key lookups and the writer need."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.db import queries
from gateway.db.engine import async_url
from gateway.db.store import ReportTimeout, UsageStore


@pytest.mark.parametrize("slots", [1, 2])
async def test_a_slow_report_times_out_and_reports_queue_for_their_slots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slots: int
) -> None:
    """Two rounds of quick reports, then a round that never ends (times out running) and one
    that never gets a slot (times out waiting). Not rounds of 0.3 s sleeps filling 0.9 of the
    1 s: on a loaded box the connects ate the 0.1 s left and the third round timed out."""
    running = 0
    most = 0
    started = 0

    async def report(conn: Any, *args: Any) -> list[dict[str, Any]]:
        nonlocal running, most, started
        running += 1
        most = max(most, running)
        started += 1
        try:
            if started > 2 * slots:
                await asyncio.Event().wait()  # hung
            await asyncio.sleep(0.1)
        finally:
            running -= 1
        return []

    monkeypatch.setattr(queries, "usage_report", report)
    store = UsageStore(async_url(None, tmp_path / "usage.db"), report_slots=slots)
    await store.prepare()
    try:
        async with asyncio.timeout(10):  # no timeout, or waiting not counted: fail, not hang
            results = await asyncio.gather(
                *(store.report("model", None, None, within=2.0) for _ in range(4 * slots)),
                return_exceptions=True)
        assert most == slots
        assert results[:2 * slots] == [[]] * (2 * slots)  # in turn, each in its slot
        assert all(isinstance(r, ReportTimeout) for r in results[2 * slots:]), results
        assert started == 3 * slots  # the last round waited for a slot until its time was up
    finally:
        await store.close()
