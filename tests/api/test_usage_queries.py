"""The usage page's request log on SQLite and real Postgres: keyset pages (ties on `ts`
included) cover every matching row once, newest first; filters and a team scope hold."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.api.usage_page import queries
from gateway.api.usage_page.load import cursor, cursor_of, load
from gateway.db.engine import async_url
from gateway.db.store import UsageStore
from gateway.metering.buckets import bucket_of, percentile
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
    pg.query(url, pg.EMPTY_USAGE)
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


# ---- latency percentiles: a viewer's team's own, the whole gateway's for the master key ------

# (team, latency range s, time to first token s): red is fast, blue slow, the master key's
# calls (no team) in between; each calls deepseek and ollama
_TEAMS = (("red", (0.08, 0.2), 0.05), ("blue", (2.0, 6.0), 1.5), (None, (0.5, 1.0), 0.3))


def timed_event(rng: random.Random, i: int, team: str | None, latency: tuple[float, float],
                ttft: float) -> UsageEvent:
    streamed = i % 2 == 0
    return UsageEvent(request_id=f"t{i}", requested_model="deepseek-chat",
                      model="deepseek-v4-flash", thinking="off", stream=streamed,
                      status="ok", provider=rng.choice(("deepseek", "ollama")),
                      attempts=[("deepseek", "200")],
                      usage=Usage(prompt_tokens=10, completion_tokens=5), key_id=None,
                      team=team,
                      # over four days: whole days from the daily histograms, edges hourly
                      started_at=(NOW - timedelta(hours=rng.uniform(0, 90))).timestamp(),
                      latency_s=rng.uniform(*latency),
                      ttft_s=ttft * rng.uniform(0.8, 1.2) if streamed else None)


def expected_percentiles(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """p50/p95 per provider from the raw rows' own buckets (bucket_of row by row)."""
    counts: dict[tuple[str, str], Counter[int]] = {}
    for row in rows:
        for metric, ms in (("latency", row["latency_ms"]), ("ttft", row["ttft_ms"])):
            if ms is not None:
                counts.setdefault((row["provider"], metric), Counter())[bucket_of(ms)] += 1
    out: dict[str, dict[str, float | None]] = {}
    for (provider, metric), histogram in counts.items():
        for q, name in ((0.5, "p50"), (0.95, "p95")):
            out.setdefault(provider, {})[f"{metric}_{name}"] = percentile(dict(histogram), q)
    return out


def shown(table: Any) -> dict[str, dict[str, float | None]]:
    return {row["provider"]: {name: row[name] for name in (
        "latency_p50", "latency_p95", "ttft_p50", "ttft_p95")} for row in table.rows}


async def percentile_scenario(url: str) -> None:
    store = UsageStore(url)
    prices = PriceBook.load()
    rng = random.Random(95)
    try:
        rows = [build_row(timed_event(rng, i * len(_TEAMS) + n, team, latency, ttft), prices)
                for i in range(60) for n, (team, latency, ttft) in enumerate(_TEAMS)]
        await store.insert(rows, prices)
        today = NOW.date()
        pages = {}
        async with store.engine.connect() as conn:
            for team in ("red", "blue", None):
                pages[team] = await load(conn, {"from": (today - timedelta(days=6)).isoformat(),
                                                "to": today.isoformat()}, team, today)
            whole = await queries.latency_buckets(conn, queries.Scope(
                NOW - timedelta(days=6), NOW + timedelta(hours=1)))
        for team in ("red", "blue"):
            (providers,) = [t for t in pages[team].tables if t.name == "providers"]
            assert {c.key for c in providers.columns} >= {"latency_p95", "ttft_p95"}
            assert shown(providers) == expected_percentiles(
                [r for r in rows if r["team"] == team]), team
        assert shown(pages["red"].tables[0])["deepseek"]["latency_p95"] < \
            shown(pages["blue"].tables[0])["deepseek"]["latency_p50"]  # seeded apart
        # the master key: the whole gateway, summed over teams: the same histogram as one
        # kept without teams (what the page read before revision 0010)
        assert shown(pages[None].tables[0]) == expected_percentiles(rows)
        assert Counter({(r["provider"], r["metric"], r["bucket"]): r["count"] for r in whole}) \
            == Counter((r["provider"], metric, bucket_of(ms)) for r in rows for metric, ms in (
                ("latency", r["latency_ms"]), ("ttft", r["ttft_ms"])) if ms is not None)
    finally:
        await store.close()


def test_a_viewer_reads_its_teams_percentiles_and_the_master_key_everyones(
        store_url: str) -> None:
    asyncio.run(percentile_scenario(store_url))
