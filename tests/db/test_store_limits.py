"""The usage store's report limit: one report at a time, and a clear timeout, so pages cannot
take the connections key lookups and the writer need."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.db import queries
from gateway.db.engine import async_url
from gateway.db.store import ReportTimeout, UsageStore


async def test_a_slow_report_times_out_and_reports_queue_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
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
    store = UsageStore(async_url(None, tmp_path / "usage.db"))
    await store.prepare()
    try:
        results = await asyncio.gather(
            *(store.report("model", None, None, within=1.0) for _ in range(5)),
            return_exceptions=True)
        assert most == 1
        assert sum(r == [] for r in results) == 3  # 0.3 s each within the 1 s
        assert all(isinstance(r, ReportTimeout) for r in results if r != [])
    finally:
        await store.close()
