"""The usage page's request log on SQLite and real Postgres: keyset pages (ties on `ts`
included) cover every matching row once, newest first; filters and a team scope hold."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.api.usage_page import queries
from gateway.api.usage_page.load import cursor, cursor_of
from gateway.db.engine import async_url
from gateway.db.store import UsageStore
from gateway.metering.prices import PriceBook
from gateway.metering.rows import build_row
from gateway.usage import Usage, UsageEvent
from tests.db import pg

pg_database = pg.pg_database
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield async_url(None, tmp_path / "usage.db")
        return
    _, url = request.getfixturevalue("pg_database")
    pg.query(url, "TRUNCATE usage, usage_hourly, usage_daily, usage_latency_hourly")
    yield async_url(url, "unused")


def event(i: int, ts: datetime, key: str | None, team: str | None) -> UsageEvent:
    return UsageEvent(request_id=f"r{i}", requested_model="deepseek-chat",
                      model="deepseek-v4-flash", thinking="off", stream=False,
                      status="error" if i % 4 == 0 else "ok", provider="deepseek",
                      attempts=[("deepseek", "200")], usage=Usage(prompt_tokens=10,
                                                                   completion_tokens=5),
                      key_id=key, team=team, started_at=ts.timestamp(), latency_s=0.5)


async def scenario(url: str) -> None:
    store = UsageStore(url)
    prices = PriceBook.load()
    try:
        # 23 rows, many sharing a timestamp (a keyset on ts alone would skip or repeat them)
        rows = [build_row(event(i, NOW - timedelta(seconds=i // 4),
                                "k1" if i % 3 else None, "red" if i % 2 else "blue"), prices)
                for i in range(23)]
        await store.insert(rows, prices)
        scope = queries.Scope(NOW - timedelta(hours=1), NOW + timedelta(hours=1))

        async def pages(where: queries.LogFilter, scope: queries.Scope = scope,
                        size: int = 3) -> list[dict[str, Any]]:
            seen: list[dict[str, Any]] = []
            before = None
            async with store.engine.connect() as conn:
                while True:
                    page = await queries.request_log(conn, scope, where, before, size)
                    seen += page
                    if len(page) < size:
                        return seen
                    before = cursor(cursor_of(page[-1]))  # through the URL form

        every = await pages(queries.LogFilter())
        assert [r["id"] for r in every] == [r["id"] for r in sorted(
            rows, key=lambda r: (r["ts"], r["id"]), reverse=True)]
        assert {r["request_id"] for r in await pages(queries.LogFilter(key_id=""))} == {
            r["request_id"] for r in rows if r["key_id"] is None}  # "": the master key's
        errors = await pages(queries.LogFilter(status="error", key_id="k1"))
        assert errors and all(r["status"] == "error" and r["key_id"] == "k1" for r in errors)
        red = await pages(queries.LogFilter(team="blue"),
                          queries.Scope(scope.start, scope.end, "red"))
        assert red == []  # a viewer's team wins over the filter asked for
        one = await pages(queries.LogFilter(request_id="r5"),
                          queries.Scope(NOW - timedelta(days=400), NOW - timedelta(days=399)))
        assert [r["request_id"] for r in one] == ["r5"]  # a request id ignores the period
    finally:
        await store.close()


def test_the_request_log_pages_through_every_row_once(store_url: str) -> None:
    asyncio.run(scenario(store_url))


async def spread_scenario(url: str) -> None:
    """Matches scattered over two days, a page smaller than the matches in an hour: the
    rollups that bound a filtered log's scan (newest hours first) must not cut any off."""
    store = UsageStore(url)
    prices = PriceBook.load()
    try:
        rows = [build_row(event(i, NOW - timedelta(minutes=37 * i),
                                "k1" if i % 5 in (0, 1) else "k2", "red" if i % 3 else "blue"),
                          prices) for i in range(80)]
        await store.insert(rows, prices)
        scope = queries.Scope(NOW - timedelta(days=3), NOW + timedelta(hours=1))

        async def pages(where: queries.LogFilter, size: int) -> list[str]:
            seen: list[str] = []
            before = None
            async with store.engine.connect() as conn:
                while True:
                    page = await queries.request_log(conn, scope, where, before, size)
                    seen += [r["id"] for r in page]
                    if len(page) < size:
                        return seen
                    before = cursor(cursor_of(page[-1]))

        def expected(**match: str) -> list[str]:
            return [r["id"] for r in sorted(rows, key=lambda r: (r["ts"], r["id"]), reverse=True)
                    if all(r[name] == value for name, value in match.items())]

        for size in (1, 2, 7):
            assert await pages(queries.LogFilter(key_id="k1", status="error"), size) == \
                expected(key_id="k1", status="error")
            assert await pages(queries.LogFilter(team="blue"), size) == expected(team="blue")
        assert expected(key_id="k1", status="error")  # the filters above did match something
        assert await pages(queries.LogFilter(key_id="k1", provider="ollama"), 3) == []
    finally:
        await store.close()


def test_a_filtered_request_log_finds_matches_spread_over_many_hours(store_url: str) -> None:
    asyncio.run(spread_scenario(store_url))
