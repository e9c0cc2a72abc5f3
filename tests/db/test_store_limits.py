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
    running = 0
    most = 0

    async def slow_report(conn: Any, *args: Any) -> list[dict[str, Any]]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.3)
        finally:
            running -= 1
        return []

    monkeypatch.setattr(queries, "usage_report", slow_report)
    store = UsageStore(async_url(None, tmp_path / "usage.db"), report_slots=slots)
    await store.prepare()
    try:
        results = await asyncio.gather(
            *(store.report("model", None, None, within=1.0) for _ in range(4 * slots)),
            return_exceptions=True)
        assert most == slots
        assert sum(r == [] for r in results) == 3 * slots  # 0.3 s each within the 1 s
        assert all(isinstance(r, ReportTimeout) for r in results if r != [])
    finally:
        await store.close()
